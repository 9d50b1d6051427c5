"""`-o FILE` by kind of file (defbuilder/fileio.py): what is replaced atomically, what is
written in place, what is refused, and that errors name the path the user gave.

Every case runs the real command, both as the installed `defbuilder` console script and
as `python -m defbuilder`. No test writes to, or replaces, anything under /dev: the
device rules are checked with `fileio.plan`, which only looks.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from defbuilder import DefError, fileio


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "recipe.py"
    path.write_text(
        "from defbuilder import Header, Stage\n"
        "recipe = Stage(Header.docker('ubuntu:24.04'), post='echo hi')\n"
    )
    return path


@pytest.fixture(scope="module")
def rendered(recipe):
    out = subprocess.run(
        [sys.executable, "-m", "defbuilder", "render", str(recipe)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def _no_temp_files(directory: Path) -> None:
    assert not [p.name for p in directory.iterdir() if "defbuilder-tmp" in p.name]


def test_new_file_gets_the_umask_mode(cli, tmp_path, rendered, recipe):
    target = tmp_path / "app.def"
    out = cli("render", recipe, "-o", target)
    assert out.returncode == 0, out.stderr
    assert target.read_text() == rendered
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()
    _no_temp_files(tmp_path)


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_existing_file_is_replaced_atomically_and_keeps_its_mode(cli, tmp_path, rendered, recipe):
    target = tmp_path / "app.def"
    target.write_text("old\n")
    target.chmod(0o600)
    before = target.stat().st_ino
    out = cli("render", recipe, "-o", target)
    assert out.returncode == 0, out.stderr
    assert target.read_text() == rendered
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.stat().st_ino != before  # a new file renamed over the old one
    _no_temp_files(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another owner")
def test_existing_file_keeps_its_owner(tmp_path):
    target = tmp_path / "app.def"
    target.write_text("old\n")
    os.chown(target, 4321, 4321)
    fileio.write_output(str(target), "new\n")
    st = target.stat()
    assert (st.st_uid, st.st_gid, target.read_text()) == (4321, 4321, "new\n")


def test_symlink_is_written_through_to_its_target(cli, tmp_path, rendered, recipe):
    real = tmp_path / "real" / "app.def"
    real.parent.mkdir()
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "link.def"
    link.symlink_to(os.path.relpath(real, tmp_path))
    out = cli("render", recipe, "-o", link)
    assert out.returncode == 0, out.stderr
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "app.def")
    assert real.read_text() == rendered
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    _no_temp_files(tmp_path)
    _no_temp_files(real.parent)


def test_dangling_symlink_creates_its_target(cli, tmp_path, rendered, recipe):
    link = tmp_path / "link.def"
    link.symlink_to(tmp_path / "new.def")
    out = cli("render", recipe, "-o", link)
    assert out.returncode == 0, out.stderr
    assert link.is_symlink() and (tmp_path / "new.def").read_text() == rendered


def test_symlink_loop_is_refused_with_the_given_path(cli, tmp_path, recipe):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    out = cli("render", recipe, "-o", "a", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "defbuilder: error: a: too many levels of symbolic links\n"


def test_hard_link_is_written_in_place_not_split(cli, tmp_path, rendered, recipe):
    one, two = tmp_path / "one.def", tmp_path / "two.def"
    one.write_text("old\n")
    os.link(one, two)
    inode = one.stat().st_ino
    out = cli("render", recipe, "-o", two)
    assert out.returncode == 0, out.stderr
    assert one.read_text() == two.read_text() == rendered
    assert one.stat().st_ino == two.stat().st_ino == inode and one.stat().st_nlink == 2


def test_fifo_is_written_in_place(cli, tmp_path, rendered, recipe):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # open the reading end first (non-blocking), so the writer's open does not wait;
    # the rendered text fits in the pipe's buffer, read after the writer has exited
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        out = cli("render", recipe, "-o", fifo)
        assert out.returncode == 0, out.stderr
        data = b""
        while chunk := os.read(reader, 1 << 16):
            data += chunk
    finally:
        os.close(reader)
    assert data.decode() == rendered
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO
    _no_temp_files(tmp_path)


def test_dev_stdout_is_this_process_stdout(cli, rendered, recipe):
    out = cli("render", recipe, "-o", "/dev/stdout")
    assert out.returncode == 0, out.stderr
    assert out.stdout == rendered


def test_dev_stdout_appends_where_the_shell_opened_it(cli, tmp_path, rendered, recipe):
    log = tmp_path / "log.txt"
    log.write_text("before\n")
    with open(log, "a") as fh:  # `defbuilder render ... -o /dev/stdout >> log.txt`
        out = cli("render", recipe, "-o", "/dev/stdout", stdout=fh)  # stderr captured
    assert out.returncode == 0, out.stderr
    assert log.read_text() == "before\n" + rendered


@pytest.mark.parametrize("path", ["/dev/null", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"])
def test_devices_and_descriptors_are_planned_in_place(path):
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    p = fileio.plan(path)  # looks only: nothing is written
    if path == "/dev/null":
        assert (p.kind, p.path) == ("in place", "/dev/null")
    else:
        assert (p.kind, p.fd) == ("descriptor", 1)


def test_directory_socket_and_block_device_are_refused(cli, tmp_path, recipe):
    out = cli("render", recipe, "-o", tmp_path)
    assert out.returncode == 2
    assert out.stderr == f"defbuilder: error: {tmp_path}: is a directory; give a file to write\n"
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(DefError, match="is a socket"):
            fileio.plan(str(sock_path))
    block = tmp_path / "blk"
    try:
        os.mknod(block, 0o600 | stat.S_IFBLK, os.makedev(7, 0))
    except PermissionError:
        return  # creating device nodes needs privileges
    with pytest.raises(DefError, match="is a block device"):
        fileio.plan(str(block))
    assert stat.S_ISBLK(os.lstat(block).st_mode)


@pytest.mark.parametrize(
    ("given", "reason"),
    [("missing/app.def", "No such file or directory"), ("afile/app.def", "Not a directory")],
)
def test_errors_name_the_given_path_never_the_temp_file(cli, tmp_path, given, reason, recipe):
    (tmp_path / "afile").write_text("")
    out = cli("render", recipe, "-o", given, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"defbuilder: error: {given}: cannot write: {reason}\n"


def test_a_failed_write_leaves_the_target_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "app.def"
    target.write_text("old\n")

    def full(fd, data):
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr(fileio, "_write_all", full)
    with pytest.raises(DefError) as err:
        fileio.write_output(str(target), "new\n")
    assert str(err.value) == f"{target}: cannot write: No space left on device"
    assert target.read_text() == "old\n"
    _no_temp_files(tmp_path)


def test_several_files_all_or_nothing(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(DefError, match="is a directory"):
        fileio.write_outputs([(str(tmp_path / "a.txt"), "a"), (str(tmp_path / "dir"), "b")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


def test_executable_output_keeps_the_mode_and_adds_x_where_readable(tmp_path):
    wrapper = tmp_path / "job.sh"
    wrapper.write_text("old\n")
    wrapper.chmod(0o640)
    fileio.write_output(str(wrapper), "#!/bin/sh\n", executable=True)
    assert stat.S_IMODE(wrapper.stat().st_mode) == 0o750
    fresh = tmp_path / "new.sh"
    fileio.write_output(str(fresh), "#!/bin/sh\n", executable=True)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o777 & ~_umask()
