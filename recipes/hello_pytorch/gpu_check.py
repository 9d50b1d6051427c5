#!/usr/bin/env python3
"""GPU check for the hello-PyTorch image: what a batch job needs to know, as text or JSON.

Prints what the upstream ``torch_detect_GPU.py`` printed (the CUDA, cuDNN and NCCL
versions PyTorch was built with, the number of GPUs, the active GPU or MPS or
"no GPU") and more: the visible devices (``CUDA_VISIBLE_DEVICES``), each device's
name, compute capability and memory, a correctness check (a matmul on the device
compared with a float64 CPU reference), matmul throughput (TFLOP/s, fp32 and bf16)
and device memory-copy bandwidth (GB/s).

When CUDA cannot be used it says why, from what clusters actually hit:

* the CUDA initialisation error PyTorch gives (its warning or exception, e.g. "The
  NVIDIA driver on your system is too old");
* the driver version and the CUDA version it supports (``nvidia-smi``, which
  ``apptainer --nv`` binds in; a GPU device node without it means ``--nv`` is missing);
* whether this PyTorch has kernels for the device: ``sm_XY`` in
  ``torch.cuda.get_arch_list()`` (binary compatible within a major version), or PTX
  (``compute_XY``) it can JIT; conda-forge builds have lagged new architectures such
  as sm_120 (conda-forge/pytorch-cpu-feedstock#390);
* cuDNN against the device: cuDNN >= 9.11 has no device code for compute capability
  < 7.5 (pre-Turing), where cuDNN calls crash (NVIDIA's cuDNN 9.11.0 release notes;
  conda-forge/tensorflow-feedstock#457; PyTorch has an open request for such a
  warning, pytorch/pytorch#162574).

Exit codes a job can act on:
    0  ok
    1  error (PyTorch missing or broken)
    2  usage error (bad command line)
    3  no GPU, and --require-gpu was given
    4  numerical mismatch in the correctness check
    5  a GPU is there but unusable (the reasons are in "problems")

``--json`` prints one JSON object described by ``gpu_check.schema.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NO_GPU = 3
EXIT_MISMATCH = 4
EXIT_UNUSABLE_GPU = 5
SCHEMA_VERSION = 2
#: cuDNN from this release on has no device code for compute capability < 7.5.
CUDNN_DROPPED_PRE_TURING = (9, 11)
MIN_CC_NEW_CUDNN = (7, 5)
#: max |C - C_ref| / max |C_ref| allowed for the fp32 matmul check.
TOLERANCE = 1e-3


def _sync(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(torch: Any, device: Any, dtype: Any, n: int, iters: int) -> float:
    """Best-of-``iters`` throughput of an ``n x n`` matmul, in TFLOP/s (2 n^3 flops)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.matmul(a, b)
    _sync(torch, device)
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        torch.matmul(a, b)
        _sync(torch, device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e12


def copy_gbps(torch: Any, device: Any, nbytes: int, iters: int) -> float:
    """Device-to-device copy bandwidth, counting bytes read plus bytes written."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(torch, device)
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        dst.copy_(src)
        _sync(torch, device)
        best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best / 1e9


def correctness(torch: Any, device: Any, n: int, inject_mismatch: bool) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(1234)
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    b = torch.randn(n, n, generator=gen, dtype=torch.float64)
    ref = a @ b
    got = (a.float().to(device) @ b.float().to(device)).double().cpu()
    if inject_mismatch:
        got[0, 0] += 1.0 + abs(float(ref[0, 0]))
    err = float((got - ref).abs().max() / ref.abs().max())
    return {
        "device": str(device),
        "size": n,
        "dtype": "float32",
        "max_rel_error": err,
        "tolerance": TOLERANCE,
        "ok": err <= TOLERANCE,
    }


def nvidia_smi() -> dict[str, Any] | None:
    """What ``nvidia-smi`` reports (None when it is not on PATH): the driver version,
    the CUDA version the driver supports, the GPUs, or the error it printed."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    info: dict[str, Any] = {"driver_version": None, "cuda_version": None, "gpus": [], "error": None}
    try:
        res = subprocess.run(
            [exe, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if res.returncode != 0:
            info["error"] = (res.stdout + res.stderr).strip() or f"exit status {res.returncode}"
            return info
        for line in res.stdout.splitlines():
            name, _, driver = line.rpartition(",")
            if name.strip():
                info["gpus"].append(name.strip())
                info["driver_version"] = driver.strip()
        header = subprocess.run([exe], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"CUDA Version:\s*([0-9.]+)", header)
        info["cuda_version"] = m.group(1) if m else None
    except (OSError, subprocess.SubprocessError) as exc:
        info["error"] = str(exc)
    return info


def gpu_device_files() -> list[str]:
    """``/dev/nvidia0``...: present on a GPU node (Apptainer binds the host's /dev),
    with or without ``--nv``."""
    return sorted(glob.glob("/dev/nvidia[0-9]*"))


def _arch(name: str) -> tuple[str, int, int, str] | None:
    """``sm_86`` -> ("sm", 8, 6, ""); ``sm_90a`` -> ("sm", 9, 0, "a"); ``compute_90``."""
    m = re.fullmatch(r"(sm|compute)_([0-9]+)([0-9])([af]?)", name)
    return (m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)) if m else None


def kernels_for(capability: tuple[int, int], arch_list: list[str]) -> str:
    """``"sass"`` when ``arch_list`` has device code that runs on ``capability`` (the same
    major version, an equal or lower minor; an ``a`` arch only on its own), ``"ptx"`` when
    only PTX the driver can JIT (``compute_XY`` <= the capability), else ``"none"``.

    >>> kernels_for((8, 6), ["sm_50", "sm_80", "sm_90"]), kernels_for((12, 0), ["sm_90"])
    ('sass', 'none')
    >>> kernels_for((12, 0), ["sm_90", "compute_90"])
    'ptx'
    """
    major, minor = capability
    ptx = False
    for name in arch_list:
        parsed = _arch(name)
        if parsed is None:
            continue
        kind, a_major, a_minor, suffix = parsed
        exact = suffix == "a" and a_minor == minor
        if kind == "sm" and a_major == major and (exact or (suffix != "a" and a_minor <= minor)):
            return "sass"
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            ptx = True
    return "ptx" if ptx else "none"


def cudnn_release(version: int | None) -> tuple[int, int, int] | None:
    """``torch.backends.cudnn.version()`` as (major, minor, patch): 9.x is written
    ``M*10000 + m*100 + p``, 8.x ``M*1000 + m*100 + p``.

    >>> cudnn_release(91100), cudnn_release(8902)
    ((9, 11, 0), (8, 9, 2))
    """
    if not version:
        return None
    if version >= 90000:
        return version // 10000, version % 10000 // 100, version % 100
    return version // 1000, version % 1000 // 100, version % 100


def diagnose(torch: Any, smi: Callable[[], dict[str, Any] | None] = nvidia_smi) -> dict[str, Any]:
    """Why CUDA can or cannot be used here: the ``diagnosis`` object of the JSON, plus
    ``available`` and the per-device facts (``devices``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = bool(torch.cuda.is_available())
    init_error = next((str(w.message) for w in caught if "CUDA" in str(w.message)), None)
    built = torch.version.cuda
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = visible is not None and visible.strip() in ("", "-1")
    if not available and built and init_error is None and not hidden:
        try:
            torch.cuda.init()
        except Exception as exc:
            init_error = f"{type(exc).__name__}: {exc}"
    smi_info = smi()
    nodes = gpu_device_files()
    try:
        cudnn = torch.backends.cudnn.version() if built else None
    except Exception:
        cudnn = None
    arch_list = list(torch.cuda.get_arch_list()) if built else []
    problems: list[str] = []
    devices: list[dict[str, Any]] = []
    if available:
        release = cudnn_release(cudnn)
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            cc = (int(p.major), int(p.minor))
            kernels = kernels_for(cc, arch_list)
            usable = kernels != "none"
            if not usable:
                problems.append(
                    f"GPU {i} ({p.name}) is sm_{cc[0]}{cc[1]}; this PyTorch has device code "
                    f"for {', '.join(arch_list) or 'no architecture'}: no kernels run on it "
                    "(a newer PyTorch build supports it; conda-forge/pytorch-cpu-feedstock#390)"
                )
            if release and release[:2] >= CUDNN_DROPPED_PRE_TURING and cc < MIN_CC_NEW_CUDNN:
                usable = False
                problems.append(
                    f"GPU {i} ({p.name}) has compute capability {cc[0]}.{cc[1]}; cuDNN "
                    f"{'.'.join(map(str, release))} has no device code below 7.5 and crashes "
                    "there (conda-forge/tensorflow-feedstock#457): pin cudnn < 9.11 or use a "
                    "Turing or newer GPU (gpus_minimum_capability = 7.5)"
                )
            devices.append(
                {
                    "index": i,
                    "name": p.name,
                    "compute_capability": f"{cc[0]}.{cc[1]}",
                    "total_memory_bytes": int(p.total_memory),
                    "multiprocessor_count": int(p.multi_processor_count),
                    "kernels": kernels,
                    "usable": usable,
                }
            )
        if kernels_ptx := [d for d in devices if d["kernels"] == "ptx"]:
            problems += [
                f"GPU {d['index']} runs PTX JIT-compiled at start (slow first run)"
                for d in kernels_ptx
            ]
    smi_gpus = len(smi_info["gpus"]) if smi_info else 0
    present = available or (not hidden and (smi_gpus > 0 or bool(nodes)))
    if present and not available:
        if not built:
            problems.append("this PyTorch is built without CUDA (a CPU build) but a GPU is here")
        if init_error:
            problems.append(f"CUDA cannot start: {init_error}")
        if smi_info is None:
            problems.append(
                "nvidia-smi is not in the container although /dev/nvidia* is: the NVIDIA "
                "driver libraries are not bound in (run apptainer with --nv)"
            )
        elif smi_info["error"]:
            problems.append(f"nvidia-smi failed: {smi_info['error']}")
        driver_cuda = smi_info["cuda_version"] if smi_info else None
        if built and driver_cuda and _version_tuple(driver_cuda)[:1] < _version_tuple(built)[:1]:
            problems.append(
                f"the driver ({smi_info['driver_version'] if smi_info else '?'}) supports "
                f"CUDA {driver_cuda}; this PyTorch needs CUDA {built}: the driver is too old"
            )
    return {
        "available": available,
        "devices": devices,
        "cudnn_version": cudnn,
        "diagnosis": {
            "gpu_present": present,
            "cuda_init_error": init_error,
            "driver_version": smi_info["driver_version"] if smi_info else None,
            "driver_cuda_version": smi_info["cuda_version"] if smi_info else None,
            "nvidia_smi": None if smi_info is None else (smi_info["error"] or "ok"),
            "nvidia_smi_gpus": smi_info["gpus"] if smi_info else None,
            "device_files": nodes,
            "arch_list": arch_list,
            "problems": problems,
        },
    }


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"[0-9]+", text))


def collect(
    args: argparse.Namespace, smi: Callable[[], dict[str, Any] | None] = nvidia_smi
) -> dict[str, Any]:
    import torch

    diag = diagnose(torch, smi)
    cuda = diag["available"]
    usable = cuda and all(d["usable"] for d in diag["devices"])
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    info: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "torch_version": torch.__version__,
        "cuda_built": torch.version.cuda,
        "cudnn_version": diag["cudnn_version"],
        "nccl_version": None,
        "cuda_available": cuda,
        "mps_available": mps,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "device_count": len(diag["devices"]),
        "devices": diag["devices"],
        "active_device": None,
        "diagnosis": diag["diagnosis"],
    }
    if cuda:
        try:
            info["nccl_version"] = ".".join(str(x) for x in torch.cuda.nccl.version())
        except Exception:
            info["nccl_version"] = None
        idx = torch.cuda.current_device()
        info["active_device"] = {"index": idx, "name": torch.cuda.get_device_name(idx)}
    if usable:
        device = torch.device("cuda", info["active_device"]["index"])
        backend = "cuda"
    elif mps:
        device, backend = torch.device("mps"), "mps"
    else:  # no GPU, or one no kernel can run on: measure the CPU instead
        device, backend = torch.device("cpu"), "cpu"
    info["backend"] = backend
    big = backend == "cuda"
    n = args.size or (8192 if big else 256)
    iters = args.iters or (10 if big else 3)
    info["check"] = correctness(torch, device, 1024 if big else 256, args.inject_mismatch)
    info["matmul_tflops"] = {
        "size": n,
        "fp32": matmul_tflops(torch, device, torch.float32, n, iters),
        "bf16": matmul_tflops(torch, device, torch.bfloat16, n, iters),
    }
    info["memcpy_gbps"] = copy_gbps(torch, device, (256 if big else 16) << 20, iters)
    if diag["diagnosis"]["gpu_present"] and not usable:
        status, code = "unusable-gpu", EXIT_UNUSABLE_GPU
    elif not info["check"]["ok"]:
        status, code = "mismatch", EXIT_MISMATCH
    elif args.require_gpu and backend != "cuda":
        status, code = "no-gpu", EXIT_NO_GPU
    else:
        status, code = "ok", EXIT_OK
    info["status"], info["exit_code"] = status, code
    return info


def report(info: dict[str, Any]) -> str:
    lines = [f"PyTorch {info['torch_version']}"]
    if info["cuda_available"]:
        lines += [
            f"PyTorch built with CUDA Version {info['cuda_built']}",
            f"PyTorch built with cuDNN Version {info['cudnn_version']}",
            f"PyTorch built with NCCL Version {info['nccl_version']}",
            f"Number of GPUs found on system: {info['device_count']}",
            f"CUDA_VISIBLE_DEVICES: {info['cuda_visible_devices']}",
        ]
        for d in info["devices"]:
            lines.append(
                f"GPU {d['index']}: {d['name']}, compute capability "
                f"{d['compute_capability']}, {d['total_memory_bytes'] / 2**30:.1f} GiB"
            )
        lines += [
            f"Active GPU index: {info['active_device']['index']}",
            f"Active GPU name: {info['active_device']['name']}",
        ]
    elif info["mps_available"]:
        lines.append("MPS device found")
    else:
        lines += ["No GPU found", f"CUDA_VISIBLE_DEVICES: {info['cuda_visible_devices']}"]
    d = info["diagnosis"]
    if d["cuda_init_error"]:
        lines.append(f"CUDA initialisation error: {d['cuda_init_error']}")
    if d["nvidia_smi"] is None:
        lines.append("NVIDIA driver: nvidia-smi not found (apptainer --nv binds it in)")
    elif d["driver_version"]:
        lines.append(
            f"NVIDIA driver {d['driver_version']} (supports CUDA {d['driver_cuda_version']}), "
            f"{len(d['nvidia_smi_gpus'])} GPU(s) per nvidia-smi"
        )
    else:
        lines.append(f"nvidia-smi: {d['nvidia_smi']}")
    if d["arch_list"]:
        lines.append(f"PyTorch device code: {' '.join(d['arch_list'])}")
    for dev in info["devices"]:
        lines.append(f"GPU {dev['index']} kernels: {dev['kernels']}")
    for problem in d["problems"]:
        lines.append(f"Problem: {problem}")
    c = info["check"]
    lines.append(
        f"Matmul check on {c['device']}: max relative error {c['max_rel_error']:.2e} "
        f"(tolerance {c['tolerance']:.0e}): {'ok' if c['ok'] else 'MISMATCH'}"
    )
    t = info["matmul_tflops"]
    lines.append(
        f"Matmul {t['size']}x{t['size']}: fp32 {t['fp32']:.2f} TFLOP/s, "
        f"bf16 {t['bf16']:.2f} TFLOP/s"
    )
    lines.append(f"Memory copy: {info['memcpy_gbps']:.1f} GB/s")
    lines.append(f"Status: {info['status']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--require-gpu", action="store_true", help=f"exit {EXIT_NO_GPU} when no CUDA GPU is usable"
    )
    parser.add_argument("--size", type=int, default=0, help="matmul size for throughput")
    parser.add_argument("--iters", type=int, default=0, help="timed iterations")
    parser.add_argument(
        "--inject-mismatch",
        action="store_true",
        help="corrupt the check's result (to test job logic)",
    )
    args = parser.parse_args(argv)
    try:
        info = collect(args)
    except ImportError as exc:
        print(f"gpu_check: cannot import PyTorch: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(info, indent=2, sort_keys=True) if args.json else report(info))
    return int(info["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
