"""Shared pieces of the model: names, build arguments, origins, body text, and the
converter/validator pair every constructor argument goes through.

A converter (typed precisely, so ``mypy --strict`` checks callers) normalises what
it recognises and hands anything else through unchanged; the field's validator then
reports it as ``FIELD: expected WHAT, got TYPE`` at the user's line. Validators use
the value's own ``origin``, so no caller has to catch and re-raise.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import attrs

from ..apptainer import (
    has_placeholder,
    has_stage_or_section_line,
    is_section_line,
    is_stage_start,
)
from ..errors import DefError, Origin, caller_origin

__all__ = ["BuildArg", "Value", "check_body", "clean_body", "has_placeholder"]

# Validation uses str methods, sets and the patterns of ``defbuilder.apptainer``, not
# patterns compiled here at import: the model is on the CLI's start-up path
# (see bench/render_latency.py).
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _ALNUM | {"_"}
_TOKEN_CHARS = _ALNUM | set("_.+-")


def is_shell_name(name: str) -> bool:
    """``[A-Za-z_][A-Za-z0-9_]*``."""
    return bool(name) and set(name) <= _NAME_CHARS and not name[0].isdigit()


def is_arg_name(name: str) -> bool:
    """``\\w+`` in Go's RE2 (ASCII): what a ``{{ NAME }}`` placeholder can hold."""
    return bool(name) and set(name) <= _NAME_CHARS


def is_token(name: str) -> bool:
    """Stage and app names: ``[A-Za-z0-9_.+-]+``."""
    return bool(name) and set(name) <= _TOKEN_CHARS


def origin_field() -> Any:
    """The ``origin`` every model value carries: where the user made it."""
    return attrs.field(factory=caller_origin, eq=False, repr=False, kw_only=True)


# ---------------------------------------------------------------------------
# Converters and validators
# ---------------------------------------------------------------------------


def type_name(value: object) -> str:
    return type(value).__name__


def as_tuple(value: object) -> tuple[Any, ...]:
    """A list/tuple/other iterable as a tuple; a str, bytes, mapping or non-iterable
    is handed through unchanged for the field's validator to report."""
    if type(value) is tuple:
        return value
    if type(value) is list:
        return tuple(value)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return cast(tuple[Any, ...], value)
    return tuple(value)


def tuple_of(kind: type | tuple[type, ...], what: str) -> Callable[[Any, Any, Any], None]:
    """Validator: the field holds a tuple of ``kind`` (after conversion)."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, tuple):
            bad = next((v for v in value if not isinstance(v, kind)), None)
            if bad is None:
                return
            got = f"a list holding {type_name(bad)} {bad!r}"
        else:
            got = type_name(value)
        raise DefError(f"{attribute.name}: expected {what}, got {got}", origin=instance.origin)

    return check


def instance(kind: type | tuple[type, ...], what: str) -> Callable[[Any, Any, Any], None]:
    """Validator: the field holds a ``kind`` (after conversion)."""

    def check(inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, kind):
            raise DefError(
                f"{attribute.name}: expected {what}, got {type_name(value)}", origin=inst.origin
            )

    return check


def construct(cls: type[T], /, **fields: Any) -> T:
    """An instance of the attrs class ``cls`` from values already in their final
    form, without its converters and type validators; its value rules
    (``__attrs_post_init__``) still run.

    For ``parse``, which builds many small values whose types it decides itself:
    a 50 MB file holds hundreds of thousands of them (bench/parse_scaling.py).
    tests/test_parse.py rebuilds every parsed value through its public
    constructor and compares, so a value made here is one the constructor makes.
    """
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _Plan(cls)
    if not fields.keys() <= plan.known:
        unknown = set(fields) - plan.known
        raise TypeError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}")
    for name in plan.required:
        if name not in fields:
            raise TypeError(f"{cls.__name__}: {name} is required")
    obj = object.__new__(cls)
    setter = _SETATTR.__get__(obj)
    # every field, given or default, set by loops that run in C (setattr returns None,
    # so any() goes through them all)
    any(map(setter, plan.names, map(fields.get, plan.names, plan.defaults)))
    for name, factory in plan.factories:
        if name not in fields:
            setter(name, factory())
    if plan.post_init:
        obj.__attrs_post_init__()  # type: ignore[attr-defined]
    return obj


T = TypeVar("T")


class _Plan:
    """What ``construct`` needs to know of a class, worked out once."""

    __slots__ = ("defaults", "factories", "known", "names", "post_init", "required")

    def __init__(self, cls: type) -> None:
        init = [a for a in attrs.fields(cls) if a.init]
        #: Every init field and its default (a factory's is replaced afterwards).
        self.names = tuple(a.name for a in init)
        self.defaults = tuple(a.default for a in init)
        self.known = frozenset(self.names)
        self.factories: list[tuple[str, Callable[[], Any]]] = []
        self.required: list[str] = []
        for a in init:
            default = a.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                if default.takes_self:
                    raise TypeError(f"{cls.__name__}.{a.name}: a factory taking self")
                self.factories.append((a.name, default.factory))
            elif default is attrs.NOTHING:
                self.required.append(a.name)
        self.post_init = hasattr(cls, "__attrs_post_init__")


_SETATTR = object.__setattr__
_PLANS: dict[type, _Plan] = {}


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

    name: str
    default: str | None = None
    origin: Origin = origin_field()

    def __attrs_post_init__(self) -> None:
        value: object = self.name
        if not isinstance(value, str) or not is_arg_name(value):
            raise DefError(
                f"build argument name {value!r} is invalid: Apptainer only matches "
                "{{ NAME }} with NAME made of letters, digits and _",
                origin=self.origin,
            )

        value = self.default
        if value is not None and not isinstance(value, str):
            raise DefError(
                f"default of build argument {self.name}: expected a str, got {type_name(value)}",
                origin=self.origin,
            )
        if value is not None and ("\n" in value or "\r" in value):
            raise DefError(
                f"default of build argument {self.name} contains a newline; "
                "%arguments holds one NAME=value per line",
                origin=self.origin,
            )

    def __str__(self) -> str:
        return "{{ " + self.name + " }}"

    @property
    def placeholder(self) -> str:
        return str(self)


Value = str | BuildArg


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
    lines = textwrap.dedent(text).split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(line.rstrip() if not line.strip() else line for line in lines)


def trim_end(text: str) -> str:
    """Drop trailing blank lines only (leading ones matter: a blank line above a
    runscript's ``#!`` makes Apptainer ignore it). A ``\\r`` at a line end is kept:
    it is part of the line (``render`` writes it so that Apptainer keeps it)."""
    last = len(text.rstrip())  # the end of the last line that is not blank
    if last == 0:
        return ""
    cut = text.find("\n", last)
    return text if cut < 0 else text[:cut]


def check_body(
    text: str, what: str, origin: Origin | None = None, *, first_line: int | None = None
) -> None:
    """Reject body lines that Apptainer's parser would not keep in the section.

    A line whose first word starts with ``%`` starts a new section, and a line
    matching ``(?mi)^bootstrap:`` a new stage (``defbuilder.apptainer``).
    ``first_line``: the file line of the body's first line (a .def being parsed):
    the error then names the line itself.
    """
    if "\x00" not in text and (
        ("%" not in text and ":" not in text) or not has_stage_or_section_line(text)
    ):
        return  # searched in C (a section line needs a %, a stage start a :)
    for n, line in enumerate(text.split("\n"), start=1):
        if first_line is not None:
            origin = Origin(origin.file if origin else None, first_line + n - 1)
        if is_section_line(line):
            raise DefError(
                f"{what}, body line {n} ({line.strip()!r}) starts with '%': Apptainer "
                "would read it as a new section header; indent does not help, "
                "rewrite it (e.g. quote it or use printf)",
                origin=origin,
            )
        if is_stage_start(line):
            raise DefError(
                f"{what}, body line {n} starts with 'Bootstrap:', which starts a new "
                "stage in Apptainer; indent it",
                origin=origin,
            )
        if "\x00" in line:
            raise DefError(f"{what}, body line {n} contains a NUL byte", origin=origin)
