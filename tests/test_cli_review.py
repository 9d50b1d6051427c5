"""What a careless recipe or command line must not be able to do (found by trying the
installed command as a user would)."""

from __future__ import annotations

import os

import pytest
from conftest import run_installed

RECIPE = 'from defbuilder import Header, Stage\nrecipe = Stage(Header.docker("ubuntu:24.04"))\n'


def test_a_recipe_that_prints_does_not_corrupt_the_def(tmp_path):
    recipe = tmp_path / "prints.py"
    recipe.write_text('print("hello")\n' + RECIPE)
    out = run_installed("render", str(recipe))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Bootstrap: docker\n")
    assert "hello" in out.stderr


def test_a_recipe_that_changes_directory_does_not_move_the_output(tmp_path):
    recipe = tmp_path / "chd.py"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    recipe.write_text(f"import os\nos.chdir({str(elsewhere)!r})\n" + RECIPE)
    out = run_installed("render", "chd.py", "-o", "chd.def", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "chd.def").read_text().startswith("Bootstrap: docker")
    assert not (elsewhere / "chd.def").exists()


@pytest.mark.parametrize("code", ["0", "3", "'bye'"])
def test_sys_exit_in_a_recipe_is_a_user_error_at_its_line(tmp_path, code):
    recipe = tmp_path / "e.py"
    recipe.write_text(f"import sys\nsys.exit({code})\n")
    out = run_installed("render", str(recipe), "-o", str(tmp_path / "e.def"))
    assert out.returncode == 2
    assert f"{recipe}:2: the recipe called sys.exit(" in out.stderr
    assert not (tmp_path / "e.def").exists()


@pytest.mark.parametrize(
    ("command", "name", "content"),
    [
        ("render", "r.py", RECIPE),
        ("parse", "a.def", "Bootstrap: docker\nFrom: ubuntu:24.04\n"),
        ("from-dockerfile", "Dockerfile", "FROM ubuntu:24.04\n"),
        ("lint", "a.def", "Bootstrap: docker\nFrom: ubuntu:24.04\n"),
    ],
)
def test_output_is_never_the_input_file(tmp_path, command, name, content):
    path = tmp_path / name
    path.write_text(content)
    out = run_installed(command, str(path), "-o", str(path))
    assert out.returncode == 2
    assert "is the input file" in out.stderr
    assert path.read_text() == content


def test_render_check_is_byte_for_byte_and_its_hint_keeps_the_options(tmp_path):
    recipe = tmp_path / "p.py"
    recipe.write_text(
        "from defbuilder import Header, Stage\n"
        "def recipe(tag: str = '24.04'):\n"
        "    return Stage(Header.docker('ubuntu:' + tag))\n"
    )
    target = tmp_path / "app.def"
    assert (
        run_installed("render", str(recipe), "--set", "tag=22.04", "-o", str(target)).returncode
        == 0
    )
    ok = run_installed("render", "--check", str(recipe), str(target), "--set", "tag=22.04")
    assert ok.returncode == 0, ok.stderr
    target.write_bytes(target.read_bytes().replace(b"\n", b"\r\n"))  # a CRLF copy
    stale = run_installed("render", "--check", str(recipe), str(target), "--set", "tag=22.04")
    assert stale.returncode == 1
    assert "--set tag=22.04" in stale.stderr and f"-o {target}" in stale.stderr
    target.write_bytes(b"x\xff")
    bad = run_installed("render", "--check", str(recipe), str(target))
    assert bad.returncode == 2 and "not UTF-8" in bad.stderr and "Traceback" not in bad.stderr


def test_debug_works_after_the_command_too(tmp_path):
    recipe = tmp_path / "e.py"
    recipe.write_text("import sys\nsys.exit(1)\n")
    out = run_installed("render", str(recipe), "--debug")
    assert out.returncode == 2
    assert "Traceback" in out.stderr and "unrecognized arguments" not in out.stderr


def test_sigterm_ends_a_command_through_its_cleanup(tmp_path):
    """SIGTERM raises SystemExit(143) in defbuilder, so `finally` blocks run; here a
    recipe blocks until signalled, and the temporary .def of `build` would be left."""
    import signal
    import subprocess
    import sys

    recipe = tmp_path / "slow.py"
    recipe.write_text(
        "import sys, time\n" + RECIPE + "sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "defbuilder", "render", str(recipe)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr.readline() == "ready\n"  # the recipe is running: synchronised
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == ["slow.py"]


def test_push_of_a_directory_says_it_is_a_directory(tmp_path):
    out = run_installed("push", str(tmp_path), "--staging", str(tmp_path))
    assert out.returncode == 2
    assert f"{tmp_path}: is a directory, not an image" in out.stderr


def test_main_puts_back_what_it_sets():
    """`main([...])` from a program leaves the SIGTERM handler and warning display as
    it found them."""
    import signal
    import warnings

    from defbuilder.cli import main

    before = (signal.getsignal(signal.SIGTERM), warnings.showwarning)
    assert main(["render", "/nonexistent/recipe.py"]) == 2
    assert (signal.getsignal(signal.SIGTERM), warnings.showwarning) == before
