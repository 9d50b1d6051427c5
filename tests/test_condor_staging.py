"""`push --staging`: everything is checked before copying, the copy is published only
under a free name, and an interrupted copy leaves nothing behind.

Concurrency is synchronised, never timed: each push runs in its own process with a hook
after its first copied chunk that says "ready" on a pipe and then waits on another pipe.
The test holds both pushes there (both temp files exist, both have checked that the
name is free) and only then lets them go, or sends the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import run_installed

from defbuilder import DefError
from defbuilder.images import publish_renamed, stage_image

# A push whose copy stops after the first 1 MiB chunk: it writes "r" to the READY pipe,
# then blocks reading the GO pipe until the test lets it go (or signals it).
HOOKED = textwrap.dedent(
    """
    import os, sys
    from defbuilder import cli, fileio

    ready, go = int(sys.argv[1]), int(sys.argv[2])
    copy_chunk = fileio._copy_chunk
    chunks = 0

    def hooked(fd, chunk):
        global chunks
        copy_chunk(fd, chunk)
        chunks += 1
        if chunks == 1:
            os.write(ready, b"r")
            os.read(go, 1)

    fileio._copy_chunk = hooked
    sys.exit(cli.main(sys.argv[3:]))
    """
)


class HookedPush:
    """`defbuilder push ARGS` in a child process, held after its first copied chunk."""

    def __init__(self, *args: str) -> None:
        self.ready_r, ready_w = os.pipe()
        go_r, self.go_w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOOKED, str(ready_w), str(go_r), "push", *args],
            pass_fds=(ready_w, go_r),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(ready_w)
        os.close(go_r)

    def wait_ready(self) -> None:
        """Block until the child has copied its first chunk (or has exited early)."""
        got = os.read(self.ready_r, 1)
        if got != b"r":
            _out, err = self.proc.communicate(timeout=60)
            pytest.fail(f"push ended before copying: {self.proc.returncode} {err}")

    def go(self) -> tuple[int, str, str]:
        os.write(self.go_w, b"g")
        return self.finish()

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=120)
        os.close(self.ready_r)
        os.close(self.go_w)
        return self.proc.returncode, out, err


def _image(path: Path, fill: bytes, mib: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fill * (mib << 20))
    return path


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_concurrent_pushes_of_different_images_stage_exactly_one(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    a = _image(tmp_path / "a" / "app.sif", b"A")
    b = _image(tmp_path / "b" / "app.sif", b"B")
    prefix = ("--staging", str(staging), "--osdf-prefix", "osdf:///chtc/staging/me")
    pushes = [HookedPush(str(a), *prefix), HookedPush(str(b), *prefix)]
    for push in pushes:
        push.wait_ready()
    # both are mid-copy, into their own temp files; the name is still free
    assert len([n for n in _listing(staging) if n.startswith(".app.sif.")]) == 2
    assert not (staging / "app.sif").exists()
    results = [push.go() for push in pushes]
    codes = sorted(code for code, _out, _err in results)
    assert codes == [0, 2], results
    staged = (staging / "app.sif").read_bytes()
    winner = next(p for p, (code, _o, _e) in zip((a, b), results, strict=True) if code == 0)
    assert staged == winner.read_bytes()  # whole, and exactly one of the inputs
    loser_err = next(err for code, _out, err in results if code == 2)
    assert "app.sif: exists with different content; OSDF caches files as immutable" in loser_err
    assert next(out for code, out, _e in results if code == 0) == (
        "osdf:///chtc/staging/me/app.sif\n"
    )
    assert _listing(staging) == ["app.sif"]  # no temp file left


def test_concurrent_pushes_of_the_same_image_both_succeed(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    image = _image(tmp_path / "app-0123abcd.sif", b"S")
    prefix = ("--staging", str(staging), "--osdf-prefix", "osdf:///x")
    pushes = [HookedPush(str(image), *prefix) for _ in range(2)]
    for push in pushes:
        push.wait_ready()
    results = [push.go() for push in pushes]
    assert [code for code, _o, _e in results] == [0, 0], results
    assert (staging / image.name).read_bytes() == image.read_bytes()
    assert _listing(staging) == [image.name]


@pytest.mark.parametrize(
    ("sig", "status"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)]
)
def test_an_interrupted_copy_leaves_nothing(tmp_path, sig, status):
    staging = tmp_path / "staging"
    staging.mkdir()
    image = _image(tmp_path / "app.sif", b"I")
    push = HookedPush(str(image), "--staging", str(staging), "--osdf-prefix", "osdf:///x")
    push.wait_ready()
    assert len(_listing(staging)) == 1  # the temp file, one chunk in
    push.proc.send_signal(sig)
    code, out, _err = push.finish()
    assert code == status and out == ""
    assert _listing(staging) == []


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("", ["--staging", "{staging}"], "is not under /staging/: give --osdf-prefix"),
        ("", ["--staging", "{tmp}/nope", "--osdf-prefix", "osdf:///x"], "does not exist"),
        ("", ["--staging", "{staging}", "--osdf-prefix", "osdf x"], "--osdf-prefix 'osdf x'"),
        ("name", ["--staging", "{staging}", "--osdf-prefix", "osdf:///x"], "rename it"),
        ("dir", ["--staging", "{staging}", "--osdf-prefix", "osdf:///x"], "not a regular file"),
    ],
)
def test_everything_is_checked_before_copying(tmp_path, setup, args, message):
    staging = tmp_path / "staging"
    staging.mkdir()
    image = _image(tmp_path / ("my app.sif" if setup == "name" else "app.sif"), b"x", 1)
    if setup == "dir":
        (staging / "app.sif").mkdir()
    argv = [a.format(staging=staging, tmp=tmp_path) for a in args]
    out = run_installed("push", str(image), *argv, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert message in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert _listing(staging) == (["app.sif"] if setup == "dir" else [])


def test_stage_image_api_and_identical_restage(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    image = _image(tmp_path / "app-1.sif", b"z", 2)
    assert stage_image(str(image), str(staging), "osdf:///p/") == (
        str(staging / "app-1.sif"),
        "osdf:///p/app-1.sif",
    )
    assert stage_image(str(image), str(staging), "osdf:///p")[1] == "osdf:///p/app-1.sif"
    image.write_bytes(b"other")
    with pytest.raises(DefError, match="exists with different content"):
        stage_image(str(image), str(staging), "osdf:///p")
    assert (staging / "app-1.sif").stat().st_size == 2 << 20


def test_hash_naming_never_replaces_another_file(tmp_path):
    built = tmp_path / "app.sif"
    built.write_bytes(b"new image")
    taken = tmp_path / "app-1a2b3c4d.sif"
    taken.write_bytes(b"a different image")
    with pytest.raises(DefError, match="exists with different content"):
        publish_renamed(str(built), str(taken))
    assert taken.read_bytes() == b"a different image" and built.exists()
    taken.write_bytes(b"new image")  # the same bytes under that name: fine
    assert publish_renamed(str(built), str(taken)) == str(taken)
    assert not built.exists() and taken.read_bytes() == b"new image"
    fresh = tmp_path / "app-99999999.sif"
    built.write_bytes(b"x")
    assert publish_renamed(str(built), str(fresh)) == str(fresh) and not built.exists()
