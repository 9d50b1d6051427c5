"""The typed model of an Apptainer definition file: immutable values, composed by methods.

``Recipe`` holds ordered ``Stage`` values; a ``Stage`` is a ``Header`` plus sections
(``Sections``: what building blocks return and what ``stage + sections`` merges in).
Every value is a frozen attrs class: change is ``evolve``/methods that return a new
value, so a stage built once can be reused by many recipes.

The package validates what can be checked on one value (names, keys, values that
Apptainer's parser would misread, using the rules in ``defbuilder.apptainer``);
``Recipe.validate`` checks what needs the whole recipe. It never formats text: that
is ``defbuilder.render``'s job. Modules:

* ``header``: ``Header`` and the field <-> keyword table;
* ``sections``: ``Script``, ``Environment``/``Export``, ``Label``, ``Files``/``FileEntry``,
  ``App``;
* ``stage``: ``Sections``, ``Stage``, ``Recipe``, the ``Block`` and ``Base`` protocols.

>>> stage = Stage(Header.docker("ubuntu:24.04"), post="apt-get update")
>>> stage.header.bootstrap, stage.post.body
('docker', 'apt-get update')
"""

from ..apptainer import AGENTS, has_placeholder
from ._values import BuildArg, Value, check_body, clean_body
from .header import HEADER_KEYWORDS, Header
from .sections import App, Environment, EnvItem, Export, FileEntry, Files, Label, Script
from .stage import Base, Block, Recipe, Sections, Stage

__all__ = [
    "AGENTS",
    "HEADER_KEYWORDS",
    "App",
    "Base",
    "Block",
    "BuildArg",
    "EnvItem",
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
    "Value",
    "check_body",
    "clean_body",
    "has_placeholder",
]
