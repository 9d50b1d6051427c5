"""The ``nvidia/cuda`` tags NVIDIA publishes for Ubuntu: a table, and the nearest tags.

Data only (no imports beyond the standard library): which CUDA releases exist for
which Ubuntu release, and in which flavors. Read from NVIDIA's list of supported
tags, https://gitlab.com/nvidia/container-images/cuda/-/blob/master/doc/supported-tags.md
(the version that lists CUDA 13.2.1). NVIDIA keeps only the latest patch of each
CUDA release and deletes a tag six months after it reaches end of life
(``doc/support-policy.md`` in the same repository), so a tag missing here is one
``apptainer build`` cannot pull, or soon will not. For a tag newer than this
table, ``cuda_base(..., check_tag=False)`` uses it as given.

>>> resolve("12.9", "ubuntu24.04")
'12.9.1'
>>> print(nearest("11.8.0", "ubuntu24.04"))
nearest published: 12.5.1-*-ubuntu24.04; CUDA 11.8.0 is published for ubuntu22.04 (jammy), \
ubuntu20.04 (focal), ubuntu18.04 (bionic)
"""

from __future__ import annotations

__all__ = ["UBUNTU", "UBUNTU_TAGS", "flavors", "nearest", "resolve"]

SOURCE = "https://gitlab.com/nvidia/container-images/cuda/-/blob/master/doc/supported-tags.md"

#: Ubuntu codename -> the suffix nvidia/cuda tags use.
UBUNTU = {
    "noble": "ubuntu24.04",
    "jammy": "ubuntu22.04",
    "focal": "ubuntu20.04",
    "bionic": "ubuntu18.04",
    "xenial": "ubuntu16.04",
}

_PLAIN = ("base", "runtime", "devel")
_CUDNN = (*_PLAIN, "cudnn-runtime", "cudnn-devel")
_CUDNN9 = (*_PLAIN, "cudnn9-runtime", "cudnn9-devel")
_CUDNN8 = (*_PLAIN, "cudnn8-runtime", "cudnn8-devel")
# Runs of CUDA releases that NVIDIA publishes with the same flavors on each Ubuntu
# release that has them (the table below says which Ubuntu releases those are).
_CUDA_13 = {v: _CUDNN for v in ("13.2.1", "13.1.2", "13.0.3")}
_LATE_12 = {"12.9.1": _CUDNN, "12.8.2": _PLAIN, "12.6.3": _CUDNN}
_EARLY_12 = {
    "12.5.1": _CUDNN,
    "12.4.1": _CUDNN,
    "12.3.2": _CUDNN9,
    "12.2.2": _CUDNN8,
    "12.1.1": _CUDNN8,
    "12.0.1": _CUDNN8,
}
_OLD_11 = {v: _CUDNN8 for v in ("11.8.0", "11.7.1", "11.6.2", "11.5.2", "11.4.3")}
_OLDEST_11 = {v: _CUDNN8 for v in ("11.2.2", "11.1.1", "11.0.3")}

#: ``ubuntuXX.YY`` -> CUDA version -> the flavors published (``<version>-<flavor>-<os>``).
UBUNTU_TAGS: dict[str, dict[str, tuple[str, ...]]] = {
    "ubuntu24.04": {**_CUDA_13, **_LATE_12, "12.5.1": _PLAIN},
    "ubuntu22.04": {**_CUDA_13, **_LATE_12, **_EARLY_12, "11.8.0": _CUDNN8, "11.7.1": _CUDNN8},
    "ubuntu20.04": {**_LATE_12, **_EARLY_12, **_OLD_11, **_OLDEST_11},
    "ubuntu18.04": {"12.0.1": _CUDNN8, **_OLD_11, **_OLDEST_11},
    "ubuntu16.04": dict(_OLDEST_11),
}


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _label(os: str) -> str:
    names = [k for k, v in UBUNTU.items() if v == os]
    return f"{os} ({names[0]})" if names else os


def resolve(version: str, os: str) -> str | None:
    """The published ``X.Y.Z`` for ``version`` (``X.Y`` or ``X.Y.Z``) on ``os``, or None.

    >>> resolve("12.8", "ubuntu22.04"), resolve("12.8.1", "ubuntu22.04")
    ('12.8.2', None)
    """
    table = UBUNTU_TAGS.get(os, {})
    parts = _key(version)
    if len(parts) == 3:
        return version if version in table else None
    matches = [v for v in table if _key(v)[:2] == parts[:2]]
    return max(matches, key=_key) if matches else None


def flavors(version: str, os: str) -> tuple[str, ...]:
    """The flavors published for ``version`` (``X.Y.Z``) on ``os``; () when none."""
    return UBUNTU_TAGS.get(os, {}).get(version, ())


def nearest(version: str, os: str) -> str:
    """Which published tags come closest to ``version`` on ``os``, as a sentence: the
    releases just below and above it on the same Ubuntu, and the other Ubuntu
    releases that have the same CUDA release."""
    want = _key(version)
    table = sorted(UBUNTU_TAGS.get(os, {}), key=_key)
    below = [v for v in table if _key(v) < want]
    above = [v for v in table if _key(v) > want]
    near = ([below[-1]] if below else []) + ([above[0]] if above else [])
    parts = []
    if near:
        parts.append("nearest published: " + ", ".join(f"{v}-*-{os}" for v in near))
    same = [
        _label(other)
        for other, tags in UBUNTU_TAGS.items()
        if other != os and any(_key(v)[: len(want)] == want for v in tags)
    ]
    if same:
        parts.append(f"CUDA {version} is published for " + ", ".join(same))
    return "; ".join(parts) or "no published tag is close"
