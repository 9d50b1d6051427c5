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
