"""Writing the files a command produces, without replacing what must not be replaced.

Every command that writes a file (``render -o``, ``parse -o``, ``lint -o``,
``from-dockerfile -o``, ``condor``) goes through ``write_outputs`` (or its
one-file form ``write_output``); ``push --staging`` and ``build`` publish images
with ``publish_copy`` / ``publish_no_clobber``. What a path names decides how it
is written (``plan``):

* nothing yet: a new file, written to a unique temp file in the same directory,
  fsync'ed and renamed into place; the mode is ``mode`` less the umask;
* a regular file with one link: replaced the same way, atomically, keeping its
  permission bits (set-user/group-ID excepted) and, where allowed, its owner;
* a symbolic link: followed, and its target written by these rules (a dangling
  link creates its target, as the shell's ``>`` does); the link stays a link;
* a regular file with several hard links: written in place (truncated, then
  written), so every name keeps showing the same file; this is not atomic;
* a FIFO or a character device (``/dev/null``, a terminal): written in place;
* ``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``: this process's file
  descriptor N, written at its current offset (so ``>>`` appends);
* a directory, a block device, a socket: refused.

Errors name the path the user gave, never the temp file. A temp file is removed
on any error, on Ctrl-C and on SIGTERM/SIGHUP (``TempFile``), so a failed or
interrupted run never leaves a half-written file or a stray temp file behind.
Nothing here reads user input (``errors.read_text`` does that).

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "app.def")
>>> write_output(path, "Bootstrap: docker\\n")
>>> open(path).read()
'Bootstrap: docker\\n'
>>> plan("/dev/null").kind
'in place'
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType, TracebackType
from typing import Literal

import attrs

from .errors import DefError

__all__ = [
    "Plan",
    "TempFile",
    "clobber_error",
    "copy_into",
    "plan",
    "publish_copy",
    "publish_no_clobber",
    "rename_no_clobber",
    "signals_blocked",
    "write_output",
    "write_outputs",
]

_CHUNK = 1 << 20
_MAX_HOPS = 40
_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
# this process's descriptors, once the directory part is resolved (/dev/fd and
# /proc/self are symbolic links to /proc/<pid>/fd and /proc/<pid>)
_OWN_FD = re.compile(r"/proc/(?P<pid>\d+)(?:/task/\d+)?/fd/(?P<fd>\d+)")

Kind = Literal["new", "replace", "in place", "descriptor"]


@attrs.frozen
class Plan:
    """How ``write_output`` writes one path: ``kind`` at ``path`` (or descriptor ``fd``)."""

    kind: Kind
    path: str
    fd: int | None = None
    st: os.stat_result | None = None


def _refuse(given: str, message: str) -> DefError:
    return DefError(message, file=given)


def plan(given: str) -> Plan:
    """What writing ``given`` means (see the module doc); refuses what must not be written."""
    path = os.path.abspath(given)
    for _ in range(_MAX_HOPS):
        try:
            path = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
            own = _OWN_FD.fullmatch(path)
            if own and int(own["pid"]) == os.getpid():
                return Plan("descriptor", path, fd=int(own["fd"]))
            st = os.lstat(path)
        except FileNotFoundError:
            return Plan("new", path)
        except OSError as exc:
            raise _refuse(given, f"cannot write: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            if path.startswith("/proc/"):
                # another process's descriptor (a "magic" link): open() follows it
                return Plan("in place", path, st=st)
            try:
                target = os.readlink(path)
            except OSError as exc:
                raise _refuse(given, f"cannot write: {exc.strerror}") from None
            path = os.path.join(os.path.dirname(path), target)
            continue
        if stat.S_ISREG(st.st_mode):
            return Plan("replace" if st.st_nlink == 1 else "in place", path, st=st)
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            return Plan("in place", path, st=st)
        what = (
            "a directory"
            if stat.S_ISDIR(st.st_mode)
            else "a block device"
            if stat.S_ISBLK(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "not a regular file"
        )
        raise _refuse(given, f"is {what}; give a file to write")
    raise _refuse(given, "too many levels of symbolic links")


# --- signals ---------------------------------------------------------------------------


class _Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Delay SIGINT/SIGTERM/SIGHUP while a file is made, published or cleaned up (no
    lost temp): the first one is delivered when the block ends.

    Python runs signal handlers in the main thread only, whichever thread the system
    gives a signal to, so handlers that just note the signal hold it for the whole
    process (``pthread_sigmask`` would hold it for one thread: with lint's
    shellcheck threads running, the system may give it to another). Elsewhere than in
    the main thread nothing can be held, and nothing is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []

    def note(signum: int, _frame: FrameType | None) -> None:
        noted.append(signum)

    old = {sig: signal.signal(sig, note) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if noted:
            signal.raise_signal(noted[0])  # to the handler in place again


class TempFile:
    """A unique temp file beside ``target``: removed on error, Ctrl-C, SIGTERM or SIGHUP.

    ``with TempFile(target) as tmp:`` creates ``tmp.path``, ``.NAME.<random><suffix>``
    beside ``target`` (``O_EXCL``, mode ``mode`` less the umask), with ``tmp.fd``
    open for writing. Leaving the block closes the descriptor and removes the file
    unless ``tmp.done()`` was called after it was renamed or linked into place.
    While the block runs (in the main thread), SIGTERM and SIGHUP unwind it like
    Ctrl-C does; after the clean-up the process dies of that signal, as it would
    have without the handler.
    """

    def __init__(self, target: str, mode: int = 0o666, suffix: str = ".defbuilder-tmp") -> None:
        directory, base = os.path.split(os.path.abspath(target))
        self.directory = directory
        self._stem = "." + base[:180]
        self._suffix = suffix
        self._mode = mode
        self.path = ""
        self.fd = -1
        self._created = False
        self._done = False
        self._old: dict[int, signal._HANDLER] = {}
        self._main = threading.current_thread() is threading.main_thread()

    #: TempFiles open in the main thread; the outermost one re-raises a signal
    _active = 0

    def __enter__(self) -> TempFile:
        if self._main:
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._old[sig] = signal.signal(sig, self._on_signal)
            TempFile._active += 1
        try:
            with signals_blocked():
                for _ in range(100):
                    self.path = os.path.join(
                        self.directory, f"{self._stem}.{os.urandom(6).hex()}{self._suffix}"
                    )
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
                    try:
                        self.fd = os.open(self.path, flags, self._mode)
                    except FileExistsError:
                        continue
                    self._created = True
                    break
                else:  # pragma: no cover - 100 collisions of 48 random bits
                    raise FileExistsError(errno.EEXIST, "no free temp name", self.directory)
        except BaseException:
            self._restore()
            raise
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        raise _Signalled(signum)

    def done(self) -> None:
        """The temp file was published (renamed or linked): leaving keeps it."""
        self._done = True

    def _restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        if self._main and self._old:
            TempFile._active -= 1
        self._old = {}

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with signals_blocked():
            if self.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
                self.fd = -1
            if self._created and (exc is not None or not self._done):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            self._restore()
        if isinstance(exc, _Signalled) and TempFile._active == 0:
            # the outermost clean-up is done: die of the signal, as without the handler
            signal.signal(exc.signum, signal.SIG_DFL)
            os.kill(os.getpid(), exc.signum)
            raise SystemExit(128 + exc.signum)  # pragma: no cover - the kill ends us


# --- writing ---------------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _kept_mode(st: os.stat_result, executable: bool) -> int:
    mode = stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID)
    if executable:  # +x wherever the file is readable
        mode |= (mode & 0o444) >> 2
    return mode


def _in_place(p: Plan, data: bytes) -> None:
    if p.kind == "descriptor":
        assert p.fd is not None
        _write_all(p.fd, data)
        return
    fd = os.open(p.path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.ftruncate(fd, 0)
        _write_all(fd, data)
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_outputs(
    files: Sequence[tuple[str, str | bytes]], *, executable: Sequence[str] = ()
) -> None:
    """Write each ``(path, text)``; paths in ``executable`` are made executable.

    All or nothing where it can be: every path is planned first (a refusal writes
    nothing), every new or replaced file is written to its temp file, and only
    when all are ready are they renamed into place; files written in place
    (``plan``) come last.
    """
    plans = [(given, plan(given), data) for given, data in files]
    with contextlib.ExitStack() as stack:
        ready: list[tuple[str, TempFile, Plan]] = []
        for given, p, data in plans:
            if p.kind in ("in place", "descriptor"):
                continue
            exe = given in executable
            raw = data.encode("utf-8") if isinstance(data, str) else data
            try:
                tmp = stack.enter_context(TempFile(p.path, 0o777 if exe else 0o666))
                _write_all(tmp.fd, raw)
                if p.st is not None:
                    os.fchmod(tmp.fd, _kept_mode(p.st, exe))
                    if (p.st.st_uid, p.st.st_gid) != (os.getuid(), os.getgid()):
                        with contextlib.suppress(OSError):
                            os.fchown(tmp.fd, p.st.st_uid, p.st.st_gid)
                os.fsync(tmp.fd)
            except OSError as exc:
                raise _refuse(given, f"cannot write: {exc.strerror}") from None
            ready.append((given, tmp, p))
        for given, tmp, p in ready:
            try:
                with signals_blocked():
                    os.replace(tmp.path, p.path)
                    tmp.done()
            except OSError as exc:
                raise _refuse(given, f"cannot write: {exc.strerror}") from None
            _fsync_dir(tmp.directory)
    for given, p, data in plans:
        if p.kind not in ("in place", "descriptor"):
            continue
        raw = data.encode("utf-8") if isinstance(data, str) else data
        try:
            _in_place(p, raw)
        except OSError as exc:
            raise _refuse(given, f"cannot write: {exc.strerror}") from None


def write_output(path: str, text: str | bytes, *, executable: bool = False) -> None:
    """Write one file by the rules of the module doc (``write_outputs`` for several)."""
    write_outputs([(path, text)], executable=[path] if executable else [])


# --- publishing images -----------------------------------------------------------------


def copy_into(src: str, fd: int) -> None:
    """Copy the file ``src`` into the open descriptor ``fd``, in 1 MiB chunks."""
    with open(src, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            _copy_chunk(fd, chunk)


def _copy_chunk(fd: int, chunk: bytes) -> None:
    _write_all(fd, chunk)


def _renameat2_noreplace(src: str, dst: str) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    func = getattr(libc, "renameat2", None)
    if func is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS), dst)
    at_fdcwd, rename_noreplace = -100, 1
    if func(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), dst)


def rename_no_clobber(src: str, dst: str) -> bool:
    """Rename ``src`` to ``dst`` unless ``dst`` exists; True when renamed.

    A hard link then removing ``src``, or where the file system has no hard links,
    ``renameat2(RENAME_NOREPLACE)``: either fails when ``dst`` exists, so a file
    another process published meanwhile is never replaced.
    """
    with signals_blocked():
        try:
            os.link(src, dst)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            try:
                _renameat2_noreplace(src, dst)
            except FileExistsError:
                return False
            return True
        os.unlink(src)
        return True


def publish_no_clobber(tmp: TempFile, target: str) -> bool:
    """Give the temp file the name ``target`` unless that name exists (``rename_no_clobber``)."""
    with signals_blocked():
        published = rename_no_clobber(tmp.path, target)
        if published:
            tmp.done()
    return published


def publish_copy(
    src: str,
    target: str,
    same: Callable[[str, str], bool],
) -> Literal["published", "identical"]:
    """Copy ``src`` to ``target`` without ever replacing an existing ``target``.

    The copy goes to a unique temp file in ``target``'s directory, is fsync'ed,
    then published with ``publish_no_clobber``. When ``target`` exists (before the
    copy, or published by someone else meanwhile), ``same(src, target)`` decides:
    ``"identical"`` when it is, else a ``DefError``. OSErrors propagate.
    """
    if _exists_as_file(target):
        if same(src, target):
            return "identical"
        raise clobber_error(target)
    with TempFile(target, 0o666) as tmp:
        copy_into(src, tmp.fd)
        os.fsync(tmp.fd)
        if publish_no_clobber(tmp, target):
            _fsync_dir(tmp.directory)
            return "published"
    if _exists_as_file(target) and same(src, target):
        return "identical"
    raise clobber_error(target)


def _exists_as_file(target: str) -> bool:
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise DefError("exists and is not a regular file; not replacing it", file=target)
    return True


def clobber_error(target: str) -> DefError:
    return DefError(
        "exists with different content; OSDF caches files as immutable, so give the "
        "new image a new name (defbuilder hash, build --hash-name or --name-by inputs)",
        file=target,
    )
