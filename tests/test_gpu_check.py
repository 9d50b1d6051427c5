"""recipes/hello_pytorch/gpu_check.py on this machine's CPU, with torch 2.13.0 for real."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytest.importorskip("torch", reason="gpu_check needs PyTorch (pip install -e '.[test]')")
jsonschema = pytest.importorskip("jsonschema")

CHECK = ROOT / "recipes" / "hello_pytorch" / "gpu_check.py"
SCHEMA = json.loads((CHECK.parent / "gpu_check.schema.json").read_text())


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, str(CHECK), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_json_output_matches_schema_and_reports_cpu():
    res = run("--json", env={"CUDA_VISIBLE_DEVICES": "0,1"})
    info = json.loads(res.stdout)
    jsonschema.validate(info, SCHEMA)
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the CPU expectations below do not apply")
    assert res.returncode == 0
    assert info["backend"] == "cpu" and info["status"] == "ok"
    assert info["cuda_visible_devices"] == "0,1"
    assert info["check"]["ok"] and info["check"]["max_rel_error"] < 1e-5
    assert info["matmul_tflops"]["fp32"] > 0 and info["memcpy_gbps"] > 0


def test_text_output_says_what_upstream_said():
    res = run()
    assert res.returncode == 0
    assert "PyTorch " in res.stdout
    assert ("No GPU found" in res.stdout) or ("Active GPU name:" in res.stdout)
    assert "Matmul check on" in res.stdout and "TFLOP/s" in res.stdout


def test_require_gpu_has_its_own_exit_code():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = run("--require-gpu", "--json")
    assert res.returncode == 3
    assert json.loads(res.stdout)["status"] == "no-gpu"


def test_numerical_mismatch_has_its_own_exit_code():
    res = run("--inject-mismatch", "--json")
    assert res.returncode == 4
    info = json.loads(res.stdout)
    jsonschema.validate(info, SCHEMA)
    assert info["status"] == "mismatch" and not info["check"]["ok"]


def test_usage_error_is_2():
    assert run("--no-such-flag").returncode == 2


# --- diagnosis: every branch on this CPU machine, torch.cuda substituted ------------


def _module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", CHECK)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Props:
    def __init__(self, name: str, cc: tuple[int, int]):
        self.name = name
        self.major, self.minor = cc
        self.total_memory = 16 << 30
        self.multi_processor_count = 80


def smi(gpus=("NVIDIA A100-SXM4-80GB",), driver="550.54.15", cuda="12.4", error=None):
    return lambda: {
        "driver_version": driver,
        "cuda_version": cuda,
        "gpus": list(gpus),
        "error": error,
    }


@pytest.fixture
def gc(monkeypatch):
    """gpu_check with no GPU device files, whatever this machine has."""
    mod = _module()
    monkeypatch.setattr(mod, "gpu_device_files", lambda: [])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return mod


def cuda_build(monkeypatch, *, available, cc=(8, 0), arch=("sm_80", "sm_90"), cudnn=90100):
    """Make this CPU torch look like a CUDA build (for diagnose only: nothing runs)."""
    import torch

    monkeypatch.setattr(torch.version, "cuda", "12.9")
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(arch))
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: cudnn)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if available else 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props("GPU-X", cc))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "GPU-X")


def args(**kw):
    import argparse

    base = {"size": 64, "iters": 1, "inject_mismatch": False, "require_gpu": False}
    return argparse.Namespace(**{**base, **kw})


def test_kernels_and_cudnn_release_rules(gc):
    assert gc.kernels_for((8, 6), ["sm_80"]) == "sass"  # binary compatible within 8.x
    assert gc.kernels_for((8, 0), ["sm_86"]) == "none"  # not downwards
    assert gc.kernels_for((9, 0), ["sm_90a"]) == "sass"
    assert gc.kernels_for((10, 0), ["sm_90a", "sm_90"]) == "none"  # never across majors
    assert gc.kernels_for((12, 0), ["sm_90", "compute_90"]) == "ptx"  # PTX JITs upwards
    assert gc.cudnn_release(91100) == (9, 11, 0) and gc.cudnn_release(None) is None


def test_no_gpu_at_all_is_not_a_problem(gc):
    import torch

    d = gc.diagnose(torch, smi=lambda: None)
    assert d["diagnosis"]["gpu_present"] is False and d["diagnosis"]["problems"] == []


def test_cpu_build_on_a_gpu_node_is_unusable(gc):
    info = gc.collect(args(), smi=smi())
    jsonschema.validate(info, SCHEMA)
    assert info["status"] == "unusable-gpu" and info["exit_code"] == 5
    assert any("built without CUDA" in p for p in info["diagnosis"]["problems"])
    assert info["diagnosis"]["driver_version"] == "550.54.15"
    assert info["check"]["device"] == "cpu"  # measured where it can run


def test_gpu_device_node_without_nv_says_so(gc, monkeypatch):
    monkeypatch.setattr(gc, "gpu_device_files", lambda: ["/dev/nvidia0"])
    cuda_build(monkeypatch, available=False)
    import torch

    def no_driver():
        raise RuntimeError("Found no NVIDIA driver on your system.")

    monkeypatch.setattr(torch.cuda, "init", no_driver)
    info = gc.collect(args(), smi=lambda: None)
    jsonschema.validate(info, SCHEMA)
    d = info["diagnosis"]
    assert info["exit_code"] == 5 and d["device_files"] == ["/dev/nvidia0"]
    assert d["cuda_init_error"] == "RuntimeError: Found no NVIDIA driver on your system."
    assert any("--nv" in p for p in d["problems"])
    text = gc.report(info)
    assert "CUDA initialisation error: RuntimeError: Found no NVIDIA driver" in text
    assert "Status: unusable-gpu" in text


def test_driver_too_old_reports_pytorchs_warning_and_the_driver(gc, monkeypatch):
    cuda_build(monkeypatch, available=False)
    import warnings

    import torch

    msg = (
        "CUDA initialization: The NVIDIA driver on your system is too old (found version "
        "11040). Please update your GPU driver."
    )

    def old_driver():
        warnings.warn(msg, UserWarning, stacklevel=1)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", old_driver)
    info = gc.collect(args(require_gpu=True), smi=smi(driver="470.82.01", cuda="11.4"))
    jsonschema.validate(info, SCHEMA)
    d = info["diagnosis"]
    assert info["exit_code"] == 5 and d["cuda_init_error"] == msg
    assert d["driver_version"] == "470.82.01" and d["driver_cuda_version"] == "11.4"
    assert any("driver is too old" in p for p in d["problems"])


def test_new_architecture_without_kernels_is_unusable(gc, monkeypatch):
    # an RTX 50xx (sm_120) with a PyTorch built up to sm_90 (pytorch-cpu-feedstock#390)
    cuda_build(monkeypatch, available=True, cc=(12, 0), arch=("sm_80", "sm_86", "sm_90"))
    info = gc.collect(args(), smi=smi(gpus=["NVIDIA GeForce RTX 5090"]))
    jsonschema.validate(info, SCHEMA)
    assert info["status"] == "unusable-gpu" and info["backend"] == "cpu"
    assert info["devices"][0]["kernels"] == "none" and not info["devices"][0]["usable"]
    assert any("sm_120" in p for p in info["diagnosis"]["problems"])


def test_new_cudnn_on_a_pre_turing_gpu_is_unusable(gc, monkeypatch):
    # cuDNN 9.11 dropped device code below compute capability 7.5 (a P100 is 6.0)
    cuda_build(monkeypatch, available=True, cc=(6, 0), arch=("sm_60", "sm_70"), cudnn=91100)
    info = gc.collect(args(), smi=smi(gpus=["Tesla P100-PCIE-16GB"]))
    jsonschema.validate(info, SCHEMA)
    assert info["exit_code"] == 5 and info["devices"][0]["kernels"] == "sass"
    assert any("cuDNN 9.11.0" in p and "7.5" in p for p in info["diagnosis"]["problems"])


def test_a_supported_gpu_is_usable(gc, monkeypatch):
    import torch

    cuda_build(monkeypatch, available=True, cc=(8, 6), arch=("sm_80", "sm_90"), cudnn=91100)
    d = gc.diagnose(torch, smi=smi())
    assert d["available"] and d["devices"][0]["kernels"] == "sass"
    assert d["devices"][0]["usable"] and d["diagnosis"]["problems"] == []


def test_hidden_gpus_are_no_gpu_not_unusable(gc, monkeypatch):
    import torch

    monkeypatch.setattr(gc, "gpu_device_files", lambda: ["/dev/nvidia0"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    d = gc.diagnose(torch, smi=smi())
    assert d["diagnosis"]["gpu_present"] is False


def test_nvidia_smi_is_parsed_from_the_real_command(gc, tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$#" -gt 0 ]; then printf "%s\\n" "NVIDIA A100-SXM4-80GB, 550.54.15"; exit 0; fi\n'
        'echo "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert gc.nvidia_smi() == {
        "driver_version": "550.54.15",
        "cuda_version": "12.4",
        "gpus": ["NVIDIA A100-SXM4-80GB"],
        "error": None,
    }
    monkeypatch.setenv("PATH", "/nonexistent")
    assert gc.nvidia_smi() is None
