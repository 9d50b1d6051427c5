"""The model's rules: immutability, composition, and what Apptainer would misread."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defbuilder import (
    App,
    BuildArg,
    DefError,
    Environment,
    Files,
    Header,
    Recipe,
    Script,
    Sections,
    Stage,
    render,
)
from defbuilder.model import AGENTS

UBUNTU = Header.docker("ubuntu:24.04")


def test_values_are_frozen():
    stage = Stage(UBUNTU, post="a")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stage.post = Script("b")  # type: ignore[misc]


def test_extend_returns_new_stage_and_keeps_original():
    base = Stage(UBUNTU, post="a", environment={"X": "1"}, labels={"k": "1"})
    child = base.extend(
        post="b", environment={"Y": "2"}, labels={"k": "2", "j": "3"}, files=Files(["f"])
    )
    assert child.post.body == "a\nb"
    assert list(child.environment.exports()) == ["X", "Y"]
    assert [(lbl.key, lbl.value) for lbl in child.labels] == [("k", "2"), ("j", "3")]
    assert base.post.body == "a" and base.files == () and len(base.labels) == 1


def test_blocks_compose_with_plus():
    block = Sections(
        post="pip install x",
        environment=Environment(". /env.sh"),
        apps=[App("tool", run="exec tool")],
    )
    stage = Stage(UBUNTU, post="apt-get update") + block
    assert stage.post.body == "apt-get update\npip install x"
    assert stage.apps[0].name == "tool"
    with pytest.raises(DefError, match="app tool is already defined"):
        stage + block


def test_runscript_conflict_needs_replace():
    stage = Stage(UBUNTU, runscript="exec a")
    with pytest.raises(DefError, match="%runscript is already set"):
        stage.extend(runscript="exec b")
    assert stage.replace(runscript="exec b").runscript.body == "exec b"


def test_scripts_for_different_shells_do_not_join():
    with pytest.raises(DefError, match="cannot join"):
        Script("a", shell="/bin/bash") + Script("b", shell="/bin/zsh")
    joined = Script("a", shell="/bin/bash") + "b"
    assert joined.shell == "/bin/bash" and joined.body == "a\nb"
    assert Script("b", shell="/bin/bash").prepend("a").body == "a\nb"


@pytest.mark.parametrize(
    "line", ["%post", "  %files", "%{x}", "Bootstrap: docker", "bootstrap:library"]
)
def test_body_lines_apptainer_would_misread(line):
    # deffile.go: a line whose first word starts with % opens a section; stages are
    # split at (?mi)^bootstrap: .
    with pytest.raises(DefError):
        Script(f"echo ok\n{line}\n")


def test_shell_and_shebang_together_is_refused():
    with pytest.raises(DefError, match="not both"):
        Script("#!/bin/bash\necho", shell="/bin/bash")


def test_app_scripts_cannot_choose_a_shell():
    with pytest.raises(DefError, match="SCIF app scripts"):
        App("x", run=Script("echo", shell="/bin/bash"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bootstrap": "Docker", "from_": "x"}, "unknown Bootstrap: 'Docker'"),
        ({"bootstrap": "docker"}, "needs From:"),
        ({"bootstrap": "debootstrap", "mirror_url": "http://x/"}, "needs OSVersion:"),
        ({"bootstrap": "yum", "os_version": "9"}, "needs MirrorURL:"),
        ({"bootstrap": "scratch", "from_": "x"}, "From: is not read by Bootstrap: scratch"),
        ({"bootstrap": "docker", "from_": "x # comment"}, "contains '#'"),
        ({"bootstrap": "docker", "from_": "x\ny"}, "newline"),
        ({"bootstrap": "docker", "from_": "x", "stage": "a b"}, "stage name"),
    ],
)
def test_header_validation(kwargs, message):
    with pytest.raises(DefError, match=message):
        Header(**kwargs)


def test_every_agent_accepts_stage_and_includecmd():
    for agent, keys in AGENTS.items():
        required = {"from": "x", "mirrorurl": "http://m/", "osversion": "1"}
        kw = {}
        for key in keys & {"from", "mirrorurl", "osversion"}:
            kw[{"from": "from_", "mirrorurl": "mirror_url", "osversion": "os_version"}[key]] = (
                required[key]
            )
        header = Header(agent, stage="s", include_cmd=True, **kw)
        assert ("Stage", "s") in list(header.items())


def test_build_args_collected_per_stage_with_one_default():
    tag = BuildArg("TAG", "24.04")
    stage = Stage(Header.docker(f"ubuntu:{tag}"), arguments=[tag], labels={"tag": tag})
    assert stage.declared_build_args() == (tag,)
    with pytest.raises(DefError, match="two defaults"):
        Stage(
            UBUNTU, arguments=[tag], environment={"T": BuildArg("TAG", "22.04")}
        ).declared_build_args()
    required = BuildArg("TOKEN")
    text = render(Stage(UBUNTU, environment={"T": required}))
    assert "%arguments" not in text and "'{{ TOKEN }}'" in text


def test_recipe_validation_points_at_user_lines():
    a = Stage(Header.docker("ubuntu:24.04", stage="a"))
    b = Stage(Header.docker("ubuntu:24.04", stage="b"), files=Files(["/x"], from_stage="c"))
    c = Stage(Header.docker("ubuntu:24.04", stage="c"))
    with pytest.raises(DefError, match="comes later") as err:
        render(Recipe([a, b, c]))
    assert err.value.file == __file__
    with pytest.raises(DefError, match="duplicate stage name 'a'"):
        render(Recipe([a, a]))


def test_select_and_replace_stage():
    a = Stage(Header.docker("ubuntu:24.04", stage="a"), post="x")
    b = Stage(Header.docker("ubuntu:24.04", stage="b"), files=Files(["/x"], from_stage="a"))
    c = Stage(Header.docker("ubuntu:24.04", stage="c"))
    recipe = Recipe([a, b, c])
    assert [s.name for s in recipe.select("b").stages] == ["a", "b"]
    assert [s.name for s in recipe.select("c").stages] == ["c"]
    swapped = recipe.replace_stage("a", a.replace(post="y"))
    assert swapped.stage("a").post.body == "y" and recipe.stage("a").post.body == "x"
    with pytest.raises(DefError, match="no stage named 'z'"):
        recipe.stage("z")


def test_equal_values_are_equal_whereever_made():
    assert Stage(UBUNTU, post="a") == Stage(Header.docker("ubuntu:24.04"), post="a")
    assert hash(BuildArg("A", "1")) == hash(BuildArg("A", "1"))


# --- constructor types: checked where the value enters, at the user's line ---------------

BAD_ARGUMENTS = [
    ({"apps": "nope"}, "apps: expected App or a list of App, got str"),
    ({"labels": 42}, "labels: expected a mapping or a list of Label, got int"),
    ({"post": 42}, "post: expected a Script or a str, got int"),
    ({"files": 42}, "files: expected Files or paths, got int"),
    ({"apps": [App("a"), "b"]}, "apps: expected App or a list of App, got a list holding str 'b'"),
    ({"arguments": 3.5}, "arguments: expected a mapping or a list of BuildArg, got float"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_ARGUMENTS)
def test_wrong_types_are_def_errors_at_the_callers_line(kwargs, message):
    with pytest.raises(DefError) as info:
        Stage(UBUNTU, **kwargs)
    assert info.value.message == message
    assert info.value.file == __file__  # the line that built the Stage, not the package


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"body": 1}, "body: expected a str, got int"),
        ({"shell": ["/bin/bash"]}, "shell: expected a str or None, got list"),
        ({"args": None}, "args: expected a str, got NoneType"),
    ],
)
def test_wrong_script_field_types_are_def_errors_at_the_callers_line(kwargs, message):
    with pytest.raises(DefError) as info:
        Script(**kwargs)
    assert info.value.message == message
    assert info.value.file == __file__


def test_wrong_type_in_a_recipe_names_the_recipe_line(tmp_path):
    from conftest import run_cli

    recipe = tmp_path / "recipe.py"
    recipe.write_text(
        "from defbuilder import Header, Recipe, Stage\n"
        'h = Header.docker("ubuntu:24.04")\n'
        'recipe = Recipe([Stage(h, apps="nope")])\n'
    )
    out = run_cli("render", str(recipe))
    assert out.returncode == 2 and out.stdout == ""
    assert f"{recipe}:3: apps: expected App or a list of App, got str" in out.stderr
    assert "Traceback" not in out.stderr


def test_mypy_strict_rejects_wrong_constructor_types(tmp_path):
    """The converters' parameter types are what mypy checks callers against."""
    import subprocess
    import sys
    from pathlib import Path

    good = tmp_path / "good.py"
    good.write_text(
        "from defbuilder import App, Files, Header, Recipe, Script, Stage\n"
        "h = Header.docker('ubuntu:24.04')\n"
        "r = Recipe([Stage(h, post='x', labels={'a': 'b'}, environment={'A': '1'},\n"
        "                  files=['a', ('b', 'c')], apps=[App('x', run='echo')],\n"
        "                  arguments={'A': '1'}, help='hi', runscript=Script('y'))])\n"
        "r2 = Recipe(Stage(h, files=Files(['a'])))\n"
    )
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from defbuilder import Header, Stage\n"
        "h = Header.docker('ubuntu:24.04')\n"
        "s1 = Stage(h, labels=42)\n"
        "s2 = Stage(h, apps='nope')\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {"MYPYPATH": str(root), "PATH": "/usr/bin:/bin"}
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--no-incremental",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    ok = subprocess.run([*cmd, str(good)], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    out = subprocess.run([*cmd, str(bad)], env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert 'bad.py:3: error: Argument "labels" to "Stage"' in out.stdout
    assert 'bad.py:4: error: Argument "apps" to "Stage"' in out.stdout


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("a \n\r\t\x1c\x85\u2028\x0b")), max_size=12))
def test_trim_end_drops_exactly_the_trailing_blank_lines(text):
    from defbuilder.model._values import trim_end

    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    assert trim_end(text) == "\n".join(lines)
