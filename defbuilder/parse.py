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

import re
from collections.abc import Iterator
from itertools import pairwise

import attrs

from .errors import DefError

__all__ = [
    "APP_SECTIONS",
    "SECTIONS",
    "RawSection",
    "RawStage",
    "get_labels",
    "handle_shebang",
    "section_script_args",
    "split_stages",
]

#: deffile.go ``validSections``.
SECTIONS = frozenset(
    {"help", "setup", "files", "labels", "environment", "pre", "post", "runscript",
     "test", "startscript", "arguments"}
)
#: deffile.go ``appSections``.
APP_SECTIONS = frozenset(
    {"appinstall", "applabels", "appfiles", "appenv", "apptest", "apphelp", "apprun",
     "appstart"}
)
_STAGE_SPLIT = re.compile(r"(?mi)^bootstrap:")


@attrs.frozen
class RawSection:
    """One section as Apptainer tokenizes it: name, args, body, and where it starts."""

    name: str
    args: str
    body: str
    line: int
    app: str | None = None


@attrs.frozen
class RawStage:
    """One stage: header keys (lowercased) and sections, in file order."""

    header: dict[str, str]
    header_lines: dict[str, int]
    sections: tuple[RawSection, ...]
    line: int

    def section(self, name: str, app: str | None = None) -> RawSection | None:
        """All sections with this name merged as Apptainer does (bodies appended)."""
        found = [s for s in self.sections if s.name == name and s.app == app]
        if not found:
            return None
        args = ""
        for s in found:
            if s.args:
                args = s.args  # a later section with args overrides (parseTokenSection)
        return RawSection(name, args, "".join(s.body for s in found), found[0].line, app)

    def apps(self) -> list[str]:
        """App names in first-seen order (deffile.go ``appOrder``)."""
        order: list[str] = []
        for s in self.sections:
            if s.app is not None and s.app not in order:
                order.append(s.app)
        return order


def _scan_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _chunks(text: str) -> Iterator[tuple[str, int]]:
    starts = [m.start() for m in _STAGE_SPLIT.finditer(text)]
    for a, b in pairwise([0, *starts, len(text)]):
        if b > a:
            yield text[a:b], text.count("\n", 0, a) + 1


def _parse_header(lines: list[tuple[int, str]], file: str | None) -> tuple[dict[str, str],
                                                                           dict[str, int]]:
    header: dict[str, str] = {}
    where: dict[str, int] = {}
    key_cont, val_cont = "", ""
    for n, raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            if key_cont:
                header[key_cont] = val_cont
                key_cont, val_cont = "", ""
            continue
        trim = line.split("#")[0]
        if not val_cont:
            key, sep, val = trim.partition(":")
            if not sep:
                raise DefError(f"header key {key} had no val", file=file, line=n)
            key, val = key.strip().lower(), val.strip()
        else:
            key, val = key_cont, val_cont + trim.strip()
            key_cont, val_cont = "", ""
        if val.endswith("\\"):
            key_cont, val_cont = key, val[:-1]
            continue
        header[key] = val
        where[key] = n
    return header, where


def split_stages(text: str, file: str | None = None) -> list[RawStage]:
    """Split a .def into stages and sections with Apptainer's rules (see module doc)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    stages: list[RawStage] = []
    for chunk, first_line in _chunks(text):
        head: list[tuple[int, str]] = []
        # (name, args, line, app, body lines) per section, in file order
        opened: list[tuple[str, str, int, str | None, list[str]]] = []
        for offset, line in enumerate(_scan_lines(chunk)):
            n = first_line + offset
            words = line.split()
            if not (words and words[0].startswith("%")):
                if opened:
                    opened[-1][4].append(line)
                else:
                    head.append((n, line))
                continue
            # Only the stage's first token is TrimSpace'd (deffile.go doSections); an
            # indented section line after anything else keeps its leading space, so
            # getSectionName gives "" and Apptainer rejects it.
            stripped = line if (opened or head) else line.strip()
            split = stripped.lstrip("%").split(" ", 1)
            name = split[0].lower()
            args = split[1] if len(split) == 2 else ""
            app = None
            if name in APP_SECTIONS:
                parts = stripped.lstrip("%").split(" ", 2)
                if len(parts) < 2 or not parts[1]:
                    raise DefError(f"app section %{name} has no app name", file=file, line=n)
                app, args = parts[1], ""
            elif name not in SECTIONS:
                raise DefError(f"invalid section(s) specified: {name!r} (Apptainer refuses it)",
                               file=file, line=n)
            opened.append((name, args, n, app, []))
        sections = [RawSection(name, args, "".join(b + "\n" for b in body), line, app)
                    for name, args, line, app, body in opened]
        header, where = _parse_header(head, file)
        if not header and not sections:
            continue  # comments only (deffile.go: errEmptyDefinition is skipped)
        stages.append(RawStage(header, where, tuple(sections), first_line))
    if not stages:
        raise DefError("no stages found in definition file", file=file, line=1)
    return stages


def get_labels(body: str) -> dict[str, str]:
    """``%labels`` body -> mapping, as deffile.go ``GetLabels`` reads it."""
    labels: dict[str, str] = {}
    for raw in body.strip().split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        labels[key.strip()] = value.strip()
    return labels


def handle_shebang(section: RawSection) -> str:
    """The file Apptainer writes for %runscript/%startscript/%test.

    internal/pkg/build/metadata.go ``handleShebangScript``: ``#!/bin/sh`` unless the
    trimmed body starts with ``#!``, in which case the first line is the shebang
    (and is removed from the body); section args (cut at ``#``) are appended to the
    shebang; the file is ``shebang + "\\n\\n" + script + "\\n"``.
    """
    script = section.body
    shebang = "#!/bin/sh"
    if script.strip().startswith("#!"):
        # SplitN(s.Script, "\n", 2): the first *raw* line, so a blank line above the
        # #! leaves an empty shebang (the script then has none).
        first, _, rest = script.partition("\n")
        shebang, script = first.strip(), rest
    if section.args:
        shebang += " " + section.args.split("#")[0]
    return shebang + "\n\n" + script + "\n"


def section_script_args(section: RawSection, script_path: str) -> list[str]:
    """The argv Apptainer runs a %setup/%pre/%post script with.

    internal/pkg/build/stage.go ``getSectionScriptArgs``: ``/bin/sh -ex`` plus the
    section args (cut at ``#``); after ``-c`` the rest is joined with the script
    path into one argument, so ``%post -c /bin/bash`` runs
    ``/bin/sh -ex -c "/bin/bash /.post.script"``.
    """
    args = ["/bin/sh", "-ex"]
    params = section.args.split("#")[0].split()
    for i, param in enumerate(params):
        if param == "-c":
            if i + 1 >= len(params):
                raise DefError(f"bad {section.name} section '-c' parameter: missing arguments",
                               line=section.line)
            return [*args, *params[: i + 1], " ".join(params[i + 1:]) + " " + script_path]
    return [*args, *params, script_path]
