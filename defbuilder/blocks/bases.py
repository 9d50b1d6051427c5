"""Base images: ``nvidia/cuda`` and ``ghcr.io/prefix-dev/pixi``, versions checked.

One CUDA version parameter decides both the image tag and the
``CONDA_OVERRIDE_CUDA`` value a pixi install needs on a GPU-less build host
(``Base.conda_override_cuda``), so the two can never disagree.

Tags follow the publishers' schemes:

* nvidia/cuda: ``<X.Y.Z>-<flavor>-<os>``, e.g. ``12.9.1-base-ubuntu24.04``
  (hub.docker.com/r/nvidia/cuda); flavors ``base``, ``runtime``, ``devel``,
  ``cudnn-runtime``, ``cudnn-devel``.
* prefix-dev/pixi: ``[<pixi version>-]<codename>[-cuda-<X.Y.Z>]``, e.g. ``noble``,
  ``0.76.1-noble-cuda-12.9.1`` (prefix-dev/pixi-docker ``.github/workflows/build.yml``,
  see ../shared/pixi-notes.md §6).

>>> b = cuda_base("12.9", os="noble")
>>> b.image, b.conda_override_cuda
('nvidia/cuda:12.9.1-base-ubuntu24.04', '12')
>>> pixi_base("noble", cuda="12.9").image
'ghcr.io/prefix-dev/pixi:noble-cuda-12.9.1'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..errors import DefError
from ..model import Header

if TYPE_CHECKING:
    from packaging.version import Version

__all__ = ["Base", "cuda_base", "pixi_base"]

#: Ubuntu codename -> the suffix nvidia/cuda uses.
_OS = {
    "noble": "ubuntu24.04",
    "jammy": "ubuntu22.04",
    "focal": "ubuntu20.04",
}
_CUDA_FLAVORS = ("base", "runtime", "devel", "cudnn-runtime", "cudnn-devel")
#: Latest patch release of each CUDA minor (nvidia/cuda tags), for "12.9" -> 12.9.1.
_CUDA_PATCH = {
    "11.8": "11.8.0",
    "12.0": "12.0.1",
    "12.1": "12.1.1",
    "12.2": "12.2.2",
    "12.3": "12.3.2",
    "12.4": "12.4.1",
    "12.5": "12.5.1",
    "12.6": "12.6.3",
    "12.8": "12.8.1",
    "12.9": "12.9.1",
    "13.0": "13.0.0",
}
#: Codenames prefix-dev/pixi-docker publishes, and those with CUDA variants.
_PIXI_TAGS = (
    "noble",
    "jammy",
    "focal",
    "plucky",
    "bookworm",
    "bookworm-slim",
    "bullseye",
    "bullseye-slim",
    "trixie",
    "trixie-slim",
)
_PIXI_CUDA_OS = ("noble", "jammy", "focal")


def _version(text: str | Version, what: str) -> Version:
    from packaging.version import InvalidVersion, Version

    if isinstance(text, Version):
        return text
    try:
        return Version(str(text))
    except InvalidVersion:
        raise DefError(f"{what} {text!r} is not a version") from None


def _check_digest(digest: str | None) -> str:
    if digest is None:
        return ""
    hexpart = digest.removeprefix("sha256:")
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise DefError(f"digest {digest!r} is not sha256:<64 lowercase hex digits>")
    return "@sha256:" + hexpart


def _full_cuda(cuda: str | Version) -> Version:
    v = _version(cuda, "CUDA version")
    if len(v.release) == 3:
        return v
    key = f"{v.major}.{v.minor}"
    if len(v.release) != 2 or key not in _CUDA_PATCH:
        raise DefError(
            f"CUDA {cuda}: give the full X.Y.Z version (known minors: "
            + ", ".join(_CUDA_PATCH)
            + ")"
        )
    return _version(_CUDA_PATCH[key], "CUDA version")


@attrs.frozen
class Base:
    """A base image reference, and the CUDA version it carries (if any)."""

    image: str
    cuda: Version | None = None

    @property
    def conda_override_cuda(self) -> str | None:
        """``CONDA_OVERRIDE_CUDA`` for pixi/conda solves: the CUDA major, e.g. ``"12"``."""
        return None if self.cuda is None else str(self.cuda.major)

    def header(self, stage: str | None = None, **kw: Any) -> Header:
        """``Bootstrap: docker`` with this image."""
        return Header.docker(self.image, stage=stage, **kw)


def cuda_base(
    cuda: str | Version = "12.9", os: str = "noble", flavor: str = "base", digest: str | None = None
) -> Base:
    """``nvidia/cuda:<X.Y.Z>-<flavor>-<os>[@sha256:...]``.

    >>> cuda_base("12.8.1", flavor="cudnn-runtime").image
    'nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04'
    >>> cuda_base("12.9", flavor="huge")
    Traceback (most recent call last):
    ...
    defbuilder.errors.DefError: ...unknown flavor 'huge'...
    """
    if flavor not in _CUDA_FLAVORS:
        raise DefError(f"unknown flavor {flavor!r}; nvidia/cuda has {', '.join(_CUDA_FLAVORS)}")
    suffix = _OS.get(os, os)
    if suffix not in _OS.values() and not suffix.startswith(("ubi", "rockylinux")):
        raise DefError(f"unknown OS {os!r}; use one of {', '.join(_OS)} or a tag suffix")
    full = _full_cuda(cuda)
    return Base(f"nvidia/cuda:{full}-{flavor}-{suffix}{_check_digest(digest)}", full)


def pixi_base(
    os: str = "noble",
    *,
    version: str | Version | None = None,
    cuda: str | Version | None = None,
    digest: str | None = None,
) -> Base:
    """``ghcr.io/prefix-dev/pixi:[<version>-]<os>[-cuda-<X.Y.Z>][@sha256:...]``.

    >>> pixi_base("jammy", version="0.76.1").image
    'ghcr.io/prefix-dev/pixi:0.76.1-jammy'
    """
    if os not in _PIXI_TAGS:
        raise DefError(f"prefix-dev/pixi has no {os!r} tag; known: {', '.join(_PIXI_TAGS)}")
    tag = os
    full = None
    if cuda is not None:
        if os not in _PIXI_CUDA_OS:
            raise DefError(
                f"prefix-dev/pixi publishes CUDA variants only for {', '.join(_PIXI_CUDA_OS)}"
            )
        full = _full_cuda(cuda)
        tag += f"-cuda-{full}"
    if version is not None:
        tag = f"{_version(version, 'pixi version')}-{tag}"
    return Base(f"ghcr.io/prefix-dev/pixi:{tag}{_check_digest(digest)}", full)
