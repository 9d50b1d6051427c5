"""Whole-process latency of `defbuilder render` versus hpccm and the import floor.

Prints numbers; it is not a test. Runs are interleaved (one of each per round) and
the median and best of N rounds are reported, with ratios from the same run, for two
recipes: a hand-written two-stage recipe without blocks (bench/two_stage.py) and the
flagship, recipes/hello_pytorch/recipe.py (blocks: cuda_base, pixi_base,
PixiEnvironment, Entrypoint). hpccm renders the same two-stage build in its DSL
(bench/two_stage_hpccm.py). Targets:

    two_stage:      defbuilder render <= 0.6 x hpccm, <= 1.5 x `python -c 'import attr'`
    hello_pytorch:  defbuilder render <= 1.0 x hpccm, <= 1.5 x `python -c 'import attr'`

hpccm is installed into this benchmark's own virtual environment
(bench/.venv-hpccm), never into the project's. Byte-code caching is enabled for
every command (PYTHONDONTWRITEBYTECODE unset) and warmed first, as on a user's
machine.

    python bench/render_latency.py [--rounds 30]
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


TARGETS = {"two_stage": (0.6, 1.5), "hello_pytorch": (1.0, 1.5)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONWARNINGS"] = "ignore"  # hello_pytorch has no pixi.lock here: no warning text
    py = sys.executable
    recipes = {
        "two_stage": HERE / "two_stage.py",
        "hello_pytorch": ROOT / "recipes" / "hello_pytorch" / "recipe.py",
    }
    cmds: dict[str, tuple[list[str], Path]] = {
        f"render {name}": ([py, "-m", "defbuilder", "render", str(path)], ROOT)
        for name, path in recipes.items()
    }
    # the CLI's start-up alone: what every command pays before any recipe is read
    cmds["import defbuilder.cli"] = ([py, "-c", "import defbuilder.cli"], ROOT)
    cmds["floor (import attr)"] = ([py, "-c", "import attr"], ROOT)
    cmds["python -c pass"] = ([py, "-c", "pass"], ROOT)
    hp = hpccm_python()
    h = "hpccm --format singularity"
    if hp:
        cmds[h] = (
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
    print(f"{args.rounds} rounds, interleaved")
    print(f"{'command':32} {'median ms':>10} {'best ms':>9}")
    for name in cmds:
        print(f"{name:32} {med[name]:10.1f} {best[name]:9.1f}")
    floor = "floor (import attr)"
    cli = "import defbuilder.cli"
    print(
        f"CLI start-up alone / floor : median {med[cli] / med[floor]:.2f}  best "
        f"{best[cli] / best[floor]:.2f}"
    )
    for name in recipes:
        ours = f"render {name}"
        to_hpccm, to_floor = TARGETS[name]
        print(
            f"{name:14} render / floor : median {med[ours] / med[floor]:.2f}  best "
            f"{best[ours] / best[floor]:.2f}  (target <= {to_floor})"
        )
        print(
            f"{name:14} render - CLI start-up: median {med[ours] - med[cli]:.1f} ms  best "
            f"{best[ours] - best[cli]:.1f} ms"
        )
        if hp:
            print(
                f"{name:14} render / hpccm : median {med[ours] / med[h]:.2f}  best "
                f"{best[ours] / best[h]:.2f}  (target <= {to_hpccm})"
            )


if __name__ == "__main__":
    main()
