#!/usr/bin/env python3
"""GPU check for the hello-PyTorch image: what a batch job needs to know, as text or JSON.

Prints what the upstream ``torch_detect_GPU.py`` printed (the CUDA, cuDNN and NCCL
versions PyTorch was built with, the number of GPUs, the active GPU or MPS or
"no GPU") and more: the visible devices (``CUDA_VISIBLE_DEVICES``), each device's
name, compute capability and memory, a correctness check (a matmul on the device
compared with a float64 CPU reference), matmul throughput (TFLOP/s, fp32 and bf16)
and device memory-copy bandwidth (GB/s).

Exit codes a job can act on:
    0  ok
    1  error (PyTorch missing or broken)
    2  usage error (bad command line)
    3  no GPU, and --require-gpu was given
    4  numerical mismatch in the correctness check

``--json`` prints one JSON object described by ``gpu_check.schema.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NO_GPU = 3
EXIT_MISMATCH = 4
SCHEMA_VERSION = 1
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


def collect(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    info: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "torch_version": torch.__version__,
        "cuda_built": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        "nccl_version": None,
        "cuda_available": cuda,
        "mps_available": mps,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "device_count": torch.cuda.device_count() if cuda else 0,
        "devices": [],
        "active_device": None,
    }
    if cuda:
        try:
            info["nccl_version"] = ".".join(str(x) for x in torch.cuda.nccl.version())
        except Exception:
            info["nccl_version"] = None
        for i in range(info["device_count"]):
            p = torch.cuda.get_device_properties(i)
            info["devices"].append(
                {
                    "index": i,
                    "name": p.name,
                    "compute_capability": f"{p.major}.{p.minor}",
                    "total_memory_bytes": int(p.total_memory),
                    "multiprocessor_count": int(p.multi_processor_count),
                }
            )
        idx = torch.cuda.current_device()
        info["active_device"] = {"index": idx, "name": torch.cuda.get_device_name(idx)}
        device = torch.device("cuda", idx)
        backend = "cuda"
    elif mps:
        device, backend = torch.device("mps"), "mps"
    else:
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
    if not info["check"]["ok"]:
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
