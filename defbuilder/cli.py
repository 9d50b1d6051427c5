"""The ``defbuilder`` command line. Thin: parse arguments, call the library, print.

User mistakes (``DefError``) print one ``file:line: message`` line and exit 2;
``--debug`` shows the traceback too. Imports stay lazy: ``render`` must start fast.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import DefError, Terminated, entry_point, read_text

__all__ = ["main"]

EXIT_USER_ERROR = 2

#: What ``try --shell`` accepts: the /bin/sh of the image (dash on Debian and Ubuntu,
#: bash on RHEL and its rebuilds), or this machine's own ``sh``.
TRY_SHELLS = ("dash", "bash", "sh")


def _not_an_input(output: str | None, *inputs: str) -> None:
    """Refuse ``-o`` naming one of the command's own input files (it would be replaced
    by the output, e.g. a recipe by its .def)."""
    if not output or output == "-" or not os.path.exists(output):
        return
    for path in inputs:
        if os.path.exists(path) and os.path.samefile(output, path):
            raise DefError(f"-o {output!r} is the input file {path}: give another output file")


def _emit(text: str, output: str | None, *inputs: str) -> None:
    """Print ``text``, or write it to ``-o FILE`` by ``fileio``'s rules (a symbolic
    link is followed, a FIFO or device is written in place, a file keeps its mode)."""
    _not_an_input(output, *inputs)
    sys.stdout.flush()  # -o /dev/stdout writes to descriptor 1 after what was printed
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from .fileio import write_output  # only when writing a file: not on render's path

        write_output(output, text)


def _cmd_render(args: argparse.Namespace) -> int:
    from .loader import load_recipe, parse_sets
    from .render import render

    recipe = load_recipe(args.recipe, parse_sets(args.set))
    if args.stage:
        recipe = recipe.select(args.stage)
    text = render(recipe)
    if args.check:
        if not args.target:
            raise DefError(
                "--check needs the committed .def: defbuilder render --check recipe.py app.def"
            )
        if not os.path.exists(args.target):
            raise DefError("file does not exist; render it first", file=args.target)
        # Byte for byte: no newline translation (a CRLF copy is not the rendered file).
        if read_text(args.target, newline="") != text:
            from .render import sh_quote

            again = ["defbuilder", "render", args.recipe]
            again += [w for kv in args.set or () for w in ("--set", kv)]
            again += ["--stage", args.stage] if args.stage else []
            again += ["-o", args.target]
            print(
                f"{args.target}: stale; re-run: {' '.join(sh_quote(w) for w in again)}",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.target:
        raise DefError("a second file is only for --check; use -o to write")
    _emit(text, args.output, args.recipe)
    return 0


def _read_def(path: str, sets: list[str] | None) -> str:
    """A .def file's text, or the rendering of a recipe script."""
    if path.endswith(".py"):
        from .loader import load_recipe, parse_sets
        from .render import render

        return render(load_recipe(path, parse_sets(sets)))
    # No newline translation: Apptainer splits lines itself (apptainer.scan_lines), so a
    # lone CR is not a line break for parse and try, exactly as for lint.
    return read_text(path, newline="")


def _cmd_try(args: argparse.Namespace) -> int:
    import tempfile

    from . import runtime

    if args.shell not in TRY_SHELLS:
        raise DefError(
            f"--shell {args.shell!r}: expected {', '.join(TRY_SHELLS[:-1])} or {TRY_SHELLS[-1]} "
            "(what /bin/sh is in the image)"
        )
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
    with (
        runtime.forward_signals() as signals,
        tempfile.TemporaryDirectory(prefix="defbuilder-try-") as tmp,
    ):
        image = runtime.unpack(text, tmp, stage=args.stage, files=binds, file=args.file)
        if args.show:
            for shown, path in image.scripts(args.app):
                print(f"==> {shown} <==")
                print(read_text(str(path), newline=""), end="")
            return 0
        image.command(args.action, rest)  # an action it cannot perform: say so first
        if not runtime.available():
            raise DefError(
                "`defbuilder try` needs Linux mount namespaces (unshare), which "
                "this machine does not allow; use --show to see the scripts"
            )
        return signals.run(lambda: image.popen(args.action, rest, sh=args.shell, app=args.app))


def _cmd_condor(args: argparse.Namespace) -> int:
    from .condor import write_condor

    written = write_condor(
        args.recipe,
        args.output,
        {k[len("job_") :]: v for k, v in vars(args).items() if k.startswith("job_")},
        mode="dag" if args.dag else "build" if args.build else "job",
        keys=args.key or (),
        default_requirements=not args.no_default_requirements,
        staging=args.staging,
        osdf_prefix=args.osdf_prefix,
        sets=args.set,
        build_args=args.build_arg,
        resources={
            k[len("build_") :]: v for k, v in vars(args).items() if k.startswith("build_request_")
        },
    )
    for line in written.lines:
        print(line)
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from .images import build_recipe
    from .loader import parse_sets

    if args.hash_name and args.name_by == "inputs":
        raise DefError("--hash-name names the image by its content: not with --name-by inputs")
    if args.osdf_prefix and not args.staging:
        raise DefError("--osdf-prefix is the URL of --staging DIR: give --staging too")
    built = build_recipe(
        args.recipe,
        args.output,
        sets=parse_sets(args.set),
        build_args=args.build_arg or (),
        by_inputs=args.name_by == "inputs",
        hash_named=args.hash_name or args.name_by == "output",
        staging=args.staging,
        osdf_prefix=args.osdf_prefix,
        apptainer_args=args.apptainer_arg or (),
    )
    if built.error is not None:
        print(built.error, file=sys.stderr)
    if built.image is not None:
        print(built.image)
    return built.status


def _cmd_hash(args: argparse.Namespace) -> int:
    from .images import build_inputs, hash_name
    from .loader import parse_sets

    if args.inputs:
        print(build_inputs(args.image, parse_sets(args.set), args.build_arg or ()).name)
        return 0
    if args.set or args.build_arg:
        raise DefError("--set and --build-arg name a build's inputs: give --inputs RECIPE")
    print(hash_name(args.image))
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    import subprocess

    from .images import apptainer_binary, stage_image

    if not os.path.isfile(args.image):
        what = "is a directory, not an image" if os.path.isdir(args.image) else "no such image"
        raise DefError(what, file=args.image)
    if args.staging:
        if args.uri:
            raise DefError("give either a URI or --staging, not both")
        _path, url = stage_image(args.image, args.staging, args.osdf_prefix)
        print(url)
        return 0
    if not args.uri or not args.uri.startswith("oras://"):
        raise DefError("push needs an oras://registry/name:tag URI (or --staging DIR)")
    return subprocess.run([apptainer_binary(), "push", args.image, args.uri]).returncode


def _cmd_mimic(args: argparse.Namespace) -> int:
    import shlex

    from .images import apptainer_binary, chtc_exec_argv

    rest = list(args.command)
    if rest and rest[0] == "--":
        rest = rest[1:]
    binary = "apptainer" if args.print else apptainer_binary()
    argv = chtc_exec_argv(binary, args.image, rest, os.getcwd())
    if args.print:
        print(shlex.join(argv))
        return 0
    os.execv(argv[0], argv)
    return 1  # pragma: no cover


def _add_job_options(parser: argparse.ArgumentParser) -> None:
    """One option per CondorJob field, its help from the field's metadata."""
    import attrs

    from .condor import CondorJob, option_help, option_name

    for f in attrs.fields(CondorJob):
        if f.name == "extra":
            continue
        opt = option_name(f)
        dest = "job_" + f.name
        kind = str(f.type)
        text = option_help(f).replace("%", "%%")
        metavar = f.metadata["metavar"]
        if "tuple" in kind:
            parser.add_argument(opt, dest=dest, action="append", metavar=metavar, help=text)
        elif kind == "bool":
            parser.add_argument(
                opt, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        elif kind == "int":
            parser.add_argument(opt, dest=dest, type=int, metavar=metavar, help=text)
        else:
            parser.add_argument(opt, dest=dest, metavar=metavar, help=text)


def _cmd_parse(args: argparse.Namespace) -> int:
    from .codegen import to_python
    from .parse import parse
    from .render import render

    text = _read_def(args.file, None)
    warnings: list[str] = []
    recipe = parse(text, args.file, warnings)
    for w in warnings:
        print(f"defbuilder: warning: {w}", file=sys.stderr)
    out = to_python(recipe, os.path.basename(args.file)) if args.to == "python" else render(recipe)
    _emit(out, args.output, args.file)
    return 0


def _cmd_lint(args: argparse.Namespace) -> int:
    from .lint import lint_paths
    from .lint.discover import expand
    from .lint.engine import load_policy_file
    from .lint.output import to_json, to_sarif, to_text

    policy = load_policy_file(args.policy) if args.policy else None
    files, empty = expand(args.files)
    for directory in empty:
        print(
            f"defbuilder: warning: {directory}: no .def files or recipe scripts "
            "(recipe.py) to lint",
            file=sys.stderr,
        )
    findings = lint_paths(
        files,
        policy=policy,
        select=args.select.split(",") if args.select is not None else None,
        ignore=args.ignore.split(",") if args.ignore is not None else (),
        shellcheck=not args.no_shellcheck,
    )
    render_out = {"text": to_text, "json": to_json, "sarif": to_sarif}[args.format]
    _emit(render_out(findings), args.output, *files)
    not_linted = sorted({f.file for f in findings if f.rule.not_linted})
    if not_linted:
        print(
            f"defbuilder: error: {len(not_linted)} of {len(files)} files could not be "
            f"linted (DB000): {', '.join(not_linted)}",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    return 1 if findings else 0


def _cmd_from_dockerfile(args: argparse.Namespace) -> int:
    from .dockerfile import convert
    from .render import render

    conversion = convert(read_text(args.dockerfile), args.dockerfile)
    for warning in conversion.warnings:
        print(f"defbuilder: warning: {warning}", file=sys.stderr)
    # rendered either way: what the recipe would render to is checked before writing
    text = render(conversion.recipe)
    _emit(text if args.to_def else conversion.source, args.output, args.dockerfile)
    return 0


# Options several commands take: the same flag always takes the same kind of value (read
# by the same code), and each command says in its help what the value is for there.


def _add_set(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable): a parameter of the recipe function."""
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help=help)


def _add_build_arg(parser: argparse.ArgumentParser, help: str) -> None:
    """``--build-arg NAME=VALUE`` (repeatable): a value for one of the recipe's %arguments."""
    parser.add_argument("--build-arg", action="append", metavar="NAME=VALUE", help=help)


_OSDF_PREFIX_HELP = (
    "the URL of --staging DIR when it is not under /staging/ (e.g. osdf:///chtc/staging/USER)"
)


def _add_staging(
    parser: argparse.ArgumentParser, help: str, osdf_help: str = _OSDF_PREFIX_HELP
) -> None:
    """``--staging DIR`` and ``--osdf-prefix URL``: where an image is staged, and the
    osdf:/// URL of that directory when it is not CHTC's /staging/."""
    parser.add_argument("--staging", metavar="DIR", help=help)
    parser.add_argument("--osdf-prefix", metavar="URL", help=osdf_help)


def _add_output(parser: argparse.ArgumentParser, help: str) -> None:
    """``-o FILE``: written through fileio (atomically) instead of stdout."""
    parser.add_argument("-o", "--output", metavar="FILE", help=help)


def _columns() -> int:
    """The terminal width, as ``shutil.get_terminal_size`` finds it ($COLUMNS, then the
    terminal on stdout, else 80), without importing shutil (and with it bz2, lzma...)
    on every command's start-up: argparse builds a help formatter for each option."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _HelpFormatter(argparse.HelpFormatter):
    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser (and its subcommands' parsers) with ``_HelpFormatter``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``command``, other commands' costly options are left out
    (``render`` is on the hot path: it must not import the condor module)."""
    parser = _Parser(
        prog="defbuilder",
        description="Compose Apptainer definition files (.def) from typed Python recipes, "
        "check them, and take them to a GPU job on an HTCondor cluster.",
        epilog="`defbuilder COMMAND --help` describes a command and its options. User "
        "mistakes are reported as `file:line: message` (or just the message, for a "
        "mistake in the arguments) with exit status 2.",
    )
    parser.add_argument("--version", action="version", version=f"defbuilder {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks for user errors as well"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="the command, one of:")
    sub.required = True

    render = sub.add_parser(
        "render",
        help="render a recipe script to a .def file",
        description="Run RECIPE and print the Apptainer .def it composes, byte-identical on "
        "every run (`apptainer build app.sif app.def` builds it). With -o the file is "
        "written atomically: a mistake never leaves a partial file. With --check, "
        "compare with a committed .def instead (exit 1 if it is stale).",
    )
    render.add_argument(
        "recipe",
        metavar="RECIPE",
        help="recipe script: a .py file defining `recipe`, a Recipe or Stage or a "
        "function returning one (e.g. recipes/hello_pytorch/recipe.py)",
    )
    render.add_argument(
        "target",
        nargs="?",
        metavar="TARGET",
        help="with --check only: the committed .def to compare with",
    )
    _add_output(render, "write the .def to FILE (atomically) instead of stdout")
    _add_set(
        render,
        "pass KEY=VALUE to the recipe function recipe(KEY=...), converted with its "
        "annotation (str, int, float, bool, Version, a Literal choice); repeatable, "
        "e.g. --set cuda=12.8 --set gpus=2",
    )
    render.add_argument(
        "--stage",
        metavar="NAME",
        help="render only stage NAME and the stages it copies from (%%files from)",
    )
    render.add_argument(
        "--check",
        action="store_true",
        help="compare TARGET with what RECIPE renders: exit 0 if equal, 1 if stale; "
        "nothing is written",
    )
    render.set_defaults(func=_cmd_render)

    parse_ = sub.add_parser(
        "parse",
        help="read a .def; write a recipe script or a normalized .def",
        description="Parse FILE with Apptainer's rules (errors name the "
        "line) and write it as a defbuilder recipe (--to python) or as "
        "defbuilder renders it (--to def).",
    )
    parse_.add_argument(
        "file",
        metavar="FILE",
        help="the .def to read (a recipe script, .py, is rendered first)",
    )
    parse_.add_argument(
        "--to",
        choices=["python", "def"],
        default="python",
        help="python: a recipe script that renders the same .def (default); def: the "
        ".def as defbuilder renders it",
    )
    _add_output(parse_, "write to FILE (atomically) instead of stdout")
    parse_.set_defaults(func=_cmd_parse)

    lint = sub.add_parser(
        "lint",
        help="find bugs in .def files and recipe scripts",
        description="Lint .def files, recipe scripts and directories (docs/lint.md). "
        "Exit status: 0 clean, 1 findings, 2 could not run or a file could not be "
        "linted (DB000).",
    )
    lint.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="a .def file, a recipe script (.py), or a directory: its *.def files and "
        "recipe.py scripts, skipping .git, virtual environments and git-ignored paths",
    )
    lint.add_argument(
        "--format",
        choices=["text", "json", "sarif"],
        default="text",
        help="report as `file:line: CODE [severity] message` lines (text, the default), "
        "JSON (defbuilder/lint/lint.schema.json), or SARIF 2.1.0 for code-scanning UIs",
    )
    lint.add_argument("-o", "--output", help="write the report here instead of stdout")
    lint.add_argument(
        "--select",
        metavar="CODES",
        help="only these rules, comma-separated, any case (e.g. DB101,db113); "
        "an unknown code is an error",
    )
    lint.add_argument(
        "--ignore",
        metavar="CODES",
        help="skip these rules, comma-separated, any case (e.g. DB122); an unknown code "
        "is an error",
    )
    lint.add_argument(
        "--policy",
        metavar="TOML",
        help="policy file (default: nearest defbuilder.toml / pyproject.toml)",
    )
    lint.add_argument(
        "--no-shellcheck",
        action="store_true",
        help="skip the shellcheck-based rules (DB110, DB111); without it, lint stops "
        "with an error when shellcheck cannot run",
    )
    lint.set_defaults(func=_cmd_lint)

    fromdf = sub.add_parser(
        "from-dockerfile",
        help="convert a Dockerfile to a recipe",
        description="Write a defbuilder recipe script (or, with --def, "
        "the .def) with Docker's exact ENTRYPOINT/CMD semantics; what "
        "Apptainer cannot honour is reported as a warning "
        "(docs/from-dockerfile.md).",
    )
    fromdf.add_argument(
        "dockerfile",
        metavar="DOCKERFILE",
        help="the Dockerfile to convert (a path; its FROM, RUN, COPY, ENV, ENTRYPOINT, "
        "CMD... become the recipe's stages and sections)",
    )
    _add_output(fromdf, "write to FILE (atomically) instead of stdout")
    fromdf.add_argument(
        "--def",
        dest="to_def",
        action="store_true",
        help="print the rendered .def instead of the recipe script",
    )
    fromdf.set_defaults(func=_cmd_from_dockerfile)

    try_ = sub.add_parser(
        "try",
        help="perform run/exec/shell/test/start as Apptainer would, without building",
        description="Write what Apptainer would put in /.singularity.d for FILE's last stage "
        "and perform ACTION with it on this machine's own tools (docs/runtime.md). "
        "Options for try go before FILE: everything after ACTION goes to the program, "
        "as with apptainer (`try --app train app.def run`, not `try app.def run --app "
        "train`).",
    )
    try_.add_argument("file", metavar="FILE", help="a .def file or a recipe script (.py) to enter")
    try_.add_argument(
        "action",
        metavar="ACTION",
        choices=["run", "exec", "shell", "test", "start"],
        help="what to perform, as `apptainer ACTION` would: run (the runscript), exec "
        "(ARGS as a command), shell, test (the %%test script) or start (the "
        "startscript, as `instance start` runs it)",
    )
    try_.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="arguments for ACTION, after `--` (e.g. `run -- --epochs 3`, `exec -- python -V`)",
    )
    try_.add_argument(
        "--stage", metavar="NAME", help="the stage to enter, by name (default: the last)"
    )
    try_.add_argument(
        "--shell",
        default="dash",
        metavar="SH",
        help="what /bin/sh is in the image: dash (Debian, Ubuntu; the default), bash "
        "(RHEL, Rocky, Alma) or sh (this machine's own /bin/sh)",
    )
    try_.add_argument(
        "--app",
        metavar="NAME",
        help="perform ACTION for the SCIF app NAME (%%apprun NAME...), like apptainer --app",
    )
    try_.add_argument(
        "--bind",
        action="append",
        metavar="CPATH=HOSTPATH",
        help="make HOSTPATH appear at CPATH (e.g. /app=./build/app)",
    )
    _add_set(
        try_,
        "when FILE is a recipe script: pass KEY=VALUE to recipe(), as render "
        "--set does (e.g. --set cuda=12.8; repeatable)",
    )
    try_.add_argument(
        "--show",
        action="store_true",
        help="print the scripts /.singularity.d would hold (runscript, startscript, test, "
        "environment) instead of running",
    )
    try_.set_defaults(func=_cmd_try)

    condor = sub.add_parser(
        "condor",
        help="write an HTCondor submit file and job wrapper",
        description="Write NAME.sub and its wrapper script for a "
        "container-universe GPU job (docs/chtc.md). Defaults come from "
        "CHTC's GPU Lab conventions, then the recipe's `job` dict, then "
        "these options.",
    )
    condor.add_argument(
        "recipe",
        metavar="RECIPE",
        help="recipe script whose `job` dict gives defaults (e.g. "
        "recipes/hello_pytorch/recipe.py), or a .def (no defaults)",
    )
    condor.add_argument(
        "-o",
        "--output",
        default=".",
        metavar="DIR",
        help="directory to write NAME.sub and the wrapper into, made if missing "
        "(default: the current directory)",
    )
    condor.add_argument(
        "--no-default-requirements",
        action="store_true",
        help="drop the default requirements (keep only --requirements)",
    )
    condor.add_argument(
        "--key",
        action="append",
        metavar="KEY=VALUE",
        help="any other submit key (repeatable): a submit command, or +NAME / MY.NAME for "
        "a job attribute; keys with their own option, queue and HTCondor's predefined "
        "macros are refused (e.g. --key '+AccountingGroup=\"lab\"')",
    )
    condor.add_argument(
        "--build",
        action="store_true",
        help="write a CHTC build job instead (NAME-build.sub, its wrapper, NAME.def and "
        "an interactive variant) that builds the image named by its inputs "
        "(`defbuilder hash --inputs`), tests it and places it in --staging DIR "
        "(docs/chtc-build.md)",
    )
    condor.add_argument(
        "--dag",
        action="store_true",
        help="write NAME.dag: BUILD (the build job, skipped when the image is staged) "
        "-> GPUCHECK (the image's GPU check on a GPU) -> RUN (this job, in that image); "
        "needs --staging (docs/chtc-build.md)",
    )
    _add_staging(
        condor,
        "with --build/--dag: where the build job places the image (e.g. /staging/USER); "
        "jobs fetch it from its osdf:/// URL",
    )
    _add_set(
        condor,
        "with --build/--dag: pass KEY=VALUE to the recipe function, as build --set "
        "does (repeatable; e.g. --set cuda=12.8)",
    )
    _add_build_arg(
        condor,
        "with --build/--dag: a value for one of the recipe's %%arguments, passed to "
        "apptainer build (e.g. --build-arg TAG=22.04)",
    )
    condor.add_argument(
        "--build-request-cpus",
        dest="build_request_cpus",
        type=int,
        metavar="N",
        help="CPU cores of the build job (default: 2, CHTC's build template)",
    )
    condor.add_argument(
        "--build-request-memory",
        dest="build_request_memory",
        metavar="QUANTITY",
        help="memory of the build job, a number with K/M/G/T (default: 6GB)",
    )
    condor.add_argument(
        "--build-request-disk",
        dest="build_request_disk",
        metavar="QUANTITY",
        help="disk of the build job, a number with K/M/G/T (default: 32GB; an image "
        "build unpacks every layer)",
    )
    if command in (None, "condor"):
        _add_job_options(condor)
    condor.set_defaults(func=_cmd_condor)

    build = sub.add_parser(
        "build",
        help="render and run `apptainer build`",
        description="Render RECIPE to a temporary .def beside it (so %files paths "
        "resolve), run `apptainer build` (or singularity) with the recipe's build "
        "arguments, and print the image path. Apptainer's progress goes to stderr. "
        "The temporary .def is removed afterwards, also on Ctrl-C or SIGTERM.",
    )
    build.add_argument(
        "recipe",
        metavar="RECIPE",
        help="recipe script to render and build (e.g. recipes/hello_pytorch/recipe.py)",
    )
    build.add_argument(
        "-o",
        "--output",
        metavar="IMAGE",
        help="image path (default: NAME.sif in the current directory, NAME being the "
        "recipe's directory for .../NAME/recipe.py, else the script's name)",
    )
    _add_set(
        build,
        "pass KEY=VALUE to the recipe function, as render --set does "
        "(repeatable; e.g. --set cuda=12.8)",
    )
    _add_build_arg(build, "value for one of the recipe's %%arguments")
    build.add_argument(
        "--hash-name",
        action="store_true",
        help="rename the image to NAME-<sha8>.sif (OSDF needs unique names)",
    )
    build.add_argument(
        "--name-by",
        choices=["inputs", "output"],
        help="inputs: name the image NAME-<8 hex>.sif by a hash of what the build reads "
        "(the .def, the %%files it copies, --set and --build-arg values; `defbuilder hash "
        "--inputs`), known before building, and skip the build when that image exists "
        "here or in --staging DIR; output: as --hash-name",
    )
    _add_staging(
        build,
        "copy the built image into DIR (as push --staging does) and print its "
        "osdf:/// URL instead of the path (e.g. /staging/USER)",
    )
    build.add_argument(
        "--apptainer-arg",
        action="append",
        metavar="ARG",
        help="extra argument for apptainer build (e.g. --fakeroot)",
    )
    build.set_defaults(func=_cmd_build)

    hash_ = sub.add_parser(
        "hash",
        help="print IMAGE's hash name, NAME-<sha8>.sif",
        description="Print the name IMAGE would have with the first 8 hex digits of its "
        "SHA-256 (what `openssl sha256 -r IMAGE | cut -b -8` gives): a new name for "
        "every new image, as OSDF's immutable caches need. Nothing is renamed.",
    )
    hash_.add_argument(
        "image",
        metavar="IMAGE",
        help="the built image, a .sif file (e.g. hello.sif); with --inputs, the recipe "
        "script (e.g. recipes/hello_pytorch/recipe.py)",
    )
    hash_.add_argument(
        "--inputs",
        action="store_true",
        help="print NAME-<8 hex>.sif for the image IMAGE (a recipe) would build, from a "
        "SHA-256 over the rendered .def, every local file its %%files copy, and the "
        "--set and --build-arg values: known before building (docs/chtc-build.md)",
    )
    _add_set(
        hash_,
        "with --inputs: pass KEY=VALUE to the recipe function, as build --set does "
        "(repeatable; e.g. --set cuda=12.8)",
    )
    _add_build_arg(hash_, "with --inputs: a build argument, as build --build-arg (e.g. TAG=22.04)")
    hash_.set_defaults(func=_cmd_hash)

    push = sub.add_parser(
        "push",
        help="apptainer push to oras://, or copy to a staging dir",
        description="Upload IMAGE with `apptainer push IMAGE oras://...`, or copy it into "
        "a staging directory and print the osdf:/// URL a submit file uses. A staged "
        "copy is checked first, written to a temp file, and published only under a "
        "free name: an existing different file of that name is never replaced (OSDF "
        "caches are immutable), an identical one is fine.",
    )
    push.add_argument(
        "image",
        metavar="IMAGE",
        help="the image to upload, a .sif file (e.g. hello-1a2b3c4d.sif)",
    )
    push.add_argument(
        "uri",
        nargs="?",
        metavar="URI",
        help="where to push: oras://REGISTRY/NAME:TAG (e.g. oras://ghcr.io/me/hello:1)",
    )
    _add_staging(
        push,
        "copy into DIR instead (e.g. /staging/USER) and print the osdf:/// URL",
        osdf_help="the URL of DIR when it is not under /staging/ (e.g. osdf:///chtc/staging/USER)",
    )
    push.set_defaults(func=_cmd_push)

    mimic = sub.add_parser(
        "mimic-chtc",
        help="run IMAGE as a CHTC job would see it",
        description="Run COMMAND in IMAGE with `apptainer exec` the way a CHTC job sees "
        "it: --containall, --no-home, --nv, scratch /tmp and /var/tmp, and only the "
        "current directory bound, as the job's working directory.",
    )
    mimic.add_argument("--print", action="store_true", help="print the command, do not run")
    mimic.add_argument(
        "image",
        metavar="IMAGE",
        help="the image to run: a .sif path (or any image apptainer exec accepts)",
    )
    mimic.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="COMMAND",
        help="the command to run, after `--` (default: bash; e.g. -- python -V)",
    )
    mimic.set_defaults(func=_cmd_mimic)
    for command_parser in sub.choices.values():  # `defbuilder render X --debug` works too
        command_parser.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks for user errors as well",
        )
    return parser


def _terminated(signum: int, _frame: object) -> None:
    """SIGTERM ends the command like Ctrl-C does: temporary files are removed, child
    processes stopped (each ``finally`` runs), exit status 128+15."""
    raise Terminated(128 + signum)


_SHOWN_WARNINGS: set[tuple[str, int, str]] = set()


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """Warnings (e.g. a recipe's missing pixi.lock) as ``defbuilder: warning: file:line:
    message``, like errors, each once even when a command loads the recipe twice."""
    key = (filename, lineno, str(message))
    if key in _SHOWN_WARNINGS:
        return
    _SHOWN_WARNINGS.add(key)
    where = f"{filename}:{lineno}: " if filename and lineno else ""
    print(f"defbuilder: warning: {where}{message}", file=sys.stderr)


@entry_point
def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the process-wide settings it makes (warning display, the
    SIGTERM handler) are put back afterwards, so ``main([...])`` can be called from a
    program or a test."""
    import warnings

    shown, terminate = warnings.showwarning, signal.getsignal(signal.SIGTERM)
    warnings.showwarning = _show_warning
    signal.signal(signal.SIGTERM, _terminated)  # so `finally` cleanup runs, as for Ctrl-C
    try:
        return _run(argv)
    finally:
        warnings.showwarning = shown
        signal.signal(signal.SIGTERM, terminate)


def _run(argv: Sequence[str] | None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((w for w in words if not w.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(words)
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
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # e.g. -o into a missing or read-only directory
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"defbuilder: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
