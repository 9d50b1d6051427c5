"""Execute the examples in README.md, docs/ and recipes/hello_pytorch/README.md so they
cannot rot.

Fences:

* ```LANG file=NAME writes NAME into the page's working directory (a temp directory;
  a page whose commands name `recipes/` also gets a copy of the repository's recipes/);
* ```python runs in one namespace per page, in that directory;
* ```console is a terminal transcript: every command line starts with "$ " (a line
  ending in "\\" continues on the next), and the lines up to the next "$ " are its
  output. A block runs as one bash session started in the page's directory (a `cd` or
  a variable carries over to the block's later commands), with the installed
  `defbuilder` console script first on PATH. Each command's output (stdout and stderr
  interleaved, as a terminal shows them) must equal the transcript exactly; the page
  directory's path is written `$PWD`. A console block that is not a transcript fails.

A command that cannot run here is not run, and is reported as a skipped test with the
reason (`pytest -ra` lists them; test_not_run below):

* a program this test knows cannot run here (NOT_RUN: apptainer, condor_submit, pip,
  pytest...), with the reason given there;
* a command whose comment starts with "needs", e.g. `$ defbuilder build r.py  # needs
  Apptainer`: the comment is the reason. The defbuilder commands that run Apptainer
  (`build`, `push`, `mimic-chtc` without `--print`) must carry one;
* `defbuilder try` (other than `--show`) where dash or Linux mount namespaces are
  missing: the page test runs the rest and then skips, naming those commands.

Build commands (`apptainer build`, `defbuilder build` without `--staging`) still run,
against tests/fakes/apptainer, and must succeed: like Apptainer it copies a relative
`%files` source from the directory `apptainer build` runs in, so a build documented in
the wrong directory fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, fake_apptainer_bin, installed_script
from packaging.requirements import Requirement

from defbuilder import runtime

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "recipes" / "hello_pytorch" / "README.md",
]

# Programs a docs page may show but this test never runs, and why.
NOT_RUN = {
    "apptainer": "needs Apptainer",
    "singularity": "needs Apptainer",
    "condor_submit": "needs an HTCondor access point",
    "condor_submit_dag": "needs an HTCondor access point",
    "condor_q": "needs an HTCondor access point",
    "pixi": "needs pixi and the network",
    "pip": "needs the network, and would change the Python environment running the tests",
    "pytest": "is the test suite this test belongs to",
    "nvidia-smi": "needs an NVIDIA GPU",
    "docker": "needs Docker",
}
NAMESPACES = "needs dash and Linux user and mount namespaces (unshare), as tests/test_runtime.py"
SHELL_FENCES = {"sh", "bash", "shell", "zsh", "shell-session"}


def rel(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class Command:
    page: Path
    line: int  # of the "$ " line in the page
    text: str  # as typed, continuation lines joined by "\n"
    expected: str
    skip: str | None  # why it is not run; None: run and compare its output
    build: bool  # a build command: run against the fake apptainer, output not compared
    problem: str | None = None  # what is wrong with the transcript (the page test fails)

    @property
    def where(self) -> str:
        return f"{rel(self.page)}:{self.line}"


def comment(text: str) -> str | None:
    """The shell comment ending ``text``: a ``#`` starting a word, outside quotes."""
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"':
                i += 1
        elif c == "\\":
            i += 1
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1].isspace()):
            return text[i + 1 :].strip()
        i += 1
    return None


def simple_commands(text: str) -> list[list[str]]:
    """The words of each simple command in ``text`` (split at ``&& || ; | ( )``),
    leading ``NAME=value`` assignments left out."""
    lex = shlex.shlex(text.replace("\\\n", " "), posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lex:
        if token and set(token) <= set("&|;()<>"):
            if token in {"&&", "||", ";", "|", "(", ")", "&"}:
                commands.append([])
            continue
        if not commands[-1] and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
            continue
        commands[-1].append(token)
    return [c for c in commands if c]


def runs_apptainer(argv: list[str]) -> bool:
    """A defbuilder command that runs Apptainer."""
    sub = argv[1] if len(argv) > 1 else ""
    return sub in {"build", "push"} or (sub == "mimic-chtc" and "--print" not in argv)


def classify(text: str) -> tuple[str | None, bool]:
    """(why the command is not run, or None; whether it is a build to try on the fake).

    A defbuilder command that runs Apptainer without a `# needs` comment is an error.
    """
    commands = simple_commands(text)
    build = any(
        (c[0] == "apptainer" and c[1:2] == ["build"])
        or (c[0] == "defbuilder" and c[1:2] == ["build"] and "--staging" not in c)
        for c in commands
    )
    note = comment(text)
    if note is not None and note.startswith("needs"):
        return note.split(";")[0].strip(), build
    for c in commands:
        if c[0] in NOT_RUN:
            gpu = c[0] in {"apptainer", "singularity"} and "--nv" in c
            return NOT_RUN[c[0]] + (" and an NVIDIA GPU (--nv)" if gpu else ""), build
        if c[0] == "defbuilder" and runs_apptainer(c):
            raise AssertionError(
                f"`{text}` runs Apptainer: mark it with a comment, `# needs Apptainer`"
            )
    return None, False


def console_commands(page: Path, start_line: int, body: str) -> list[Command]:
    lines = body.splitlines()
    assert lines and lines[0].startswith("$ "), (
        f"{rel(page)}:{start_line}: a console block is a transcript: each command "
        "starts with '$ ' (its output follows); show other text in a ```text block"
    )
    commands = []
    i = 0
    while i < len(lines):
        line_no = start_line + i
        text = lines[i][2:]
        i += 1
        while text.endswith("\\") and i < len(lines):
            text += "\n" + lines[i]
            i += 1
        expected = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        try:
            skip, build = classify(text)
            problem = None
        except (AssertionError, ValueError) as err:  # ValueError: unbalanced quotes
            skip, build, problem = None, False, str(err)
        commands.append(Command(page, line_no, text, "\n".join(expected), skip, build, problem))
    return commands


def blocks(page: Path) -> list[tuple[str, str, int]]:
    """(info string, body, line of the body's first line) of each fence."""
    text = page.read_text()
    return [
        (m.group(1).strip(), m.group(2), text.count("\n", 0, m.start(2)) + 1)
        for m in FENCE.finditer(text)
    ]


def page_commands(page: Path) -> list[Command]:
    return [
        cmd
        for info, body, line in blocks(page)
        if info.split()[:1] == ["console"]
        for cmd in console_commands(page, line, body)
    ]


def namespaces_missing(cmd: Command) -> bool:
    return any(
        c[:2] == ["defbuilder", "try"] and "--show" not in c for c in simple_commands(cmd.text)
    ) and not (shutil.which("dash") and runtime.available())


def run_session(commands: list[Command], cwd: Path, env: dict[str, str]) -> list[str]:
    """Run ``commands`` in one bash session in ``cwd``; return each one's output."""
    mark = f"__docs_test_{uuid.uuid4().hex}__"
    script = "".join(f"{cmd.text}\nprintf '\\n{mark} %s\\n' \"$?\"\n" for cmd in commands)
    out = subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    ).stdout
    for path in {str(cwd), os.path.realpath(cwd)}:
        out = out.replace(path, "$PWD")
    parts = re.split(rf"^{mark} (\d+)\n", out, flags=re.M)
    assert len(parts) == 2 * len(commands) + 1, f"the session ended early:\n{out}"
    results = []
    for cmd, got, status in zip(commands, parts[0::2], parts[1::2], strict=False):
        if cmd.build:
            assert status == "0", (
                f"{cmd.where}: `{cmd.text}` fails against tests/fakes/apptainer "
                f"(are the %files sources in the directory it runs in?):\n{got}"
            )
        results.append(got.rstrip("\n"))
    return results


def session_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONWARN")}
    fakes = fake_apptainer_bin(tmp_path)
    env["PATH"] = os.pathsep.join([str(installed_script().parent), str(fakes), env["PATH"]])
    env.update(
        PYTHONUNBUFFERED="1",  # stdout and stderr in the order a terminal shows them
        COLUMNS="80",
        FAKE_APPTAINER_LOG=str(tmp_path / "apptainer.log"),
        FAKE_APPTAINER_MB="1",
    )
    return env


def run_console(commands: list[Command], cwd: Path, env: dict[str, str]) -> list[Command]:
    """Run a block's commands; return those left out for want of namespaces."""
    for cmd in commands:
        assert cmd.problem is None, f"{cmd.where}: {cmd.problem}"
    missing = [c for c in commands if c.skip is None and namespaces_missing(c)]
    todo = [c for c in commands if (c.skip is None or c.build) and c not in missing]
    for cmd, got in zip(todo, run_session(todo, cwd, env), strict=True):
        if cmd.skip is None:
            assert got == cmd.expected.rstrip("\n"), f"{cmd.where}: $ {cmd.text}"
    return missing


@pytest.mark.parametrize("page", PAGES, ids=[rel(p) for p in PAGES])
def test_page_examples(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "page"
    cwd.mkdir()
    if any("recipes/" in c.text for c in page_commands(page)):
        shutil.copytree(
            ROOT / "recipes",
            cwd / "recipes",
            ignore=shutil.ignore_patterns("__pycache__", "*.sif", "app.def", ".pixi"),
        )
    env = session_env(tmp_path)
    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend(str(cwd))
    # Python examples clean up after themselves: what they leave in the temporary
    # directory (tempfile's) would pile up in /tmp on every run.
    pytmp = tmp_path / "tmp"
    pytmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(pytmp))
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    ran = 0
    missing: list[Command] = []
    for info, body, line in blocks(page):
        words = info.split()
        if not words:
            continue
        if len(words) > 1 and words[1].startswith("file="):
            (cwd / words[1][5:]).write_text(body)
        elif words[0] == "python":
            exec(compile(body, str(page), "exec"), namespace)
            left = sorted(p.name for p in pytmp.iterdir())
            assert not left, f"{rel(page)}:{line}: the example leaves temporary files: {left}"
            ran += 1
        elif words[0] == "console":
            missing += run_console(console_commands(page, line, body), cwd, env)
            ran += 1
        else:
            assert words[0] not in SHELL_FENCES, (
                f"{rel(page)}:{line}: commands go in a ```console transcript, run by this test"
            )
    if page.name != "lint-rules.md":  # generated; checked by tests/test_lint.py
        assert ran, f"{rel(page)} has no runnable example"
    if missing:
        pytest.skip(f"{NAMESPACES}: not run: " + "; ".join(f"{c.where}" for c in missing))


def not_run_here() -> list[Command]:
    """Every command the docs show that is not run (a malformed page is left to its
    page test, which fails with the reason)."""
    found = []
    for page in PAGES:
        try:
            found += [c for c in page_commands(page) if c.skip is not None]
        except AssertionError:
            continue
    return found


NOT_RUN_HERE = not_run_here()


def test_some_commands_are_not_run() -> None:
    """The docs show Apptainer and HTCondor commands: each is listed by test_not_run."""
    assert NOT_RUN_HERE


@pytest.mark.parametrize("cmd", NOT_RUN_HERE, ids=[c.where for c in NOT_RUN_HERE])
def test_not_run(cmd: Command) -> None:
    reason = cmd.skip or ""
    if cmd.build:
        reason += " (test_page_examples builds with tests/fakes/apptainer: %files resolve)"
    pytest.skip(f"{cmd.where}: `{cmd.text}`: {reason}")


def test_transcript_parsing() -> None:
    """Comments, continuations, assignments and marks are read as a shell reads them."""
    assert comment("defbuilder build r.py  # needs Apptainer; prints x") == (
        "needs Apptainer; prints x"
    )
    assert comment("echo '# not a comment' a#b") is None
    assert simple_commands("cd a && X=1 apptainer build b c | cat") == [
        ["cd", "a"],
        ["apptainer", "build", "b", "c"],
        ["cat"],
    ]
    assert classify("cd r && apptainer build x.sif app.def") == ("needs Apptainer", True)
    assert classify("defbuilder push x.sif oras://r/x:1  # needs Apptainer") == (
        "needs Apptainer",
        False,
    )
    assert classify("defbuilder mimic-chtc --print x.sif") == (None, False)
    with pytest.raises(AssertionError, match="needs Apptainer"):
        classify("defbuilder build r.py")
    (cmd,) = console_commands(ROOT / "README.md", 1, "$ echo a \\\n    b\na b\n")
    assert (cmd.text, cmd.expected, cmd.skip) == ("echo a \\\n    b", "a b", None)
    assert classify("apptainer run --nv x.sif") == (
        "needs Apptainer and an NVIDIA GPU (--nv)",
        False,
    )


def test_a_build_where_the_files_are_not_fails(tmp_path: Path) -> None:
    """Apptainer copies a relative %files source from the directory `apptainer build`
    runs in (apptainer/apptainer v1.5.3, internal/pkg/build/files/copy.go,
    CopyFromHost: "src is a path relative to CWD on the host"); the fake does too."""
    cwd = tmp_path / "page"
    (cwd / "r").mkdir(parents=True)
    (cwd / "r" / "data.txt").write_text("x\n")
    (cwd / "app.def").write_text("Bootstrap: docker\nFrom: alpine\n\n%files\n    data.txt\n")
    env = session_env(tmp_path)
    body = "$ apptainer build app.sif app.def\n"
    with pytest.raises(AssertionError, match=r"%files source not found: data\.txt"):
        run_console(console_commands(ROOT / "README.md", 1, body), cwd, env)
    body = "$ cd r && apptainer build ../app.sif ../app.def\n"
    assert run_console(console_commands(ROOT / "README.md", 1, body), cwd, env) == []


# --- facts the docs state, derived from where they are decided ---------------------


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_python_version_matches_pyproject() -> None:
    required = pyproject()["project"]["requires-python"]  # type: ignore[index]
    stated = set(re.findall(r"Python >= ([0-9.]+)", (ROOT / "README.md").read_text()))
    assert stated == {required.removeprefix(">=")}


def test_readme_counts_the_lint_rules() -> None:
    from defbuilder.lint.rules import RULES

    counts = re.findall(r"\((\d+) rules with stable codes", (ROOT / "README.md").read_text())
    assert counts == [str(len(RULES))]


def test_getting_started_lists_the_dependencies() -> None:
    text = (ROOT / "docs" / "getting-started.md").read_text()
    sentence = re.search(r"The core depends on (.*?)\.\s", text, re.S)
    assert sentence, "getting-started.md: 'The core depends on ...' is missing"
    named = set(re.findall(r"`([A-Za-z0-9_.-]+)`", sentence.group(1)))
    deps = pyproject()["project"]["dependencies"]  # type: ignore[index]
    assert named == {Requirement(d).name for d in deps}


# Files users do not have: the project's private notes. Cite the public source instead
# (Apptainer's docs or its source at a tag, pixi's docs, Docker's reference, HTCondor's
# manual). Patterns are split so that this file does not match itself.
PRIVATE = re.compile(
    "|".join(
        [
            r"[A-Za-z]+-" + r"notes\.md",
            r"\.\./" + r"shared/",
            r"upstream" + r"-example",
            r"/work/" + r"shared",
        ]
    )
)


def repository_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [ROOT / name for name in out.splitlines() if (ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [
            p for d in ("defbuilder", "docs", "recipes", "tests") for p in (ROOT / d).rglob("*")
        ]


def test_citations_are_public() -> None:
    found = []
    for path in repository_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, IsADirectoryError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if PRIVATE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    recipe = str(ROOT / "recipes" / "hello_pytorch" / "recipe.py")
    variants = [[], ["--set", "base=pixi"], ["--set", "keep_pixi=true", "--set", "prune=strict"]]
    for sets in variants:
        out = subprocess.run(
            [sys.executable, "-m", "defbuilder", "render", recipe, *sets],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        found += [
            f"render {sets}: {line}" for line in out.stdout.splitlines() if PRIVATE.search(line)
        ]
    assert not found, "cites files users cannot open:\n" + "\n".join(found)


def test_try_is_documented_as_not_a_sandbox() -> None:
    """`try` runs the .def's scripts here with the host file system writable: the pages
    that introduce it say so, so that nobody tries an untrusted .def."""
    for page in ("docs/runtime.md", "docs/getting-started.md", "README.md"):
        text = " ".join((ROOT / page).read_text().split())
        assert "sandbox" in text and "file system writable" in text, page
