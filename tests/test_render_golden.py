"""Golden text per section kind.

Each expected text was written by hand from Apptainer's documented format, not
copied from defbuilder's output: apptainer-userdocs ``definition_files.rst``
(sections "Header", "%arguments", "%setup", "%files", "%app*", "Multi-Stage
Builds") and ``build_env``/``environment_and_metadata.rst``. The only layout
choices of ours are documented in defbuilder/render.py: script bodies verbatim,
line-oriented sections indented four spaces (the docs indent everything; Apptainer
trims files/labels/arguments lines, deffile.go). Each case is also read back with
the port of Apptainer's parser to check the meaning, not only the bytes.
"""

from __future__ import annotations

from typing import Any

import apptainer_port as port
import pytest

from defbuilder import App, BuildArg, Files, Header, Recipe, Script, Stage, render

UBUNTU = Header.docker("ubuntu:24.04")
HEAD = "Bootstrap: docker\nFrom: ubuntu:24.04\n\n"


def _on_ubuntu(name: str, expected: str, **sections: Any) -> tuple[str, Stage, str]:
    """A case whose stage is the ubuntu:24.04 header with SECTIONS: it renders as HEAD
    followed by EXPECTED."""
    return (name, Stage(UBUNTU, **sections), HEAD + expected)


CASES = [
    # definition_files.rst "Header": Bootstrap first, then agent keywords.
    (
        "header-library",
        Stage(Header("library", from_="ubuntu:22.04")),
        "Bootstrap: library\nFrom: ubuntu:22.04\n",
    ),
    (
        "header-debootstrap",
        Stage(
            Header(
                "debootstrap",
                os_version="noble",
                mirror_url="http://archive.ubuntu.com/ubuntu/",
                include="ca-certificates",
            )
        ),
        "Bootstrap: debootstrap\nMirrorURL: http://archive.ubuntu.com/ubuntu/\nOSVersion: noble\n"
        "Include: ca-certificates\n",
    ),
    (
        "header-docker-registry",
        Stage(Header.docker("pixi:noble", registry="ghcr.io", namespace="prefix-dev")),
        "Bootstrap: docker\nFrom: pixi:noble\nRegistry: ghcr.io\nNamespace: prefix-dev\n",
    ),
    # "%arguments": VERSION=22.04 then From: ubuntu:{{ VERSION }}
    (
        "arguments",
        Stage(
            Header.docker(f"ubuntu:{BuildArg('VERSION', '22.04')}"),
            arguments=[BuildArg("VERSION", "22.04")],
        ),
        "Bootstrap: docker\nFrom: ubuntu:{{ VERSION }}\n\n%arguments\n    VERSION=22.04\n",
    ),
    # "%setup": host commands, $APPTAINER_ROOTFS
    _on_ubuntu(
        "setup",
        "%setup\ntouch ${APPTAINER_ROOTFS}/file2\n",
        setup="touch ${APPTAINER_ROOTFS}/file2",
    ),
    # "%files": "src [dst]" per line
    _on_ubuntu(
        "files",
        "%files\n    /file1\n    /file1 /opt\n",
        files=Files(["/file1", ("/file1", "/opt")]),
    ),
    # "Multi-Stage Builds": %files from devel
    _on_ubuntu(
        "files-from",
        "%files from devel\n    /root/hello /bin/hello\n",
        files=Files([("/root/hello", "/bin/hello")], from_stage="devel"),
    ),
    # "%environment": export LISTEN_PORT=12345 / export LC_ALL=C
    _on_ubuntu(
        "environment",
        "%environment\nexport LISTEN_PORT=12345\nexport LC_ALL=C\n",
        environment={"LISTEN_PORT": "12345", "LC_ALL": "C"},
    ),
    _on_ubuntu(
        "post",
        "%post\napt-get update\napt-get install -y netcat\n",
        post="apt-get update\napt-get install -y netcat",
    ),
    # %post -c /bin/bash: stage.go getSectionScriptArgs runs /bin/sh -ex -c "/bin/bash -e script"
    _on_ubuntu(
        "post-bash",
        "%post -c /bin/bash -e\n[[ -d /opt ]]\n",
        post=Script("[[ -d /opt ]]", shell="/bin/bash"),
    ),
    _on_ubuntu(
        "runscript",
        '%runscript\necho "Container was created $NOW"\n',
        runscript='echo "Container was created $NOW"',
    ),
    # handleShebangScript: a #! first body line chooses the interpreter
    _on_ubuntu(
        "runscript-bash",
        '%runscript\n#!/bin/bash\nexec "$@"\n',
        runscript=Script('exec "$@"', shell="/bin/bash"),
    ),
    _on_ubuntu(
        "startscript", "%startscript\nnc -lp $LISTEN_PORT\n", startscript="nc -lp $LISTEN_PORT"
    ),
    _on_ubuntu(
        "test",
        '%test\ngrep -q NAME=\\"Ubuntu\\" /etc/os-release\n',
        test='grep -q NAME=\\"Ubuntu\\" /etc/os-release',
    ),
    # "%labels": Author / Version / MyLabel Hello World
    _on_ubuntu(
        "labels",
        "%labels\n    Author myname@example.com\n    Version v0.0.1\n    MyLabel Hello World\n",
        labels={"Author": "myname@example.com", "Version": "v0.0.1", "MyLabel": "Hello World"},
    ),
    _on_ubuntu(
        "help",
        "%help\nThis is a demo container used to illustrate a def file.\n",
        help="This is a demo container used to illustrate a def file.",
    ),
    # "%app*": %apprun foo / %applabels foo / %appinstall foo / %appenv foo / %apphelp foo
    _on_ubuntu(
        "apps",
        "%apphelp foo\nThis is text for foo\n\n%appinstall foo\ntouch foo.exec\n\n"
        "%appenv foo\nexport SOFTWARE=foo\n\n%applabels foo\n    BESTAPP FOO\n\n"
        '%apprun foo\nexec echo "RUNNING FOO"\n',
        apps=[
            App(
                "foo",
                run='exec echo "RUNNING FOO"',
                labels={"BESTAPP": "FOO"},
                install="touch foo.exec",
                env={"SOFTWARE": "foo"},
                help="This is text for foo",
            )
        ],
    ),
]


@pytest.mark.parametrize(("name", "stage", "expected"), CASES, ids=[c[0] for c in CASES])
def test_golden(name, stage, expected):
    assert render(stage) == expected


def test_meaning_as_apptainer_reads_it():
    text = render(
        Stage(
            Header.docker("ubuntu:24.04", stage="final"),
            files=[Files(["a"]), Files([("/x", "/y")], from_stage="build")],
            post=Script("echo hi", shell="/bin/bash"),
            labels={"k": "v w"},
            runscript=Script('exec "$@"', shell="/bin/bash"),
            apps=[App("gpu-check", run="exec python /app/gpu_check.py")],
        )
    )
    [stage] = [port.parse_stage(s) for s in port.split_stages(text)]
    assert stage["header"] == {"bootstrap": "docker", "from": "ubuntu:24.04", "stage": "final"}
    assert stage["files"] == [("", [("a", "")]), ("from build", [("/x", "/y")])]
    sections = stage["sections"]
    assert sections["post"][0] == "-c /bin/bash -e"
    assert sections["runscript"][1].startswith("#!/bin/bash\n")  # first body line
    assert port.get_labels(sections["labels"][1]) == {"k": "v w"}
    assert "apprun gpu-check" in sections
    assert set(k.split(" ")[0] for k in sections) <= port.VALID_SECTIONS | port.APP_SECTIONS


def test_two_stage_recipe_has_files_from_build():
    build = Stage(Header.docker("ubuntu:24.04", stage="build"), post="make")
    final = Stage(
        Header.docker("ubuntu:24.04", stage="final"), files=Files(["/app/bin"], from_stage="build")
    )
    text = render(Recipe([build, final]))
    stages = [port.parse_stage(s) for s in port.split_stages(text)]
    assert [s["header"]["stage"] for s in stages] == ["build", "final"]
    assert stages[1]["files"] == [("from build", [("/app/bin", "")])]
    assert "\n\nBootstrap: docker\nFrom: ubuntu:24.04\nStage: final\n" in text


def test_render_refuses_a_piece_apptainers_scanner_cannot_read(tmp_path):
    # deffile.go ParseDefinitionFile: a bufio.Scanner of at most 64 KiB per section
    import apptainer_port as port
    from conftest import run_cli

    recipe = tmp_path / "recipe.py"
    recipe.write_text(
        "from defbuilder import Header, Stage\n"
        "body = '\\n'.join(f'echo {i:05d} ' + 'a' * 60 for i in range(1100))\n"
        "recipe = Stage(Header.docker('ubuntu:24.04'), post=body, runscript='exec true')\n"
    )
    out = run_cli("render", str(recipe))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"defbuilder: error: {recipe}:3: %post with its body is ")
    assert "bufio.Scanner: token too long" in out.stderr
    fits = recipe.read_text().replace("range(1100)", "range(900)")
    recipe.write_text(fits)
    out = run_cli("render", str(recipe))
    assert out.returncode == 0, out.stderr
    assert not port.scanner_too_long(out.stdout.encode())
