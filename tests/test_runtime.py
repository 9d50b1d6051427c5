"""The entry harness reproduces Apptainer's metadata files and actions.

Each test names the Apptainer source it checks against (apptainer/apptainer).
Only the tests that enter an image (``Image.run``/``popen``, ``defbuilder try``
without ``--show``) need mount namespaces and are marked ``needs_namespaces``; the
metadata files and the CLI's errors are checked everywhere. How the build reads a
section (shebang, script args, section names) is parser work: tests/test_parse.py.
"""

from __future__ import annotations

import json

import pytest
from harness import needs_namespaces

from defbuilder import App, DefError, Header, Script, Stage, render
from defbuilder.runtime import unpack

DEF = """\
Bootstrap: docker
From: ubuntu:24.04

%environment
export A=from-90
B=not-exported
export ORDER="${ORDER:-}90"

%runscript
echo "argv:$#:$1:$2"
echo "A=$A B=${B:-unset} ORDER=$ORDER"

%labels
    maintainer me@example.org
    version 1.0

%help
Some help.
"""


def test_runscript_file_follows_handle_shebang(tmp_path):
    img = unpack(DEF, tmp_path)
    # metadata.go handleShebangScript: "#!/bin/sh" + "\n\n" + body + "\n"
    assert (img.meta / "runscript").read_text().startswith('#!/bin/sh\n\necho "argv')
    assert json.loads((img.meta / "labels.json").read_text()) == {
        "maintainer": "me@example.org",
        "version": "1.0",
    }
    assert (img.meta / "runscript.help").read_text() == "Some help.\n"
    env = (img.meta / "env" / "90-environment.sh").read_text()
    # base_environment.go template, then insertEnvScript appends "\n" + body + "\n"
    assert env.startswith("#!/bin/sh\n# Custom environment shell code should follow\n\n\n")


@needs_namespaces
def test_only_exported_variables_reach_the_program(tmp_path, shell):
    img = unpack(DEF, tmp_path)
    res = img.run("run", ["x y", ""], sh=shell)
    assert res.stdout.decode().splitlines() == ["argv:2:x y:", "A=from-90 B=unset ORDER=90"]


@needs_namespaces
def test_env_files_are_sourced_in_lexical_order(tmp_path, shell):
    img = unpack(
        DEF,
        tmp_path,
        base_env={
            "10-docker2singularity.sh": 'export ORDER="${ORDER:-}10"\n',
            "95-zz.sh": 'export ORDER="${ORDER:-}95"\n',
        },
    )
    res = img.run("exec", ["/bin/sh", "-c", 'echo "$ORDER"'], sh=shell)
    assert res.stdout == b"109095\n"


@needs_namespaces
def test_post_runs_with_sh_ex_and_stops_at_failure(tmp_path, shell):
    text = render(Stage(Header.docker("ubuntu:24.04"), post="echo one\nfalse\necho never"))
    img = unpack(text, tmp_path)
    res = img.run("exec", img.build_script_argv("post"), sh=shell)
    assert res.returncode != 0
    assert b"one" in res.stdout and b"never" not in res.stdout
    assert b"+ echo one" in res.stderr  # -x traces


@needs_namespaces
def test_bash_post_without_e_would_not_stop(tmp_path):
    # util.go getSectionScriptArgs: %post -c /bin/bash runs "/bin/bash script", without -e
    text = render(
        Stage(
            Header.docker("ubuntu:24.04"),
            post=Script("false\necho reached", shell="/bin/bash", errexit=False),
        )
    )
    img = unpack(text, tmp_path)
    res = img.run("exec", img.build_script_argv("post"))
    assert res.returncode == 0 and b"reached" in res.stdout
    text = render(
        Stage(Header.docker("ubuntu:24.04"), post=Script("false\necho reached", shell="/bin/bash"))
    )
    img = unpack(text, tmp_path / "2")
    res = img.run("exec", img.build_script_argv("post"))
    assert res.returncode != 0 and b"reached" not in res.stdout


@needs_namespaces
def test_default_runscript_and_missing_test(tmp_path, shell):
    img = unpack("Bootstrap: docker\nFrom: x\n", tmp_path)
    res = img.run("run", [], sh=shell)
    # base_environment.go runscriptFileContent
    assert res.stdout.startswith(b"There is no runscript defined for this container")
    res = img.run("test", [], sh=shell)
    assert res.returncode == 0 and b"No test script found" in res.stdout


@needs_namespaces
def test_instance_start_does_not_run_the_runscript(tmp_path, shell):
    img = unpack("Bootstrap: docker\nFrom: x\n%runscript\necho run\n", tmp_path)
    res = img.run("start", [], sh=shell)
    assert res.returncode == 0 and res.stdout == b""  # default startscript is empty


@needs_namespaces
def test_scif_app_environment_and_run(tmp_path, shell):
    text = render(
        Stage(
            Header.docker("ubuntu:24.04"),
            apps=[
                App(
                    "my-tool",
                    run='echo "$SCIF_APPNAME $APP_VAR $*"',
                    env={"APP_VAR": "v"},
                    labels={"k": "v"},
                )
            ],
        )
    )
    img = unpack(text, tmp_path)
    res = img.run("run", ["a"], app="my-tool", sh=shell)
    assert res.stdout == b"my-tool v a\n"
    res = img.run("exec", ["/bin/sh", "-c", 'echo "$SCIF_APPROOT_my_tool"'], sh=shell)
    assert res.stdout == b"/scif/apps/my-tool\n"  # 94-appsbase.sh, \\W -> _
    labels = json.loads((tmp_path / "scif/apps/my-tool/scif/labels.json").read_text())
    assert labels == {"SCIF_APP_NAME": "my-tool", "k": "v"}
    with pytest.raises(DefError, match="no app"):
        img.run("run", [], app="other")


TRY_DEF = "Bootstrap: docker\nFrom: ubuntu:24.04\n%runscript\nprintf '[%s]' \"$@\"\nexit 5\n"


@needs_namespaces
def test_try_command_runs_an_action(tmp_path):
    from conftest import run_cli

    d = tmp_path / "e.def"
    d.write_text(TRY_DEF)
    out = run_cli("try", str(d), "run", "--", "arg1", "arg 2", "")
    assert out.stdout == "[arg1][arg 2][]" and out.returncode == 5


def test_try_show_prints_the_scripts_without_entering(tmp_path):
    from conftest import run_cli

    d = tmp_path / "e.def"
    d.write_text(TRY_DEF)
    shown = run_cli("try", "--show", str(d), "run")
    assert shown.returncode == 0 and "==> /.singularity.d/runscript <==\n#!/bin/sh\n" in (
        shown.stdout
    )


def test_try_reports_def_errors_with_line(tmp_path):
    from conftest import run_cli

    d = tmp_path / "bad.def"
    d.write_text("Bootstrap: docker\nFrom: x\n\n%enviroment\nexport A=1\n")
    out = run_cli("try", str(d), "run")
    assert out.returncode == 2
    assert f"{d}:4: invalid section(s) specified: 'enviroment'" in out.stderr


def test_try_on_a_non_utf8_file_is_a_clear_error(tmp_path):
    from conftest import run_cli

    d = tmp_path / "bin.def"
    d.write_bytes(b"Bootstrap: docker\nFrom: \xff\xfe\n")
    out = run_cli("try", "--show", str(d), "run")
    assert out.returncode == 2 and f"{d}: not UTF-8 text" in out.stderr
    assert "Traceback" not in out.stderr


@needs_namespaces
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_try_forwards_a_signal_waits_and_cleans_up(tmp_path, signame):
    """A signal to `defbuilder try` reaches the program (Apptainer's starter forwards
    signals: internal/app/starter/master_linux.go, MonitorContainer); defbuilder then
    removes its temporary root and exits 128+N, as the program died of signal N."""
    import os
    import signal
    import subprocess
    import sys

    deffile = tmp_path / "app.def"
    deffile.write_text("Bootstrap: docker\nFrom: ubuntu:24.04\n")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "defbuilder",
            "try",
            str(deffile),
            "exec",
            "--",
            "/bin/sh",
            "-c",
            'echo "$$"; exec sleep 60',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        pid = int(proc.stdout.readline())  # the program is running: synchronised
        assert list(tmpdir.iterdir()), "try unpacks the image under TMPDIR"
        proc.send_signal(getattr(signal, signame))
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    signum = getattr(signal, signame)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert list(tmpdir.iterdir()) == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the program is gone, not left running


def test_a_signal_while_the_program_starts_is_delivered_to_it():
    """The window between starting the program and waiting for it: a signal that
    arrives then is held and passed on, never lost (the program would outlive
    defbuilder) and never fatal to defbuilder (its temporary root would stay)."""
    import os
    import signal
    import subprocess

    from defbuilder.runtime import forward_signals

    def launch() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "60"])
        os.kill(os.getpid(), signal.SIGTERM)  # arrives before run() knows the program
        return proc

    with forward_signals() as signals:
        status = signals.run(launch)
    assert status == 128 + signal.SIGTERM


def test_a_signal_before_the_program_starts_ends_cleanly():
    import os
    import signal

    from defbuilder.runtime import forward_signals

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as info, forward_signals():
        os.kill(os.getpid(), signal.SIGTERM)
    assert info.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_unpack_without_root_removes_its_directory_as_a_context_manager(tmp_path, monkeypatch):
    """unpack(text) makes a temporary root; `with` (or close()) removes it, while a
    root= the caller gave is left alone (docs/runtime.md's example used to leak one
    /tmp/defbuilder-* per run)."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with unpack(TRY_DEF) as img:
        assert img.root.parent == tmp_path and (img.meta / "runscript").exists()
    assert list(tmp_path.iterdir()) == []
    img = unpack(TRY_DEF)
    img.close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DefError, match="plain"):  # an error half-way removes it too
        unpack(TRY_DEF, base_env={"a/b.sh": ""})
    assert list(tmp_path.iterdir()) == []
    mine = tmp_path / "mine"
    mine.mkdir()
    with unpack(TRY_DEF, mine) as img:
        pass
    assert (mine / ".singularity.d" / "runscript").exists()


def test_a_def_with_a_bom_is_rejected_as_parse_rejects_it(tmp_path):
    """Apptainer reads the first header key with the BOM ("\\ufeffbootstrap") and
    stops with "invalid header keyword found" (pkg/build/types/parser/deffile.go,
    v1.5.3): try says what parse and lint say."""
    from conftest import run_cli

    from defbuilder.parse import parse

    d = tmp_path / "bom.def"
    d.write_text("\ufeff" + TRY_DEF)
    with pytest.raises(DefError) as parsed:
        parse(d.read_text(), str(d))
    with pytest.raises(DefError) as unpacked:
        unpack(d.read_text(), tmp_path / "root", file=str(d))
    assert str(unpacked.value) == str(parsed.value)
    assert not (tmp_path / "root").exists()
    for args in (["--show"], []):
        out = run_cli("try", *args, str(d), "run")
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert f"{d}:1: file starts with a UTF-8 byte-order mark" in out.stderr
        assert out.stdout == ""
    assert run_cli("parse", str(d)).stderr == out.stderr


APP_DEF = """\
Bootstrap: docker
From: ubuntu:24.04

%runscript
echo main

%apprun tool
echo tool "$@"

%appenv tool
export TOOL=1
"""


def test_try_show_with_app_prints_the_apps_scripts(tmp_path):
    """--app NAME: the scripts Apptainer runs for that app, written by
    internal/pkg/build/apps/apps.go under /scif/apps/NAME/scif (runscript, env/...)."""
    from conftest import run_cli

    d = tmp_path / "a.def"
    d.write_text(APP_DEF)
    out = run_cli("try", "--show", "--app", "tool", str(d), "run")
    assert out.returncode == 0, out.stderr
    assert "/.singularity.d" not in out.stdout
    assert '==> /scif/apps/tool/scif/runscript <==\n#!/bin/sh\n\necho tool "$@"\n' in out.stdout
    assert "==> /scif/apps/tool/scif/env/90-environment.sh <==\n" in out.stdout
    assert "export TOOL=1" in out.stdout
    missing = run_cli("try", "--show", "--app", "other", str(d), "run")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "no app 'other' in this image; apps: tool" in missing.stderr


def test_try_exec_without_a_command_says_how_to_give_one(tmp_path):
    from conftest import run_cli

    d = tmp_path / "e.def"
    d.write_text(TRY_DEF)
    for args in (["exec"], ["exec", "--"]):
        out = run_cli("try", str(d), *args)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert "exec needs a command: defbuilder try FILE exec -- COMMAND [ARGS...]" in out.stderr
