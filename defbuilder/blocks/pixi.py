"""``PixiEnvironment``: a pixi environment installed in a build stage, copied to a slim one.

Build stage (``build()``): ``%files`` puts the manifest (and the lock, when there is
one) in ``workdir``; ``%post`` runs ``pixi install --locked`` (or ``--frozen``, or
unlocked when there is no lock yet: see below) with ``CONDA_OVERRIDE_CUDA`` derived
from the CUDA version, then turns ``pixi shell-hook --shell bash`` into a **static
POSIX-sh activation file**: the hook is sourced once, at build time, in bash (so
bash-only ``etc/conda/activate.d`` scripts work) and every variable it sets is
written as a quoted ``export``; ``PATH``-like variables are written as entries
prepended to the *runtime* value, so whatever the final base image puts on ``PATH``
stays (the hook itself writes the build-time ``PATH`` literally). No ``pixi()``
function, no ``PS1``, no completion loop, and no pixi process at container start. A
separate ``entrypoint.sh`` (``. activate.sh; exec "$@"``) gives Docker parity.

The activation file also isolates the image from the host: ``PYTHONNOUSERSITE=1``,
because Apptainer binds ``$HOME`` and the host's ``~/.local`` site-packages would
shadow the environment's packages (``user_site=True`` opts out); and, only where
``$HOME`` cannot be written, ``XDG_CACHE_HOME=${TMPDIR:-/tmp}/.cache`` for the
caches pip, uv, pixi and torch write (docs/blocks.md says why not always).

Lock files. ``lock`` is a host path; a relative one resolves against the recipe's
directory (``defbuilder render/build/lint``; the working directory for a script run
on its own), as ``apptainer build`` under ``defbuilder build`` resolves ``%files``. When
it exists at render time the install is ``--locked`` (``lock_mode="frozen"``:
``--frozen``). When it does not (or ``lock=None``), the install solves the
environment (no ``--locked``), a ``PixiLockWarning`` names the missing file, the
final image keeps the lock pixi wrote (``<workdir>/pixi.lock``), and
``defbuilder build`` copies it back beside the manifest (``hand_back_locks``).

``prune=True`` removes from the environment, before the final copy, what a run-time
image does not need (static libraries, documentation, pip/setuptools/wheel byte
code); ``prune="strict"`` also removes headers and CMake/pkg-config files, which
breaks ``torch.compile`` and building C extensions. ``%post`` prints the size before
and after.

Final stage (``final()``): ``%files from <build>`` copies the environment at the
identical absolute path (pixi envs are not relocatable), the activation file, the
entrypoint, the manifest's ``[activation] scripts``, the solved lock of an unlocked
install and, only with ``keep_pixi=True``, what ``pixi run`` needs (manifest, lock,
``.gitignore``, ``.pixi/.gitignore``, ``.pixi/.condapackageignore``, as CHTC's
template copies, and the pixi binary); the package cache stays behind.
``%environment`` sources the activation file, so ``run``, ``exec``, ``shell``,
``test`` and ``instance start`` all see the environment, and a ``.pixi`` project in
the caller's working directory cannot take over (prefix-dev/pixi#5294: no pixi runs
at start; ``run_argv`` passes ``--manifest-path`` for ``pixi run``).

Shell text is built here with ``sh_quote`` (no template engine on the render path);
the bash generator is static package data.

>>> env = PixiEnvironment(environment="gpu", cuda="12.9", lock=None)
>>> env.prefix, env.activate_path
('/app/.pixi/envs/gpu', '/app/activate.sh')
>>> [f.src for f in env.final().files[0].entries]
['/app/.pixi/envs/gpu', '/app/activate.sh', '/app/entrypoint.sh', '/app/pixi.lock']
"""

from __future__ import annotations

import os
import posixpath
import sys
from typing import TYPE_CHECKING, Literal

import attrs

from ..errors import DefError, caller_origin, is_user_file
from ..model import Environment, FileEntry, Files, Sections
from ..render import sh_quote
from .bases import Base

if TYPE_CHECKING:
    from collections.abc import Iterable

    from packaging.version import Version

__all__ = [
    "PixiEnvironment",
    "PixiLockWarning",
    "find_unlocked_installs",
    "hand_back_locks",
    "prune_script",
    "static_activation",
    "unlocked_installs",
]

_HOOK = "/tmp/defbuilder-pixi-hook.bash"
_GEN = "/tmp/defbuilder-static-activation.bash"
_EOF = "DEFBUILDER_EOF"

#: What ``prune=True`` removes under the environment's prefix: globs for ``find
#: -name`` (files), and directories relative to the prefix.
PRUNE_FILES = ("*.a",)
PRUNE_DIRS = ("share/doc", "share/man", "share/info", "share/gtk-doc", "pkgs")
#: Build tools whose ``__pycache__`` goes (nothing imports them at run time).
PRUNE_BYTECODE_OF = ("pip", "setuptools", "wheel")
#: ``prune="strict"`` also removes these: C/C++ headers and build-system files.
#: torch.compile (Inductor and Triton compile C launchers against ``Python.h`` and
#: the CUDA headers), ``torch.utils.cpp_extension`` and any pip install that
#: compiles C code need them.
PRUNE_STRICT_DIRS = ("include", "targets/*/include", "lib/cmake", "lib/pkgconfig")


class PixiLockWarning(UserWarning):
    """A pixi lock file that does not exist at render time: the install is unlocked."""


def _generator() -> str:
    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "templates",
        "pixi_static_activation.bash",
    )
    with open(path, encoding="utf-8") as fh:
        return fh.read().rstrip("\n")


#: Appended to the activation file (POSIX sh). Lines for user_site=False first.
_NO_USER_SITE = """\
# Apptainer binds $HOME, so the host's ~/.local site-packages would shadow the
# environment's packages: https://docs.python.org/3/using/cmdline.html#envvar-PYTHONNOUSERSITE
export PYTHONNOUSERSITE=1"""
_CACHE = """\
# pip, uv, pixi and torch cache under $XDG_CACHE_HOME (default ~/.cache). Where that
# cannot be written (--no-home, a read-only image), use a writable temporary place.
if [ -z "${XDG_CACHE_HOME:-}" ]; then
    if [ -d "${HOME:-/nonexistent}/.cache" ]; then
        [ -w "$HOME/.cache" ] || export XDG_CACHE_HOME="${TMPDIR:-/tmp}/.cache"
    elif [ ! -w "${HOME:-/nonexistent}" ]; then
        export XDG_CACHE_HOME="${TMPDIR:-/tmp}/.cache"
    fi
fi"""


def static_activation(
    environment: str,
    manifest: str,
    activate: str,
    keep_pixi_exe: bool = False,
    *,
    user_site: bool = False,
) -> str:
    """``%post`` lines that turn an installed pixi environment's activation into a static
    POSIX-sh file at ``activate`` (see the module doc). For builds that install pixi
    environments themselves (e.g. converted Dockerfiles).

    >>> text = static_activation("prod", "/app/pixi.toml", "/app/activate.sh")
    >>> text.splitlines()[0].split(" > ")
    ['pixi shell-hook --manifest-path /app/pixi.toml --environment prod --shell bash --frozen \
--change-ps1 false', '/tmp/defbuilder-pixi-hook.bash']
    """
    q = sh_quote
    extra = ([] if user_site else [_NO_USER_SITE]) + [_CACHE]
    return "\n".join(
        [
            f"pixi shell-hook --manifest-path {q(manifest)} --environment "
            f"{q(_env_name(environment))} --shell bash --frozen --change-ps1 false > {_HOOK}",
            f"cat > {_GEN} <<'{_EOF}'",
            _generator(),
            _EOF,
            f"bash {_GEN} {_HOOK} {q(activate)} {1 if keep_pixi_exe else 0}",
            f"rm -f {_GEN} {_HOOK}",
            f"cat >> {q(activate)} <<'{_EOF}'",
            *extra,
            _EOF,
        ]
    )


def prune_script(prefix: str, level: bool | Literal["strict"] = True) -> str:
    """``%post`` lines that remove what a run-time image does not need from the
    environment at ``prefix``, printing its size before and after (see the module doc).

    >>> print(prune_script("/env").splitlines()[2])
    find /env -name '*.a' -type f -exec rm -f {} +
    """
    q = sh_quote(prefix)
    dirs = [*PRUNE_DIRS, *(PRUNE_STRICT_DIRS if level == "strict" else ())]
    paths = " -o ".join(f"-path '*/site-packages/{n}/*'" for n in PRUNE_BYTECODE_OF)
    what = "static libraries, docs, build-tool byte code"
    if level == "strict":
        what += ", headers (torch.compile and C extensions cannot build)"
    lines = [
        f"# prune={level!r}: remove {what}",
        f'echo "pixi environment before pruning: $(du -sh {q} | cut -f1)"',
        *(f"find {q} -name {sh_quote(g)} -type f -exec rm -f {{}} +" for g in PRUNE_FILES),
        # a glob in a directory (targets/*/include) expands here, unquoted
        "rm -rf " + " ".join(f"{q}/{d}" if "*" in d else sh_quote(f"{prefix}/{d}") for d in dirs),
        f"find {q}/lib -type d -name __pycache__ \\( {paths} \\) -prune -exec rm -rf {{}} +",
        f'echo "pixi environment after pruning: $(du -sh {q} | cut -f1)"',
    ]
    return "\n".join(lines)


def _cuda_major(value: Base | Version | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, Base):
        return value.conda_override_cuda
    text = str(value)
    major = text.split(".")[0]
    if not major.isdigit() or not all(p.isdigit() for p in text.split(".")):
        raise DefError(f"CUDA version {value!r} is not a version")
    return str(int(major))


def _env_name(value: str) -> str:
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise DefError(f"pixi environment name {value!r} is invalid")
    return value


def _scripts(value: Iterable[str]) -> tuple[str, ...]:
    # a function, not the `tuple` builtin: attrs inspects a converter's signature, and
    # that of a builtin costs the CLI milliseconds (inspect parses its text signature)
    return tuple(value)


def _prune(value: object) -> bool | Literal["strict"]:
    if isinstance(value, bool):
        return value
    if value == "strict":
        return "strict"
    raise DefError(f"prune must be True, False or 'strict', not {value!r}")


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it is below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _recipe_dir() -> str:
    """Where relative host paths resolve: the directory of the recipe that
    ``defbuilder.loader`` is running (the outermost user code below it, so a helper
    module that builds the environment does not count), as ``defbuilder build`` runs
    ``apptainer build`` there; without the loader (a script of your own), the working
    directory, where ``apptainer build`` of its output would resolve ``%files``."""
    from .. import loader

    loader_file = os.path.abspath(loader.__file__)
    frame = sys._getframe(1)
    found = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if os.path.abspath(filename) == loader_file:
            if found is not None:
                return os.path.dirname(os.path.abspath(found))
        elif is_user_file(filename):
            found = filename
        frame = frame.f_back  # type: ignore[assignment]
    return os.getcwd()


@attrs.frozen
class PixiEnvironment:
    """A pixi environment for an Apptainer image (see the module doc).

    ``manifest``/``lock``/``activation_scripts`` are host paths relative to the
    recipe's directory (where ``apptainer build`` runs); ``workdir`` is where the
    workspace lives in the image; ``cuda`` is a CUDA version or a ``Base`` from
    ``cuda_base``; ``lock=None`` installs unlocked on purpose (no warning).
    """

    manifest: str = "pixi.toml"
    lock: str | None = "pixi.lock"
    environment: str = attrs.field(default="default", converter=_env_name)
    workdir: str = "/app"
    cuda: Base | Version | str | None = None
    lock_mode: Literal["locked", "frozen"] = "locked"
    activation_scripts: tuple[str, ...] = attrs.field(default=(), converter=_scripts)
    keep_pixi: bool = False
    #: Let the host's ``~/.local`` site-packages be imported (no ``PYTHONNOUSERSITE``).
    user_site: bool = False
    prune: bool | Literal["strict"] = attrs.field(default=False, converter=_prune)

    def __attrs_post_init__(self) -> None:
        if not self.workdir.startswith("/"):
            raise DefError(f"workdir {self.workdir!r} must be an absolute path")
        if self.lock_mode not in ("locked", "frozen"):
            raise DefError(f"lock_mode must be 'locked' or 'frozen', not {self.lock_mode!r}")
        for script in self.activation_scripts:
            if script.startswith("/") or ".." in script.split("/"):
                raise DefError(
                    f"activation script {script!r} must be relative to the manifest's directory"
                )
        _cuda_major(self.cuda)

    @property
    def prefix(self) -> str:
        """Where the environment lives, in both stages."""
        return posixpath.join(self.workdir, ".pixi", "envs", self.environment)

    @property
    def manifest_path(self) -> str:
        return posixpath.join(self.workdir, posixpath.basename(self.manifest))

    @property
    def lock_path(self) -> str:
        """Where the lock is in the image: beside the manifest, named as pixi names it."""
        return posixpath.join(self.workdir, "pixi.lock")

    @property
    def activate_path(self) -> str:
        """The static POSIX-sh activation file (source it)."""
        return posixpath.join(self.workdir, "activate.sh")

    @property
    def entrypoint_path(self) -> str:
        """``activate.sh`` + ``exec "$@"``, for Docker-style use."""
        return posixpath.join(self.workdir, "entrypoint.sh")

    @property
    def conda_override_cuda(self) -> str | None:
        return _cuda_major(self.cuda)

    def locked(self) -> bool:
        """Whether the install uses the lock: ``lock`` is set and exists now (a relative
        path resolved against the recipe's directory)."""
        if self.lock is None:
            return False
        return os.path.isfile(os.path.join(_recipe_dir(), self.lock))

    def run_argv(self, *command: str) -> list[str]:
        """``pixi run`` of ``command`` in this environment, for images made with
        ``keep_pixi=True``: ``--manifest-path`` so that a pixi project in the caller's
        working directory cannot take over (prefix-dev/pixi#5294), ``--frozen`` so
        that nothing is solved or written in a read-only image.

        >>> PixiEnvironment(lock=None).run_argv("python", "-V")[:4]
        ['pixi', 'run', '--manifest-path', '/app/pixi.toml']
        """
        return [
            "pixi",
            "run",
            "--manifest-path",
            self.manifest_path,
            "--environment",
            self.environment,
            "--frozen",
            *command,
        ]

    def _warn_unlocked(self) -> None:
        import warnings

        assert self.lock is not None
        where = caller_origin()
        missing = os.path.join(_recipe_dir(), self.lock)
        warnings.warn_explicit(
            f"no lock file {_shown(missing)}: the build stage installs unlocked "
            f"(pixi solves the environment); `defbuilder build` copies the solved lock "
            f"back beside {self.manifest}; commit it",
            PixiLockWarning,
            _shown(where.file) if where.file else "<recipe>",
            where.line or 0,
        )

    def post_script(self, locked: bool | None = None) -> str:
        """The build stage's ``%post`` body (POSIX sh; Apptainer runs it as /bin/sh -ex).
        ``locked``: whether the lock exists (default: look now, see ``locked()``)."""
        if locked is None:
            locked = self.locked()
        q = sh_quote
        lines = []
        cuda = self.conda_override_cuda
        if cuda:
            lines += [
                "# The solver needs __cuda on a build host without a GPU (CONDA_OVERRIDE_CUDA:",
                "# https://pixi.prefix.dev/latest/workspace/system_requirements/).",
                f"export CONDA_OVERRIDE_CUDA={q(cuda)}",
            ]
        lines.append(f"cd {q(self.workdir)} || exit 1")
        install = (
            f"pixi install --manifest-path {q(self.manifest_path)} --environment "
            f"{q(self.environment)}"
        )
        if locked:
            lines.append(f"{install} --{self.lock_mode}")
        else:
            lines += [
                "# No lock file at render time: pixi solves the environment and writes",
                f"# {self.lock_path}, which the final image keeps (commit it).",
                install,
            ]
        if self.keep_pixi:
            gitignore = posixpath.join(self.workdir, ".gitignore")
            lines += [
                "# pixi run in the final image needs these (as CHTC's pixi template copies)",
                f"[ -e {q(gitignore)} ] || printf '%s\\n' '.pixi/*' '!.pixi/config.toml'"
                f" > {q(gitignore)}",
                f"mkdir -p {q(posixpath.join(self.workdir, '.pixi'))}",
                f"[ -e {q(self._pixi_file('.gitignore'))} ] || printf '%s\\n' '*'"
                f" '!config.toml' > {q(self._pixi_file('.gitignore'))}",
                f"[ -e {q(self._pixi_file('.condapackageignore'))} ] || printf '%s\\n'"
                f" '.pixi' '!.pixi/config.toml' > {q(self._pixi_file('.condapackageignore'))}",
                '[ -x /usr/local/bin/pixi ] || cp "$(command -v pixi)" /usr/local/bin/pixi',
            ]
        lines.append(
            static_activation(
                self.environment,
                self.manifest_path,
                self.activate_path,
                self.keep_pixi,
                user_site=self.user_site,
            )
        )
        entry = q(self.entrypoint_path)
        lines += [
            "printf '%s\\n' '#!/bin/sh' '# Docker-style entrypoint: activate the pixi "
            "environment, run the command.' "
            + q(". " + q(self.activate_path))
            + f" 'exec \"$@\"' > {entry}",
            f"chmod 0755 {entry}",
        ]
        if self.prune:
            lines.append(prune_script(self.prefix, self.prune))
        return "\n".join(lines)

    def _pixi_file(self, name: str) -> str:
        return posixpath.join(self.workdir, ".pixi", name)

    def build(self) -> Sections:
        """Sections for the build stage: copy the workspace in, install, make activation.
        Warns (``PixiLockWarning``) when ``lock`` is set but missing."""
        locked = self.locked()
        if self.lock is not None and not locked:
            self._warn_unlocked()
        entries = [FileEntry(self.manifest, self.manifest_path)]
        if locked:
            assert self.lock is not None
            entries.append(FileEntry(self.lock, self.lock_path))
        base = posixpath.dirname(self.manifest)
        if self.keep_pixi and os.path.isfile(os.path.join(_recipe_dir(), base, ".gitignore")):
            entries.append(
                FileEntry(
                    posixpath.join(base, ".gitignore"), posixpath.join(self.workdir, ".gitignore")
                )
            )
        entries += [
            FileEntry(posixpath.join(base, s) if base else s, posixpath.join(self.workdir, s))
            for s in self.activation_scripts
        ]
        return Sections(files=Files(entries), post=self.post_script(locked))

    def final(self, from_stage: str = "build") -> Sections:
        """Sections for the final stage: copy from ``from_stage``, activate everywhere."""
        paths = [self.prefix, self.activate_path, self.entrypoint_path]
        paths += [posixpath.join(self.workdir, s) for s in self.activation_scripts]
        if self.keep_pixi:
            paths += [
                self.manifest_path,
                self.lock_path,
                posixpath.join(self.workdir, ".gitignore"),
                self._pixi_file(".gitignore"),
                self._pixi_file(".condapackageignore"),
                "/usr/local/bin/pixi",
            ]
        elif not self.locked():
            paths.append(self.lock_path)  # the lock the build solved, handed back by build
        return Sections(
            files=Files(paths, from_stage=from_stage),
            environment=Environment(f". {sh_quote(self.activate_path)}"),
        )


def find_unlocked_installs(script: str) -> list[tuple[int, str | None]]:
    """Each ``pixi install`` in a shell script that neither ``--locked``/``--frozen`` nor
    ``PIXI_LOCKED``/``PIXI_FROZEN`` (set before it, or on its line) constrains: it
    solves and writes the lock. (0-based line, its ``--manifest-path`` or None.)
    For lint rules and policies as well as ``hand_back_locks``.

    >>> find_unlocked_installs("cd /app\\npixi install -e gpu\\nPIXI_FROZEN=1 pixi install")
    [(1, None)]
    """
    import shlex

    found: list[tuple[int, str | None]] = []
    constrained = False
    for n, line in enumerate(script.splitlines()):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words[:1] == ["export"]:
            words = words[1:]
        assigned = []
        while words and "=" in words[0] and words[0].split("=", 1)[0].isidentifier():
            assigned.append(words.pop(0).split("=", 1))
        env = {k for k, v in assigned if k in ("PIXI_LOCKED", "PIXI_FROZEN") and v}
        if not words:  # plain assignments (with or without export) last for the script
            constrained = constrained or bool(env)
            continue
        if words[:2] != ["pixi", "install"]:
            continue
        if constrained or env or {"--locked", "--frozen"} & set(words):
            continue
        manifest = None
        for flag in ("--manifest-path", "-m"):
            if flag in words[:-1]:
                manifest = words[words.index(flag) + 1]
        found.append((n, manifest))
    return found


def unlocked_installs(post: str) -> list[str]:
    """The ``--manifest-path`` of each unlocked ``pixi install`` in a ``%post`` body
    (see ``find_unlocked_installs``) that names one.

    >>> unlocked_installs("cd /app\\npixi install --manifest-path /app/pixi.toml -e gpu")
    ['/app/pixi.toml']
    >>> unlocked_installs("pixi install --manifest-path /app/pixi.toml --locked")
    []
    """
    return [m for _n, m in find_unlocked_installs(post) if m is not None]


def _create(path: str, data: bytes) -> bool:
    """Write ``path`` whole or not at all, never over an existing file (a temporary
    file, then a hard link, which fails if ``path`` exists)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".defbuilder-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def hand_back_locks(binary: str, image: str, def_text: str, recipe_path: str) -> list[str]:
    """After ``apptainer build`` of ``def_text``: for each unlocked ``pixi install``, copy
    the lock it solved out of ``image`` (``BINARY exec IMAGE cat <lock>``) to the host,
    beside the manifest the build copied in, unless a lock is already there. Prints
    what it did on stderr and returns the host paths written.

    Users of containerised pixi builds ask for exactly this (prefix-dev/pixi#634).
    """
    import subprocess

    from ..parse import parse

    recipe_dir = os.path.dirname(os.path.abspath(recipe_path))
    written = []
    for stage in parse(def_text).stages:
        for manifest in unlocked_installs(stage.post.body):
            sources = [
                e.src
                for files in stage.files
                if files.from_stage is None
                for e in files.entries
                if e.dst == manifest
            ]
            if not sources:
                continue
            host = os.path.join(recipe_dir, os.path.dirname(sources[0]), "pixi.lock")
            if os.path.exists(host):
                continue
            lock = posixpath.join(posixpath.dirname(manifest), "pixi.lock")
            res = subprocess.run([binary, "exec", image, "cat", lock], capture_output=True)
            if res.returncode != 0 or not res.stdout:
                print(
                    f"defbuilder: warning: could not read the solved {lock} from {image}: "
                    + (res.stderr.decode(errors="replace").strip() or "empty"),
                    file=sys.stderr,
                )
                continue
            if not _create(host, res.stdout):
                continue
            print(
                f"defbuilder: wrote {os.path.relpath(host)} (the lock the build solved); "
                "commit it, and later builds install --locked",
                file=sys.stderr,
            )
            written.append(host)
    return written
