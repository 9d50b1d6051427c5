"""defbuilder: compose Apptainer definition files from typed Python recipes.

>>> from defbuilder import Header, Recipe, Stage, render
>>> text = render(Recipe([Stage(Header.docker("ubuntu:24.04"), runscript='exec echo "$@"')]))
>>> text.splitlines()[:2]
['Bootstrap: docker', 'From: ubuntu:24.04']
"""

from .errors import DefError
from .model import (
    App,
    BuildArg,
    Environment,
    Export,
    FileEntry,
    Files,
    Header,
    Label,
    Recipe,
    Script,
    Sections,
    Stage,
)
from .render import render

__version__ = "0.1.0"

__all__ = [
    "App",
    "BuildArg",
    "DefError",
    "Environment",
    "Export",
    "FileEntry",
    "Files",
    "Header",
    "Label",
    "Recipe",
    "Script",
    "Sections",
    "Stage",
    "__version__",
    "render",
]
