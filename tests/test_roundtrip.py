"""Round trips keep meaning: parse -> render gives a file Apptainer reads the same way.

Each case is checked against tests/apptainer_port.py, an independent port of
apptainer/apptainer v1.5.3 pkg/build/types/parser/deffile.go, and against the
Apptainer rule it depends on (cited per test).
"""

from __future__ import annotations

import apptainer_port as port
import pytest

from defbuilder import App, DefError, Header, Recipe, Stage, parse, render
from defbuilder import apptainer as rules
from defbuilder.parse import split_stages


def sections_as_apptainer_reads(text: str) -> dict[str, tuple[str, str]]:
    [stage] = [port.parse_stage(s) for s in port.split_stages(text)]
    sections = stage["sections"]
    assert isinstance(sections, dict)
    return sections


def same_meaning(text: str) -> str:
    """render(parse(text)) and assert Apptainer reads every section the same."""
    again = render(parse(text))
    before = sections_as_apptainer_reads(text)
    after = sections_as_apptainer_reads(again)
    assert set(before) == set(after)
    for name, (args, body) in before.items():
        assert after[name][0].split("#")[0].strip() == args.split("#")[0].strip(), name
        assert after[name][1].rstrip("\n") == body.rstrip("\n"), name
    return again


def test_help_indentation_is_kept():
    # metadata.go insertHelpScript writes the %help body as is: run-help prints it.
    text = "Bootstrap: docker\nFrom: x\n\n%help\n    Usage:\n      app [opts]\n"
    again = same_meaning(text)
    assert "    Usage:\n      app [opts]" in again


def test_apphelp_indentation_is_kept():
    text = "Bootstrap: docker\nFrom: x\n\n%apphelp a\n  indented help\n%apprun a\n  x\n"
    assert "  indented help" in same_meaning(text)


def test_help_indentation_survives_changes_to_a_parsed_stage():
    # replace() and + hand every field to the constructor again; a parsed help must
    # not be dedented like Python source on the way.
    import attrs

    text = (
        "Bootstrap: docker\nFrom: x\n\n%help\n    Usage:\n      app\n"
        "%apphelp a\n  indented\n%apprun a\n  x\n"
    )
    stage = parse(text).stages[0]
    changed = stage.replace(post="echo changed").extend(test="true")
    assert changed.help == "    Usage:\n      app"
    app = attrs.evolve(changed.apps[0], run="y")
    assert app.help == "  indented"
    again = render(Recipe([changed.replace(apps=[app])]))
    assert "%help\n    Usage:\n      app\n" in again
    assert "  indented\n" in again


def test_a_later_section_line_with_a_space_resets_the_arguments():
    # deffile.go parseTokenSection: the arguments of a repeated section are replaced
    # whenever its line has a space after the name (SplitN gives two parts), even
    # when nothing follows: "%post " makes the merged %post plain /bin/sh again.
    text = "Bootstrap: docker\nFrom: x\n%post -c /bin/bash\necho a\n%post \necho b\n"
    assert sections_as_apptainer_reads(text)["post"][0] == ""
    post = parse(text).stages[0].post
    assert (post.shell, post.args, post.body) == (None, "", "echo a\necho b")
    kept = "Bootstrap: docker\nFrom: x\n%post -c /bin/bash\necho a\n%post\necho b\n"
    assert parse(kept).stages[0].post.shell == "/bin/bash"
    same_meaning(text)


def test_app_sections_must_be_lower_case_like_apptainer():
    # deffile.go parseTokenSection keys an app section by its first word as written
    # ("AppRun a"); populateDefinition knows only lower-case app sections and stops
    # with "invalid section(s) specified". Other sections are lower-cased (%POST is
    # %post).
    with pytest.raises(DefError, match="invalid section") as err:
        parse("Bootstrap: docker\nFrom: x\n%post\n  x\n%AppRun a\n  echo\n", "u.def")
    assert err.value.line == 5
    assert parse("Bootstrap: docker\nFrom: x\n%POST\n  echo\n").stages[0].post.body == "  echo"


def test_an_app_with_only_an_empty_appinstall_is_kept():
    # apps.go creates /scif/apps/NAME for every app in the definition.
    text = "Bootstrap: docker\nFrom: x\n\n%appinstall lonely\n"
    again = same_meaning(text)
    assert [a.name for a in parse(again).stages[0].apps] == ["lonely"]


def test_cr_before_crlf_survives():
    # bufio.ScanLines drops one \r before \n: "a\r\r\n" is the line "a\r".
    text = "Bootstrap: docker\nFrom: x\n\n%post\necho a\r\r\necho b\n"
    again = same_meaning(text)
    assert parse(again).stages[0].post.body == "echo a\r\necho b"
    assert sections_as_apptainer_reads(again)["post"][1] == "echo a\r\necho b\n"


def test_duplicate_arguments_keys_last_wins_like_apptainer():
    # internal/pkg/build/args/args.go ReadDefaults fills a map: the last value wins.
    text = "Bootstrap: docker\nFrom: x:{{ V }}\n\n%arguments\n    V=1\n    V=2\n"
    recipe = parse(text)
    assert [(a.name, a.default) for a in recipe.stages[0].arguments] == [("V", "2")]
    assert "V=2" in render(recipe) and "V=1" not in render(recipe)


def test_post_with_c_shell_and_a_hashbang_first_line_parses():
    # util.go getSectionScriptArgs runs /bin/sh -ex -c "/bin/bash script": the #! is a
    # comment to bash, and Apptainer builds the file.
    text = "Bootstrap: docker\nFrom: x\n\n%post -c /bin/bash\n#!/bin/bash\necho hi\n"
    same_meaning(text)


def test_appfiles_are_read_without_quotes():
    # apps.go copyFiles: trim, cut at '#', split at the first space; no quoting.
    assert rules.split_appfiles_line('  "a b" c') == ('"a', 'b" c')
    text = "Bootstrap: docker\nFrom: x\n\n%appfiles a\n    data.csv in/data.csv\n%apprun a\n x\n"
    recipe = parse(text)
    [entry] = recipe.stages[0].apps[0].files
    assert (entry.src, entry.dst) == ("data.csv", "in/data.csv")
    assert "    data.csv in/data.csv" in render(recipe)
    with pytest.raises(DefError, match="one word"):
        App("a", files=[("my file", "x")])


# --- names that are paths -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "../../../../tmp/x", "/etc/x", "a/b"])
def test_app_names_that_are_paths_are_refused_by_the_model(name):
    with pytest.raises(DefError):
        App(name, run="echo")


@pytest.mark.parametrize("name", ["..", "../../../../tmp/x", "/etc/x"])
def test_app_names_that_are_paths_are_refused_by_parse(name):
    text = f"Bootstrap: docker\nFrom: x\n\n%apprun {name}\n    echo\n"
    with pytest.raises(DefError) as info:
        parse(text, "app.def")
    assert info.value.file == "app.def" and info.value.line == 4


@pytest.mark.parametrize("name", ["..", "../../../../tmp/x", "/etc/x"])
def test_try_refuses_app_names_that_are_paths(tmp_path, name):
    from defbuilder import runtime

    text = f"Bootstrap: docker\nFrom: x\n\n%apprun {name}\n    echo\n"
    root = tmp_path / "root"
    with pytest.raises(DefError) as info:
        runtime.unpack(text, root, file="app.def")
    assert info.value.line == 4
    # nothing was written outside the image root
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()
    assert not list(root.glob("scif/apps/*"))


def test_try_show_refuses_app_names_that_are_paths(tmp_path):
    from conftest import run_cli

    target = tmp_path / "victim"
    deffile = tmp_path / "app.def"
    deffile.write_text(f"Bootstrap: docker\nFrom: x\n\n%apprun ../../../../../..{target}\n x\n")
    out = run_cli("try", "--show", str(deffile), "run")
    assert out.returncode == 2
    assert f"{deffile}:4: " in out.stderr and "Traceback" not in out.stderr
    assert not target.exists()


# --- Go's case folding for the stage split -------------------------------------------------


def test_long_s_starts_a_stage_like_go():
    # deffile.go All splits at (?mi)^bootstrap: and Go's (?i) folds U+017F to s.
    assert rules.is_stage_start("boot\u017ftrap: docker")
    assert not rules.is_stage_start("boot\u0455trap: docker")  # Cyrillic dze does not fold
    text = "Bootstrap: docker\nFrom: a\n%post\nboot\u017ftrap: docker\nFrom: b\n"
    assert len(split_stages(text)) == 2
    with pytest.raises(DefError, match="starts a new stage"):
        Stage(Header.docker("ubuntu"), post="boot\u017ftrap: docker")


def test_lone_cr_is_read_the_same_by_parse_try_and_lint(tmp_path):
    """bufio.ScanLines splits only at \\n: a lone CR stays inside the line, so the
    `#!` after it is not a first line of its own (metadata.go handleShebangScript)."""
    import subprocess
    import sys

    from defbuilder.lint import lint_paths

    deffile = tmp_path / "cr.def"
    deffile.write_bytes(b"Bootstrap: docker\nFrom: x\n\n%runscript\necho a\r#!/bin/bash\necho b\n")

    def run(*args: str) -> bytes:
        out = subprocess.run([sys.executable, "-m", "defbuilder", *args], capture_output=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert b"\necho a\r#!/bin/bash\necho b\n" in run("parse", "--to", "def", str(deffile))
    shown = run("try", "--show", str(deffile), "run")
    assert b"#!/bin/sh\n\necho a\r#!/bin/bash\necho b\n" in shown
    # lint reads the same lines: the #! is not on a line of its own, so no finding
    # about an inert #! line
    findings = lint_paths([str(deffile)], shellcheck=False)
    assert findings and not [f for f in findings if "#!" in f.message]


def test_go_white_space_rules():
    """Go's strings.TrimSpace keeps U+001C-U+001F (Python's strip drops them), and RE2's
    \\s in the placeholder pattern has no \\v (internal/pkg/build/args/reader.go)."""
    text = render(Stage(Header.docker("ubuntu:24.04\x1f"), labels={"k": "v\x1f"}))
    assert sections_as_apptainer_reads(text)["labels"][1].strip("\n") == "    k v\x1f"
    assert parse(text).stages[0].header.from_ == "ubuntu:24.04\x1f"
    assert rules.has_placeholder("{{ X }}") and not rules.has_placeholder("{{\vX}}")
    assert rules.split_files_line("a\vb c") == ("a\vb", "c")
