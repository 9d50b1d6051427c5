"""Lint rules: each a stable code, a severity, why it matters, and a bad and a good example.

Codes are never reused. ``docs/lint-rules.md`` is generated from these objects
(``python -m defbuilder.lint.docs``), and the tests lint every rule's ``bad`` example
(it must fire) and ``good`` example (it must not), so code, docs and tests agree.

A check receives a ``Context`` (see engine.py) and yields ``(line, message)``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import attrs

from ..model import PLACEHOLDER_PATTERN
from ..parse import APP_SECTIONS, SECTIONS, RawSection, split_files_line

if TYPE_CHECKING:
    from .engine import Context

__all__ = ["RULES", "Rule"]

Hit = tuple[int, str]
BUILD = ("post", "setup", "pre", "appinstall")
SHEBANG_SECTIONS = ("runscript", "startscript", "test")
SCRIPTED = ("post", "setup", "pre", "runscript", "startscript", "test", "environment",
            "apprun", "appstart", "apptest", "appinstall", "appenv")


@attrs.frozen
class Rule:
    code: str
    name: str
    severity: str  # "error" | "warning" | "info"
    summary: str
    why: str
    bad: str
    good: str
    check: Callable[[Context], Iterator[Hit]] = attrs.field(repr=False, eq=False)
    policy: bool = False


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


# --- checks ------------------------------------------------------------------------------

def _inert_shebang(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        for sec in stage.sections:
            lines = list(_lines(sec))
            for i, (n, line) in enumerate(lines):
                if not line.strip().startswith("#!"):
                    continue
                if sec.name in BUILD:
                    yield n, (f"%{sec.name} runs as /bin/sh -ex, so this #! line is only a "
                              "comment; choose a shell with `%post -c /bin/bash -e`")
                elif sec.name in SHEBANG_SECTIONS and i > 0:
                    yield n, (f"only the first body line of %{sec.name} can choose the "
                              "interpreter; this #! is a comment")
                elif sec.name in ("apprun", "appstart", "apptest"):
                    yield n, f"%{sec.name} is always written as #!/bin/sh; this #! is a comment"


def _bash_without_e(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name not in ("post", "setup", "pre"):
                continue
            params = sec.args.split("#")[0].split()
            if "-c" not in params:
                continue
            rest = params[params.index("-c") + 1:]
            body = sec.body
            if any(p.startswith("-") and "e" in p for p in rest[1:]) or re.search(
                    r"^\s*set\s+-[a-z]*e", body, re.M) or "set -o errexit" in body:
                continue
            yield sec.line, (f"%{sec.name} {sec.args.strip()} runs `/bin/sh -ex -c "
                             f"\"{' '.join(rest)} script\"`: the inner shell has no -e and "
                             "goes on after a failing command; add -e or `set -e`")


def _indented_section(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name == "":
                yield sec.line, ("an indented section header after the first is read with "
                                 "its leading space: Apptainer stops with `invalid section(s) "
                                 "specified`; start the line with %")


def _unknown_section(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name and sec.name not in SECTIONS and sec.name not in APP_SECTIONS:
                yield sec.line, (f"%{sec.name} is not a section Apptainer knows; it stops "
                                 "with `invalid section(s) specified`")
            elif sec.name in APP_SECTIONS and not sec.app:
                yield sec.line, f"%{sec.name} needs an app name"


def _files_lines(ctx: Context) -> Iterator[tuple[int, str]]:
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name in ("files", "appfiles"):
                yield from _code_lines(sec)


def _files_single_quote(ctx: Context) -> Iterator[Hit]:
    for n, line in _files_lines(ctx):
        unquoted = re.sub(r'"[^"]*"', "", line)
        if "'" in unquoted:
            src, dst = split_files_line(line)
            yield n, (f"Apptainer's %files splitter mishandles single quotes: this line "
                      f"reads as src={src!r} dst={dst!r}; use double quotes")


def _files_inline_comment(ctx: Context) -> Iterator[Hit]:
    for n, line in _files_lines(ctx):
        unquoted = re.sub(r'"[^"]*"', "", line)
        if re.search(r"\s#", unquoted):
            src, dst = split_files_line(line)
            yield n, (f"%files has no inline comments: this line reads as src={src!r} "
                      f"dst={dst!r}; put the comment on its own line")


def _registry_scheme(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        value = stage.header.get("registry", "")
        if "://" in value:
            yield stage.header_lines["registry"], (
                f"Registry: {value} gives `docker://{value}/...`; write the bare host[:port]")


def _includecmd(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        if "includecmd" in stage.header:
            yield stage.header_lines["includecmd"], (
                "IncludeCmd: is accepted but no Apptainer code reads it; write a %runscript "
                "(defbuilder.blocks.Entrypoint) instead")


def _ignored_key(ctx: Context) -> Iterator[Hit]:
    from ..model import AGENTS

    for stage in ctx.raw:
        agent = stage.header.get("bootstrap", "")
        if agent not in AGENTS:
            continue
        for key, line in stage.header_lines.items():
            base = "otherurl" if key.startswith("otherurl") else key
            if key in ("bootstrap", "stage", "includecmd"):
                continue
            if base not in AGENTS[agent]:
                yield line, f"Bootstrap: {agent} does not read {key}:; Apptainer ignores it"


def _runscript_no_exec(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.final_stages():
        for name in ("runscript", "startscript"):
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
            yield n, (f"%{name} runs its program as a child of the shell: signals from the "
                      "batch system reach the shell, not the program; use `exec program`")


_WRITES_EXEC = re.compile(r"""exec\s+(\\?["'])?\$@""")


def _exec_when_sourced(ctx: Context) -> Iterator[Hit]:
    generated: set[str] = set()
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name not in BUILD:
                continue
            for _n, line in _code_lines(sec):
                if _WRITES_EXEC.search(line):
                    m = re.search(r">>?\s*(\S+)", line)
                    if m:
                        generated.add(m.group(1).strip("'\""))
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name not in SCRIPTED:
                continue
            for n, line in _code_lines(sec):
                m = re.match(r"\s*(?:\.|source)\s+(\S+)", line)
                if m and m.group(1).strip("'\"") in generated:
                    yield n, (f"{m.group(1)} ends with `exec \"$@\"`: sourcing it replaces "
                              "this shell with the caller's arguments; source an activation "
                              "file that only exports, and keep the entrypoint separate")


_ACTIVATION = re.compile(
    r"\b(conda|mamba|micromamba)\s+activate\b|shell-hook|/activate(\.sh)?\b|"
    r"entrypoint\.sh|^\s*(\.|source)\s+\S")


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
                yield n, ("the environment is activated only in %runscript: `apptainer exec`, "
                          "`shell`, `test` and `instance start` never see it; activate in "
                          "%environment (POSIX sh)")
                break


def _image_refs(ctx: Context) -> Iterator[tuple[int, str]]:
    from ..model import AGENTS

    for stage in ctx.raw:
        agent = stage.header.get("bootstrap", "")
        if agent in AGENTS and "from" in AGENTS[agent] and "from" in stage.header \
                and agent not in ("localimage", "buildkit", "dockerfile"):
            yield stage.header_lines["from"], stage.header["from"]


def _no_digest(ctx: Context) -> Iterator[Hit]:
    for n, ref in _image_refs(ctx):
        if "@sha256:" not in ref and not re.search(PLACEHOLDER_PATTERN, ref):
            yield n, (f"{ref} is pinned by tag only; tags move. Pin the digest "
                      "(image@sha256:...) for reproducible builds")


def _latest(ctx: Context) -> Iterator[Hit]:
    for n, ref in _image_refs(ctx):
        name = ref.split("@")[0]
        tail = name.rsplit("/", 1)[-1]
        if ":" not in tail or tail.endswith(":latest"):
            yield n, f"{ref} uses the `latest` tag (explicit or implied); name a version"


def _files_from_unknown(ctx: Context) -> Iterator[Hit]:
    names: list[str] = []
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name != "files":
                continue
            fields = sec.args.split("#")[0].split()
            if len(fields) == 2 and fields[1] not in names:
                yield sec.line, (f"%files from {fields[1]}: no earlier stage has "
                                 f"`Stage: {fields[1]}`; Apptainer stops with `stage "
                                 f"{fields[1]} was not found`")
        if "stage" in stage.header:
            names.append(stage.header["stage"])


def _placeholders(stage_text: str) -> list[tuple[int, str]]:
    found = []
    for i, line in enumerate(stage_text.split("\n")):
        for m in re.finditer(PLACEHOLDER_PATTERN, line):
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
            for n, line in _code_lines(sec):
                key, sep, _ = line.strip().partition("=")
                if sep:
                    defined[key.strip()] = n
        used = [(stage.line + offset, name) for offset, name in _placeholders(text)]
        yield defined, used


def _arg_undefined(ctx: Context) -> Iterator[Hit]:
    for defined, used in _arguments(ctx):
        for n, name in used:
            if name not in defined:
                yield n, (f"{{{{ {name} }}}} has no default in this stage's %arguments: the "
                          f"build fails unless every build passes --build-arg {name}=...")


def _arg_unused(ctx: Context) -> Iterator[Hit]:
    for defined, used in _arguments(ctx):
        names = {name for _n, name in used}
        for name, n in defined.items():
            if name not in names:
                yield n, (f"%arguments defines {name} but nothing in this stage uses "
                          f"{{{{ {name} }}}}")


_SECRETS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), "a GitHub token"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), "a Hugging Face token"),
    (re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"(?i)\b[A-Z0-9_]*(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY)[A-Z0-9_]*\s*[=:]\s*"
                r"""(?!["']?\$)(?!["']?\{\{)["']?[^\s"'$]{4,}"""), "a password or token value"),
]


def _secrets(ctx: Context) -> Iterator[Hit]:
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name not in ("environment", "labels", "post", "appenv", "applabels",
                                "appinstall", "setup"):
                continue
            for n, line in _code_lines(sec):
                for pattern, what in _SECRETS:
                    if pattern.search(line):
                        yield n, (f"%{sec.name} holds {what}: it is stored in the image "
                                  "(and its .def) for anyone who can read the image; pass it "
                                  "at run time (APPTAINERENV_*, a bind-mounted file)")
                        break


def _curl_sh(ctx: Context) -> Iterator[Hit]:
    pat = re.compile(r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(\S*/)?(ba|da|z|k)?sh\b")
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name not in SCRIPTED:
                continue
            for n, line in _code_lines(sec):
                if pat.search(line):
                    yield n, ("downloads and runs a script unchecked; download to a file, "
                              "verify its checksum, then run it")


def _no_test(ctx: Context) -> Iterator[Hit]:
    final = ctx.raw[-1] if ctx.raw else None
    if final is not None and final.section("test") is None:
        yield final.line, ("the image has no %test: `apptainer test` and the build cannot "
                           "check it works")


def _apt(ctx: Context) -> Iterator[tuple[RawSection, int, str]]:
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name in BUILD:
                for n, line in _code_lines(sec):
                    if re.search(r"\bapt(-get)?\s+(-\S+\s+)*install\b", line):
                        yield sec, n, line


def _apt_recommends(ctx: Context) -> Iterator[Hit]:
    for _sec, n, line in _apt(ctx):
        if "--no-install-recommends" not in line:
            yield n, "apt-get install without --no-install-recommends pulls in extra packages"


def _apt_cleanup(ctx: Context) -> Iterator[Hit]:
    for sec, n, _line in _apt(ctx):
        if "/var/lib/apt/lists" not in sec.body:
            yield n, ("apt-get install without `rm -rf /var/lib/apt/lists/*` in the same "
                      "section leaves the package lists in the image")


def _bash_in_sh(ctx: Context) -> Iterator[Hit]:
    for n, code, message in ctx.shellcheck():
        if code.startswith("SC3"):
            yield n, f"bash-only syntax in a section that runs under /bin/sh: {code} {message}"


def _shellcheck_other(ctx: Context) -> Iterator[Hit]:
    for n, code, message in ctx.shellcheck():
        if not code.startswith("SC3"):
            yield n, f"shellcheck {code}: {message}"


# --- policy (from [tool.defbuilder.policy] or defbuilder.toml) -----------------------------

def _policy_base(ctx: Context) -> Iterator[Hit]:
    patterns = ctx.policy.get("allowed-bases")
    if not patterns:
        return
    for n, ref in _image_refs(ctx):
        if not any(fnmatch.fnmatchcase(ref, p) for p in patterns):
            yield n, f"base image {ref} is not allowed by policy ({', '.join(patterns)})"


def _policy_digest(ctx: Context) -> Iterator[Hit]:
    if ctx.policy.get("require-digest"):
        for n, ref in _image_refs(ctx):
            if "@sha256:" not in ref:
                yield n, f"policy requires digest pinning: {ref} has no @sha256:"


def _policy_labels(ctx: Context) -> Iterator[Hit]:
    required = ctx.policy.get("required-labels") or []
    if not required or not ctx.raw:
        return
    final = ctx.raw[-1]
    sec = final.section("labels")
    from ..parse import get_labels

    have = get_labels(sec.body) if sec is not None else {}
    missing = [k for k in required if k not in have]
    if missing:
        yield (sec.line if sec else final.line), (
            f"policy requires labels: {', '.join(missing)} missing")


def _policy_test(ctx: Context) -> Iterator[Hit]:
    if ctx.policy.get("require-test"):
        for n, _m in _no_test(ctx):
            yield n, "policy requires a %test in the final stage"


def _policy_forbidden(ctx: Context) -> Iterator[Hit]:
    words = ctx.policy.get("forbidden-commands") or []
    if not words:
        return
    for stage in ctx.raw:
        for sec in stage.sections:
            if sec.name not in SCRIPTED:
                continue
            for n, line in _code_lines(sec):
                for word in words:
                    if re.search(rf"(^|[\s;&|(]){re.escape(word)}(\s|$|;)", line):
                        yield n, f"policy forbids `{word}`"


_H = "Bootstrap: docker\nFrom: ubuntu:24.04@sha256:" + "a" * 64 + "\n"
_T = "\n%test\n    true\n"

RULES: tuple[Rule, ...] = (
    Rule("DB100", "does-not-parse", "error",
         "The file is not a definition Apptainer accepts.",
         "Apptainer stops before building; the message says why.",
         "Bootstrap: docker\nFrom: ubuntu:24.04\nthis is not a key\n",
         _H + _T, lambda ctx: iter(ctx.parse_errors)),
    Rule("DB101", "inert-shebang", "warning",
         "A #! line that Apptainer ignores.",
         "%post/%setup/%pre/%appinstall run as /bin/sh -ex, so a #! in them is a comment and "
         "the code runs under dash on Ubuntu; in %runscript/%startscript/%test only the first "
         "body line is honoured (metadata.go handleShebangScript).",
         _H + "\n%post\n    #!/bin/bash\n    source /etc/profile\n" + _T,
         _H + "\n%post -c /bin/bash -e\n    source /etc/profile\n" + _T, _inert_shebang),
    Rule("DB102", "bash-without-e", "error",
         "%post -c /bin/bash without -e.",
         "Apptainer runs it as /bin/sh -ex -c \"/bin/bash script\" (stage.go "
         "getSectionScriptArgs): the inner bash has no -e and a failing command does not "
         "stop the build.",
         _H + "\n%post -c /bin/bash\n    false\n    echo built\n" + _T,
         _H + "\n%post -c /bin/bash -e\n    false\n    echo built\n" + _T, _bash_without_e),
    Rule("DB103", "indented-section", "error",
         "A section header indented after the first.",
         "Only a stage's first token is trimmed (deffile.go doSections); later, the leading "
         "space makes the name empty and Apptainer refuses the file.",
         _H + "\n%post\n    echo a\n  %runscript\n    echo b\n" + _T,
         _H + "\n%post\n    echo a\n%runscript\n    exec echo b\n" + _T, _indented_section),
    Rule("DB104", "unknown-section", "error",
         "A section name Apptainer does not know.",
         "deffile.go populateDefinition: `invalid section(s) specified` stops the build.",
         _H + "\n%environments\n    export A=1\n" + _T,
         _H + "\n%environment\n    export A=1\n" + _T, _unknown_section),
    Rule("DB105", "files-single-quote", "error",
         "Single quotes in a %files line.",
         "Apptainer's fileSplitter has no closing single quote: 'a b' c reads as 'a b and ' c.",
         _H + "\n%files\n    'my file' /opt/\n" + _T,
         _H + '\n%files\n    "my file" /opt/\n' + _T, _files_single_quote),
    Rule("DB106", "files-inline-comment", "error",
         "An inline # comment in a %files line.",
         "%files lines have no comments after a path: `src # note` copies src to `#`.",
         _H + "\n%files\n    app.py # the app\n" + _T,
         _H + "\n%files\n    # the app\n    app.py\n" + _T, _files_inline_comment),
    Rule("DB107", "registry-scheme", "error",
         "Registry: with a URL scheme.",
         "The reference is built as docker://REGISTRY/NAMESPACE/FROM "
         "(conveyorPacker_oci.go), so http:// ends up inside it.",
         "Bootstrap: docker\nFrom: app:1@sha256:" + "a" * 64 + "\nRegistry: https://ghcr.io\n"
         + _T,
         "Bootstrap: docker\nFrom: app:1@sha256:" + "a" * 64 + "\nRegistry: ghcr.io\n" + _T,
         _registry_scheme),
    Rule("DB108", "includecmd", "warning",
         "IncludeCmd: has no effect.",
         "It is a valid key that no Apptainer code reads; the runscript always combines "
         "ENTRYPOINT and CMD. Write %runscript yourself.",
         _H + "IncludeCmd: yes\n" + _T, _H + "\n%runscript\n    exec python \"$@\"\n" + _T,
         _includecmd),
    Rule("DB109", "ignored-header-key", "warning",
         "A header key the bootstrap agent does not read.",
         "Apptainer accepts every known key for every agent and silently ignores the ones "
         "the agent does not read (conveyorPacker_*.go).",
         "Bootstrap: library\nFrom: alpine:3.19\nRegistry: ghcr.io\n" + _T,
         "Bootstrap: library\nFrom: alpine:3.19\n" + _T, _ignored_key),
    Rule("DB110", "bashism-in-sh", "error",
         "Bash-only syntax in a section that runs under /bin/sh.",
         "On Ubuntu /bin/sh is dash; [[ ]], arrays, `source`... fail there (shellcheck SC3xxx "
         "with the section's real shell).",
         _H + "\n%post\n    if [[ -d /opt ]]; then echo yes; fi\n" + _T,
         _H + "\n%post\n    if [ -d /opt ]; then echo yes; fi\n" + _T, _bash_in_sh),
    Rule("DB111", "shellcheck", "warning",
         "Other shellcheck warnings in a section.",
         "shellcheck (warning level) run with the shell Apptainer really uses for the section.",
         _H + "\n%post\n    cd /opt\n    rm -rf $DIR/*\n" + _T,
         _H + '\n%post\n    cd /opt || exit 1\n    rm -rf "${DIR:?}"/*\n' + _T,
         _shellcheck_other),
    Rule("DB112", "runscript-no-exec", "warning",
         "%runscript/%startscript does not exec its program.",
         "Without exec the program is a child of the shell: the batch system's SIGTERM "
         "reaches the shell, and the program may be killed without cleanup.",
         _H + "\n%runscript\n    python /app/main.py \"$@\"\n" + _T,
         _H + "\n%runscript\n    exec python /app/main.py \"$@\"\n" + _T, _runscript_no_exec),
    Rule("DB113", "exec-when-sourced", "error",
         "A file ending in exec \"$@\" is sourced.",
         "Sourcing it replaces the sourcing shell with its arguments; the upstream hello "
         "example had to strip the last line with sed before sourcing.",
         _H + "\n%post\n    echo 'exec \"$@\"' >> /app/entrypoint.sh\n"
         "%test\n    . /app/entrypoint.sh\n    python -V\n",
         _H + "\n%post\n    echo 'export A=1' >> /app/activate.sh\n"
         "%test\n    . /app/activate.sh\n    python -V\n", _exec_when_sourced),
    Rule("DB114", "env-only-in-runscript", "error",
         "The environment is activated only in %runscript.",
         "`apptainer exec`, `shell`, `test` and `instance start` do not run the runscript; "
         "only %environment is sourced for every action.",
         _H + "\n%runscript\n    . /opt/venv/bin/activate\n    exec python \"$@\"\n" + _T,
         _H + "\n%environment\n    . /opt/venv/bin/activate\n%runscript\n"
         "    exec python \"$@\"\n" + _T, _env_only_in_runscript),
    Rule("DB115", "no-digest", "warning",
         "Base image by tag without a digest.",
         "Tags move; the same .def builds a different image next month.",
         "Bootstrap: docker\nFrom: ubuntu:24.04\n" + _T, _H + _T, _no_digest),
    Rule("DB116", "latest-tag", "warning",
         "Base image with the latest tag (or none).",
         "`latest` is whatever was pushed last.",
         "Bootstrap: docker\nFrom: ubuntu\n" + _T, "Bootstrap: docker\nFrom: ubuntu:24.04\n"
         + _T, _latest),
    Rule("DB117", "files-from-unknown-stage", "error",
         "%files from a stage that does not exist (earlier).",
         "build.go findStageIndex: `stage NAME was not found`.",
         _H + "Stage: final\n\n%files from biuld\n    /out\n" + _T,
         _H + "Stage: build\n\n" + _H + "Stage: final\n\n%files from build\n    /out\n" + _T,
         _files_from_unknown),
    Rule("DB118", "argument-undefined", "warning",
         "A {{ placeholder }} with no default in %arguments.",
         "args.go: `build var X is not defined through either --build-arg (--build-arg-file) "
         "or 'arguments' section` unless every build passes it.",
         "Bootstrap: docker\nFrom: ubuntu:{{ TAG }}\n" + _T,
         "Bootstrap: docker\nFrom: ubuntu:{{ TAG }}\n\n%arguments\n    TAG=24.04\n" + _T,
         _arg_undefined),
    Rule("DB119", "argument-unused", "info",
         "An %arguments default that nothing uses.",
         "Dead configuration; a typo in the placeholder's name looks like this.",
         _H + "\n%arguments\n    TAG=24.04\n" + _T,
         "Bootstrap: docker\nFrom: ubuntu:{{ TAG }}\n\n%arguments\n    TAG=24.04\n" + _T,
         _arg_unused),
    Rule("DB120", "secret", "error",
         "A secret in %environment, %labels or %post.",
         "Everything in the .def is stored in the image (/.singularity.d/Singularity) and "
         "visible to anyone who can read it.",
         _H + "\n%environment\n    export HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123456789\n"
         + _T,
         _H + "\n%environment\n    export HF_HOME=/scratch/hf\n" + _T, _secrets),
    Rule("DB121", "curl-pipe-sh", "warning",
         "A downloaded script piped into a shell.",
         "Nothing checks what ran; a compromised or changed URL changes the image.",
         _H + "\n%post\n    curl -fsSL https://pixi.sh/install.sh | sh\n" + _T,
         _H + "\n%post\n    curl -fsSLo /tmp/i.sh https://pixi.sh/install.sh\n"
         "    echo \"<sha256>  /tmp/i.sh\" | sha256sum -c\n    sh /tmp/i.sh\n" + _T, _curl_sh),
    Rule("DB122", "no-test", "info",
         "The image has no %test.",
         "`apptainer test` and the build's test step are the cheapest check that the image "
         "works (e.g. the GPU check).",
         _H, _H + _T, _no_test),
    Rule("DB123", "apt-recommends", "warning",
         "apt-get install without --no-install-recommends.",
         "Recommended packages make images larger and slower to ship to every job.",
         _H + "\n%post\n    apt-get update && apt-get install -y git\n"
         "    rm -rf /var/lib/apt/lists/*\n" + _T,
         _H + "\n%post\n    apt-get update && apt-get install -y --no-install-recommends git\n"
         "    rm -rf /var/lib/apt/lists/*\n" + _T, _apt_recommends),
    Rule("DB124", "apt-cleanup", "warning",
         "apt-get install without removing /var/lib/apt/lists.",
         "The package lists stay in the image (tens of MB).",
         _H + "\n%post\n    apt-get update && apt-get install -y --no-install-recommends git\n"
         + _T,
         _H + "\n%post\n    apt-get update && apt-get install -y --no-install-recommends git\n"
         "    rm -rf /var/lib/apt/lists/*\n" + _T, _apt_cleanup),
    Rule("DP201", "policy-base", "error",
         "Base image not in the policy's allowed-bases.",
         "Teams standardize on vetted bases ([tool.defbuilder.policy] allowed-bases).",
         "Bootstrap: docker\nFrom: random/image:1\n" + _T, _H + _T, _policy_base, True),
    Rule("DP202", "policy-digest", "error",
         "Policy requires digest pinning.",
         "[tool.defbuilder.policy] require-digest = true.",
         "Bootstrap: docker\nFrom: ubuntu:24.04\n" + _T, _H + _T, _policy_digest, True),
    Rule("DP203", "policy-labels", "error",
         "A label the policy requires is missing.",
         "[tool.defbuilder.policy] required-labels.",
         _H + _T, _H + "\n%labels\n    maintainer team@example.org\n" + _T, _policy_labels,
         True),
    Rule("DP204", "policy-test", "error",
         "Policy requires a %test.",
         "[tool.defbuilder.policy] require-test = true.",
         _H, _H + _T, _policy_test, True),
    Rule("DP205", "policy-forbidden-command", "error",
         "A command the policy forbids.",
         "[tool.defbuilder.policy] forbidden-commands.",
         _H + "\n%post\n    sudo true\n" + _T, _H + "\n%post\n    true\n" + _T,
         _policy_forbidden, True),
)

#: The policy the DP rules' examples are checked with (see tests/test_lint.py).
EXAMPLE_POLICY = {
    "allowed-bases": ["ubuntu:*"],
    "require-digest": True,
    "required-labels": ["maintainer"],
    "require-test": True,
    "forbidden-commands": ["sudo"],
}
