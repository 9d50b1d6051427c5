"""``Sections``, ``Stage`` and ``Recipe``: how values compose into a .def.

``stage + sections`` (or ``stage + block``) merges sections in; ``recipe + stage``
appends a stage. Every operation returns a new value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from ..errors import DefError, Origin
from ._values import BuildArg, as_tuple, check_body, instance, origin_field, tuple_of
from .header import Header
from .sections import (
    EMPTY_SCRIPT,
    LABELS_CHECK,
    SCRIPT_CHECK,
    App,
    Environment,
    Files,
    Label,
    Script,
    to_environment,
    to_files_list,
    to_help,
    to_labels,
    to_script,
)

__all__ = ["Base", "Block", "Recipe", "Sections", "Stage"]


def _build_args(
    value: BuildArg | Mapping[str, str | None] | Iterable[BuildArg] | None,
) -> tuple[BuildArg, ...]:
    if value is None:
        return ()
    if isinstance(value, BuildArg):
        return (value,)
    if isinstance(value, Mapping):
        return tuple(BuildArg(k, v) for k, v in value.items())
    return as_tuple(value)


def _apps(value: App | Iterable[App] | None) -> tuple[App, ...]:
    if value is None:
        return ()
    if isinstance(value, App):
        return (value,)
    return as_tuple(value)


@attrs.frozen(kw_only=True)
class Sections:
    """The sections of a stage, without a header: what building blocks return.

    ``stage + sections`` merges them in: scripts and environments are appended,
    labels override by key, ``%files`` and apps are added; two non-empty
    ``%runscript``/``%startscript``/``%help`` are a conflict (use ``replace``).
    """

    arguments: tuple[BuildArg, ...] = attrs.field(
        default=(),
        converter=_build_args,
        validator=tuple_of(BuildArg, "a mapping or a list of BuildArg"),
    )
    pre: Script = attrs.field(default=EMPTY_SCRIPT, converter=to_script, validator=SCRIPT_CHECK)
    setup: Script = attrs.field(default=EMPTY_SCRIPT, converter=to_script, validator=SCRIPT_CHECK)
    files: tuple[Files, ...] = attrs.field(
        default=(), converter=to_files_list, validator=tuple_of(Files, "Files or paths")
    )
    environment: Environment = attrs.field(factory=Environment, converter=to_environment)
    post: Script = attrs.field(default=EMPTY_SCRIPT, converter=to_script, validator=SCRIPT_CHECK)
    runscript: Script = attrs.field(
        default=EMPTY_SCRIPT, converter=to_script, validator=SCRIPT_CHECK
    )
    startscript: Script = attrs.field(
        default=EMPTY_SCRIPT, converter=to_script, validator=SCRIPT_CHECK
    )
    test: Script = attrs.field(default=EMPTY_SCRIPT, converter=to_script, validator=SCRIPT_CHECK)
    labels: tuple[Label, ...] = attrs.field(default=(), converter=to_labels, validator=LABELS_CHECK)
    help: str = attrs.field(default="", converter=to_help, validator=instance(str, "a str"))
    apps: tuple[App, ...] = attrs.field(
        default=(), converter=_apps, validator=tuple_of(App, "App or a list of App")
    )
    origin: Origin = origin_field()

    _APPENDED: ClassVar[tuple[str, ...]] = ("pre", "setup", "post", "test")
    _EXCLUSIVE: ClassVar[tuple[str, ...]] = ("runscript", "startscript", "help")

    def __attrs_post_init__(self) -> None:
        check_body(self.help, "%help", self.origin)

    def section_values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in attrs.fields(Sections) if f.name != "origin"}

    def merged(self, other: Sections) -> dict[str, Any]:
        """Field values of ``self`` with ``other`` merged in (see the class doc)."""
        out = self.section_values()
        for name in self._APPENDED:
            out[name] = out[name] + getattr(other, name)
        for name in self._EXCLUSIVE:
            new = getattr(other, name)
            if new and out[name]:
                raise DefError(
                    f"%{name} is already set in this stage; use .replace({name}=...) to override it"
                )
            if new:
                out[name] = new
        out["environment"] = self.environment + other.environment
        out["labels"] = to_labels(self.labels + other.labels)
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


@attrs.frozen(kw_only=True)
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

    header: Header = attrs.field(kw_only=False, validator=instance(Header, "a Header"))

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


#: A function that makes a base stage (``cuda_base``, ``pixi_base``...).
class Base(Protocol):
    """What the base-image blocks are: ``base(stage=...) -> Stage``."""

    def __call__(self, *, stage: str | None = ...) -> Stage: ...


def _stages(value: Stage | Iterable[Stage]) -> tuple[Stage, ...]:
    if isinstance(value, Stage):
        return (value,)
    return as_tuple(value)


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

    stages: tuple[Stage, ...] = attrs.field(
        converter=_stages, validator=tuple_of(Stage, "a Stage or a list of Stage")
    )
    origin: Origin = origin_field()

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
        return attrs.evolve(self, stages=tuple(new if s.name == name else s for s in self.stages))

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
