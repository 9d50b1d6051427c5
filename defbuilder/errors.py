"""One error family for every user mistake, each naming a file and a line.

A `DefError` is what the CLI prints as ``file:line: message`` with exit status 2.
It must never be used for bugs in defbuilder itself: those stay ordinary
exceptions so that they surface as tracebacks.

When a model object is built with bad values, the error points at the line of the
user's code that built it (the first stack frame outside this package), which is
what a recipe author needs to see.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache

__all__ = ["DefError", "Origin", "caller_origin", "read_text"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class Origin:
    """Where in user code (or in a .def file) something was made: ``file:line``."""

    __slots__ = ("file", "line")

    def __init__(self, file: str | None, line: int | None) -> None:
        self.file = file
        self.line = line

    def __str__(self) -> str:
        if self.file is None:
            return "<unknown>"
        return f"{self.file}:{self.line}" if self.line else self.file

    def __repr__(self) -> str:
        return f"Origin({self.file!r}, {self.line!r})"

    # Origins never take part in equality of model values.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Origin)

    def __hash__(self) -> int:
        return 0


@lru_cache(maxsize=512)
def _is_internal(filename: str) -> bool:
    if filename.startswith("<"):
        # attrs-generated __init__ and friends, <frozen importlib...>
        return True
    path = os.path.abspath(filename)
    if "/attr/" in path or "/attrs/" in path:
        return True
    return path == _PACKAGE_DIR or path.startswith(_PACKAGE_DIR + os.sep)


def caller_origin() -> Origin:
    """The first frame on the stack that is user code (outside defbuilder and attrs)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_internal(filename):
            return Origin(filename, frame.f_lineno)
        frame = frame.f_back  # type: ignore[assignment]
    return Origin(None, None)


class DefError(Exception):
    """A user mistake in a recipe, a .def file or a command line.

    >>> str(DefError("missing From:", file="app.def", line=3))
    'app.def:3: missing From:'
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        origin: Origin | None = None,
    ) -> None:
        super().__init__(message)
        if origin is None and file is None:
            origin = caller_origin()
        if origin is not None and file is None:
            file, line = origin.file, origin.line
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        return self.format()

    def format(self, relative_to: str | None = None) -> str:
        """``file:line: message``; with ``relative_to``, a file under it is shown relative."""
        where = ""
        if self.file is not None:
            file = self.file
            if relative_to is not None and os.path.isabs(file):
                rel = os.path.relpath(file, relative_to)
                if not rel.startswith(".."):
                    file = rel
            where = f"{file}:{self.line}: " if self.line else f"{file}: "
        return where + self.message


def read_text(path: str, newline: str | None = None) -> str:
    """A user's file as UTF-8 text; a missing or unreadable file is a ``DefError``."""
    try:
        with open(path, encoding="utf-8", newline=newline) as fh:
            return fh.read()
    except OSError as exc:
        raise DefError(f"cannot read: {exc.strerror}", file=path) from None
    except UnicodeDecodeError:
        raise DefError("not UTF-8 text", file=path) from None
