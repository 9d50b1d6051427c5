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

from ..apptainer import AGENTS as AGENTS
from ..apptainer import has_placeholder as has_placeholder
from ._values import BuildArg
from ._values import Value as Value
from ._values import check_body as check_body
from ._values import clean_body as clean_body
from .header import HEADER_KEYWORDS as HEADER_KEYWORDS
from .header import Header
from .sections import App, Environment, Export, FileEntry, Files, HelpText, Label, Script
from .sections import EnvItem as EnvItem
from .stage import Base, Block, Recipe, Sections, Stage

#: The values recipes are made of: ``defbuilder`` offers exactly these, with
#: ``DefError``, ``parse`` and ``render``. The helpers imported above ``as``
#: themselves are offered here too, for the package's own modules, but are no part
#: of a recipe.
__all__ = [
    "App",
    "Base",
    "Block",
    "BuildArg",
    "Environment",
    "Export",
    "FileEntry",
    "Files",
    "Header",
    "HelpText",
    "Label",
    "Recipe",
    "Script",
    "Sections",
    "Stage",
]
