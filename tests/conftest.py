"""Shared fixtures: shells to run generated scripts under, and a CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

SHELLS = [s for s in ("dash", "bash") if shutil.which(s)]


@pytest.fixture(params=["dash", "bash"])
def shell(request: pytest.FixtureRequest) -> str:
    """Each generated script runs under dash (Ubuntu's /bin/sh) and bash."""
    path = shutil.which(request.param)
    if path is None:
        pytest.skip(f"{request.param} is not installed (.ci/run installs dash)")
    return path


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m defbuilder ARGS` in a fresh process, as a user would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "defbuilder", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
    )
