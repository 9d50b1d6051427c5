"""Dockerfile -> the recipe model and a readable recipe script (``defbuilder from-dockerfile``).

The Dockerfile is read with the ``dockerfile-parse`` package; instructions follow
Docker's reference (https://docs.docker.com/reference/dockerfile/). Each ``FROM ...
AS name`` becomes a ``Stage`` built with the DSL's own classes; the script is written
from that model by ``defbuilder.codegen.to_python`` (this module writes no Python and
quotes shell words only with ``defbuilder.render.sh_quote``). What Docker does is
kept, and what Apptainer cannot honour becomes a warning with the reason (never a
silent drop):

* ``RUN`` -> ``%post`` lines (shell form under ``/bin/sh``; after ``SHELL [...]``
  the section's ``-c`` shell). ``%post`` runs with ``-e``: a RUN like ``a; b``
  whose ``a`` fails stops the build here, where Docker would go on.
* ``ENV`` -> ``%environment`` and an ``export`` at that point of ``%post`` (Docker's
  ENV is visible to later RUNs; Apptainer's %environment is not visible in %post).
* ``ARG`` -> ``BuildArg`` (``%arguments`` default, ``{{ NAME }}`` in FROM) and a
  shell variable in ``%post`` (Docker exposes ARGs to RUN as variables).
* ``WORKDIR`` -> ``mkdir -p && cd`` in ``%post`` and, in the final stage, the
  runscript's working directory (Docker starts there); relative COPY
  destinations are resolved against it.
* ``COPY``/``ADD`` of local files -> ``%files`` (``--from=stage`` -> ``%files from``;
  ``--chmod``/``--chown`` -> ``chmod``/``chown`` in ``%post``). Apptainer copies all
  %files *before* %post runs: a COPY after a RUN is reported. ``ADD`` of a URL or
  a local archive -> explicit ``%post`` steps, with a warning.
* ``LABEL``/``MAINTAINER`` -> ``%labels``; ``ENTRYPOINT``/``CMD`` -> the
  ``Entrypoint`` block, kept as ``Stage(...) + Entrypoint(...)`` in the script.
* ``pixi shell-hook ... >> FILE`` in a RUN (an entrypoint that activates and
  execs) -> also a static activation file sourced by ``%environment`` in the
  stages that copy the environment, so ``apptainer exec``/``shell``/``test`` see it
  too (``defbuilder.blocks.pixi.static_activation``).
* ``USER``, ``EXPOSE``, ``VOLUME``, ``HEALTHCHECK``, ``STOPSIGNAL``, ``ONBUILD``, and a
  ``SHELL`` with options that ``%post`` cannot take: warnings.

Apptainer replaces ``{{ NAME }}`` in the whole definition before parsing it
(https://github.com/apptainer/apptainer/blob/v1.5.3/internal/pkg/build/args/reader.go,
``defbuilder.apptainer.PLACEHOLDER``); words this module writes
are quoted so that it cannot match, and Dockerfile text copied as is (a shell-form
RUN, a path, a label) that would match is reported.

>>> conv = convert("FROM alpine:3.20 AS class\\nCMD [\\"top\\"]\\n")
>>> conv.recipe.stages[0].name, "class_ = Stage(" in conv.source
('class', True)
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import shlex
from collections.abc import Callable

import attrs

from .apptainer import has_placeholder
from .blocks.entrypoint import Entrypoint
from .blocks.pixi import static_activation
from .codegen import Call, Composed, to_python
from .errors import DefError, Origin
from .model import (
    Block,
    BuildArg,
    Environment,
    EnvItem,
    Export,
    FileEntry,
    Files,
    Header,
    Label,
    Recipe,
    Script,
    Stage,
)
from .render import export_line, sh_quote

__all__ = ["Conversion", "convert"]

_KNOWN = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}
_UNSUPPORTED = {
    "USER": (
        "Apptainer runs every container as the calling user",
        "drop it; use --fakeroot at build time if %post needs root",
    ),
    "EXPOSE": (
        "Apptainer shares the host's network; there are no ports to publish",
        "document the port; start the service with `apptainer instance start`",
    ),
    "VOLUME": ("Apptainer has no volumes", "bind a host directory at run time: --bind DIR"),
    "HEALTHCHECK": ("Apptainer has no health checks", "put a check in %test"),
    "STOPSIGNAL": (
        "Apptainer sends SIGTERM to the container's process",
        "handle SIGTERM in the program",
    ),
    "ONBUILD": (
        "Apptainer has no build triggers",
        "add the steps to the recipe that builds on this one",
    ),
}
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz)$")
_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")
_DEFAULT_SHELL = ("/bin/sh", "-c")

Warn = Callable[[int, str], None]


@attrs.define
class _Stage:
    """What one ``FROM`` collects, in model values, until the stage is built."""

    header: Header
    image: str
    origin: Origin
    args: dict[str, BuildArg] = attrs.field(factory=dict)
    files: list[tuple[str | None, FileEntry]] = attrs.field(factory=list)  # (from, entry)
    env: list[EnvItem] = attrs.field(factory=list)
    post: list[str] = attrs.field(factory=list)
    labels: dict[str, Label] = attrs.field(factory=dict)
    entrypoint: list[str] | str | None = None
    cmd: list[str] | str | None = None
    shell: tuple[str, ...] = _DEFAULT_SHELL
    post_shell: str | None = None
    workdir: str | None = None
    ran: bool = False
    pixi_envs: list[tuple[str, str, str]] = attrs.field(factory=list)  # (env, manifest, out)

    @property
    def name(self) -> str | None:
        return self.header.stage

    @property
    def line(self) -> int:
        return self.origin.line or 1


@attrs.frozen
class Conversion:
    """A converted Dockerfile.

    ``recipe`` is the model; ``source`` the recipe script that builds it
    (``codegen.to_python``: it renders to the same bytes); ``warnings`` each
    ``file:line: text``.
    """

    recipe: Recipe
    source: str
    warnings: tuple[str, ...]


def _exec_form(value: str) -> list[str] | None:
    text = value.strip()
    if not text.startswith("["):
        return None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return None  # Docker runs invalid JSON as the shell form
    if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
        return parsed
    return None


def _flags(value: str) -> tuple[dict[str, str], list[str]]:
    words = shlex.split(value)
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        key, _, val = words.pop(0)[2:].partition("=")
        flags[key] = val
    return flags, words


def _expanding(value: str) -> str:
    """An ENV value that refers to variables, as one sh word that expands them.

    Docker substitutes ``$NAME``/``${NAME}`` in ENV (reference, "Environment
    replacement"); double quotes let sh do the same and keep spaces. ``sh_quote``
    writes literal words only, so this keeps its two .def rules itself: ``{{`` is
    split as ``{""{`` and a newline is followed by ``""``.

    >>> _expanding("/opt/bin:$PATH")
    '"/opt/bin:$PATH"'
    """
    inner = re.sub(r'(["\\`])', r"\\\1", value).replace("{{", '{""{')
    return '"' + inner.replace("\n", '\n""') + '"'


def _post_shell(form: list[str]) -> tuple[str | None, str | None]:
    """``SHELL [...]`` as ``%post -c SHELL``: the shell, or why it cannot be kept."""
    if tuple(form) == _DEFAULT_SHELL:
        return None, None
    if (
        len(form) == 2
        and form[1] == "-c"
        and form[0].startswith("/")
        and not any(c.isspace() for c in form[0])
    ):
        return form[0], None
    return None, (
        "%post can only name an interpreter (`%post -c /bin/bash` runs "
        "`/bin/bash -e script`), so RUN lines run under /bin/sh; the "
        "entrypoint's shell form keeps it"
    )


def convert(text: str, file: str = "Dockerfile") -> Conversion:
    """Convert Dockerfile text; errors name ``file:line``."""
    from dockerfile_parse import DockerfileParser
    from dockerfile_parse.util import extract_key_values

    parser = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8")))
    warnings: list[str] = []
    global_args: dict[str, str | None] = {}
    stages: list[_Stage] = []

    def warn(line: int, message: str) -> None:
        warnings.append(f"{file}:{line}: {message}")

    def placeholder(line: int, what: str, value: str) -> None:
        if has_placeholder(value):
            warn(
                line,
                f"{what} {value!r}: Apptainer replaces {{{{ NAME }}}} with a build "
                "argument in the whole definition before building; rename it",
            )

    for item in parser.structure:
        ins = item["instruction"].upper()
        line = item["startline"] + 1
        here = Origin(file, line)  # model values built from this instruction name it
        value = item["value"]
        if ins == "COMMENT":
            continue
        if ins not in _KNOWN:
            raise DefError(f"unknown instruction {item['instruction']!r}", file=file, line=line)
        if ins == "ARG":
            for key, default in _args(value, file, line):
                if not stages:
                    global_args[key] = default
                    continue
                stage = stages[-1]
                arg = BuildArg(
                    key, default if default is not None else global_args.get(key), origin=here
                )
                stage.args[key] = arg
                stage.post.append(f"{key}='{arg}'  # ARG {key}")
            continue
        if ins == "FROM":
            words = [w for w in value.split() if not w.startswith("--platform")]
            if not words:
                raise DefError("FROM needs an image", file=file, line=line)
            image = words[0]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            if any(s.name == image for s in stages):
                raise DefError(
                    f"FROM {image}: building on an earlier stage has no "
                    "Apptainer equivalent; start from its base image and copy "
                    "what you need with COPY --from",
                    file=file,
                    line=line,
                )
            args = {
                key: BuildArg(key, global_args.get(key), origin=here)
                for key in (m.group(1) or m.group(2) for m in _VAR.finditer(image))
            }
            header = Header.docker(_with_placeholders(image, args), stage=name, origin=here)
            stages.append(_Stage(header, image, here, args))
            continue
        if not stages:
            raise DefError(f"{ins} before the first FROM", file=file, line=line)
        stage = stages[-1]
        if ins == "RUN":
            form = _exec_form(value)
            stage.post.append(f"# RUN (line {line})")
            if form:
                lines = [" ".join(sh_quote(word) for word in form)]
            else:  # the original lines, continuations included
                raw = re.sub(r"^\s*RUN\s+", "", item["content"], flags=re.I).rstrip("\n")
                lines = [ln for ln in raw.split("\n") if not ln.lstrip().startswith("#")]
                placeholder(line, "RUN", value)
            Script("\n".join(lines), verbatim=True, origin=here)  # a %-line is an error here
            stage.post += lines
            stage.ran = True
            hook = re.search(r"pixi\s+shell-hook\b(.*?)(>>?)\s*(\S+)", value)
            if hook:
                env = re.search(r"(?:-e|--environment)[ =](\S+)", hook.group(1))
                out = hook.group(3).strip("'\"")
                manifest = posixpath.join(stage.workdir or "/", "pixi.toml")
                given = re.search(r"(?:-m|--manifest-path)[ =](\S+)", hook.group(1))
                if given:
                    manifest = given.group(1)
                stage.pixi_envs.append((env.group(1) if env else "default", manifest, out))
        elif ins == "ENV":
            for key, val in extract_key_values(
                env_replace=False, args={}, envs={}, instruction_value=value
            ):
                export = Export(key, val, origin=here)
                if "$" in val:
                    export_text = f"export {key}={_expanding(val)}"
                    stage.env.append(Script(export_text, origin=here))
                else:
                    export_text = export_line(export)
                    stage.env.append(export)
                stage.post.append(export_text)
        elif ins == "WORKDIR":
            stage.workdir = posixpath.join(stage.workdir or "/", value.strip())
            where = sh_quote(stage.workdir)
            stage.post.append(f"mkdir -p {where} && cd {where} || exit 1")
        elif ins in ("COPY", "ADD"):
            _copy(ins, value, stage, file, line, warn)
        elif ins in ("LABEL", "MAINTAINER"):
            pairs = (
                [("maintainer", value.strip())]
                if ins == "MAINTAINER"
                else extract_key_values(
                    env_replace=False, args={}, envs={}, instruction_value=value
                )
            )
            for key, val in pairs:
                stage.labels[key] = Label(key, val, origin=here)
                placeholder(line, f"LABEL {key}", val)
        elif ins == "ENTRYPOINT":
            form = _exec_form(value)
            stage.entrypoint = form if form is not None else value.strip()
        elif ins == "CMD":
            form = _exec_form(value)
            stage.cmd = form if form is not None else value.strip()
        elif ins == "SHELL":
            form = _exec_form(value)
            if not form:
                raise DefError(
                    'SHELL needs the JSON form, e.g. SHELL ["/bin/bash", "-c"]',
                    file=file,
                    line=line,
                )
            stage.shell = tuple(form)
            stage.post_shell, why = _post_shell(form)
            if why:
                warn(line, f"SHELL {value.strip()}: {why}")
        elif ins in _UNSUPPORTED:
            why, fix = _UNSUPPORTED[ins]
            warn(line, f"{ins} {value.strip()}: {why}; {fix} (left out)")
    if not stages:
        raise DefError("no FROM instruction", file=file, line=1)
    _link_pixi(stages, warn)
    composed = [_compose(st, is_final=i == len(stages) - 1) for i, st in enumerate(stages)]
    built = []
    for c, st in zip(composed, stages, strict=True):
        try:  # blocks take no origin: their errors are the stage's FROM line
            built.append(c.stage)
        except DefError as exc:
            raise DefError(exc.message, origin=st.origin) from None
    recipe = Recipe(built, origin=Origin(file, 1))
    source = to_python(composed, posixpath.basename(file), command="from-dockerfile")
    return Conversion(recipe, source, tuple(warnings))


def _with_placeholders(image: str, args: dict[str, BuildArg]) -> str:
    """``$NAME``/``${NAME}`` in FROM as Apptainer's ``{{ NAME }}``."""
    return _VAR.sub(lambda m: str(args[m.group(1) or m.group(2)]), image)


def _args(value: str, file: str, line: int) -> list[tuple[str, str | None]]:
    out = []
    for word in shlex.split(value):
        key, sep, default = word.partition("=")
        if not re.fullmatch(r"\w+", key):
            raise DefError(
                f"ARG name {key!r} is not a valid build-argument name", file=file, line=line
            )
        out.append((key, default if sep else None))
    return out


def _copy(ins: str, value: str, stage: _Stage, file: str, line: int, warn: Warn) -> None:
    form = _exec_form(value)
    flags: dict[str, str]
    if form is not None:
        flags, words = {}, form
    else:
        flags, words = _flags(value)
    if len(words) < 2:
        raise DefError(f"{ins} needs a source and a destination", file=file, line=line)
    *sources, dst = words
    if not dst.startswith("/"):
        dir_like = words[-1].endswith("/") or words[-1] in (".", "./")
        dst = posixpath.normpath(posixpath.join(stage.workdir or "/", dst))
        if dir_like:
            dst = dst.rstrip("/") + "/"
    if len(sources) > 1 and not dst.endswith("/"):
        dst += "/"
    from_stage = flags.get("from")
    here = Origin(file, line)
    if stage.ran and from_stage is None:
        warn(
            line,
            f"{ins} after a RUN: Apptainer copies all %files before %post runs, so "
            "this file is in place earlier than in Docker",
        )

    def add(src: str, dest: str) -> None:
        stage.files.append((from_stage, FileEntry(src, dest, origin=here)))
        if has_placeholder(src + " " + dest):
            warn(
                line,
                f"{ins} {src} {dest}: Apptainer replaces {{{{ NAME }}}} with a build "
                "argument in the whole definition before building; rename the path",
            )

    for src in sources:
        if ins == "ADD" and re.match(r"https?://", src):
            target = dst if not dst.endswith("/") else dst + posixpath.basename(src)
            warn(
                line,
                f"ADD {src}: downloaded in %post with curl (Apptainer %files only "
                "copies local files); pin a checksum",
            )
            stage.post.append(f"mkdir -p {sh_quote(posixpath.dirname(target) or '/')}")
            stage.post.append(f"curl -fsSL -o {sh_quote(target)} {sh_quote(src)}")
            continue
        if ins == "ADD" and from_stage is None and _ARCHIVE.search(src):
            tmp = "/tmp/defbuilder-add/" + posixpath.basename(src)
            warn(line, f"ADD {src}: Docker unpacks local archives; unpacked in %post with tar")
            add(src, tmp)
            stage.post.append(
                f"mkdir -p {sh_quote(dst)} && tar -xf {sh_quote(tmp)} "
                f"-C {sh_quote(dst)} && rm -f {sh_quote(tmp)}"
            )
            continue
        add(src, dst)
        target = dst + posixpath.basename(src.rstrip("/")) if dst.endswith("/") else dst
        if "chmod" in flags:
            stage.post.append(f"chmod -R {sh_quote(flags['chmod'])} {sh_quote(target)}")
        if "chown" in flags:
            stage.post.append(f"chown -R {sh_quote(flags['chown'])} {sh_quote(target)}")


def _activate_path(hook_out: str) -> str:
    """Where the static activation goes: beside the generated entrypoint."""
    return posixpath.join(posixpath.dirname(hook_out) or "/", "activate.sh")


def _link_pixi(stages: list[_Stage], warn: Warn) -> None:
    """An entrypoint generated from pixi shell-hook: add a static activation file in
    that stage (``_compose``), and source it in %environment where the environment
    is copied."""
    for stage in stages:
        for env, _manifest, out in stage.pixi_envs:
            activate = _activate_path(out)
            prefix_part = f".pixi/envs/{env}"
            for other in stages:
                copies = [e for f, e in other.files if f == stage.name and prefix_part in e.src]
                if copies and other is not stage:
                    other.files.append(
                        (stage.name, FileEntry(activate, activate, origin=stage.origin))
                    )
                    other.env.append(Script(f". {sh_quote(activate)}", origin=stage.origin))
            warn(
                stage.line,
                f"pixi shell-hook writes {out}: also wrote a static activation "
                f"file, {activate}, sourced by %environment, so apptainer exec/shell/test "
                "see the environment too",
            )


def _compose(st: _Stage, is_final: bool) -> Composed:
    """The stage's model: a base ``Stage`` plus the blocks the script keeps as calls."""
    groups: dict[str | None, list[FileEntry]] = {}
    for from_stage, entry in st.files:
        groups.setdefault(from_stage, []).append(entry)
    base = Stage(
        st.header,
        arguments=tuple(st.args.values()),
        files=tuple(
            Files(entries, from_stage=from_stage, origin=st.origin)
            for from_stage, entries in groups.items()
        ),
        environment=Environment(tuple(st.env)),
        post=Script("\n".join(st.post), shell=st.post_shell, origin=st.origin),
        labels=tuple(st.labels.values()),
        origin=st.origin,
    )
    blocks: list[Block] = [
        Call(static_activation, (env, manifest, _activate_path(out)))
        for env, manifest, out in st.pixi_envs
    ]
    if is_final and (st.entrypoint is not None or st.cmd is not None):
        blocks.append(Entrypoint(st.entrypoint, cmd=st.cmd, shell=st.shell, workdir=st.workdir))
    return Composed(base, blocks, comment=f"FROM {st.image} (line {st.line})")
