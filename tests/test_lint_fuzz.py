"""lint never raises (issue 12, item 6): mutated definition files give findings or a
clean exit 2, in every output format, and lint reads them as parse does.

The corpus is tests/defs/*.def and every rule's examples; hypothesis mutates them
(characters inserted from a nasty alphabet, runs deleted, lines duplicated or cut),
derandomized and bounded, so CI runs the same examples in about ten seconds. The
alphabet holds what Apptainer and Python read differently: Go's white space is not
Python's (``unicode.IsSpace`` excludes U+001C-U+001F, which ``str.strip`` removes;
https://pkg.go.dev/unicode#IsSpace), ``bufio.ScanLines`` drops only a CR before LF
(https://pkg.go.dev/bufio#ScanLines), Go does not strip a BOM, and a header value
ending in ``\\`` continues (deffile.go doHeader).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defbuilder.cli import main
from defbuilder.errors import DefError
from defbuilder.lint import RULES, lint_text
from defbuilder.parse import parse

CORPUS = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests" / "defs").glob("*.def"))]
CORPUS += [r.bad for r in RULES if not r.not_linted] + [r.good for r in RULES if not r.not_linted]

NASTY = [
    "\\",
    "\\\n",
    "\r",
    "\n",
    "\r\n",
    "\r\r\n",
    "\ufeff",
    "\x00",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x1f",
    "\x0b",
    "\x0c",
    "\x85",
    "\xa0",
    "\u2028",
    "\u3000",
    " ",
    "\t",
    "#",
    "#!",
    "#!/bin/bash\n",
    "%",
    "%post\n",
    "  %post -c /bin/bash\n",
    "%files from ",
    "%apprun a\n",
    "%appfiles\n",
    "%arguments\n",
    "%labels\n",
    "{{",
    "}}",
    "{{ A }}",
    "A=1\n",
    ":",
    "'",
    '"',
    "Bootstrap: docker\n",
    "boot\u017ftrap: docker\n",
    "From: ",
    "Stage: ",
    "OtherURL1: x\n",
    "$@",
    "exec ",
    "| sh",
    "<<EOF\n",
    "EOF",
    "\u017f",
    "\u212a",
    "é",
    "\U0001f600",
]


def mutate(rng_text: str, ops: list[tuple[str, float, float, str]]) -> str:
    """Apply (operation, position, extent, token) steps; positions are fractions, so
    the same steps fit any text."""
    text = rng_text
    for op, where, extent, token in ops:
        pos = int(where * len(text))
        if op == "insert":
            text = text[:pos] + token + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1 + int(extent * 8) :]
        else:
            lines = text.split("\n")
            i = int(where * len(lines)) % max(len(lines), 1)
            if op == "duplicate":
                lines[i:i] = lines[i : i + 1 + int(extent * 3)]
            elif op == "cut":
                del lines[i : i + 1 + int(extent * 3)]
            else:  # swap
                j = int(extent * len(lines)) % max(len(lines), 1)
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


_STEP = st.tuples(
    st.sampled_from(["insert", "insert", "insert", "delete", "duplicate", "cut", "swap"]),
    st.floats(0, 1),
    st.floats(0, 1),
    st.sampled_from(NASTY),
)
MUTATED = st.builds(mutate, st.sampled_from(CORPUS), st.lists(_STEP, min_size=1, max_size=8))


def run_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def check_run(code: int, out: str, err: str, fmt: str) -> None:
    """Findings (exit 1), nothing (exit 0), or one clean error line (exit 2)."""
    assert code in (0, 1, 2), code
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("defbuilder: error: ") and out == "", err
        return
    if fmt == "json":
        found = json.loads(out)["findings"]
    elif fmt == "sarif":
        found = json.loads(out)["runs"][0]["results"]
    else:
        found = out.splitlines()
    assert bool(found) == (code == 1)


@settings(
    max_examples=1000,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=MUTATED, fmt=st.sampled_from(["text", "json", "sarif"]))
def test_lint_never_raises_on_mutated_files(text: str, fmt: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.def"
        path.write_bytes(text.encode("utf-8"))
        code, out, err = run_main("lint", "--no-shellcheck", "--format", fmt, str(path))
    check_run(code, out, err, fmt)


@settings(
    max_examples=600,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=MUTATED)
def test_lint_reads_what_parse_refuses(text: str) -> None:
    """A .def Apptainer (and so parse) refuses is a finding on the line parse names:
    DB100, or the specific rule that explains it (DB103, DB104, DB117); a file parse
    accepts has no DB100."""
    found = lint_text(text, "fuzz.def", shellcheck=False)
    try:
        parse(text, "fuzz.def")
    except DefError as exc:
        refused = {"DB100", "DB103", "DB104", "DB117"}
        assert any(f.line == (exc.line or 1) and f.code in refused for f in found), (
            exc,
            [(f.line, f.code) for f in found],
        )
    else:
        assert not [f for f in found if f.code == "DB100"]


def test_lint_with_shellcheck_over_a_mutated_corpus(tmp_path: Path) -> None:
    """The same mutations, with shellcheck (one run for all files): every finding maps
    to a line of its own file, in every format."""
    rng = random.Random(12)  # seeded: the same files every run
    files = []
    for i in range(40):
        steps = [
            (
                rng.choice(["insert", "insert", "delete", "duplicate", "cut", "swap"]),
                rng.random(),
                rng.random(),
                rng.choice(NASTY),
            )
            for _ in range(rng.randint(1, 6))
        ]
        path = tmp_path / f"m{i:02}.def"
        path.write_bytes(mutate(rng.choice(CORPUS), steps).encode("utf-8"))
        files.append(path)
    for fmt in ("text", "json", "sarif"):
        out = subprocess.run(
            [sys.executable, "-m", "defbuilder", "lint", "--format", fmt, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        check_run(out.returncode, out.stdout, out.stderr, fmt)
        if fmt == "json":
            findings = json.loads(out.stdout)["findings"]
            assert {f["code"] for f in findings} & {"DB110", "DB111"}  # shellcheck ran
            for f in findings:
                lines = Path(f["file"]).read_bytes().count(b"\n") + 1
                assert 1 <= f["line"] <= lines, f


@pytest.mark.parametrize(
    "text",
    [
        "\ufeffBootstrap: docker\nFrom: ubuntu:24.04\n",
        "Bootstrap: docker\r\nFrom: ubuntu:24.04\r\n%post\r\n  echo\x00x\r\n",
        "Bootstrap: docker\rFrom: ubuntu:24.04\r%post\r  echo a\r",
        "Bootstrap: docker\nFrom: ubuntu:24.04\x1f\n%post\x1c\n  echo\n",
        "Bootstrap: docker\nFrom: ubuntu:24.04 \\\n\n%post\n  true\n",
        "Bootstrap: docker\nIncludeCmd: yes\\\n# c\n",
        "Bootstrap: docker\nRegistry: https://r \\\n",
        "Bootstrap: docker\n\x1c%post\n",
        "%post\n  echo {{ A }}\n",
        "",
        "\x00",
        "\\",
        "{{",
    ],
)
@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_nasty_files_in_every_format(text: str, fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "x.def"
    path.write_bytes(text.encode("utf-8"))
    check_run(*run_main("lint", "--format", fmt, str(path)), fmt)
