"""The ``defbuilder`` command line. Thin: parse arguments, call the library, print.

User mistakes (``DefError``) print one ``file:line: message`` line and exit 2;
``--debug`` shows the traceback too. Imports stay lazy: ``render`` must start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import DefError

__all__ = ["main", "write_atomic"]

EXIT_USER_ERROR = 2


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory and a rename.

    On any error the temp file is removed and ``path`` is left as it was.
    """
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".defbuilder-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _emit(text: str, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(output, text)


def _cmd_render(args: argparse.Namespace) -> int:
    from .loader import load_recipe, parse_sets
    from .render import render

    recipe = load_recipe(args.recipe, parse_sets(args.set))
    if args.stage:
        recipe = recipe.select(args.stage)
    text = render(recipe)
    if args.check:
        try:
            with open(args.check, encoding="utf-8") as fh:
                current = fh.read()
        except FileNotFoundError:
            raise DefError("file does not exist; render it first", file=args.check) from None
        if current != text:
            print(
                f"{args.check}: stale; re-run: defbuilder render {args.recipe} -o {args.check}",
                file=sys.stderr,
            )
            return 1
        return 0
    _emit(text, args.output)
    return 0


def _read_def(path: str, sets: list[str] | None) -> str:
    """A .def file's text, or the rendering of a recipe script."""
    if path.endswith(".py"):
        from .loader import load_recipe, parse_sets
        from .render import render

        return render(load_recipe(path, parse_sets(sets)))
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise DefError(f"cannot read: {exc.strerror}", file=path) from None


def _cmd_try(args: argparse.Namespace) -> int:
    import tempfile

    from . import runtime

    text = _read_def(args.file, args.set)
    rest = list(args.args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    binds: dict[str, str] = {}
    for item in args.bind or ():
        cpath, sep, hpath = item.partition("=")
        if not sep or not os.path.exists(hpath):
            raise DefError(f"--bind {item!r}: expected CONTAINER_PATH=EXISTING_HOST_PATH")
        binds[cpath] = os.path.abspath(hpath)
    with tempfile.TemporaryDirectory(prefix="defbuilder-try-") as tmp:
        image = runtime.unpack(text, tmp, stage=args.stage, files=binds, file=args.file)
        if args.show:
            for rel in ("runscript", "startscript", "test", "env/90-environment.sh"):
                path = image.meta / rel
                if path.exists():
                    print(f"==> /.singularity.d/{rel} <==")
                    print(path.read_text(), end="")
            return 0
        if not runtime.available():
            raise DefError("`defbuilder try` needs Linux mount namespaces (unshare), which "
                           "this machine does not allow; use --show to see the scripts")
        proc = image.popen(args.action, rest, sh=args.shell, app=args.app)
        return proc.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="defbuilder",
        description="Compose Apptainer definition files from Python recipes.",
    )
    parser.add_argument("--version", action="version", version=f"defbuilder {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks for user errors as well"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    render = sub.add_parser("render", help="render a recipe script to a .def file")
    render.add_argument("recipe", help="recipe script (a .py file defining `recipe`)")
    render.add_argument("-o", "--output", help="write here (atomically) instead of stdout")
    render.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="recipe parameter, converted with recipe()'s annotations (repeatable)",
    )
    render.add_argument(
        "--stage", metavar="NAME", help="only this stage and the stages it copies from"
    )
    render.add_argument(
        "--check",
        metavar="DEF",
        help="exit 1 if DEF differs from what the recipe renders (nothing is written)",
    )
    render.set_defaults(func=_cmd_render)

    try_ = sub.add_parser(
        "try",
        help="perform run/exec/shell/test/start as Apptainer would, without building",
        description="Write what Apptainer would put in /.singularity.d for FILE's last stage "
        "and perform ACTION with it on this machine's own tools (docs/runtime.md).",
    )
    try_.add_argument("file", help="a .def file or a recipe script (.py)")
    try_.add_argument("action", choices=["run", "exec", "shell", "test", "start"])
    try_.add_argument("args", nargs=argparse.REMAINDER, help="arguments (after --)")
    try_.add_argument("--stage", help="stage to enter (default: the last)")
    try_.add_argument("--shell", default="dash",
                      help="what /bin/sh is in the image: dash (Ubuntu) or bash (RHEL)")
    try_.add_argument("--app", help="SCIF app (like apptainer --app)")
    try_.add_argument("--bind", action="append", metavar="CPATH=HOSTPATH",
                      help="make HOSTPATH appear at CPATH (e.g. /app=./build/app)")
    try_.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="recipe parameter when FILE is a recipe script")
    try_.add_argument("--show", action="store_true",
                      help="print the generated scripts instead of running")
    try_.set_defaults(func=_cmd_try)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except DefError as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"defbuilder: error: {exc.format(relative_to=os.getcwd())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:
        return 1


def run() -> None:  # pragma: no cover - console entry
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
