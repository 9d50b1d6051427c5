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


# --- bufio.Scanner with scanDefinitionFile (deffile.go ParseDefinitionFile) ---------------
# A literal port of Go's bufio.Scanner.Scan buffer handling (src/bufio/scan.go:
# startBufSize 4096, doubled up to MaxScanTokenSize 64 KiB, ErrTooLong when a full
# buffer at that size holds no token) reading a bytes.Reader, to tell whether
# Apptainer can read a stage at all. ASCII white space only (the tests use no other).

MAX_SCAN_TOKEN_SIZE = 64 * 1024
START_BUF_SIZE = 4096


def _scan_lines(data: bytes, at_eof: bool) -> tuple[int, bytes | None]:
    if at_eof and not data:
        return 0, None
    i = data.find(b"\n")
    if i >= 0:
        line = data[:i]
        return i + 1, line[:-1] if line.endswith(b"\r") else line
    if at_eof:
        return len(data), data[:-1] if data.endswith(b"\r") else data
    return 0, None


def _scan_definition_file(data: bytes, at_eof: bool) -> tuple[int, bytes | None]:
    in_section, retbuf, advance = False, b"", 0
    while advance < len(data):
        a, line = _scan_lines(data[advance:], at_eof)
        if line is None:
            return 0, None
        if line.lstrip(b" \t\v\f\r").startswith(b"%"):
            if in_section or advance != 0:
                return advance, retbuf
            retbuf += line + b"\n"
            in_section = True
        else:
            retbuf += line + b"\n"
        advance += a
        if a == 0:
            break
    if not at_eof:
        return 0, None
    return advance, retbuf or None  # Go: an unwritten bytes.Buffer's Bytes() is nil


def scanner_too_long(stage: bytes) -> bool:
    """Whether bufio.Scanner stops with ErrTooLong on this stage's bytes."""
    buf = bytearray()
    start = end = pos = 0
    eof = False
    while True:
        while True:  # Scan(): one token
            if end > start or eof:
                advance, token = _scan_definition_file(bytes(buf[start:end]), eof)
                start += advance
                if token is not None:
                    break
            if eof:
                return False  # all read, no error
            if start > 0 and (end == len(buf) or start > len(buf) // 2):
                buf[: end - start] = buf[start:end]
                end -= start
                start = 0
            if end == len(buf):
                if len(buf) >= MAX_SCAN_TOKEN_SIZE:
                    return True  # ErrTooLong
                size = min(len(buf) * 2 or START_BUF_SIZE, MAX_SCAN_TOKEN_SIZE)
                new = bytearray(size)
                new[: end - start] = buf[start:end]
                buf, end, start = new, end - start, 0
            n = min(len(buf) - end, len(stage) - pos)  # bytes.Reader.Read
            if n == 0:
                eof = True
            else:
                buf[end : end + n] = stage[pos : pos + n]
                end, pos = end + n, pos + n
