"""Execute the examples in docs/ and README.md so they cannot rot.

Fences: ```LANG file=NAME writes NAME into a temp directory; ```python runs in one
namespace per page (cwd = that directory); ```console blocks whose lines start with
"$ defbuilder" are run and their output (stdout then stderr) compared exactly.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from defbuilder import runtime

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


def blocks(page: Path) -> list[tuple[str, str]]:
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(page.read_text())]


def run_console(block: str, cwd: Path) -> None:
    lines = block.splitlines()
    if not lines or not lines[0].startswith("$ "):
        return  # an illustration (install commands...), not a transcript
    i = 0
    while i < len(lines):
        cmd = lines[i][2:]
        expected = []
        i += 1
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        argv = shlex.split(cmd)
        assert argv[0] == "defbuilder", f"only defbuilder transcripts run: {cmd}"
        if argv[1] == "try" and "--show" not in argv and not runtime.available():
            continue  # needs mount namespaces; tests/test_runtime.py skips likewise
        out = subprocess.run(
            [sys.executable, "-m", "defbuilder", *argv[1:]], cwd=cwd, capture_output=True, text=True
        )
        got = (out.stdout + out.stderr).rstrip("\n")
        assert got == "\n".join(expected).rstrip("\n"), f"$ {cmd}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_examples(page, tmp_path, monkeypatch):
    found = blocks(page)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    ran = 0
    for info, body in found:
        words = info.split()
        if not words:
            continue
        if len(words) > 1 and words[1].startswith("file="):
            (tmp_path / words[1][5:]).write_text(body)
        elif words[0] == "python":
            exec(compile(body, f"{page.name}", "exec"), namespace)
            ran += 1
        elif words[0] == "console":
            run_console(body, tmp_path)
            ran += 1
    generated = page.name == "lint-rules.md"  # checked by tests/test_lint.py
    if not generated and (
        page.parent.name == "docs" or (page.name == "README.md" and page.parent == ROOT)
    ):
        assert ran, f"{page.name} has no runnable example"
