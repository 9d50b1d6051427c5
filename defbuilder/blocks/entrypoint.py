"""``Entrypoint``: Docker's ENTRYPOINT + CMD as an explicit %runscript/%startscript.

Semantics (docs.docker.com/reference/dockerfile/, "Understand how CMD and
ENTRYPOINT interact"): the process is ENTRYPOINT followed by the run arguments, or
by CMD when there are none. The shell form ``"cmd p1"`` is ``/bin/sh -c "cmd p1"``
(or the ``SHELL`` you give), so a shell-form ENTRYPOINT ignores the arguments
(they become ``$0 $1...`` of that shell). An empty list is an empty instruction.
With neither, the arguments are the command.

Unlike the runscript Apptainer generates from an OCI image
(internal/pkg/build/sources/conveyorPacker_oci.go, which ``eval``s the arguments
once more), every argument reaches the program byte for byte, and the program is
``exec``'d: it keeps the container's PID, gets its signals, and its exit status
is the container's. The same script is the ``%startscript``, so
``apptainer instance start`` runs the entrypoint too (Apptainer runs only the
startscript there: ``cmd/internal/cli/instance_actions_linux.go``, apptainer/apptainer#2340).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..errors import DefError
from ..model import Script, Sections

__all__ = ["Entrypoint"]

Form = Sequence[str] | str | None


def _form(value: Form, shell: tuple[str, ...]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (*shell, value)  # shell form
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise DefError(f"exec-form items must be strings, got {item!r}")
        if "\x00" in item:
            raise DefError("an argument cannot hold a NUL byte")
    return items


def _shell(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Entrypoint:
    """Docker ENTRYPOINT/CMD as ``%runscript`` and ``%startscript``.

    ``entrypoint`` and ``cmd`` are a list (exec form) or a string (shell form).

    >>> print(Entrypoint(["/app/entrypoint.sh"], cmd=["python", "-V"]).script().body)
    if [ "$#" -eq 0 ]; then
        set -- python -V
    fi
    exec /app/entrypoint.sh "$@"
    """

    entrypoint: Form = None
    cmd: Form = None
    shell: tuple[str, ...] = attrs.field(default=("/bin/sh", "-c"), converter=_shell)
    workdir: str | None = None

    def argv(self, args: Sequence[str] = ()) -> list[str]:
        """The process Docker would run for ``docker run IMAGE *args``.

        >>> Entrypoint("top -b", cmd=["-c"]).argv()
        ['/bin/sh', '-c', 'top -b', '-c']
        """
        entry = _form(self.entrypoint, self.shell) or ()
        cmd = _form(self.cmd, self.shell) or ()
        return [*entry, *(args or cmd)]

    def script(self) -> Script:
        """The ``%runscript`` body (POSIX sh): ``cd`` to ``workdir``, CMD as the default
        arguments, ``exec`` the entrypoint (or the arguments)."""
        from ..render import sh_quote

        entry = _form(self.entrypoint, self.shell)
        cmd = _form(self.cmd, self.shell)
        lines = []
        if self.workdir:
            lines.append(f"cd {sh_quote(self.workdir)} || exit 1")
        if cmd:
            lines += [
                'if [ "$#" -eq 0 ]; then',
                "    set -- " + " ".join(sh_quote(a) for a in cmd),
                "fi",
            ]
        if entry:
            lines.append("exec " + " ".join(sh_quote(a) for a in entry) + ' "$@"')
        else:
            lines += [
                'if [ "$#" -eq 0 ]; then',
                '    echo "No command specified (the image has neither ENTRYPOINT nor CMD)" >&2',
                "    exit 125",
                "fi",
                'exec "$@"',
            ]
        return Script("\n".join(lines) + "\n")

    def sections(self) -> Sections:
        script = self.script()
        return Sections(runscript=script, startscript=script)
