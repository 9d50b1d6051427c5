"""Entrypoint: Docker's ENTRYPOINT/CMD semantics, run for real through the harness.

Expected argv come from Docker's documentation, "Understand how CMD and ENTRYPOINT
interact" (docs.docker.com/reference/dockerfile/#understand-how-cmd-and-entrypoint-interact):

                         | no ENTRYPOINT        | ENTRYPOINT e p1 (shell) | ENTRYPOINT ["e","p1"]
  no CMD                 | error                | /bin/sh -c "e p1"       | e p1
  CMD ["c","p1c"]        | c p1c                | /bin/sh -c "e p1"       | e p1 c p1c
  CMD c p1c (shell)      | /bin/sh -c "c p1c"   | /bin/sh -c "e p1"       | e p1 /bin/sh -c "c p1c"

and "docker run IMAGE args" replaces CMD with args (exec-form ENTRYPOINT keeps them
after the entrypoint; the shell form ignores them).
"""

from __future__ import annotations

import signal
import sys

import pytest
from harness import needs_namespaces, parse_dump, tools_dir

from defbuilder import Header, Stage, render
from defbuilder.blocks import Entrypoint
from defbuilder.runtime import unpack

pytestmark = needs_namespaces

D = "/opt/t/dump"
ODD = ["a b", "", "*", "it's", '"q"', "$HOME", "new\nline", "-n", "%pct", "{{ X }}", "ü"]

# (id, entrypoint, cmd, run args, argv the program receives — from Docker's table)
TABLE = [
    ("cmd-exec", None, [D, "p1_cmd"], [], ["p1_cmd"]),
    ("cmd-exec+args", None, [D, "p1_cmd"], [D, "x"], ["x"]),
    ("cmd-shell", None, f"{D} p1_cmd", [], ["p1_cmd"]),
    ("cmd-shell+args", None, f"{D} p1_cmd", [D, "y"], ["y"]),
    ("entry-exec", [D, "p1_entry"], None, [], ["p1_entry"]),
    ("entry-exec+args", [D, "p1_entry"], None, ["a1", "a2"], ["p1_entry", "a1", "a2"]),
    ("entry-exec+cmd-exec", [D, "p1_entry"], ["c", "p1_cmd"], [], ["p1_entry", "c", "p1_cmd"]),
    ("entry-exec+cmd-exec+args", [D, "p1_entry"], ["c", "p1_cmd"], ["z"], ["p1_entry", "z"]),
    (
        "entry-exec+cmd-shell",
        [D, "p1_entry"],
        "c p1_cmd",
        [],
        ["p1_entry", "/bin/sh", "-c", "c p1_cmd"],
    ),
    ("entry-shell", f"{D} p1_entry", None, [], ["p1_entry"]),
    ("entry-shell+cmd-exec", f"{D} p1_entry", ["c", "p1_cmd"], [], ["p1_entry"]),
    ("entry-shell+args-ignored", f"{D} p1_entry", None, ["ignored"], ["p1_entry"]),
    ("entry-exec+empty-cmd", [D, "p1_entry"], [], [], ["p1_entry"]),
    ("no-entry+args", None, None, [D, "only"], ["only"]),
    ("odd-args-intact", [D], None, ODD, ODD),
    ("odd-cmd-intact", [D], ODD, [], ODD),
]


def _image(tmp_path, block):
    text = render(Stage(Header.docker("ubuntu:24.04")) + block)
    return unpack(text, tmp_path / "img", files={"/opt/t": tools_dir(tmp_path)})


@pytest.mark.parametrize(
    ("name", "entry", "cmd", "args", "expected"), TABLE, ids=[t[0] for t in TABLE]
)
def test_docker_table(tmp_path, shell, name, entry, cmd, args, expected):
    block = Entrypoint(entry, cmd=cmd)
    assert block.argv(args)[0] in (D, "/bin/sh")  # the model's own view agrees below
    img = _image(tmp_path, block)
    res = img.run("run", args, sh=shell)
    assert res.returncode == 0, res.stderr.decode()
    assert parse_dump(res.stdout)["argv"] == expected


def test_instance_start_runs_the_entrypoint(tmp_path, shell):
    img = _image(tmp_path, Entrypoint([D, "started"], cmd=["default"]))
    res = img.run("start", ["inst-arg"], sh=shell)
    assert parse_dump(res.stdout)["argv"] == ["started", "inst-arg"]


def test_neither_entrypoint_nor_cmd_is_an_error_without_args(tmp_path, shell):
    img = _image(tmp_path, Entrypoint())
    res = img.run("run", [], sh=shell)
    assert res.returncode == 125 and b"No command specified" in res.stderr


def test_exit_status_is_the_programs(tmp_path, shell):
    img = _image(tmp_path, Entrypoint([D]))
    res = img.run("run", [], sh=shell, env={"DUMP_EXIT": "7"})
    assert res.returncode == 7


# The handler may run while the main thread is anywhere, even inside print()'s own
# flush (on a busy machine the signal can arrive before print() has returned), and
# buffered I/O is not reentrant ("RuntimeError: reentrant call inside
# <_io.BufferedWriter>"). So the program writes with os.write, and the handler
# exits with os._exit: both are plain system calls, safe at any point.
SLEEPER = f"""#!{sys.executable}
import os, signal, time
def term(*_):
    os.write(1, b"got SIGTERM\\n")
    os._exit(42)
signal.signal(signal.SIGTERM, term)
os.write(1, f"ready {{os.getpid()}}\\n".encode())
while True:
    time.sleep(60)
"""


def test_program_is_execd_and_gets_sigterm(tmp_path, shell):
    prog = tools_dir(tmp_path) / "sleeper"
    prog.write_text(SLEEPER)
    prog.chmod(0o755)
    img = _image(tmp_path, Entrypoint(["/opt/t/sleeper"]))
    import subprocess

    proc = img.popen("run", [], sh=shell, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Synchronised: the handler is installed before "ready" is written.
        line = proc.stdout.readline().decode().split()
        assert line and line[0] == "ready", line or proc.stderr.read().decode()
        assert int(line[1]) == proc.pid  # same PID: the runscript exec'd the program
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 42
    assert b"got SIGTERM" in out


def test_workdir_like_docker(tmp_path, shell):
    img = _image(
        tmp_path, Entrypoint(["/bin/sh", "-c", 'exec /opt/t/dump "$PWD"'], workdir="/opt/t")
    )
    assert parse_dump(img.run("run", [], sh=shell).stdout)["argv"] == ["/opt/t"]


def test_argv_model_matches_docker_table():
    for _name, entry, cmd, args, expected in TABLE:
        argv = Entrypoint(entry, cmd=cmd).argv(args)
        if argv and argv[0] == D:
            assert argv[1:] == expected
        elif argv[:2] == ["/bin/sh", "-c"]:
            assert argv[2].startswith(D)
