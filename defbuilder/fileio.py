"""Writing the files a command produces: all or nothing.

Every command that writes a file (``render -o``, ``parse -o``, ``lint -o``,
``from-dockerfile -o``, ``condor``) goes through ``write_atomic``, so a failed or
interrupted run never leaves a half-written file or a stray temp file behind.
Nothing here reads user input (``errors.read_text`` does that).

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "app.def")
>>> write_atomic(path, "Bootstrap: docker\\n")
>>> open(path).read()
'Bootstrap: docker\\n'
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["write_atomic"]


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory and a rename.

    The file gets permissions ``mode``. On any error the temp file is removed and
    ``path`` is left as it was.
    """
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".defbuilder-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
