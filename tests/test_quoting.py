"""Values survive render -> Apptainer's parser -> a real shell.

The chain reproduced here is Apptainer's: the .def is split into sections
(deffile.go, ported in apptainer_port.py), %environment is written to
/.singularity.d/env/90-environment.sh as "#!/bin/sh\\n\\n" + body
(metadata.go insertEnvScript) and sourced before the action; only exported
variables reach the program (interpreter.go GetEnv). We source it under dash and
bash and read the variables back through the environment of a child process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import apptainer_port as port
from conftest import SHELLS
from hypothesis import given, settings
from hypothesis import strategies as st

from defbuilder import Files, Header, Label, Stage, render
from defbuilder.render import sh_quote

# Any text an environment variable can hold: no NUL, no lone surrogates.
env_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)
ODD = [
    "",
    "'",
    '"',
    "$HOME",
    "`id`",
    "a\\b",
    "line1\nline2",
    "\n%post\nBootstrap: x",
    "{{ ARG }}",
    "{{X}}",
    "tab\there",
    " lead",
    "trail ",
    "ünïcødé ✓",
    "a\r\nb",
    "\r",
    "*",
    "~",
    "#not comment",
    "$(echo hi)",
    "\\\n",
    "''",
    "'\n'",
]

DUMP = (
    "import json, os, sys; "
    "json.dump({k: v for k, v in os.environ.items() if k.startswith('V_')}, sys.stdout)"
)


def _env_through_shell(values: list[str], shell: str, tmp_path) -> dict[str, str]:
    stage = Stage(
        Header.docker("ubuntu:24.04"), environment={f"V_{i}": v for i, v in enumerate(values)}
    )
    text = render(stage)
    [parsed] = [port.parse_stage(s) for s in port.split_stages(text)]
    sections = parsed["sections"]
    assert isinstance(sections, dict)
    body = sections["environment"][1]
    assert port.placeholders(body) == [], "a value was turned into a build-arg placeholder"
    env_file = tmp_path / "90-environment.sh"
    env_file.write_text(port.env_script(body), encoding="utf-8")
    out = subprocess.run(
        [shell, "-c", '. "$1" && exec "$2" -c "$3"', "sh", str(env_file), sys.executable, DUMP],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    )
    return json.loads(out.stdout)


def test_odd_values_survive_dash_and_bash(shell, tmp_path):
    got = _env_through_shell(ODD, shell, tmp_path)
    assert got == {f"V_{i}": v for i, v in enumerate(ODD)}


@settings(max_examples=60, deadline=None)
@given(values=st.lists(env_text, min_size=1, max_size=4))
def test_any_environment_value_survives(values, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("env")
    assert SHELLS, "neither dash nor bash is installed"
    for shell in SHELLS:
        got = _env_through_shell(values, shell, tmp)
        assert got == {f"V_{i}": v for i, v in enumerate(values)}, shell


label_value = (
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30)
    .map(str.strip)
    .filter(lambda v: "{{" not in v and "\x85" not in v)
)
label_key = st.from_regex(r"\A[A-Za-z][A-Za-z0-9._-]{0,20}\Z")


@settings(max_examples=150, deadline=None)
@given(labels=st.dictionaries(label_key, label_value, min_size=1, max_size=5))
def test_any_label_survives_apptainer_label_parser(labels):
    text = render(Stage(Header.docker("ubuntu:24.04"), labels=labels))
    [parsed] = [port.parse_stage(s) for s in port.split_stages(text)]
    sections = parsed["sections"]
    assert isinstance(sections, dict)
    assert port.get_labels(sections["labels"][1]) == labels


path_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters='"'),
    min_size=1,
    max_size=20,
).filter(lambda p: p.strip() == p and not p.startswith("#") and "{{" not in p)


@settings(max_examples=150, deadline=None)
@given(src=path_text, dst=path_text)
def test_file_paths_survive_apptainer_file_splitter(src, dst):
    text = render(Stage(Header.docker("ubuntu:24.04"), files=Files([(src, dst)])))
    [parsed] = [port.parse_stage(s) for s in port.split_stages(text)]
    assert parsed["files"] == [("", [(src, dst)])]


def test_labels_apptainer_cannot_store_are_rejected():
    import pytest

    from defbuilder import DefError

    for bad_key in ("two words", "", "#hash", "%pct"):
        with pytest.raises(DefError, match="invalid label key"):
            Label(bad_key, "v")
    for bad_value in ("a\nb", " padded"):
        with pytest.raises(DefError):
            Label("k", bad_value)


def test_sh_quote_is_a_single_word(shell):
    for value in ODD:
        out = subprocess.run(
            [shell, "-c", f'set -- {sh_quote(value)}; printf \'%s|%s\' "$#" "$1"'],
            capture_output=True,
            check=True,
        )
        assert out.stdout.decode() == f"1|{value}"
