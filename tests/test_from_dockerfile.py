"""defbuilder from-dockerfile: Dockerfiles become recipes with Docker's exact
ENTRYPOINT/CMD semantics, checked by running the converted image in the harness
against Docker's documented table (docs.docker.com/reference/dockerfile/,
"Understand how CMD and ENTRYPOINT interact")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_cli
from harness import needs_namespaces, parse_dump, tools_dir

from defbuilder import DefError, render
from defbuilder.dockerfile import convert
from defbuilder.lint import lint_text
from defbuilder.parse import parse, split_stages
from defbuilder.runtime import unpack

DOCKERFILES = Path(__file__).parent / "dockerfiles"
FAKES = Path(__file__).parent / "fakes"
D = "/opt/t/dump"

# (id, ENTRYPOINT line, CMD line, run args, argv the program receives per Docker's table)
TABLE = [
    ("cmd-exec", None, f'["{D}", "p1_cmd"]', [], ["p1_cmd"]),
    ("cmd-exec+args", None, f'["{D}", "p1_cmd"]', [D, "x"], ["x"]),
    ("cmd-shell", None, f"{D} p1_cmd", [], ["p1_cmd"]),
    ("cmd-shell+args", None, f"{D} p1_cmd", [D, "y"], ["y"]),
    ("entry-exec", f'["{D}", "p1_entry"]', None, [], ["p1_entry"]),
    ("entry-exec+args", f'["{D}", "p1_entry"]', None, ["a b", ""], ["p1_entry", "a b", ""]),
    ("entry-exec+cmd-exec", f'["{D}", "p1_entry"]', '["c", "p1_cmd"]', [],
     ["p1_entry", "c", "p1_cmd"]),
    ("entry-exec+cmd-exec+args", f'["{D}", "p1_entry"]', '["c", "p1_cmd"]', ["z"],
     ["p1_entry", "z"]),
    ("entry-exec+cmd-shell", f'["{D}", "p1_entry"]', "c p1_cmd", [],
     ["p1_entry", "/bin/sh", "-c", "c p1_cmd"]),
    ("entry-shell", f"{D} p1_entry", None, [], ["p1_entry"]),
    ("entry-shell+cmd-exec", f"{D} p1_entry", '["c", "p1_cmd"]', [], ["p1_entry"]),
    ("entry-shell+args", f"{D} p1_entry", None, ["ignored"], ["p1_entry"]),
    ("entry-exec+empty-cmd", f'["{D}", "p1_entry"]', "[]", [], ["p1_entry"]),
    ("quotes-and-spaces", f'["{D}", "it\'s", "a \\"b\\"", "$HOME", "*"]', None, ["c d"],
     ["it's", 'a "b"', "$HOME", "*", "c d"]),
]


def dockerfile(entry: str | None, cmd: str | None) -> str:
    lines = ["FROM ubuntu:24.04"]
    if entry is not None:
        lines.append(f"ENTRYPOINT {entry}")
    if cmd is not None:
        lines.append(f"CMD {cmd}")
    return "\n".join(lines) + "\n"


@needs_namespaces
@pytest.mark.parametrize(("name", "entry", "cmd", "args", "expected"), TABLE,
                         ids=[t[0] for t in TABLE])
def test_entrypoint_cmd_table(tmp_path, shell, name, entry, cmd, args, expected):
    conversion = convert(dockerfile(entry, cmd))
    img = unpack(render(conversion.recipe()), tmp_path / "root",
                 files={"/opt/t": tools_dir(tmp_path)})
    res = img.run("run", args, sh=shell)
    assert res.returncode == 0, res.stderr.decode()
    assert parse_dump(res.stdout)["argv"] == expected


def test_multistage_copy_from_and_warnings():
    text = (DOCKERFILES / "pixi_hello.Dockerfile").read_text()
    conversion = convert(text, "pixi_hello.Dockerfile")
    recipe = conversion.recipe()
    build, final = recipe.stages
    assert (build.name, final.name) == ("build", "production")
    from_build = next(f for f in final.files if f.from_stage == "build")
    assert [e.src for e in from_build.entries] == [
        "/app/.pixi/envs/prod", "/app/entrypoint.sh", "/app/activate.sh"]
    assert any("EXPOSE 8000" in w and "left out" in w for w in conversion.warnings)
    assert "chmod -R 0755 /app/entrypoint.sh" in final.post.body
    assert "Stage(" in conversion.source and "Entrypoint(" in conversion.source


def test_converted_upstream_example_lints_without_errors():
    conversion = convert((DOCKERFILES / "pixi_hello.Dockerfile").read_text())
    findings = lint_text(render(conversion.recipe()), "conv.def")
    assert [f for f in findings if f.severity == "error"] == []


@needs_namespaces
def test_converted_upstream_example_behaves_like_docker(tmp_path, shell):
    text = render(convert((DOCKERFILES / "pixi_hello.Dockerfile").read_text()).recipe())
    app = tmp_path / "app"
    app.mkdir()
    (app / "pixi.toml").write_text('[workspace]\nname = "hello"\n')
    (app / "pixi.lock").write_text("version: 6\n")
    fakes = tmp_path / "fakes"
    shutil.copytree(FAKES, fakes)
    build = unpack(text, tmp_path / "b", stage="build", files={"/app": app, "/opt/f": fakes})
    res = build.run("exec", build.build_script_argv("post"), sh=shell,
                    env={"PATH": "/opt/f:/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr.decode()
    final = unpack(text, tmp_path / "f", stage="production", files={"/app": app})
    res = final.run("exec", final.build_script_argv("post"), sh=shell)  # its %post (chmod)
    assert res.returncode == 0, res.stderr.decode()
    # docker run image -> /app/entrypoint.sh python -V (activates, then execs)
    res = final.run("run", [], sh=shell)
    assert res.stdout == b"env python -V\n", res.stderr
    res = final.run("run", ["envtool", "x"], sh=shell)
    assert res.stdout == b"env tool x\n"
    # and, unlike a plain conversion, apptainer exec sees the environment as well
    res = final.run("exec", ["envtool", "y"], sh=shell)
    assert res.stdout == b"env tool y\n"
    res = final.run("exec", ["/bin/sh", "-c", "pwd"], sh=shell, cwd=tmp_path)
    assert res.stdout.decode().strip() == str(tmp_path)  # exec keeps the caller's cwd
    res = final.run("run", ["/bin/sh", "-c", "pwd"], sh=shell, cwd=tmp_path)
    assert res.stdout == b"/app\n"  # run starts in WORKDIR, like Docker


def test_env_arg_workdir_label():
    conversion = convert(
        "ARG BASE=ubuntu:24.04\n"
        "FROM ${BASE}\n"
        "ARG JOBS=4\n"
        "ENV PATH=/opt/tool/bin:$PATH GREETING=\"hi there\"\n"
        "WORKDIR /work\n"
        "COPY app.py .\n"
        "RUN make -j$JOBS\n"
        "LABEL org.opencontainers.image.title=\"demo app\"\n"
        "USER nobody\n")
    text = render(conversion.recipe())
    stage = split_stages(text)[0]
    assert stage.header["from"] == "{{ BASE }}"
    assert "BASE=ubuntu:24.04" in stage.section("arguments").body
    assert "JOBS=4" in stage.section("arguments").body
    post = stage.section("post").body
    assert "JOBS='{{ JOBS }}'" in post and "make -j$JOBS" in post
    assert post.index('export PATH="/opt/tool/bin:$PATH"') < post.index("make -j$JOBS")
    env = stage.section("environment").body
    assert 'export PATH="/opt/tool/bin:$PATH"' in env and "export GREETING='hi there'" in env
    files = next(s for s in stage.sections if s.name == "files")
    assert files.body.split() == ["app.py", "/work/"]  # cp -r into the directory
    assert "org.opencontainers.image.title demo app" in stage.section("labels").body
    assert any("USER nobody" in w and "calling user" in w for w in conversion.warnings)
    assert parse(text)  # a valid definition


def test_add_url_and_archive_become_post_steps():
    conversion = convert("FROM ubuntu:24.04\nADD https://example.org/x.tgz /opt/\n"
                         "ADD data.tar.gz /data\n")
    post = conversion.recipe().stages[0].post.body
    assert "curl -fsSL -o /opt/x.tgz https://example.org/x.tgz" in post
    assert "tar -xf /tmp/defbuilder-add/data.tar.gz -C /data" in post
    assert len(conversion.warnings) == 2


@pytest.mark.parametrize(("text", "line", "message"), [
    ("FROM ubuntu:24.04\nRUNN echo\n", 2, "unknown instruction 'RUNN'"),
    ("RUN echo\nFROM ubuntu:24.04\n", 1, "RUN before the first FROM"),
    ("FROM ubuntu:24.04\nCOPY onlyone\n", 2, "needs a source and a destination"),
    ("FROM ubuntu:24.04 AS a\nFROM a\n", 2, "building on an earlier stage"),
    ("FROM ubuntu:24.04\nSHELL /bin/bash -c\n", 2, "SHELL needs the JSON form"),
])
def test_syntax_errors_name_the_line(text, line, message):
    with pytest.raises(DefError, match=message) as err:
        convert(text, "Dockerfile")
    assert (err.value.file, err.value.line) == ("Dockerfile", line)


def test_cli(tmp_path):
    df = tmp_path / "Dockerfile"
    df.write_text("FROM ubuntu:24.04\nEXPOSE 80\nCMD [\"python3\", \"-V\"]\n")
    out = run_cli("from-dockerfile", str(df), "-o", str(tmp_path / "recipe.py"))
    assert out.returncode == 0 and "EXPOSE 80" in out.stderr
    rendered = run_cli("render", str(tmp_path / "recipe.py")).stdout
    assert run_cli("from-dockerfile", str(df), "--def").stdout == rendered
    bad = tmp_path / "Bad"
    bad.write_text("FROM ubuntu:24.04\nFROBNICATE x\n")
    out = run_cli("from-dockerfile", str(bad))
    assert out.returncode == 2 and f"{bad}:2: unknown instruction" in out.stderr


def spython_table(tmp_path: Path, shell: str = "dash") -> str:
    """Each TABLE case through spython's Docker->Singularity writer and through ours, run
    in the harness; a markdown table of what the program received."""
    parsers = pytest.importorskip("spython.main.parse.parsers")
    writers = pytest.importorskip("spython.main.parse.writers")
    rows = ["| case | Docker (documented) | spython's runscript | defbuilder |",
            "|---|---|---|---|"]
    tools = tools_dir(tmp_path)
    for name, entry, cmd, args, expected in TABLE:
        df = tmp_path / f"{name}.Dockerfile"
        df.write_text(dockerfile(entry, cmd))
        results = []
        for which in ("spython", "ours"):
            if which == "spython":
                text = writers.SingularityWriter(parsers.DockerParser(str(df)).parse()).convert()
            else:
                text = render(convert(df.read_text()).recipe())
            img = unpack(text, tmp_path / f"{name}-{which}", files={"/opt/t": tools})
            res = img.run("run", args, sh=shell)
            try:
                got = parse_dump(res.stdout)["argv"]
                results.append("same" if got == expected else f"`{got}`")
            except (ValueError, IndexError):
                results.append(f"fails (exit {res.returncode})")
        rows.append(f"| {name} (run args `{args}`) | `{expected}` | {results[0]} | "
                    f"{results[1]} |")
    return "\n".join(rows) + "\n"


@needs_namespaces
def test_spython_comparison_table_in_docs(tmp_path):
    from conftest import ROOT

    table = spython_table(tmp_path)
    assert table in (ROOT / "docs" / "from-dockerfile.md").read_text(), table
