"""Entry harness: reproduce how Apptainer *enters* a container built from a .def.

It does not build images (no bootstrap, no ``%post``). From the final stage of a
.def it writes what Apptainer's build writes into ``/.singularity.d`` and
``/scif``, then performs ``run``/``exec``/``shell``/``test``/``start`` the way the
runtime does, for real, in a private mount namespace whose root is the host's
file system plus the image's metadata (and any files you map in, e.g. a fake
``/app``). ``/bin/sh`` in that root is the shell you choose (``dash``, Ubuntu's
``/bin/sh``, or ``bash``, RHEL's), so every ``#!/bin/sh`` script runs under it.

What is reproduced, and from where (apptainer/apptainer):

* metadata files: ``%runscript``/``%startscript``/``%test`` through
  ``handleShebangScript`` (``#!/bin/sh`` unless the body's first line is ``#!``,
  section args appended) in ``internal/pkg/build/metadata.go``;
  ``%environment`` appended to the ``90-environment.sh`` template
  (``insertEnvScript``); ``labels.json``, ``runscript.help``; default runscript and
  startscript and the base env files (``internal/pkg/build/sources/base_environment.go``);
* SCIF apps under ``/scif/apps/NAME`` (``internal/pkg/build/apps/apps.go``): app
  scripts as ``#!/bin/sh\\n\\n<body>\\n``, ``scif/env/01-base.sh`` and
  ``90-environment.sh``, ``labels.json``, and ``95-apps.sh`` activating the app;
* actions (``internal/pkg/util/fs/files/action_script.sh``): every
  ``/.singularity.d/env/*.sh`` is sourced in lexical order (Apptainer uses its
  embedded POSIX interpreter, mvdan.cc/sh; here the chosen shell does it), then
  ``run`` execs ``/.singularity.d/runscript "$@"`` (or ``/bin/sh`` when there is
  none), ``exec`` execs the command, ``test`` the test script (exit 0 with a
  message when there is none), ``start`` the startscript (what ``instance start``
  runs: the runscript is *not* run), ``shell`` ``/bin/sh``. Only exported
  variables reach the program because the program is ``exec``'d.

Each action is ``exec``'d all the way down, so the PID you get is the program's:
a signal sent to it reaches the program exactly as with Apptainer.

Needs Linux mount namespaces (``unshare(2)``; unprivileged user namespaces when
not root); ``available()`` says whether they work here.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from .apptainer import (
    SHEBANG_SECTIONS,
    app_name_problem,
    app_script,
    get_labels,
    handle_shebang,
    scif_env_name,
    section_script_args,
)
from .errors import DefError
from .parse import RawStage, parse, split_stages

__all__ = ["ACTIONS", "Image", "available", "unpack"]

ACTIONS = ("run", "exec", "shell", "test", "start")
#: The PATH a container starts with when the image sets none (the harness's choice,
#: documented in docs/runtime.md: Apptainer does not pass the host PATH through a
#: clean environment).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_ENV_TEMPLATE = "#!/bin/sh\n# Custom environment shell code should follow\n\n"
_DEFAULT_RUNSCRIPT = '#!/bin/sh\n\necho "There is no runscript defined for this container\\n";\n'
_LIBS_ENV = """#!/bin/sh
# defbuilder harness: what Apptainer's 99-base.sh does - append the GPU library
# directory that --nv binds to LD_LIBRARY_PATH, and set the prompt.
if [ -z "${LD_LIBRARY_PATH:-}" ]; then
    LD_LIBRARY_PATH=/.singularity.d/libs
else
    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"
fi
PS1="Apptainer> "
export LD_LIBRARY_PATH PS1
"""
_APPS_ENV = """#!/bin/sh
# defbuilder harness: what Apptainer's 95-apps.sh does for --app NAME.
if [ -n "${APPTAINER_APPNAME:-}" ]; then
    export APPTAINER_APPNAME
    __app="/scif/apps/$APPTAINER_APPNAME"
    if [ -d "$__app/" ]; then
        SCIF_APPS=/scif/apps
        SCIF_APPROOT="$__app"
        export SCIF_APPROOT SCIF_APPS
        PATH="$__app:$PATH"
        [ -d "$__app/bin" ] && PATH="$__app/bin:$PATH"
        if [ -d "$__app/lib" ]; then
            LD_LIBRARY_PATH="$__app/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            export LD_LIBRARY_PATH
        fi
        [ -f "$__app/scif/env/01-base.sh" ] && . "$__app/scif/env/01-base.sh"
        [ -f "$__app/scif/env/90-environment.sh" ] && . "$__app/scif/env/90-environment.sh"
        export PATH
    else
        echo "Could not locate the container application: $APPTAINER_APPNAME"
        exit 1
    fi
    unset __app
fi
"""


def _exec_script(name: str, *, image: bool) -> str:
    """Shell lines that exec the script NAME (runscript, test, startscript) with "$@":
    the app's own under --app (a missing one is an error), else, with IMAGE, the
    image's /.singularity.d/NAME when it is executable; what follows is the fallback."""
    lines = f"""\
    if [ -n "${{APPTAINER_APPNAME:-}}" ]; then
        if [ -x "/scif/apps/$APPTAINER_APPNAME/scif/{name}" ]; then
            exec "/scif/apps/$APPTAINER_APPNAME/scif/{name}" "$@"
        fi
        echo "no {name} for contained app: $APPTAINER_APPNAME" >&2
        exit 1
"""
    if image:
        lines += f"""\
    elif [ -x /.singularity.d/{name} ]; then
        exec /.singularity.d/{name} "$@"
"""
    return lines + "    fi"


# The action, run by the image's /bin/sh with the user's arguments as "$@".
# Follows action_script.sh: source env/*.sh in lexical order, then exec.
_DRIVER = f"""
for __script__ in /.singularity.d/env/*.sh; do
    if [ -f "$__script__" ]; then
        . "$__script__"
    fi
done
unset __script__
cd "$__DEFBUILDER_PWD" 2>/dev/null || cd /
unset __DEFBUILDER_PWD
case "$__DEFBUILDER_ACTION" in
run)
    unset __DEFBUILDER_ACTION
{_exec_script("runscript", image=True)}
    echo "No runscript found in container, executing /bin/sh" >&2
    exec /bin/sh "$@" ;;
exec)
    unset __DEFBUILDER_ACTION
    exec "$@" ;;
shell)
    unset __DEFBUILDER_ACTION
    exec /bin/sh "$@" ;;
test)
    unset __DEFBUILDER_ACTION
{_exec_script("test", image=True)}
    echo "No test script found in container, exiting"
    exit 0 ;;
start)
    unset __DEFBUILDER_ACTION
{_exec_script("startscript", image=False)}
    exec /.singularity.d/startscript "$@" ;;
esac
echo "unknown action" >&2
exit 2
"""

# --- Linux namespaces through libc (no helper processes: one fork per action) -------

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enter_namespace() -> None:
    libc = _libc()
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    else:
        _check(libc.unshare(_CLONE_NEWNS | _CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")


def _bind(libc: Any, src: str, dst: str) -> None:
    _check(
        libc.mount(src.encode(), dst.encode(), None, _MS_BIND | _MS_REC, None),
        f"bind {src} -> {dst}",
    )


_AVAILABLE: bool | None = None


def available() -> bool:
    """Whether this machine lets the harness make a private mount namespace."""
    global _AVAILABLE
    if _AVAILABLE is None:
        try:
            res = subprocess.run(
                ["/bin/true"], preexec_fn=_enter_namespace, capture_output=True, timeout=30
            )
            _AVAILABLE = res.returncode == 0
        except (OSError, subprocess.SubprocessError):
            _AVAILABLE = False
    return _AVAILABLE


# --- unpacking the image's metadata ---------------------------------------------------


def _write(path: Path, text: str, mode: int = 0o755) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _write_apps(stage: RawStage, root: Path, file: str | None) -> None:
    apps = stage.apps()
    for app in apps:
        problem = app_name_problem(app)
        if problem is not None:
            raise DefError(problem, file=file, line=stage.app_line(app))
    base = ["#!/bin/sh", "# defbuilder harness: what apps.go writes into 94-appsbase.sh"]
    for app in apps:
        n = scif_env_name(app)
        approot = f"/scif/apps/{app}"
        d = root / "scif" / "apps" / app
        for sub in ("bin", "lib", "scif/env"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("input", "output"):
            (root / "scif" / "data" / app / sub).mkdir(parents=True, exist_ok=True)
        _write(
            d / "scif" / "env" / "01-base.sh",
            "\n".join(
                [
                    "#!/bin/sh",
                    f"SCIF_APPNAME={app}",
                    f"SCIF_APPROOT={approot}",
                    f"SCIF_APPMETA={approot}/scif",
                    "SCIF_DATA=/scif/data",
                    f"SCIF_APPDATA=/scif/data/{app}",
                    f"SCIF_APPINPUT=/scif/data/{app}/input",
                    f"SCIF_APPOUTPUT=/scif/data/{app}/output",
                    "export SCIF_APPDATA SCIF_APPNAME SCIF_APPROOT SCIF_APPMETA SCIF_APPINPUT "
                    "SCIF_APPOUTPUT SCIF_DATA",
                    "",
                ]
            ),
        )
        labels = {"SCIF_APP_NAME": app}
        for part, fname in (
            ("apprun", "runscript"),
            ("appstart", "startscript"),
            ("apptest", "test"),
        ):
            sec = stage.section(part, app)
            if sec is not None:
                _write(d / "scif" / fname, app_script(sec.body))
        env = stage.section("appenv", app)
        if env is not None:
            _write(d / "scif" / "env" / "90-environment.sh", env.body)
        help_ = stage.section("apphelp", app)
        if help_ is not None:
            _write(d / "scif" / "runscript.help", help_.body, 0o644)
        lab = stage.section("applabels", app)
        if lab is not None:
            labels.update(get_labels(lab.body))
        _write(d / "scif" / "labels.json", json.dumps(labels, indent="\t", sort_keys=True), 0o644)
        base += [
            f"SCIF_APPDATA_{n}=/scif/data/{app}",
            f"SCIF_APPMETA_{n}={approot}/scif",
            f"SCIF_APPROOT_{n}={approot}",
            f"SCIF_APPBIN_{n}={approot}/bin",
            f"SCIF_APPLIB_{n}={approot}/lib",
            f"export SCIF_APPDATA_{n} SCIF_APPMETA_{n} SCIF_APPROOT_{n} SCIF_APPBIN_{n} "
            f"SCIF_APPLIB_{n}",
        ]
        for fname, var in (
            ("runscript", "RUN"),
            ("startscript", "START"),
            ("labels.json", "LABELS"),
            ("env/90-environment.sh", "ENV"),
        ):
            if (d / "scif" / fname).exists():
                base += [f"SCIF_APP{var}_{n}={approot}/scif/{fname}", f"export SCIF_APP{var}_{n}"]
    if apps:
        _write(root / ".singularity.d" / "env" / "94-appsbase.sh", "\n".join(base) + "\n")


@attrs.frozen
class Image:
    """An unpacked image: ``root`` holds ``.singularity.d`` (and ``scif``)."""

    root: Path
    stage: RawStage
    files: Mapping[str, Path] = attrs.field(factory=dict)
    #: ``root`` was made by ``unpack`` (no ``root=`` given): ``close`` removes it.
    owned: bool = attrs.field(default=False, kw_only=True)

    @property
    def meta(self) -> Path:
        return self.root / ".singularity.d"

    def close(self) -> None:
        """Remove ``root`` if ``unpack`` made it; a ``root=`` you passed is yours."""
        if self.owned:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def scripts(self, app: str | None = None) -> list[tuple[str, Path]]:
        """(path in the container, path here) of the scripts an action runs, those that
        exist: ``/.singularity.d``'s, or with ``app`` that SCIF app's under
        ``/scif/apps/NAME/scif`` (internal/pkg/build/apps/apps.go)."""
        base = "/.singularity.d"
        if app is not None:
            self._check_app(app)
            base = f"/scif/apps/{app}/scif"
        here = self.root / base.lstrip("/")
        return [
            (f"{base}/{rel}", here / rel)
            for rel in ("runscript", "startscript", "test", "env/90-environment.sh")
            if (here / rel).exists()
        ]

    def _check_app(self, app: str) -> None:
        if app not in self.stage.apps():
            raise DefError(
                f"no app {app!r} in this image; apps: {', '.join(self.stage.apps()) or 'none'}"
            )

    def command(self, action: str, args: Sequence[str] = ()) -> list[str]:
        """The argv the harness execs (inside the image root) for an action."""
        if action not in ACTIONS:
            raise DefError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        if action == "exec" and not args:
            raise DefError("exec needs a command: defbuilder try FILE exec -- COMMAND [ARGS...]")
        return ["/bin/sh", "-c", _DRIVER, "sh", *args]

    def build_script_argv(self, name: str = "post") -> list[str]:
        """Write ``%post`` (or ``%setup``/``%pre``) to ``/.post.script`` and return the argv
        Apptainer's build runs it with (``/bin/sh -ex ...``, stage.go). Perform it with
        ``image.run("exec", argv)``: %post runs through ``apptainer exec`` too."""
        sec = self.stage.section(name)
        if sec is None:
            raise DefError(f"this stage has no %{name}")
        _write(self.root / f".{name}.script", sec.body)
        return section_script_args(sec, f"/.{name}.script")

    def popen(
        self,
        action: str,
        args: Sequence[str] = (),
        *,
        sh: str = "dash",
        app: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdin: int | IO[Any] | None = None,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start an action; its PID is the program's (everything is exec'd)."""
        argv = self.command(action, args)
        shell = shutil.which(sh) if not os.path.isabs(sh) else sh
        if shell is None:
            raise DefError(f"{sh} is not installed (Debian/Ubuntu: apt-get install {sh})")
        run_env = {"PATH": DEFAULT_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
        run_env.update(env or {})
        run_env["__DEFBUILDER_ACTION"] = action
        run_env["__DEFBUILDER_PWD"] = os.path.abspath(cwd or os.getcwd())
        run_env.setdefault("APPTAINER_CONTAINER", str(self.root))
        run_env.setdefault("APPTAINER_NAME", self.root.name)
        if app is not None:
            self._check_app(app)
            run_env["APPTAINER_APPNAME"] = app
            run_env["SINGULARITY_APPNAME"] = app
        plan = _mount_plan(self.root, self.files, os.path.realpath(shell))

        def enter() -> None:
            _enter_namespace()
            libc = _libc()
            for src, dst in plan:
                _bind(libc, src, dst)
            os.chroot(self.root)
            os.chdir("/")

        return subprocess.Popen(
            argv, env=run_env, preexec_fn=enter, stdin=stdin, stdout=stdout, stderr=stderr
        )

    def run(
        self,
        action: str,
        args: Sequence[str] = (),
        *,
        timeout: float = 120,
        input: bytes | None = None,
        **kw: Any,
    ) -> subprocess.CompletedProcess[bytes]:
        """Perform an action and wait: the result's stdout/stderr are bytes."""
        proc = self.popen(
            action,
            args,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **kw,
        )
        out, err = proc.communicate(input, timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _mount_plan(root: Path, files: Mapping[str, Path], shell: str) -> list[tuple[str, str]]:
    """Make ``root`` look like the host's / plus the image's own paths.

    Host top-level entries are bind-mounted (symlinks recreated), except where the
    image provides the path; a host directory that only partly holds image paths
    is recreated and its other children bound. Finally the chosen shell is bound
    over what /bin/sh resolves to, so ``#!/bin/sh`` means that shell.
    """
    plan: list[tuple[str, str]] = []
    claimed = {"/.singularity.d", "/scif", *files}

    def compose(host: str, target: Path) -> None:
        try:
            entries = sorted(os.listdir(host))
        except OSError:
            return
        for entry in entries:
            hpath = os.path.join(host, entry)
            tpath = target / entry
            if hpath in claimed or os.path.realpath(hpath) == str(root):
                continue
            if any(c.startswith(hpath + "/") for c in claimed):
                if os.path.isdir(hpath) and not os.path.islink(hpath):
                    tpath.mkdir(exist_ok=True)
                    compose(hpath, tpath)
                continue
            if os.path.islink(hpath):
                if not tpath.is_symlink():
                    os.symlink(os.readlink(hpath), tpath)
            elif os.path.isdir(hpath):
                tpath.mkdir(exist_ok=True)
                plan.append((hpath, str(tpath)))
            elif os.path.isfile(hpath):
                tpath.touch()
                plan.append((hpath, str(tpath)))

    compose("/", root)
    for cpath, hpath in files.items():
        target = root / cpath.lstrip("/")
        if Path(hpath).is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        plan.append((str(hpath), str(target)))
    sh_target = os.path.realpath("/bin/sh")
    if sh_target != shell:
        plan.append((shell, str(root) + sh_target))
    return plan


def unpack(
    text: str,
    root: str | os.PathLike[str] | None = None,
    *,
    stage: str | None = None,
    files: Mapping[str, str | os.PathLike[str]] | None = None,
    base_env: Mapping[str, str] | None = None,
    file: str | None = None,
) -> Image:
    """Write the image metadata of ``text``'s last stage (or ``stage``) under ``root``.

    ``files`` maps container paths to host paths that appear there at run time
    (what ``%files``/``%post`` would have put in the image). ``base_env`` adds env
    files the base image brings, e.g. ``{"10-docker2singularity.sh": "export PATH=..."}``
    for a Docker ``ENV`` (what internal/pkg/build/sources/conveyorPacker_oci.go writes
    from the image config).

    Without ``root``, a new temporary directory is used: ``with unpack(text) as image:``
    removes it at the end (or call ``image.close()``).
    """
    if text.startswith("\ufeff"):
        # Apptainer rejects it (the first header key is read with the BOM): raise
        # parse's error, which checks this before anything else, so that parse, lint
        # and try say the same.
        parse(text, file)
    stages = split_stages(text, file)
    chosen = stages[-1]
    if stage is not None:
        named = [s for s in stages if s.header.get("stage") == stage]
        if not named:
            raise DefError(f"no stage {stage!r} in this definition", file=file)
        chosen = named[0]
    for cpath in files or {}:
        if not cpath.startswith("/") or cpath.rstrip("/") in ("", "/.singularity.d", "/scif"):
            raise DefError(f"cannot map {cpath!r} into the image")
    owned = root is None
    root_path = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="defbuilder-"))
    try:
        _unpack_into(root_path, text, chosen, base_env, file)
    except BaseException:
        if owned:
            shutil.rmtree(root_path, ignore_errors=True)
        raise
    mapped = {k.rstrip("/"): Path(v) for k, v in (files or {}).items()}
    return Image(root_path, chosen, mapped, owned=owned)


def _unpack_into(
    root_path: Path,
    text: str,
    chosen: RawStage,
    base_env: Mapping[str, str] | None,
    file: str | None,
) -> None:
    meta = root_path / ".singularity.d"
    (meta / "env").mkdir(parents=True, exist_ok=True)
    (meta / "libs").mkdir(exist_ok=True)
    _write(meta / "env" / "01-base.sh", "#!/bin/sh\n")
    for name, content in (base_env or {}).items():
        if "/" in name or not name.endswith(".sh"):
            raise DefError(f"base env file {name!r} must be a plain *.sh name")
        _write(meta / "env" / name, content)
    env_text = _ENV_TEMPLATE
    env = chosen.section("environment")
    if env is not None:
        env_text += "\n" + env.body + "\n"  # insertEnvScript appends to the template
    _write(meta / "env" / "90-environment.sh", env_text)
    _write(meta / "env" / "95-apps.sh", _APPS_ENV)
    _write(meta / "env" / "99-base.sh", _LIBS_ENV)
    _write(meta / "runscript", _DEFAULT_RUNSCRIPT)
    _write(meta / "startscript", "#!/bin/sh\n")
    for name in SHEBANG_SECTIONS:
        sec = chosen.section(name)
        if sec is not None and sec.body:
            _write(meta / name, handle_shebang(sec))
    help_ = chosen.section("help")
    if help_ is not None:
        _write(meta / "runscript.help", help_.body, 0o644)
    labels = chosen.section("labels")
    _write(
        meta / "labels.json",
        json.dumps(get_labels(labels.body) if labels else {}, indent="\t", sort_keys=True),
        0o644,
    )
    _write(meta / "Singularity", text, 0o644)
    _write_apps(chosen, root_path, file)


# --- signals -------------------------------------------------------------------------


class _Forwarder:
    """Signals for ``defbuilder try``, in three phases. Before the program starts, a
    signal ends defbuilder cleanly (``SystemExit(128+N)``, so temporary files are
    removed). While it is being started, signals are held and delivered as soon as it
    exists. Once it runs, each signal is passed on to it, as Apptainer's starter passes
    signals to the container's process (``internal/app/starter/master_linux.go``,
    ``Master``/``MonitorContainer``), and defbuilder waits for it."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.starting = False
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: object) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):  # gone: wait() tells how it ended
                self.proc.send_signal(signum)
        elif self.starting:
            self.pending.append(signum)
        else:
            raise SystemExit(128 + signum)

    def __enter__(self) -> _Forwarder:
        import signal

        for name in self.SIGNALS:
            num = getattr(signal, name)
            self.previous[num] = signal.signal(num, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        import signal

        for num, handler in self.previous.items():
            signal.signal(num, handler)

    def run(self, launch: Callable[[], subprocess.Popen[bytes]]) -> int:
        """Start the program with ``launch``, then wait for it, forwarding signals; its
        exit status, or 128+N when it died of signal N (what a shell reports)."""
        self.starting = True
        try:
            proc = launch()
            self.proc = proc
        finally:
            self.starting = False
        for signum in self.pending:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)
        status = proc.wait()
        return 128 - status if status < 0 else status


def forward_signals() -> _Forwarder:
    """``with forward_signals() as fw: ...; return fw.run(lambda: image.popen(...))``."""
    return _Forwarder()
