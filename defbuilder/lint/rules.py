"""Lint rules: each check declared with its code, severity, why it matters, and examples.

Every check is a function of a ``Context`` (context.py) that yields ``(line, message)``
and is declared with ``@rule(...)``: a stable code (never reused), a name, a
``Severity``, a summary, why it matters, a bad and a good example, and the
properties the engine acts on (``policy``, ``needs_shellcheck``, ``supersedes``,
``not_linted``). A rule that is not a policy rule may still honour a policy key that
narrows it, declared in its ``why`` (DB115 and ``allow-tags``).
``RULES`` holds them in code order. ``docs/lint-rules.md`` is generated from these
objects (``python -m defbuilder.lint.docs``), and the tests lint every rule's ``bad``
example (it must fire) and ``good`` example (it must not), so code, docs and tests
agree.

What Apptainer decides (section kinds, the ``#`` cut of section arguments, header
keys each agent reads, placeholders, ``%files``/``%labels`` reading) comes from
``defbuilder.apptainer``; a rule here only judges what it reads. Rules must not
import the engine.

Checks run in time linear in the file for every shape: they take sections from the
context's index (``ctx.sections("files")``) and find candidate lines with a regular
expression over the whole text (``ctx.lines_matching``), then judge each line with a
pattern that cannot backtrack without bound (possessive quantifiers, no nested
unbounded repeats), so no input makes them quadratic.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Callable, Iterator

from ..apptainer import (
    AGENTS,
    APP_SECTIONS,
    BUILD_SECTIONS,
    SHEBANG_SECTIONS,
    VALID_HEADER_KEYS,
    FilesSource,
    SectionKind,
    agent_reads,
    body_entries,
    c_shell,
    files_source,
    get_labels,
    go_trim,
    has_placeholder,
    read_arguments,
    section_kind,
    split_appfiles_line,
    split_files_line,
)
from ..parse import RawSection, RawStage
from .context import Check, Context, Hit, Rule, Severity

__all__ = ["EXAMPLE_POLICY", "RULES", "allow_tags_problem", "rule"]

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
    not_linted: bool = False,
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
                not_linted=not_linted,
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


#: POSIX sh's <blank> (XCU 2.3 Token Recognition): what separates words and may
#: precede the ``#`` of a comment line. Not Python's ``str.strip()`` set, nor Go's.
_SH_BLANK = " \t"


def _is_code(line: str) -> bool:
    """Whether a line of shell is more than blanks or a comment."""
    stripped = line.lstrip(_SH_BLANK)
    return bool(stripped) and not stripped.startswith("#")


def _code_lines(section: RawSection) -> Iterator[tuple[int, str]]:
    """Body lines that are not blank or comments."""
    for n, line in _lines(section):
        if _is_code(line):
            yield n, line


def _merged_code_lines(stage: RawStage, name: str) -> list[tuple[int, str]]:
    """Code lines of every ``%name`` section of a stage, each with its own line number
    (Apptainer appends the bodies of repeated sections; ``RawStage.section`` merges
    them, which loses the later sections' line numbers)."""
    return [hit for sec in stage.sections if sec.name == name for hit in _code_lines(sec)]


def _image_refs(ctx: Context) -> list[tuple[int, str]]:
    """``From:`` values that name an image in a registry (not a local file), with
    their lines (read once per file)."""

    def find() -> list[tuple[int, str]]:
        pulls: dict[str, bool] = {}  # agent -> whether From: names a registry image
        found = []
        for stage in ctx.raw:
            header = stage.header
            ref = header.get("from")
            if ref is None:
                continue
            agent = header.get("bootstrap", "")
            pull = pulls.get(agent)
            if pull is None:
                pull = pulls[agent] = agent not in (
                    "localimage",
                    "buildkit",
                    "dockerfile",
                ) and agent_reads(agent, "from")
            if pull:
                found.append((stage.header_lines["from"], ref))
        return found

    refs: list[tuple[int, str]] = ctx.shared("image-refs", find)
    return refs


def _reference(ref: str) -> tuple[str | None, bool]:
    """(tag or None, whether a digest pins it) of an image reference
    ``[host[:port]/]name[:tag][@sha256:digest]`` (the tag is after the last ``:`` of
    the last path component, so a registry port is not a tag)."""
    name, _at, _digest = ref.partition("@")
    _repo, colon, tag = name.rpartition("/")[2].partition(":")
    return (tag if colon else None), "@sha256:" in ref


# --- rules, in code order ----------------------------------------------------------------


@rule(
    code="DB000",
    name="not-linted",
    severity=Severity.ERROR,
    summary="A file that could not be read, or a recipe script that fails to load.",
    why="Nothing in the file was checked. The other files are linted, and lint exits 2: "
    "a run that could not check everything it was given never passes. This finding "
    "cannot be ignored or suppressed. Its examples are recipe scripts.",
    bad="from defbuilder import Stage\n\nrecipe = Stage(Header.docker('ubuntu:24.04'))\n",
    good="from defbuilder import Header, Stage\n\nrecipe = Stage(Header.docker('ubuntu:24.04'))\n",
    not_linted=True,
)
def _not_linted(ctx: Context) -> Iterator[Hit]:
    yield from ctx.load_errors


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
    for hit in [*(e for stage in ctx.raw for e in stage.read_errors), *ctx.parse_errors]:
        if hit not in seen:
            seen.add(hit)
            yield hit


def _honoured_shebang_line(ctx: Context, sec: RawSection) -> int:
    """The one line whose #! Apptainer honours for this %runscript/%startscript/%test:
    the first body line of the stage's merged section (handle_shebang on the bodies
    of repeated sections appended, deffile.go parseTokenSection)."""
    return ctx.merged(sec).line + 1


_SHEBANG = re.compile("#!")


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
    for n, line, sec in ctx.body_lines_matching(_SHEBANG, lambda sec: True):
        if not go_trim(line).startswith("#!"):
            continue
        kind = section_kind(sec.name)
        if _runs_at_build(sec.name):
            yield (
                n,
                (
                    f"%{sec.name} runs as /bin/sh -ex, so this #! line is only a "
                    "comment; choose a shell with `%post -c /bin/bash -e`"
                ),
            )
        elif kind is SectionKind.SHEBANG_SCRIPT and n != _honoured_shebang_line(ctx, sec):
            yield (
                n,
                (
                    f"only the first body line of %{sec.name} can choose the "
                    "interpreter; this #! is a comment"
                ),
            )
        elif kind is SectionKind.APP_SCRIPT:
            yield n, f"%{sec.name} is always written as #!/bin/sh; this #! is a comment"


_SET_E = re.compile(r"^[ \t]*+set[ \t]++-[a-z]*+e", re.M)


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
    # Repeated sections run as one script with one set of arguments (RawStage.section).
    for stage in ctx.raw:
        present = stage.names()
        for name in BUILD_SECTIONS:
            merged = stage.section(name) if name in present else None
            rest = c_shell(merged.args) if merged is not None and merged.args else None
            if merged is None or rest is None:
                continue
            body = merged.body
            if (
                any(p.startswith("-") and "e" in p for p in rest[1:])
                or _SET_E.search(body)
                or "set -o errexit" in body
            ):
                continue
            yield (
                _args_line(stage, name),
                (
                    f"%{name} {go_trim(merged.args)} runs `/bin/sh -ex -c "
                    f'"{" ".join(rest)} script"`: the inner shell has no -e and '
                    "goes on after a failing command; add -e or `set -e`"
                ),
            )


#: Sections whose arguments change how they run (util.go, metadata.go).
_WITH_ARGS = (*BUILD_SECTIONS, *SHEBANG_SECTIONS)


def _args_line(stage: RawStage, name: str) -> int:
    """The line of the section whose arguments a repeated section runs with: the last
    one with a space after its name (deffile.go parseTokenSection)."""
    found = stage.parts(name)
    return next((s.line for s in reversed(found) if s.spaced), found[0].line)


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
    for sec in ctx.sections(""):
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
    for name in ctx.section_names():
        if name and section_kind(name) is None:
            for sec in ctx.sections(name):
                yield (
                    sec.line,
                    (
                        f"%{sec.name} is not a section Apptainer knows; it stops "
                        "with `invalid section(s) specified`"
                    ),
                )
        elif name in APP_SECTIONS:
            for sec in ctx.sections(name):
                if not sec.app:
                    yield sec.line, f"%{sec.name} needs an app name"


@rule(
    code="DB105",
    name="files-single-quote",
    severity=Severity.ERROR,
    summary="Single quotes in a %files line (any quote in %appfiles).",
    why="Apptainer's fileSplitter has no closing single quote: 'a b' c reads as 'a b and ' "
    "c (deffile.go). %appfiles lines have no quoting at all: apps.go copyFiles splits "
    "them at the first space.",
    bad=_H + "\n%files\n    'my file' /opt/\n" + _T,
    good=_H + '\n%files\n    "my file" /opt/\n' + _T,
)
def _files_single_quote(ctx: Context) -> Iterator[Hit]:
    for sec in ctx.sections("files", "appfiles"):
        for offset, line in body_entries(sec.body):
            n = sec.line + offset
            if sec.name == "appfiles":
                src, dst = split_appfiles_line(line)
                if "'" in src + dst or '"' in src + dst:
                    yield (
                        n,
                        (
                            "%appfiles has no quoting: this line reads as "
                            f"src={src!r} dst={dst!r}; rename the file or use %files"
                        ),
                    )
            elif "'" in _FILES_QUOTED.sub("", line):
                src, dst = split_files_line(line)
                yield (
                    n,
                    (
                        f"Apptainer's %files splitter mishandles single quotes: this line "
                        f"reads as src={src!r} dst={dst!r}; use double quotes"
                    ),
                )


_FILES_QUOTED = re.compile(r'"[^"]*+"')


@rule(
    code="DB106",
    name="files-inline-comment",
    severity=Severity.ERROR,
    summary="An inline # comment in a %files line.",
    why="%files lines have no comments after a path: `src # note` copies src to `#` "
    "(deffile.go). (%appfiles lines are cut at `#`: apps.go copyFiles.)",
    bad=_H + "\n%files\n    app.py # the app\n" + _T,
    good=_H + "\n%files\n    # the app\n    app.py\n" + _T,
)
def _files_inline_comment(ctx: Context) -> Iterator[Hit]:
    for sec in ctx.sections("files"):
        for offset, line in body_entries(sec.body):
            if _INLINE_COMMENT.search(_FILES_QUOTED.sub("", line)):
                src, dst = split_files_line(line)
                yield (
                    sec.line + offset,
                    (
                        f"%files has no inline comments: this line reads as src={src!r} "
                        f"dst={dst!r}; put the comment on its own line"
                    ),
                )


_INLINE_COMMENT = re.compile(r"\s#")


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
        value = stage.header.get("registry")
        if value is not None and "://" in value:
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
    reads: dict[tuple[str, str], bool] = {}
    read_all: dict[str, frozenset[str]] = {}  # agent -> keys it reads, and bootstrap
    for stage in ctx.raw:
        agent = stage.header.get("bootstrap", "")
        if agent not in AGENTS:
            continue
        known = read_all.get(agent)
        if known is None:
            known = read_all[agent] = frozenset(
                {"bootstrap", *(k for k in VALID_HEADER_KEYS if agent_reads(agent, k))}
            )
        if stage.header_lines.keys() <= known:
            continue  # the usual case, decided without a loop
        for key, line in stage.header_lines.items():
            if key == "bootstrap":
                continue
            does = reads.get((agent, key))
            if does is None:
                does = reads[agent, key] = agent_reads(agent, key)
            if not does:
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
    "reaches the shell, and the program may be killed without cleanup. Builtins that "
    "start no program (echo, printf, export, cd, ...) may follow the last program; "
    "the rule reports the last line that runs one.",
    bad=_H + '\n%runscript\n    python /app/main.py "$@"\n    printf "done\\n"\n' + _T,
    good=_H + '\n%runscript\n    printf "starting\\n"\n    exec python /app/main.py "$@"\n' + _T,
)
def _runscript_no_exec(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.final_stages():
        for name in ("runscript", "startscript"):  # what `run` and `instance start` start
            code = [(n, ln.lstrip(_SH_BLANK)) for n, ln in _merged_code_lines(stage, name)]
            if any(re.match(r"exec(\s|$)", ln) for _, ln in code):
                continue
            for n, line in reversed(code):
                if line.startswith(("exit", "fi", "esac", "done", "}")):
                    break  # ends a compound command or the script: not judged
                words = _command_names(line)
                if words is not None and all(w in NO_PROGRAM_BUILTINS for w in words):
                    continue  # only builtins: look at the line above
                yield (
                    n,
                    (
                        f"%{name} runs its program as a child of the shell: signals from "
                        "the batch system reach the shell, not the program; use "
                        "`exec program`"
                    ),
                )
                break


#: Builtins of dash and bash that start no program and return at once: a runscript
#: may end with them and still have no child process. (``.``, ``eval``, ``command``
#: and ``wait`` are builtins too, but run or wait for other commands.) Each is a
#: builtin in both shells (``command -V NAME`` in dash, ``type -t NAME`` in bash;
#: tests/test_lint.py checks it).
NO_PROGRAM_BUILTINS = frozenset(
    {
        ":",
        "true",
        "false",
        "echo",
        "printf",
        "cd",
        "pwd",
        "export",
        "readonly",
        "local",
        "set",
        "shift",
        "unset",
        "umask",
        "ulimit",
        "alias",
        "unalias",
        "hash",
        "type",
        "test",
        "[",
        "getopts",
        "read",
        "trap",
        "times",
        "return",
        "kill",
        "jobs",
    }
)
_SH_OPERATORS = frozenset(";&|()")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*+=")


def _command_names(line: str) -> list[str] | None:
    """The name of each simple command on one line of shell, or None when the line
    cannot be read that simply (an open quote, a very long line)."""
    if len(line) > 4096:
        return None
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return None
    names: list[str] = []
    expect = True  # the next word is a command name
    skip = False  # the next word is a redirection's target
    for i, tok in enumerate(tokens):
        if skip:
            skip = False
        elif set(tok) <= _SH_OPERATORS:
            expect = True
        elif "<" in tok or ">" in tok:
            skip = True
        elif not expect or _ASSIGNMENT.match(tok):
            continue
        elif tok.isdigit() and i + 1 < len(tokens) and tokens[i + 1][:1] in "<>":
            continue  # a file descriptor before a redirection
        else:
            names.append(tok)
            expect = False
    return names


_WRITES_EXEC = re.compile(r"""exec[ \t]++(\\?["'])?\$@""")


_REDIRECT_TARGET = re.compile(r">>?\s*+(\S+)")
_SOURCES = re.compile(r"[ \t]*+(?:\.|source)[ \t]++(\S+)")
_SOURCES_ANYWHERE = re.compile(r"^[ \t]*+(?:\.|source)[ \t]", re.M)


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
    for _n, line, _sec in ctx.body_lines_matching(_WRITES_EXEC, lambda s: _runs_at_build(s.name)):
        if _is_code(line) and _WRITES_EXEC.search(line):
            m = _REDIRECT_TARGET.search(line)
            if m:
                generated.add(m.group(1).strip("'\""))
    if not generated:
        return
    for n, line, _sec in ctx.body_lines_matching(_SOURCES_ANYWHERE, lambda s: _is_shell(s.name)):
        m = _SOURCES.match(line)
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
    r"\b(conda|mamba|micromamba)[ \t]++activate\b|shell-hook|/activate(\.sh)?\b|"
    r"entrypoint\.sh|^[ \t]*+(\.|source)[ \t]++\S"
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
        run = _merged_code_lines(stage, "runscript")
        if not run:
            continue
        if any(_ACTIVATION.search(line) for _n, line in _merged_code_lines(stage, "environment")):
            continue
        for n, line in run:
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


_TAG_WILDCARDS = ("*", "?", "[!")


def allow_tags_problem(pattern: str) -> str | None:
    """Why a policy ``allow-tags`` entry is refused, or None. An entry names one image
    (no wildcard before the ``:`` of its tag) and says what its version tags look
    like (the tag does not start with ``*``, ``?`` or ``[!``), so no entry allows
    every image's tags or a floating tag such as ``pixi:noble`` (DB115 is for that).

    >>> allow_tags_problem("nvidia/cuda:[0-9]*.[0-9]*.[0-9]*-*") is None
    True
    >>> print(allow_tags_problem("nvidia/*"))  # doctest: +ELLIPSIS
    'nvidia/*' does not name one image and its tag: ...
    >>> print(allow_tags_problem("nvidia/cuda:*"))  # doctest: +ELLIPSIS
    'nvidia/cuda:*' allows every tag of nvidia/cuda, floating ones too; ...
    """
    if "@" in pattern:
        return f"{pattern!r} names a digest; a digest needs no allowance"
    cut = min((i for i in map(pattern.find, "*?[") if i >= 0), default=len(pattern))
    _image, colon, tag = pattern[:cut].rpartition("/")[2].partition(":")
    if not colon:
        return (
            f"{pattern!r} does not name one image and its tag: write the image in full, "
            "then `:` and the tag pattern (wildcards only in the tag)"
        )
    if not tag and pattern[cut:].startswith(_TAG_WILDCARDS):
        name = pattern[: cut - 1]
        return (
            f"{pattern!r} allows every tag of {name}, floating ones too; say what its "
            f"version tags look like, e.g. '{name}:[0-9]*'"
        )
    return None


@rule(
    code="DB115",
    name="no-digest",
    severity=Severity.WARNING,
    summary="Base image by tag without a digest.",
    why="Tags move: a publisher can push another image under the same tag, and the same "
    ".def builds a different image next month; a digest is the immutable identifier "
    "(Docker's reference, https://docs.docker.com/reference/cli/docker/image/pull/, "
    '"Pull an image by digest"). Pin the digest, or, where a team accepts the version '
    "tags of "
    "publishers it trusts, list them in the policy's `allow-tags` (docs/lint.md says what "
    "that leaves open). (An image with no tag, or `latest`, is DB116's, which `allow-tags` "
    "does not change; nor does it change the policy's `require-digest`, DP202.)",
    bad="Bootstrap: docker\nFrom: ubuntu:24.04\n" + _T,
    good=_H + _T,
)
def _no_digest(ctx: Context) -> Iterator[Hit]:
    allowed = ctx.policy.get("allow-tags") or ()
    for n, ref in _image_refs(ctx):
        tag, pinned = _reference(ref)
        if (
            tag not in (None, "latest")
            and not pinned
            and not has_placeholder(ref)
            and not any(fnmatch.fnmatchcase(ref, p) for p in allowed)
        ):
            yield (
                n,
                (
                    f"{ref} is pinned by tag only; tags move. Pin the digest "
                    "(image@sha256:...), or allow this publisher's version tags in the "
                    "team policy (allow-tags)"
                ),
            )


@rule(
    code="DB116",
    name="latest-tag",
    severity=Severity.WARNING,
    summary="Base image with the latest tag (or none), and no digest.",
    why="`latest` is whatever was pushed last. (A digest pins the image whatever the tag.)",
    bad="Bootstrap: docker\nFrom: ubuntu\n" + _T,
    good="Bootstrap: docker\nFrom: ubuntu:24.04\n" + _T,
)
def _latest(ctx: Context) -> Iterator[Hit]:
    for n, ref in _image_refs(ctx):
        tag, pinned = _reference(ref)
        if tag in (None, "latest") and not pinned and not has_placeholder(ref):
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
    copies = [sec for sec in ctx.sections("files") if sec.args]
    if not copies:
        return
    first: dict[str, int] = {}  # stage name -> index of the first stage with it
    for i, stage in enumerate(ctx.raw):
        if "stage" in stage.header:
            first.setdefault(stage.header["stage"], i)
    for sec in copies:
        source, name = files_source(sec.args)
        if source is FilesSource.STAGE and first.get(name or "", len(ctx.raw)) >= ctx.stage_at(
            sec.line
        ):
            yield (
                sec.line,
                (
                    f"%files from {name}: no earlier stage has "
                    f"`Stage: {name}`; Apptainer stops with `stage "
                    f"{name} was not found`"
                ),
            )


def _arguments(ctx: Context) -> Iterator[tuple[dict[str, int], list[tuple[int, str]]]]:
    """Per stage with %arguments or placeholders: {defined name: line} (as
    ``apptainer.read_arguments`` reads them) and [(line, name)] of the placeholders
    Apptainer substitutes (``apptainer.build_arg_uses``)."""
    defined: dict[int, dict[str, int]] = {}
    for sec in ctx.sections("arguments"):
        names = defined.setdefault(ctx.stage_at(sec.line), {})
        for offset, key, _value in read_arguments(sec.body):
            if key is not None:
                names[key] = sec.line + offset
    uses = ctx.build_arg_uses()
    for i in sorted(set(defined) | set(uses)):
        yield defined.get(i, {}), uses.get(i, [])


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
    (re.compile(r"-----BEGIN [A-Z ]*+PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30}"), "a GitHub token"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bhf_[A-Za-z0-9]{30}"), "a Hugging Face token"),
    (re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10}"), "a Slack token"),
]
#: ``NAME=value`` / ``NAME: value`` with a literal value of 4+ characters (not ``$X`` or
#: ``{{ X }}``); possessive, so a long word is read once.
_ASSIGNED = re.compile(
    r"""\b([A-Za-z0-9_]++)\s*+[=:]\s*+(?!["']?\$)(?!["']?\{\{)["']?[^\s"'$]{4}"""
)
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY", re.I | re.A)
#: Lines worth a closer look: a token's prefix, or a secret-like name in any case.
_SECRET_PREFIXES = [re.compile(p) for p in ("-----BEGIN ", "gh[pousr]_", "AKIA", "hf_", "xox")]
_SECRET_WORDS = ("passw", "secret", "token", "api")


def _secret(line: str) -> str | None:
    """What kind of secret the line holds, if any."""
    for pattern, what in _SECRETS:
        if pattern.search(line):
            return what
    for m in _ASSIGNED.finditer(line):
        if _SECRET_NAME.search(m.group(1)):
            return "a password or token value"
    return None


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
    for n, line, sec in ctx.body_lines_matching(
        _SECRET_PREFIXES, lambda s: s.name in _SECRET_SECTIONS, folded=_SECRET_WORDS
    ):
        what = _secret(line) if _is_code(line) else None
        if what is not None:
            yield (
                n,
                (
                    f"%{sec.name} holds {what}: it is stored in the image "
                    "(and its .def) for anyone who can read the image; pass it "
                    "at run time (APPTAINERENV_*, a bind-mounted file)"
                ),
            )


_FETCH = re.compile(r"\b(curl|wget)\b")
_FETCHERS = [re.compile("curl"), re.compile("wget")]
_SHELL_HEAD = re.compile(r"\s*+(sudo\s++)?(\S*/)?(ba|da|z|k)?sh\b")
_SH_SEPARATOR = re.compile(r"([|;&])")


def _pipes_download_to_shell(line: str) -> bool:
    """``curl ... | sh`` (or wget, bash, sudo sh...): a command that downloads, piped
    straight into a shell. The line is cut at ``| ; &`` once, so any length is linear."""
    parts = _SH_SEPARATOR.split(line)  # text, separator, text, separator, ...
    return any(
        parts[i + 1] == "|" and _FETCH.search(parts[i]) and _SHELL_HEAD.match(parts[i + 2])
        for i in range(0, len(parts) - 2, 2)
    )


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
    for n, line, _sec in ctx.body_lines_matching(_FETCHERS, lambda s: _is_shell(s.name)):
        if _is_code(line) and _pipes_download_to_shell(line):
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


_APT_INSTALL = re.compile(r"\bapt(?:-get)?\s++(?:-\S++\s++)*+install\b")
#: The same without ``\b``, so ``re`` looks for the literal ``apt`` first.
_APT = re.compile(r"apt(?:-get)?\s++(?:-\S++\s++)*+install\b")


def _apt(ctx: Context) -> list[tuple[RawSection, int, str]]:
    """``apt(-get) install`` lines in the sections the build runs (read once for
    DB123 and DB124)."""

    def find() -> list[tuple[RawSection, int, str]]:
        return [
            (sec, n, line)
            for n, line, sec in ctx.body_lines_matching(_APT, lambda s: _runs_at_build(s.name))
            if _is_code(line) and _APT_INSTALL.search(line)
        ]

    found: list[tuple[RawSection, int, str]] = ctx.shared("apt-install", find)
    return found


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
    cleans: dict[int, bool] = {}  # section line -> whether its body removes the lists
    for sec, n, _line in _apt(ctx):
        clean = cleans.get(sec.line)
        if clean is None:
            clean = cleans[sec.line] = "/var/lib/apt/lists" in sec.body
        if not clean:
            yield (
                n,
                (
                    "apt-get install without `rm -rf /var/lib/apt/lists/*` in the same "
                    "section leaves the package lists in the image"
                ),
            )


@rule(
    code="DB125",
    name="repeated-section-args",
    severity=Severity.WARNING,
    summary="A repeated section whose lines run with another section line's arguments.",
    why="Apptainer appends the bodies of repeated sections into one script and keeps "
    "the arguments of the last section line that has a space after the name, even "
    "an empty one (deffile.go parseTokenSection): `%post -c /bin/bash` followed by "
    "`%post ` runs all of %post under /bin/sh. Merge the sections, or give each the "
    "same arguments.",
    bad=_H + "\n%post -c /bin/bash -e\n    shopt -s globstar\n%post \n    echo done\n" + _T,
    good=_H + "\n%post -c /bin/bash -e\n    shopt -s globstar\n    echo done\n" + _T,
)
def _repeated_section_args(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        repeated = stage.repeated()
        for name in _WITH_ARGS if repeated else ():
            found = stage.parts(name) if name in repeated else []
            merged = stage.section(name) if found else None
            if merged is None:
                continue
            effective = _args_line(stage, name)
            for sec in found:
                if sec.line != effective and go_trim(sec.args) != go_trim(merged.args):
                    yield (
                        sec.line,
                        (
                            f"this %{name} runs with the arguments "
                            f"{go_trim(merged.args) or '(none)'!r} of the %{name} at line "
                            f"{effective}, not its own "
                            f"{go_trim(sec.args) or '(none)'!r}: Apptainer merges "
                            "repeated sections into one script with the last arguments"
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
    patterns = [(word, re.compile(rf"(?:^|[\s;&|(]){re.escape(word)}(?:\s|$|;)")) for word in words]
    anywhere = [re.compile(re.escape(word)) for word in words]
    for n, line, _sec in ctx.body_lines_matching(anywhere, lambda s: _is_shell(s.name)):
        if _is_code(line):
            for word, pattern in patterns:
                if pattern.search(line):
                    yield n, f"policy forbids `{word}`"


#: What ``str.splitlines`` breaks a line at besides ``\n`` (``find_unlocked_installs``
#: reads a script with it); a line of a section is cut at ``\n`` only.
_OTHER_BREAKS = str.maketrans(dict.fromkeys("\r\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))


def _shell_commands(sections: list[RawSection]) -> list[tuple[int, str]]:
    """The lines of one script (the bodies of a stage's repeated sections, appended,
    as Apptainer runs them), a line ending in ``\\`` joined with the next as sh joins
    them, each with the .def line it starts on."""
    out: list[tuple[int, str]] = []
    joining = False
    for sec in sections:
        for n, line in _lines(sec):
            line = line.translate(_OTHER_BREAKS)
            if joining:
                start, text = out[-1]
                out[-1] = (start, text[:-1] + " " + line)
            else:
                out.append((n, line))
            joining = _is_code(out[-1][1]) and out[-1][1].endswith("\\")
    return out


def _build_scripts(ctx: Context, word: str) -> Iterator[list[RawSection]]:
    """Per stage, each script the build runs (%setup, %pre, %post, each app's
    %appinstall: its repeated sections together) whose text holds ``word``."""
    scripts: dict[tuple[int, str, str | None], list[RawSection]] = {}
    for sec in ctx.sections(*BUILD_SECTIONS, "appinstall"):
        scripts.setdefault((ctx.stage_at(sec.line), sec.name, sec.app), []).append(sec)
    for sections in scripts.values():
        if any(word in sec.body for sec in sections):
            yield sections


@rule(
    code="DP206",
    name="policy-pixi-lock",
    severity=Severity.ERROR,
    summary="A `pixi install` without a lock, where the policy requires one.",
    why="[tool.defbuilder.policy] require-pixi-lock = true. Without `--locked` or `--frozen` "
    "(or PIXI_LOCKED/PIXI_FROZEN set), `pixi install` solves the environment when the "
    "image is built and writes the lock file (pixi's reference, "
    "https://pixi.prefix.dev/latest/reference/cli/pixi/install/), so two builds of one "
    ".def can install different packages. `--locked` installs the committed pixi.lock "
    "and stops when it no longer matches the manifest; `--frozen` installs it as it is. "
    "`PixiEnvironment` installs `--locked` when the lock exists at render time, and "
    "`defbuilder build` of an unlocked recipe hands the solved lock back to commit.",
    bad=_H + "\n%post\n    pixi install --manifest-path /app/pixi.toml\n" + _T,
    good=_H + "\n%post\n    pixi install --manifest-path /app/pixi.toml --locked\n" + _T,
    policy=True,
)
def _policy_pixi_lock(ctx: Context) -> Iterator[Hit]:
    if not ctx.policy.get("require-pixi-lock"):
        return
    from ..blocks.pixi import find_unlocked_installs  # only where the policy asks

    for sections in _build_scripts(ctx, "pixi"):
        lines = _shell_commands(sections)
        for i, _manifest in find_unlocked_installs("\n".join(text for _n, text in lines)):
            yield (
                lines[i][0],
                "policy requires a pixi lock: this `pixi install` has no --locked or "
                "--frozen, so the build solves the environment; commit pixi.lock beside "
                "the manifest and install with --locked",
            )


#: Every rule, in code order (the order they are declared above).
RULES: tuple[Rule, ...] = tuple(_registered)

#: The policy the DP rules' examples are checked with (see tests/test_lint.py).
EXAMPLE_POLICY = {
    "allowed-bases": ["ubuntu:*"],
    "require-digest": True,
    "required-labels": ["maintainer"],
    "require-test": True,
    "forbidden-commands": ["sudo"],
    "require-pixi-lock": True,
}


def _check_declarations() -> None:
    codes = {r.code for r in RULES}
    for r in RULES:
        unknown = set(r.supersedes) - codes
        if unknown:
            raise ValueError(f"lint rule {r.code} supersedes unknown codes {sorted(unknown)}")


_check_declarations()
