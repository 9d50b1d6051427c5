"""Whole-process latency of `defbuilder render` versus hpccm and the import floor.

Prints numbers; it is not a test. Runs are interleaved (one of each per round) and
the median and best of N rounds are reported, with ratios from the same run:

    target: defbuilder render <= 0.6 x hpccm, <= 1.5 x `python -c 'import attr'`

hpccm is installed into this benchmark's own virtual environment
(bench/.venv-hpccm), never into the project's. Byte-code caching is enabled for
every command (PYTHONDONTWRITEBYTECODE unset) and warmed first, as on a user's
machine.

    python bench/render_latency.py [--rounds 30] [--recipe PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def hpccm_python() -> str | None:
    env_dir = HERE / ".venv-hpccm"
    py = env_dir / "bin" / "python"
    if not py.exists():
        venv.create(env_dir, with_pip=True)
        res = subprocess.run([str(py), "-m", "pip", "install", "-q", "hpccm"])
        if res.returncode != 0:
            return None
    return str(py)


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--recipe", default=str(HERE / "two_stage.py"))
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    py = sys.executable
    cmds: dict[str, tuple[list[str], Path]] = {
        "defbuilder render": ([py, "-m", "defbuilder", "render", args.recipe], ROOT),
        "floor (import attr)": ([py, "-c", "import attr"], ROOT),
        "python -c pass": ([py, "-c", "pass"], ROOT),
    }
    hp = hpccm_python()
    if hp:
        cmds["hpccm --format singularity"] = (
            [
                str(Path(hp).with_name("hpccm")),
                "--recipe",
                str(HERE / "two_stage_hpccm.py"),
                "--format",
                "singularity",
                "--singularity-version",
                "3.2",
            ],
            HERE,
        )
    else:
        print("hpccm could not be installed; skipping that comparison")
    for cmd, cwd in cmds.values():  # warm byte-code caches and the page cache
        timed(cmd, env, cwd)
    samples: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(args.rounds):
        for name, (cmd, cwd) in cmds.items():
            samples[name].append(timed(cmd, env, cwd))
    med = {k: statistics.median(v) * 1000 for k, v in samples.items()}
    best = {k: min(v) * 1000 for k, v in samples.items()}
    print(f"{'command':32} {'median ms':>10} {'best ms':>9}")
    for name in cmds:
        print(f"{name:32} {med[name]:10.1f} {best[name]:9.1f}")
    ours = "defbuilder render"
    floor = "floor (import attr)"
    print(
        f"ratio render / floor : median {med[ours] / med[floor]:.2f}  best "
        f"{best[ours] / best[floor]:.2f}  (target <= 1.5)"
    )
    if hp:
        h = "hpccm --format singularity"
        print(
            f"ratio render / hpccm : median {med[ours] / med[h]:.2f}  best "
            f"{best[ours] / best[h]:.2f}  (target <= 0.6)"
        )


if __name__ == "__main__":
    main()
