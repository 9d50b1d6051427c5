"""defbuilder.parse on real-world shaped files (tests/defs/), Apptainer's rules cited.

Expectations follow apptainer/apptainer pkg/build/types/parser/deffile.go; the
structure is cross-checked with spython's parser where spython is right.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defbuilder import DefError, render
from defbuilder.parse import parse, split_stages

DEFS = Path(__file__).parent / "defs"


def load(name: str, warnings: list[str] | None = None):
    path = DEFS / name
    return parse(path.read_bytes().decode("utf-8"), str(path), warnings)


def test_multistage_files_from_and_inert_shebangs_kept():
    r = load("multistage_pixi.def")
    build, final = r.stages
    assert (build.name, final.name) == ("build", "final")
    assert [f.from_stage for f in final.files] == ["build", None]
    assert final.files[0].entries[0].src == "/app/.pixi/envs/gpu"
    assert final.files[1].entries[0].dst == "/app/src/"
    assert build.post.body.startswith("    #!/bin/bash")  # verbatim: lint reports it
    assert final.runscript.origin.line == 36


def test_arguments_become_build_args():
    r = load("arguments.def")
    stage = r.stages[0]
    assert [(a.name, a.default) for a in stage.arguments] == [
        ("VERSION", "22.04"),
        ("GREETING", "hello world"),
    ]
    assert stage.header.from_ == "ubuntu:{{ VERSION }}"


def test_scif_apps_in_first_seen_order():
    stage = load("scif_apps.def").stages[0]
    assert [a.name for a in stage.apps] == ["foo", "bar"]
    foo = stage.apps[0]
    assert foo.run.body.strip() == 'exec echo "RUNNING FOO"'
    assert [(lbl.key, lbl.value) for lbl in foo.labels] == [("BESTAPP", "FOO")]
    assert foo.files[0].src == "foo.txt" and foo.files[0].dst is None
    assert stage.startscript.body.strip() == "nc -lp 8080"


def test_crlf_tabs_case_and_no_final_newline():
    crlf = load("crlf.def").stages[0]
    assert crlf.post.body == "    echo crlf" and crlf.labels[0].value == "me"
    odd = load("case_tabs_nonewline.def").stages[0]
    assert (odd.header.bootstrap, odd.header.from_, odd.name) == ("docker", "ubuntu:24.04", "main")
    assert odd.post.body == "\techo tabs" and odd.runscript.body == "\techo run"


def test_bom_is_rejected_like_apptainer():
    with pytest.raises(DefError, match="byte-order mark") as err:
        load("bom.def")
    assert err.value.line == 1


def test_singularity2_file():
    stage = load("singularity2.def").stages[0]
    assert stage.header.include_cmd is True
    assert stage.runscript.body == 'exec /usr/bin/python "$@"'


def test_duplicate_sections_are_appended():
    # deffile.go parseTokenSection: sections[key].Script += body
    stage = load("duplicate_sections.def").stages[0]
    assert stage.post.body == "    echo one\n\n    echo two"


def test_invalid_section_and_text_before_header():
    with pytest.raises(DefError, match="invalid section") as err:
        load("invalid_section.def")
    assert err.value.line == 4
    with pytest.raises(DefError, match="had no val") as err:
        load("text_before_header.def")
    assert err.value.line == 1


def test_comments_and_header_like_body_lines():
    stage = load("comments_before_header.def").stages[0]
    assert stage.header.from_ == "nvidia/cuda:12.9.1-base-ubuntu24.04"  # inline # cut
    assert "From: this is not a header" in stage.post.body


def test_keys_the_agent_ignores_are_kept_for_lint():
    stage = load("library_registry.def").stages[0]
    assert stage.header.ignored == (("Registry", "ghcr.io"),)
    assert "Registry: ghcr.io" in render(stage)


def test_post_shell_without_e():
    stage = load("conda.def").stages[0]
    assert stage.post.shell == "/bin/bash" and stage.post.errexit is False
    assert render(stage).count("%post -c /bin/bash\n") == 1


def test_unknown_stage_and_missing_from():
    with pytest.raises(DefError, match="unknown stage") as err:
        parse("Bootstrap: docker\nFrom: x\nStage: a\n%files from b\n  /x\n", "f.def")
    assert err.value.line == 4
    with pytest.raises(DefError, match="needs From") as err:
        parse("# c\nBootstrap: docker\n%post\necho\n", "f.def")
    assert err.value.line == 2


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name
        for p in DEFS.glob("*.def")
        if p.name not in ("bom.def", "invalid_section.def", "text_before_header.def")
    ),
)
def test_render_parse_is_a_fixed_point(name):
    r = load(name)
    once = render(r)
    again = parse(once, name)
    assert again == r
    assert render(again) == once


def test_rendered_text_round_trips_byte_identical():
    from conftest import ROOT, run_cli

    text = run_cli("render", str(ROOT / "recipes" / "hello_pytorch" / "recipe.py")).stdout
    assert render(parse(text)) == text


# --- properties ---------------------------------------------------------------------------

LINES = st.sampled_from(
    [
        "Bootstrap: docker",
        "From: ubuntu:24.04",
        "Stage: s1",
        "bootstrap:library",
        "%post",
        "%POST -c /bin/bash",
        "%runscript",
        "%environment",
        "%labels",
        "%files",
        "%files from s1",
        "%apprun x",
        "%help",
        "%arguments",
        "%test",
        "%bogus",
        "  %post",
        "echo hi",
        "  export A=1",
        "#!/bin/bash",
        "# comment",
        "",
        "K=V",
        "key value",
        "src dst",
        '"a b" c',
        "'q' x",
        "{{ X }}",
        "IncludeCmd: yes",
        "Registry: r",
        "\t",
        "From: a # c",
        "x\\",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=25).map("\n".join) | st.text(max_size=200))
def test_parse_raises_only_defbuilder_errors(text):
    try:
        recipe = parse(text, "p.def")
    except DefError:
        return
    once = render(recipe)
    again = parse(once, "p.def")
    assert again == recipe
    assert render(again) == once


@pytest.mark.parametrize(
    "name",
    [
        "multistage_pixi.def",
        "scif_apps.def",
        "conda.def",
        "arguments.def",
        "crlf.def",
        "library_registry.def",
    ],
)
def test_parse_to_python_renders_back_to_the_same_meaning(tmp_path, name):
    from conftest import run_cli

    out = run_cli("parse", str(DEFS / name), "--to", "python", "-o", str(tmp_path / "r.py"))
    assert out.returncode == 0, out.stderr
    script = (tmp_path / "r.py").read_text()
    assert "Stage(" in script and "Header(" in script  # the DSL, not a string dump
    rendered = run_cli("render", str(tmp_path / "r.py"))
    assert rendered.returncode == 0, rendered.stderr
    assert parse(rendered.stdout) == load(name)


# --- what the build makes of a section: metadata.go handleShebangScript, -------------------
# getSectionScriptArgs; deffile.go getSectionName (no harness needed)


def test_shebang_first_line_chooses_interpreter_and_args_are_appended():
    from defbuilder.apptainer import handle_shebang

    [stage] = split_stages(
        "Bootstrap: docker\nFrom: x\n%runscript -x # comment\n#!/bin/bash\necho hi\n"
    )
    assert handle_shebang(stage.section("runscript")) == "#!/bin/bash -x \n\necho hi\n\n"
    [stage] = split_stages("Bootstrap: docker\nFrom: x\n%runscript\n\n#!/bin/bash\necho\n")
    # a blank line above the #! leaves an empty shebang (SplitN of the raw body)
    assert handle_shebang(stage.section("runscript")).startswith("\n\n#!/bin/bash")


def test_post_args_follow_get_section_script_args():
    from defbuilder.apptainer import section_script_args

    [stage] = split_stages("Bootstrap: docker\nFrom: x\n%post -c /bin/bash -e\necho\n")
    assert section_script_args(stage.section("post"), "/.post.script") == [
        "/bin/sh",
        "-ex",
        "-c",
        "/bin/bash -e /.post.script",
    ]
    [stage] = split_stages("Bootstrap: docker\nFrom: x\n%post\necho\n")
    assert section_script_args(stage.section("post"), "/s") == ["/bin/sh", "-ex", "/s"]


def test_unknown_section_is_rejected_like_apptainer():
    with pytest.raises(DefError, match="invalid section"):
        split_stages("Bootstrap: docker\nFrom: x\n%environments\nexport A=1\n", "x.def")


def test_indented_section_header_after_the_header_is_rejected():
    # deffile.go: getSectionName("  %runscript") is "", an invalid section
    with pytest.raises(DefError, match="invalid section"):
        split_stages("Bootstrap: docker\nFrom: x\n%post\necho\n  %runscript\necho\n")
    [stage] = split_stages("  %post\necho\n")  # first token of a headerless file is trimmed
    assert stage.sections[0].name == "post"


# --- parse --to python writes multi-line bodies as triple-quoted strings ---------------

MULTILINE_BODIES = [
    'if [ "$#" -eq 0 ]; then\n    set -- a\nfi\nexec b "$@"',  # ends in a quote: escaped
    "apt-get install \\\n    curl",  # backslashes: a raw string
    "printf '%s\\n' x\necho \"a\"",  # ends in a quote, has backslashes: r'''...'''
    "a\"\"\"b\n\\'''c\\",  # both kinds of three quotes, a trailing backslash: escaped
    "tab\there\nnul\x00 cr\r\nu\u2028\n",  # characters Python source cannot hold as is
    "\n  indented\n\n",
]


@pytest.mark.parametrize("body", MULTILINE_BODIES)
def test_codegen_writes_multiline_bodies_triple_quoted_and_exact(body):
    import ast

    from defbuilder.codegen import _str
    from defbuilder.model._values import clean_body

    literal = _str(body)
    assert literal.lstrip("r")[:3] in ('"""', "'''"), literal
    assert ast.literal_eval(literal) == body
    assert literal.count("\n") >= body.count("\n")  # each line on its own line
    assert "\\n" not in literal.replace("\\\\", "").replace("'%s\\n'", "")
    if body == body.strip("\n"):  # an indented body (not verbatim) dedents to the same
        indented = _str(body, "    ")
        assert clean_body(ast.literal_eval(indented)) == clean_body(body)


def test_flagship_to_python_is_readable_and_exact(tmp_path):
    from conftest import ROOT, run_cli

    def_file = tmp_path / "h.def"
    out = run_cli("render", str(ROOT / "recipes/hello_pytorch/recipe.py"), "-o", str(def_file))
    assert out.returncode == 0, out.stderr
    out = run_cli("parse", str(def_file), "--to", "python", "-o", str(tmp_path / "r.py"))
    assert out.returncode == 0, out.stderr
    source = (tmp_path / "r.py").read_text()
    # %post was one line of several KB ('...\n...'); now one line of Python a line
    assert max(len(line) for line in source.splitlines()) < 300
    assert "post=Script(r'''# The solver needs __cuda" in source
    assert 'runscript=Script("""\\\nif [ "$#" -eq 0 ]; then\n' in source
    (tmp_path / "recipe.py").write_text(source)
    again = run_cli("render", str(tmp_path / "recipe.py"))
    assert again.returncode == 0, again.stderr
    assert again.stdout == def_file.read_text()


# --- parse builds its values without their converters (model._values.construct): ----------
# every value must be exactly what the public constructor makes of the same fields.


def _rebuilt(value):
    """``value`` made again through its class's public constructor, children first."""
    import attrs

    if isinstance(value, tuple):
        return tuple(_rebuilt(v) for v in value)
    if not attrs.has(type(value)):
        return value
    kwargs = {
        a.alias: _rebuilt(getattr(value, a.name)) for a in attrs.fields(type(value)) if a.init
    }
    return type(value)(**kwargs)


def _origins(value, path="recipe"):
    """(where, origin) of every model value, to compare two trees' origins."""
    import attrs

    if isinstance(value, tuple):
        for i, v in enumerate(value):
            yield from _origins(v, f"{path}[{i}]")
    elif attrs.has(type(value)):
        yield path, getattr(value, "origin", None)
        for a in attrs.fields(type(value)):
            if a.name != "origin":
                yield from _origins(getattr(value, a.name), f"{path}.{a.name}")


def _check_rebuilt(recipe) -> None:
    again = _rebuilt(recipe)
    assert again == recipe
    assert list(_origins(again)) == list(_origins(recipe))


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name
        for p in DEFS.glob("*.def")
        if p.name not in {"bom.def", "invalid_section.def", "text_before_header.def"}
    ),
)
def test_parsed_values_are_what_their_constructors_make(name):
    _check_rebuilt(load(name))


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=25).map("\n".join))
def test_parsed_values_are_what_their_constructors_make_for_any_file(text):
    try:
        recipe = parse("Bootstrap: docker\nFrom: x\n" + text, "p.def")
    except DefError:
        return
    _check_rebuilt(recipe)


# --- the one-pass split against the line-by-line oracle (tests/apptainer_port.py) ----------

_ORACLE_LINES = st.sampled_from(
    [
        "Bootstrap: docker",
        "bootstrap: library",
        "BOOTSTRAP: docker",
        "From: x",
        "Stage: s",
        "%post",
        "%post -c /bin/bash",
        "%post ",
        " %runscript",
        "\t%environment x",
        "%labels",
        "%files from s",
        "%apprun a",
        "%appenv b",
        "%APPRUN a",
        "%help",
        "echo hi\r",
        "  echo %x",
        "# c",
        "",
        "\r",
        "a\rb",
        "k v",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ORACLE_LINES, max_size=30).map("\n".join), st.booleans())
def test_split_reads_stages_and_sections_like_the_oracle(body, final_newline):
    import apptainer_port as port

    text = "Bootstrap: docker\n" + body + ("\n" if final_newline else "")
    try:
        ours = split_stages(text, "p.def")
    except DefError:
        return
    theirs = [port.parse_stage(chunk) for chunk in port.split_stages(text)]
    theirs = [t for t in theirs if t["header"] or t["sections"] or t["files"]]
    assert [s.header for s in ours] == [t["header"] for t in theirs]
    for stage, oracle in zip(ours, theirs, strict=True):
        sections = {}
        for sec in stage.sections:
            if sec.name == "files":
                continue
            key = sec.name if sec.app is None else f"{sec.name} {sec.app}"
            merged = stage.section(sec.name, sec.app)
            sections[key] = [merged.args, merged.body]
        assert sections == oracle["sections"]
        assert [s.args for s in stage.sections if s.name == "files"] == [
            args for args, _entries in oracle["files"]
        ]


@settings(max_examples=500, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            list("%bBoOtTsSrRaApP:x #\t\r\v\f\x1c\x1f\x85\xa0\u2028\u3000\u017f\u212a")
        ),
        max_size=14,
    )
)
def test_the_one_pass_search_finds_the_lines_the_line_rules_find(line):
    # stage_and_section_lines (one search over a whole file) against the per-line
    # rules (is_stage_start: deffile.go All; is_section_line: scanDefinitionFile).
    from defbuilder.apptainer import is_section_line, is_stage_start, stage_and_section_lines

    expected = [(0, True)] if is_section_line(line) else []
    expected = [(0, False)] if is_stage_start(line) else expected
    text = "x\n" + line + "\n"
    assert stage_and_section_lines(line) == expected
    assert stage_and_section_lines(text) == [(2, kind) for _offset, kind in expected]


# --- pieces too large for Apptainer's scanner (deffile.go ParseDefinitionFile reads each
# stage with a bufio.Scanner of at most 64 KiB; tests/apptainer_port.py simulates it) ------


def _stage_with_piece(size: int, after: str = "", char: str = "x") -> str:
    """A stage whose %post piece (section line and body) is ``size`` bytes."""
    head = "Bootstrap: docker\nFrom: x\n"
    piece = "%post\n"
    line = char * 100 + "\n"
    while len((piece + line).encode()) < size:  # room for the last line's \n
        piece += line
    rest = size - len(piece.encode()) - 1
    piece += "y" * rest + "\n"
    assert len(piece.encode()) == size
    return head + piece + after


@pytest.mark.parametrize(
    ("size", "after", "char"),
    [
        (65535, "", "x"),  # the last piece: the buffer needs one byte more to see EOF
        (65536, "", "x"),
        (65530, "%test\n", "x"),  # else up to the end of the next section line
        (65531, "%test\n", "x"),
        (65530, "%test\ntrue\n", "é"),  # bytes, not characters
        (65531, "%test\ntrue\n", "é"),
        (40000, "%test\n" + "z" * 30000 + "\n", "x"),  # each piece on its own
    ],
)
def test_pieces_too_large_for_apptainers_scanner_are_refused(size, after, char):
    import apptainer_port as port

    text = _stage_with_piece(size, after, char)
    refused = port.scanner_too_long(text.encode())
    if refused:
        with pytest.raises(DefError, match=r"bufio\.Scanner: token too long") as err:
            parse(text, "big.def")
        assert err.value.line == 3
    else:
        parse(text, "big.def")


def test_the_scanner_limit_agrees_with_the_simulated_scanner():
    import random

    import apptainer_port as port

    rng = random.Random(20261127)
    for _ in range(40):
        text = "Bootstrap: docker\nFrom: x\n"
        for _section in range(rng.randint(1, 3)):
            size = rng.choice([rng.randint(65400, 65600), rng.randint(20, 300)])
            after = rng.choice(["", "%runscript -c x\n", "  %test\n"])
            head = len("Bootstrap: docker\nFrom: x\n")
            text += _stage_with_piece(size, after, rng.choice("xé"))[head:]
        if rng.random() < 0.3:
            text = text.rstrip("\n")
        stages = split_stages(text, "big.def", strict=False)
        ours = any("token too long" in m for s in stages for _n, m in s.read_errors)
        assert ours == port.scanner_too_long(text.encode()), [len(text)]


def test_a_nul_byte_is_reported_at_its_own_line():
    text = "Bootstrap: docker\nFrom: x\n%post\n  echo a\n  echo a\x00b\n%apprun x\n\x00\n"
    with pytest.raises(DefError, match="NUL") as err:
        parse(text, "n.def")
    assert (err.value.file, err.value.line) == ("n.def", 5)
    with pytest.raises(DefError, match="apprun x") as err:
        parse(text.replace("a\x00b", "ab"), "n.def")
    assert err.value.line == 7


@pytest.mark.parametrize("line", ["%apprun", "%apprun  foo", "%apprun "])
def test_an_app_section_without_a_name_says_where_the_name_goes(line):
    # deffile.go parseTokenSection: SplitN(line, " ", 3); the app is the second part
    with pytest.raises(DefError, match="two spaces make an empty name") as err:
        parse(f"Bootstrap: docker\nFrom: x\n{line}\n  echo\n", "a.def")
    assert err.value.line == 3
