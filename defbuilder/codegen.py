"""Model -> a readable recipe script: the one code generator.

``defbuilder parse app.def --to python`` and ``defbuilder from-dockerfile`` both
write their script here. It uses the DSL the way a person writes it (one variable
per stage, keyword arguments, mappings for labels and environments, building
blocks added with ``+``) and, run as a recipe, renders to the same bytes as the
model it was written from. Scripts of a parsed .def stay verbatim
(``verbatim=True``): re-indenting a script can change what a heredoc writes.

What it must not do: quote shell text (the model and ``defbuilder.render`` do
that), build Python by formatting anything but model values, or execute what it
writes. Variable names come from ``identifier`` only, and the script imports
exactly the names it uses.

>>> from defbuilder import Header, Recipe, Stage
>>> from defbuilder.blocks import Entrypoint
>>> stage = Composed(Stage(Header.docker("alpine:3.20", stage="class")), [Entrypoint(["top"])])
>>> print(to_python([stage], "Dockerfile", command="from-dockerfile"), end="")
\"\"\"Recipe converted from Dockerfile by `defbuilder from-dockerfile`.\"\"\"
<BLANKLINE>
from defbuilder import Header, Recipe, Stage
from defbuilder.blocks import Entrypoint
<BLANKLINE>
class_ = Stage(
    Header('docker', from_='alpine:3.20', stage='class'),
) + Entrypoint(['top'])
<BLANKLINE>
recipe = Recipe([class_])
"""

from __future__ import annotations

import builtins
import importlib
import keyword
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import attrs

from .model._values import BuildArg, clean_body
from .model.header import HEADER_KEYWORDS, Header
from .model.sections import App, Environment, Export, FileEntry, Files, Label, Script
from .model.stage import Block, Recipe, Sections, Stage

__all__ = ["Call", "Composed", "identifier", "to_python"]

_INDENT = "    "
#: Names a stage variable must not take: ``recipe`` (what the loader reads) and the
#: builtins (``__debug__`` cannot even be assigned). Imported names are added per script.
_RESERVED = frozenset(dir(builtins)) | {"recipe"}


def identifier(name: str, taken: Collection[str] = ()) -> str:
    """A valid Python identifier for the stage called ``name``, unlike any in ``taken``.

    Characters other than ASCII letters, digits and ``_`` become ``_``; a leading digit
    or ``__`` gets a ``stage`` prefix; a keyword, builtin or ``recipe`` gets a trailing
    ``_``; a name already taken gets ``_2``, ``_3``...

    >>> identifier("class"), identifier("3rd"), identifier("a-b", {"a_b"})
    ('class_', 'stage_3rd', 'a_b_2')
    """
    base = (
        "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name.lower())
        or "stage"
    )
    if base[0].isdigit():
        base = "stage_" + base
    elif base.startswith("__"):
        base = "stage" + base
    if keyword.iskeyword(base) or base in _RESERVED:
        base += "_"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    return candidate


def _tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def _blocks(value: Iterable[Block]) -> tuple[Block, ...]:
    return tuple(value)


@attrs.frozen
class Call:
    """A section that a plain function writes: ``Sections(post=function(*args))``.

    For helpers that return a section body rather than a block
    (``defbuilder.blocks.pixi.static_activation``); the generated script keeps the
    call, not the text it returned. ``function`` must be a module-level function.
    """

    function: Callable[..., Any]
    args: tuple[Any, ...] = attrs.field(default=(), converter=_tuple)
    section: str = "post"

    def sections(self) -> Sections:
        return Sections(**{self.section: self.function(*self.args)})


@attrs.frozen
class Composed:
    """A stage written as ``base + block + ...``: the blocks stay calls in the script.

    ``comment`` is written above the stage (``FROM image (line 3)``).

    >>> from defbuilder import Header, Stage
    >>> from defbuilder.blocks import Entrypoint
    >>> Composed(Stage(Header.docker("alpine")), [Entrypoint(["top"])]).stage.runscript.body
    'exec top "$@"'
    """

    base: Stage
    blocks: tuple[Block, ...] = attrs.field(default=(), converter=_blocks)
    comment: str = ""

    @property
    def stage(self) -> Stage:
        """``base`` with every block added, in order: what the script's expression builds."""
        stage = self.base
        for block in self.blocks:
            stage = stage + block
        return stage


def _public_module(obj: Any) -> str:
    """The shortest module path that exports ``obj`` in its ``__all__``."""
    name = obj.__name__
    parts = str(obj.__module__).split(".")
    for i in range(1, len(parts) + 1):
        module = importlib.import_module(".".join(parts[:i]))
        if name in getattr(module, "__all__", ()) and getattr(module, name, None) is obj:
            return module.__name__
    return str(obj.__module__)


_EXPORT = re.compile(r"export ([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
_QUOTED = re.compile(r"'([^']*)'|\\'|([A-Za-z0-9_@+=:,./-]+)")


def _sh_value(word: str) -> str | None:
    """The value of a word written the way ``render.sh_quote`` writes one: bare safe
    characters, ``'...'`` and ``\\'``; ``None`` for anything else."""
    out, pos = [], 0
    while pos < len(word):
        m = _QUOTED.match(word, pos)
        if m is None:
            return None
        out.append(m.group(1) if m.group(1) is not None else m.group(2) or "'")
        pos = m.end()
    return "".join(out)


def _as_exports(item: Export | Script) -> list[Export | Script]:
    """A plain ``%environment`` script of ``export NAME=value`` lines as ``Export``
    values, when each line is exactly what ``render.export_line`` writes for it (so
    the script renders the same bytes); otherwise the script as it is.

    >>> _as_exports(Script("export A=1\\nexport B='x y'"))
    [Export(name='A', value='1'), Export(name='B', value='x y')]
    """
    from .render import export_line

    if isinstance(item, Export) or item.shell is not None or item.args:
        return [item]
    exports: list[Export | Script] = []
    for line in item.body.split("\n"):
        m = _EXPORT.fullmatch(line)
        value = _sh_value(m.group(2)) if m else None
        if m is None or value is None:
            return [item]
        export = Export(m.group(1), value)
        if export_line(export) != line:
            return [item]
        exports.append(export)
    return exports or [item]


def _safe_triple(text: str) -> bool:
    return '"""' not in text and all(c in "\n\t" or c.isprintable() for c in text)


def _escaped(text: str) -> str:
    """``text`` as the inside of a plain ``\"\"\"`` string: backslashes doubled,
    characters that are not printable (but newline and tab) as escapes, and no three
    quotes in a row."""
    out = "".join(
        "\\\\" if c == "\\" else c if c in "\n\t" or c.isprintable() else repr(c)[1:-1]
        for c in text
    )
    return out.replace('"""', '""\\"')


def _raw(text: str) -> str | None:
    """``text`` as a raw triple-quoted string, when one holds it exactly: printable (but
    newline and tab), not ending in a backslash, and with ``\"\"\"`` or ``'''`` free to
    close it (not in the text, nor its last character)."""
    if text.endswith("\\") or not all(c in "\n\t" or c.isprintable() for c in text):
        return None
    for quotes in ('"""', "'''"):
        if quotes not in text and not text.endswith(quotes[0]):
            return "r" + quotes + text + quotes
    return None


def _str(text: str, indent: str | None = None) -> str:
    """A Python literal for ``text``; multi-line text as a triple-quoted string.

    With ``indent`` (the text goes through ``clean_body``, which dedents), multi-line
    text is written indented one level deeper than ``indent``; otherwise exactly: as a
    raw string where the text has backslashes and one holds it, else starting on the
    line after the opening quotes, with backslashes and quotes escaped
    (tests/test_parse.py shows both).
    """
    if "\n" not in text:
        return repr(text)
    if indent is not None:
        if text != text.strip("\n") or any(ln and not ln.strip() for ln in text.split("\n")):
            return repr(text)  # clean_body would drop these; keep them exactly
        pad = indent + _INDENT
        raw = "\\" in text and _safe_triple(text)
        if not raw:
            text = _escaped(text)
        body = "\n".join(pad + ln if ln else "" for ln in text.split("\n"))
        return ("r" if raw else "") + '"""\n' + body + "\n" + indent + '"""'
    if "\\" in text and (raw_text := _raw(text)) is not None:
        return raw_text
    return '"""\\\n' + _escaped(text) + '\\\n"""'


def _one_a_line(items: Iterable[str], indent: str) -> str:
    """The inside of a bracket for ITEMS written one a line, each one level deeper than
    ``indent`` and followed by a comma; the closing bracket goes back to ``indent``."""
    pad = indent + _INDENT
    return "\n" + "".join(f"{pad}{item},\n" for item in items) + indent


class _Writer:
    """Python expressions for model values; remembers the names they need imported."""

    def __init__(self) -> None:
        self.imports: dict[str, dict[str, Any]] = {}

    def ref(self, obj: Any) -> str:
        name = str(obj.__name__)
        module = _public_module(obj)
        for other_module, names in self.imports.items():
            if name in names and names[name] is not obj:
                raise TypeError(f"two objects named {name} ({other_module}, {module})")
        self.imports.setdefault(module, {})[name] = obj
        return name

    def import_lines(self) -> list[str]:
        lines = []
        for module in sorted(self.imports):
            names = sorted(self.imports[module])
            line = f"from {module} import {', '.join(names)}"
            if len(line) > 100:
                line = f"from {module} import ({_one_a_line(names, '')})"
            lines.append(line)
        return lines

    def literal(self, value: Any) -> str:
        """Plain data (str, numbers, lists, tuples, dicts) and ``BuildArg`` values."""
        if value is None or isinstance(value, (str, bool, int, float)):
            return repr(value)
        if isinstance(value, BuildArg):
            args = [repr(value.name)] + ([repr(value.default)] if value.default is not None else [])
            return f"{self.ref(BuildArg)}({', '.join(args)})"
        if isinstance(value, list):
            return "[" + ", ".join(self.literal(v) for v in value) + "]"
        if isinstance(value, tuple):
            items = [self.literal(v) for v in value]
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if isinstance(value, dict):
            return (
                "{"
                + ", ".join(f"{self.literal(k)}: {self.literal(v)}" for k, v in value.items())
                + "}"
            )
        raise TypeError(f"codegen cannot write {type(value).__name__} values")

    # -- sections -----------------------------------------------------------

    def script(self, script: Script, indent: str | None = None) -> str:
        args = [_str(script.body, None if script.verbatim else indent)]
        if script.shell is not None:
            args.append(f"shell={script.shell!r}")
            if not script.errexit:
                args.append("errexit=False")
        if script.args:
            args.append(f"args={script.args!r}")
        if script.verbatim:
            args.append("verbatim=True")
        return f"{self.ref(Script)}({', '.join(args)})"

    def scripts(
        self, value: App | Sections, names: tuple[str, ...], indent: str | None = None
    ) -> list[str]:
        """``NAME=Script(...)`` for each script NAME of ``value`` that is not empty."""
        return [
            f"{name}={self.script(script, indent)}"
            for name in names
            if (script := getattr(value, name))
        ]

    def help(self, text: str) -> str:
        """``%help`` text: a plain str when the model's dedent keeps it as it is,
        otherwise ``Script(text, verbatim=True)`` (indentation is part of the help)."""
        if clean_body(text) == text:
            return _str(text)
        return self.script(Script(text, verbatim=True))

    def header(self, header: Header) -> str:
        parts = [repr(header.bootstrap)]
        for field in HEADER_KEYWORDS:
            value = getattr(header, field)
            if value is not None:
                parts.append(f"{field}={self.literal(value)}")
        if header.other_urls:
            parts.append(f"other_urls={list(header.other_urls)!r}")
        if header.ignored:
            parts.append(f"ignored={[tuple(p) for p in header.ignored]!r}")
        return f"{self.ref(Header)}({', '.join(parts)})"

    def entry(self, e: FileEntry) -> str:
        return repr(e.src) if e.dst is None else f"({e.src!r}, {e.dst!r})"

    def files(self, files: Files, indent: str) -> str:
        entries = ", ".join(self.entry(e) for e in files.entries)
        if len(entries) > 60:
            entries = _one_a_line((self.entry(e) for e in files.entries), indent)
        extra = f", from_stage={files.from_stage!r}" if files.from_stage else ""
        return f"{self.ref(Files)}([{entries}]{extra})"

    def env(self, env: Environment, indent: str | None = None) -> str:
        env = Environment([e for item in env.items for e in _as_exports(item)])
        if all(isinstance(i, Export) for i in env.items):
            return (
                "{"
                + ", ".join(
                    f"{i.name!r}: {self.literal(i.value)}"
                    for i in env.items
                    if isinstance(i, Export)
                )
                + "}"
            )
        parts = []
        for item in env.items:
            if isinstance(item, Export):
                parts.append(f"{self.ref(Export)}({item.name!r}, {self.literal(item.value)})")
            elif item == Script(item.body):
                parts.append(_str(item.body))  # a plain line: Environment makes it a Script
            else:
                parts.append(self.script(item))
        joined = ", ".join(parts)
        if indent is not None and len(joined) > 60 and all("\n" not in p for p in parts):
            joined = _one_a_line(parts, indent)
        return f"{self.ref(Environment)}([{joined}])"

    def labels(self, labels: Iterable[Label]) -> str:
        return "{" + ", ".join(f"{lbl.key!r}: {self.literal(lbl.value)}" for lbl in labels) + "}"

    def app(self, app: App) -> str:
        kw = [repr(app.name), *self.scripts(app, ("install", "run", "start", "test"))]
        if app.env:
            kw.append(f"env={self.env(app.env)}")
        if app.labels:
            kw.append(f"labels={self.labels(app.labels)}")
        if app.files:
            kw.append(f"files=[{', '.join(self.entry(e) for e in app.files)}]")
        if app.help:
            kw.append(f"help={self.help(app.help)}")
        return f"{self.ref(App)}({', '.join(kw)})"

    def sections(self, s: Sections, indent: str) -> list[str]:
        """Keyword arguments for the non-empty sections of ``s``, in render's order."""
        inner = indent + _INDENT
        kw: list[str] = []
        if s.arguments:
            kw.append(f"arguments=[{', '.join(self.literal(a) for a in s.arguments)}]")
        kw += self.scripts(s, ("pre", "setup"), indent)
        if len(s.files) == 1:
            kw.append(f"files={self.files(s.files[0], indent)}")
        elif s.files:
            kw.append(f"files=[{_one_a_line((self.files(f, inner) for f in s.files), indent)}]")
        if s.environment:
            kw.append(f"environment={self.env(s.environment, indent)}")
        kw += self.scripts(s, ("post", "runscript", "startscript", "test"), indent)
        if s.labels:
            kw.append(f"labels={self.labels(s.labels)}")
        if s.help:
            kw.append(f"help={self.help(s.help)}")
        if s.apps:
            kw.append(f"apps=[{_one_a_line((self.app(a) for a in s.apps), indent)}]")
        return kw

    # -- blocks -------------------------------------------------------------

    def block(self, block: Block) -> str:
        if isinstance(block, Call):
            fn = block.function
            if "." in getattr(fn, "__qualname__", "."):
                raise TypeError(f"codegen can only call module-level functions, not {fn!r}")
            call = f"{self.ref(fn)}({', '.join(self.literal(a) for a in block.args)})"
            return f"{self.ref(Sections)}({block.section}={call})"
        if isinstance(block, Sections) and not isinstance(block, Stage):
            return f"{self.ref(Sections)}({', '.join(self.sections(block, ''))})"
        if not attrs.has(type(block)):
            raise TypeError(f"codegen cannot write a {type(block).__name__} block")
        args: list[str] = []
        cls: Any = type(block)
        for i, field in enumerate(attrs.fields(cls)):
            if not field.init or not field.eq:
                continue
            value = getattr(block, field.name)
            default: Any = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory(block) if default.takes_self else default.factory()
            if default is not attrs.NOTHING and value == default:
                continue
            text = self.literal(value)
            args.append(text if i == 0 else f"{field.alias}={text}")
        return f"{self.ref(type(block))}({', '.join(args)})"

    def stage(self, composed: Composed) -> list[str]:
        lines = [f"# {ln}".rstrip() for ln in composed.comment.splitlines()]
        lines.append(f"{self.ref(Stage)}(")
        parts = [self.header(composed.base.header), *self.sections(composed.base, _INDENT)]
        lines += [f"{_INDENT}{part}," for part in parts]
        lines.append(")" + "".join(f" + {self.block(b)}" for b in composed.blocks))
        return lines


def _docstring(text: str) -> str:
    return (
        f'"""{text}"""' if _safe_triple(text) and not {'"', "\\", "\n"} & set(text) else repr(text)
    )


def to_python(
    recipe: Recipe | Sequence[Stage | Composed],
    source: str | None = None,
    *,
    command: str = "parse --to python",
) -> str:
    """A recipe script that builds ``recipe`` and renders to the same bytes.

    ``recipe`` is a ``Recipe`` or its stages, each a ``Stage`` or a ``Composed`` (a base
    stage and the building blocks added to it, written as ``Stage(...) + Block(...)``).
    ``source`` and ``command`` name what was converted, by which command, in the
    script's docstring.
    """
    stages = recipe.stages if isinstance(recipe, Recipe) else recipe
    composed = [s if isinstance(s, Composed) else Composed(s) for s in stages]
    writer = _Writer()
    bodies = [writer.stage(c) for c in composed]
    recipe_name = writer.ref(Recipe)
    taken = set(_RESERVED)
    for names in writer.imports.values():
        taken |= set(names)
    wanted = [c.base.name or f"stage{i}" for i, c in enumerate(composed)]
    variables: list[str | None] = [None] * len(wanted)
    for exact in (True, False):  # names that are already identifiers keep them
        for i, name in enumerate(wanted):
            if variables[i] is None and (identifier(name) == name) == exact:
                var = identifier(name, taken)
                variables[i] = var
                taken.add(var)
    doc = f"Recipe converted from {source or 'a definition file'} by `defbuilder {command}`."
    lines = [_docstring(doc), "", *writer.import_lines(), ""]
    for variable, body in zip(variables, bodies, strict=True):
        at = next(i for i, ln in enumerate(body) if not ln.startswith("#"))
        body[at] = f"{variable} = {body[at]}"
        lines += [*body, ""]
    lines.append(f"recipe = {recipe_name}([{', '.join(str(v) for v in variables)}])")
    return "\n".join(lines) + "\n"
