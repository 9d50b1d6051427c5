"""``Header``: the keywords above a stage's first section (``Bootstrap:``, ``From:``...).

Which keywords exist and which agent reads which are Apptainer's decisions and live
in ``defbuilder.apptainer``; this module maps them to typed fields and checks the
values Apptainer's header reader would cut or misread.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Mapping
from itertools import compress
from typing import Any

import attrs

from ..apptainer import (
    AGENTS,
    HEADER_KEYWORD_SPELLING,
    REQUIRED_KEYS,
    agent_reads,
    go_trim,
    is_valid_header_key,
)
from ..errors import DefError, Origin
from ._values import BuildArg, Value, as_tuple, is_token, origin_field, tuple_of, type_name

__all__ = ["AGENTS", "HEADER_KEYWORDS", "Header"]

#: Header field name -> the keyword written in the .def, in canonical order.
HEADER_KEYWORDS: Mapping[str, str] = {
    field: HEADER_KEYWORD_SPELLING[key]
    for field, key in (
        ("from_", "from"),
        ("stage", "stage"),
        ("registry", "registry"),
        ("namespace", "namespace"),
        ("include_cmd", "includecmd"),
        ("library", "library"),
        ("fingerprints", "fingerprints"),
        ("mirror_url", "mirrorurl"),
        ("update_url", "updateurl"),
        ("os_version", "osversion"),
        ("include", "include"),
        ("setopt", "setopt"),
        ("conf_url", "confurl"),
        ("product", "product"),
        ("user", "user"),
        ("regcode", "regcode"),
        ("product_pgp", "productpgp"),
        ("register_url", "registerurl"),
        ("modules", "modules"),
        ("target", "target"),
        ("frontend", "frontend"),
        ("filename", "filename"),
        ("build_args", "buildargs"),
    )
}


_KEYWORDS = tuple(HEADER_KEYWORDS.values())
#: All keyword fields in one call (the header is made once per stage; parse makes many).
_get_fields = operator.attrgetter(*HEADER_KEYWORDS)


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return as_tuple(value)


def _pair_tuple(value: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    items = as_tuple(value)
    if not isinstance(items, tuple):
        return items
    return tuple(tuple(p) if isinstance(p, list) else p for p in items)


def _check_pairs(instance: Header, attribute: attrs.Attribute[Any], value: Any) -> None:
    tuple_of(tuple, "a list of (keyword, value) pairs")(instance, attribute, value)
    for pair in value:
        if len(pair) != 2 or not all(isinstance(p, str) for p in pair):
            raise DefError(
                f"{attribute.name}: expected (keyword, value) pairs of str, got {pair!r}",
                origin=instance.origin,
            )


def _check_value(key: str, value: object, origin: Origin) -> None:
    if not isinstance(value, (str, BuildArg)):
        raise DefError(
            f"header {key}: expected a str or BuildArg, got {type_name(value)}", origin=origin
        )
    text = str(value)
    if "\n" in text or "\r" in text:
        raise DefError(f"header {key}: value contains a newline", origin=origin)
    if "#" in text:
        # deffile.go doHeader: `strings.Split(line, "#")[0]` cuts the value at '#'.
        raise DefError(
            f"header {key}: value {text!r} contains '#', which Apptainer cuts off", origin=origin
        )
    if text != go_trim(text) or not text:  # doHeader trims with strings.TrimSpace
        raise DefError(
            f"header {key}: value {text!r} is empty or has surrounding spaces", origin=origin
        )
    if text.endswith("\\"):
        raise DefError(
            f"header {key}: a trailing backslash continues the line in Apptainer", origin=origin
        )


@attrs.frozen
class Header:
    """The keywords above the first section: ``Bootstrap:``, ``From:``, ``Stage:``...

    Each agent reads its own keywords; giving one the agent ignores is an error here
    (Apptainer would silently ignore it). ``include_cmd`` is accepted but has no
    effect in Apptainer (no bootstrap agent reads it).

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
    other_urls: tuple[str, ...] = attrs.field(
        default=(), converter=_str_tuple, validator=tuple_of(str, "a list of str")
    )
    #: Keywords Apptainer accepts but this agent does not read (a parsed .def keeps
    #: them; ``defbuilder lint`` reports them): ``(("Registry", "x"),)``.
    ignored: tuple[tuple[str, str], ...] = attrs.field(
        default=(), converter=_pair_tuple, validator=_check_pairs
    )
    origin: Origin = origin_field()
    _known: tuple[tuple[str, Value], ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_known", self._keyword_values())
        if self.bootstrap not in AGENTS:
            # conveyorPacker.go: the Bootstrap value is matched case-sensitively.
            raise DefError(
                f"unknown Bootstrap: {self.bootstrap!r}; Apptainer knows "
                + ", ".join(sorted(AGENTS)),
                origin=self.origin,
            )
        if self.include_cmd is not None and not isinstance(self.include_cmd, bool):
            raise DefError(
                f"include_cmd: expected a bool, got {type_name(self.include_cmd)}",
                origin=self.origin,
            )
        present = set()
        for key, value in self.known_items():
            if not agent_reads(self.bootstrap, key):
                raise DefError(
                    f"{key}: is not read by Bootstrap: {self.bootstrap} "
                    f"(it reads: {', '.join(sorted(AGENTS[self.bootstrap])) or 'nothing'})",
                    origin=self.origin,
                )
            _check_value(key, value, self.origin)
            present.add(key.lower())
        for key, value in self.ignored:
            if not is_valid_header_key(key.lower()):
                raise DefError(f"invalid header keyword found: {key}", origin=self.origin)
            _check_value(key, value, self.origin)
            present.add(key.lower())
        for needed in REQUIRED_KEYS.get(self.bootstrap, ()):
            if needed not in present:
                raise DefError(
                    f"Bootstrap: {self.bootstrap} needs {HEADER_KEYWORD_SPELLING[needed]}:",
                    origin=self.origin,
                )
        if self.stage is not None and not (isinstance(self.stage, str) and is_token(self.stage)):
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
        return iter(self._known)

    def _keyword_values(self) -> tuple[tuple[str, Value], ...]:
        values = _get_fields(self)
        # the set keywords picked in C (a header sets few of them): those with a true
        # value, unless a set value is false ("", include_cmd) or a bool to spell
        pairs = list(compress(zip(_KEYWORDS, values, strict=True), values))
        if self.include_cmd is not None or len(pairs) != len(values) - values.count(None):
            pairs = [
                (k, ("yes" if v else "no") if isinstance(v, bool) else v)
                for k, v in zip(_KEYWORDS, values, strict=True)
                if v is not None
            ]
        if self.other_urls:
            pairs += [(f"OtherURL{i}", url) for i, url in enumerate(self.other_urls)]
        return tuple(pairs)

    def arg_values(self) -> Iterator[BuildArg]:
        """The ``BuildArg`` values used in this header."""
        for _k, value in self.items():
            if isinstance(value, BuildArg):
                yield value
