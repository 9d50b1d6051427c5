"""One error family for every user mistake, each naming a file and a line.

A `DefError` is what the CLI prints as ``file:line: message`` with exit status 2.
It must never be used for bugs in defbuilder itself: those stay ordinary
exceptions so that they surface as tracebacks.

When a model object is built with bad values, the error points at the line of the
user's code that built it, which is what a recipe author needs to see. User code
is any frame that is not defbuilder, attrs, the standard library or an installed
package, and that runs *inside* an entry point (``cli.main``): whatever called the
entry point (the ``defbuilder`` console script, ``runpy``, a test harness) is the
launcher, not the user's code. An error with no user frame names no file: it is
about a command-line argument, and the message says which.
"""

from __future__ import annotations

import os
import site
import sys
from collections.abc import Callable, Iterable
from functools import lru_cache
from types import CodeType
from typing import TypeVar

__all__ = [
    "DefError",
    "Origin",
    "Terminated",
    "caller_origin",
    "did_you_mean",
    "entry_point",
    "is_user_file",
    "read_text",
]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

_F = TypeVar("_F", bound=Callable[..., object])

# Code objects of entry points: frames older than one of these belong to the launcher.
_ENTRY_CODES: set[CodeType] = set()


def entry_point(fn: _F) -> _F:
    """Mark ``fn`` as an entry point: the frames that called it are not user code.

    The ``defbuilder`` console script (``bin/defbuilder``), ``python -m`` and a
    program calling ``cli.main([...])`` all sit *below* the entry point; an error
    raised with no recipe frame above it is about the arguments and names no file.
    """
    code = getattr(fn, "__code__", None)
    if isinstance(code, CodeType):
        _ENTRY_CODES.add(code)
    return fn


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


@lru_cache(maxsize=1)
def _library_dirs() -> tuple[str, ...]:
    """Directories of code that is never the user's: this package, the standard
    library, installed packages and the interpreter's scripts (console scripts).

    Computed from modules already imported (``os``, ``site``), not ``sysconfig``,
    which would cost the CLI's start-up a few milliseconds.
    """
    dirs = {_PACKAGE_DIR, os.path.dirname(os.path.abspath(os.__file__))}
    dirs.add(os.path.dirname(os.path.abspath(sys.executable)))
    getsitepackages = getattr(site, "getsitepackages", None)  # absent in old virtualenvs
    if getsitepackages is not None:
        dirs.update(getsitepackages())
    user_site = getattr(site, "USER_SITE", None)
    if user_site:
        dirs.add(user_site)
    dirs.update(p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages"))
    return tuple(sorted({os.path.abspath(d).rstrip(os.sep) + os.sep for d in dirs if d}))


@lru_cache(maxsize=512)
def _is_internal(filename: str) -> bool:
    """Whether a frame of ``filename`` is library code rather than the user's."""
    if filename.startswith("<"):
        # attrs-generated __init__ and friends, <frozen runpy>, <doctest ...>, <string>
        return True
    path = os.path.abspath(filename)
    if "/attr/" in path or "/attrs/" in path:
        return True
    return (path + os.sep).startswith(_library_dirs())


def is_user_file(filename: str) -> bool:
    """Whether code in ``filename`` is the user's (see ``caller_origin``).

    >>> is_user_file(__file__), is_user_file("<string>"), is_user_file("/home/me/recipe.py")
    (False, False, True)
    """
    return not _is_internal(filename)


def caller_origin() -> Origin:
    """Where user code is on the stack: its innermost frame, or no file at all.

    Frames of defbuilder, attrs, the standard library and installed packages are
    skipped, and the walk stops at an ``entry_point`` (``cli.main``): what called
    it is the launcher, so an error raised outside any recipe names no file.
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code in _ENTRY_CODES:
            break
        if not _is_internal(code.co_filename):
            return Origin(code.co_filename, frame.f_lineno)
        frame = frame.f_back  # type: ignore[assignment]
    return Origin(None, None)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean `post`?"`` for the closest of ``choices``, or ``""``.

    >>> did_you_mean("postt", ["post", "files", "setup"])
    '; did you mean `post`?'
    >>> did_you_mean("zzz", ["post"])
    ''
    """
    import difflib  # only on the error path

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


class Terminated(SystemExit):
    """Raised by defbuilder's own signal handler (SIGTERM): the command ends through
    its cleanup with status 128+N; never mistaken for a recipe calling ``sys.exit``."""


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
