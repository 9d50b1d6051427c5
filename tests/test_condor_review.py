"""Regression tests for review findings on `defbuilder condor`, `build`, `push` and
`mimic-chtc`: each bad input is refused with a clear message and exit status 2, run
through the installed `defbuilder` script."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_installed

htcondor2 = pytest.importorskip("htcondor2", reason="pip install -e '.[test]' installs htcondor")

RECIPE = "from defbuilder import Header, Stage\nrecipe = Stage(Header.docker('ubuntu:24.04'))\n"


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.py"
    path.write_text(RECIPE)
    return path


def _refused(out, *words: str) -> None:
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    for word in words:
        assert word in out.stderr, out.stderr


def _submit(path: Path) -> dict[str, str]:
    return {k.lower(): v for k, v in htcondor2.Submit(path.read_text()).items()}


# --- 1. requirements are bracketed before they are joined -----------------------------------


def test_each_requirement_is_bracketed_when_joined(tmp_path, recipe):
    out = run_installed(
        "condor", recipe, "--image", "x.sif", "-o", tmp_path / "o", "--requirements", "(A) || true"
    )
    assert out.returncode == 0, out.stderr
    req = _submit(tmp_path / "o" / "job.sub")["requirements"]
    assert req == "(GPUs_DriverVersion >= 12.0) && (OpSysMajorVer > 7) && ((A) || true)"
    classad2 = pytest.importorskip("classad2")
    # an old driver fails the requirement: `|| true` no longer escapes the && before it
    ad = classad2.ClassAd({"GPUs_DriverVersion": 11.0, "OpSysMajorVer": 9, "A": False})
    assert classad2.ExprTree(req).eval(ad) is False


@pytest.mark.parametrize("expr", ["x)) || ((true", "(A", "A)", '(A == ")"'])
def test_unbalanced_requirements_are_refused(tmp_path, recipe, expr):
    out = run_installed(
        "condor", recipe, "--image", "x.sif", "-o", tmp_path / "o", "--requirements", expr
    )
    _refused(out, "--requirements", "unbalanced")
    assert not (tmp_path / "o").exists()


# --- 3. the recipe must be an existing .py or .def --------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (None, "no such file"),
        ("dir", "not a recipe script or .def"),
        ("notes.txt", "not a recipe script or .def"),
    ],
)
@pytest.mark.parametrize("mode", [[], ["--build"]])
def test_condor_refuses_a_missing_or_wrong_recipe(tmp_path, make, message, mode):
    recipe = tmp_path / (make or "missing.py")
    if make == "dir":
        recipe.mkdir()
    elif make:
        recipe.write_text("hello\n")
    out = run_installed("condor", recipe, *mode, "--image", "x.sif", "-o", tmp_path / "o")
    _refused(out, message, str(recipe))
    assert not (tmp_path / "o").exists()


# --- 4. the wrapper is named after the job ------------------------------------------------------


def test_two_jobs_in_one_directory_keep_their_own_wrappers(tmp_path, recipe):
    out_dir = tmp_path / "o"
    for name, word in (("train", "train.py"), ("eval", "eval.py")):
        out = run_installed(
            "condor", recipe, "--image", "x.sif", "-o", out_dir, "--name", name,
            "--command", "python", "--command", word,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert f"{out_dir / name}.sh" in out.stdout
    for name in ("train", "eval"):
        assert _submit(out_dir / f"{name}.sub")["executable"] == f"{name}.sh"
        assert f"{name}.py" in (out_dir / f"{name}.sh").read_text()
    assert not (out_dir / "job.sh").exists()
    out = run_installed(
        "condor", recipe, "--image", "x.sif", "-o", out_dir, "--name", "t", "--executable", "w.sh"
    )
    assert out.returncode == 0, out.stderr
    assert _submit(out_dir / "t.sub")["executable"] == "w.sh"


# --- 6. the printed commands are shell-quoted ---------------------------------------------------


@pytest.mark.parametrize(("mode", "where"), [([], "my jobs"), (["--build"], "~jobs")])
def test_printed_commands_are_shell_quoted(tmp_path, recipe, mode, where):
    import shlex

    out_dir = tmp_path / where
    image = [] if mode else ["--image", "x.sif"]
    out = run_installed("condor", recipe, *mode, *image, "-o", out_dir, "--name", "t")
    assert out.returncode == 0, out.stderr
    said = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    sub = out_dir / ("t-build.sub" if mode else "t.sub")
    assert shlex.split(said["submit"]) == ["condor_submit", str(sub)]
    interactive = shlex.split(said["interactive"].split(",")[0])
    sub = out_dir / ("t-build-interactive.sub" if mode else "t.sub")
    assert interactive == ["condor_submit", "-interactive", str(sub)]


# --- 2. after an earlier run, the DAG is submitted with -force -------------------------------


def test_dag_submit_hint_forces_past_an_earlier_runs_rescue_dag(tmp_path, recipe):
    import shlex

    staging, out_dir = tmp_path / "staging", tmp_path / "o"
    staging.mkdir()
    args = ("condor", recipe, "--dag", "--staging", staging, "--osdf-prefix", "osdf:///s")
    args += ("--gpu-check", "true", "--name", "train", "-o", out_dir)
    out = run_installed(*args)
    assert out.returncode == 0, out.stderr
    dag = out_dir / "train.dag"
    said = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    assert shlex.split(said["submit"]) == ["condor_submit_dag", str(dag)]
    assert "note" not in said
    # the DAG ran and failed: DAGMan wrote a rescue DAG marking BUILD done
    Path(f"{dag}.rescue001").write_text("DONE BUILD\n")
    recipe.write_text(RECIPE + "# a fix\n")
    out = run_installed(*args)
    assert out.returncode == 0, out.stderr
    said = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    assert shlex.split(said["submit"]) == ["condor_submit_dag", "-force", str(dag)]
    assert "train.dag.rescue001" in said["note"] and "-force" in said["note"]


def test_docs_resubmit_a_regenerated_dag_with_force():
    from conftest import ROOT

    page = (ROOT / "docs" / "chtc-build.md").read_text()
    section = page[page.index("### When a node fails") :]
    assert "$ condor_submit_dag -force job/train.dag" in section
    assert "condor_submit_dag.html" in section  # the manual it cites


# --- 7. zero resources, keys HTCondor cannot parse, bad items files ------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--request-gpus", "0"),
        ("--request-cpus", "0"),
        ("--request-memory", "0"),
        ("--request-disk", "0.0KB"),
        ("--gpus-minimum-memory", "0GB"),
    ],
)
def test_zero_resources_are_refused(tmp_path, recipe, option, value):
    out = run_installed("condor", recipe, "--image", "x.sif", "-o", tmp_path / "o", option, value)
    _refused(out, option)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("key", ["if", "ELIF", "else", "endif"])
def test_conditional_keys_are_refused_cleanly(tmp_path, recipe, key):
    out = run_installed(
        "condor", recipe, "--image", "x.sif", "-o", tmp_path / "o", "--key", f"{key}=1"
    )
    _refused(out, f"--key {key!r}", "conditional")
    assert out.stderr.count("\n") == 1  # no HTCondor log line leaks
    assert "Parse_config" not in out.stderr


def test_a_submit_file_htcondor_cannot_read_leaks_no_log_line():
    import subprocess
    import sys

    code = (
        "from defbuilder import DefError\n"
        "from defbuilder.condor import check_submit\n"
        "try:\n"
        "    check_submit('else = 1\\nqueue 1\\n', [], '1', where='x.sub')\n"
        "except DefError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HTCondor cannot read the submit file" in out.stdout
    assert out.stderr == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"\n  \n", "empty"), (b"a\n\xff\xfe\n", "not UTF-8"), (None, "directory")],
)
def test_bad_items_files_are_refused(tmp_path, recipe, content, message):
    items = tmp_path / "items.txt"
    if content is None:
        items.mkdir()
    else:
        items.write_bytes(content)
    out = run_installed(
        "condor", recipe, "--image", "x.sif", "-o", tmp_path / "o", "--items", items
    )
    _refused(out, str(items), message)
    assert "no such items file" not in out.stderr
    assert not (tmp_path / "o").exists()


# --- 5 and 8. mimic-chtc's directory; messages that say what is wrong ---------------------------


@pytest.mark.parametrize("name", ["a:b", "a,b"])
def test_mimic_chtc_refuses_a_directory_bind_would_split(tmp_path, name):
    where = tmp_path / name
    where.mkdir()
    out = run_installed("mimic-chtc", "--print", "x.sif", cwd=where)
    _refused(out, "--bind")


def test_mimic_chtc_refuses_the_root_directory():
    out = run_installed("mimic-chtc", "--print", "x.sif", cwd=Path("/"))
    _refused(out, "not /")


def test_messages_say_what_is_wrong(tmp_path, recipe):
    out = run_installed("condor", recipe, "--image", "x.sif", "-o", "")
    _refused(out, "-o needs a directory name")
    afile = tmp_path / "afile"
    afile.write_text("x")
    image = tmp_path / "x.sif"
    image.write_text("x")
    out = run_installed("push", image, "--staging", afile)
    _refused(out, "not a directory")
    out = run_installed("build", recipe, "-o", f"{tmp_path / 'adir'}/")
    _refused(out, "does not exist")
    assert not (tmp_path / "adir").exists()
    out = run_installed("build", recipe, "-o", tmp_path)
    _refused(out, "not a directory")
