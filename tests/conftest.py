"""Shared fixtures: shells to run generated scripts under, and CLI runners (the
installed console script and `python -m defbuilder`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypedDict, Unpack

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

# Property tests run the same examples on every machine (CI must not fail by chance, and
# a slow, busy CI machine must not trip Hypothesis's timing checks). For a wider random
# search locally: DEFBUILDER_HYPOTHESIS=explore pytest ...
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("DEFBUILDER_HYPOTHESIS", "ci"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SHELLS = [s for s in ("dash", "bash") if shutil.which(s)]
FAKES = Path(__file__).resolve().parent / "fakes"


@pytest.fixture(params=["dash", "bash"])
def shell(request: pytest.FixtureRequest) -> str:
    """Each generated script runs under dash (Ubuntu's /bin/sh) and bash."""
    path = shutil.which(request.param)
    if path is None:
        pytest.skip(f"{request.param} is not installed (.ci/run installs dash)")
    return path


Arg = str | os.PathLike[str]


class RunOptions(TypedDict, total=False):
    """How a CLI runner starts its process: ENV is added to this process's own; output is
    captured, unless STDOUT is given: then the command writes to that open file, as after
    a shell's `>> FILE`, and only stderr is captured."""

    cwd: Path | None
    env: dict[str, str] | None
    input: str | None
    stdout: IO[str] | None
    timeout: float


def _run(
    prefix: list[str],
    args: tuple[Arg, ...],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    stdout: IO[str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [*prefix, *(os.fspath(arg) for arg in args)],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        text=True,
        input=input,
        timeout=timeout,
    )


def run_cli(*args: Arg, **options: Unpack[RunOptions]) -> subprocess.CompletedProcess[str]:
    """Run `python -m defbuilder ARGS` in a fresh process, as a user would."""
    return _run([sys.executable, "-m", "defbuilder"], args, **options)


def installed_script() -> Path:
    """The `defbuilder` console script that `pip install` put beside this Python.

    It is how users run defbuilder, and it differs from `python -m defbuilder`: its
    own file (bin/defbuilder) is on the stack below the CLI, where `python -m` has
    only frozen runpy frames. A missing script is a broken install, so it fails.
    """
    candidates = [Path(sys.executable).with_name("defbuilder")]
    candidates.append(Path(sysconfig.get_path("scripts")) / "defbuilder")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    pytest.fail(
        "the defbuilder console script is not installed beside "
        f"{sys.executable}; run: pip install -e '.[test]'"
    )


def run_installed(*args: Arg, **options: Unpack[RunOptions]) -> subprocess.CompletedProcess[str]:
    """Run the installed `defbuilder ARGS` console script in a fresh process."""
    return _run([str(installed_script())], args, **options)


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(params=["installed", "python -m"])
def cli(request: pytest.FixtureRequest) -> Runner:
    """Both ways users start defbuilder: the console script and `python -m defbuilder`."""
    return run_installed if request.param == "installed" else run_cli


def fake_apptainer_bin(tmp_path: Path) -> Path:
    """TMP_PATH/bin holding tests/fakes/apptainer (it logs its calls to $FAKE_APPTAINER_LOG);
    put it first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(FAKES / "apptainer", bindir / "apptainer")
    return bindir
