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
* app sections (``%apprun NAME``...) take the app name as second word and keep
  their first word as written (``parseTokenSection``), so only lower-case ones are
  valid sections;
* unknown section names are an error (``populateDefinition``: "invalid section(s)
  specified"), as is an app section without a name;
* header lines are ``key: value``; ``#`` starts a comment anywhere on the line;
  keys are case-insensitive; a trailing ``\\`` continues the value (``doHeader``);
* a repeated section's bodies are appended; its arguments are those of the last
  line with a space after the name, even none (``parseTokenSection``);
* each stage is read with a ``bufio.Scanner`` of at most 64 KiB a piece (header,
  or section with its body, and the next section line: ``ParseDefinitionFile``).

>>> [s.sections[0].name for s in split_stages("Bootstrap: docker\\nFrom: x\\n%post\\necho\\n")]
['post']
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterable
from itertools import pairwise
from typing import Any, NamedTuple

from . import apptainer
from .apptainer import (
    APP_SECTIONS,
    SECTIONS,
    FilesSource,
    body_entries,
    files_source,
    get_labels,
    go_trim,
    is_script_section,
    oversized_pieces,
    scan_lines,
    section_name,
    split_files_line,
    stage_and_section_lines,
    too_long_message,
)
from .errors import DefError, Origin
from .model._values import BuildArg, check_body, construct, is_arg_name
from .model.header import HEADER_KEYWORDS as HEADER_FIELDS
from .model.header import Header
from .model.sections import (
    EMPTY_SCRIPT,
    App,
    Environment,
    FileEntry,
    Files,
    HelpText,
    Label,
    Script,
)
from .model.stage import Recipe, Stage

__all__ = [
    "RawSection",
    "RawStage",
    "check_strict",
    "parse",
    "parse_stages",
    "split_stages",
]


class RawSection(NamedTuple):
    """One section as Apptainer tokenizes it: name, args, body, and where it starts."""

    name: str
    args: str
    body: str
    line: int
    app: str | None = None
    #: Whether the section line has a space after the name: then its ``args`` (even
    #: empty) replace those of an earlier section of the same name when Apptainer
    #: merges them (deffile.go parseTokenSection: ``len(sectionSplit) == 2``).
    spaced: bool = False


class RawStage:
    """One stage: header keys (lowercased) and sections, in file order.

    A plain class (not attrs): it is on the CLI's start-up path and never compared.
    """

    __slots__ = ("_index", "header", "header_lines", "line", "read_errors", "sections")

    def __init__(
        self,
        header: dict[str, str],
        header_lines: dict[str, int],
        sections: tuple[RawSection, ...],
        line: int,
        read_errors: tuple[tuple[int, str], ...] = (),
    ) -> None:
        self.header = header
        self.header_lines = header_lines
        self.sections = sections
        self.line = line
        #: Problems Apptainer's reader stops at in this stage (a header line it cannot
        #: read, a piece too large for its scanner): (line, message).
        self.read_errors = read_errors
        # app (None: the stage's own sections) -> section name -> its sections, all in
        # first-seen order; one small dict per app, as a big file holds many stages
        index: dict[str | None, dict[str, list[RawSection]]] = {None: {}}
        for sec in sections:
            by_name = index.get(sec.app)
            if by_name is None:
                by_name = index[sec.app] = {}
            found = by_name.get(sec.name)
            if found is None:
                by_name[sec.name] = [sec]
            else:
                found.append(sec)
        self._index = index

    def __repr__(self) -> str:
        return f"RawStage(line={self.line}, header={self.header!r}, sections={len(self.sections)})"

    def section(self, name: str, app: str | None = None) -> RawSection | None:
        """All sections with this name merged as Apptainer does (bodies appended)."""
        found = self._index.get(app, {}).get(name)
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        args, spaced = "", False
        for s in found:
            if s.spaced:  # a later section with args (even empty ones) overrides
                args, spaced = s.args, True
        body = "".join(s.body for s in found)
        return RawSection(name, args, body, found[0].line, app, spaced)

    def parts(self, name: str, app: str | None = None) -> list[RawSection]:
        """The sections with this name as written, in file order (``section``
        merges them)."""
        return self._index.get(app, {}).get(name, [])

    def repeated(self, app: str | None = None) -> list[str]:
        """The section names written more than once (of the stage, or of one app)."""
        return [name for name, found in self._index[app].items() if len(found) > 1]

    def names(self, app: str | None = None) -> Collection[str]:
        """The section names present (of the stage, or of one app)."""
        return self._index[app].keys()

    def app_line(self, app: str) -> int:
        """The line of the first section of ``app``."""
        return next(iter(self._index[app].values()))[0].line

    def apps(self) -> list[str]:
        """App names in first-seen order (deffile.go ``appOrder``)."""
        return [app for app in self._index if app is not None]


def _read_header(
    lines: Iterable[tuple[int, str]],
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

    One pass finds every stage start and section line (``stage_and_section_lines``); bodies
    are slices of the text between them, so the work is linear in the file's size
    whatever its shape (bench/parse_scaling.py).
    """
    stages = _split(text)
    if strict:
        check_strict(stages, file)
    return stages


def _split(text: str) -> list[RawStage]:
    # Every mark: (offset, whether it is a section line). A stage start's match ends
    # in ':', a section line's in '%'. The end of the text closes the last stage.
    end = len(text)
    marks = stage_and_section_lines(text)
    oversized = dict(oversized_pieces(text, marks))  # offset -> bytes; {} below 16 KiB
    marks.append((end, False))
    too_long: list[tuple[int, str]] = []  # this stage's pieces the scanner cannot hold
    stages: list[RawStage] = []
    count, find = text.count, text.find
    line, pos = 1, 0  # the line number at offset pos
    chunk_start, chunk_line = 0, 1
    head_end = -1  # where the current stage's first section line starts
    opened: list[RawSection] = []
    for (offset, is_section), (next_offset, _next) in pairwise([*marks, (end, False)]):
        line += count("\n", pos, offset)
        pos = offset
        if not is_section:
            if offset == 0 and end:
                continue  # the file starts with its first stage
            # The stage that started at chunk_start ends here (deffile.go ``All``).
            head_text = text[chunk_start : offset if head_end < 0 else head_end]
            head = enumerate(scan_lines(head_text), start=chunk_line)
            header, where, errors = _read_header(head)
            if head_text and chunk_start in oversized:
                problem = too_long_message(
                    "the header", oversized[chunk_start], "shorten the header"
                )
                errors.insert(0, (chunk_line, problem))
            errors += too_long
            if header or opened or errors:  # else comments only: errEmptyDefinition
                stages.append(RawStage(header, where, tuple(opened), chunk_line, tuple(errors)))
            chunk_start, chunk_line, head_end, opened, too_long = offset, line, -1, [], []
            continue
        eol = find("\n", offset)
        if eol < 0:
            eol = end
        sec_line = text[offset:eol]
        if sec_line.endswith("\r"):
            sec_line = sec_line[:-1]
        if head_end < 0:
            head_end = offset
            if offset == 0:
                # Only the file's first token is TrimSpace'd (deffile.go doSections);
                # an indented section line anywhere else keeps its leading space, so
                # getSectionName gives "" and Apptainer rejects it.
                sec_line = go_trim(sec_line)
        name, args = section_name(sec_line)
        app = None
        if name in APP_SECTIONS:
            # parseTokenSection: SplitN(..., " ", 3); the second word is the app. The
            # map key keeps the first word as written, and populateDefinition only
            # knows lower-case app sections: `%AppRun x` is an invalid section.
            parts = sec_line.lstrip("%").split(" ", 2)
            app, args, name = (parts[1] if len(parts) > 1 else ""), "", parts[0]
        # The body runs from the next line to the next mark, as bufio.ScanLines lines
        # each ending in \n: one \r before each line end dropped (the last one's too).
        body = text[eol + 1 : next_offset].replace("\r\n", "\n") if eol < end else ""
        if body and body[-1] != "\n":
            body = (body[:-1] if body[-1] == "\r" else body) + "\n"
        opened.append(RawSection(name, args, body, line, app, " " in sec_line))
        if offset in oversized:
            problem = too_long_message(
                f"%{name} with its body", oversized[offset], _split_advice(name)
            )
            too_long.append((line, problem))
    return stages


def _split_advice(name: str) -> str:
    split = f"split %{name} into several (Apptainer appends the bodies of repeated sections"
    if not is_script_section(name):
        return split + ")"
    return (
        "move commands into a script copied in with %files, or " + split + "; repeat "
        "the section's arguments on each)"
    )


def check_strict(stages: list[RawStage], file: str | None) -> None:
    """What Apptainer refuses in the split: an unknown (or indented) section name,
    an app section without an app name, a header line it cannot read, a piece too
    large for its scanner, no stage. Stage by stage, the first problem is raised."""
    for stage in stages:
        for sec in stage.sections:
            if sec.app == "":
                raise DefError(
                    f"app section %{sec.name} has no app name: Apptainer takes the word "
                    f"after the first single space (`%{sec.name} NAME`; two spaces make "
                    "an empty name)",
                    file=file,
                    line=sec.line,
                )
            if sec.app is None and sec.name not in SECTIONS:
                raise DefError(
                    f"invalid section(s) specified: {sec.name!r} (Apptainer refuses it)",
                    file=file,
                    line=sec.line,
                )
            if sec.app is not None and sec.name not in APP_SECTIONS:
                raise DefError(
                    f"invalid section(s) specified: '{sec.name} {sec.app}' (Apptainer reads "
                    f"app sections in lower case only: %{sec.name.lower()})",
                    file=file,
                    line=sec.line,
                )
        if stage.read_errors:
            n, message = stage.read_errors[0]
            raise DefError(message, file=file, line=n)
    if not stages:
        raise DefError("no stages found in definition file", file=file, line=1)


# ---------------------------------------------------------------------------
# Raw stages -> the typed model (defbuilder.model), with a source line on each node
# ---------------------------------------------------------------------------


def _files_entries(section: RawSection, file: str | None) -> tuple[FileEntry, ...]:
    return tuple(
        FileEntry(src, dst or None, origin=Origin(file, section.line + offset))
        for offset, line in body_entries(section.body)
        for src, dst in [split_files_line(line)]
    )


def _text(section: RawSection, file: str | None) -> Script:
    """A body kept as written (``%help``, app scripts, ``%appenv``)."""
    _check_lines(section, file)
    return Script(section.body, verbatim=True, origin=Origin(file, section.line))


def _check_lines(section: RawSection, file: str | None) -> None:
    """What the model refuses in a parsed body (a NUL byte: Apptainer's reader keeps
    it), reported at its own line rather than at the section's."""
    if "\x00" in section.body:
        name = section.name if section.app is None else f"{section.name} {section.app}"
        check_body(
            section.body, f"%{name}", Origin(file, section.line), first_line=section.line + 1
        )


def _script(section: RawSection | None, file: str | None, build: bool) -> Script:
    if section is None or not go_trim(section.body):
        return EMPTY_SCRIPT  # an empty section runs nothing, whatever its arguments
    _check_lines(section, file)
    origin = Origin(file, section.line)
    if not section.args:
        return Script(section.body, verbatim=True, origin=origin)
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


def _labels(section: RawSection, file: str | None) -> tuple[Label, ...]:
    origin = Origin(file, section.line)
    return tuple(Label(k, v, origin=origin) for k, v in get_labels(section.body).items())


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
        if key == "bootstrap":
            continue
        if not apptainer.is_valid_header_key(key):
            kline = stage.header_lines.get(key, line)
            raise DefError(f"invalid header keyword found: {key}", file=file, line=kline)
        if not value:
            kline = stage.header_lines.get(key, line)
            raise DefError(f"header key {key} had no val", file=file, line=kline)
        reads = apptainer.agent_reads(agent, key)
        if key == "includecmd" and value.lower() in ("yes", "no", "true", "false"):
            kwargs["include_cmd"] = value.lower() in ("yes", "true")
        elif reads and key in by_key:
            kwargs[by_key[key]] = value
        elif reads and apptainer.is_other_url(key):
            other_urls.append(value)
        else:
            ignored.append((apptainer.HEADER_KEYWORD_SPELLING.get(key, key), value))
    return construct(
        Header,
        bootstrap=agent,
        other_urls=tuple(other_urls),
        ignored=tuple(ignored),
        origin=origin,
        **kwargs,
    )


#: Values are immutable: every stage without an %environment shares this one.
_NO_ENVIRONMENT = Environment()

_SCRIPT_SECTIONS = tuple(
    (name, name in apptainer.BUILD_SECTIONS)
    for name in (*apptainer.BUILD_SECTIONS, *apptainer.SHEBANG_SECTIONS)
)
_APP_SCRIPTS = (
    ("install", "appinstall"),
    ("run", "apprun"),
    ("start", "appstart"),
    ("test", "apptest"),
)


def _stage(raw: RawStage, file: str | None, warnings: list[str]) -> Stage:
    header = _header(raw, file)
    section = raw.section
    sections: dict[str, Any] = {}
    files = []
    for fsec in raw.parts("files"):
        source, from_stage = files_source(fsec.args)
        if source is FilesSource.IGNORED:
            warnings.append(
                f"{file}:{fsec.line}: %files {fsec.args!r}: Apptainer ignores "
                "a %files section with these arguments; dropped"
            )
            continue
        files.append(
            construct(
                Files,
                entries=_files_entries(fsec, file),
                from_stage=from_stage,
                origin=Origin(file, fsec.line),
            )
        )
    sections["files"] = tuple(files)
    present = raw.names()  # most sections are absent: looked up only when present
    for name, build in _SCRIPT_SECTIONS:
        if name in present:
            sections[name] = _script(section(name), file, build)
    sec = section("environment") if "environment" in present else None
    if sec is not None and go_trim(sec.body):
        sections["environment"] = construct(Environment, items=(_script(sec, file, False),))
    else:
        sections["environment"] = _NO_ENVIRONMENT
    sec = section("labels") if "labels" in present else None
    if sec is not None:
        sections["labels"] = _labels(sec, file)
    sec = section("help") if "help" in present else None
    if sec is not None:
        sections["help"] = HelpText(_text(sec, file).body)
    args = section("arguments") if "arguments" in present else None
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
        sections["arguments"] = tuple(declared.values())
    sections["apps"] = tuple([_app(raw, name, file) for name in raw.apps()])
    return construct(Stage, header=header, origin=Origin(file, raw.line), **sections)


def _app(raw: RawStage, name: str, file: str | None) -> App:
    section = raw.section
    present = raw.names(name)
    parts: dict[str, Any] = {}
    for part, kind in _APP_SCRIPTS:
        sec = section(kind, name) if kind in present else None
        if sec is not None and go_trim(sec.body):
            parts[part] = _text(sec, file)
    sec = section("appenv", name) if "appenv" in present else None
    parts["env"] = (
        _NO_ENVIRONMENT if sec is None else construct(Environment, items=(_text(sec, file),))
    )
    sec = section("applabels", name) if "applabels" in present else None
    if sec is not None:
        parts["labels"] = _labels(sec, file)
    sec = section("appfiles", name) if "appfiles" in present else None
    if sec is not None:
        parts["files"] = tuple(
            FileEntry(src, dst or None, origin=Origin(file, sec.line + offset))
            for offset, line in body_entries(sec.body)
            for src, dst in [apptainer.split_appfiles_line(line)]
        )
    sec = section("apphelp", name) if "apphelp" in present else None
    if sec is not None:
        parts["help"] = HelpText(_text(sec, file).body)
    return construct(App, name=name, origin=Origin(file, raw.app_line(name)), **parts)


def parse(text: str, file: str | None = None, warnings: list[str] | None = None) -> Recipe:
    """``.def`` text -> ``Recipe``, following Apptainer's parser; errors name file:line.

    What Apptainer accepts but ignores (a ``%files`` section with odd arguments, a
    bad ``%arguments`` line) is dropped with a message appended to ``warnings``;
    header keywords the agent does not read are kept in ``Header.ignored``.

    >>> r = parse("Bootstrap: docker\\nFrom: ubuntu:24.04\\n%post\\n  apt-get update\\n")
    >>> r.stages[0].post.body, r.stages[0].post.origin.line
    ('  apt-get update', 3)
    """
    with paused_gc():
        stages = split_stages(text, file, strict=False)
        return _parse_stages(text, stages, file, warnings, consume=True)


def parse_stages(
    text: str, stages: list[RawStage], file: str | None = None, warnings: list[str] | None = None
) -> Recipe:
    """``parse`` for a text already read with ``split_stages(text, strict=False)``
    (lint reads each file once for its rules and for this)."""
    return _parse_stages(text, stages, file, warnings, consume=False)


def _parse_stages(
    text: str,
    stages: list[RawStage],
    file: str | None,
    warnings: list[str] | None,
    *,
    consume: bool,
) -> Recipe:
    """``consume``: empty ``stages`` while the model is made, so that a large file's
    raw stages are freed as its stages are built (half the memory at the peak)."""
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
        check_strict(stages, file)
        if consume:
            stages.reverse()
            built = []
            while stages:
                built.append(_stage(stages.pop(), file, sink))
            made = tuple(built)
        else:
            made = tuple([_stage(raw, file, sink) for raw in stages])
        recipe = construct(Recipe, stages=made, origin=Origin(file, 1))
    recipe.validate()
    return recipe


class paused_gc:  # lower case: used like a function, `with paused_gc():`
    """Pause Python's cyclic garbage collector while building many small acyclic
    objects: each collection would walk all of them again, so a large file took
    time growing faster than its size (bench/parse_scaling.py). Reference counting
    still frees everything; the collector runs again afterwards. (A class, not a
    generator: parse enters it for every file.)"""

    __slots__ = ("_enabled",)

    def __enter__(self) -> None:
        self._enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            gc.enable()
