"""Load a recipe script: a Python file that defines ``recipe``.

``recipe`` is a ``Recipe`` (or a ``Stage``), or a function ``recipe(**params)``
returning one. ``--set key=value`` strings are converted with the function's
annotations (int, float, bool, str, ``packaging.version.Version``, and
``Literal[...]``, whose values are the only ones accepted).

Every user mistake becomes a ``DefError`` naming the recipe file and line; this
module must not import anything heavy (it runs on every CLI call).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any

from .errors import DefError, Terminated
from .model import Recipe, Stage

__all__ = ["check_keys", "convert_param", "load_module", "load_recipe", "parse_sets"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _user_frame(exc: BaseException, path: str) -> int | None:
    """The last line of ``path`` in the traceback of ``exc``."""
    import traceback

    line = None
    real = os.path.realpath(path)
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.realpath(frame.filename) == real:
            line = frame.lineno
    return line


def _def_file_error(path: str) -> DefError:
    """A .def handed where a recipe script belongs: say so and what to run instead."""
    from .render import sh_quote

    quoted = sh_quote(path)
    return DefError(
        "this is an Apptainer definition file, not a recipe script (a .py file defining "
        f"`recipe`); `defbuilder parse {quoted}` turns it into one, "
        f"`defbuilder lint {quoted}` checks it",
        file=path,
    )


def _callee(name: str, namespaces: list[dict[str, Any]]) -> Any:
    """The callable a TypeError names (``Stage.__init__``, ``cuda_base``), looked up in
    the caller's namespaces, then in defbuilder's public API; ``None`` if not found."""
    import importlib

    parts = name.split(".")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or "<" in name:
        return None
    for module in ("defbuilder", "defbuilder.blocks"):
        namespaces = [*namespaces, vars(importlib.import_module(module))]
    for namespace in namespaces:
        obj: Any = namespace.get(parts[0])
        for part in parts[1:]:
            obj = getattr(obj, part, None)
        if obj is not None and callable(obj):
            return obj
    return None


def _keyword_line(file: str, line: int, keyword: str) -> int:
    """The line of ``keyword=`` in the call that failed at ``file:line``."""
    import ast

    try:
        with open(file, "rb") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return line
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.lineno <= line <= (node.end_lineno or line):
            for kw in node.keywords:
                if kw.arg == keyword:
                    return kw.lineno
    return line


def _unexpected_keyword(exc: BaseException) -> DefError | None:
    """``Stage(postt=...)``: name the argument, suggest the closest one, and point at the
    line of the misspelt keyword in the user's code (not at defbuilder's)."""
    import inspect
    import re
    import traceback

    from .errors import did_you_mean, is_user_file

    match = re.fullmatch(
        r"(?P<fn>[\w.<>]+)\(\) got an unexpected keyword argument '(?P<kw>\w+)'", str(exc)
    )
    if not isinstance(exc, TypeError) or match is None:
        return None
    frame = None
    tb = exc.__traceback__
    while tb is not None:  # the innermost frame of user code: the call site
        if is_user_file(tb.tb_frame.f_code.co_filename):
            frame = tb
        tb = tb.tb_next
    if frame is None:
        return None
    file = frame.tb_frame.f_code.co_filename
    line = traceback.extract_tb(frame, limit=1)[0].lineno or frame.tb_lineno
    keyword, name = match["kw"], match["fn"]
    shown = name[: -len(".__init__")] if name.endswith(".__init__") else name
    callee = _callee(name, [frame.tb_frame.f_locals, frame.tb_frame.f_globals])
    hint = ""
    if callee is not None:
        try:
            params = list(inspect.signature(callee).parameters.values())
        except (TypeError, ValueError):  # a builtin without a signature
            params = []
        names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        hint = did_you_mean(keyword, names) or (
            f"; {shown}() takes: {', '.join(names)}" if names else ""
        )
    return DefError(
        f"{shown}() has no argument `{keyword}`{hint}",
        file=file,
        line=_keyword_line(file, line, keyword),
    )


@contextlib.contextmanager
def running_recipe(path: str) -> Iterator[None]:
    """Run recipe code without letting it change what the command does.

    ``print`` in a recipe goes to stderr (stdout carries the rendered .def or a lint
    report); the working directory is restored afterwards (a recipe's ``os.chdir``
    must not move ``-o`` or the next file of ``lint``); ``sys.exit`` in a recipe is a
    user error that names the recipe's line, not the command's own exit status.
    """
    cwd = os.getcwd()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except Terminated:
        raise
    except SystemExit as exc:
        raise DefError(
            f"the recipe called sys.exit({exc.code!r}); a recipe defines `recipe` and "
            "returns, it does not exit",
            file=path,
            line=_user_frame(exc, path),
        ) from None
    finally:
        if os.getcwd() != cwd:
            os.chdir(cwd)


def load_module(path: str) -> ModuleType:
    """Execute a recipe file as a fresh module; its directory is importable.

    Like ``python recipe.py``, the recipe itself is compiled without writing a
    ``__pycache__`` next to it (modules it imports are cached as usual).
    """
    try:
        with open(path, "rb") as fh:
            source = fh.read()
    except FileNotFoundError:
        raise DefError("no such recipe file", file=path) from None
    except IsADirectoryError:
        raise DefError(
            "is a directory; give the recipe script in it (e.g. DIR/recipe.py)", file=path
        ) from None
    except OSError as exc:
        raise DefError(f"cannot read recipe: {exc.strerror}", file=path) from None
    if path.lower().endswith(".def"):
        raise _def_file_error(path)
    directory = os.path.dirname(os.path.abspath(path))
    name = "defbuilder_recipe_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    module = ModuleType(name)
    module.__file__ = os.path.abspath(path)
    sys.modules[name] = module  # dataclasses/attrs in a recipe look their module up
    sys.path.insert(0, directory)
    try:
        code = compile(source, module.__file__, "exec", dont_inherit=True)
        with running_recipe(path):
            exec(code, module.__dict__)
    except DefError:
        raise
    except Exception as exc:
        from .apptainer import STAGE_START

        if STAGE_START.search(source.decode("utf-8", "replace")) and not isinstance(
            exc, ImportError
        ):
            # `Bootstrap: docker` is even valid Python (an annotation): any failure
            # of a file with a .def header means the wrong kind of file was given.
            raise _def_file_error(path) from exc
        if isinstance(exc, SyntaxError):
            raise DefError(
                f"syntax error in recipe: {exc.msg}", file=exc.filename or path, line=exc.lineno
            ) from exc
        error = _unexpected_keyword(exc)
        if error is not None:
            raise error from exc
        raise DefError(
            f"the recipe raised {type(exc).__name__}: {exc}",
            file=path,
            line=_user_frame(exc, path),
        ) from exc
    finally:
        if sys.path and sys.path[0] == directory:
            del sys.path[0]
    return module


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")


def convert_param(text: str, annotation: Any) -> Any:
    """Convert a ``--set`` string to the annotated type.

    >>> convert_param("3", int), convert_param("no", bool)
    (3, False)
    >>> str(convert_param("12.9", __import__("packaging.version").version.Version))
    '12.9'
    >>> from typing import Literal
    >>> convert_param("pixi", Literal["cuda", "pixi"])
    'pixi'
    >>> convert_param("foo", Literal["cuda", "pixi"])
    Traceback (most recent call last):
    ...
    defbuilder.loader.ChoiceError: expected one of: cuda, pixi
    >>> prune = bool | Literal["strict"]
    >>> convert_param("strict", prune), convert_param("no", prune)
    ('strict', False)
    """
    if annotation in (None, Any, str, "str"):
        return text
    if _is_literal(annotation):
        return _choice(text, annotation.__args__)
    if annotation is bool:
        return _bool(text)
    if annotation in (int, float):
        return annotation(text)
    args = getattr(annotation, "__args__", None)
    if args and type(None) in args:  # Optional[X] / X | None
        rest = [a for a in args if a is not type(None)]
        if text.lower() in ("none", ""):
            return None
        if len(rest) == 1:
            return convert_param(text, rest[0])
    if args and _is_union(annotation):  # X | Y: the first member that takes the text
        for member in args:
            if member is type(None):
                continue
            try:
                return convert_param(text, member)
            except (ValueError, TypeError):
                continue
        raise ChoiceError("expected " + " or ".join(_describe(a) for a in args))
    if isinstance(annotation, type):
        module = annotation.__module__
        if module.startswith("packaging"):
            from packaging.version import InvalidVersion, Version

            if issubclass(annotation, Version):
                try:
                    return annotation(text)
                except InvalidVersion as exc:
                    raise ValueError(f"not a version: {exc}") from None
        return annotation(text)
    raise ValueError(f"cannot convert to {annotation!r}")


def check_keys(
    path: str, variable: str, mapping: Mapping[str, Any], allowed: Iterable[str]
) -> None:
    """Refuse a key of a recipe's module-level dict (e.g. ``job``) that is not in
    ``allowed``, with the closest allowed key and the line of the misspelt key.

    >>> check_keys("recipe.py", "job", {"image": "a.sif"}, ["image", "name"])
    >>> check_keys("no-such.py", "job", {"imag": "a.sif"}, ["image", "name"])
    Traceback (most recent call last):
    ...
    defbuilder.errors.DefError: no-such.py: `job` has no key 'imag'; did you mean `image`?
    """
    from .errors import did_you_mean

    known = list(allowed)
    for key in mapping:
        if key not in known:
            hint = did_you_mean(str(key), known) or f"; keys: {', '.join(known)}"
            raise DefError(
                f"`{variable}` has no key {key!r}{hint}",
                file=path,
                line=_key_line(path, variable, str(key)),
            )


def _key_line(path: str, variable: str, key: str) -> int | None:
    """The line of ``key`` in ``variable = {...}`` (or of that assignment) in ``path``."""
    import ast

    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return None
    found = None
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        targets = node.targets if isinstance(node, ast.Assign) else [target]
        if not any(isinstance(t, ast.Name) and t.id == variable for t in targets):
            continue
        found = node.lineno  # the last assignment wins, as when the module runs
        value = getattr(node, "value", None)
        if isinstance(value, ast.Dict):
            for k in value.keys:
                if isinstance(k, ast.Constant) and k.value == key:
                    found = k.lineno
        elif isinstance(value, ast.Call):
            for kw in value.keywords:  # job = dict(imag=...)
                if kw.arg == key:
                    found = kw.lineno
    return found


class ChoiceError(ValueError):
    """A ``--set`` value that is not one of a ``Literal[...]``'s values."""


def _is_literal(annotation: Any) -> bool:
    import typing

    return typing.get_origin(annotation) is typing.Literal


def _is_union(annotation: Any) -> bool:
    import types
    import typing

    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _describe(annotation: Any) -> str:
    """``bool`` -> "true/false"; ``Literal["a", "b"]`` -> "a, b"; else the type's name."""
    if annotation is bool:
        return "true/false"
    if _is_literal(annotation):
        return ", ".join(str(c) for c in annotation.__args__)
    if annotation is type(None):
        return "none"
    return str(getattr(annotation, "__name__", annotation))


def _choice(text: str, choices: tuple[Any, ...]) -> Any:
    """The value of ``choices`` that ``text`` spells (a bool, int or float choice is
    compared as that type), else ``ChoiceError`` listing them."""
    for choice in choices:
        try:
            if isinstance(choice, bool):
                value: Any = _bool(text)
            elif isinstance(choice, (int, float)):
                value = type(choice)(text)
            else:
                value = text
        except ValueError:
            continue
        if value == choice and type(value) is type(choice):
            return choice
    raise ChoiceError("expected one of: " + ", ".join(str(c) for c in choices))


def parse_sets(sets: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; later keys win."""
    out: dict[str, str] = {}
    for item in sets or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DefError(f"--set {item!r}: expected key=value")
        out[key.strip()] = value
    return out


def _call(fn: Callable[..., Any], params: Mapping[str, str], path: str) -> Any:
    import inspect
    import typing

    code = getattr(fn, "__code__", None)
    def_line = code.co_firstlineno if code else None
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    accepted = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    kwargs: dict[str, Any] = {}
    for key, text in params.items():
        if key not in accepted:
            raise DefError(
                f"--set {key}: unknown parameter; recipe() accepts: "
                + (", ".join(accepted) or "no parameters"),
                file=path,
                line=def_line,
            )
        annotation = hints.get(key, sig.parameters[key].annotation)
        if annotation is inspect.Parameter.empty:
            default = sig.parameters[key].default
            annotation = type(default) if default not in (inspect.Parameter.empty, None) else str
        try:
            kwargs[key] = convert_param(text, annotation)
        except ChoiceError as exc:
            raise DefError(
                f"--set {key}={text!r}: not an allowed value; {exc}",
                file=path,
                line=def_line,
            ) from None
        except (ValueError, TypeError) as exc:
            name = getattr(annotation, "__name__", str(annotation))
            raise DefError(
                f"--set {key}={text!r}: cannot convert to {name}: {exc}",
                file=path,
                line=def_line,
            ) from None
    try:
        return fn(**kwargs)
    except DefError:
        raise
    except TypeError as exc:
        error = _unexpected_keyword(exc)
        if error is not None:
            raise error from exc
        line = _user_frame(exc, path)
        raise DefError(f"calling recipe(): {exc}", file=path, line=line or def_line) from exc
    except Exception as exc:
        raise DefError(
            f"recipe() raised {type(exc).__name__}: {exc}",
            file=path,
            line=_user_frame(exc, path) or def_line,
        ) from exc


def load_recipe(path: str, params: Mapping[str, str] | None = None) -> Recipe:
    """Load ``path`` and return its ``Recipe`` (calling ``recipe(**params)`` if needed)."""
    module = load_module(path)
    obj = getattr(module, "recipe", None)
    if obj is None:
        raise DefError(
            "no `recipe` defined: the file must define `recipe`, a Recipe or a function "
            "returning one",
            file=path,
        )
    if callable(obj) and not isinstance(obj, (Recipe, Stage)):
        with running_recipe(path):
            obj = _call(obj, params or {}, path)
    elif params:
        raise DefError(
            f"--set given ({', '.join(params)}) but `recipe` is not a function, so it takes "
            "no parameters",
            file=path,
        )
    if isinstance(obj, Stage):
        obj = Recipe([obj])
    if not isinstance(obj, Recipe):
        raise DefError(
            f"`recipe` must be a Recipe or Stage (or return one), got {type(obj).__name__}",
            file=path,
        )
    return obj
