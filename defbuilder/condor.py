"""HTCondor glue: a container-universe submit file and its job wrapper script.

``CondorJob`` holds every submit key a GPU job on CHTC uses; defaults are CHTC's
GPU Lab conventions (chtc.cs.wisc.edu, "Use GPUs"): one GPU and one CPU,
``+WantGPULab = true``, ``+GPUJobLength = "short"``, a minimum compute capability.
Several ``requirements`` are always joined with ``&&`` into one line: in a submit
file a later assignment replaces an earlier one, which is how the upstream example
lost its driver requirement (checked with the ``htcondor2`` bindings in the tests).

The wrapper logs with ``set -x``, prints the job number and
``CUDA_VISIBLE_DEVICES``, sources the image's activation file, runs the GPU check,
then the workload, and exits with the workload's status.

>>> job = CondorJob(image="oras://ghcr.io/me/app:1", command=("python", "train.py"))
>>> dict(job.items())["requirements"]
'(GPUs_DriverVersion >= 12.0) && (OpSysMajorVer > 7)'
>>> job.submit().splitlines()[-1]
'queue 1'

``defbuilder condor`` is ``job_from`` (defaults, then the recipe's ``job`` dict, then
the command line) and ``write_job`` (NAME.sub and the wrapper).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from .errors import DefError
from .fileio import write_atomic

__all__ = ["CondorJob", "job_defaults", "job_from", "write_job"]


DEFAULT_REQUIREMENTS = ("(GPUs_DriverVersion >= 12.0)", "(OpSysMajorVer > 7)")


def _tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v) for v in value)


def _check_image(image: str) -> str:
    if image.startswith(("oras://", "osdf:///", "docker://")) or image.endswith(".sif"):
        return image
    raise DefError(f"container image {image!r}: use oras://..., osdf:///... or a .sif path")


def _requirements(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _extra(
    value: Mapping[str, str] | Sequence[tuple[str, str]] | None,
) -> tuple[tuple[str, str], ...]:
    return tuple(dict(value).items()) if value else ()


def _check_value(key: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise DefError(f"submit key {key}: value contains a newline")


@attrs.frozen(kw_only=True)
class CondorJob:
    """A container-universe GPU job (see the module doc); every field is a submit key."""

    image: str = attrs.field(converter=_check_image)
    name: str = "job"
    executable: str = "job.sh"
    command: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    activate: str | None = "/app/activate.sh"
    gpu_check: tuple[str, ...] = attrs.field(
        default=("python", "/app/gpu_check.py", "--require-gpu"), converter=_tuple
    )
    arguments: str = "$(Cluster).$(Process)"
    request_cpus: int = 1
    request_gpus: int = 1
    request_memory: str = "2GB"
    request_disk: str = "7GB"
    gpus_minimum_capability: str | None = "5.0"
    gpus_minimum_memory: str | None = None
    requirements: tuple[str, ...] = attrs.field(
        default=DEFAULT_REQUIREMENTS, converter=_requirements
    )
    want_gpu_lab: bool = True
    gpu_job_length: str | None = "short"
    job_duration_category: str | None = None
    project_name: str | None = None
    transfer_input_files: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    transfer_output_files: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    queue: int = 1
    extra: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_extra)

    def __attrs_post_init__(self) -> None:
        if self.gpu_job_length not in (None, "short", "medium", "long"):
            raise DefError(
                f"+GPUJobLength must be short, medium or long, not {self.gpu_job_length!r}"
            )
        if self.job_duration_category not in (None, "Short", "Medium", "Long"):
            raise DefError("+JobDurationCategory must be Short, Medium or Long")
        if self.queue < 1 or self.request_gpus < 0 or self.request_cpus < 1:
            raise DefError("queue and request_cpus must be >= 1, request_gpus >= 0")
        for req in self.requirements:
            _check_value("requirements", req)
        for key, value in self.extra:
            _check_value(key, value)

    def items(self) -> list[tuple[str, str]]:
        """Submit keys and values, in file order (``queue`` excluded)."""
        logs = f"{self.name}_$(Cluster)_$(Process)"
        out: list[tuple[str, str]] = [
            ("universe", "container"),
            ("container_image", self.image),
            ("executable", self.executable),
            ("arguments", self.arguments),
            ("log", f"{logs}.log"),
            ("output", f"{logs}.out"),
            ("error", f"{logs}.err"),
            ("should_transfer_files", "YES"),
            ("when_to_transfer_output", "ON_EXIT"),
        ]
        if self.transfer_input_files:
            out.append(("transfer_input_files", ", ".join(self.transfer_input_files)))
        if self.transfer_output_files:
            out.append(("transfer_output_files", ", ".join(self.transfer_output_files)))
        if self.requirements:
            out.append(("requirements", " && ".join(self.requirements)))
        out += [
            ("request_cpus", str(self.request_cpus)),
            ("request_gpus", str(self.request_gpus)),
            ("request_memory", self.request_memory),
            ("request_disk", self.request_disk),
        ]
        if self.gpus_minimum_capability:
            out.append(("gpus_minimum_capability", self.gpus_minimum_capability))
        if self.gpus_minimum_memory:
            out.append(("gpus_minimum_memory", self.gpus_minimum_memory))
        if self.want_gpu_lab:
            out.append(("+WantGPULab", "true"))
        if self.gpu_job_length:
            out.append(("+GPUJobLength", f'"{self.gpu_job_length}"'))
        if self.job_duration_category:
            out.append(("+JobDurationCategory", f'"{self.job_duration_category}"'))
        if self.project_name:
            out.append(("+ProjectName", f'"{self.project_name}"'))
        out += list(self.extra)
        return out

    def submit(self) -> str:
        """The submit file's text."""
        lines = [
            f"# {self.name}.sub, written by defbuilder: condor_submit {self.name}.sub",
            f"# (interactive: condor_submit -interactive {self.name}.sub)",
        ]
        width = max(len(k) for k, _ in self.items())
        lines += [f"{k:<{width}} = {v}" for k, v in self.items()]
        lines.append(f"queue {self.queue}")
        return "\n".join(lines) + "\n"

    def wrapper(self) -> str:
        """The job's executable: a POSIX sh wrapper (see the module doc)."""
        from .templating import render_template

        return render_template(
            "condor_wrapper.sh.j2",
            executable=self.executable,
            activate=self.activate,
            gpu_check=self.gpu_check,
            command=self.command,
        )


def job_defaults(recipe_path: str) -> dict[str, Any]:
    """A recipe module's optional ``job`` mapping: defaults for ``defbuilder condor``.

    A ``.def`` (or any file that is not a ``.py`` recipe script) has none.
    """
    if not recipe_path.endswith(".py"):
        return {}
    from .loader import load_module

    job = getattr(load_module(recipe_path), "job", None)
    if job is None:
        return {}
    if not isinstance(job, dict):
        raise DefError("`job` must be a dict of CondorJob fields", file=recipe_path)
    return dict(job)


def job_from(
    recipe_path: str,
    options: Mapping[str, Any] | None = None,
    *,
    default_requirements: bool = True,
    keys: Iterable[str] = (),
) -> CondorJob:
    """The job ``defbuilder condor`` writes: layered defaults, recipe, command line.

    * CHTC's defaults (``CondorJob``'s), then the recipe's ``job`` dict
      (``job_defaults``), then ``options`` (field name -> value; ``None`` is unset);
    * ``options["requirements"]`` are *added* to the recipe's (or the default)
      requirements; with ``default_requirements=False`` they are the only ones;
    * ``keys``: extra submit keys as ``KEY=VALUE`` (``--key``); they replace the
      recipe's ``extra``.
    """
    defaults = job_defaults(recipe_path)
    fields = dict(defaults)
    fields.update({k: v for k, v in (options or {}).items() if v is not None})
    given = tuple((options or {}).get("requirements") or ())
    if not default_requirements:
        fields["requirements"] = given
    elif given:
        base = defaults.get("requirements", DEFAULT_REQUIREMENTS)
        fields["requirements"] = (*_requirements(base), *given)
    if "image" not in fields:
        raise DefError("give the container image with --image (oras://..., osdf:///... or a .sif)")
    extra = {}
    for item in keys:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise DefError(f"--key {item!r}: expected KEY=VALUE")
        extra[k.strip()] = v.strip()
    if extra:
        fields["extra"] = extra
    try:
        return CondorJob(**fields)
    except TypeError as exc:
        raise DefError(f"bad job settings: {exc}", file=recipe_path) from None


def write_job(job: CondorJob, directory: str) -> tuple[str, str]:
    """Write ``NAME.sub`` and the executable wrapper into ``directory`` (made if missing).

    Both are written atomically; the wrapper is executable. Returns their paths.
    """
    os.makedirs(directory, exist_ok=True)
    sub = os.path.join(directory, f"{job.name}.sub")
    wrapper = os.path.join(directory, job.executable)
    write_atomic(sub, job.submit())
    write_atomic(wrapper, job.wrapper(), mode=0o755)
    return sub, wrapper
