"""Lint rules: each check declared with its code, severity, why it matters, and examples.

Every check is a function of a ``Context`` (context.py) that yields ``(line, message)``
and is declared with ``@rule(...)``: a stable code (never reused), a name, a
``Severity``, a summary, why it matters, a bad and a good example, and the
properties the engine acts on (``policy``, ``needs_shellcheck``, ``supersedes``).
``RULES`` holds them in code order. ``docs/lint-rules.md`` is generated from these
objects (``python -m defbuilder.lint.docs``), and the tests lint every rule's ``bad``
example (it must fire) and ``good`` example (it must not), so code, docs and tests
agree.

What Apptainer decides (section kinds, the ``#`` cut of section arguments, header
keys each agent reads, placeholders, ``%files``/``%labels`` reading) comes from
``defbuilder.apptainer``; a rule here only judges what it reads. Rules must not
import the engine.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator

from ..apptainer import (
    AGENTS,
    APP_SECTIONS,
    PLACEHOLDER,
    FilesSource,
    SectionKind,
    agent_reads,
    body_entries,
    c_shell,
    files_source,
    get_labels,
    go_trim,
    has_placeholder,
    section_kind,
    split_files_line,
)
from ..parse import RawSection
from .context import Check, Context, Hit, Rule, Severity

__all__ = ["EXAMPLE_POLICY", "RULES", "rule"]

_registered: list[Rule] = []


def rule(
    *,
    code: str,
    name: str,
    severity: Severity,
    summary: str,
    why: str,
    bad: str,
    good: str,
    policy: bool = False,
    needs_shellcheck: bool = False,
    supersedes: tuple[str, ...] = (),
) -> Callable[[Check], Check]:
    """Declare the decorated check as lint rule ``code`` (see ``Rule``); the function
    itself is returned unchanged, so checks can call each other."""

    def register(check: Check) -> Check:
        if any(r.code == code for r in _registered):
            raise ValueError(f"lint rule code {code} is declared twice")
        _registered.append(
            Rule(
                code,
                name,
                severity,
                summary,
                why,
                bad,
                good,
                check,
                policy=policy,
                needs_shellcheck=needs_shellcheck,
                supersedes=supersedes,
            )
        )
        return check

    return register


# --- what the checks share ---------------------------------------------------------------

#: Example header and %test the rules' examples are built from.
_H = "Bootstrap: docker\nFrom: ubuntu:24.04@sha256:" + "a" * 64 + "\n"
_T = "\n%test\n    true\n"

#: Section kinds whose body is shell code.
_SHELL_KINDS = frozenset(
    {
        SectionKind.BUILD_SCRIPT,
        SectionKind.SHEBANG_SCRIPT,
        SectionKind.SOURCED,
        SectionKind.APP_SCRIPT,
    }
)


def _is_shell(name: str) -> bool:
    """Whether a section's body is shell code Apptainer runs or sources."""
    return section_kind(name) in _SHELL_KINDS


def _runs_at_build(name: str) -> bool:
    """%setup, %pre, %post (``/bin/sh -ex``) and %appinstall, which the build runs as
    part of %post (``SectionKind.APP_SCRIPT``: "%appinstall runs at build time")."""
    return section_kind(name) is SectionKind.BUILD_SCRIPT or name == "appinstall"


def _lines(section: RawSection) -> Iterator[tuple[int, str]]:
    """Body lines with their .def line numbers."""
    for offset, line in enumerate(section.body.split("\n")[:-1] or [""], start=1):
        yield section.line + offset, line


def _code_lines(section: RawSection) -> Iterator[tuple[int, str]]:
    """Body lines that are not blank or comments."""
    for n, line in _lines(section):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield n, line


def _files_lines(ctx: Context) -> Iterator[tuple[int, str]]:
    """%files/%appfiles entries (trimmed, as deffile.go reads them) and their lines."""
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name in ("files", "appfiles"):
                for offset, line in body_entries(sec.body):
                    yield sec.line + offset, line


def _image_refs(ctx: Context) -> Iterator[tuple[int, str]]:
    """``From:`` values that name an image in a registry (not a local file)."""
    for stage in ctx.raw:
        agent = stage.header.get("bootstrap", "")
        if (
            agent_reads(agent, "from")
            and "from" in stage.header
            and agent not in ("localimage", "buildkit", "dockerfile")
        ):
            yield stage.header_lines["from"], stage.header["from"]


# --- rules, in code order ----------------------------------------------------------------


@rule(
    code="DB100",
    name="does-not-parse",
    severity=Severity.ERROR,
    summary="The file is not a definition Apptainer accepts.",
    why="Apptainer stops before building; the message says why.",
    bad="Bootstrap: docker\nFrom: ubuntu:24.04\nthis is not a key\n",
    good=_H + _T,
)
def _does_not_parse(ctx: Context) -> Iterator[Hit]:
    seen: set[Hit] = set()
    for hit in [*(e for stage in ctx.raw for e in stage.header_errors), *ctx.parse_errors]:
        if hit not in seen:
            seen.add(hit)
            yield hit


@rule(
    code="DB101",
    name="inert-shebang",
    severity=Severity.WARNING,
    summary="A #! line that Apptainer ignores.",
    why="%post/%setup/%pre/%appinstall run as /bin/sh -ex, so a #! in them is a comment "
    "and the code runs under dash on Ubuntu; in %runscript/%startscript/%test only the "
    "first body line is honoured (metadata.go handleShebangScript).",
    bad=_H + "\n%post\n    #!/bin/bash\n    source /etc/profile\n" + _T,
    good=_H + "\n%post -c /bin/bash -e\n    source /etc/profile\n" + _T,
)
def _inert_shebang(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        for sec in stage.sections:
            kind = section_kind(sec.name)
            for i, (n, line) in enumerate(_lines(sec)):
                if not go_trim(line).startswith("#!"):
                    continue
                if _runs_at_build(sec.name):
                    yield (
                        n,
                        (
                            f"%{sec.name} runs as /bin/sh -ex, so this #! line is only a "
                            "comment; choose a shell with `%post -c /bin/bash -e`"
                        ),
                    )
                elif kind is SectionKind.SHEBANG_SCRIPT and i > 0:
                    yield (
                        n,
                        (
                            f"only the first body line of %{sec.name} can choose the "
                            "interpreter; this #! is a comment"
                        ),
                    )
                elif kind is SectionKind.APP_SCRIPT:
                    yield n, f"%{sec.name} is always written as #!/bin/sh; this #! is a comment"


@rule(
    code="DB102",
    name="bash-without-e",
    severity=Severity.ERROR,
    summary="%post -c /bin/bash without -e.",
    why='Apptainer runs it as /bin/sh -ex -c "/bin/bash script" (stage.go '
    "getSectionScriptArgs): the inner bash has no -e and a failing command does not "
    "stop the build.",
    bad=_H + "\n%post -c /bin/bash\n    false\n    echo built\n" + _T,
    good=_H + "\n%post -c /bin/bash -e\n    false\n    echo built\n" + _T,
)
def _bash_without_e(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        for sec in stage.sections:
            if section_kind(sec.name) is not SectionKind.BUILD_SCRIPT:
                continue
            rest = c_shell(sec.args)
            if rest is None:
                continue
            body = sec.body
            if (
                any(p.startswith("-") and "e" in p for p in rest[1:])
                or re.search(r"^\s*set\s+-[a-z]*e", body, re.M)
                or "set -o errexit" in body
            ):
                continue
            yield (
                sec.line,
                (
                    f"%{sec.name} {sec.args.strip()} runs `/bin/sh -ex -c "
                    f'"{" ".join(rest)} script"`: the inner shell has no -e and '
                    "goes on after a failing command; add -e or `set -e`"
                ),
            )


@rule(
    code="DB103",
    name="indented-section",
    severity=Severity.ERROR,
    summary="A section header indented after the first.",
    why="Only a stage's first token is trimmed (deffile.go doSections); later, the "
    "leading space makes the name empty and Apptainer refuses the file.",
    bad=_H + "\n%post\n    echo a\n  %runscript\n    echo b\n" + _T,
    good=_H + "\n%post\n    echo a\n%runscript\n    exec echo b\n" + _T,
    supersedes=("DB100",),
)
def _indented_section(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name == "":
                yield (
                    sec.line,
                    (
                        "an indented section header after the first is read with "
                        "its leading space: Apptainer stops with `invalid section(s) "
                        "specified`; start the line with %"
                    ),
                )


@rule(
    code="DB104",
    name="unknown-section",
    severity=Severity.ERROR,
    summary="A section name Apptainer does not know.",
    why="deffile.go populateDefinition: `invalid section(s) specified` stops the build.",
    bad=_H + "\n%environments\n    export A=1\n" + _T,
    good=_H + "\n%environment\n    export A=1\n" + _T,
    supersedes=("DB100",),
)
def _unknown_section(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name and section_kind(sec.name) is None:
                yield (
                    sec.line,
                    (
                        f"%{sec.name} is not a section Apptainer knows; it stops "
                        "with `invalid section(s) specified`"
                    ),
                )
            elif sec.name in APP_SECTIONS and not sec.app:
                yield sec.line, f"%{sec.name} needs an app name"


@rule(
    code="DB105",
    name="files-single-quote",
    severity=Severity.ERROR,
    summary="Single quotes in a %files line.",
    why="Apptainer's fileSplitter has no closing single quote: 'a b' c reads as 'a b and ' c.",
    bad=_H + "\n%files\n    'my file' /opt/\n" + _T,
    good=_H + '\n%files\n    "my file" /opt/\n' + _T,
)
def _files_single_quote(ctx: Context) -> Iterator[Hit]:
    for n, line in _files_lines(ctx):
        unquoted = re.sub(r'"[^"]*"', "", line)
        if "'" in unquoted:
            src, dst = split_files_line(line)
            yield (
                n,
                (
                    f"Apptainer's %files splitter mishandles single quotes: this line "
                    f"reads as src={src!r} dst={dst!r}; use double quotes"
                ),
            )


@rule(
    code="DB106",
    name="files-inline-comment",
    severity=Severity.ERROR,
    summary="An inline # comment in a %files line.",
    why="%files lines have no comments after a path: `src # note` copies src to `#`.",
    bad=_H + "\n%files\n    app.py # the app\n" + _T,
    good=_H + "\n%files\n    # the app\n    app.py\n" + _T,
)
def _files_inline_comment(ctx: Context) -> Iterator[Hit]:
    for n, line in _files_lines(ctx):
        unquoted = re.sub(r'"[^"]*"', "", line)
        if re.search(r"\s#", unquoted):
            src, dst = split_files_line(line)
            yield (
                n,
                (
                    f"%files has no inline comments: this line reads as src={src!r} "
                    f"dst={dst!r}; put the comment on its own line"
                ),
            )


@rule(
    code="DB107",
    name="registry-scheme",
    severity=Severity.ERROR,
    summary="Registry: with a URL scheme.",
    why="The reference is built as docker://REGISTRY/NAMESPACE/FROM "
    "(conveyorPacker_oci.go), so http:// ends up inside it.",
    bad="Bootstrap: docker\nFrom: app:1@sha256:" + "a" * 64 + "\nRegistry: https://ghcr.io\n" + _T,
    good="Bootstrap: docker\nFrom: app:1@sha256:" + "a" * 64 + "\nRegistry: ghcr.io\n" + _T,
)
def _registry_scheme(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        value = stage.header.get("registry", "")
        if "://" in value:
            yield (
                stage.header_lines["registry"],
                (f"Registry: {value} gives `docker://{value}/...`; write the bare host[:port]"),
            )


@rule(
    code="DB108",
    name="includecmd",
    severity=Severity.WARNING,
    summary="IncludeCmd: has no effect.",
    why="It is a valid key that no Apptainer code reads; the runscript always combines "
    "ENTRYPOINT and CMD. Write %runscript yourself.",
    bad=_H + "IncludeCmd: yes\n" + _T,
    good=_H + '\n%runscript\n    exec python "$@"\n' + _T,
)
def _includecmd(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        if "includecmd" in stage.header:
            yield (
                stage.header_lines["includecmd"],
                (
                    "IncludeCmd: is accepted but no Apptainer code reads it; write a %runscript "
                    "(defbuilder.blocks.Entrypoint) instead"
                ),
            )


@rule(
    code="DB109",
    name="ignored-header-key",
    severity=Severity.WARNING,
    summary="A header key the bootstrap agent does not read.",
    why="Apptainer accepts every known key for every agent and silently ignores the ones "
    "the agent does not read (conveyorPacker_*.go).",
    bad="Bootstrap: library\nFrom: alpine:3.19\nRegistry: ghcr.io\n" + _T,
    good="Bootstrap: library\nFrom: alpine:3.19\n" + _T,
)
def _ignored_key(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        agent = stage.header.get("bootstrap", "")
        if agent not in AGENTS:
            continue
        for key, line in stage.header_lines.items():
            if key != "bootstrap" and not agent_reads(agent, key):
                yield line, f"Bootstrap: {agent} does not read {key}:; Apptainer ignores it"


@rule(
    code="DB110",
    name="bashism-in-sh",
    severity=Severity.ERROR,
    summary="Bash-only syntax in a section that runs under /bin/sh.",
    why="On Ubuntu /bin/sh is dash; [[ ]], arrays, `source`... fail there (shellcheck "
    "SC3xxx with the section's real shell).",
    bad=_H + "\n%post\n    if [[ -d /opt ]]; then echo yes; fi\n" + _T,
    good=_H + "\n%post\n    if [ -d /opt ]; then echo yes; fi\n" + _T,
    needs_shellcheck=True,
)
def _bash_in_sh(ctx: Context) -> Iterator[Hit]:
    for n, code, message in ctx.shellcheck():
        if code.startswith("SC3"):
            yield n, f"bash-only syntax in a section that runs under /bin/sh: {code} {message}"


@rule(
    code="DB111",
    name="shellcheck",
    severity=Severity.WARNING,
    summary="Other shellcheck warnings in a section.",
    why="shellcheck (warning level) run with the shell Apptainer really uses for the section.",
    bad=_H + "\n%post\n    cd /opt\n    rm -rf $DIR/*\n" + _T,
    good=_H + '\n%post\n    cd /opt || exit 1\n    rm -rf "${DIR:?}"/*\n' + _T,
    needs_shellcheck=True,
)
def _shellcheck_other(ctx: Context) -> Iterator[Hit]:
    for n, code, message in ctx.shellcheck():
        if not code.startswith("SC3"):
            yield n, f"shellcheck {code}: {message}"


@rule(
    code="DB112",
    name="runscript-no-exec",
    severity=Severity.WARNING,
    summary="%runscript/%startscript does not exec its program.",
    why="Without exec the program is a child of the shell: the batch system's SIGTERM "
    "reaches the shell, and the program may be killed without cleanup.",
    bad=_H + '\n%runscript\n    python /app/main.py "$@"\n' + _T,
    good=_H + '\n%runscript\n    exec python /app/main.py "$@"\n' + _T,
)
def _runscript_no_exec(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.final_stages():
        for name in ("runscript", "startscript"):  # what `run` and `instance start` start
            sec = stage.section(name)
            if sec is None:
                continue
            code = [(n, ln.strip()) for n, ln in _code_lines(sec)]
            if not code:
                continue
            n, last = code[-1]
            if last.startswith(("exec ", "exit", "fi", "esac", "done", "}")) or last == "exec":
                continue
            if any(re.match(r"exec\s", ln) for _, ln in code):
                continue
            yield (
                n,
                (
                    f"%{name} runs its program as a child of the shell: signals from the "
                    "batch system reach the shell, not the program; use `exec program`"
                ),
            )


_WRITES_EXEC = re.compile(r"""exec\s+(\\?["'])?\$@""")


@rule(
    code="DB113",
    name="exec-when-sourced",
    severity=Severity.ERROR,
    summary='A file ending in exec "$@" is sourced.',
    why="Sourcing it replaces the sourcing shell with its arguments; the upstream hello "
    "example had to strip the last line with sed before sourcing.",
    bad=_H + "\n%post\n    echo 'exec \"$@\"' >> /app/entrypoint.sh\n"
    "%test\n    . /app/entrypoint.sh\n    python -V\n",
    good=_H + "\n%post\n    echo 'export A=1' >> /app/activate.sh\n"
    "%test\n    . /app/activate.sh\n    python -V\n",
)
def _exec_when_sourced(ctx: Context) -> Iterator[Hit]:
    generated: set[str] = set()
    for stage in ctx.raw:
        for sec in stage.sections:
            if not _runs_at_build(sec.name):
                continue
            for _n, line in _code_lines(sec):
                if _WRITES_EXEC.search(line):
                    m = re.search(r">>?\s*(\S+)", line)
                    if m:
                        generated.add(m.group(1).strip("'\""))
    for stage in ctx.raw:
        for sec in stage.sections:
            if not _is_shell(sec.name):
                continue
            for n, line in _code_lines(sec):
                m = re.match(r"\s*(?:\.|source)\s+(\S+)", line)
                if m and m.group(1).strip("'\"") in generated:
                    yield (
                        n,
                        (
                            f'{m.group(1)} ends with `exec "$@"`: sourcing it replaces '
                            "this shell with the caller's arguments; source an activation "
                            "file that only exports, and keep the entrypoint separate"
                        ),
                    )


_ACTIVATION = re.compile(
    r"\b(conda|mamba|micromamba)\s+activate\b|shell-hook|/activate(\.sh)?\b|"
    r"entrypoint\.sh|^\s*(\.|source)\s+\S"
)


@rule(
    code="DB114",
    name="env-only-in-runscript",
    severity=Severity.ERROR,
    summary="The environment is activated only in %runscript.",
    why="`apptainer exec`, `shell`, `test` and `instance start` do not run the runscript; "
    "only %environment is sourced for every action.",
    bad=_H + '\n%runscript\n    . /opt/venv/bin/activate\n    exec python "$@"\n' + _T,
    good=_H + "\n%environment\n    . /opt/venv/bin/activate\n%runscript\n"
    '    exec python "$@"\n' + _T,
)
def _env_only_in_runscript(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.final_stages():
        run = stage.section("runscript")
        if run is None:
            continue
        env = stage.section("environment")
        env_text = env.body if env is not None else ""
        if _ACTIVATION.search(env_text):
            continue
        for n, line in _code_lines(run):
            if _ACTIVATION.search(line):
                yield (
                    n,
                    (
                        "the environment is activated only in %runscript: `apptainer exec`, "
                        "`shell`, `test` and `instance start` never see it; activate in "
                        "%environment (POSIX sh)"
                    ),
                )
                break


@rule(
    code="DB115",
    name="no-digest",
    severity=Severity.WARNING,
    summary="Base image by tag without a digest.",
    why="Tags move; the same .def builds a different image next month.",
    bad="Bootstrap: docker\nFrom: ubuntu:24.04\n" + _T,
    good=_H + _T,
)
def _no_digest(ctx: Context) -> Iterator[Hit]:
    for n, ref in _image_refs(ctx):
        if "@sha256:" not in ref and not has_placeholder(ref):
            yield (
                n,
                (
                    f"{ref} is pinned by tag only; tags move. Pin the digest "
                    "(image@sha256:...) for reproducible builds"
                ),
            )


@rule(
    code="DB116",
    name="latest-tag",
    severity=Severity.WARNING,
    summary="Base image with the latest tag (or none).",
    why="`latest` is whatever was pushed last.",
    bad="Bootstrap: docker\nFrom: ubuntu\n" + _T,
    good="Bootstrap: docker\nFrom: ubuntu:24.04\n" + _T,
)
def _latest(ctx: Context) -> Iterator[Hit]:
    for n, ref in _image_refs(ctx):
        name = ref.split("@")[0]
        tail = name.rsplit("/", 1)[-1]
        if ":" not in tail or tail.endswith(":latest"):
            yield n, f"{ref} uses the `latest` tag (explicit or implied); name a version"


@rule(
    code="DB117",
    name="files-from-unknown-stage",
    severity=Severity.ERROR,
    summary="%files from a stage that does not exist (earlier).",
    why="build.go findStageIndex: `stage NAME was not found`.",
    bad=_H + "Stage: final\n\n%files from biuld\n    /out\n" + _T,
    good=_H + "Stage: build\n\n" + _H + "Stage: final\n\n%files from build\n    /out\n" + _T,
    supersedes=("DB100",),
)
def _files_from_unknown(ctx: Context) -> Iterator[Hit]:
    names: list[str] = []
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name != "files":
                continue
            source, name = files_source(sec.args)
            if source is FilesSource.STAGE and name not in names:
                yield (
                    sec.line,
                    (
                        f"%files from {name}: no earlier stage has "
                        f"`Stage: {name}`; Apptainer stops with `stage "
                        f"{name} was not found`"
                    ),
                )
        if "stage" in stage.header:
            names.append(stage.header["stage"])


def _placeholders(stage_text: str) -> list[tuple[int, str]]:
    """(line offset, name) of the ``{{ NAME }}`` placeholders outside comment lines."""
    found = []
    for i, line in enumerate(stage_text.split("\n")):
        for m in PLACEHOLDER.finditer(line):
            if re.match(r"\s*#[^!]", line[: m.start()]):
                continue
            found.append((i, m.group(1)))
    return found


def _arguments(ctx: Context) -> Iterator[tuple[dict[str, int], list[tuple[int, str]]]]:
    """Per stage: {defined name: line} and [(line, used name)]."""
    for stage, text in zip(ctx.raw, ctx.stage_texts, strict=False):
        defined: dict[str, int] = {}
        sec = stage.section("arguments")
        if sec is not None:
            for offset, line in body_entries(sec.body):
                key, sep, _ = line.partition("=")
                if sep:
                    defined[key.strip()] = sec.line + offset
        used = [(stage.line + offset, name) for offset, name in _placeholders(text)]
        yield defined, used


@rule(
    code="DB118",
    name="argument-undefined",
    severity=Severity.WARNING,
    summary="A {{ placeholder }} with no default in %arguments.",
    why="args.go: `build var X is not defined through either --build-arg "
    "(--build-arg-file) or 'arguments' section` unless every build passes it.",
    bad="Bootstrap: docker\nFrom: ubuntu:{{ TAG }}\n" + _T,
    good="Bootstrap: docker\nFrom: ubuntu:{{ TAG }}\n\n%arguments\n    TAG=24.04\n" + _T,
)
def _arg_undefined(ctx: Context) -> Iterator[Hit]:
    for defined, used in _arguments(ctx):
        for n, name in used:
            if name not in defined:
                yield (
                    n,
                    (
                        f"{{{{ {name} }}}} has no default in this stage's %arguments: the "
                        f"build fails unless every build passes --build-arg {name}=..."
                    ),
                )


@rule(
    code="DB119",
    name="argument-unused",
    severity=Severity.INFO,
    summary="An %arguments default that nothing uses.",
    why="Dead configuration; a typo in the placeholder's name looks like this.",
    bad=_H + "\n%arguments\n    TAG=24.04\n" + _T,
    good="Bootstrap: docker\nFrom: ubuntu:{{ TAG }}\n\n%arguments\n    TAG=24.04\n" + _T,
)
def _arg_unused(ctx: Context) -> Iterator[Hit]:
    for defined, used in _arguments(ctx):
        names = {name for _n, name in used}
        for name, n in defined.items():
            if name not in names:
                yield (
                    n,
                    (f"%arguments defines {name} but nothing in this stage uses {{{{ {name} }}}}"),
                )


_SECRETS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), "a GitHub token"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), "a Hugging Face token"),
    (re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (
        re.compile(
            r"(?i)\b[A-Z0-9_]*(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY)[A-Z0-9_]*\s*[=:]\s*"
            r"""(?!["']?\$)(?!["']?\{\{)["']?[^\s"'$]{4,}"""
        ),
        "a password or token value",
    ),
]
#: Where a value is set that stays in the image: environments, labels, build scripts.
_SECRET_SECTIONS = ("environment", "labels", "post", "appenv", "applabels", "appinstall", "setup")


@rule(
    code="DB120",
    name="secret",
    severity=Severity.ERROR,
    summary="A secret in %environment, %labels or %post.",
    why="Everything in the .def is stored in the image (/.singularity.d/Singularity) and "
    "visible to anyone who can read it.",
    bad=_H + "\n%environment\n    export HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123456789\n" + _T,
    good=_H + "\n%environment\n    export HF_HOME=/scratch/hf\n" + _T,
)
def _secrets(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name not in _SECRET_SECTIONS:
                continue
            for n, line in _code_lines(sec):
                for pattern, what in _SECRETS:
                    if pattern.search(line):
                        yield (
                            n,
                            (
                                f"%{sec.name} holds {what}: it is stored in the image "
                                "(and its .def) for anyone who can read the image; pass it "
                                "at run time (APPTAINERENV_*, a bind-mounted file)"
                            ),
                        )
                        break


_CURL_SH = re.compile(r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(\S*/)?(ba|da|z|k)?sh\b")


@rule(
    code="DB121",
    name="curl-pipe-sh",
    severity=Severity.WARNING,
    summary="A downloaded script piped into a shell.",
    why="Nothing checks what ran; a compromised or changed URL changes the image.",
    bad=_H + "\n%post\n    curl -fsSL https://pixi.sh/install.sh | sh\n" + _T,
    good=_H + "\n%post\n    curl -fsSLo /tmp/i.sh https://pixi.sh/install.sh\n"
    '    echo "<sha256>  /tmp/i.sh" | sha256sum -c\n    sh /tmp/i.sh\n' + _T,
)
def _curl_sh(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        for sec in stage.sections:
            if not _is_shell(sec.name):
                continue
            for n, line in _code_lines(sec):
                if _CURL_SH.search(line):
                    yield (
                        n,
                        (
                            "downloads and runs a script unchecked; download to a file, "
                            "verify its checksum, then run it"
                        ),
                    )


@rule(
    code="DB122",
    name="no-test",
    severity=Severity.INFO,
    summary="The image has no %test.",
    why="`apptainer test` and the build's test step are the cheapest check that the image "
    "works (e.g. the GPU check).",
    bad=_H,
    good=_H + _T,
)
def _no_test(ctx: Context) -> Iterator[Hit]:
    final = ctx.raw[-1] if ctx.raw else None
    if final is not None and final.section("test") is None:
        yield (
            final.line,
            ("the image has no %test: `apptainer test` and the build cannot check it works"),
        )


def _apt(ctx: Context) -> Iterator[tuple[RawSection, int, str]]:
    """``apt(-get) install`` lines in the sections the build runs."""
    for stage in ctx.raw:
        for sec in stage.sections:
            if _runs_at_build(sec.name):
                for n, line in _code_lines(sec):
                    if re.search(r"\bapt(-get)?\s+(-\S+\s+)*install\b", line):
                        yield sec, n, line


@rule(
    code="DB123",
    name="apt-recommends",
    severity=Severity.WARNING,
    summary="apt-get install without --no-install-recommends.",
    why="Recommended packages make images larger and slower to ship to every job.",
    bad=_H + "\n%post\n    apt-get update && apt-get install -y git\n"
    "    rm -rf /var/lib/apt/lists/*\n" + _T,
    good=_H + "\n%post\n    apt-get update && apt-get install -y --no-install-recommends "
    "git\n    rm -rf /var/lib/apt/lists/*\n" + _T,
)
def _apt_recommends(ctx: Context) -> Iterator[Hit]:
    for _sec, n, line in _apt(ctx):
        if "--no-install-recommends" not in line:
            yield n, "apt-get install without --no-install-recommends pulls in extra packages"


@rule(
    code="DB124",
    name="apt-cleanup",
    severity=Severity.WARNING,
    summary="apt-get install without removing /var/lib/apt/lists.",
    why="The package lists stay in the image (tens of MB).",
    bad=_H + "\n%post\n    apt-get update && apt-get install -y --no-install-recommends git\n" + _T,
    good=_H + "\n%post\n    apt-get update && apt-get install -y --no-install-recommends "
    "git\n    rm -rf /var/lib/apt/lists/*\n" + _T,
)
def _apt_cleanup(ctx: Context) -> Iterator[Hit]:
    for sec, n, _line in _apt(ctx):
        if "/var/lib/apt/lists" not in sec.body:
            yield (
                n,
                (
                    "apt-get install without `rm -rf /var/lib/apt/lists/*` in the same "
                    "section leaves the package lists in the image"
                ),
            )


# --- policy (from [tool.defbuilder.policy] or defbuilder.toml) -----------------------------


@rule(
    code="DP201",
    name="policy-base",
    severity=Severity.ERROR,
    summary="Base image not in the policy's allowed-bases.",
    why="Teams standardize on vetted bases ([tool.defbuilder.policy] allowed-bases).",
    bad="Bootstrap: docker\nFrom: random/image:1\n" + _T,
    good=_H + _T,
    policy=True,
)
def _policy_base(ctx: Context) -> Iterator[Hit]:
    patterns = ctx.policy.get("allowed-bases")
    if not patterns:
        return
    for n, ref in _image_refs(ctx):
        if not any(fnmatch.fnmatchcase(ref, p) for p in patterns):
            yield n, f"base image {ref} is not allowed by policy ({', '.join(patterns)})"


@rule(
    code="DP202",
    name="policy-digest",
    severity=Severity.ERROR,
    summary="Policy requires digest pinning.",
    why="[tool.defbuilder.policy] require-digest = true.",
    bad="Bootstrap: docker\nFrom: ubuntu:24.04\n" + _T,
    good=_H + _T,
    policy=True,
)
def _policy_digest(ctx: Context) -> Iterator[Hit]:
    if ctx.policy.get("require-digest"):
        for n, ref in _image_refs(ctx):
            if "@sha256:" not in ref:
                yield n, f"policy requires digest pinning: {ref} has no @sha256:"


@rule(
    code="DP203",
    name="policy-labels",
    severity=Severity.ERROR,
    summary="A label the policy requires is missing.",
    why="[tool.defbuilder.policy] required-labels.",
    bad=_H + _T,
    good=_H + "\n%labels\n    maintainer team@example.org\n" + _T,
    policy=True,
)
def _policy_labels(ctx: Context) -> Iterator[Hit]:
    required = ctx.policy.get("required-labels") or []
    if not required or not ctx.raw:
        return
    final = ctx.raw[-1]
    sec = final.section("labels")
    have = get_labels(sec.body) if sec is not None else {}
    missing = [k for k in required if k not in have]
    if missing:
        yield (
            (sec.line if sec else final.line),
            (f"policy requires labels: {', '.join(missing)} missing"),
        )


@rule(
    code="DP204",
    name="policy-test",
    severity=Severity.ERROR,
    summary="Policy requires a %test.",
    why="[tool.defbuilder.policy] require-test = true.",
    bad=_H,
    good=_H + _T,
    policy=True,
)
def _policy_test(ctx: Context) -> Iterator[Hit]:
    if ctx.policy.get("require-test"):
        for n, _m in _no_test(ctx):
            yield n, "policy requires a %test in the final stage"


@rule(
    code="DP205",
    name="policy-forbidden-command",
    severity=Severity.ERROR,
    summary="A command the policy forbids.",
    why="[tool.defbuilder.policy] forbidden-commands.",
    bad=_H + "\n%post\n    sudo true\n" + _T,
    good=_H + "\n%post\n    true\n" + _T,
    policy=True,
)
def _policy_forbidden(ctx: Context) -> Iterator[Hit]:
    words = ctx.policy.get("forbidden-commands") or []
    if not words:
        return
    for stage in ctx.raw:
        for sec in stage.sections:
            if not _is_shell(sec.name):
                continue
            for n, line in _code_lines(sec):
                for word in words:
                    if re.search(rf"(^|[\s;&|(]){re.escape(word)}(\s|$|;)", line):
                        yield n, f"policy forbids `{word}`"


#: Every rule, in code order (the order they are declared above).
RULES: tuple[Rule, ...] = tuple(_registered)

#: The policy the DP rules' examples are checked with (see tests/test_lint.py).
EXAMPLE_POLICY = {
    "allowed-bases": ["ubuntu:*"],
    "require-digest": True,
    "required-labels": ["maintainer"],
    "require-test": True,
    "forbidden-commands": ["sudo"],
}


def _check_declarations() -> None:
    codes = {r.code for r in RULES}
    for r in RULES:
        unknown = set(r.supersedes) - codes
        if unknown:
            raise ValueError(f"lint rule {r.code} supersedes unknown codes {sorted(unknown)}")


_check_declarations()
