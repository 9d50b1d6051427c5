"""Dockerfile -> a readable defbuilder recipe (``defbuilder from-dockerfile``).

The Dockerfile is read with the ``dockerfile-parse`` package. Each ``FROM ... AS
name`` becomes a stage; what Docker does is kept, and what Apptainer cannot honour
becomes a warning with the reason (never a silent drop):

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
* ``LABEL``/``MAINTAINER`` -> ``%labels``; ``ENTRYPOINT``/``CMD`` -> ``Entrypoint``.
* ``pixi shell-hook ... >> FILE`` in a RUN (an entrypoint that activates and
  execs) -> also a static activation file sourced by ``%environment`` in the
  stages that copy the environment, so ``apptainer exec``/``shell``/``test`` see it
  too (``defbuilder.blocks.pixi.static_activation``).
* ``USER``, ``EXPOSE``, ``VOLUME``, ``HEALTHCHECK``, ``STOPSIGNAL``, ``ONBUILD``,
  ``ARG`` redefinitions that Apptainer cannot scope: warnings.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import shlex
from typing import Any

import attrs

from .errors import DefError

__all__ = ["Conversion", "convert"]

_KNOWN = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
          "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
          "HEALTHCHECK", "SHELL"}
_UNSUPPORTED = {
    "USER": ("Apptainer runs every container as the calling user",
             "drop it; use --fakeroot at build time if %post needs root"),
    "EXPOSE": ("Apptainer shares the host's network; there are no ports to publish",
               "document the port; start the service with `apptainer instance start`"),
    "VOLUME": ("Apptainer has no volumes", "bind a host directory at run time: --bind DIR"),
    "HEALTHCHECK": ("Apptainer has no health checks", "put a check in %test"),
    "STOPSIGNAL": ("Apptainer sends SIGTERM to the container's process",
                   "handle SIGTERM in the program"),
    "ONBUILD": ("Apptainer has no build triggers", "add the steps to the recipe that "
                "builds on this one"),
}
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz)$")
_VAR = re.compile(r"\$(\w+)|\$\{(\w+)\}")


@attrs.define
class _Stage:
    image: str
    name: str | None
    line: int
    args: dict[str, str | None] = attrs.field(factory=dict)
    files: list[tuple[str | None, str, str]] = attrs.field(factory=list)  # (from, src, dst)
    env: list[tuple[str, str]] = attrs.field(factory=list)
    post: list[str] = attrs.field(factory=list)
    labels: dict[str, str] = attrs.field(factory=dict)
    entrypoint: list[str] | str | None = None
    cmd: list[str] | str | None = None
    shell: list[str] = attrs.field(factory=lambda: ["/bin/sh", "-c"])
    workdir: str | None = None
    ran: bool = False
    pixi_envs: list[tuple[str, str, str]] = attrs.field(factory=list)  # (env, manifest, out)


@attrs.frozen
class Conversion:
    """The recipe script (Python source) and the warnings, each ``file:line: text``."""

    source: str
    warnings: tuple[str, ...]

    def recipe(self) -> Any:
        """Execute the generated script and return its ``recipe``."""
        namespace: dict[str, Any] = {"__name__": "defbuilder_from_dockerfile"}
        exec(compile(self.source, "<from-dockerfile>", "exec"), namespace)
        return namespace["recipe"]


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


def _env_value(value: str) -> str:
    """Shell text for an ENV value: literal unless it refers to variables."""
    from .render import sh_quote

    if "$" not in value:
        return sh_quote(value)
    return '"' + re.sub(r'(["\\`])', r"\\\1", value) + '"'


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

    for item in parser.structure:
        ins = item["instruction"].upper()
        line = item["startline"] + 1
        value = item["value"]
        if ins == "COMMENT":
            continue
        if ins not in _KNOWN:
            raise DefError(f"unknown instruction {item['instruction']!r}", file=file, line=line)
        if ins == "ARG":
            for key, default in _args(value, file, line):
                (stages[-1].args if stages else global_args)[key] = default
                if stages:
                    stage = stages[-1]
                    dflt = default if default is not None else global_args.get(key)
                    stage.args[key] = dflt
                    stage.post.append(f"{key}='{{{{ {key} }}}}'  # ARG {key}")
            continue
        if ins == "FROM":
            words = value.split()
            words = [w for w in words if not w.startswith("--platform")]
            if not words:
                raise DefError("FROM needs an image", file=file, line=line)
            image = words[0]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            if any(s.name == image for s in stages):
                raise DefError(f"FROM {image}: building on an earlier stage has no "
                               "Apptainer equivalent; start from its base image and copy "
                               "what you need with COPY --from", file=file, line=line)
            stage = _Stage(image, name, line)
            for m in _VAR.finditer(image):
                key = m.group(1) or m.group(2)
                stage.args[key] = global_args.get(key)
            stages.append(stage)
            continue
        if not stages:
            raise DefError(f"{ins} before the first FROM", file=file, line=line)
        stage = stages[-1]
        if ins == "RUN":
            form = _exec_form(value)
            stage.post.append(f"# RUN (line {line})")
            if form:
                stage.post.append(shlex.join(form))
            else:  # the original lines, continuations included
                raw = re.sub(r"^\s*RUN\s+", "", item["content"], flags=re.I).rstrip("\n")
                stage.post += [ln for ln in raw.split("\n")
                               if not ln.lstrip().startswith("#")]
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
            for key, val in extract_key_values(env_replace=False, args={}, envs={},
                                               instruction_value=value):
                stage.env.append((key, val))
                stage.post.append(f"export {key}={_env_value(val)}")
        elif ins == "WORKDIR":
            path = value.strip()
            stage.workdir = posixpath.join(stage.workdir or "/", path)
            stage.post.append(f"mkdir -p {shlex.quote(stage.workdir)} && "
                              f"cd {shlex.quote(stage.workdir)} || exit 1")
        elif ins in ("COPY", "ADD"):
            _copy(ins, value, stage, file, line, warn)
        elif ins in ("LABEL", "MAINTAINER"):
            if ins == "MAINTAINER":
                stage.labels["maintainer"] = value.strip()
            else:
                for key, val in extract_key_values(env_replace=False, args={}, envs={},
                                                   instruction_value=value):
                    stage.labels[key] = val
        elif ins == "ENTRYPOINT":
            stage.entrypoint = _exec_form(value) if _exec_form(value) is not None \
                else value.strip()
        elif ins == "CMD":
            stage.cmd = _exec_form(value) if _exec_form(value) is not None else value.strip()
        elif ins == "SHELL":
            form = _exec_form(value)
            if not form:
                raise DefError("SHELL needs the JSON form, e.g. SHELL [\"/bin/bash\", \"-c\"]",
                               file=file, line=line)
            stage.shell = form
        elif ins in _UNSUPPORTED:
            why, fix = _UNSUPPORTED[ins]
            warn(line, f"{ins} {value.strip()}: {why}; {fix} (left out)")
    if not stages:
        raise DefError("no FROM instruction", file=file, line=1)
    _link_pixi(stages, warn)
    return Conversion(_source(stages, global_args, file), tuple(warnings))


def _args(value: str, file: str, line: int) -> list[tuple[str, str | None]]:
    out = []
    for word in shlex.split(value):
        key, sep, default = word.partition("=")
        if not re.fullmatch(r"\w+", key):
            raise DefError(f"ARG name {key!r} is not a valid build-argument name",
                           file=file, line=line)
        out.append((key, default if sep else None))
    return out


def _copy(ins: str, value: str, stage: _Stage, file: str, line: int,
          warn: Any) -> None:
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
    origin = flags.get("from")
    if stage.ran and origin is None:
        warn(line, f"{ins} after a RUN: Apptainer copies all %files before %post runs, so "
             "this file is in place earlier than in Docker")
    for src in sources:
        if ins == "ADD" and re.match(r"https?://", src):
            target = dst if dst.endswith("/") is False else dst + posixpath.basename(src)
            warn(line, f"ADD {src}: downloaded in %post with curl (Apptainer %files only "
                 "copies local files); pin a checksum")
            stage.post.append(f"mkdir -p {shlex.quote(posixpath.dirname(target) or '/')}")
            stage.post.append(f"curl -fsSL -o {shlex.quote(target)} {shlex.quote(src)}")
            continue
        if ins == "ADD" and origin is None and _ARCHIVE.search(src):
            tmp = "/tmp/defbuilder-add/" + posixpath.basename(src)
            warn(line, f"ADD {src}: Docker unpacks local archives; unpacked in %post with tar")
            stage.files.append((None, src, tmp))
            stage.post.append(f"mkdir -p {shlex.quote(dst)} && tar -xf {shlex.quote(tmp)} "
                              f"-C {shlex.quote(dst)} && rm -f {shlex.quote(tmp)}")
            continue
        stage.files.append((origin, src, dst))
        target = dst + posixpath.basename(src.rstrip("/")) if dst.endswith("/") else dst
        if "chmod" in flags:
            stage.post.append(f"chmod -R {shlex.quote(flags['chmod'])} {shlex.quote(target)}")
        if "chown" in flags:
            stage.post.append(f"chown -R {shlex.quote(flags['chown'])} {shlex.quote(target)}")


def _activate_path(hook_out: str) -> str:
    """Where the static activation goes: beside the generated entrypoint."""
    return posixpath.join(posixpath.dirname(hook_out) or "/", "activate.sh")


def _link_pixi(stages: list[_Stage], warn: Any) -> None:
    """An entrypoint generated from pixi shell-hook: add a static activation file in
    that stage, and source it in %environment where the environment is copied."""
    for stage in stages:
        for env, _manifest, out in stage.pixi_envs:
            activate = _activate_path(out)
            prefix_part = f".pixi/envs/{env}"
            for other in stages:
                copies = [s for f, s, _d in other.files if f == stage.name and prefix_part in s]
                if copies and other is not stage:
                    other.files.append((stage.name, activate, activate))
                    other.env.append(("", f". {activate}"))
            warn(stage.line, f"pixi shell-hook writes {out}: also wrote a static activation "
                 f"file, {activate}, sourced by %environment, so apptainer exec/shell/test "
                 "see the environment too")


def _py(value: Any) -> str:
    return repr(value)


def _block(lines: list[str]) -> str:
    body = "\n".join(lines)
    if ('"""' in body or body.endswith("\\")
            or any(not (c == "\n" or c.isprintable()) for c in body)):
        return _py(body)
    prefix = "r" if "\\" in body else ""
    return (prefix + '"""\n' + "\n".join(("        " + ln) if ln else "" for ln in lines)
            + '\n    """')


def _source(stages: list[_Stage], global_args: dict[str, str | None], file: str) -> str:
    out = [f'"""Recipe converted from {posixpath.basename(file)} by '
           '`defbuilder from-dockerfile`."""', "",
           "from defbuilder import BuildArg, Environment, Files, Header, Recipe, Script, Stage",
           "from defbuilder.blocks import Entrypoint"]
    if any(s.pixi_envs for s in stages):
        out.append("from defbuilder.blocks.pixi import static_activation")
    out.append("")
    names = []
    for i, st in enumerate(stages):
        var = re.sub(r"\W", "_", st.name or f"stage{i}").lower()
        if var[0].isdigit() or var in ("recipe",):
            var = "stage_" + var
        names.append(var)
        image = _VAR.sub(lambda m: "{{ " + (m.group(1) or m.group(2)) + " }}", st.image)
        out.append(f"# FROM {st.image} (line {st.line})")
        out.append(f"{var} = Stage(")
        header = f"    Header.docker({_py(image)}"
        header += f", stage={_py(st.name)})," if st.name else "),"
        out.append(header)
        if st.args:
            args = ", ".join(f"BuildArg({_py(k)}, {_py(v)})" for k, v in st.args.items())
            out.append(f"    arguments=[{args}],")
        groups: dict[str | None, list[tuple[str, str]]] = {}
        for origin, src, dst in st.files:
            groups.setdefault(origin, []).append((src, dst))
        files = []
        for origin, pairs in groups.items():
            entries = ", ".join(_py(p) for p in pairs)
            files.append(f"Files([{entries}]" + (f", from_stage={_py(origin)})" if origin
                                                  else ")"))
        if files:
            out.append(f"    files=[{', '.join(files)}],")
        exports = [(k, v) for k, v in st.env if k]
        raws = [v for k, v in st.env if not k]
        if exports or raws:
            items = [f"{_py(f'export {k}=' + _env_value(v))}" for k, v in exports]
            items += [_py(r) for r in raws]
            out.append(f"    environment=Environment([{', '.join(items)}]),")
        shell = st.shell[0] if st.shell[1:] == ["-c"] and st.shell[0] != "/bin/sh" else None
        if st.post:
            post = f"Script({_block(st.post)}" + (f", shell={_py(shell)})" if shell else ")")
            out.append(f"    post={post},")
        if st.labels:
            out.append(f"    labels={_py(st.labels)},")
        out.append(")")
        for env, manifest, hook_out in st.pixi_envs:
            out.append(f"{var} = {var}.extend(post=static_activation({_py(env)}, "
                       f"{_py(manifest)}, {_py(_activate_path(hook_out))}))")
        is_final = i == len(stages) - 1
        if is_final and (st.entrypoint is not None or st.cmd is not None):
            kw = [_py(st.entrypoint)]
            if st.cmd is not None:
                kw.append(f"cmd={_py(st.cmd)}")
            if st.shell != ["/bin/sh", "-c"]:
                kw.append(f"shell={_py(st.shell)}")
            if st.workdir:
                kw.append(f"workdir={_py(st.workdir)}")
            out.append(f"{var} = {var} + Entrypoint({', '.join(kw)})")
        out.append("")
    out.append(f"recipe = Recipe([{', '.join(names)}])")
    return "\n".join(out) + "\n"
