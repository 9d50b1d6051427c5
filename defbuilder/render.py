"""Model -> .def text. The one place that decides formatting and quoting.

``render`` is a pure function: the same model gives the same bytes on every call,
machine and ``PYTHONHASHSEED`` (nothing here iterates over a set or a hash order).
It imports nothing heavy (no jinja2, no torch): it is on the CLI's hot path.

Layout: header lines ``Key: value``; then sections in a canonical order, each
``%name [args]`` followed by its body and one blank line. Script bodies are written
verbatim (indenting them would change heredocs); line-oriented sections
(``%files``, ``%labels``, ``%arguments``) are indented by four spaces, which
Apptainer trims (deffile.go: ``strings.TrimSpace(line)`` for files and labels).

>>> from defbuilder.model import Header, Stage
>>> print(render(Stage(Header.docker("ubuntu:24.04"), post="apt-get update")), end="")
Bootstrap: docker
From: ubuntu:24.04
<BLANKLINE>
%post
apt-get update
"""

from __future__ import annotations

from .apptainer import (
    BUILD_SECTIONS,
    is_script_section,
    oversized_pieces,
    protect_line_ends,
    too_long_message,
)
from .errors import DefError, Origin
from .model import (
    App,
    BuildArg,
    Environment,
    Export,
    FileEntry,
    Files,
    Label,
    Recipe,
    Script,
    Stage,
    Value,
)

__all__ = ["export_line", "files_token", "render", "render_stage", "sh_quote"]

_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@+=:,./-")
_FILES_BARE_FORBIDDEN = frozenset("\"' \t\n\r\f\v")
INDENT = "    "


def sh_quote(value: str) -> str:
    """Quote ``value`` as one POSIX-sh word that dash and bash read back unchanged.

    Single quotes keep everything literal (``$``, backslashes, unicode). Two extra
    rules make the text safe inside a .def file:

    * ``{{`` is written ``{''{`` so Apptainer's build-argument substitution
      (``{{\\s*\\w+\\s*}}``, internal/pkg/build/args/reader.go) cannot match it;
    * a newline inside the value ends the line with the quote still open, and the
      next line starts with ``''`` (close, reopen), so no line of the .def can start
      with ``%`` or ``Bootstrap:`` and be read as a section or stage.

    >>> sh_quote("plain-word")
    'plain-word'
    >>> sh_quote("it's $HOME")
    "'it'\\\\''s $HOME'"
    >>> sh_quote("")
    "''"
    """
    if value and set(value) <= _SAFE_CHARS:
        return value
    inner = value.replace("'", "'\\''").replace("{{", "{''{")
    inner = inner.replace("\r", "'\"$(printf '\\r')\"'") if "\r" in inner else inner
    return "'" + inner.replace("\n", "\n''") + "'"


def _quote_value(value: Value) -> str:
    if isinstance(value, BuildArg):
        # Substituted as text before the build parses the file; single quotes keep
        # spaces and $ literal (a value holding ' must be avoided by the user).
        return "'" + value.placeholder + "'"
    return sh_quote(value)


def export_line(export: Export) -> str:
    """``export NAME='value'``.

    >>> export_line(Export("A", "x y"))
    "export A='x y'"
    """
    return f"export {export.name}={_quote_value(export.value)}"


def files_token(path: str) -> str:
    """A ``%files`` path as Apptainer's ``fileSplitter`` reads it back.

    Whitespace or a single quote need double quotes (deffile.go: the splitter
    honours ``"..."`` but mishandles ``'``); a double quote cannot be written at
    all, which the model rejects.

    >>> files_token("src/app.py"), files_token("my file")
    ('src/app.py', '"my file"')
    """
    # A line whose first word starts with % would start a new section (deffile.go).
    if (
        not path.startswith("%")
        and _FILES_BARE_FORBIDDEN.isdisjoint(path)
        and (not path or path.split() == [path])  # no white space (str.isspace)
    ):
        return path
    return '"' + path + '"'


def _script_section(name: str, script: Script, *, args: str = "") -> list[str]:
    if not script:
        return []
    head = "%" + name + (" " + args if args else "")
    if script.args:
        head += " " + script.args
    body = script.body
    if script.shell is not None:
        if name in BUILD_SECTIONS:
            head += f" -c {script.shell}" + (" -e" if script.errexit else "")
        else:
            body = f"#!{script.shell}\n{body}"
    return [head, protect_line_ends(body)]


def _environment(env: Environment, head: str) -> list[str]:
    if not env:
        return []
    lines = []
    for item in env.items:
        lines.append(export_line(item) if isinstance(item, Export) else item.body)
    return [head, "\n".join(lines)]


def _labels(labels: tuple[Label, ...], head: str) -> list[str]:
    if not labels:
        return []
    body = []
    for label in labels:
        value = str(label.value)
        body.append(f"{INDENT}{label.key} {value}" if value else f"{INDENT}{label.key}")
    return [head, "\n".join(body)]


def _file_lines(entries: tuple[FileEntry, ...]) -> str:
    lines = []
    for e in entries:
        line = INDENT + files_token(e.src)
        if e.dst is not None:
            line += " " + files_token(e.dst)
        lines.append(line)
    return "\n".join(lines)


def _appfile_lines(entries: tuple[FileEntry, ...]) -> str:
    """``%appfiles`` lines: apps.go splits at the first space, with no quoting (the
    model refuses paths that cannot be written so)."""
    return "\n".join(INDENT + e.src + ("" if e.dst is None else " " + e.dst) for e in entries)


def _files(files: Files) -> list[str]:
    head = "%files" + (f" from {files.from_stage}" if files.from_stage else "")
    return [head, _file_lines(files.entries)]


def _app(app: App) -> list[list[str]]:
    n = app.name
    parts = [
        [f"%apphelp {n}", protect_line_ends(app.help)] if app.help else [],
        [f"%appfiles {n}", _appfile_lines(app.files)] if app.files else [],
        _script_section("appinstall", app.install, args=n),
        _environment(app.env, f"%appenv {n}"),
        _labels(app.labels, f"%applabels {n}"),
        _script_section("apprun", app.run, args=n),
        _script_section("appstart", app.start, args=n),
        _script_section("apptest", app.test, args=n),
    ]
    if not any(parts):
        # An app with no content still exists (apps.go creates /scif/apps/NAME):
        # keep it with an empty %appinstall.
        parts[2] = [f"%appinstall {n}", ""]
    return parts


def render_stage(stage: Stage) -> str:
    """One stage's text (header and sections), ending with a newline."""
    header = [f"Bootstrap: {stage.header.bootstrap}"]
    header += [f"{key}: {value}" for key, value in stage.header.items()]
    blocks: list[list[str]] = [header]
    args = [a for a in stage.declared_build_args() if a.default is not None]
    if args:
        blocks.append(["%arguments", "\n".join(f"{INDENT}{a.name}={a.default}" for a in args)])
    blocks.append(_script_section("pre", stage.pre))
    blocks.append(_script_section("setup", stage.setup))
    blocks += [_files(f) for f in stage.files]
    blocks.append(_environment(stage.environment, "%environment"))
    blocks.append(_script_section("post", stage.post))
    blocks.append(_script_section("runscript", stage.runscript))
    blocks.append(_script_section("startscript", stage.startscript))
    blocks.append(_script_section("test", stage.test))
    blocks.append(_labels(stage.labels, "%labels"))
    if stage.help:
        blocks.append(["%help", protect_line_ends(stage.help)])
    for app in stage.apps:
        blocks += _app(app)
    return "\n\n".join("\n".join(b) for b in blocks if b) + "\n"


def render(what: Recipe | Stage) -> str:
    """The .def text of a recipe (all its stages), validated as a whole, or of one stage.

    A single stage is rendered as a fragment: its ``%files from`` are not checked.
    Either way, a piece too large for Apptainer's reader is refused
    (``apptainer.oversized_pieces``).
    """
    stages = [what] if isinstance(what, Stage) else list(what.stages)
    if isinstance(what, Recipe):
        what.validate()
    texts = [render_stage(s) for s in stages]
    text = "\n".join(texts)
    for offset, size in oversized_pieces(text):
        for stage, stage_text in zip(stages, texts, strict=True):
            if offset < len(stage_text) + 1:
                name, piece, origin = _piece(stage, stage_text, offset)
                raise DefError(too_long_message(piece, size, _advice(name)), origin=origin)
            offset -= len(stage_text) + 1
    return text


def _piece(stage: Stage, text: str, offset: int) -> tuple[str | None, str, Origin]:
    """The section name (``None``: the header) of the piece of a rendered stage that
    starts at ``offset``, how to name it, and the origin of the value that made it."""
    words = text[offset : text.find("\n", offset)].split(" ")
    if not words[0].startswith("%"):
        return None, "the header", stage.header.origin
    name = words[0][1:]
    if name.startswith("app") and len(words) > 1:
        app = next((a for a in stage.apps if a.name == words[1]), None)
        return name, f"%{name} {words[1]}", app.origin if app is not None else stage.origin
    value: object = getattr(stage, name, None)
    if name == "files":  # the how-manieth %files of the stage
        value = stage.files[text.count("\n%files", 0, offset + len("%files")) - 1]
    elif name == "labels":
        value = stage.labels[0]
    elif name == "environment":
        value = stage.environment.items[0]
    origin = getattr(value, "origin", None)
    return name, f"%{name} with its body", origin if isinstance(origin, Origin) else stage.origin


def _advice(name: str | None) -> str:
    """What a recipe can do about a piece too large for Apptainer's reader."""
    if name is None:
        return "shorten the header"
    if is_script_section(name):
        return "move commands into a script copied in with %files and run that"
    if name == "files":
        return "give the entries as several Files values"
    return f"shorten %{name}"
