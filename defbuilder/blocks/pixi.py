"""``PixiEnvironment``: a pixi environment installed in a build stage, copied to a slim one.

Build stage (``build()``): ``%files`` puts the manifest and lock in ``workdir``;
``%post`` runs ``pixi install --locked`` (or ``--frozen``) with
``CONDA_OVERRIDE_CUDA`` derived from the CUDA version, then turns
``pixi shell-hook --shell bash`` into a **static POSIX-sh activation file**: the
hook is sourced once, at build time, in bash (so bash-only ``etc/conda/activate.d``
scripts work) and every variable it sets is written as a quoted ``export``;
``PATH``-like variables are written as entries prepended to the *runtime* value,
so whatever the final base image puts on ``PATH`` stays (the hook itself writes
the build-time ``PATH`` literally: pixi-notes.md §1). No ``pixi()`` function, no
``PS1``, no completion loop, and no pixi process at container start. A separate
``entrypoint.sh`` (``. activate.sh; exec "$@"``) gives Docker parity, so nothing
has to be ``sed``-ed before it can be sourced.

Final stage (``final()``): ``%files from <build>`` copies the environment at the
identical absolute path (pixi envs are not relocatable), the activation file, the
entrypoint, the manifest's ``[activation] scripts``, and, only with
``keep_pixi=True``, the manifest, lock and ``.pixi`` marker files ``pixi run``
needs; the package cache stays behind. ``%environment`` sources the activation
file, so ``run``, ``exec``, ``shell``, ``test`` and ``instance start`` all see the
environment, and a ``.pixi`` project in the caller's working directory cannot take
over (pixi#5294: no pixi runs at start, so nothing searches the CWD).

>>> env = PixiEnvironment(environment="gpu", cuda="12.9")
>>> env.prefix, env.activate_path
('/app/.pixi/envs/gpu', '/app/activate.sh')
>>> [f.src for f in env.final().files[0].entries]
['/app/.pixi/envs/gpu', '/app/activate.sh', '/app/entrypoint.sh']
"""

from __future__ import annotations

import posixpath
from importlib import resources
from typing import TYPE_CHECKING, Literal

import attrs

from ..errors import DefError
from ..model import Environment, FileEntry, Files, Sections
from ..render import sh_quote
from .bases import Base

if TYPE_CHECKING:
    from packaging.version import Version

__all__ = ["PixiEnvironment", "static_activation"]


def _generator() -> str:
    return (
        (resources.files("defbuilder") / "templates" / "pixi_static_activation.bash")
        .read_text(encoding="utf-8")
        .rstrip("\n")
    )


def static_activation(
    environment: str, manifest: str, activate: str, keep_pixi_exe: bool = False
) -> str:
    """``%post`` lines that turn an installed pixi environment's activation into a static
    POSIX-sh file at ``activate`` (see the module doc). For builds that install pixi
    environments themselves (e.g. converted Dockerfiles).

    >>> text = static_activation("prod", "/app/pixi.toml", "/app/activate.sh")
    >>> text.splitlines()[0].split(" > ")
    ['pixi shell-hook --manifest-path /app/pixi.toml --environment prod --shell bash --frozen \
--change-ps1 false', '/tmp/defbuilder-pixi-hook.bash']
    """
    from ..templating import render_template

    return render_template(
        "pixi_activation.sh.j2",
        manifest=manifest,
        environment=_env_name(environment),
        generator=_generator(),
        activate=activate,
        keep_pixi_exe=1 if keep_pixi_exe else 0,
    )


def _cuda_major(value: Base | Version | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, Base):
        return value.conda_override_cuda
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(str(value)).major)
    except InvalidVersion:
        raise DefError(f"CUDA version {value!r} is not a version") from None


def _env_name(value: str) -> str:
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise DefError(f"pixi environment name {value!r} is invalid")
    return value


@attrs.frozen
class PixiEnvironment:
    """A pixi environment for an Apptainer image (see the module doc).

    ``manifest``/``lock``/``activation_scripts`` are host paths relative to the build
    directory (where ``apptainer build`` runs); ``workdir`` is where the workspace
    lives in the image; ``cuda`` is a CUDA version or a ``Base`` from ``cuda_base``.
    """

    manifest: str = "pixi.toml"
    lock: str = "pixi.lock"
    environment: str = attrs.field(default="default", converter=_env_name)
    workdir: str = "/app"
    cuda: Base | Version | str | None = None
    lock_mode: Literal["locked", "frozen"] = "locked"
    activation_scripts: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    keep_pixi: bool = False

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

    def post_script(self) -> str:
        """The build stage's ``%post`` body (POSIX sh; Apptainer runs it as /bin/sh -ex)."""
        from ..templating import render_template

        return render_template(
            "pixi_post.sh.j2",
            cuda=self.conda_override_cuda,
            workdir=self.workdir,
            manifest=self.manifest_path,
            environment=self.environment,
            lock_mode=self.lock_mode,
            generator=_generator(),
            activate=self.activate_path,
            entrypoint=self.entrypoint_path,
            keep_pixi_exe=1 if self.keep_pixi else 0,
        )

    def build(self) -> Sections:
        """Sections for the build stage: copy the workspace in, install, make activation."""
        entries = [
            FileEntry(self.manifest, self.manifest_path),
            FileEntry(self.lock, posixpath.join(self.workdir, posixpath.basename(self.lock))),
        ]
        base = posixpath.dirname(self.manifest)
        entries += [
            FileEntry(posixpath.join(base, s) if base else s, posixpath.join(self.workdir, s))
            for s in self.activation_scripts
        ]
        return Sections(files=Files(entries), post=self.post_script())

    def final(self, from_stage: str = "build") -> Sections:
        """Sections for the final stage: copy from ``from_stage``, activate everywhere."""
        paths = [self.prefix, self.activate_path, self.entrypoint_path]
        paths += [posixpath.join(self.workdir, s) for s in self.activation_scripts]
        if self.keep_pixi:
            paths += [
                self.manifest_path,
                posixpath.join(self.workdir, posixpath.basename(self.lock)),
                posixpath.join(self.workdir, ".pixi", ".gitignore"),
                posixpath.join(self.workdir, ".pixi", ".condapackageignore"),
            ]
        return Sections(
            files=Files(paths, from_stage=from_stage),
            environment=Environment(f". {sh_quote(self.activate_path)}"),
        )
