"""Load a recipe script: a Python file that defines ``recipe``.

``recipe`` is a ``Recipe`` (or a ``Stage``), or a function ``recipe(**params)``
returning one. ``--set key=value`` strings are converted with the function's
annotations (int, float, bool, str, ``packaging.version.Version``).

Every user mistake becomes a ``DefError`` naming the recipe file and line; this
module must not import anything heavy (it runs on every CLI call).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from .errors import DefError
from .model import Recipe, Stage

__all__ = ["convert_param", "load_module", "load_recipe", "parse_sets"]

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


def load_module(path: str) -> ModuleType:
    """Execute a recipe file as a fresh module; its directory is importable.

    Like ``python recipe.py``, the recipe itself is compiled without writing a
    ``__pycache__`` next to it (modules it imports are cached as usual).
    """
    try:
        with open(path, "rb") as fh:
            source = fh.read()
    except (FileNotFoundError, IsADirectoryError):
        raise DefError("no such recipe file", file=path) from None
    except OSError as exc:
        raise DefError(f"cannot read recipe: {exc.strerror}", file=path) from None
    directory = os.path.dirname(os.path.abspath(path))
    name = "defbuilder_recipe_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    module = ModuleType(name)
    module.__file__ = os.path.abspath(path)
    sys.modules[name] = module  # dataclasses/attrs in a recipe look their module up
    sys.path.insert(0, directory)
    try:
        code = compile(source, module.__file__, "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except DefError:
        raise
    except SyntaxError as exc:
        raise DefError(
            f"syntax error in recipe: {exc.msg}", file=exc.filename or path, line=exc.lineno
        ) from exc
    except Exception as exc:
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
    """
    if annotation in (None, Any, str, "str"):
        return text
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
