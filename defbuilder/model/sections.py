"""Section values: scripts, ``%environment``, ``%labels``, ``%files`` and SCIF apps.

Each is a frozen attrs class whose constructor checks what Apptainer's parser would
misread (``defbuilder.apptainer``), raising ``DefError`` at the user's line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import attrs

from ..apptainer import app_name_problem, go_fields, go_trim, has_placeholder
from ..errors import DefError, Origin
from ._values import (
    BuildArg,
    Value,
    as_tuple,
    check_body,
    clean_body,
    instance,
    is_shell_name,
    is_token,
    origin_field,
    trim_end,
    tuple_of,
    type_name,
)

__all__ = [
    "App",
    "EnvItem",
    "Environment",
    "Export",
    "FileEntry",
    "Files",
    "HelpText",
    "Label",
    "Script",
]

# ---------------------------------------------------------------------------
# Scripts
# ---------------------------------------------------------------------------


@attrs.frozen
class Script:
    """A shell script section body (``%post``, ``%runscript``, ``%test``...).

    ``shell`` makes the interpreter explicit. For build-time sections
    (``%setup``/``%pre``/``%post``) it renders as ``-c SHELL -e``: Apptainer runs
    them as ``/bin/sh -ex`` and with ``-c`` as ``/bin/sh -ex -c "SHELL -e script"``
    (internal/pkg/build/util.go ``getSectionScriptArgs``), so ``-e`` keeps the
    stop-on-error that plain ``%post`` has (``errexit=False`` drops it). For
    ``%runscript``/``%startscript``/``%test`` it renders as the first body line
    ``#!SHELL``, the only place Apptainer honours one
    (internal/pkg/build/metadata.go ``handleShebangScript``).

    >>> Script('''
    ...     echo one
    ...     echo two
    ... ''').body
    'echo one\\necho two'
    >>> (Script("a") + Script("b")).body
    'a\\nb'
    """

    body: str = ""
    shell: str | None = None
    errexit: bool = True
    #: Raw section arguments (``%post -x``, ``%runscript --norc``) as found in a parsed
    #: .def; prefer ``shell``. Never both.
    args: str = ""
    #: Keep ``body`` exactly (a parsed .def); otherwise it is dedented (Python source).
    verbatim: bool = False
    origin: Origin = origin_field()

    def __attrs_post_init__(self) -> None:
        # The fields' types, checked here in one test rather than by three validators:
        # a script is made for every section of every parsed file.
        if not (
            isinstance(self.body, str)
            and isinstance(self.args, str)
            and (self.shell is None or isinstance(self.shell, str))
        ):
            for name, kind, what in _SCRIPT_TYPES:
                value = getattr(self, name)
                if not isinstance(value, kind):
                    raise DefError(
                        f"{name}: expected {what}, got {type_name(value)}", origin=self.origin
                    )
        body = trim_end(self.body) if self.verbatim else clean_body(self.body)
        object.__setattr__(self, "body", body)
        check_body(self.body, "script", self.origin)
        if "\n" in self.args or "\r" in self.args:
            raise DefError("section arguments cannot hold a newline", origin=self.origin)
        if self.args and self.shell is not None:
            raise DefError("give shell= or raw args=, not both", origin=self.origin)
        if self.shell is not None:
            if not self.shell.startswith("/") or self.shell.split() != [self.shell]:
                raise DefError(
                    f"shell {self.shell!r} must be an absolute path without spaces",
                    origin=self.origin,
                )
            if self.body.startswith("#!"):
                raise DefError(
                    "give the interpreter either as shell= or as a #! first line, not both",
                    origin=self.origin,
                )

    def __bool__(self) -> bool:
        return bool(self.body)

    def __add__(self, other: Script | str) -> Script:
        other = to_script(other)
        if not isinstance(other, Script):
            return NotImplemented
        if not other:
            return self
        if not self:
            return other
        if self.shell != other.shell and other.shell is not None and self.shell is not None:
            raise DefError(
                f"cannot join a script for {self.shell} with one for {other.shell}",
                origin=other.origin,
            )
        return attrs.evolve(
            self, body=self.body + "\n" + other.body, shell=self.shell or other.shell
        )

    def append(self, text: str) -> Script:
        return self + Script(text)

    def prepend(self, text: str) -> Script:
        return Script(text, shell=self.shell, errexit=self.errexit) + attrs.evolve(self, shell=None)


#: (field, type, what it must be) for ``Script``'s own check.
_SCRIPT_TYPES: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("body", str, "a str"),
    ("shell", (str, type(None)), "a str or None"),
    ("args", str, "a str"),
)

ScriptInput = Script | str | None

#: The empty script every absent section shares (values are immutable).
EMPTY_SCRIPT = Script(origin=Origin(None, None))


def to_script(value: ScriptInput) -> Script:
    """``None`` -> an empty script, a str -> ``Script(str)``; anything else is left for
    the field's validator to report."""
    if value is None:
        return EMPTY_SCRIPT
    if isinstance(value, str):
        return Script(value)
    return value


#: Validator for every script field.
SCRIPT_CHECK = instance(Script, "a Script or a str")


# ---------------------------------------------------------------------------
# %environment
# ---------------------------------------------------------------------------


@attrs.frozen
class Export:
    """``export NAME=value`` with the value quoted so that sh and bash read it back.

    >>> Export("GREETING", "it's $HOME").name
    'GREETING'
    """

    name: str
    value: Value
    origin: Origin = origin_field()

    def __attrs_post_init__(self) -> None:
        name: object = self.name
        if not isinstance(name, str) or not is_shell_name(name):
            raise DefError(
                f"environment variable name {name!r} is not a valid shell name", origin=self.origin
            )
        value: object = self.value
        if not isinstance(value, (str, BuildArg)):
            raise DefError(
                f"environment variable {self.name}: value must be a str or BuildArg, "
                f"got {type_name(value)}",
                origin=self.origin,
            )
        if isinstance(value, str) and "\x00" in value:
            raise DefError(
                f"environment variable {self.name}: a value cannot hold a NUL byte",
                origin=self.origin,
            )


EnvItem = Export | Script


def _env_items(value: EnvironmentInput) -> tuple[EnvItem, ...]:
    if isinstance(value, Environment):
        return value.items
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return tuple(Export(str(k), v) for k, v in value.items())
    if isinstance(value, (str, Script, Export)):
        value = [value]
    items: list[EnvItem] = []
    for item in as_tuple(value):
        if isinstance(item, (Export, Script)):
            items.append(item)
        elif isinstance(item, str):
            items.append(Script(item))
        elif isinstance(item, tuple) and len(item) == 2:
            items.append(Export(*item))
        else:
            raise DefError(
                f"cannot use {item!r} in %environment: expected an Export, a "
                "Script, a str or a (NAME, value) pair"
            )
    return tuple(items)


@attrs.frozen
class Environment:
    """``%environment``: exports and raw POSIX-sh lines, in order.

    Apptainer writes it to ``/.singularity.d/env/90-environment.sh`` and sources it
    before every run/exec/shell/test/instance start; only exported variables reach
    the program (internal/pkg/util/shell/interpreter/interpreter.go ``GetEnv``).

    >>> env = Environment({"LC_ALL": "C.UTF-8"}) + Environment(". /opt/activate.sh")
    >>> [type(i).__name__ for i in env.items]
    ['Export', 'Script']
    """

    items: tuple[EnvItem, ...] = attrs.field(default=(), converter=_env_items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __add__(self, other: EnvironmentInput) -> Environment:
        return Environment(self.items + _env_items(other))

    def exports(self) -> dict[str, Value]:
        return {i.name: i.value for i in self.items if isinstance(i, Export)}


#: What ``%environment`` is given as: an ``Environment``, a mapping of exports, items
#: (``Export``, a ``Script`` or str of raw lines, a (NAME, value) pair) or one of them.
EnvironmentInput = (
    Environment
    | Mapping[str, Value]
    | Export
    | Script
    | str
    | Iterable[Export | Script | str | tuple[str, Value]]
    | None
)


def to_environment(value: EnvironmentInput) -> Environment:
    return value if isinstance(value, Environment) else Environment(value)


# ---------------------------------------------------------------------------
# %labels
# ---------------------------------------------------------------------------


@attrs.frozen
class Label:
    """One ``%labels`` line: ``KEY value``.

    Apptainer trims the line and splits it at the first space (deffile.go
    ``GetLabels``), so a key cannot hold whitespace or start with ``#``, and a value
    cannot hold a newline or start/end with whitespace: those are errors here.
    """

    key: str
    value: Value = ""
    origin: Origin = origin_field()

    def __attrs_post_init__(self) -> None:
        key: object = self.key
        if (
            not isinstance(key, str)
            or not key
            or key.split() != [key]  # holds white space (as str.isspace has it)
            or key.startswith(("#", "%"))
        ):
            raise DefError(
                f"invalid label key {key!r}: a key is one word, not starting with # or %",
                origin=self.origin,
            )
        if has_placeholder(key):
            raise DefError(
                f"label key {key!r} looks like a build-argument placeholder", origin=self.origin
            )
        value: object = self.value
        if isinstance(value, BuildArg):
            return
        if not isinstance(value, str):
            raise DefError(
                f"label {self.key}: value must be a str, got {type_name(value)}", origin=self.origin
            )
        if "\n" in value or "\r" in value:
            raise DefError(
                f"label {self.key}: value contains a newline (one label per line)",
                origin=self.origin,
            )
        if value != go_trim(value):  # GetLabels trims with strings.TrimSpace
            raise DefError(
                f"label {self.key}: value {value!r} has leading or trailing whitespace, "
                "which Apptainer trims",
                origin=self.origin,
            )


LabelsInput = Mapping[str, Value] | Iterable[Label | tuple[str, Value]] | None


def to_labels(value: LabelsInput) -> tuple[Label, ...]:
    """Labels from a mapping or pairs; a later key replaces an earlier one (as
    Apptainer's ``GetLabels`` does)."""
    if value is None:
        return ()
    pairs: Any = value.items() if isinstance(value, Mapping) else as_tuple(value)
    if not isinstance(pairs, Iterable) or isinstance(pairs, str):
        return cast(tuple[Label, ...], pairs)  # the field's validator reports it
    out: dict[str, Label] = {}
    for item in pairs:
        if isinstance(item, Label):
            label = item
        elif isinstance(item, tuple) and len(item) == 2:
            label = Label(*item)
        else:
            raise DefError(
                f"labels: expected a mapping, Label or (key, value) pairs, got "
                f"{type_name(item)} {item!r}"
            )
        out.pop(label.key, None)
        out[label.key] = label
    return tuple(out.values())


LABELS_CHECK = tuple_of(Label, "a mapping or a list of Label")


# ---------------------------------------------------------------------------
# %files
# ---------------------------------------------------------------------------


def _check_path(path: object, what: str, origin: Origin) -> None:
    if not isinstance(path, str):
        raise DefError(f"%files {what}: expected a str, got {type_name(path)}", origin=origin)
    if not path:
        raise DefError(f"%files {what} is empty", origin=origin)
    if '"' in path or "\n" in path or "\r" in path:
        # deffile.go fileSplitter: double quotes delimit tokens and cannot be escaped.
        raise DefError(f"%files {what} {path!r} contains a double quote or newline", origin=origin)
    if path.startswith("#"):
        raise DefError(f"%files {what} {path!r} starts with '#'", origin=origin)


@attrs.frozen
class FileEntry:
    """``src [dst]`` in ``%files``; ``dst=None`` copies to the same path as ``src``.

    ``src`` is a glob pattern in Apptainer (internal/pkg/build/files/copy.go).
    """

    src: str
    dst: str | None = None
    origin: Origin = origin_field()

    def __attrs_post_init__(self) -> None:
        _check_path(self.src, "source", self.origin)
        if self.dst is not None:
            _check_path(self.dst, "destination", self.origin)


FileEntriesInput = Mapping[str, str] | str | FileEntry | Iterable[FileEntry | str | tuple[str, str]]


def to_file_entries(value: FileEntriesInput) -> tuple[FileEntry, ...]:
    if isinstance(value, Mapping):
        value = list(value.items())
    if isinstance(value, (str, FileEntry)):
        value = [value]
    items = as_tuple(value)
    if not isinstance(items, tuple):
        return items
    out = []
    for item in items:
        if isinstance(item, FileEntry):
            out.append(item)
        elif isinstance(item, str):
            out.append(FileEntry(item))
        elif isinstance(item, tuple) and len(item) == 2:
            out.append(FileEntry(item[0], item[1]))
        else:
            raise DefError(
                f"cannot use {item!r} as a %files entry: expected a path, a "
                "(src, dst) pair or a FileEntry"
            )
    return tuple(out)


_ENTRIES_CHECK = tuple_of(FileEntry, "paths, (src, dst) pairs or FileEntry values")


@attrs.frozen
class Files:
    """One ``%files`` section, from the host or ``from_stage`` (``%files from build``).

    >>> Files(["pixi.toml", ("src/app.py", "/app/app.py")]).entries[1].dst
    '/app/app.py'
    """

    entries: tuple[FileEntry, ...] = attrs.field(
        converter=to_file_entries, validator=_ENTRIES_CHECK
    )
    from_stage: str | None = None
    origin: Origin = origin_field()

    def __attrs_post_init__(self) -> None:
        if self.from_stage is not None and not (
            isinstance(self.from_stage, str) and is_token(self.from_stage)
        ):
            raise DefError(
                f"%files from {self.from_stage!r}: invalid stage name", origin=self.origin
            )


FilesInput = (
    Files
    | Mapping[str, str]
    | str
    | FileEntry
    | Iterable[Files | FileEntry | str | tuple[str, str]]
    | None
)


def to_files_list(value: FilesInput) -> tuple[Files, ...]:
    """One ``Files``, a list of them, or the entries of one host ``%files`` section."""
    if value is None:
        return ()
    if isinstance(value, Files):
        return (value,)
    items = as_tuple(value) if not isinstance(value, (str, Mapping)) else None
    if items is not None and not isinstance(items, tuple):
        return items  # not iterable: the field's validator reports it
    if items is not None and all(isinstance(v, Files) for v in items):
        return items
    return (Files(value),)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# SCIF apps
# ---------------------------------------------------------------------------


def _check_appfile(app: str, entry: FileEntry, origin: Origin) -> None:
    """``%appfiles`` has no quoting (``apptainer.split_appfiles_line``): the source is
    the first word, the destination the rest of the line, and ``#`` starts a comment."""
    src, dst = entry.src, entry.dst or ""
    if go_fields(src) != [src] or src.startswith("%"):
        raise DefError(
            f"app {app} %appfiles: source {src!r} must be one word not starting with %: "
            "Apptainer splits the line at the first space, without quotes",
            origin=origin,
        )
    if "#" in src + dst or dst != go_trim(dst):
        raise DefError(
            f"app {app} %appfiles: {src!r} {dst!r}: '#' starts a comment and surrounding "
            "spaces are trimmed in %appfiles",
            origin=origin,
        )


class HelpText(str):
    """``%help`` text that is final: the ``help`` fields keep it as it is.

    ``apptainer run-help`` prints the help as written (metadata.go
    ``insertHelpScript``), so a parsed ``%help`` keeps its indentation, also when
    the stage is copied with a change (``replace``, ``+``), which hands the text
    to the constructor again."""

    __slots__ = ()


def to_help(value: str | Script | None) -> str:
    """``%help`` text: a str is dedented like a script body; ``Script(text,
    verbatim=True)`` (what ``parse`` gives) keeps its indentation; a ``HelpText``
    (what a ``help`` field holds) is kept as it is."""
    if value is None:
        return ""
    if isinstance(value, HelpText):
        return value
    if isinstance(value, Script):
        return HelpText(value.body)
    return HelpText(clean_body(value)) if isinstance(value, str) else value


@attrs.frozen
class App:
    """A SCIF app: ``%apprun NAME``, ``%appinstall NAME``...

    App scripts are written as ``#!/bin/sh`` with no shebang handling
    (internal/pkg/build/apps/apps.go), and ``%appinstall`` is appended to ``%post``,
    so none of them can choose a shell.
    """

    name: str
    run: Script = attrs.field(default=EMPTY_SCRIPT, converter=to_script, validator=SCRIPT_CHECK)
    start: Script = attrs.field(default=EMPTY_SCRIPT, converter=to_script, validator=SCRIPT_CHECK)
    test: Script = attrs.field(default=EMPTY_SCRIPT, converter=to_script, validator=SCRIPT_CHECK)
    install: Script = attrs.field(default=EMPTY_SCRIPT, converter=to_script, validator=SCRIPT_CHECK)
    env: Environment = attrs.field(factory=Environment, converter=to_environment)
    labels: tuple[Label, ...] = attrs.field(default=(), converter=to_labels, validator=LABELS_CHECK)
    files: tuple[FileEntry, ...] = attrs.field(
        default=(), converter=to_file_entries, validator=_ENTRIES_CHECK
    )
    help: str = attrs.field(default="", converter=to_help, validator=instance(str, "a str"))
    origin: Origin = origin_field()

    def __attrs_post_init__(self) -> None:
        problem = app_name_problem(self.name) if isinstance(self.name, str) else None
        if not isinstance(self.name, str) or problem is not None:
            raise DefError(problem or f"invalid app name {self.name!r}", origin=self.origin)
        for part in ("run", "start", "test", "install"):
            script: Script = getattr(self, part)
            if script.shell is not None:
                raise DefError(
                    f"app {self.name}: %app{part} cannot choose a shell; SCIF app scripts "
                    "always run under /bin/sh",
                    origin=self.origin,
                )
        check_body(self.help, f"app {self.name} %apphelp", self.origin)
        for entry in self.files:
            _check_appfile(self.name, entry, self.origin)
