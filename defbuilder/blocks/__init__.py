"""Building blocks: small values that return ``Sections`` to add to a stage.

>>> from defbuilder import Header, Stage
>>> from defbuilder.blocks import Entrypoint
>>> stage = Stage(Header.docker("python:3.12-slim")) + Entrypoint(["python"], cmd=["-V"])
>>> stage.runscript.body.splitlines()[-1]
'exec python "$@"'
"""

from .bases import cuda_base, pixi_base
from .entrypoint import Entrypoint
from .pixi import PixiEnvironment

__all__ = ["Entrypoint", "PixiEnvironment", "cuda_base", "pixi_base"]
