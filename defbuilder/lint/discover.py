"""Which files ``defbuilder lint`` reads when it is given a directory.

A file named on the command line is always linted (a ``.py`` file as a recipe
script, anything else as a ``.def``). In a directory, lint reads:

* every ``*.def`` file, and
* every recipe script, recognised by its name: ``recipe.py`` (the layout of
  ``recipes/NAME/recipe.py``; the pre-commit hook matches the same names). Other
  ``.py`` files are not run: loading a recipe executes it.

It skips ``.git`` and ``.venv``, any virtual environment (a directory holding
``pyvenv.cfg``), and, inside a git work tree, what git ignores
(``git ls-files --cached --others --exclude-standard``: tracked files and untracked
files that are not ignored; nested repositories and submodules are not entered).

Nothing here reads a file's contents.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable

__all__ = ["RECIPE_NAMES", "expand", "files_in", "is_lint_target"]

#: File names that make a ``.py`` file a recipe script when a directory is walked.
RECIPE_NAMES = frozenset({"recipe.py"})
#: Directories never entered.
_SKIP_DIRS = frozenset({".git", ".venv"})


def is_lint_target(name: str) -> bool:
    """Whether a file found in a directory is linted (by its base name).

    >>> [is_lint_target(n) for n in ("app.def", "recipe.py", "setup.py", "x.DEF")]
    [True, True, False, False]
    """
    return name.endswith(".def") or name in RECIPE_NAMES


def _is_venv(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "pyvenv.cfg"))


def _git_files(directory: str) -> list[str] | None:
    """Files under ``directory`` that git tracks or would not ignore, relative to it;
    None when it is not inside a git work tree (or git is not installed)."""
    try:
        proc = subprocess.run(
            [
                "git",
                "-C",
                directory,
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            timeout=300,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    names = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    return sorted({n for n in names if n and not n.endswith("/")})


def _walk(directory: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(
            d for d in dirs if d not in _SKIP_DIRS and not _is_venv(os.path.join(root, d))
        )
        found += [
            os.path.relpath(os.path.join(root, f), directory) for f in files if is_lint_target(f)
        ]
    return sorted(found)


def _skipped(relpath: str, directory: str, venvs: dict[str, bool]) -> bool:
    """Whether a file git lists lies in a directory lint never enters."""
    parts = relpath.split("/")[:-1]
    for i, part in enumerate(parts):
        if part in _SKIP_DIRS:
            return True
        sub = "/".join(parts[: i + 1])
        if sub not in venvs:
            venvs[sub] = _is_venv(os.path.join(directory, sub))
        if venvs[sub]:
            return True
    return False


def files_in(directory: str) -> list[str]:
    """The files lint reads in ``directory`` (see the module doc), sorted."""
    listed = _git_files(directory)
    if listed is None:
        rel = _walk(directory)
    else:
        venvs: dict[str, bool] = {}
        rel = [
            r
            for r in listed
            if is_lint_target(os.path.basename(r))
            and not _skipped(r, directory, venvs)
            and os.path.isfile(os.path.join(directory, r))
        ]
    return [os.path.normpath(os.path.join(directory, r)) for r in rel]


def expand(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """(files to lint, directories in which none was found): each directory is
    replaced by ``files_in(directory)``; other paths are kept as given. A file met
    twice (named, or in two directories given) is linted once."""
    files: list[str] = []
    empty: list[str] = []
    seen: set[str] = set()
    for path in paths:
        found = files_in(path) if os.path.isdir(path) else [path]
        if not found:
            empty.append(path)
        for file in found:
            key = os.path.realpath(file)
            if key not in seen:
                seen.add(key)
                files.append(file)
    return files, empty
