"""Generate docs/lint-rules.md from the rule objects: ``python -m defbuilder.lint.docs``."""

from __future__ import annotations

import sys

from .rules import EXAMPLE_POLICY, RULES


def rules_markdown() -> str:
    out = [
        "# Lint rules",
        "",
        "Generated from `defbuilder/lint/rules.py` by `python -m defbuilder.lint.docs`; "
        "the tests check every bad example fires its rule and every good one does not.",
        "",
        "Suppress a finding with `# defbuilder: ignore[CODE]` at the end of the line, "
        "or alone on the line above it.",
        "",
        "| code | name | severity | summary |",
        "|---|---|---|---|",
    ]
    out += [
        f"| [{r.code}](#{r.code.lower()}-{r.name}) | {r.name} | {r.severity} | {r.summary} |"
        for r in RULES
    ]
    out.append("")
    for r in RULES:
        out += [f"## {r.code} {r.name}", "", f"**{r.severity}.** {r.summary}", "", r.why, ""]
        if r.policy:
            out += [
                "Policy rule: active only where a policy is configured "
                "(`[tool.defbuilder.policy]` in pyproject.toml or `[policy]` in "
                f"defbuilder.toml). The examples use `{EXAMPLE_POLICY}`.",
                "",
            ]
        if r.needs_shellcheck:
            out += [
                "Runs shellcheck (skipped with `--no-shellcheck` or when shellcheck is "
                "not installed).",
                "",
            ]
        if r.supersedes:
            out += [
                f"Reported instead of {', '.join(r.supersedes)} on the same line; when "
                f"{r.code} is ignored or suppressed there, so is the "
                f"{', '.join(r.supersedes)} it replaces.",
                "",
            ]
        if r.not_linted:
            out += [
                "Always reported: `--select` and `--ignore` do not change it, and "
                "lint exits 2 when it is found. The examples are recipe scripts "
                "(`recipe.py`).",
                "",
            ]
        fence = "py" if r.not_linted else "singularity"
        out += [
            "Bad:",
            "",
            f"```{fence}",
            r.bad.rstrip("\n"),
            "```",
            "",
            "Good:",
            "",
            f"```{fence}",
            r.good.rstrip("\n"),
            "```",
            "",
        ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(rules_markdown())
