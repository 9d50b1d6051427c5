"""Definition-file text -> raw stages and sections, the way Apptainer reads it.

This is the reading layer: it follows apptainer/apptainer
``pkg/build/types/parser/deffile.go`` rule by rule and keeps a line number on
everything, so that later layers (the entry harness in ``runtime.py``; the typed
parser and lint) report ``file:line``. It never renders.

Rules (deffile.go unless noted):

* stages are split at ``(?mi)^bootstrap:`` (``All``); text above the first one that
  holds only blanks and comments is dropped;
* lines are split like ``bufio.ScanLines``: ``\\n``, one trailing ``\\r`` dropped;
* a line whose first whitespace-separated word starts with ``%`` starts a section
  (``scanDefinitionFile``); the name is the text up to the first space, lowercased
  (``getSectionName``); the rest of the line is the section's ``args``;
* app sections (``%apprun NAME``...) take the app name as second word;
* unknown section names are an error (``populateDefinition``: "invalid section(s)
  specified"), as is an app section without a name;
* header lines are ``key: value``; ``#`` starts a comment anywhere on the line;
  keys are case-insensitive; a trailing ``\\`` continues the value (``doHeader``).

>>> [s.sections[0].name for s in split_stages("Bootstrap: docker\\nFrom: x\\n%post\\necho\\n")]
['post']
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from itertools import pairwise
from typing import Any, NamedTuple

from . import apptainer
from .apptainer import (
    APP_SECTIONS,
    SECTIONS,
    STAGE_START,
    FilesSource,
    body_entries,
    files_source,
    get_labels,
    go_trim,
    is_section_line,
    scan_lines,
    section_name,
    split_files_line,
)
from .errors import DefError, Origin
from .model._values import BuildArg, is_arg_name
from .model.header import HEADER_KEYWORDS as HEADER_FIELDS
from .model.header import Header
from .model.sections import App, Environment, FileEntry, Files, Label, Script
from .model.stage import Recipe, Stage

__all__ = [
    "RawSection",
    "RawStage",
    "parse",
    "split_stages",
]


class RawSection(NamedTuple):
    """One section as Apptainer tokenizes it: name, args, body, and where it starts."""

    name: str
    args: str
    body: str
    line: int
    app: str | None = None


class RawStage:
    """One stage: header keys (lowercased) and sections, in file order.

    A plain class (not attrs): it is on the CLI's start-up path and never compared.
    """

    __slots__ = (
        "_app_lines",
        "_by_key",
        "header",
        "header_errors",
        "header_lines",
        "line",
        "sections",
    )

    def __init__(
        self,
        header: dict[str, str],
        header_lines: dict[str, int],
        sections: tuple[RawSection, ...],
        line: int,
        header_errors: tuple[tuple[int, str], ...] = (),
    ) -> None:
        self.header = header
        self.header_lines = header_lines
        self.sections = sections
        self.line = line
        #: Problems Apptainer's header reader stops at: (line, message).
        self.header_errors = header_errors
        index: dict[tuple[str, str | None], list[RawSection]] = {}
        apps: dict[str, int] = {}
        for sec in sections:
            index.setdefault((sec.name, sec.app), []).append(sec)
            if sec.app is not None:
                apps.setdefault(sec.app, sec.line)
        self._by_key = index
        self._app_lines = apps

    def __repr__(self) -> str:
        return f"RawStage(line={self.line}, header={self.header!r}, sections={len(self.sections)})"

    def section(self, name: str, app: str | None = None) -> RawSection | None:
        """All sections with this name merged as Apptainer does (bodies appended)."""
        found = self._by_key.get((name, app))
        if not found:
            return None
        args = ""
        for s in found:
            if s.args:
                args = s.args  # a later section with args overrides (parseTokenSection)
        return RawSection(name, args, "".join(s.body for s in found), found[0].line, app)

    def app_line(self, app: str) -> int:
        """The line of the first section of ``app``."""
        return self._app_lines[app]

    def apps(self) -> list[str]:
        """App names in first-seen order (deffile.go ``appOrder``)."""
        return list(self._app_lines)


def _chunks(text: str) -> Iterator[tuple[str, int]]:
    """The text of each stage (deffile.go ``All``) and its first line number."""
    starts = [m.start() for m in STAGE_START.finditer(text)]
    line = 1
    for a, b in pairwise([0, *starts, len(text)]):
        if b > a:
            yield text[a:b], line
            line += text.count("\n", a, b)


def _read_header(
    lines: list[tuple[int, str]],
) -> tuple[dict[str, str], dict[str, int], list[tuple[int, str]]]:
    header: dict[str, str] = {}
    where: dict[str, int] = {}
    errors: list[tuple[int, str]] = []
    for key, value, n in apptainer.read_header(lines):
        if key is None:
            errors.append((n, value))
        else:
            header[key] = value
            where[key] = n
    return header, where, errors


def split_stages(text: str, file: str | None = None, *, strict: bool = True) -> list[RawStage]:
    """Split a .def into stages and sections with Apptainer's rules (see module doc).

    ``strict=False`` (for lint) keeps sections Apptainer would reject (an unknown or
    indented name, an app section without a name) instead of raising, and never
    raises for an empty file.
    """
    stages: list[RawStage] = []
    for chunk, first_line in _chunks(text):
        head: list[tuple[int, str]] = []
        # (name, args, line, app, body lines) per section, in file order
        opened: list[tuple[str, str, int, str | None, list[str]]] = []
        for offset, line in enumerate(scan_lines(chunk)):
            n = first_line + offset
            if not is_section_line(line):
                if opened:
                    opened[-1][4].append(line)
                else:
                    head.append((n, line))
                continue
            # Only the stage's first token is TrimSpace'd (deffile.go doSections); an
            # indented section line after anything else keeps its leading space, so
            # getSectionName gives "" and Apptainer rejects it.
            stripped = line if (opened or head) else go_trim(line)
            name, args = section_name(stripped)
            app = None
            if name in APP_SECTIONS:
                # parseTokenSection: SplitN(..., " ", 3); the second word is the app.
                parts = stripped.lstrip("%").split(" ", 2)
                if len(parts) < 2 or not parts[1]:
                    if strict:
                        raise DefError(f"app section %{name} has no app name", file=file, line=n)
                    parts = [name, ""]
                app, args = parts[1], ""
            elif name not in SECTIONS and strict:
                raise DefError(
                    f"invalid section(s) specified: {name!r} (Apptainer refuses it)",
                    file=file,
                    line=n,
                )
            opened.append((name, args, n, app, []))
        sections = [
            RawSection(name, args, "".join(b + "\n" for b in body), line, app)
            for name, args, line, app, body in opened
        ]
        header, where, errors = _read_header(head)
        if errors and strict:
            n, message = errors[0]
            raise DefError(message, file=file, line=n)
        if not header and not sections and not errors:
            continue  # comments only (deffile.go: errEmptyDefinition is skipped)
        stages.append(RawStage(header, where, tuple(sections), first_line, tuple(errors)))
    if not stages and strict:
        raise DefError("no stages found in definition file", file=file, line=1)
    return stages


# ---------------------------------------------------------------------------
# Raw stages -> the typed model (defbuilder.model), with a source line on each node
# ---------------------------------------------------------------------------


def _files_entries(section: RawSection, file: str | None) -> list[FileEntry]:

    entries = []
    for offset, line in body_entries(section.body):
        src, dst = split_files_line(line)
        entries.append(FileEntry(src, dst or None, origin=Origin(file, section.line + offset)))
    return entries


def _script(section: RawSection | None, file: str | None, build: bool) -> Script:

    if section is None or not go_trim(section.body):
        return _EMPTY_SCRIPT  # an empty section runs nothing, whatever its arguments
    origin = Origin(file, section.line)
    args = go_trim(section.args)
    words = apptainer.go_fields(args)
    if (
        build
        and not section.body.startswith("#!")  # keep `-c SHELL` as written: a #! is a comment
        and len(words) in (2, 3)
        and words[0] == "-c"
        and words[1].startswith("/")
        and words[2:] in ([], ["-e"])
        and "#" not in args
    ):
        return Script(
            section.body, shell=words[1], errexit=words[2:] == ["-e"], verbatim=True, origin=origin
        )
    return Script(section.body, args=section.args.rstrip(), verbatim=True, origin=origin)


_EMPTY_SCRIPT = Script(origin=Origin(None, None))


#: Lowercased header keyword -> ``Header`` field name.
_FIELD_BY_KEY = {k.lower(): f for f, k in HEADER_FIELDS.items()}


def _header(stage: RawStage, file: str | None) -> Header:

    line = stage.header_lines.get("bootstrap", stage.line)
    origin = Origin(file, line)
    agent = stage.header.get("bootstrap")
    if agent is None:
        raise DefError(
            "stage has no Bootstrap: header (Apptainer needs one per stage)",
            file=file,
            line=stage.line,
        )
    by_key = _FIELD_BY_KEY
    kwargs: dict[str, Any] = {}
    ignored: list[tuple[str, str]] = []
    other_urls: list[str] = []
    for key, value in stage.header.items():
        kline = stage.header_lines.get(key, line)
        if key == "bootstrap":
            continue
        if not apptainer.is_valid_header_key(key):
            raise DefError(f"invalid header keyword found: {key}", file=file, line=kline)
        if not value:
            raise DefError(f"header key {key} had no val", file=file, line=kline)
        reads = apptainer.agent_reads(agent, key)
        if apptainer.is_other_url(key) and reads:
            other_urls.append(value)
        elif key == "includecmd" and value.lower() in ("yes", "no", "true", "false"):
            kwargs["include_cmd"] = value.lower() in ("yes", "true")
        elif reads and key in by_key:
            kwargs[by_key[key]] = value
        else:
            ignored.append((apptainer.HEADER_KEYWORD_SPELLING.get(key, key), value))
    return Header(agent, other_urls=other_urls, ignored=ignored, origin=origin, **kwargs)


def _stage(raw: RawStage, file: str | None, warnings: list[str]) -> Stage:

    header = _header(raw, file)
    sections: dict[str, Any] = {}
    files = []
    seen_files: list[RawSection] = [s for s in raw.sections if s.name == "files"]
    for fsec in seen_files:
        source, from_stage = files_source(fsec.args)
        if source is FilesSource.IGNORED:
            warnings.append(
                f"{file}:{fsec.line}: %files {fsec.args!r}: Apptainer ignores "
                "a %files section with these arguments; dropped"
            )
            continue
        files.append(
            Files(_files_entries(fsec, file), from_stage=from_stage, origin=Origin(file, fsec.line))
        )
    sections["files"] = files
    for name in (*apptainer.BUILD_SECTIONS, *apptainer.SHEBANG_SECTIONS):
        sections[name] = _script(raw.section(name), file, name in apptainer.BUILD_SECTIONS)
    env = raw.section("environment")
    if env is not None and go_trim(env.body):
        sections["environment"] = Environment(_script(env, file, False))
    labels = raw.section("labels")
    if labels is not None:
        sections["labels"] = [
            Label(k, v, origin=Origin(file, labels.line))
            for k, v in get_labels(labels.body).items()
        ]
    help_ = raw.section("help")
    if help_ is not None:
        sections["help"] = Script(help_.body, verbatim=True, origin=Origin(file, help_.line))
    args = raw.section("arguments")
    if args is not None:
        declared: dict[str, BuildArg] = {}
        for offset, key, value in apptainer.read_arguments(args.body):
            where = f"{file}:{args.line + offset}"
            if key is None:
                warnings.append(f"{where}: %arguments: {value} (Apptainer warns and skips it)")
            elif not is_arg_name(key):
                warnings.append(
                    f"{where}: %arguments: {key!r} can never be used: a {{{{ NAME }}}} "
                    "placeholder holds only letters, digits and _; dropped"
                )
            else:
                # ReadDefaults fills a map: a repeated key's last value wins.
                declared[key] = BuildArg(key, value, origin=Origin(file, args.line + offset))
        sections["arguments"] = list(declared.values())
    apps = []
    for name in raw.apps():
        parts: dict[str, Any] = {}
        for part, kind in (
            ("install", "appinstall"),
            ("run", "apprun"),
            ("start", "appstart"),
            ("test", "apptest"),
        ):
            sec = raw.section(kind, name)
            if sec is not None and go_trim(sec.body):
                parts[part] = Script(sec.body, verbatim=True, origin=Origin(file, sec.line))
        sec = raw.section("appenv", name)
        if sec is not None:
            parts["env"] = Environment(
                Script(sec.body, verbatim=True, origin=Origin(file, sec.line))
            )
        sec = raw.section("applabels", name)
        if sec is not None:
            parts["labels"] = [
                Label(k, v, origin=Origin(file, sec.line)) for k, v in get_labels(sec.body).items()
            ]
        sec = raw.section("appfiles", name)
        if sec is not None:
            parts["files"] = [
                FileEntry(src, dst or None, origin=Origin(file, sec.line + offset))
                for offset, line in body_entries(sec.body)
                for src, dst in [apptainer.split_appfiles_line(line)]
            ]
        sec = raw.section("apphelp", name)
        if sec is not None:
            parts["help"] = Script(sec.body, verbatim=True, origin=Origin(file, sec.line))
        first = raw.app_line(name)
        apps.append(App(name, origin=Origin(file, first), **parts))
    sections["apps"] = apps
    return Stage(header, origin=Origin(file, raw.line), **sections)


def parse(text: str, file: str | None = None, warnings: list[str] | None = None) -> Recipe:
    """``.def`` text -> ``Recipe``, following Apptainer's parser; errors name file:line.

    What Apptainer accepts but ignores (a ``%files`` section with odd arguments, a
    bad ``%arguments`` line) is dropped with a message appended to ``warnings``;
    header keywords the agent does not read are kept in ``Header.ignored``.

    >>> r = parse("Bootstrap: docker\\nFrom: ubuntu:24.04\\n%post\\n  apt-get update\\n")
    >>> r.stages[0].post.body, r.stages[0].post.origin.line
    ('  apt-get update', 3)
    """

    if text.startswith("\ufeff"):
        # Go does not strip a BOM: the first key becomes "\ufeffbootstrap" and
        # Apptainer stops with "invalid header keyword found".
        raise DefError(
            "file starts with a UTF-8 byte-order mark; Apptainer reads the first "
            "header key with it and rejects the file; save without BOM",
            file=file,
            line=1,
        )
    sink = warnings if warnings is not None else []
    with paused_gc():
        stages = [_stage(raw, file, sink) for raw in split_stages(text, file)]
        recipe = Recipe(stages, origin=Origin(file, 1))
    recipe.validate()
    return recipe


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building many small acyclic
    objects: each collection would walk all of them again, so a large file took
    time growing faster than its size (bench/parse_scaling.py). Reference counting
    still frees everything; the collector runs again afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
