"""Where errors point, run the way users run defbuilder (issue 13, items 1 and 7).

Every case runs through the installed console script (bin/defbuilder) and through
`python -m defbuilder`. A mistake in the arguments is reported as just the message;
a mistake in a file names that file and line; neither ever names the launcher
(bin/defbuilder:8), the standard library or defbuilder's own files.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, Runner, installed_script, run_installed

from defbuilder import runtime

RECIPE = """\
from defbuilder import Header, Stage

recipe = Stage(Header.docker("ubuntu:24.04", stage="final"), runscript="echo hi")
"""

PARAMS = """\
from defbuilder import Header, Stage


def recipe(gpus: int = 1):
    return Stage(Header.docker("ubuntu:24.04"), labels={"gpus": str(gpus)})
"""

TYPO = """\
from defbuilder import Header, Stage

recipe = Stage(
    Header.docker("ubuntu:24.04"),
    postt="echo hi",
)
"""

TYPO_IN_FUNCTION = """\
import defbuilder as db
from defbuilder.blocks import Entrypoint


def recipe():
    stage = db.Stage(db.Header.docker("ubuntu:24.04"))
    return stage + Entrypoint(["/app"], cmdd=["--help"])
"""

JOB_TYPO = """\
from defbuilder import Header, Stage

recipe = Stage(Header.docker("ubuntu:24.04"))
job = {
    "image": "app.sif",
    "request_gpu": 2,
}
"""

DEF = "Bootstrap: docker\nFrom: ubuntu:24.04\n\n%post\n    echo hi\n"

#: Mistakes in the arguments: (argv, start of the message). Run in a directory that
#: holds recipe.py (RECIPE), params.py (PARAMS) and image.sif, with no Apptainer on PATH.
ARGUMENT_ERRORS = {
    "render --stage": (["render", "recipe.py", "--stage", "nope"], "no stage named 'nope'"),
    "render --set without =": (
        ["render", "params.py", "--set", "gpus"],
        "--set 'gpus': expected key=value",
    ),
    "render --check without target": (
        ["render", "--check", "recipe.py"],
        "--check needs the committed .def",
    ),
    "render second file without --check": (
        ["render", "recipe.py", "other.def"],
        "a second file is only for --check",
    ),
    "build without apptainer": (
        ["build", "recipe.py"],
        "neither apptainer nor singularity is on PATH",
    ),
    "mimic-chtc without apptainer": (
        ["mimic-chtc", "image.sif"],
        "neither apptainer nor singularity is on PATH",
    ),
    "push without uri": (["push", "image.sif"], "push needs an oras://"),
    "push uri and staging": (
        ["push", "image.sif", "oras://example.org/a:1", "--staging", "stage"],
        "give either a URI or --staging, not both",
    ),
    "condor without image": (["condor", "recipe.py"], "give the container image with --image"),
    "condor bad image": (["condor", "recipe.py", "--image", "nope"], "--image 'nope'"),
    "condor bad key": (
        ["condor", "recipe.py", "--image", "image.sif", "--key", "x"],
        "--key 'x': expected KEY=VALUE",
    ),
    "try --shell": (
        ["try", "--shell", "zsh", "recipe.py", "run"],
        "--shell 'zsh': expected dash, bash or sh",
    ),
    "try --bind without =": (
        ["try", "--bind", "/app", "recipe.py", "run"],
        "--bind '/app': expected CONTAINER_PATH=EXISTING_HOST_PATH",
    ),
    "try --bind missing source": (
        ["try", "--bind", "/app=./no-such-dir", "recipe.py", "run"],
        "--bind '/app=./no-such-dir': expected CONTAINER_PATH=EXISTING_HOST_PATH",
    ),
    "try --app": (["try", "--app", "nope", "recipe.py", "run"], "no app 'nope'"),
}

#: Mistakes in a file: (files to write, argv, expected ``file:line: message`` start).
FILE_ERRORS = {
    "misspelt Stage keyword": (
        {"typo.py": TYPO},
        ["render", "typo.py"],
        "typo.py:5: Stage() has no argument `postt`; did you mean `post`?",
    ),
    "misspelt block keyword in recipe()": (
        {"typo.py": TYPO_IN_FUNCTION},
        ["render", "typo.py"],
        "typo.py:7: Entrypoint() has no argument `cmdd`; did you mean `cmd`?",
    ),
    "misspelt job key": (
        {"job.py": JOB_TYPO},
        ["condor", "job.py", "-o", "out"],
        "job.py:6: `job` has no key 'request_gpu'; did you mean `request_gpus`?",
    ),
    "render a .def": (
        {"app.def": DEF},
        ["render", "app.def"],
        "app.def: this is an Apptainer definition file, not a recipe script",
    ),
    "build a .def": (
        {"app.def": DEF},
        ["build", "app.def"],
        "app.def: this is an Apptainer definition file, not a recipe script",
    ),
    "render a .def named .txt": (
        {"app.txt": DEF},
        ["render", "app.txt"],
        "app.txt: this is an Apptainer definition file, not a recipe script",
    ),
    "--set value the annotation refuses": (
        {"params.py": PARAMS},
        ["render", "params.py", "--set", "gpus=two"],
        "params.py:4: --set gpus='two': cannot convert to int",
    ),
    "push a missing image": ({}, ["push", "missing.sif", "--staging", "s"], "missing.sif: "),
    "try --stage of the file": (
        {"recipe.py": RECIPE},
        ["try", "--stage", "nope", "recipe.py", "run"],
        "recipe.py: no stage 'nope'",
    ),
}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "recipe.py").write_text(RECIPE)
    (tmp_path / "params.py").write_text(PARAMS)
    (tmp_path / "image.sif").write_bytes(b"not really an image")
    (tmp_path / "empty-bin").mkdir()
    return tmp_path


def _no_apptainer(workdir: Path) -> dict[str, str]:
    # The console script's #! names its Python by absolute path: PATH can be empty.
    (workdir / "empty-bin").mkdir(exist_ok=True)
    return {"PATH": str(workdir / "empty-bin")}


def _one_clean_line(out, expected: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"defbuilder: error: {expected}"), lines[0]
    launcher = str(installed_script())
    for leak in (launcher, "bin/defbuilder", "<frozen", "runpy", str(ROOT / "defbuilder")):
        assert leak not in lines[0]
    return lines[0]


@pytest.mark.parametrize("case", sorted(ARGUMENT_ERRORS))
def test_argument_errors_name_no_file(cli: Runner, workdir: Path, case: str) -> None:
    argv, message = ARGUMENT_ERRORS[case]
    if case == "try --app" and not runtime.available():
        pytest.skip("try needs Linux mount namespaces (unshare) before it looks for apps")
    env = _no_apptainer(workdir) if "without apptainer" in case else None
    out = cli(*argv, cwd=workdir, env=env)
    _one_clean_line(out, message)
    assert sorted(p.name for p in workdir.iterdir()) == [
        "empty-bin",
        "image.sif",
        "params.py",
        "recipe.py",
    ]


@pytest.mark.parametrize("case", sorted(FILE_ERRORS))
def test_file_errors_name_the_file_and_line(cli: Runner, tmp_path: Path, case: str) -> None:
    files, argv, message = FILE_ERRORS[case]
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = _no_apptainer(tmp_path) if argv[0] == "build" else None
    out = cli(*argv, cwd=tmp_path, env=env)
    _one_clean_line(out, message)


def test_a_def_suggests_parse_and_lint(tmp_path: Path) -> None:
    (tmp_path / "app.def").write_text(DEF)
    line = _one_clean_line(run_installed("render", "app.def", cwd=tmp_path), "app.def: ")
    assert "`defbuilder parse app.def`" in line and "`defbuilder lint app.def`" in line


def test_a_recipe_that_only_mentions_bootstrap_still_runs(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.py"
    recipe.write_text(RECIPE + 'NOTE = """\nBootstrap: docker\n"""\n')
    out = run_installed("render", str(recipe))
    assert out.returncode == 0, out.stderr


def test_other_failures_of_a_recipe_keep_their_line(tmp_path: Path) -> None:
    (tmp_path / "r.py").write_text("from defbuilder import Stage\n\nrecipe = Stage(1, 2, 3, 4)\n")
    out = run_installed("render", "r.py", cwd=tmp_path)
    assert out.stderr.startswith("defbuilder: error: r.py:3: "), out.stderr


def test_shell_help_lists_the_choices() -> None:
    out = run_installed("try", "--help")
    assert out.returncode == 0
    assert "dash (Debian, Ubuntu; the default), bash" in " ".join(out.stdout.split())


# --- the mechanism, in process ----------------------------------------------------------


def test_main_called_from_a_program_names_no_caller_line(tmp_path, capsys) -> None:
    """`cli.main([...])` called from here: this test file is the launcher."""
    from defbuilder.cli import main

    (tmp_path / "recipe.py").write_text(RECIPE)
    assert main(["render", str(tmp_path / "recipe.py"), "--stage", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("defbuilder: error: no stage named 'nope'"), err


def test_library_use_names_the_users_line() -> None:
    """Outside the CLI, model errors point at the caller's own line, as before."""
    from defbuilder import DefError, Header, Stage

    with pytest.raises(DefError) as info:
        Stage(Header.docker("ubuntu:24.04"), labels={"a b": "x"})
    here = info.traceback[-1].frame.code.raw.co_filename
    assert info.value.file == os.path.abspath(__file__) or info.value.file == here
    assert info.value.line is not None


def test_check_keys_names_the_misspelt_key_line(tmp_path: Path) -> None:
    from defbuilder import DefError
    from defbuilder.loader import check_keys

    path = tmp_path / "recipe.py"
    path.write_text(
        textwrap.dedent(
            """\
            job = {
                "image": "a.sif",
                "request_gpu": 1,
            }
            """
        )
    )
    with pytest.raises(DefError) as info:
        check_keys(
            str(path), "job", {"image": "a.sif", "request_gpu": 1}, ["image", "request_gpus"]
        )
    assert (
        str(info.value) == f"{path}:3: `job` has no key 'request_gpu'; did you mean `request_gpus`?"
    )
