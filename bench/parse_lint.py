"""Parser and lint speed over the test corpus (tests/defs + rendered recipes).

Prints numbers; not a test.

(a) parse + render, files/s, files read from disk each time, versus spython's
    SingularityParser alone on the same files, interleaved in one run.
    Target: at least spython's parser alone (>= 1x; the first goal was 2x).
(b) whole-process `defbuilder lint` of the corpus versus one `shellcheck -f json`
    over the same extracted script sections (the floor). Target: <= 1.3x.
(c) with --scaling: lint's own work (its reading of the stages and the rules,
    without the strict parse behind DB100, which bench/parse_scaling.py measures
    as "parse") for the shapes of bench/parse_scaling.py, seconds per MB at each
    size. Linear work keeps s/MB flat.

    python bench/parse_lint.py [--rounds 20] [--scaling [--sizes 1,4,16]]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from defbuilder import render  # noqa: E402
from defbuilder.lint.engine import _context, _dialect, shellcheck_binary  # noqa: E402
from defbuilder.parse import parse  # noqa: E402

REJECTED = {"bom.def", "invalid_section.def", "text_before_header.def"}


def corpus(tmp: Path) -> list[Path]:
    files = [p for p in sorted((ROOT / "tests" / "defs").glob("*.def")) if p.name not in REJECTED]
    for recipe in (
        ROOT / "recipes" / "hello_pytorch" / "recipe.py",
        ROOT / "bench" / "two_stage.py",
    ):
        out = subprocess.run(
            [sys.executable, "-m", "defbuilder", "render", str(recipe)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        path = tmp / (recipe.parent.name + ".def")
        path.write_text(out)
        files.append(path)
    return files


def bench_parse(files: list[Path], rounds: int) -> None:
    from spython.main.parse.parsers import SingularityParser

    usable = []
    for f in files:
        try:
            SingularityParser(str(f))
            usable.append(f)
        except Exception as exc:  # spython refuses e.g. non-docker bootstraps
            print(f"    (spython cannot read {f.name}: {exc}; left out of (a))")
    files = usable
    ours, theirs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for f in files:
            render(parse(f.read_text(), str(f)))
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        for f in files:
            SingularityParser(str(f))
        theirs.append(time.perf_counter() - start)
    o = len(files) / statistics.median(ours)
    t = len(files) / statistics.median(theirs)
    print(f"(a) {len(files)} files x {rounds} rounds")
    print(f"    defbuilder parse+render : {o:8.0f} files/s")
    print(f"    spython SingularityParser: {t:8.0f} files/s")
    print(f"    ratio {o / t:.2f}x (target >= 1x; first goal 2x)")


def bench_lint(files: list[Path], rounds: int, tmp: Path) -> None:
    exe = shellcheck_binary()
    if exe is None:
        print("(b) shellcheck not installed; skipped")
        return
    sections = []
    for i, f in enumerate(files):
        ctx = _context(str(f), f.read_text(), {})
        for j, sec in enumerate(ctx.sections()):
            shell, own = _dialect(sec)
            if shell and sec.body.strip():
                p = tmp / f"{i}-{j}.sh"
                p.write_text(sec.body if own else f"# shellcheck shell={shell}\n" + sec.body)
                sections.append(str(p))
    lint = [sys.executable, "-m", "defbuilder", "lint", *map(str, files)]
    floor = [exe, "-f", "json", *sections]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    a, b = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(lint, capture_output=True, env=env)
        a.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run(floor, capture_output=True, env=env)
        b.append(time.perf_counter() - start)
    ma, mb = statistics.median(a) * 1000, statistics.median(b) * 1000
    print(f"(b) {len(files)} files, {len(sections)} sections, {rounds} rounds (medians)")
    print(f"    defbuilder lint (whole process): {ma:7.1f} ms")
    print(f"    one shellcheck -f json          : {mb:7.1f} ms")
    print(f"    ratio {ma / mb:.2f}x (target <= 1.3x)")


def bench_scaling(sizes: list[int]) -> None:
    import gc

    sys.path.insert(0, str(ROOT / "bench"))
    from parse_scaling import MB, SHAPES

    from defbuilder.lint.engine import _findings

    print("(c) lint's own work (stages read for the rules + rules), no strict parse")
    print(f"    {'shape':18} {'MB':>4} {'read s':>8} {'rules s':>8} {'s/MB':>7}")
    for name, make in SHAPES.items():
        for mb in sizes:
            text = make(mb * MB)
            gc.disable()  # as lint does
            start = time.perf_counter()
            ctx = _context("bench.def", text, {})
            read = time.perf_counter() - start
            start = time.perf_counter()
            _findings(ctx, None, set(), "python")
            rules = time.perf_counter() - start
            gc.enable()
            per_mb = (read + rules) / (len(text) / MB)
            print(f"    {name:18} {mb:>4} {read:8.3f} {rules:8.3f} {per_mb:7.3f}")
            del ctx


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--scaling", action="store_true", help="only (c)")
    parser.add_argument("--sizes", default="1,4,16", help="(c): sizes in MB, comma-separated")
    args = parser.parse_args()
    if args.scaling:
        bench_scaling([int(s) for s in args.sizes.split(",")])
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        files = corpus(tmp)
        bench_parse(files, args.rounds)
        bench_lint(files, args.rounds, tmp)


if __name__ == "__main__":
    main()
