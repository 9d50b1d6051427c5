"""The typed model of an Apptainer definition file: immutable values, composed by methods.

``Recipe`` holds ordered ``Stage`` values; a ``Stage`` is a ``Header`` plus sections
(``Sections``: what building blocks return and what ``stage + sections`` merges in).
Every value is a frozen attrs class: change is ``evolve``/methods that return a new
value, so a stage built once can be reused by many recipes.

This module validates what can be checked on one value (names, keys, values that
Apptainer's parser would misread); ``Recipe.validate`` checks what needs the whole
recipe. It never formats text: that is ``defbuilder.render``'s job.

Apptainer rules cited below come from apptainer/apptainer
``pkg/build/types/parser/deffile.go`` (the .def parser) unless said otherwise; see
docs/reference.md and ../shared/apptainer-notes.md.

>>> stage = Stage(Header.docker("ubuntu:24.04"), post="apt-get update")
>>> stage.header.bootstrap, stage.post.body
('docker', 'apt-get update')
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from .errors import DefError, Origin, caller_origin

__all__ = [
    "AGENTS",
    "App",
    "Block",
    "BuildArg",
    "Environment",
    "Export",
    "FileEntry",
    "Files",
    "Header",
    "Label",
    "Recipe",
    "Script",
    "Sections",
    "Stage",
]

# Validation uses str methods and sets, not regexes compiled at import: this module
# is on the CLI's start-up path (see bench/render_latency.py).
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _ALNUM | {"_"}
_TOKEN_CHARS = _ALNUM | set("_.+-")
# Apptainer: regexp `{{\s*(\w+)\s*}}` (internal/pkg/build/args/reader.go).
PLACEHOLDER_PATTERN = r"{{\s*(\w+)\s*}}"


def _is_shell_name(name: str) -> bool:
    """``[A-Za-z_][A-Za-z0-9_]*``."""
    return bool(name) and set(name) <= _NAME_CHARS and not name[0].isdigit()


def _is_arg_name(name: str) -> bool:
    """``\\w+`` in Go's RE2 (ASCII)."""
    return bool(name) and set(name) <= _NAME_CHARS


def _is_token(name: str) -> bool:
    """Stage and app names: ``[A-Za-z0-9_.+-]+``."""
    return bool(name) and set(name) <= _TOKEN_CHARS


def has_placeholder(text: str) -> bool:
    """Whether Apptainer would substitute a ``{{ NAME }}`` in ``text``."""
    return "{{" in text and re.search(PLACEHOLDER_PATTERN, text) is not None


def _origin_field() -> Any:
    return attrs.field(factory=caller_origin, eq=False, repr=False, kw_only=True)


# ---------------------------------------------------------------------------
# Build arguments
# ---------------------------------------------------------------------------


@attrs.frozen
class BuildArg:
    """An Apptainer build argument: renders as ``{{ NAME }}``, default in ``%arguments``.

    Apptainer substitutes the placeholder as plain text before parsing the stage
    (internal/pkg/build/args/reader.go); a default of ``None`` means the value must
    come from ``apptainer build --build-arg NAME=...``.

    >>> tag = BuildArg("TAG", "24.04")
    >>> str(tag), f"ubuntu:{tag}"
    ('{{ TAG }}', 'ubuntu:{{ TAG }}')
    """

    name: str = attrs.field()
    default: str | None = attrs.field(default=None)

    @name.validator
    def _check_name(self, _a: attrs.Attribute[str], value: str) -> None:
        if not _is_arg_name(value):
            raise DefError(
                f"build argument name {value!r} is invalid: Apptainer only matches "
                "{{ NAME }} with NAME made of letters, digits and _"
            )

    @default.validator
    def _check_default(self, _a: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and ("\n" in value or "\r" in value):
            raise DefError(
                f"default of build argument {self.name} contains a newline; "
                "%arguments holds one NAME=value per line"
            )

    def __str__(self) -> str:
        return "{{ " + self.name + " }}"

    @property
    def placeholder(self) -> str:
        return str(self)


Value = str | BuildArg


def _value_text(value: Value) -> str:
    return str(value)


# ---------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------

#: Keys each bootstrap agent reads, from apptainer/apptainer
#: internal/pkg/build/sources/conveyorPacker_*.go (see apptainer-notes.md §1).
#: ``stage`` and ``includecmd`` (which no agent reads; see the lint rule) are
#: accepted for every agent.
_DOCKERLIKE = frozenset({"from", "registry", "namespace"})
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
            "product",
            "user",
            "regcode",
            "productpgp",
            "registerurl",
            "modules",
            "otherurl",
        }
    ),
    "arch": frozenset({"confurl", "include"}),
    "busybox": frozenset({"mirrorurl"}),
    "buildkit": frozenset({"from", "target", "frontend", "filename", "buildargs"}),
    "dockerfile": frozenset({"from", "target", "frontend", "filename", "buildargs"}),
    "scratch": frozenset(),
}

#: Keys an agent refuses to build without. From: is mandatory for image sources
#: (apptainer-userdocs appendix.rst); the others are the agents' own errors, e.g.
#: "invalid debootstrap header, no mirrorurl specified" (conveyorPacker_debootstrap.go),
#: "invalid yum header, no MirrorURL specified" (conveyorPacker_yum.go).
_REQUIRED: Mapping[str, tuple[str, ...]] = {
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

#: Header field name -> the keyword written in the .def, in canonical order.
HEADER_KEYWORDS: Mapping[str, str] = {
    "from_": "From",
    "stage": "Stage",
    "registry": "Registry",
    "namespace": "Namespace",
    "include_cmd": "IncludeCmd",
    "library": "Library",
    "fingerprints": "Fingerprints",
    "mirror_url": "MirrorURL",
    "update_url": "UpdateURL",
    "os_version": "OSVersion",
    "include": "Include",
    "setopt": "Setopt",
    "conf_url": "ConfURL",
    "product": "Product",
    "user": "User",
    "regcode": "Regcode",
    "product_pgp": "ProductPGP",
    "register_url": "RegisterURL",
    "modules": "Modules",
    "target": "Target",
    "frontend": "Frontend",
    "filename": "Filename",
    "build_args": "BuildArgs",
}


#: Every header keyword Apptainer accepts (deffile.go ``validHeaders``); ``otherurl<n>``
#: is matched separately.
VALID_HEADER_KEYS = frozenset({
    "bootstrap", "from", "includecmd", "mirrorurl", "updateurl", "osversion", "include",
    "library", "registry", "namespace", "stage", "product", "user", "regcode", "productpgp",
    "registerurl", "modules", "fingerprints", "confurl", "setopt", "target", "frontend",
    "filename", "buildargs",
})


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _pair_tuple(value: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in value)


def _is_other_url(key: str) -> bool:
    low = key.lower()
    return low.startswith("otherurl") and low[8:].isdigit()


def _check_header_value(key: str, value: Value) -> None:
    text = _value_text(value)
    if "\n" in text or "\r" in text:
        raise DefError(f"header {key}: value contains a newline")
    if "#" in text:
        # deffile.go doHeader: `strings.Split(line, "#")[0]` cuts the value at '#'.
        raise DefError(f"header {key}: value {text!r} contains '#', which Apptainer cuts off")
    if text != text.strip() or not text:
        raise DefError(f"header {key}: value {text!r} is empty or has surrounding spaces")
    if text.endswith("\\"):
        raise DefError(f"header {key}: a trailing backslash continues the line in Apptainer")


@attrs.frozen
class Header:
    """The keywords above the first section: ``Bootstrap:``, ``From:``, ``Stage:``...

    Each agent reads its own keywords; giving one the agent ignores is an error here
    (Apptainer would silently ignore it). ``include_cmd`` is accepted but has no
    effect in Apptainer (apptainer-notes.md §10).

    >>> Header.docker("nvidia/cuda:12.9.1-base-ubuntu24.04", stage="build").stage
    'build'
    >>> Header("library")
    Traceback (most recent call last):
    ...
    defbuilder.errors.DefError: ...Bootstrap: library needs From:
    """

    bootstrap: str
    from_: Value | None = None
    stage: str | None = None
    registry: str | None = None
    namespace: str | None = None
    include_cmd: bool | None = None
    library: str | None = None
    fingerprints: str | None = None
    mirror_url: Value | None = None
    update_url: Value | None = None
    os_version: Value | None = None
    include: str | None = None
    setopt: str | None = None
    conf_url: str | None = None
    product: str | None = None
    user: str | None = None
    regcode: str | None = None
    product_pgp: str | None = None
    register_url: str | None = None
    modules: str | None = None
    target: str | None = None
    frontend: str | None = None
    filename: str | None = None
    build_args: str | None = None
    other_urls: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    #: Keywords Apptainer accepts but this agent does not read (a parsed .def keeps
    #: them; ``defbuilder lint`` reports them): ``(("Registry", "x"),)``.
    ignored: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pair_tuple)
    origin: Origin = _origin_field()

    def __attrs_post_init__(self) -> None:
        if self.bootstrap not in AGENTS:
            # conveyorPacker.go: the Bootstrap value is matched case-sensitively.
            raise DefError(
                f"unknown Bootstrap: {self.bootstrap!r}; Apptainer knows "
                + ", ".join(sorted(AGENTS)),
                origin=self.origin,
            )
        allowed = AGENTS[self.bootstrap] | {"stage", "includecmd"}
        for key, value in self.known_items():
            lower = "otherurl" if key.lower().startswith("otherurl") else key.lower()
            if lower not in allowed:
                raise DefError(
                    f"{key}: is not read by Bootstrap: {self.bootstrap} "
                    f"(it reads: {', '.join(sorted(AGENTS[self.bootstrap])) or 'nothing'})",
                    origin=self.origin,
                )
            try:
                _check_header_value(key, value)
            except DefError as exc:
                raise DefError(exc.message, origin=self.origin) from None
        for key, value in self.ignored:
            if key.lower() not in VALID_HEADER_KEYS and not _is_other_url(key):
                raise DefError(f"invalid header keyword found: {key}", origin=self.origin)
            try:
                _check_header_value(key, value)
            except DefError as exc:
                raise DefError(exc.message, origin=self.origin) from None
        present = {k.lower() for k, _ in self.items()}
        for needed in _REQUIRED.get(self.bootstrap, ()):
            if needed not in present:
                raise DefError(
                    f"Bootstrap: {self.bootstrap} needs {_keyword(needed)}:",
                    origin=self.origin,
                )
        if self.stage is not None and not _is_token(self.stage):
            raise DefError(f"stage name {self.stage!r} is invalid", origin=self.origin)

    @classmethod
    def docker(cls, image: Value, *, stage: str | None = None, **kw: Any) -> Header:
        """``Bootstrap: docker`` / ``From: image``."""
        return cls("docker", from_=image, stage=stage, **kw)

    def items(self) -> Iterator[tuple[str, Value]]:
        """``(Keyword, value)`` pairs in canonical order, ``Bootstrap`` excluded."""
        yield from self.known_items()
        yield from self.ignored

    def known_items(self) -> Iterator[tuple[str, Value]]:
        """Like ``items`` without the ``ignored`` keywords."""
        for field, keyword in HEADER_KEYWORDS.items():
            value = getattr(self, field)
            if value is None:
                continue
            if isinstance(value, bool):
                value = "yes" if value else "no"
            yield keyword, value
        for i, url in enumerate(self.other_urls):
            yield f"OtherURL{i}", url

    def arg_values(self) -> Iterator[BuildArg]:
        """The ``BuildArg`` values used in this header."""
        for _k, value in self.items():
            if isinstance(value, BuildArg):
                yield value


def _keyword(lower: str) -> str:
    for keyword in HEADER_KEYWORDS.values():
        if keyword.lower() == lower:
            return keyword
    return lower


# ---------------------------------------------------------------------------
# Section bodies
# ---------------------------------------------------------------------------


def clean_body(text: str) -> str:
    """Dedent a Python triple-quoted string and drop blank lines around it.

    >>> clean_body('''
    ...     apt-get update
    ...       echo hi
    ... ''')
    'apt-get update\\n  echo hi'
    """
    text = text.replace("\r\n", "\n")
    lines = textwrap.dedent(text).split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(line.rstrip() if not line.strip() else line for line in lines)


def _trim_end(text: str) -> str:
    """Drop trailing blank lines only (leading ones matter: a blank line above a
    runscript's ``#!`` makes Apptainer ignore it)."""
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def check_body(text: str, what: str, origin: Origin | None = None) -> None:
    """Reject body lines that Apptainer's parser would not keep in the section.

    deffile.go ``scanDefinitionFile``: a line whose first word starts with ``%``
    starts a new section; ``All()`` splits stages at ``(?mi)^bootstrap:``.
    """
    for n, line in enumerate(text.split("\n"), start=1):
        words = line.split()
        if words and words[0].startswith("%"):
            raise DefError(
                f"{what}, body line {n} ({line.strip()!r}) starts with '%': Apptainer "
                "would read it as a new section header; indent does not help, "
                "rewrite it (e.g. quote it or use printf)",
                origin=origin,
            )
        # deffile.go All(): stages are split on `(?mi)^bootstrap:`.
        if line[:10].lower() == "bootstrap:":
            raise DefError(
                f"{what}, body line {n} starts with 'Bootstrap:', which starts a new "
                "stage in Apptainer; indent it",
                origin=origin,
            )
        if "\x00" in line:
            raise DefError(f"{what}, body line {n} contains a NUL byte", origin=origin)


@attrs.frozen
class Script:
    """A shell script section body (``%post``, ``%runscript``, ``%test``...).

    ``shell`` makes the interpreter explicit. For build-time sections
    (``%setup``/``%pre``/``%post``) it renders as ``-c SHELL -e``: Apptainer runs
    them as ``/bin/sh -ex`` and with ``-c`` as ``/bin/sh -ex -c "SHELL -e script"``
    (internal/pkg/build/stage.go ``getSectionScriptArgs``), so ``-e`` keeps the
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
    origin: Origin = _origin_field()

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.body, str):
            raise DefError(f"a script body must be a str, got {type(self.body).__name__}",
                           origin=self.origin)
        body = _trim_end(self.body) if self.verbatim else clean_body(self.body)
        object.__setattr__(self, "body", body)
        check_body(self.body, "script", self.origin)
        if "\n" in self.args or "\r" in self.args:
            raise DefError("section arguments cannot hold a newline", origin=self.origin)
        if self.args and self.shell is not None:
            raise DefError("give shell= or raw args=, not both", origin=self.origin)
        if self.shell is not None:
            if not self.shell.startswith("/") or any(c.isspace() for c in self.shell):
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
        other = _to_script(other)
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
        return Script(text, shell=self.shell, errexit=self.errexit) + attrs.evolve(
            self, shell=None
        )


def _to_script(value: Script | str | None) -> Script:
    if value is None:
        return Script()
    if isinstance(value, Script):
        return value
    if isinstance(value, str):
        return Script(value)
    raise TypeError(f"expected a Script or a str, got {type(value).__name__}")


# ---------------------------------------------------------------------------
# %environment
# ---------------------------------------------------------------------------


@attrs.frozen
class Export:
    """``export NAME=value`` with the value quoted so that sh and bash read it back.

    >>> Export("GREETING", "it's $HOME").name
    'GREETING'
    """

    name: str = attrs.field()
    value: Value = attrs.field()

    @name.validator
    def _check(self, _a: attrs.Attribute[str], name: str) -> None:
        if not _is_shell_name(name):
            raise DefError(f"environment variable name {name!r} is not a valid shell name")

    @value.validator
    def _check_value(self, _a: attrs.Attribute[Value], value: Value) -> None:
        if not isinstance(value, (str, BuildArg)):
            raise DefError(
                f"environment variable {self.name}: value must be a str or BuildArg, "
                f"got {type(value).__name__}"
            )
        if isinstance(value, str) and "\x00" in value:
            raise DefError(f"environment variable {self.name}: a value cannot hold a NUL byte")


EnvItem = Export | Script


def _env_items(value: Any) -> tuple[EnvItem, ...]:
    if isinstance(value, Environment):
        return value.items
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return tuple(Export(str(k), v) for k, v in value.items())
    if isinstance(value, (str, Script, Export)):
        value = [value]
    items: list[EnvItem] = []
    for item in value:
        if isinstance(item, (Export, Script)):
            items.append(item)
        elif isinstance(item, str):
            items.append(Script(item))
        elif isinstance(item, tuple) and len(item) == 2:
            items.append(Export(*item))
        else:
            raise DefError(f"cannot use {item!r} in %environment")
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

    def __add__(self, other: Any) -> Environment:
        return Environment(self.items + _env_items(other))

    def exports(self) -> dict[str, Value]:
        return {i.name: i.value for i in self.items if isinstance(i, Export)}


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

    key: str = attrs.field()
    value: Value = attrs.field(default="")
    origin: Origin = _origin_field()

    @key.validator
    def _check_key(self, _a: attrs.Attribute[str], key: str) -> None:
        if not key or any(c.isspace() for c in key) or key.startswith(("#", "%")):
            raise DefError(
                f"invalid label key {key!r}: a key is one word, not starting with # or %"
            )
        if has_placeholder(key):
            raise DefError(f"label key {key!r} looks like a build-argument placeholder")

    @value.validator
    def _check_value(self, _a: attrs.Attribute[Value], value: Value) -> None:
        if isinstance(value, BuildArg):
            return
        if not isinstance(value, str):
            raise DefError(f"label {self.key}: value must be a str, got {type(value).__name__}")
        if "\n" in value or "\r" in value:
            raise DefError(f"label {self.key}: value contains a newline (one label per line)")
        if value != value.strip():
            raise DefError(
                f"label {self.key}: value {value!r} has leading or trailing whitespace, "
                "which Apptainer trims"
            )


def _labels(value: Any) -> tuple[Label, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        pairs: Iterable[Any] = value.items()
    else:
        pairs = value
    out: dict[str, Label] = {}
    for item in pairs:
        label = item if isinstance(item, Label) else Label(*item)
        out.pop(label.key, None)
        out[label.key] = label
    return tuple(out.values())


# ---------------------------------------------------------------------------
# %files
# ---------------------------------------------------------------------------


def _check_path(path: str, what: str) -> None:
    if not path:
        raise DefError(f"%files {what} is empty")
    if '"' in path or "\n" in path or "\r" in path:
        # deffile.go fileSplitter: double quotes delimit tokens and cannot be escaped.
        raise DefError(f"%files {what} {path!r} contains a double quote or newline")
    if path.startswith("#"):
        raise DefError(f"%files {what} {path!r} starts with '#'")


@attrs.frozen
class FileEntry:
    """``src [dst]`` in ``%files``; ``dst=None`` copies to the same path as ``src``.

    ``src`` is a glob pattern in Apptainer (internal/pkg/build/files/copy.go).
    """

    src: str
    dst: str | None = None
    origin: Origin = _origin_field()

    def __attrs_post_init__(self) -> None:
        _check_path(self.src, "source")
        if self.dst is not None:
            _check_path(self.dst, "destination")


def _file_entries(value: Any) -> tuple[FileEntry, ...]:
    if isinstance(value, Mapping):
        value = list(value.items())
    if isinstance(value, (str, FileEntry)):
        value = [value]
    out = []
    for item in value:
        if isinstance(item, FileEntry):
            out.append(item)
        elif isinstance(item, str):
            out.append(FileEntry(item))
        elif isinstance(item, tuple) and len(item) == 2:
            out.append(FileEntry(item[0], item[1]))
        else:
            raise DefError(f"cannot use {item!r} as a %files entry")
    return tuple(out)


@attrs.frozen
class Files:
    """One ``%files`` section, from the host or ``from_stage`` (``%files from build``).

    >>> Files(["pixi.toml", ("src/app.py", "/app/app.py")]).entries[1].dst
    '/app/app.py'
    """

    entries: tuple[FileEntry, ...] = attrs.field(converter=_file_entries)
    from_stage: str | None = None
    origin: Origin = _origin_field()

    def __attrs_post_init__(self) -> None:
        if self.from_stage is not None and not _is_token(self.from_stage):
            raise DefError(f"%files from {self.from_stage!r}: invalid stage name")


def _files_list(value: Any) -> tuple[Files, ...]:
    if value is None:
        return ()
    if isinstance(value, Files):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, Files) for v in value):
        return tuple(value)
    return (Files(value),)


# ---------------------------------------------------------------------------
# SCIF apps
# ---------------------------------------------------------------------------


@attrs.frozen
class App:
    """A SCIF app: ``%apprun NAME``, ``%appinstall NAME``... (apptainer-notes.md §7).

    App scripts are written as ``#!/bin/sh`` with no shebang handling
    (internal/pkg/build/apps/apps.go), and ``%appinstall`` is appended to ``%post``,
    so none of them can choose a shell.
    """

    name: str
    run: Script = attrs.field(factory=Script, converter=_to_script)
    start: Script = attrs.field(factory=Script, converter=_to_script)
    test: Script = attrs.field(factory=Script, converter=_to_script)
    install: Script = attrs.field(factory=Script, converter=_to_script)
    env: Environment = attrs.field(factory=Environment, converter=Environment)
    labels: tuple[Label, ...] = attrs.field(default=(), converter=_labels)
    files: tuple[FileEntry, ...] = attrs.field(default=(), converter=_file_entries)
    help: str = attrs.field(default="", converter=clean_body)
    origin: Origin = _origin_field()

    def __attrs_post_init__(self) -> None:
        if not _is_token(self.name):
            raise DefError(f"invalid app name {self.name!r}", origin=self.origin)
        for part in ("run", "start", "test", "install"):
            script: Script = getattr(self, part)
            if script.shell is not None:
                raise DefError(
                    f"app {self.name}: %app{part} cannot choose a shell; SCIF app scripts "
                    "always run under /bin/sh",
                    origin=self.origin,
                )
        check_body(self.help, f"app {self.name} %apphelp", self.origin)


def _apps(value: Any) -> tuple[App, ...]:
    if value is None:
        return ()
    if isinstance(value, App):
        return (value,)
    return tuple(value)


def _build_args(value: Any) -> tuple[BuildArg, ...]:
    if value is None:
        return ()
    if isinstance(value, BuildArg):
        return (value,)
    if isinstance(value, Mapping):
        return tuple(BuildArg(k, v) for k, v in value.items())
    return tuple(value)


# ---------------------------------------------------------------------------
# Sections and Stage
# ---------------------------------------------------------------------------


def _help(value: str | None) -> str:
    return clean_body(value or "")


@attrs.frozen(kw_only=True)
class Sections:
    """The sections of a stage, without a header: what building blocks return.

    ``stage + sections`` merges them in: scripts and environments are appended,
    labels override by key, ``%files`` and apps are added; two non-empty
    ``%runscript``/``%startscript``/``%help`` are a conflict (use ``replace``).
    """

    arguments: tuple[BuildArg, ...] = attrs.field(default=(), converter=_build_args)
    pre: Script = attrs.field(factory=Script, converter=_to_script)
    setup: Script = attrs.field(factory=Script, converter=_to_script)
    files: tuple[Files, ...] = attrs.field(default=(), converter=_files_list)
    environment: Environment = attrs.field(factory=Environment, converter=Environment)
    post: Script = attrs.field(factory=Script, converter=_to_script)
    runscript: Script = attrs.field(factory=Script, converter=_to_script)
    startscript: Script = attrs.field(factory=Script, converter=_to_script)
    test: Script = attrs.field(factory=Script, converter=_to_script)
    labels: tuple[Label, ...] = attrs.field(default=(), converter=_labels)
    help: str = attrs.field(default="", converter=_help)
    apps: tuple[App, ...] = attrs.field(default=(), converter=_apps)

    _APPENDED: ClassVar[tuple[str, ...]] = ("pre", "setup", "post", "test")
    _EXCLUSIVE: ClassVar[tuple[str, ...]] = ("runscript", "startscript", "help")

    def __attrs_post_init__(self) -> None:
        check_body(self.help, "%help")

    def section_values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in attrs.fields(Sections)}

    def merged(self, other: Sections) -> dict[str, Any]:
        """Field values of ``self`` with ``other`` merged in (see the class doc)."""
        out = self.section_values()
        for name in self._APPENDED:
            out[name] = out[name] + getattr(other, name)
        for name in self._EXCLUSIVE:
            new = getattr(other, name)
            if new and out[name]:
                raise DefError(
                    f"%{name} is already set in this stage; use .replace({name}=...) "
                    "to override it"
                )
            if new:
                out[name] = new
        out["environment"] = self.environment + other.environment
        out["labels"] = _labels(self.labels + other.labels)
        out["files"] = self.files + other.files
        names = {a.name for a in self.apps}
        for app in other.apps:
            if app.name in names:
                raise DefError(f"app {app.name} is already defined in this stage")
        out["apps"] = self.apps + other.apps
        args = {a.name: a for a in self.arguments}
        for arg in other.arguments:
            if arg.name in args and args[arg.name] != arg:
                raise DefError(
                    f"build argument {arg.name} has two defaults: "
                    f"{args[arg.name].default!r} and {arg.default!r}"
                )
            args[arg.name] = arg
        out["arguments"] = tuple(args.values())
        return out

    def __add__(self, other: Sections | Block) -> Sections:
        sections = _as_sections(other)
        if sections is None:
            return NotImplemented
        return Sections(**self.merged(sections))


@runtime_checkable
class Block(Protocol):
    """Anything with ``sections() -> Sections`` (building blocks) can be added to a stage."""

    def sections(self) -> Sections: ...


def _as_sections(other: object) -> Sections | None:
    if isinstance(other, Stage):
        return None
    if isinstance(other, Sections):
        return other
    if isinstance(other, Block):
        return other.sections()
    return None


@attrs.frozen
class Stage(Sections):
    """One stage: a ``Header`` and its sections.

    >>> base = Stage(Header.docker("ubuntu:24.04"), post="apt-get update")
    >>> project = base.extend(post="apt-get install -y --no-install-recommends git",
    ...                       labels={"maintainer": "team@example.org"})
    >>> project.post.body
    'apt-get update\\napt-get install -y --no-install-recommends git'
    >>> base.post.body   # unchanged: values are immutable
    'apt-get update'
    """

    header: Header = attrs.field(kw_only=False)
    origin: Origin = _origin_field()

    @property
    def name(self) -> str | None:
        return self.header.stage

    def __add__(self, other: Sections | Block) -> Stage:
        sections = _as_sections(other)
        if sections is None:
            return NotImplemented
        return attrs.evolve(self, **self.merged(sections))

    def extend(self, **sections: Any) -> Stage:
        """Merge sections given as keywords (see ``Sections``)."""
        return self + Sections(**sections)

    def replace(self, **fields: Any) -> Stage:
        """A copy with the given fields replaced outright (``runscript=...``...)."""
        return attrs.evolve(self, **fields)

    def named(self, name: str) -> Stage:
        """A copy whose header says ``Stage: name``."""
        return attrs.evolve(self, header=attrs.evolve(self.header, stage=name))

    def declared_build_args(self) -> tuple[BuildArg, ...]:
        """Build arguments this stage declares: explicit ones, then those used as values."""
        found: dict[str, BuildArg] = {}
        candidates: list[BuildArg] = list(self.arguments)
        candidates += list(self.header.arg_values())
        candidates += [v for v in self.environment.exports().values() if isinstance(v, BuildArg)]
        candidates += [lbl.value for lbl in self.labels if isinstance(lbl.value, BuildArg)]
        for arg in candidates:
            prev = found.get(arg.name)
            if prev is not None and prev != arg:
                if prev.default is None:
                    found[arg.name] = arg
                    continue
                if arg.default is None:
                    continue
                raise DefError(
                    f"build argument {arg.name} has two defaults: {prev.default!r} and "
                    f"{arg.default!r}",
                    origin=self.origin,
                )
            found.setdefault(arg.name, arg)
        return tuple(found.values())


def _stages(value: Any) -> tuple[Stage, ...]:
    if isinstance(value, Stage):
        return (value,)
    return tuple(value)


@attrs.frozen
class Recipe:
    """Ordered stages; the last one is the image Apptainer builds.

    >>> build = Stage(Header.docker("ubuntu:24.04", stage="build"), post="make")
    >>> final = Stage(Header.docker("ubuntu:24.04", stage="final"),
    ...               files=Files(["/app/bin"], from_stage="build"))
    >>> recipe = Recipe([build]) + final
    >>> [s.name for s in recipe.stages]
    ['build', 'final']
    """

    stages: tuple[Stage, ...] = attrs.field(converter=_stages)
    origin: Origin = _origin_field()

    def __add__(self, other: Stage | Recipe) -> Recipe:
        if isinstance(other, Stage):
            return attrs.evolve(self, stages=(*self.stages, other))
        if isinstance(other, Recipe):
            return attrs.evolve(self, stages=self.stages + other.stages)
        return NotImplemented

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise DefError(f"no stage named {name!r}; stages: {self._names()}")

    def _names(self) -> str:
        return ", ".join(str(s.name) for s in self.stages)

    def replace_stage(self, name: str, new: Stage) -> Recipe:
        self.stage(name)
        return attrs.evolve(
            self, stages=tuple(new if s.name == name else s for s in self.stages)
        )

    def validate(self) -> None:
        """Checks that need the whole recipe (stage names, ``%files from``)."""
        if not self.stages:
            raise DefError("the recipe has no stages", origin=self.origin)
        seen: dict[str, Stage] = {}
        for stage in self.stages:
            for files in stage.files:
                if files.from_stage is None:
                    continue
                if files.from_stage not in seen:
                    later = any(s.name == files.from_stage for s in self.stages)
                    why = (
                        "it comes later; a stage can only copy from an earlier one"
                        if later
                        else f"known stages: {', '.join(seen) or 'none before this one'}"
                    )
                    raise DefError(
                        f"%files from {files.from_stage}: unknown stage ({why})",
                        origin=files.origin,
                    )
            if stage.name is not None:
                if stage.name in seen:
                    raise DefError(
                        f"duplicate stage name {stage.name!r} (first defined at "
                        f"{seen[stage.name].origin})",
                        origin=stage.origin,
                    )
                seen[stage.name] = stage

    def select(self, name: str) -> Recipe:
        """The stage ``name`` and the stages it copies from, transitively, in order."""
        self.validate()
        wanted = {name}
        target = self.stage(name)
        todo = [target]
        while todo:
            stage = todo.pop()
            for files in stage.files:
                if files.from_stage and files.from_stage not in wanted:
                    wanted.add(files.from_stage)
                    todo.append(self.stage(files.from_stage))
        return attrs.evolve(self, stages=tuple(s for s in self.stages if s.name in wanted))
