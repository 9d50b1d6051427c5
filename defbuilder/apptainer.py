"""Apptainer's own rules, each stated once: how it reads a .def and what it runs.

Everything here is a decision Apptainer makes, not one of ours: which sections
exist and what kind each is, which header keywords each bootstrap agent reads,
how a line is split, cut at ``#``, continued or read as a new section or stage,
what ``{{ NAME }}`` placeholders match, and what file or argv the build writes
for a script section. ``model`` (validation), ``parse`` (reading), ``render``
(writing), ``runtime`` (the entry harness), ``lint`` and ``dockerfile`` import
these; none re-derives a rule.

Sources are apptainer/apptainer at tag ``v1.5.3`` (``SOURCE`` below), file and
function named at each rule, and the user documentation at
https://apptainer.org/docs/user/latest/definition_files.html.

This module must stay cheap to import (it is on the CLI's start-up path) and
must not know about the model: it works on plain strings.

>>> section_params("-c /bin/bash -e # comment")
['-c', '/bin/bash', '-e']
>>> is_stage_start("BootStrap: docker"), is_stage_start("  Bootstrap: docker")
(True, False)
"""

from __future__ import annotations

import enum
import functools
import re
import string
from collections.abc import Iterable, Iterator, Mapping
from itertools import pairwise
from sys import intern
from typing import Protocol

__all__ = [
    "AGENTS",
    "ALWAYS_ACCEPTED_KEYS",
    "APP_SECTIONS",
    "BUILD_SECTIONS",
    "GO_SPACE",
    "HEADER_KEYWORD_SPELLING",
    "MAX_TOKEN",
    "PLACEHOLDER",
    "REQUIRED_KEYS",
    "SECTIONS",
    "SHEBANG_SECTIONS",
    "SOURCE",
    "STAGE_START",
    "VALID_HEADER_KEYS",
    "FilesSource",
    "ScriptSection",
    "SectionKind",
    "agent_key",
    "agent_reads",
    "app_name_problem",
    "app_script",
    "body_entries",
    "c_shell",
    "files_contents_source",
    "files_source",
    "get_labels",
    "go_fields",
    "go_trim",
    "handle_shebang",
    "has_placeholder",
    "has_stage_or_section_line",
    "is_other_url",
    "is_script_section",
    "is_section_line",
    "is_stage_start",
    "is_valid_header_key",
    "oversized_pieces",
    "protect_line_ends",
    "read_arguments",
    "read_header",
    "scan_lines",
    "scif_env_name",
    "section_kind",
    "section_name",
    "section_params",
    "section_script_args",
    "shell_sections",
    "split_appfiles_line",
    "split_files_line",
    "stage_and_section_lines",
    "strip_args_comment",
    "too_long_message",
]

#: Where the rules below were read; cite ``SOURCE + "path"`` in messages and docs.
SOURCE = "https://github.com/apptainer/apptainer/blob/v1.5.3/"

# ---------------------------------------------------------------------------
# Go's notion of white space
# ---------------------------------------------------------------------------

#: ``unicode.IsSpace`` (used by ``strings.TrimSpace``, ``strings.Fields`` and
#: ``bufio.ScanWords``): ASCII \t \n \v \f \r and space, U+0085, U+00A0 and the
#: Unicode White_Space characters. Unlike Python's ``str.isspace`` it excludes
#: U+001C-U+001F, so ``str.strip()``/``str.split()`` must not stand in for it.
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_GO_SPACE_RUN = "[" + re.escape(GO_SPACE) + "]+"


def go_trim(text: str) -> str:
    """``strings.TrimSpace``.

    >>> go_trim(" a\\x1f "), " a\\x1f ".strip()
    ('a\\x1f', 'a')
    """
    return text.strip(GO_SPACE)


def go_fields(text: str) -> list[str]:
    """``strings.Fields`` (and the words of ``bufio.ScanWords``)."""
    return [w for w in re.split(_GO_SPACE_RUN, text) if w]


# ---------------------------------------------------------------------------
# Lines, stages and section lines
# ---------------------------------------------------------------------------


def scan_lines(text: str) -> list[str]:
    """Lines as ``bufio.ScanLines`` cuts them: at ``\\n``, dropping one ``\\r`` before it.

    A lone ``\\r`` is not a line break, and ``\\r\\r\\n`` keeps one ``\\r``. Files must
    therefore be read without newline translation (``newline=""``).

    >>> scan_lines("a\\r\\nb\\rc\\r\\r\\n")
    ['a', 'b\\rc\\r']
    """
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


#: deffile.go ``All``: stages are split at ``(?mi)^bootstrap:``. Go's ``(?i)`` uses
#: simple case folding, under which ``s`` also matches the long s (U+017F); no other
#: letter of "bootstrap" has a non-ASCII fold. The class spells that out, so the
#: match does not depend on Python's own case-insensitive tables.
_STAGE_WORD = "[bB][oO][oO][tT][sS\u017f][tT][rR][aA][pP]:"
STAGE_START = re.compile("^" + _STAGE_WORD, re.MULTILINE)


def is_stage_start(line: str) -> bool:
    """Whether this line starts a new stage (deffile.go ``All``)."""
    return STAGE_START.match(line) is not None


def is_section_line(line: str) -> bool:
    """Whether this line opens a section: its first word starts with ``%``.

    deffile.go ``scanDefinitionFile`` takes the first word with ``bufio.ScanWords``,
    so indentation does not stop a line from being a section header.
    """
    return line.lstrip(GO_SPACE).startswith("%")


#: A line that starts a stage (``STAGE_START``) or a section (``is_section_line``):
#: the same rules as patterns, so that a whole file is searched in one pass in C.
#: The search looks for a line break first (a literal prefix is the fast case of
#: Python's regex engine); the file's first line is matched on its own.
_STAGE_OR_SECTION = f"(?:{_STAGE_WORD})|(?:[{re.escape(GO_SPACE.replace(chr(10), ''))}]*%)"
_FIRST_LINE_MARK = re.compile(_STAGE_OR_SECTION)
_NEXT_LINE_MARK = re.compile("\n(?:" + _STAGE_OR_SECTION + ")")


def stage_and_section_lines(text: str) -> list[tuple[int, bool]]:
    """``(offset, is a section line)`` of every line that starts a stage or a
    section, in order.

    >>> stage_and_section_lines("Bootstrap: docker\\n%post\\necho\\n  %runscript\\n")
    [(0, False), (18, True), (29, True)]
    """
    first = _FIRST_LINE_MARK.match(text)
    marks = [(0, first.group()[-1] == "%")] if first else []
    marks += [(m.start() + 1, m.group()[-1] == "%") for m in _NEXT_LINE_MARK.finditer(text)]
    return marks


#: Go's ``bufio.MaxScanTokenSize``. deffile.go ``ParseDefinitionFile`` reads each
#: stage with a ``bufio.Scanner`` (split function ``scanDefinitionFile``) and never
#: enlarges its buffer, so every piece it cuts (the header, each section with its
#: body) must fit in 64 KiB together with the next section line; else the build
#: stops with "bufio.Scanner: token too long".
MAX_TOKEN = 64 * 1024


def oversized_pieces(
    text: str, marks: list[tuple[int, bool]] | None = None
) -> list[tuple[int, int]]:
    """``(offset, bytes)`` of each piece Apptainer's scanner cannot hold: the bytes
    from the piece's start to the end of the line that starts the next piece of the
    stage, or to the stage's end plus one (the buffer needs room to learn that the
    input ended: ``bufio.Scanner.Scan``). ``marks``: ``stage_and_section_lines(text)``.

    >>> oversized_pieces("Bootstrap: docker\\n%post\\n" + "echo\\n" * 20000)
    [(18, 100007)]
    """
    end = len(text)
    if (end + 1) * 4 <= MAX_TOKEN:
        return []  # no piece can be larger: UTF-8 takes at most 4 bytes a character
    if marks is None:
        marks = stage_and_section_lines(text)
    found = []
    starts = [(0, False)] if not marks or marks[0][0] > 0 else []
    bounds = [*starts, *marks, (end, False)]
    for (start, _kind), (following, is_section) in pairwise(bounds):
        if start == following:
            continue  # the empty text before a file's first stage
        if is_section:  # the scanner must see the whole next section line
            eol = text.find("\n", following)
            stop, at_eof = (end, True) if eol < 0 else (eol + 1, False)
        else:
            stop, at_eof = following, True
        size = stop - start + at_eof
        if size * 4 > MAX_TOKEN:
            size = len(text[start:stop].encode("utf-8", "surrogatepass")) + at_eof
            if size > MAX_TOKEN:
                found.append((start, size))
    return found


def too_long_message(what: str, size: int, advice: str) -> str:
    """Why a piece ``oversized_pieces`` found stops the build, and what to do."""
    return (
        f"{what} is {size} bytes up to the next section line; Apptainer reads a "
        f"definition in pieces of at most {MAX_TOKEN} bytes (deffile.go "
        "ParseDefinitionFile, Go's bufio.Scanner) and stops with 'bufio.Scanner: token "
        f"too long'; {advice}"
    )


def is_script_section(name: str) -> bool:
    """Whether a section's body is a script (run at build time or written as one)."""
    return section_kind(name) in _SCRIPT_KINDS


def has_stage_or_section_line(text: str) -> bool:
    """Whether some line of ``text`` would start a stage or a section."""
    return bool(_FIRST_LINE_MARK.match(text) or _NEXT_LINE_MARK.search(text))


def section_name(line: str) -> tuple[str, str]:
    """(lowercased name, args) of a section line, as ``getSectionName`` and
    ``parseTokenSection`` split it: leading ``%`` removed, cut at the first space.

    >>> section_name("%Post -c /bin/bash")
    ('post', '-c /bin/bash')
    """
    name, _, args = line.lstrip("%").partition(" ")
    return intern(name.lower()), args  # interned: a big file repeats a few names


def strip_args_comment(args: str) -> str:
    """Section arguments before the first ``#`` (``strings.Split(args, "#")[0]``).

    Every consumer does this: util.go ``getSectionScriptArgs``, metadata.go
    ``handleShebangScript``, stage.go ``copyFiles``/``copyFilesFrom``.
    """
    return args.split("#", 1)[0]


def section_params(args: str) -> list[str]:
    """Section arguments as the build reads them: cut at ``#``, split into fields."""
    return go_fields(strip_args_comment(args))


class FilesSource(enum.Enum):
    """What a ``%files`` section's arguments make of it (stage.go)."""

    HOST = "host"  # no arguments: copied from the host (copyFiles)
    STAGE = "stage"  # two fields: copied from the stage named second (copyFilesFrom)
    IGNORED = "ignored"  # anything else: neither function copies it


def files_source(args: str) -> tuple[FilesSource, str | None]:
    """Where a ``%files ARGS`` section copies from.

    stage.go ``copyFiles`` takes sections whose args, cut at ``#``, are exactly
    ``""``; ``copyFilesFrom`` those with two fields and uses the second as the
    stage name (the word ``from`` is not checked). Anything else is skipped.

    >>> files_source(""), files_source("from build # x")
    ((<FilesSource.HOST: 'host'>, None), (<FilesSource.STAGE: 'stage'>, 'build'))
    >>> files_source(" ")[0]
    <FilesSource.IGNORED: 'ignored'>
    """
    clean = strip_args_comment(args)
    if clean == "":
        return FilesSource.HOST, None
    fields = go_fields(clean)
    if len(fields) == 2:
        return FilesSource.STAGE, fields[1]
    return FilesSource.IGNORED, None


# ---------------------------------------------------------------------------
# Sections and their kinds
# ---------------------------------------------------------------------------

#: deffile.go ``validSections``.
SECTIONS = frozenset(
    {
        "help",
        "setup",
        "files",
        "labels",
        "environment",
        "pre",
        "post",
        "runscript",
        "test",
        "startscript",
        "arguments",
    }
)
#: deffile.go ``appSections``: the second word of the line is the app name.
APP_SECTIONS = frozenset(
    {"appinstall", "applabels", "appfiles", "appenv", "apptest", "apphelp", "apprun", "appstart"}
)


class SectionKind(enum.Enum):
    """How Apptainer uses a section's body."""

    #: Run at build time as ``/bin/sh -ex [ARGS] SCRIPT``; ``-c`` chooses a shell
    #: (internal/pkg/build/util.go ``getSectionScriptArgs``).
    BUILD_SCRIPT = "build-script"
    #: Written as a file whose first line is ``#!/bin/sh`` unless the body starts
    #: with its own ``#!`` line; ARGS are appended to it
    #: (internal/pkg/build/metadata.go ``handleShebangScript``).
    SHEBANG_SCRIPT = "shebang-script"
    #: Sourced by the action scripts before every run/exec/shell/test/start
    #: (metadata.go ``insertEnvScript``; apps.go for ``%appenv``).
    SOURCED = "sourced"
    #: SCIF app scripts, always written as ``#!/bin/sh`` with no shebang handling
    #: (internal/pkg/build/apps/apps.go); ``%appinstall`` runs at build time.
    APP_SCRIPT = "app-script"
    #: One entry per line (``%files``, ``%labels``, ``%arguments`` and app forms).
    LINES = "lines"
    #: Plain text (``%help``, ``%apphelp``).
    TEXT = "text"


_KINDS: Mapping[str, SectionKind] = {
    "setup": SectionKind.BUILD_SCRIPT,
    "pre": SectionKind.BUILD_SCRIPT,
    "post": SectionKind.BUILD_SCRIPT,
    "runscript": SectionKind.SHEBANG_SCRIPT,
    "startscript": SectionKind.SHEBANG_SCRIPT,
    "test": SectionKind.SHEBANG_SCRIPT,
    "environment": SectionKind.SOURCED,
    "appenv": SectionKind.SOURCED,
    "apprun": SectionKind.APP_SCRIPT,
    "appstart": SectionKind.APP_SCRIPT,
    "apptest": SectionKind.APP_SCRIPT,
    "appinstall": SectionKind.APP_SCRIPT,
    "files": SectionKind.LINES,
    "appfiles": SectionKind.LINES,
    "labels": SectionKind.LINES,
    "applabels": SectionKind.LINES,
    "arguments": SectionKind.LINES,
    "help": SectionKind.TEXT,
    "apphelp": SectionKind.TEXT,
}


_SCRIPT_KINDS = (SectionKind.BUILD_SCRIPT, SectionKind.SHEBANG_SCRIPT, SectionKind.APP_SCRIPT)


def section_kind(name: str) -> SectionKind | None:
    """The kind of a (lowercased) section name; ``None`` for one Apptainer refuses."""
    return _KINDS.get(name)


def shell_sections(kind: SectionKind) -> tuple[str, ...]:
    """Section names of one kind, in a fixed order."""
    return tuple(name for name, k in _KINDS.items() if k is kind)


#: ``%setup``, ``%pre``, ``%post``: run with ``/bin/sh -ex`` at build time.
BUILD_SECTIONS = shell_sections(SectionKind.BUILD_SCRIPT)
#: ``%runscript``, ``%startscript``, ``%test``: the only sections whose ``#!`` counts.
SHEBANG_SECTIONS = shell_sections(SectionKind.SHEBANG_SCRIPT)


# ---------------------------------------------------------------------------
# The header
# ---------------------------------------------------------------------------

#: The keys only ``zypper`` reads, to register a SUSE Linux Enterprise product
#: (internal/pkg/build/sources/conveyorPacker_zypper.go).
_ZYPPER_REGISTRATION = ("product", "user", "regcode", "productpgp", "registerurl", "modules")

#: Every header keyword Apptainer accepts (deffile.go ``validHeaders``); its
#: ``otherurl&n`` entry stands for ``OtherURL`` followed by digits (``is_other_url``).
VALID_HEADER_KEYS = frozenset(
    {
        "bootstrap",
        "from",
        "includecmd",
        "mirrorurl",
        "updateurl",
        "osversion",
        "include",
        "library",
        "registry",
        "namespace",
        "stage",
        *_ZYPPER_REGISTRATION,
        "fingerprints",
        "confurl",
        "setopt",
        "target",
        "frontend",
        "filename",
        "buildargs",
    }
)

#: The documented spelling of each keyword (definition_files.rst), for messages and
#: for rendering: the parser lowercases keys, so any spelling reads the same.
HEADER_KEYWORD_SPELLING: Mapping[str, str] = {
    "bootstrap": "Bootstrap",
    "from": "From",
    "stage": "Stage",
    "registry": "Registry",
    "namespace": "Namespace",
    "includecmd": "IncludeCmd",
    "library": "Library",
    "fingerprints": "Fingerprints",
    "mirrorurl": "MirrorURL",
    "updateurl": "UpdateURL",
    "osversion": "OSVersion",
    "include": "Include",
    "setopt": "Setopt",
    "confurl": "ConfURL",
    "product": "Product",
    "user": "User",
    "regcode": "Regcode",
    "productpgp": "ProductPGP",
    "registerurl": "RegisterURL",
    "modules": "Modules",
    "target": "Target",
    "frontend": "Frontend",
    "filename": "Filename",
    "buildargs": "BuildArgs",
    "otherurl": "OtherURL",
}


def is_other_url(key: str) -> bool:
    """Whether a header key is ``OtherURL<digits>``.

    deffile.go ``doHeader``: an unknown key has ``\\d+$`` (ASCII digits in Go's RE2)
    replaced by ``&n`` and is accepted if that is ``otherurl&n``.

    >>> is_other_url("OtherURL0"), is_other_url("otherurl"), is_other_url("otherurl\u0661")
    (True, False, False)
    """
    low = key.lower()
    digits = low[8:]
    return low.startswith("otherurl") and bool(digits) and digits.isascii() and digits.isdigit()


@functools.lru_cache(maxsize=4096)  # asked for every header keyword of every stage
def is_valid_header_key(key: str) -> bool:
    """Whether ``doHeader`` accepts this (lowercased) key."""
    return key in VALID_HEADER_KEYS or is_other_url(key)


_DOCKERLIKE = frozenset({"from", "registry", "namespace"})
#: Keys each bootstrap agent reads (internal/pkg/build/sources/conveyorPacker_*.go;
#: https://apptainer.org/docs/user/latest/appendix.html). ``stage`` and
#: ``includecmd`` (``ALWAYS_ACCEPTED_KEYS``) are accepted for every agent.
AGENTS: Mapping[str, frozenset[str]] = {
    "docker": _DOCKERLIKE,
    "docker-archive": _DOCKERLIKE,
    "docker-daemon": _DOCKERLIKE,
    "oci": _DOCKERLIKE,
    "oci-archive": _DOCKERLIKE,
    "library": frozenset({"from", "library", "fingerprints"}),
    "oras": frozenset({"from", "fingerprints"}),
    "shub": frozenset({"from"}),
    "localimage": frozenset({"from", "fingerprints"}),
    "yum": frozenset({"mirrorurl", "updateurl", "osversion", "include", "setopt"}),
    "dnf": frozenset({"mirrorurl", "updateurl", "osversion", "include", "setopt"}),
    "debootstrap": frozenset({"mirrorurl", "osversion", "include"}),
    "zypper": frozenset(
        {
            "include",
            "osversion",
            "mirrorurl",
            "updateurl",
            *_ZYPPER_REGISTRATION,
            "otherurl",
        }
    ),
    "arch": frozenset({"confurl", "include"}),
    "busybox": frozenset({"mirrorurl"}),
    "buildkit": frozenset({"from", "target", "frontend", "filename", "buildargs"}),
    "dockerfile": frozenset({"from", "target", "frontend", "filename", "buildargs"}),
    "scratch": frozenset(),
}
#: ``Stage:`` (the build's stage names) and ``IncludeCmd:`` (read by no agent) are
#: accepted whatever the agent.
ALWAYS_ACCEPTED_KEYS = frozenset({"stage", "includecmd"})

#: Keys an agent refuses to build without. ``From:`` is mandatory for image sources
#: (appendix.rst); the others are the agents' own errors, e.g. "invalid debootstrap
#: header, no mirrorurl specified" (conveyorPacker_debootstrap.go).
REQUIRED_KEYS: Mapping[str, tuple[str, ...]] = {
    **{
        a: ("from",)
        for a in (
            "docker",
            "docker-archive",
            "docker-daemon",
            "oci",
            "oci-archive",
            "library",
            "oras",
            "shub",
            "localimage",
        )
    },
    "yum": ("mirrorurl",),
    "dnf": ("mirrorurl",),
    "debootstrap": ("mirrorurl", "osversion"),
    "busybox": ("mirrorurl",),
}


def agent_key(key: str) -> str:
    """The key as the agent tables name it (``otherurl3`` -> ``otherurl``)."""
    low = key.lower()
    return "otherurl" if is_other_url(low) else low


@functools.lru_cache(maxsize=4096)  # asked once per header keyword of every stage
def agent_reads(agent: str, key: str) -> bool:
    """Whether Bootstrap ``agent`` reads header ``key`` (any case, ``OtherURLn`` too)."""
    return agent_key(key) in _READS.get(agent, ALWAYS_ACCEPTED_KEYS)


_READS = {agent: keys | ALWAYS_ACCEPTED_KEYS for agent, keys in AGENTS.items()}


def read_header(lines: Iterable[tuple[int, str]]) -> list[tuple[str | None, str, int]]:
    """Header ``(key, value, line)`` triples as deffile.go ``doHeader`` reads them.

    ``lines`` are ``(line number, text)`` pairs. Blank and ``#`` lines are skipped;
    the rest of a line is cut at ``#``; ``key: value`` is split at the first ``:``,
    the key lowercased, both trimmed; a value ending in ``\\`` continues on the next
    line (a trailing literal ``\\n`` becomes a newline). A value still continued at
    the end of the header is dropped, as in Go. Keys are not validated here
    (``is_valid_header_key``).

    What Apptainer refuses is given as ``(None, message, line)`` and reading goes
    on: a line without ``:`` ("header key ... had no val"), and a continued value
    followed by a blank or comment line, which doHeader stores into the
    definition's still-nil header map, so Apptainer panics.
    """
    out: list[tuple[str | None, str, int]] = []
    add = out.append
    key_cont: str | None = None
    val_cont = ""
    start = 0
    ws = GO_SPACE  # go_trim, inlined: this runs for every header line of every stage
    for n, raw in lines:
        line = raw.strip(ws)
        if not line or line[0] == "#":
            if key_cont is not None:
                add(
                    (
                        None,
                        (
                            f"header {key_cont}: a value ending in '\\' is followed by a blank "
                            "or comment line, which makes Apptainer crash (deffile.go doHeader "
                            "assigns to a nil map); end the value or continue it on the next "
                            "line"
                        ),
                        start,
                    )
                )
                key_cont, val_cont = None, ""
            continue
        trim = line.split("#", 1)[0]
        if key_cont is None:
            key, sep, val = trim.partition(":")
            if not sep:
                add((None, f"header key {key} had no val", n))
                continue
            # interned: the same few keywords in every stage of a big file
            key, val, start = intern(key.strip(ws).lower()), val.strip(ws), n
        else:
            key, val = key_cont, val_cont + trim.strip(ws)
            key_cont, val_cont = None, ""
        if val.endswith("\\"):
            key_cont, val_cont = key, val[:-1]
            if val_cont.endswith("\\n"):
                val_cont = val_cont[:-2] + "\n"
            continue
        add((key, val, start))
    return out


# ---------------------------------------------------------------------------
# Build-argument placeholders
# ---------------------------------------------------------------------------

#: internal/pkg/build/args/reader.go: ``{{\\s*(\\w+)\\s*}}`` is replaced as text
#: before the file is parsed. In Go's RE2 ``\\w`` is ``[0-9A-Za-z_]`` and ``\\s`` is
#: ``[\\t\\n\\f\\r ]`` (no ``\\v``, unlike Python's ``\\s``), spelled out here.
_GO_S = r"[\t\n\f\r ]"
PLACEHOLDER = re.compile(r"{{" + _GO_S + r"*([0-9A-Za-z_]+)" + _GO_S + r"*}}")


def has_placeholder(text: str) -> bool:
    """Whether Apptainer would substitute a ``{{ NAME }}`` in ``text``."""
    return "{{" in text and PLACEHOLDER.search(text) is not None


# ---------------------------------------------------------------------------
# Line-oriented sections
# ---------------------------------------------------------------------------

#: deffile.go ``fileSplitter``: whitespace splits, except inside "..." and {{ var }}:
#: ``([^\\s"']*{{\\s*\\w+\\s*}}*[^\\s{}"']*)+|([^\\s"']+|"([^"]*)"|'([^']*))``, with
#: ``\\s``/``\\w`` spelled out in Go's RE2 meaning (as for ``PLACEHOLDER``).
_NOT_S = r"\t\n\f\r "
_FILE_SPLITTER = re.compile(
    rf"""([^{_NOT_S}"']*{{{{{_GO_S}*[0-9A-Za-z_]+{_GO_S}*}}}}*[^{_NOT_S}{{}}"']*)+"""
    rf"""|([^{_NOT_S}"']+|"([^"]*)"|'([^']*))"""
)


def split_files_line(line: str) -> tuple[str, str]:
    """One ``%files`` line -> (src, dst) as deffile.go reads it ("" dst = same path)."""
    words = [m.group(0) for m in _FILE_SPLITTER.finditer(go_trim(line))]
    src = go_trim(words[0]).strip('"') if words else ""
    dst = go_trim(words[1]).strip('"') if len(words) > 1 else ""
    return src, dst


def body_entries(body: str) -> Iterator[tuple[int, str]]:
    """(offset, trimmed line) of the entries of a ``%files``/``%labels`` body.

    deffile.go trims the body and each line and skips blank lines and lines that
    start with ``#``. ``offset`` is 1 for the body's first line.
    """
    for offset, raw in enumerate(body.split("\n"), start=1):
        line = go_trim(raw)
        if line and not line.startswith("#"):
            yield offset, line


def get_labels(body: str) -> dict[str, str]:
    """``%labels`` body -> mapping, as deffile.go ``GetLabels`` reads it (split at the
    first space; a later key replaces an earlier one)."""
    labels: dict[str, str] = {}
    for _offset, line in body_entries(body):
        key, _, value = line.partition(" ")
        labels[go_trim(key)] = go_trim(value)
    return labels


# ---------------------------------------------------------------------------
# What the build writes and runs for script sections
# ---------------------------------------------------------------------------


class ScriptSection(Protocol):
    """A section as read: its name, raw arguments, body and first line."""

    @property
    def name(self) -> str: ...
    @property
    def args(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def line(self) -> int: ...


def handle_shebang(section: ScriptSection) -> str:
    """The file Apptainer writes for %runscript/%startscript/%test.

    internal/pkg/build/metadata.go ``handleShebangScript``: ``#!/bin/sh`` unless the
    trimmed body starts with ``#!``, in which case the first raw line is the
    shebang (and is removed from the body); section args (cut at ``#``) are
    appended to the shebang; the file is ``shebang + "\\n\\n" + script + "\\n"``.
    """
    script = section.body
    shebang = "#!/bin/sh"
    if go_trim(script).startswith("#!"):
        # SplitN(s.Script, "\n", 2): the first *raw* line, so a blank line above the
        # #! leaves an empty shebang (the script then has none).
        first, _, rest = script.partition("\n")
        shebang, script = go_trim(first), rest
    if section.args:
        shebang += " " + strip_args_comment(section.args)
    return shebang + "\n\n" + script + "\n"


def scif_env_name(app: str) -> str:
    """An app name as it appears in ``SCIF_APP*_<name>`` variables.

    internal/pkg/build/apps/apps.go ``globalAppEnv``: ``[^a-zA-Z0-9_]`` -> ``_``
    (ASCII classes in Go's RE2).

    >>> scif_env_name("my-app.v2")
    'my_app_v2'
    """
    return "".join(c if (c.isascii() and c.isalnum()) or c == "_" else "_" for c in app)


def app_script(body: str) -> str:
    """A SCIF app's run/start/test file (apps.go: ``#!/bin/sh`` and the body)."""
    return "#!/bin/sh\n\n" + body + "\n"


def section_script_args(section: ScriptSection, script_path: str) -> list[str]:
    """The argv Apptainer runs a %setup/%pre/%post script with.

    internal/pkg/build/util.go ``getSectionScriptArgs``: ``/bin/sh -ex`` plus the
    section args (cut at ``#``); after ``-c`` the rest is joined with the script
    path into one argument, so ``%post -c /bin/bash`` runs
    ``/bin/sh -ex -c "/bin/bash /.post.script"``.
    """
    from .errors import DefError

    args = ["/bin/sh", "-ex"]
    params = section_params(section.args)
    for i, param in enumerate(params):
        if param == "-c":
            if i + 1 >= len(params):
                raise DefError(
                    f"bad {section.name} section '-c' parameter: missing arguments",
                    line=section.line,
                )
            return [*args, *params[: i + 1], " ".join(params[i + 1 :]) + " " + script_path]
    return [*args, *params, script_path]


def c_shell(args: str) -> list[str] | None:
    """The words after ``-c`` in build-section args (the inner shell command), if any."""
    params = section_params(args)
    if "-c" in params:
        return params[params.index("-c") + 1 :]
    return None


# ---------------------------------------------------------------------------
# Names and %arguments
# ---------------------------------------------------------------------------


_APP_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_.+-")


def app_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a SCIF app name, or ``None`` when it can.

    The build places each app at ``filepath.Join(rootfs, "/scif/apps/", name)``
    (internal/pkg/build/apps/apps.go), without checking the name, so ``..`` or a
    ``/`` would put files outside ``/scif/apps``. The name is the second word of the
    section line (deffile.go ``parseTokenSection``), so it never holds a space.
    defbuilder accepts what SCIF names are meant to be (``[A-Za-z0-9_.+-]+``, the
    characters ``globalAppEnv`` does not have to rewrite, plus ``.+-``), never a
    path: not ``.`` or ``..``.

    >>> app_name_problem("train"), app_name_problem("..")
    (None, "app name '..' is a path component, not a name")
    """
    if not name:
        return "an app needs a name"
    if name in (".", ".."):
        return f"app name {name!r} is a path component, not a name"
    if not _APP_NAME_CHARS.issuperset(name):
        return (
            f"invalid app name {name!r}: use letters, digits and _ . + - "
            "(Apptainer joins the name into a path under /scif/apps)"
        )
    return None


def read_arguments(body: str) -> Iterator[tuple[int, str | None, str]]:
    """``%arguments`` entries as internal/pkg/build/args/args.go ``ReadDefaults`` reads
    them: ``(offset, key, value)``; a line that is not ``KEY=value`` yields
    ``(offset, None, message)`` (Apptainer warns and skips it). Lines are trimmed,
    blank and ``#`` lines skipped, split at the first ``=``; a later key replaces an
    earlier one (the defaults are a map).
    """
    for offset, raw in enumerate(scan_lines(body), start=1):
        text = go_trim(raw)
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.partition("=")
        if not sep:
            yield offset, None, f"{text!r} is not a key=value pair"
        elif not go_trim(key):
            yield offset, None, f"missing key portion in {text!r}"
        else:
            yield offset, go_trim(key), go_trim(value)


def protect_line_ends(text: str) -> str:
    """Text to write so that Apptainer reads ``text`` back line for line.

    ``bufio.ScanLines`` drops one ``\\r`` before each ``\\n``, so a line that really
    ends in ``\\r`` is written with one more.

    >>> protect_line_ends("a\\r\\nb\\r")
    'a\\r\\r\\nb\\r\\r'
    """
    text = text.replace("\r\n", "\r\r\n")
    return text + "\r" if text.endswith("\r") else text


def split_appfiles_line(line: str) -> tuple[str, str]:
    """One ``%appfiles`` line -> (src, dst), as apps.go ``copyFiles`` reads it.

    Unlike ``%files`` (``split_files_line``), there is no quoting: the trimmed line
    is cut at ``#`` and split at the first space; ``dst`` is the rest of the line as
    written ("" = the same name as ``src``, inside the app's directory).

    >>> split_appfiles_line("  data.csv   in/data.csv # c")
    ('data.csv', '  in/data.csv')
    """
    text = go_trim(go_trim(line).split("#", 1)[0])
    src, _, dst = text.partition(" ")
    return src, dst


#: reader.go ``commentLineRegexp`` (``\s*[#][^!]\s*.*``), unanchored as ``Match`` uses it:
#: it matches wherever a ``#`` is followed by any character but ``!``.
_ARG_COMMENT = re.compile(r"#[^!]", re.DOTALL)


def build_arg_uses(text: str) -> Iterator[re.Match[str]]:
    """The ``{{ NAME }}`` placeholders Apptainer substitutes in one stage's text.

    internal/pkg/build/args/reader.go ``NewReader`` (run on each stage's raw text by
    internal/pkg/build/build.go): every ``PLACEHOLDER`` match is replaced unless the
    text before it, from the last newline after the end of the previous replaced
    placeholder (or from that end), holds a ``#`` followed by a character other than
    ``!``; such a placeholder stays as written. Go rescans that text for every
    placeholder; this reads it once, so the cost is linear.

    >>> [m.group(1) for m in build_arg_uses("A={{ A }}\\n# {{ B }}\\necho '#x' {{ C }}\\n")]
    ['A']
    """
    done = 0  # end of the last replaced placeholder (Go's i)
    last_nl = -1  # the last newline before the current match
    seen = 0  # text up to here has been searched for newlines
    region = -1  # start of the text judged so far, and how far
    judged = 0
    commented = False
    for m in PLACEHOLDER.finditer(text):
        nl = text.rfind("\n", seen, m.start())
        if nl >= 0:
            last_nl = nl
        seen = m.start()
        start = last_nl if last_nl >= done else done
        if start != region:
            region, judged, commented = start, start, False
        if not commented:
            commented = _ARG_COMMENT.search(text[max(judged - 1, start) : m.start()]) is not None
            judged = m.start()
        if not commented:
            yield m
            done = m.end()


def files_contents_source(src: str) -> str:
    """The host ``%files`` source that copies what is *in* the directory ``src``.

    internal/pkg/build/files/copy.go ``CopyFromHost`` runs ``cp -fLr SRC DST``, which
    puts a directory *inside* ``DST`` when ``DST`` is a directory (one ending in ``/``
    is created first, ``makeParentDir``); ``SRC/.`` copies its contents instead.

    >>> files_contents_source("src/"), files_contents_source("./")
    ('src/.', './.')
    """
    return src.rstrip("/") + "/."
