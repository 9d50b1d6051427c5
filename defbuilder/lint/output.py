"""Lint output: text, JSON (lint.schema.json) and SARIF 2.1.0."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from .. import __version__
from .context import Finding, Severity
from .rules import RULES

__all__ = ["to_json", "to_sarif", "to_text"]

_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
DOCS = "https://github.com/defbuilder/defbuilder/blob/main/docs/lint-rules.md"


def _shown(path: str) -> str:
    if os.path.isabs(path):
        rel = os.path.relpath(path)
        if not rel.startswith(".."):
            return rel
    return path


def to_text(findings: Sequence[Finding]) -> str:
    return "".join(
        f"{_shown(f.file)}:{f.line}: {f.code} [{f.severity}] {f.message}\n" for f in findings
    )


def to_json(findings: Sequence[Finding]) -> str:
    data = {
        "version": 1,
        "tool": {"name": "defbuilder", "version": __version__},
        "findings": [
            {
                "file": f.file,
                "line": f.line,
                "code": f.code,
                "name": f.rule.name,
                "severity": f.severity,
                "message": f.message,
            }
            for f in findings
        ],
    }
    return json.dumps(data, indent=2) + "\n"


def to_sarif(findings: Sequence[Finding]) -> str:
    """SARIF 2.1.0 (OASIS): one run, the rules in tool.driver.rules, one result each."""
    index = {r.code: i for i, r in enumerate(RULES)}
    rules = [
        {
            "id": r.code,
            "name": r.name,
            "shortDescription": {"text": r.summary},
            "fullDescription": {"text": r.why},
            "helpUri": f"{DOCS}#{r.code.lower()}-{r.name}",
            "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity]},
        }
        for r in RULES
    ]
    results: list[dict[str, Any]] = [
        {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.file)},
                        "region": {"startLine": max(f.line, 1)},
                    }
                }
            ],
        }
        for f in findings
    ]
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "defbuilder",
                        "version": __version__,
                        "informationUri": DOCS,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def _uri(path: str) -> str:
    rel = os.path.relpath(path) if os.path.isabs(path) else path
    if rel.startswith(".."):
        return "file://" + os.path.abspath(path)
    return rel.replace(os.sep, "/")
