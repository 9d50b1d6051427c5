"""Input-addressed image names: `defbuilder hash --inputs` and `build --name-by inputs`.

The name is NAME-<8 hex>.sif with the hex from a SHA-256 over what `apptainer build`
reads: the rendered .def and every host file its %files copy (resolved against the
recipe's directory: Apptainer runs `cp -fLr SRC` in the working directory of the
build, internal/pkg/build/files/copy.go at v1.5.3, and `defbuilder build` runs it in
the recipe's directory), plus the --set and --build-arg values.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import fake_apptainer_bin

from defbuilder import DefError
from defbuilder.images import build_inputs, input_files, inputs_digest

RECIPE = """\
from defbuilder import App, BuildArg, Files, Header, Stage

TAG = BuildArg("TAG", "24.04")


def recipe(greeting: str = "hi"):
    return Stage(
        Header.docker(f"ubuntu:{TAG}"),
        arguments=[TAG],
        files=Files(["data", ("run.sh", "/run.sh"), ("conf/*.toml", "/etc/app/")]),
        post=f"echo {greeting}",
        apps=[App("tool", run="exec tool", files=[("tool.py", "/opt/tool.py")])],
    )
"""


def _project(root: Path) -> Path:
    proj = root / "proj"
    (proj / "data" / "sub").mkdir(parents=True)
    (proj / "conf").mkdir()
    (proj / "recipe.py").write_text(RECIPE)
    (proj / "data" / "a.txt").write_text("alpha\n")
    (proj / "data" / "sub" / "b.bin").write_bytes(bytes(range(256)))
    (proj / "run.sh").write_text("#!/bin/sh\necho run\n")
    (proj / "run.sh").chmod(0o755)
    (proj / "conf" / "one.toml").write_text("x = 1\n")
    (proj / "conf" / "two.toml").write_text("y = 2\n")
    (proj / "conf" / "notes.md").write_text("not copied: the glob is *.toml\n")
    (proj / "tool.py").write_text("print('tool')\n")
    (proj / "README.md").write_text("not copied\n")
    return proj / "recipe.py"


def _name(cli, recipe: Path, *args: str, env=None) -> str:
    out = cli("hash", "--inputs", recipe, *args, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_name_covers_the_def_and_every_copied_file(tmp_path):
    recipe = _project(tmp_path)
    inputs = build_inputs(str(recipe))
    assert [(f.name, f.is_dir) for f in inputs.files] == [
        ("data", True),
        ("data/a.txt", False),
        ("data/sub", True),
        ("data/sub/b.bin", False),
        ("run.sh", False),
        ("conf/one.toml", False),
        ("conf/two.toml", False),
        ("tool.py", False),
    ]
    assert [f.name for f in inputs.top_level()] == [
        "data",
        "run.sh",
        "conf/one.toml",
        "conf/two.toml",
        "tool.py",
    ]
    assert inputs.name == f"proj-{inputs.digest[:8]}.sif"
    assert inputs.digest == inputs_digest(inputs.def_text, inputs.files)


def test_stable_across_hash_seeds_mtimes_and_machines(cli, tmp_path):
    recipe = _project(tmp_path / "one")
    first = _name(cli, recipe, env={"PYTHONHASHSEED": "1"})
    assert first.startswith("proj-") and first.endswith(".sif") and len(first) == 17
    assert _name(cli, recipe, env={"PYTHONHASHSEED": "2"}) == first
    for path in recipe.parent.rglob("*"):
        os.utime(path, (1, 1))  # timestamps are not inputs
    assert _name(cli, recipe) == first
    # another machine: the same tree elsewhere (copied without timestamps or owner)
    other = tmp_path / "machine2" / "checkout"
    shutil.copytree(recipe.parent, other / "proj", copy_function=shutil.copy)
    assert _name(cli, other / "proj" / "recipe.py") == first
    # a different umask on that machine (group-writable files) changes nothing
    for path in (other / "proj").rglob("*"):
        path.chmod(path.stat().st_mode | 0o020)
    assert _name(cli, other / "proj" / "recipe.py") == first


@pytest.mark.parametrize(
    "change",
    [
        "one byte of a copied file",
        "a file added to a copied directory",
        "a copied file made executable",
        "a file a glob now matches",
        "an app's copied file",
    ],
)
def test_any_input_byte_changes_the_name(cli, tmp_path, change):
    recipe = _project(tmp_path)
    before = _name(cli, recipe)
    proj = recipe.parent
    if change == "one byte of a copied file":
        data = bytearray((proj / "data" / "sub" / "b.bin").read_bytes())
        data[100] ^= 1
        (proj / "data" / "sub" / "b.bin").write_bytes(bytes(data))
    elif change == "a file added to a copied directory":
        (proj / "data" / "sub" / "c.txt").write_text("")
    elif change == "a copied file made executable":
        (proj / "data" / "a.txt").chmod(0o755)
    elif change == "a file a glob now matches":
        (proj / "conf" / "three.toml").write_text("")
    else:
        (proj / "tool.py").write_text("print('tool 2')\n")
    assert _name(cli, recipe) != before


def test_set_and_build_arg_values_change_the_name(cli, tmp_path):
    recipe = _project(tmp_path)
    base = _name(cli, recipe)
    assert _name(cli, recipe, "--set", "greeting=hello") != base
    # a --set value that renders the same .def is still an input
    assert _name(cli, recipe, "--set", "greeting=hi") != base
    assert _name(cli, recipe, "--build-arg", "TAG=22.04") != base
    assert _name(cli, recipe, "--build-arg", "TAG=22.04") != _name(
        cli, recipe, "--build-arg", "TAG=20.04"
    )


def test_files_the_image_does_not_use_change_nothing(cli, tmp_path):
    recipe = _project(tmp_path)
    before = _name(cli, recipe)
    (recipe.parent / "README.md").write_text("edited\n")
    (recipe.parent / "conf" / "notes.md").write_text("edited\n")
    (recipe.parent / "unrelated.py").write_text("x = 1\n")
    assert _name(cli, recipe) == before


def test_no_field_can_be_mistaken_for_another():
    assert inputs_digest("ab", []) != inputs_digest("a", [], {"b": ""})
    assert inputs_digest("", [], {"a": "b=c"}) != inputs_digest("", [], {"a=b": "c"})
    assert inputs_digest("", [], None, ["A=1"]) != inputs_digest("", [], {"A": "1"})


def test_a_missing_source_is_an_error_naming_it(cli, tmp_path):
    recipe = _project(tmp_path)
    shutil.rmtree(recipe.parent / "data")
    out = cli("hash", "--inputs", recipe)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (
        f"defbuilder: error: %files source 'data' does not exist (looked in {recipe.parent})\n"
    )
    out = cli("hash", "x.sif", "--set", "a=b")
    assert out.returncode == 2
    assert out.stderr == (
        "defbuilder: error: --set and --build-arg name a build's inputs: give --inputs RECIPE\n"
    )


def test_a_directory_loop_is_an_error(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "back").symlink_to(tmp_path / "d")
    with pytest.raises(DefError, match="loops back"):
        input_files(["d"], str(tmp_path))


# --- build --name-by inputs ------------------------------------------------------------------


@pytest.fixture
def fake_apptainer(tmp_path):
    bindir = fake_apptainer_bin(tmp_path)
    log = tmp_path / "apptainer.log"
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "FAKE_APPTAINER_LOG": str(log),
        "FAKE_APPTAINER_MB": "1",
    }
    return env, log


def test_build_by_inputs_builds_once_then_skips(cli, tmp_path, fake_apptainer):
    env, log = fake_apptainer
    recipe = _project(tmp_path)
    name = _name(cli, recipe)
    out = cli("build", recipe, "--name-by", "inputs", env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{tmp_path / name}\n"
    assert (tmp_path / name).stat().st_size > 1 << 20
    assert len(log.read_text().splitlines()) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    again = cli("build", recipe, "--name-by", "inputs", env=env, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == out.stdout
    assert again.stderr == (
        f"defbuilder: {tmp_path / name} exists, built from the same inputs: not building\n"
    )
    assert len(log.read_text().splitlines()) == 1  # apptainer was not run again


def test_build_by_inputs_skips_what_is_staged(cli, tmp_path, fake_apptainer):
    env, log = fake_apptainer
    recipe = _project(tmp_path)
    name = _name(cli, recipe)
    staging = tmp_path / "staging"
    staging.mkdir()
    args = ("--staging", staging, "--osdf-prefix", "osdf:///chtc/staging/me")
    out = cli("build", recipe, "--name-by", "inputs", "-o", tmp_path / "b" / "x.sif", *args,
              env=env, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2 and "b/x.sif" not in out.stdout  # -o's directory is missing
    out = cli("build", recipe, "--name-by", "inputs", *args, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"osdf:///chtc/staging/me/{name}\n"
    assert (staging / name).read_bytes() == (tmp_path / name).read_bytes()
    (tmp_path / name).unlink()  # built elsewhere: only the staged copy is here
    again = cli("build", recipe, "--name-by", "inputs", *args, env=env, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == out.stdout
    assert "exists, built from the same inputs: not building" in again.stderr
    assert len(log.read_text().splitlines()) == 1


def test_build_by_inputs_failure_leaves_nothing(cli, tmp_path, fake_apptainer):
    env, _log = fake_apptainer
    recipe = _project(tmp_path)
    out = cli("build", recipe, "--name-by", "inputs", env={**env, "FAKE_APPTAINER_EXIT": "4"},
              cwd=tmp_path)  # fmt: skip
    assert out.returncode == 4 and out.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apptainer.log", "bin", "proj"]


def test_build_name_by_option_mistakes(cli, tmp_path):
    recipe = _project(tmp_path)
    out = cli("build", recipe, "--name-by", "inputs", "--hash-name")
    assert out.returncode == 2 and "not with --name-by inputs" in out.stderr
    out = cli("build", recipe, "--osdf-prefix", "osdf:///x")
    assert out.returncode == 2 and "give --staging too" in out.stderr
