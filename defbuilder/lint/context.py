"""What a lint rule is, what it sees and what it reports: ``Rule``, ``Context``, ``Finding``.

``rules.py`` declares the rules and ``engine.py`` runs them; both import this module,
so rules never import the engine. Nothing here reads a file or knows a particular
rule.

>>> Severity.WARNING, f"{Severity.ERROR}"
(<Severity.WARNING: 'warning'>, 'error')
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from ..parse import RawStage

__all__ = ["Check", "Context", "Finding", "Hit", "Rule", "Severity"]

#: What a check yields: (line in the linted file, message).
Hit = tuple[int, str]


class Severity(enum.StrEnum):
    """How bad a finding is; the value is what text, JSON and SARIF output show."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@attrs.define
class Context:
    """What rules see for one file: the raw stages (Apptainer's reading), the file's
    lines and per-stage text (cut like ``apptainer.scan_lines``), parse errors, the
    policy, and this file's shellcheck findings."""

    path: str
    text: str
    raw: list[RawStage]
    stage_texts: list[str]
    parse_errors: list[Hit]
    policy: Mapping[str, Any]
    sc_findings: list[tuple[int, str, str]] = attrs.field(factory=list)
    #: The file's lines as Apptainer cuts them (a lone CR is not a line break).
    lines: list[str] = attrs.field(factory=list)

    def shellcheck(self) -> Iterable[tuple[int, str, str]]:
        return self.sc_findings

    def final_stages(self) -> list[RawStage]:
        return self.raw[-1:]


#: A rule's check: yields a hit for each place the rule finds.
Check = Callable[[Context], Iterator[Hit]]


@attrs.frozen
class Rule:
    """A lint rule: a stable code (never reused), its documentation, and its check.

    ``policy``: active only where a team policy is configured. ``needs_shellcheck``:
    the check reads ``Context.shellcheck()`` (skipped with ``--no-shellcheck``).
    ``supersedes``: codes this rule's finding replaces on the same line (a parse
    error a specific rule explains is not reported twice).
    """

    code: str
    name: str
    severity: Severity
    summary: str
    why: str
    bad: str
    good: str
    check: Check = attrs.field(repr=False, eq=False)
    policy: bool = False
    needs_shellcheck: bool = False
    supersedes: tuple[str, ...] = ()


@attrs.frozen
class Finding:
    """One hit of one rule in one file."""

    file: str
    line: int
    rule: Rule
    message: str

    @property
    def code(self) -> str:
        return self.rule.code

    @property
    def severity(self) -> Severity:
        return self.rule.severity
