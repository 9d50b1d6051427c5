"""defbuilder lint: every rule fires on its bad example and not on its good one; output
formats validate; exit codes; suppression; recipes map to their own lines; shellcheck
runs once per lint."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from defbuilder.apptainer import build_arg_uses
from defbuilder.lint import RULES, Severity, lint_paths, lint_text
from defbuilder.lint.docs import rules_markdown
from defbuilder.lint.engine import load_policy, load_policy_file, shellcheck_binary
from defbuilder.lint.rules import EXAMPLE_POLICY, NO_PROGRAM_BUILTINS
from defbuilder.parse import parse, split_stages

DEFS = Path(__file__).parent / "defs"
HAS_SHELLCHECK = shellcheck_binary() is not None


def _codes(text: str, rule, tmp_path: Path) -> set[str]:
    policy = EXAMPLE_POLICY if rule.policy else None
    if rule.not_linted:  # its examples are recipe scripts
        recipe = tmp_path / "recipe.py"
        recipe.write_text(text)
        return {f.code for f in lint_paths([str(recipe)], policy=policy)}
    return {f.code for f in lint_text(text, "x.def", policy=policy)}


@pytest.mark.parametrize("rule", RULES, ids=[r.code for r in RULES])
def test_rule_fires_on_bad_example(rule, tmp_path):
    assert rule.code in _codes(rule.bad, rule, tmp_path)


@pytest.mark.parametrize("rule", RULES, ids=[r.code for r in RULES])
def test_rule_does_not_fire_on_good_example(rule, tmp_path):
    assert rule.code not in _codes(rule.good, rule, tmp_path)


def test_codes_are_unique_and_stable():
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes))
    assert codes == sorted(codes)


def test_rules_doc_is_generated_from_the_rules():
    assert (ROOT / "docs" / "lint-rules.md").read_text() == rules_markdown()


def test_upstream_example_flaws_are_found():
    codes = [
        (f.line, f.code) for f in lint_text((DEFS / "multistage_pixi.def").read_text(), "m.def")
    ]
    assert (12, "DB101") in codes and (33, "DB101") in codes  # inert #! in %post
    assert (38, "DB112") in codes  # runscript without exec
    assert (38, "DB114") in codes  # env only in runscript
    assert (47, "DB113") in codes  # sourcing exec "$@"


def test_suppression_same_line_and_line_above():
    text = (
        "Bootstrap: docker\nFrom: ubuntu\n"
        "%post\n    #!/bin/bash  # defbuilder: ignore[DB101]\n"
        "    # defbuilder: ignore[DB123,DB124]\n    apt-get install -y git\n"
        "%test\n    true\n"
    )
    codes = {f.code for f in lint_text(text, shellcheck=False)}
    assert "DB101" not in codes and "DB123" not in codes and "DB124" not in codes
    assert "DB116" in codes  # other findings stay


def test_exit_codes_and_formats(tmp_path):
    clean = tmp_path / "clean.def"
    clean.write_text(next(r for r in RULES if r.code == "DB100").good)
    out = run_cli("lint", str(clean))
    assert out.returncode == 0 and out.stdout == ""
    bad = tmp_path / "bad.def"
    bad.write_text((DEFS / "multistage_pixi.def").read_text())
    out = run_cli("lint", str(bad))
    assert out.returncode == 1 and f"{bad}:12: DB101 [warning]" in out.stdout
    assert run_cli("lint", str(tmp_path / "missing.def")).returncode == 2


def test_json_validates_against_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "defbuilder" / "lint" / "lint.schema.json").read_text())
    out = run_cli("lint", "--format", "json", str(DEFS / "multistage_pixi.def"))
    data = json.loads(out.stdout)
    jsonschema.validate(data, schema)
    assert {f["code"] for f in data["findings"]} >= {"DB101", "DB113", "DB114"}


def test_sarif_is_valid_sarif_2_1_0():
    jsonschema = pytest.importorskip("jsonschema")
    out = run_cli("lint", "--format", "sarif", str(DEFS / "multistage_pixi.def"))
    log = json.loads(out.stdout)
    # 1) the structure SARIF 2.1.0 requires (OASIS sarif-v2.1.0 §3.13, §3.14, §3.19, §3.27)
    minimal = {
        "type": "object",
        "required": ["version", "runs"],
        "properties": {
            "version": {"const": "2.1.0"},
            "runs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["tool", "results"],
                    "properties": {
                        "tool": {
                            "type": "object",
                            "required": ["driver"],
                            "properties": {
                                "driver": {"type": "object", "required": ["name", "rules"]}
                            },
                        },
                        "results": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["ruleId", "message", "locations"],
                                "properties": {
                                    "level": {"enum": ["none", "note", "warning", "error"]},
                                    "message": {"type": "object", "required": ["text"]},
                                },
                            },
                        },
                    },
                },
            },
        },
    }
    jsonschema.validate(log, minimal)
    # 2) a third-party SARIF 2.1.0 object model, and its JSON schema via jsonschema
    sarif = pytest.importorskip("sarif_pydantic", reason="sarif-pydantic is in the test extra")
    sarif.Sarif.model_validate(log)
    jsonschema.validate(log, sarif.Sarif.model_json_schema())
    results = log["runs"][0]["results"]
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    assert results[0]["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1


def test_recipe_findings_point_at_recipe_lines(tmp_path):
    recipe = tmp_path / "recipe.py"
    recipe.write_text(
        "from defbuilder import Header, Stage\n"
        "\n"
        "recipe = Stage(\n"
        "    Header.docker('ubuntu:24.04'),\n"
        "    post='apt-get update && apt-get install -y git',\n"
        ")\n"
    )
    out = run_cli("lint", "--format", "json", str(recipe))
    findings = json.loads(out.stdout)["findings"]
    apt = next(f for f in findings if f["code"] == "DB123")
    assert apt["file"] == str(recipe) and apt["line"] == 3  # the Stage(...) call
    assert "rendered .def line" in apt["message"]
    header = next(f for f in findings if f["code"] == "DB115")
    assert header["line"] == 4  # Header.docker(...)


def test_hello_pytorch_recipe_has_no_errors():
    out = run_cli("lint", "--format", "json", str(ROOT / "recipes/hello_pytorch/recipe.py"))
    findings = json.loads(out.stdout)["findings"]
    assert [f for f in findings if f["severity"] == "error"] == []


def test_policy_from_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.defbuilder.policy]\nallowed-bases = ["nvidia/cuda:*"]\nrequire-test = true\n'
        'required-labels = ["maintainer"]\nforbidden-commands = ["sudo"]\n'
    )
    d = tmp_path / "app.def"
    d.write_text("Bootstrap: docker\nFrom: ubuntu:24.04\n%post\n    sudo true\n")
    codes = {
        f["code"]
        for f in json.loads(run_cli("lint", "--format", "json", str(d)).stdout)["findings"]
    }
    assert {"DP201", "DP203", "DP204", "DP205"} <= codes
    (tmp_path / "pyproject.toml").write_text("[tool.defbuilder.policy]\nbogus = 1\n")
    out = run_cli("lint", str(d))
    assert out.returncode == 2 and "unknown policy key" in out.stderr


@pytest.mark.skipif(not HAS_SHELLCHECK, reason="shellcheck not installed")
def test_shellcheck_runs_once_per_lint(tmp_path):
    real = shellcheck_binary()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls"
    wrapper = bindir / "shellcheck"
    wrapper.write_text(f'#!/bin/sh\necho call >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    files = [str(p) for p in sorted(DEFS.glob("*.def"))]
    run_cli("lint", *files, env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert log.read_text().count("call") == 1


def test_bashism_lines_map_to_the_def():
    text = (
        "Bootstrap: docker\nFrom: x:1\n\n%post\n    echo ok\n"
        "    if [[ -d /x ]]; then echo; fi\n%test\n    true\n"
    )
    if not HAS_SHELLCHECK:
        pytest.skip("shellcheck not installed")
    hits = [f for f in lint_text(text) if f.code == "DB110"]
    assert hits and hits[0].line == 6


def test_policy_file_option(tmp_path):
    pol = tmp_path / "team.toml"
    pol.write_text("[policy]\nrequire-digest = true\n")
    d = tmp_path / "sub" / "app.def"
    d.parent.mkdir()
    d.write_text("Bootstrap: docker\nFrom: ubuntu:24.04\n%test\n    true\n")
    out = run_cli("lint", "--policy", str(pol), "--select", "DP202", str(d))
    assert out.returncode == 1 and "DP202" in out.stdout
    out = run_cli("lint", "--select", "DP202", str(d))  # no policy found: nothing to run
    assert out.returncode == 2 and "no rule selected to run: DP202" in out.stderr


# --- rules are declared once, beside their checks, and read Apptainer's rules from one place

LINT = ROOT / "defbuilder" / "lint"


def test_rule_properties_are_data_on_the_rules():
    assert all(isinstance(r.severity, Severity) for r in RULES)
    assert {r.severity.value for r in RULES} <= {"error", "warning", "info"}
    assert len({r.check for r in RULES}) == len(RULES)  # one check per rule
    codes = {r.code for r in RULES}
    assert all(set(r.supersedes) <= codes for r in RULES)
    # nothing in the engine names a rule: what it acts on is declared on the rule
    engine = (LINT / "engine.py").read_text()
    assert '"DB1' not in engine and '"DP2' not in engine


def test_no_shellcheck_help_names_the_shellcheck_rules():
    out = run_cli("lint", "--help", env={"COLUMNS": "1000"}).stdout
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("--no-shellcheck"))
    assert set(re.findall(r"D[BP]\d{3}", line)) == {r.code for r in RULES if r.needs_shellcheck}


def test_rules_and_engine_do_not_import_each_other():
    def imports(name: str) -> set[str]:
        tree = ast.parse((LINT / name).read_text())
        return {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}

    assert "engine" not in imports("rules.py") and "engine" not in imports("context.py")
    assert "rules" not in imports("context.py")


@pytest.mark.parametrize(
    "pattern",
    [
        'split("#")',
        "split('#')",
        'startswith("otherurl")',
        r"{{\s*",
        "PLACEHOLDER_PATTERN",
        '("pre", "setup", "post")',
        '("post", "setup", "pre")',
        '("runscript", "startscript", "test")',
        "..model",
    ],
)
def test_lint_does_not_restate_apptainer_rules(pattern):
    """Section kinds, the # cut, OtherURL, placeholders and agents come from
    defbuilder.apptainer (a fact stated twice drifts: docs/lint.md)."""
    for path in LINT.glob("*.py"):
        assert pattern not in path.read_text(), f"{path.name} restates {pattern!r}"


# --- regressions: header continuation lines, lone CR ---------------------------------------

HEADER_CONTINUATIONS = [
    "From: ubuntu:24.04 \\\n\nIncludeCmd: yes\\\n",
    "From: ubuntu:24.04 \\\n\nRegistry: https://r \\\n",
    "From: ubuntu:24.04\nIncludeCmd: yes\\\n# note\nRegistry: https://r \\\n\n",
    "From: ubuntu:24.04\nRegistry: https://r \\\n  x\n",
]


@pytest.mark.parametrize("header", HEADER_CONTINUATIONS)
def test_continued_header_values_are_findings_not_crashes(header, tmp_path):
    text = "Bootstrap: docker\n" + header + "%test\n    true\n"
    stage = split_stages(text, strict=False)[0]
    assert set(stage.header) <= set(stage.header_lines)
    findings = lint_text(text, "x.def", shellcheck=False)
    errors = {(f.line, f.message) for f in findings if f.code == "DB100"}
    assert set(stage.read_errors) <= errors  # each of Apptainer's header errors, once
    assert len([f for f in findings if f.code == "DB100"]) == len(errors)
    assert findings and any(f.severity is Severity.ERROR for f in findings)
    path = tmp_path / "x.def"
    path.write_text(text)
    out = run_cli("lint", "--no-shellcheck", str(path))
    assert out.returncode == 1 and "Traceback" not in out.stderr and out.stdout


def test_blank_line_after_continued_header_value_is_db100():
    text = "Bootstrap: docker\nFrom: ubuntu:24.04 \\\n\nIncludeCmd: yes\\\n"
    [hit] = [f for f in lint_text(text, shellcheck=False) if f.code == "DB100"]
    assert hit.line == 2 and "crash" in hit.message


def test_lint_and_parse_read_a_lone_cr_alike(tmp_path):
    """bufio.ScanLines: only a CR right before LF is dropped; a lone CR stays inside the
    line (apptainer.scan_lines). Lint's line numbers are parse's."""
    text = (
        "Bootstrap: docker\r\nFrom: ubuntu:24.04@sha256:" + "a" * 64 + "\r\n\r\n"
        "%files\r\n    a.txt\r    b.txt\r\n    'c d' /e\r\n"
        "%post\r\n    echo a\r    #!/bin/bash\r\n    apt-get install -y git\r\n"
        "%test\r\n    true\r\n"
    )
    stage = parse(text.replace("'c d' /e", "c.txt"), "x.def").stages[0]
    assert [(e.src, e.dst, e.origin.line) for e in stage.files[0].entries] == [
        ("a.txt", "b.txt", 5),
        ("c.txt", None, 6),
    ]
    post = stage.post.body.split("\n")
    assert post[0] == "    echo a\r    #!/bin/bash"  # one line: its #! is not a line start
    apt_line = stage.post.origin.line + 1 + post.index("    apt-get install -y git")
    path = tmp_path / "cr.def"
    path.write_bytes(text.encode())
    codes = {(f.line, f.code) for f in lint_text(text, shellcheck=False)}
    assert (6, "DB105") in codes and (apt_line, "DB123") in codes
    assert not any(code == "DB101" for _n, code in codes)
    out = run_cli("lint", "--no-shellcheck", "--format", "json", str(path))
    assert {(f["line"], f["code"]) for f in json.loads(out.stdout)["findings"]} == codes


# --- one policy reader ----------------------------------------------------------------------


def test_policy_tables_per_file(tmp_path):
    (tmp_path / "defbuilder.toml").write_text("[policy]\nrequire-test = true\n")
    assert load_policy(str(tmp_path)) == {"require-test": True}
    assert load_policy_file(str(tmp_path / "defbuilder.toml")) == {"require-test": True}
    (tmp_path / "defbuilder.toml").write_text("[tool.defbuilder.policy]\nrequire-test = true\n")
    assert load_policy(str(tmp_path)) == {}  # only pyproject.toml has [tool...] searched
    assert load_policy_file(str(tmp_path / "defbuilder.toml")) == {"require-test": True}
    (tmp_path / "defbuilder.toml").write_text("policy = 3\n")
    out = run_cli("lint", "--policy", str(tmp_path / "defbuilder.toml"), str(DEFS / "crlf.def"))
    assert out.returncode == 2 and "must be a table" in out.stderr


# --- issue 13 item 3: each rule reports its own problem ---------------------------------


@pytest.mark.parametrize(
    ("ref", "codes"),
    [
        ("ubuntu", {"DB116"}),  # no tag: `latest` is used
        ("ubuntu:latest", {"DB116"}),
        ("ubuntu:24.04", {"DB115"}),
        ("localhost:5000/ubuntu", {"DB116"}),  # a registry port is not a tag
        ("localhost:5000/ubuntu:24.04", {"DB115"}),
        ("ubuntu@sha256:" + "a" * 64, set()),  # a digest pins it whatever the tag
        ("ubuntu:latest@sha256:" + "a" * 64, set()),
        ("ubuntu:{{ TAG }}", set()),
    ],
)
def test_tag_rules_split_the_cases(ref, codes):
    """Docker image references are ``[HOST[:PORT]/]NAME[:TAG][@DIGEST]``, and "if no tag
    is specified, latest is used" (https://docs.docker.com/reference/cli/docker/image/tag/):
    an image without a tag is DB116's (latest), not also DB115's (pinned by tag only)."""
    text = f"Bootstrap: docker\nFrom: {ref}\n\n%arguments\n    TAG=24.04\n" + "%test\n    true\n"
    found = {f.code for f in lint_text(text, shellcheck=False)} & {"DB115", "DB116"}
    assert found == codes


@pytest.mark.parametrize("name", sorted(NO_PROGRAM_BUILTINS))
def test_no_program_builtins_are_builtins_of_dash_and_bash(name):
    """Each name DB112 lets a runscript end with is a builtin of both shells that run
    runscripts (Ubuntu's /bin/sh is dash; `#!/bin/bash`), as the shells themselves say."""
    for shell, probe, said in (
        ("dash", f"command -V '{name}'", "builtin"),
        ("bash", f"type -t '{name}'", "builtin"),
    ):
        exe = shutil.which(shell)
        if exe is None:
            pytest.skip(f"{shell} is not installed")
        out = subprocess.run([exe, "-c", probe], capture_output=True, text=True)
        assert said in out.stdout, (shell, name, out.stdout, out.stderr)


RUN = "Bootstrap: docker\nFrom: ubuntu:24.04\n\n%runscript\n"


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("    printf 'hello\\n'\n", None),
        ('    echo "starting"; printf "%s\\n" done 2>&1\n', None),
        ("    A=1 printf x\n    export B=2\n", None),
        ('    exec python "$@"\n    printf done\n', None),
        ('    python /app/main.py "$@"\n    printf "done\\n"\n', 5),
        ("    cd /app && python main.py\n", 5),
        ("    printf a\n    python main.py | tee log\n    echo done\n", 6),
        ('    eval "$CMD"\n', 5),  # eval runs its argument
        ("    . /app/run.sh\n", 5),  # so does sourcing
        ("    printf 'unterminated\n", 5),  # cannot be read simply: judged a program
    ],
)
def test_runscript_may_end_in_builtins_that_start_no_program(body, line):
    hits = [f.line for f in lint_text(RUN + body, shellcheck=False) if f.code == "DB112"]
    assert hits == ([] if line is None else [line])


def test_db112_reads_repeated_runscripts_with_their_own_lines():
    """Apptainer appends the bodies of repeated sections (deffile.go
    parseTokenSection); each line keeps its own number."""
    text = RUN + "    printf a\n\n%runscript\n    printf b\n    python x\n"
    assert [f.line for f in lint_text(text, shellcheck=False) if f.code == "DB112"] == [9]


def test_shellcheck_errors_at_the_end_of_a_section_stay_in_it():
    """An unfinished here-document (https://www.shellcheck.net/wiki/SC1039: the end
    token must not be indented) makes shellcheck report SC1072 after the last line of
    the script; that is the section's last line, not the next section's."""
    text = (
        "Bootstrap: docker\nFrom: ubuntu:24.04\n\n%post\n    cat > /x <<EOF\n    hello\n"
        '    EOF\n\n%runscript\n    exec echo "$@"\n\n%test\n    true\n'
    )
    found = {(f.line, f.message.split(":")[0]) for f in lint_text(text) if f.code == "DB111"}
    assert (7, "shellcheck SC1072") in found
    assert all(5 <= n <= 7 for n, _ in found), found


def test_appfiles_have_no_quotes_and_cut_comments():
    """apps.go copyFiles: an %appfiles line is cut at `#` and split at the first space,
    with no quoting (unlike %files' fileSplitter)."""
    text = (
        _PINNED + '\n%appfiles a\n    data.csv # the data\n    "my file" /opt/\n'
        "%apprun a\n    exec true\n%test\n    true\n"
    )
    found = [(f.line, f.code) for f in lint_text(text, shellcheck=False)]
    assert (5, "DB106") not in found and (6, "DB105") in found
    [msg] = [f.message for f in lint_text(text, shellcheck=False) if f.code == "DB105"]
    assert "src='\"my' dst='file\" /opt/'" in msg


_PINNED = "Bootstrap: docker\nFrom: ubuntu:24.04@sha256:" + "a" * 64 + "\n"


# --- placeholders: exactly the ones Apptainer substitutes ------------------------------


def _go_new_reader(text: str) -> list[str]:
    """internal/pkg/build/args/reader.go NewReader, ported literally (including its
    backwards scan and the unanchored `Match` of commentLineRegexp): the names it
    substitutes, in order. Quadratic, for small texts."""
    build_args = re.compile(r"{{\s*(\w+)\s*}}", re.ASCII)
    comment_line = re.compile(r"\s*[#][^!]\s*.*", re.ASCII)
    names, i = [], 0
    for m in build_args.finditer(text):
        newline_idx = i
        start = m.start()
        while start >= newline_idx:
            if text[start] == "\n":
                newline_idx = start
                break
            start -= 1
        if comment_line.search(text[newline_idx : m.start()]):
            continue
        names.append(m.group(1))
        i = m.end()
    return names


@settings(max_examples=400, derandomize=True, deadline=None, database=None)
@given(st.lists(st.sampled_from(["{{ A }}", "{{B}}", "#", "#!", "!", "\n", " ", "x", "{{"])))
def test_build_arg_uses_is_readers_rule(parts):
    text = "".join(parts)
    assert [m.group(1) for m in build_arg_uses(text)] == _go_new_reader(text)


def test_placeholders_after_a_hash_are_not_substituted():
    """reader.go leaves a placeholder as written when a `#` not followed by `!` comes
    before it on its line, wherever that `#` is; lint reports only the others."""
    text = (
        "Bootstrap: docker\nFrom: ubuntu:{{ TAG }}\n\n%post\n"
        "    echo '#1' {{ NOTARG }}\n    echo {{ USED }} # trailing comment\n"
        "%test\n    true\n"
    )
    undefined = [
        f.message.split()[1] for f in lint_text(text, shellcheck=False) if f.code == "DB118"
    ]
    assert undefined == ["TAG", "USED"]


def test_many_placeholders_on_one_line():
    """Go rescans the line for each placeholder after a `#`; build_arg_uses reads it
    once, with the same result."""
    line = "    echo {{ A }} x#!{{ A }}" + " {{ A }} # " * 300 + "\n"
    text = "Bootstrap: docker\nFrom: ubuntu:24.04\n%arguments\n    A=1\n%post\n" + line
    assert [m.group(1) for m in build_arg_uses(text)] == _go_new_reader(text) == ["A"] * 3


def test_a_section_too_large_for_apptainers_scanner_is_db100():
    # deffile.go ParseDefinitionFile reads a stage with a 64 KiB bufio.Scanner
    body = "".join(f"    echo {i:05d} {'a' * 55}\n" for i in range(1500))
    text = "Bootstrap: docker\nFrom: x\n\n%post\n" + body + "%test\n    true\n"
    [hit] = [f for f in lint_text(text, shellcheck=False) if f.code == "DB100"]
    assert hit.line == 4 and "token too long" in hit.message
