"""What a lint rule is, what it sees and what it reports: ``Rule``, ``Context``, ``Finding``.

``rules.py`` declares the rules and ``engine.py`` runs them; both import this module,
so rules never import the engine. Nothing here reads a file or knows a particular
rule.

``Context`` gives rules what they need in time linear in the file, whatever its
shape (many stages, many apps, one huge section, one huge line): sections indexed
by name once, and ``lines_matching``, which lets a regular expression find the few
lines worth a closer look without a Python loop over every line.

>>> Severity.WARNING, f"{Severity.ERROR}"
(<Severity.WARNING: 'warning'>, 'error')
"""

from __future__ import annotations

import bisect
import enum
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from ..apptainer import STAGE_START, build_arg_uses, scan_lines
from ..parse import RawSection, RawStage

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
    """What rules see for one file: the raw stages (Apptainer's reading, from
    ``parse.split_stages``), the text, parse errors, the policy, this file's
    shellcheck findings, and the errors that kept it from being read at all."""

    path: str
    text: str
    raw: list[RawStage]
    policy: Mapping[str, Any]
    parse_errors: list[Hit] = attrs.field(factory=list)
    sc_findings: list[tuple[int, str, str]] = attrs.field(factory=list)
    #: Why the file could not be read or its recipe not loaded (reported as such).
    load_errors: list[Hit] = attrs.field(factory=list)
    _cache: dict[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    def shellcheck(self) -> Iterable[tuple[int, str, str]]:
        return self.sc_findings

    def final_stages(self) -> list[RawStage]:
        return self.raw[-1:]

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per file: what several rules read (``key`` names it)."""
        key = "shared:" + key
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def lines(self) -> list[str]:
        """The file's lines as Apptainer cuts them (``apptainer.scan_lines``)."""
        if "lines" not in self._cache:
            self._cache["lines"] = scan_lines(self.text)
        return self._cache["lines"]  # type: ignore[no-any-return]

    # --- sections -----------------------------------------------------------------------

    def _index(
        self,
    ) -> tuple[list[RawSection], list[int], list[int], dict[str, list[RawSection]]]:
        """Every section in file order, their first lines, the line after each body,
        and the sections by name."""
        if "index" not in self._cache:
            flat: list[RawSection] = []
            by_name: dict[str, list[RawSection]] = {}
            for stage in self.raw:
                for sec in stage.sections:
                    flat.append(sec)
                    by_name.setdefault(sec.name, []).append(sec)
            flat.sort(key=lambda s: s.line)  # file order (already, stage by stage)
            starts = [s.line for s in flat]
            # a body holds one line per newline (parse.split_stages ends each with one)
            ends = [s.line + 1 + s.body.count("\n") for s in flat]
            self._cache["index"] = (flat, starts, ends, by_name)
        return self._cache["index"]  # type: ignore[no-any-return]

    def sections(self, *names: str) -> list[RawSection]:
        """Every section (every stage, file order) with one of these names; with no
        names, every section. Duplicates are kept as written (not merged)."""
        flat, _starts, _ends, by_name = self._index()
        if not names:
            return flat
        if len(names) == 1:
            return by_name.get(names[0], [])
        found = [s for name in names for s in by_name.get(name, [])]
        return sorted(found, key=lambda s: s.line)

    def section_names(self) -> list[str]:
        """The distinct section names in the file."""
        return list(self._index()[3])

    def section_at(self, line: int) -> RawSection | None:
        """The section whose body holds ``line`` (not its ``%name`` line), if any."""
        flat, starts, ends, _by_name = self._index()
        i = bisect.bisect_left(starts, line) - 1
        return flat[i] if i >= 0 and line < ends[i] else None

    def stage_at(self, line: int) -> int:
        """Index in ``raw`` of the stage that holds ``line`` (-1 above the first)."""
        starts = self._cache.get("stage_lines")
        if starts is None:
            starts = self._cache["stage_lines"] = [s.line for s in self.raw]
        return bisect.bisect_right(starts, line) - 1

    def merged(self, sec: RawSection) -> RawSection:
        """``sec`` as Apptainer runs it: with the other sections of its name (and app)
        in its stage, bodies appended and the last arguments kept (``RawStage.section``)."""
        return self.raw[self.stage_at(sec.line)].section(sec.name, sec.app) or sec

    # --- finding lines fast -------------------------------------------------------------

    def lines_matching(
        self, pattern: re.Pattern[str], searched: str | None = None
    ) -> Iterator[tuple[int, str]]:
        """``(number, line)`` of each line on which ``pattern`` matches, once per line,
        in order; ``line`` as ``apptainer.scan_lines`` cuts it.

        The pattern runs over the whole text (a prefilter: the caller still judges the
        line), and after a hit the search resumes on the next line, so the cost is
        linear in the text even for one huge line with many matches. A pattern should
        not match a newline; its line is that of where the match starts. ``searched``:
        a text of the same length to search instead (``_lowered``).
        """
        text = self.text
        hay = text if searched is None else searched
        pos = counted = 0
        number = 1
        while True:
            m = pattern.search(hay, pos)
            if m is None:
                return
            start = text.rfind("\n", pos, m.start()) + 1 or pos
            end = text.find("\n", m.start())
            if end < 0:
                end = len(text)
            number += text.count("\n", counted, start)
            counted = start
            cut = scan_lines(text[start : end + 1])
            yield number, (cut[0] if cut else "")
            pos = end + 1
            if pos > len(text):
                return

    def lines_matching_any(
        self, patterns: Iterable[re.Pattern[str]], *, folded: Iterable[str] = ()
    ) -> Iterator[tuple[int, str]]:
        """``lines_matching`` for several patterns, and for lines that hold one of the
        ``folded`` words in any ASCII case; each line once, in order.

        Python's ``re`` finds a pattern that starts with a literal fast and an
        alternation, or a ``re.I`` pattern, slowly: give each literal-led branch as a
        pattern of its own, and case-insensitive words as ``folded``.
        """
        found: dict[int, str] = {}
        for pattern in patterns:
            found.update(self.lines_matching(pattern))
        folded = list(folded)
        if folded:
            lowered = self._lowered()
            for word in folded:
                found.update(self.lines_matching(re.compile(re.escape(word)), lowered))
        for n in sorted(found):
            yield n, found[n]

    def _lowered(self) -> str:
        """The text with ASCII letters lowercased: the same length, so offsets agree."""
        if "lowered" not in self._cache:
            text = self.text
            self._cache["lowered"] = text.lower() if text.isascii() else text.translate(_ASCII)
        return self._cache["lowered"]  # type: ignore[no-any-return]

    def body_lines_matching(
        self,
        pattern: re.Pattern[str] | Iterable[re.Pattern[str]],
        accept: Callable[[RawSection], bool],
        *,
        folded: Iterable[str] = (),
    ) -> Iterator[tuple[int, str, RawSection]]:
        """Like ``lines_matching`` (``lines_matching_any`` for several patterns or
        ``folded`` words), for lines in the body of a section ``accept`` takes."""
        if isinstance(pattern, re.Pattern) and not folded:
            lines = self.lines_matching(pattern)
        else:
            patterns = [pattern] if isinstance(pattern, re.Pattern) else list(pattern)
            lines = self.lines_matching_any(patterns, folded=folded)
        flat, starts, ends, _by_name = self._index()
        for n, line in lines:
            i = bisect.bisect_left(starts, n) - 1  # as section_at
            if i >= 0 and n < ends[i] and accept(flat[i]):
                yield n, line, flat[i]

    def build_arg_uses(self) -> dict[int, list[tuple[int, str]]]:
        """Per stage (index in ``raw``): ``(line, name)`` of each ``{{ NAME }}`` that
        Apptainer substitutes in that stage's text (``apptainer.build_arg_uses``)."""
        if "uses" in self._cache:
            return self._cache["uses"]  # type: ignore[no-any-return]
        uses: dict[int, list[tuple[int, str]]] = {}
        text = self.text
        if "{{" in text:
            bounds = [0, *(m.start() for m in STAGE_START.finditer(text)), len(text)]
            first_line = 1
            for a, b in itertools.pairwise(bounds):
                if b <= a:
                    continue
                chunk = text[a:b]
                line, counted = first_line, 0
                for m in build_arg_uses(chunk):
                    line += chunk.count("\n", counted, m.start())
                    counted = m.start()
                    uses.setdefault(self.stage_at(line), []).append((line, m.group(1)))
                first_line += chunk.count("\n")
        self._cache["uses"] = uses
        return uses


_ASCII = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

#: A rule's check: yields a hit for each place the rule finds.
Check = Callable[[Context], Iterator[Hit]]


@attrs.frozen
class Rule:
    """A lint rule: a stable code (never reused), its documentation, and its check.

    ``policy``: active only where a team policy is configured. ``needs_shellcheck``:
    the check reads ``Context.shellcheck()`` (skipped with ``--no-shellcheck``).
    ``supersedes``: codes this rule's finding replaces on the same line (a parse
    error a specific rule explains is not reported twice, nor again under the
    general code when the specific rule is ignored or suppressed).
    ``not_linted``: the rule reports files the engine could not read or load; it is
    always on (it says what was not checked), makes lint exit 2, and its examples
    are recipe scripts.
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
    not_linted: bool = False


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
