"""Static checks that are part of `pytest`: ruff (lint and format) and mypy."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


def _tool(name: str) -> list[str]:
    exe = shutil.which(name, path=str(ROOT / ".venv" / "bin")) or shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return [exe]


def test_ruff_clean():
    out = subprocess.run(
        [*_tool("ruff"), "check", "defbuilder", "tests", "bench", "recipes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_clean():
    """The code is laid out by `ruff format` (run it before committing)."""
    out = subprocess.run(
        [*_tool("ruff"), "format", "--check", "defbuilder", "tests", "bench", "recipes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_clean():
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
