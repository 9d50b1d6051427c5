"""A test oracle: a small, literal Python port of how Apptainer reads a .def file.

Ported line by line from apptainer/apptainer ``pkg/build/types/parser/deffile.go``
(functions named below) so tests can check rendered text against Apptainer's own
reading, independently of defbuilder's code. It is deliberately not
defbuilder.parse: an oracle must not share code with what it checks.
"""

from __future__ import annotations

import re

# deffile.go: fileSplitter
FILE_SPLITTER = re.compile(
    r"""([^\s"']*{{\s*\w+\s*}}*[^\s{}"']*)+|([^\s"']+|"([^"]*)"|'([^']*))""", re.ASCII
)
VALID_SECTIONS = {
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
APP_SECTIONS = {
    "appinstall",
    "applabels",
    "appfiles",
    "appenv",
    "apptest",
    "apphelp",
    "apprun",
    "appstart",
}


def scan_lines(text: str) -> list[str]:
    """bufio.ScanLines: split on \\n, drop one trailing \\r per line."""
    if not text:
        return []
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [p[:-1] if p.endswith("\r") else p for p in parts]


def split_stages(text: str) -> list[str]:
    """All(): split on (?mi)^bootstrap: ."""
    idx = [m.start() for m in re.finditer(r"(?mi)^bootstrap:", text)]
    chunks = []
    prev = 0
    for i in idx:
        chunks.append(text[prev:i])
        prev = i
    chunks.append(text[prev:])
    return [c for c in chunks if c]


def tokens(stage_text: str) -> tuple[str, list[str]]:
    """scanDefinitionFile: (header, [section tokens]); a section starts at a line
    whose first word begins with %."""
    header: list[str] = []
    sections: list[list[str]] = []
    for line in scan_lines(stage_text):
        words = line.split()
        if words and words[0].startswith("%"):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            header.append(line)
    return "\n".join(header) + ("\n" if header else ""), ["\n".join(s) + "\n" for s in sections]


def section_name(line: str) -> str:
    """getSectionName."""
    return line.lstrip("%").lower().split(" ", 1)[0]


def parse_stage(stage_text: str) -> dict[str, object]:
    """A stage as {'header': {...}, 'sections': {key: (args, script)}, 'files': [...]}."""
    head, toks = tokens(stage_text)
    header: dict[str, str] = {}
    for raw in head.strip().split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        trim = line.split("#")[0]
        key, _, val = trim.partition(":")
        header[key.strip().lower()] = val.strip()
    sections: dict[str, list[str]] = {}
    files: list[tuple[str, list[tuple[str, str]]]] = []
    for tok in toks:
        first, _, body = tok.partition("\n")
        key = section_name(first)
        split = first.lstrip("%").split(" ", 1)
        args = split[1] if len(split) == 2 else ""
        if key == "files":
            entries = []
            for fl in body.strip().split("\n"):
                fl = fl.strip()
                if not fl or fl.startswith("#"):
                    continue
                subs = [m.group(0) for m in FILE_SPLITTER.finditer(fl)]
                src = subs[0].strip().strip('"')
                dst = subs[1].strip().strip('"') if len(subs) > 1 else ""
                entries.append((src, dst))
            files.append((args, entries))
            continue
        if key in APP_SECTIONS:
            split3 = first.lstrip("%").split(" ", 2)
            key = " ".join(split3[:2])
        sec = sections.setdefault(key, ["", ""])
        if len(split) == 2 and key.split(" ")[0] not in APP_SECTIONS:  # even empty args
            sec[0] = args
        sec[1] += body
    return {"header": header, "sections": sections, "files": files}


def get_labels(content: str) -> dict[str, str]:
    """GetLabels."""
    labels: dict[str, str] = {}
    for raw in content.strip().split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(" ", 1)
        labels[parts[0].strip()] = parts[1].strip() if len(parts) == 2 else ""
    return labels


def env_script(script: str) -> str:
    """insertEnvScript (internal/pkg/build/metadata.go) on a fresh image."""
    return "#!/bin/sh\n\n" + script + "\n"


def placeholders(text: str) -> list[str]:
    """Build-arg names Apptainer would substitute (args/reader.go), skipping the
    lines where a '#' not followed by '!' precedes the placeholder."""
    found = []
    for line in text.split("\n"):
        for m in re.finditer(r"{{\s*(\w+)\s*}}", line):
            before = line[: m.start()]
            if re.match(r"\s*[#][^!]\s*.*", before):
                continue
            found.append(m.group(1))
    return found
