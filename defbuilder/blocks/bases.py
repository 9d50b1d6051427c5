"""Base images: ``nvidia/cuda`` and ``ghcr.io/prefix-dev/pixi``, tags checked.

One CUDA version parameter decides both the image tag and the
``CONDA_OVERRIDE_CUDA`` value a pixi install needs on a GPU-less build host
(``Base.conda_override_cuda``), so the two can never disagree.

Tags follow the publishers' schemes, and only tags they publish are made:

* nvidia/cuda: ``<X.Y.Z>-<flavor>-<os>``, e.g. ``12.9.1-base-ubuntu24.04``. For
  Ubuntu the CUDA x Ubuntu x flavor combination is checked against NVIDIA's list
  of supported tags (``cuda_tags``), and a missing one is refused with the nearest
  published ones.
* prefix-dev/pixi: ``[<pixi version>-]<codename>[-cuda-<X.Y.Z>]``, e.g.
  ``0.76.1-noble``, ``0.76.1-noble-cuda-12.9.1`` (prefix-dev/pixi-docker,
  ``.github/workflows/build.yml``: ``{{version}}-<tag>`` for every base; the CUDA
  variants are built from ``nvidia/cuda:<X.Y.Z>-base-ubuntu<...>``). The default is
  the pinned ``PIXI_VERSION``: a bare ``noble`` is rebuilt with every pixi release,
  while ``<version>-noble`` is pushed once, by the commit that sets that version.

>>> b = cuda_base("12.9", os="noble")
>>> b.image, b.conda_override_cuda
('nvidia/cuda:12.9.1-base-ubuntu24.04', '12')
>>> pixi_base("noble", cuda="12.9").image
'ghcr.io/prefix-dev/pixi:0.76.1-noble-cuda-12.9.1'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ..errors import DefError
from ..model import Header
from . import cuda_tags

if TYPE_CHECKING:
    from packaging.version import Version

__all__ = ["PIXI_VERSION", "Base", "cuda_base", "pixi_base"]

#: The pixi release ``pixi_base`` pins by default: the latest in prefix-dev/pixi-docker
#: (``ARG PIXI_VERSION`` in its Dockerfile) when this was written. It reads the
#: rich-platform manifests (``platforms = [{ platform = ..., cuda = ... }]``) that
#: pixi 0.71 introduced.
PIXI_VERSION = "0.76.1"

_CUDA_FLAVORS = (
    "base",
    "runtime",
    "devel",
    "cudnn-runtime",
    "cudnn-devel",
    "cudnn9-runtime",
    "cudnn9-devel",
    "cudnn8-runtime",
    "cudnn8-devel",
)
#: Codenames prefix-dev/pixi-docker publishes (build.yml's matrix).
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
#: CUDA variants of the pixi image at PIXI_VERSION: codename -> CUDA versions.
_PIXI_CUDA = {
    "noble": ("12.9.1", "13.0.0"),
    "jammy": ("12.9.1", "13.0.0"),
    "focal": ("12.9.1",),
}


def _version(text: str | Version, what: str) -> str:
    """``text`` as a release number ``X.Y[.Z...]`` (digits only), normalised
    (``"12.09"`` -> ``"12.9"``). Checked without ``packaging``, which costs every
    CLI start-up its regular expression."""
    parts = str(text).strip().split(".")
    if len(parts) < 2 or not all(p.isdigit() and p.isascii() for p in parts):
        raise DefError(f"{what} {str(text)!r} is not a version (X.Y or X.Y.Z)")
    return ".".join(str(int(p)) for p in parts)


def _check_digest(digest: str | None) -> str:
    if digest is None:
        return ""
    hexpart = digest.removeprefix("sha256:")
    if len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise DefError(f"digest {digest!r} is not sha256:<64 lowercase hex digits>")
    return "@sha256:" + hexpart


def _release(cuda: str | Version) -> str:
    release = _version(cuda, "CUDA version")
    if release.count(".") > 2:
        raise DefError(f"CUDA version {cuda}: give X.Y or X.Y.Z")
    return release


def _cuda_tag(cuda: str | Version, os: str, flavor: str, check: bool) -> str:
    """The ``X.Y.Z`` of an nvidia/cuda tag NVIDIA publishes for ``os``."""
    release = _release(cuda)
    if os not in cuda_tags.UBUNTU_TAGS:
        if release.count(".") != 2:
            raise DefError(f"CUDA {release} on {os}: give the full X.Y.Z version")
        return release  # ubi*/rockylinux*: not in the table, used as given
    if not check:
        if release.count(".") != 2:
            raise DefError(f"CUDA {release}: give the full X.Y.Z version with check_tag=False")
        return release
    full = cuda_tags.resolve(release, os)
    if full is None:
        raise DefError(
            f"nvidia/cuda has no CUDA {release} image for {os}; "
            f"{cuda_tags.nearest(release, os)} (NVIDIA's supported tags: {cuda_tags.SOURCE})"
        )
    published = cuda_tags.flavors(full, os)
    if flavor not in published:
        raise DefError(
            f"nvidia/cuda has no {full}-{flavor}-{os} tag; flavors published for "
            f"{full} on {os}: {', '.join(published)}"
        )
    return full


@attrs.frozen
class Base:
    """A base image reference, and the CUDA version it carries (if any)."""

    image: str
    #: The full CUDA release, ``X.Y.Z``.
    cuda: str | None = None

    @property
    def conda_override_cuda(self) -> str | None:
        """``CONDA_OVERRIDE_CUDA`` for pixi/conda solves: the CUDA major, e.g. ``"12"``."""
        return None if self.cuda is None else self.cuda.split(".")[0]

    def header(self, stage: str | None = None, **kw: Any) -> Header:
        """``Bootstrap: docker`` with this image."""
        return Header.docker(self.image, stage=stage, **kw)


def cuda_base(
    cuda: str | Version = "12.9",
    os: str = "noble",
    flavor: str = "base",
    digest: str | None = None,
    *,
    check_tag: bool = True,
) -> Base:
    """``nvidia/cuda:<X.Y.Z>-<flavor>-<os>[@sha256:...]``, a tag NVIDIA publishes.

    ``cuda`` is ``X.Y`` (the latest patch NVIDIA publishes for ``os``) or ``X.Y.Z``;
    ``os`` an Ubuntu codename (``noble``), a tag suffix (``ubuntu22.04``) or a
    non-Ubuntu suffix (``ubi9``, ``rockylinux9``: not checked). ``check_tag=False``
    takes a full version as given, for a release newer than defbuilder's table.

    >>> cuda_base("12.8", flavor="runtime").image
    'nvidia/cuda:12.8.2-runtime-ubuntu24.04'
    >>> cuda_base("11.8")
    Traceback (most recent call last):
    ...
    defbuilder.errors.DefError: nvidia/cuda has no CUDA 11.8 image for ubuntu24.04; ...
    >>> cuda_base("12.9", flavor="huge")
    Traceback (most recent call last):
    ...
    defbuilder.errors.DefError: ...unknown flavor 'huge'...
    """
    if flavor not in _CUDA_FLAVORS:
        raise DefError(f"unknown flavor {flavor!r}; nvidia/cuda has {', '.join(_CUDA_FLAVORS)}")
    suffix = cuda_tags.UBUNTU.get(os, os)
    if suffix not in cuda_tags.UBUNTU_TAGS and not suffix.startswith(
        ("ubi", "rockylinux", "oraclelinux")
    ):
        raise DefError(
            f"unknown OS {os!r}; use one of {', '.join(cuda_tags.UBUNTU)} or a tag suffix"
        )
    full = _cuda_tag(cuda, suffix, flavor, check_tag)
    return Base(f"nvidia/cuda:{full}-{flavor}-{suffix}{_check_digest(digest)}", full)


def pixi_base(
    os: str = "noble",
    *,
    version: str | Version | None = PIXI_VERSION,
    cuda: str | Version | None = None,
    digest: str | None = None,
) -> Base:
    """``ghcr.io/prefix-dev/pixi:[<version>-]<os>[-cuda-<X.Y.Z>][@sha256:...]``.

    ``version`` defaults to ``PIXI_VERSION``; ``version=None`` gives the floating
    ``<os>`` tag (rebuilt with every pixi release). CUDA variants are checked
    against those pixi-docker builds at ``PIXI_VERSION`` (for another version they
    are used as given).

    >>> pixi_base("jammy").image
    'ghcr.io/prefix-dev/pixi:0.76.1-jammy'
    >>> pixi_base("noble", version=None).image
    'ghcr.io/prefix-dev/pixi:noble'
    """
    if os not in _PIXI_TAGS:
        raise DefError(f"prefix-dev/pixi has no {os!r} tag; known: {', '.join(_PIXI_TAGS)}")
    tag = os
    full = None
    pinned = None if version is None else _version(version, "pixi version")
    if cuda is not None:
        if os not in _PIXI_CUDA:
            raise DefError(
                f"prefix-dev/pixi publishes CUDA variants only for {', '.join(_PIXI_CUDA)}"
            )
        release = _release(cuda)
        known = _PIXI_CUDA[os]
        matches = [v for v in known if v == release or v.startswith(release + ".")]
        if matches:
            full = matches[-1]
        elif pinned in (None, PIXI_VERSION):
            raise DefError(
                f"prefix-dev/pixi {pinned or 'latest'} has no {os}-cuda-{release} image; "
                f"its CUDA variants for {os}: {', '.join(known)}"
            )
        elif release.count(".") == 2:
            full = release
        else:
            raise DefError(f"CUDA {release}: give the full X.Y.Z for pixi {pinned}")
        tag += f"-cuda-{full}"
    if pinned is not None:
        tag = f"{pinned}-{tag}"
    return Base(f"ghcr.io/prefix-dev/pixi:{tag}{_check_digest(digest)}", full)
