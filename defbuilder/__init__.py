"""defbuilder: compose Apptainer definition files from typed Python recipes.

>>> from defbuilder import Header, Recipe, Stage, render
>>> text = render(Recipe([Stage(Header.docker("ubuntu:24.04"), runscript='exec echo "$@"')]))
>>> text.splitlines()[:2]
['Bootstrap: docker', 'From: ubuntu:24.04']
>>> parse(text).stages[0].runscript.body
'exec echo "$@"'
"""

from . import model
from .errors import DefError
from .model import *  # noqa: F403 -- the model's values (model.__all__)
from .parse import parse
from .render import render

__version__ = "0.1.0"

__all__ = ["DefError", "__version__", "parse", "render"]
__all__ += model.__all__
