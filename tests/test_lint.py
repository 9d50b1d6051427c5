"""defbuilder lint: every rule fires on its bad example and not on its good one; output
formats validate; exit codes; suppression; recipes map to their own lines; shellcheck
runs once per lint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from defbuilder.lint import RULES, lint_text
from defbuilder.lint.docs import rules_markdown
from defbuilder.lint.engine import shellcheck_binary
from defbuilder.lint.rules import EXAMPLE_POLICY

DEFS = Path(__file__).parent / "defs"
HAS_SHELLCHECK = shellcheck_binary() is not None


def _codes(text: str, rule) -> set[str]:
    policy = EXAMPLE_POLICY if rule.policy else None
    return {f.code for f in lint_text(text, "x.def", policy=policy)}


@pytest.mark.parametrize("rule", RULES, ids=[r.code for r in RULES])
def test_rule_fires_on_bad_example(rule):
    if rule.code in ("DB110", "DB111") and not HAS_SHELLCHECK:
        pytest.skip("shellcheck not installed")
    assert rule.code in _codes(rule.bad, rule)


@pytest.mark.parametrize("rule", RULES, ids=[r.code for r in RULES])
def test_rule_does_not_fire_on_good_example(rule):
    assert rule.code not in _codes(rule.good, rule)


def test_codes_are_unique_and_stable():
    codes = [r.code for r in RULES]
    assert len(codes) == len(set(codes))
    assert codes == sorted(codes)


def test_rules_doc_is_generated_from_the_rules():
    assert (ROOT / "docs" / "lint-rules.md").read_text() == rules_markdown()


def test_upstream_example_flaws_are_found():
    codes = [(f.line, f.code) for f in lint_text((DEFS / "multistage_pixi.def").read_text(),
                                                 "m.def")]
    assert (12, "DB101") in codes and (33, "DB101") in codes   # inert #! in %post
    assert (38, "DB112") in codes                               # runscript without exec
    assert (38, "DB114") in codes                               # env only in runscript
    assert (47, "DB113") in codes                               # sourcing exec "$@"


def test_suppression_same_line_and_line_above():
    text = ("Bootstrap: docker\nFrom: ubuntu\n"
            "%post\n    #!/bin/bash  # defbuilder: ignore[DB101]\n"
            "    # defbuilder: ignore[DB123,DB124]\n    apt-get install -y git\n"
            "%test\n    true\n")
    codes = {f.code for f in lint_text(text, shellcheck=False)}
    assert "DB101" not in codes and "DB123" not in codes and "DB124" not in codes
    assert "DB116" in codes  # other findings stay


def test_exit_codes_and_formats(tmp_path):
    clean = tmp_path / "clean.def"
    clean.write_text(RULES[0].good)
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
        "type": "object", "required": ["version", "runs"],
        "properties": {
            "version": {"const": "2.1.0"},
            "runs": {"type": "array", "items": {
                "type": "object", "required": ["tool", "results"],
                "properties": {
                    "tool": {"type": "object", "required": ["driver"], "properties": {
                        "driver": {"type": "object", "required": ["name", "rules"]}}},
                    "results": {"type": "array", "items": {
                        "type": "object", "required": ["ruleId", "message", "locations"],
                        "properties": {
                            "level": {"enum": ["none", "note", "warning", "error"]},
                            "message": {"type": "object", "required": ["text"]}}}}}}}}}
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
        ")\n")
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
        'required-labels = ["maintainer"]\nforbidden-commands = ["sudo"]\n')
    d = tmp_path / "app.def"
    d.write_text("Bootstrap: docker\nFrom: ubuntu:24.04\n%post\n    sudo true\n")
    codes = {f["code"] for f in json.loads(run_cli("lint", "--format", "json", str(d)).stdout)
             ["findings"]}
    assert {"DP201", "DP203", "DP204", "DP205"} <= codes
    (tmp_path / "pyproject.toml").write_text('[tool.defbuilder.policy]\nbogus = 1\n')
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
    text = ("Bootstrap: docker\nFrom: x:1\n\n%post\n    echo ok\n"
            "    if [[ -d /x ]]; then echo; fi\n%test\n    true\n")
    if not HAS_SHELLCHECK:
        pytest.skip("shellcheck not installed")
    hits = [f for f in lint_text(text) if f.code == "DB110"]
    assert hits and hits[0].line == 6


def test_policy_file_option(tmp_path):
    pol = tmp_path / "team.toml"
    pol.write_text('[policy]\nrequire-digest = true\n')
    d = tmp_path / "sub" / "app.def"
    d.parent.mkdir()
    d.write_text("Bootstrap: docker\nFrom: ubuntu:24.04\n%test\n    true\n")
    out = run_cli("lint", "--policy", str(pol), "--select", "DP202", str(d))
    assert out.returncode == 1 and "DP202" in out.stdout
    assert run_cli("lint", "--select", "DP202", str(d)).returncode == 0  # no policy found
