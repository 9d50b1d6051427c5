"""gpu_check's bf16 matmul TFLOP/s as a fraction of the best PyTorch reaches here.

Prints numbers; not a test. Needs torch (pip install -e '.[gpu]') and, to mean
anything, an NVIDIA GPU. In one run it measures gpu_check.py's own bf16 number
(its default size and iterations) and then the best bf16 matmul throughput over a
sweep of sizes and more iterations on the same device. Target: >= 90%.

    python bench/gpu_matmul.py
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    import torch

    spec = importlib.util.spec_from_file_location(
        "gpu_check", ROOT / "recipes" / "hello_pytorch" / "gpu_check.py"
    )
    assert spec and spec.loader
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)

    info = gpu_check.collect(
        argparse.Namespace(size=0, iters=0, inject_mismatch=False, require_gpu=False)
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    sizes = (4096, 8192, 12288, 16384) if device.type == "cuda" else (256, 512)
    best = max(gpu_check.matmul_tflops(torch, device, torch.bfloat16, n, 20) for n in sizes)
    ours = info["matmul_tflops"]["bf16"]
    print(f"device: {name}")
    print(f"gpu_check bf16 ({info['matmul_tflops']['size']}): {ours:.1f} TFLOP/s")
    print(f"best bf16 over sizes {sizes}: {best:.1f} TFLOP/s")
    print(f"fraction: {ours / best:.1%} (target >= 90%)")
    if device.type != "cuda":
        print("no CUDA device: these CPU figures do not test the target")


if __name__ == "__main__":
    main()
