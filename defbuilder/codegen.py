"""Model -> a readable recipe script (``defbuilder parse app.def --to python``).

The script uses the DSL the way a person writes it (one variable per stage,
keyword arguments, mappings for labels and environments) and renders back to a
definition with the same meaning: bodies are kept verbatim (``verbatim=True``),
because re-indenting a script can change what a heredoc writes.
"""

from __future__ import annotations

import keyword

from .model import App, Environment, Export, FileEntry, Files, Header, Recipe, Script, Stage

__all__ = ["to_python"]

_INDENT = "    "


def _str(text: str) -> str:
    """A Python literal for ``text``; multi-line text as a triple-quoted string."""
    if ("\n" in text and '"""' not in text and "\\" not in text
            and all(c == "\n" or c.isprintable() for c in text)):
        return '"""\\\n' + text + '\\\n"""'
    return repr(text)


def _script(script: Script) -> str:
    args = [_str(script.body)]
    if script.shell is not None:
        args.append(f"shell={script.shell!r}")
        if not script.errexit:
            args.append("errexit=False")
    if script.args:
        args.append(f"args={script.args!r}")
    if script.verbatim:
        args.append("verbatim=True")
    return f"Script({', '.join(args)})"


def _header(header: Header) -> str:
    parts = [repr(header.bootstrap)]
    from .model import HEADER_KEYWORDS

    for field in HEADER_KEYWORDS:
        value = getattr(header, field)
        if value is not None:
            parts.append(f"{field}={value!r}")
    if header.other_urls:
        parts.append(f"other_urls={list(header.other_urls)!r}")
    if header.ignored:
        parts.append(f"ignored={[tuple(p) for p in header.ignored]!r}")
    return f"Header({', '.join(parts)})"


def _entry(e: FileEntry) -> str:
    return repr(e.src) if e.dst is None else f"({e.src!r}, {e.dst!r})"


def _files(files: Files) -> str:
    entries = ", ".join(_entry(e) for e in files.entries)
    if len(entries) > 60:
        pad = _INDENT * 2
        entries = "\n" + "".join(f"{pad}{_entry(e)},\n" for e in files.entries) + _INDENT
    extra = f", from_stage={files.from_stage!r}" if files.from_stage else ""
    return f"Files([{entries}]{extra})"


def _env(env: Environment) -> str:
    if all(isinstance(i, Export) for i in env.items):
        pairs = ", ".join(f"{i.name!r}: {str(i.value)!r}" for i in env.items
                          if isinstance(i, Export))
        return "{" + pairs + "}"
    parts = [_script(i) if isinstance(i, Script) else f"Export({i.name!r}, {str(i.value)!r})"
             for i in env.items]
    return f"Environment([{', '.join(parts)}])"


def _labels(labels: tuple) -> str:  # type: ignore[type-arg]
    return "{" + ", ".join(f"{lbl.key!r}: {str(lbl.value)!r}" for lbl in labels) + "}"


def _app(app: App) -> str:
    kw = [repr(app.name)]
    for part in ("install", "run", "start", "test"):
        script: Script = getattr(app, part)
        if script:
            kw.append(f"{part}={_script(script)}")
    if app.env:
        kw.append(f"env={_env(app.env)}")
    if app.labels:
        kw.append(f"labels={_labels(app.labels)}")
    if app.files:
        kw.append(f"files=[{', '.join(_entry(e) for e in app.files)}]")
    if app.help:
        kw.append(f"help={_str(app.help)}")
    return f"App({', '.join(kw)})"


def _var(stage: Stage, index: int, used: set[str]) -> str:
    base = stage.name or f"stage{index}"
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in base).lower() or "stage"
    if name[0].isdigit() or keyword.iskeyword(name) or name in {"recipe", "render"}:
        name = "stage_" + name
    while name in used:
        name += "_"
    used.add(name)
    return name


def _stage(stage: Stage) -> list[str]:
    kw: list[str] = [_header(stage.header)]
    if stage.arguments:
        args = ", ".join(f"BuildArg({a.name!r}, {a.default!r})" for a in stage.arguments)
        kw.append(f"arguments=[{args}]")
    for name in ("pre", "setup"):
        if getattr(stage, name):
            kw.append(f"{name}={_script(getattr(stage, name))}")
    if len(stage.files) == 1:
        kw.append(f"files={_files(stage.files[0])}")
    elif stage.files:
        kw.append("files=[\n" + "".join(f"{_INDENT * 2}{_files(f)},\n" for f in stage.files)
                  + f"{_INDENT}]")
    if stage.environment:
        kw.append(f"environment={_env(stage.environment)}")
    for name in ("post", "runscript", "startscript", "test"):
        if getattr(stage, name):
            kw.append(f"{name}={_script(getattr(stage, name))}")
    if stage.labels:
        kw.append(f"labels={_labels(stage.labels)}")
    if stage.help:
        kw.append(f"help={_str(stage.help)}")
    if stage.apps:
        kw.append("apps=[\n" + "".join(f"{_INDENT * 2}{_app(a)},\n" for a in stage.apps)
                  + f"{_INDENT}]")
    return kw


def to_python(recipe: Recipe, source: str | None = None) -> str:
    """A recipe script that renders to a definition with the same meaning as ``recipe``."""
    lines = [f'"""Recipe converted from {source or "a definition file"} by '
             '`defbuilder parse --to python`."""', "",
             "from defbuilder import (App, BuildArg, Environment, Export, Files, Header, "
             "Recipe, Script,", "                        Stage)", ""]
    used: set[str] = set()
    names = []
    for i, stage in enumerate(recipe.stages):
        var = _var(stage, i, used)
        names.append(var)
        lines.append(f"{var} = Stage(")
        lines += [f"{_INDENT}{part}," for part in _stage(stage)]
        lines += [")", ""]
    lines.append(f"recipe = Recipe([{', '.join(names)}])")
    return "\n".join(lines) + "\n"
