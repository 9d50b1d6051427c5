"""Activation overhead per container start, through the entry harness.

Prints numbers; not a test. Builds the hello-pytorch-style final stage with the
fake pixi of tests/fakes (the static activation file it produces has the same
shape as with real pixi), then times, interleaved over N rounds:

  exec true   in an image whose %environment is empty         (the floor)
  exec true   in the pixi image (sources /app/activate.sh)
  run true    in the pixi image (runscript -> entrypoint.sh -> true)

and reports the medians and the added cost. Target: <= 5 ms added per start.
The harness's own cost (namespace, chroot) is in every line and cancels out.

    python bench/activation_overhead.py [--rounds 50] [--shell dash]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from defbuilder import Header, Recipe, Stage, render  # noqa: E402
from defbuilder.blocks import Entrypoint, PixiEnvironment, cuda_base, pixi_base  # noqa: E402
from defbuilder.runtime import available, unpack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--shell", default="dash")
    args = parser.parse_args()
    if not available():
        print("the harness needs Linux mount namespaces; not available here")
        return
    tmp = Path(tempfile.mkdtemp(prefix="defbuilder-bench-"))
    base = cuda_base("12.9")
    pixi = PixiEnvironment(environment="gpu", cuda=base, lock=None)  # the fake solves
    text = render(
        Recipe(
            [
                Stage(pixi_base("noble").header(stage="build")) + pixi.build(),
                Stage(base.header(stage="final"))
                + pixi.final("build")
                + Entrypoint([pixi.entrypoint_path], cmd=["true"]),
            ]
        )
    )
    app = tmp / "app"
    app.mkdir()
    (app / "pixi.toml").write_text('[workspace]\nname = "bench"\n')
    (app / "pixi.lock").write_text("version: 6\n")
    fakes = ROOT / "tests" / "fakes"
    build = unpack(text, tmp / "build", stage="build", files={"/app": app, "/opt/f": fakes})
    res = build.run("exec", build.build_script_argv("post"), env={"PATH": "/opt/f:/usr/bin:/bin"})
    if res.returncode:
        sys.exit(res.stderr.decode())
    final = unpack(text, tmp / "final", stage="final", files={"/app": app})
    empty = unpack(render(Stage(Header.docker("ubuntu:24.04"))), tmp / "empty")
    cases = {
        "exec true (no activation)": (empty, "exec", ["true"]),
        "exec true (pixi activation)": (final, "exec", ["true"]),
        "run true (activation + entrypoint)": (final, "run", ["true"]),
    }
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(3):
        for img, action, argv in cases.values():
            img.run(action, argv, sh=args.shell)
    for _ in range(args.rounds):
        for name, (img, action, argv) in cases.items():
            start = time.perf_counter()
            r = img.run(action, argv, sh=args.shell)
            samples[name].append(time.perf_counter() - start)
            assert r.returncode == 0, r.stderr
    med = {k: statistics.median(v) * 1000 for k, v in samples.items()}
    floor = med["exec true (no activation)"]
    print(f"/bin/sh = {args.shell}, {args.rounds} rounds, medians")
    for name, ms in med.items():
        print(f"  {name:36} {ms:7.2f} ms   added {ms - floor:+6.2f} ms")
    print("target: <= 5 ms added per container start")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
