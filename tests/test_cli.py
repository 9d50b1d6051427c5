"""The `defbuilder render` command as a user runs it: output, errors, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, Runner, installed_script, run_cli

TWO_STAGE = """\
from defbuilder import Files, Header, Recipe, Stage

build = Stage(Header.docker("ubuntu:24.04", stage="build"), post="make")
final = Stage(Header.docker("ubuntu:24.04", stage="final"),
              files=Files(["/app/bin"], from_stage="build"),
              environment={"GREETING": "hello $USER"})
recipe = Recipe([build, final])
"""

PARAMS = """\
from packaging.version import Version
from defbuilder import Header, Stage

def recipe(cuda: Version = Version("12.9"), gpus: int = 1, debug: bool = False,
           name: str = "app", scale: float = 1.0):
    return Stage(Header.docker(f"nvidia/cuda:{cuda}.1-base-ubuntu24.04"),
                 labels={"gpus": str(gpus), "debug": str(debug), "name": name,
                         "scale": repr(scale), "cuda_major": str(cuda.major)})
"""


def write(tmp_path: Path, text: str, name: str = "recipe.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_render_two_stage_to_stdout(tmp_path):
    recipe = write(tmp_path, TWO_STAGE)
    out = run_cli("render", str(recipe))
    assert out.returncode == 0, out.stderr
    assert "%files from build\n    /app/bin\n" in out.stdout
    assert out.stdout.count("Bootstrap: docker") == 2
    assert out.stderr == ""


def test_render_is_byte_identical_across_hash_seeds(tmp_path):
    recipe = write(tmp_path, TWO_STAGE)
    outs = {
        run_cli("render", str(recipe), env={"PYTHONHASHSEED": seed}).stdout
        for seed in ("0", "1", "12345", "random")
    }
    assert len(outs) == 1


def test_output_file_is_written(tmp_path):
    recipe = write(tmp_path, TWO_STAGE)
    target = tmp_path / "app.def"
    out = run_cli("render", str(recipe), "-o", str(target))
    assert out.returncode == 0 and out.stdout == ""
    assert target.read_text() == run_cli("render", str(recipe)).stdout
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["app.def", "recipe.py"]


def test_set_converts_with_annotations(tmp_path):
    recipe = write(tmp_path, PARAMS)
    out = run_cli(
        "render",
        str(recipe),
        "--set",
        "cuda=12.8",
        "--set",
        "gpus=2",
        "--set",
        "debug=yes",
        "--set",
        "scale=0.5",
        "--set",
        "name=a b",
    )
    assert out.returncode == 0, out.stderr
    assert "From: nvidia/cuda:12.8.1-base-ubuntu24.04" in out.stdout
    for line in ("gpus 2", "debug True", "name a b", "scale 0.5", "cuda_major 12"):
        assert f"    {line}\n" in out.stdout


def test_stage_selects_a_stage_and_what_it_copies_from(tmp_path):
    recipe = write(tmp_path, TWO_STAGE)
    only_build = run_cli("render", str(recipe), "--stage", "build").stdout
    assert "Stage: build" in only_build and "Stage: final" not in only_build
    final = run_cli("render", str(recipe), "--stage", "final").stdout
    assert "Stage: build" in final and "Stage: final" in final


def test_check_reports_stale_def(tmp_path):
    recipe = write(tmp_path, TWO_STAGE)
    target = tmp_path / "app.def"
    run_cli("render", str(recipe), "-o", str(target))
    assert run_cli("render", "--check", str(recipe), str(target)).returncode == 0
    target.write_text(target.read_text() + "# edited\n")
    out = run_cli("render", "--check", str(recipe), str(target))
    assert out.returncode == 1 and "stale" in out.stderr


def test_version_and_console_script():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("defbuilder ")
    res = subprocess.run([str(installed_script()), "--version"], capture_output=True, text=True)
    assert res.stdout == out.stdout


# --- user mistakes: one message naming file and line, exit 2, no output file -----------

BAD = {
    "syntax": ("from defbuilder import *\nrecipe = Stage(\n", 2, "syntax error"),
    "no-recipe": ("from defbuilder import *\nstage = 1\n", None, "no `recipe` defined"),
    "files-from-unknown": (
        "from defbuilder import *\n"
        "s = Stage(Header.docker('ubuntu:24.04', stage='final'),\n"
        "          files=Files(['/x'], from_stage='biuld'))\n"
        "recipe = Recipe([s])\n",
        3,
        "%files from biuld: unknown stage",
    ),
    "duplicate-stage": (
        "from defbuilder import *\n"
        "a = Stage(Header.docker('ubuntu:24.04', stage='build'))\n"
        "b = Stage(Header.docker('ubuntu:24.04', stage='build'))\n"
        "recipe = Recipe([a, b])\n",
        3,
        "duplicate stage name 'build'",
    ),
    "label-key": (
        "from defbuilder import *\n\n"
        "recipe = Stage(Header.docker('ubuntu:24.04'), labels={'my label': 'x'})\n",
        3,
        "invalid label key 'my label'",
    ),
    "missing-from": (
        "from defbuilder import *\nrecipe = Stage(\n    Header('docker', stage='build'))\n",
        3,
        "Bootstrap: docker needs From:",
    ),
    "wrong-type": ("recipe = 42\n", None, "must be a Recipe or Stage"),
    "raises": ("import os\nrecipe = os.environ['NO_SUCH_VARIABLE_HERE']\n", 2, "raised KeyError"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_user_mistakes(cli: Runner, tmp_path, case):
    text, line, message = BAD[case]
    recipe = write(tmp_path, text)
    target = tmp_path / "app.def"
    out = cli("render", str(recipe), "-o", str(target))
    assert out.returncode == 2
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    where = f"{recipe}:{line}:" if line else f"{recipe}:"
    assert out.stderr.startswith(f"defbuilder: error: {where}"), out.stderr
    assert message in out.stderr
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["recipe.py"]  # no temp file left


def test_failed_render_keeps_existing_output(tmp_path):
    recipe = write(tmp_path, BAD["label-key"][0])
    target = tmp_path / "app.def"
    target.write_text("previous\n")
    assert run_cli("render", str(recipe), "-o", str(target)).returncode == 2
    assert target.read_text() == "previous\n"


def test_debug_shows_traceback(tmp_path):
    recipe = write(tmp_path, BAD["label-key"][0])
    out = run_cli("--debug", "render", str(recipe))
    assert out.returncode == 2 and "Traceback" in out.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["gpu=2"],
            "--set gpu: unknown parameter; recipe() accepts: cuda, gpus, debug, name, scale",
        ),
        (["gpus=two"], "--set gpus='two': cannot convert to int"),
        (["cuda=twelve"], "--set cuda='twelve': cannot convert to Version"),
        (["debug=maybe"], "--set debug='maybe': cannot convert to bool"),
        (["novalue"], "--set 'novalue': expected key=value"),
    ],
)
def test_bad_set(cli: Runner, tmp_path, sets, message):
    recipe = write(tmp_path, PARAMS)
    args = [a for s in sets for a in ("--set", s)]
    out = cli("render", str(recipe), *args, "-o", str(tmp_path / "x.def"))
    assert out.returncode == 2
    if "key=value" in message:  # about the argument: no file named
        assert out.stderr == f"defbuilder: error: {message}\n"
    else:
        assert out.stderr.startswith(f"defbuilder: error: {recipe}:4: {message}")  # def line
    assert not (tmp_path / "x.def").exists()


def test_set_on_a_non_function_recipe(tmp_path):
    recipe = write(tmp_path, TWO_STAGE)
    out = run_cli("render", str(recipe), "--set", "x=1")
    assert out.returncode == 2 and "not a function" in out.stderr


def test_missing_file():
    out = run_cli("render", "/no/such/recipe.py")
    assert out.returncode == 2 and "/no/such/recipe.py: no such recipe file" in out.stderr


def test_a_directory_is_not_a_recipe(tmp_path):
    out = run_cli("render", str(tmp_path))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (
        f"defbuilder: error: {tmp_path}: is a directory; give the recipe script in it "
        "(e.g. DIR/recipe.py)\n"
    )


def test_render_does_not_import_torch_or_jinja2(tmp_path):
    recipe = write(tmp_path, TWO_STAGE)
    code = (
        "import sys, io, contextlib\n"
        "from defbuilder.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['render', {str(recipe)!r}]) == 0\n"
        "print(sorted(m for m in ('torch', 'jinja2', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env={**os.environ}
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_output_into_missing_directory_is_a_clear_error(tmp_path):
    recipe = write(tmp_path, TWO_STAGE)
    out = run_cli("render", str(recipe), "-o", str(tmp_path / "no" / "such" / "app.def"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "No such file or directory" in out.stderr


def test_a_recipe_warning_is_one_line_once_even_when_the_recipe_loads_twice(tmp_path):
    """`condor --build` loads the recipe for the job and for the build: the missing
    pixi.lock is reported once, as `defbuilder: warning: file:line: message`."""
    from conftest import ROOT, run_installed

    out = run_installed(
        "condor",
        str(ROOT / "recipes" / "hello_pytorch" / "recipe.py"),
        "--build",
        "--staging",
        "/staging/USER",
        "-o",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if "no lock file" in ln]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("defbuilder: warning: ") and "recipe.py:" in lines[0]
    assert "Traceback" not in out.stderr and "build = Stage(" not in out.stderr
