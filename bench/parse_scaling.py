"""Parse (and lint without shellcheck) time per MB for inputs of growing size.

Prints numbers; not a test. Four shapes, each at 1, 4 and 16 MB (and 50 MB with
``--big``): many small stages, one stage with many SCIF apps, one huge ``%post``,
one huge line. Linear code keeps seconds/MB flat; the target is that 4x the input
takes at most 5x the time, for every shape, and every 50 MB shape parses in <= 10 s
and lints (without shellcheck) in <= 20 s. The last two shapes are more than
Apptainer can read (a section over 64 KiB: ``apptainer.MAX_TOKEN``): parse times how
long it takes to refuse them, lint reads them whole and reports DB100.

    python bench/parse_scaling.py [--big] [--no-lint] [--sizes 1,4,16]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from defbuilder.errors import DefError  # noqa: E402
from defbuilder.lint.engine import lint_text  # noqa: E402
from defbuilder.parse import parse  # noqa: E402

MB = 1 << 20


def _repeat(unit: str, size: int, head: str = "", tail: str = "") -> str:
    count = max(1, (size - len(head) - len(tail)) // len(unit))
    return head + unit * count + tail


def many_stages(size: int) -> str:
    unit = (
        "Bootstrap: docker\nFrom: ubuntu:24.04\nStage: s{n}\n\n%post\n    echo hi\n"
        "    apt-get update\n\n%labels\n    k v\n\n"
    )
    count = max(1, size // len(unit))
    return "".join(unit.replace("{n}", str(i)) for i in range(count))


def many_apps(size: int) -> str:
    unit = (
        '%apprun a{n}\n    exec echo "$@"\n\n%applabels a{n}\n    k v\n\n%appenv a{n}\n'
        "    export X=1\n\n"
    )
    head = "Bootstrap: docker\nFrom: ubuntu:24.04\n\n"
    count = max(1, size // len(unit))
    return head + "".join(unit.replace("{n}", str(i)) for i in range(count))


def huge_section(size: int) -> str:
    return _repeat(
        "    echo 'a fairly ordinary line of shell' && true\n",
        size,
        head="Bootstrap: docker\nFrom: ubuntu:24.04\n\n%post\n",
    )


def huge_line(size: int) -> str:
    return _repeat(
        "x", size, head="Bootstrap: docker\nFrom: ubuntu:24.04\n\n%post\necho ", tail="\n"
    )


SHAPES: dict[str, Callable[[int], str]] = {
    "many stages": many_stages,
    "many apps": many_apps,
    "one huge section": huge_section,
    "one huge line": huge_line,
}


def timed(fn: Callable[[], object]) -> float:
    """Seconds for ``fn()``: the best of up to 3 runs while they take under a second
    together (a millisecond of noise on this machine is a large ratio for the small
    shapes); one run for the slow ones."""
    best, spent = float("inf"), 0.0
    for _ in range(3):
        start = time.perf_counter()
        with contextlib.suppress(DefError):  # refused (a piece over 64 KiB): timed too
            fn()
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
        if spent > 1.0:
            break
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1,4,16", help="sizes in MB, comma-separated")
    ap.add_argument("--big", action="store_true", help="also 50 MB")
    ap.add_argument("--no-lint", action="store_true", help="parse only")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] + ([50] if args.big else [])
    print(f"{'shape':18} {'MB':>4} {'parse s':>9} {'s/MB':>7} {'lint s':>9} {'s/MB':>7}")
    worst: list[str] = []
    for name, make in SHAPES.items():
        previous: tuple[int, float, float] | None = None
        for mb in sizes:
            text = make(mb * MB)
            real_mb = len(text) / MB
            t_parse = timed(lambda text=text: parse(text, "bench.def"))
            t_lint = (
                float("nan")
                if args.no_lint
                else timed(lambda text=text: lint_text(text, "bench.def", shellcheck=False))
            )
            print(
                f"{name:18} {mb:>4} {t_parse:9.3f} {t_parse / real_mb:7.3f} "
                f"{t_lint:9.3f} {t_lint / real_mb:7.3f}"
            )
            if previous is not None and mb == previous[0] * 4:
                for what, now, before in (
                    ("parse", t_parse, previous[1]),
                    ("lint", t_lint, previous[2]),
                ):
                    ratio = now / before if before > 0 else float("nan")
                    if ratio > 5:
                        worst.append(
                            f"{name} {what}: {previous[0]} -> {mb} MB took "
                            f"{ratio:.1f}x (target <= 5x)"
                        )
            previous = (mb, t_parse, t_lint)
    print("\n4x input <= 5x time: " + ("met for every shape" if not worst else "NOT met"))
    for line in worst:
        print("  " + line)


if __name__ == "__main__":
    main()
