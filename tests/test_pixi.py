"""PixiEnvironment: the build stage's %post run as Apptainer runs it (/bin/sh -ex under
the chosen /bin/sh) against a fake pixi whose outputs follow pixi's documented shapes
(tests/fakes/pixi, ../shared/pixi-notes.md §1-§5), then the final stage entered
through the harness with a base image that extends PATH (as nvidia/cuda's ENV does).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from harness import needs_namespaces

from defbuilder import DefError, Header, Recipe, Stage, render
from defbuilder.blocks import PixiEnvironment, cuda_base, pixi_base
from defbuilder.parse import split_stages
from defbuilder.runtime import unpack

FAKES = Path(__file__).parent / "fakes"
PIXI_IMAGE_PATH = "/root/.pixi/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# nvidia/cuda's Docker ENV, as Apptainer writes it into 10-docker2singularity.sh
CUDA_ENV = (
    'export PATH="/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:'
    '/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n'
    'export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-"/usr/local/nvidia/lib:'
    '/usr/local/nvidia/lib64"}"\n'
    "export PKG_CONFIG_PATH=/usr/lib/pkgconfig\n"
)
MANIFEST = '[workspace]\nname = "hello"\n[system-requirements]\ncuda = "12"\n'


def pixi_recipe(**kw) -> tuple[PixiEnvironment, Recipe]:
    base = cuda_base("12.9")
    pixi = PixiEnvironment(environment="gpu", cuda=base, **kw)
    build = Stage(pixi_base("noble").header(stage="build")) + pixi.build()
    final = Stage(base.header(stage="final")) + pixi.final("build")
    return pixi, Recipe([build, final])


def build_app(tmp_path: Path, shell: str, **kw) -> tuple[PixiEnvironment, str, Path, Path]:
    """Run the build stage's %post like Apptainer; return the /app it produced."""
    pixi, recipe = pixi_recipe(**kw)
    text = render(recipe)
    app = tmp_path / "app"
    app.mkdir()
    (app / "pixi.toml").write_text(MANIFEST)  # what the build stage's %files copied
    (app / "pixi.lock").write_text("version: 6\n")
    fakes = tmp_path / "fakes"
    shutil.copytree(FAKES, fakes)
    log = tmp_path / "pixi.log"
    img = unpack(
        text,
        tmp_path / "build-root",
        stage="build",
        files={"/app": app, "/opt/fakes": fakes, "/opt/log": tmp_path},
    )
    res = img.run(
        "exec",
        img.build_script_argv("post"),
        sh=shell,
        env={"PATH": "/opt/fakes:" + PIXI_IMAGE_PATH, "FAKE_PIXI_LOG": "/opt/log/pixi.log"},
    )
    assert res.returncode == 0, res.stderr.decode()
    return pixi, text, app, log


pytestmark = needs_namespaces


def test_post_installs_locked_with_cuda_override_from_one_parameter(tmp_path, shell):
    _pixi, _text, _app, log = build_app(tmp_path, shell)
    calls = log.read_text().splitlines()
    assert calls[0].startswith("pixi [install]")
    assert "[--locked]" in calls[0] and "[--environment] [gpu]" in calls[0]
    assert calls[0].endswith("CONDA_OVERRIDE_CUDA=12")  # from cuda_base("12.9")
    assert "[shell-hook]" in calls[1] and "[--shell] [bash]" in calls[1]


def test_static_activation_has_no_pixi_traps(tmp_path, shell):
    pixi, _text, app, _log = build_app(tmp_path, shell)
    act = (app / "activate.sh").read_text()
    for trap in ("pixi()", "PS1", "completions", "[[", "PIXI_EXE", "/root/.pixi/bin"):
        assert trap not in act, trap
    assert f"export CONDA_PREFIX={pixi.prefix}" in act
    assert "export FOO_HOME=/app/.pixi/envs/gpu/share/foo" in act  # bash-only activate.d
    assert "exec" not in act  # sourcing it never replaces the caller


def test_final_stage_sees_env_under_every_action(tmp_path, shell):
    pixi, text, app, _log = build_app(tmp_path, shell)
    img = unpack(
        text,
        tmp_path / "final-root",
        stage="final",
        files={"/app": app},
        base_env={"10-docker2singularity.sh": CUDA_ENV},
    )
    probe = (
        'printf "%s\\n" "$PATH" "$CONDA_PREFIX" "$FOO_HOME" "$LD_LIBRARY_PATH" '
        '"$PKG_CONFIG_PATH" "${PS1-}"; command -v pixi || echo no-pixi-function'
    )
    res = img.run("exec", ["/bin/sh", "-c", probe], sh=shell)
    assert res.returncode == 0, res.stderr.decode()
    path, prefix, foo, ld, pkg, ps1, pixi_fn = res.stdout.decode().splitlines()
    # unset at build time, set by the final base: the env's entry is added to it
    assert pkg == f"{pixi.prefix}/lib/pkgconfig:/usr/lib/pkgconfig"
    assert path.split(":")[:3] == [
        f"{pixi.prefix}/bin",
        "/usr/local/nvidia/bin",
        "/usr/local/cuda/bin",
    ]  # base image's PATH kept
    assert prefix == pixi.prefix and foo == f"{pixi.prefix}/share/foo"
    assert ld.split(":") == [
        f"{pixi.prefix}/lib",
        "/usr/local/nvidia/lib",
        "/usr/local/nvidia/lib64",
        "/.singularity.d/libs",
    ]
    # 99-base.sh's prompt, never pixi's (bash as /bin/sh drops PS1 when non-interactive)
    assert ps1 in ("Apptainer> ", "") and pixi_fn == "no-pixi-function"
    out = img.run("shell", ["-c", "envtool s"], sh=shell)
    assert out.stdout == b"env tool s\n", out.stderr


def test_activation_is_idempotent_and_sourceable(tmp_path, shell):
    pixi, text, app, _log = build_app(tmp_path, shell)
    img = unpack(text, tmp_path / "final-root", stage="final", files={"/app": app})
    res = img.run(
        "exec",
        ["/bin/sh", "-c", '. /app/activate.sh; . /app/activate.sh; echo "$PATH"; echo alive'],
        sh=shell,
    )
    path, alive = res.stdout.decode().splitlines()
    assert path.split(":").count(f"{pixi.prefix}/bin") == 1 and alive == "alive"


def test_entrypoint_script_for_docker_parity(tmp_path, shell):
    _pixi, text, app, _log = build_app(tmp_path, shell)
    img = unpack(text, tmp_path / "final-root", stage="final", files={"/app": app})
    res = img.run(
        "exec", ["/app/entrypoint.sh", "envtool", "a b"], sh=shell, env={"PATH": "/usr/bin:/bin"}
    )
    assert res.stdout == b"env tool a b\n"


def test_project_in_callers_cwd_cannot_take_over(tmp_path, shell):
    # pixi#5294: a .pixi project in the working directory won over the image's env.
    _pixi, text, app, _log = build_app(tmp_path, shell)
    cwd = tmp_path / "work"
    impostor = cwd / ".pixi" / "envs" / "gpu" / "bin"
    impostor.mkdir(parents=True)
    (cwd / "pixi.toml").write_text(MANIFEST)
    (impostor / "envtool").write_text("#!/bin/sh\necho impostor\n")
    (impostor / "envtool").chmod(0o755)
    img = unpack(text, tmp_path / "final-root", stage="final", files={"/app": app})
    res = img.run("exec", ["envtool"], sh=shell, cwd=cwd)
    assert res.stdout == b"env tool \n"


def test_final_copies_only_what_runs(tmp_path):
    _pixi, recipe = pixi_recipe()
    final = split_stages(render(recipe))[1]
    files = [s for s in final.sections if s.name == "files"]
    assert files[0].args == "from build"
    assert files[0].body.split() == [
        "/app/.pixi/envs/gpu",
        "/app/activate.sh",
        "/app/entrypoint.sh",
    ]
    _pixi, keep = pixi_recipe(keep_pixi=True)
    body = split_stages(render(keep))[1].section("files").body
    assert "/app/pixi.lock" in body and "/app/.pixi/.gitignore" in body
    assert "cache" not in body


def test_install_without_cuda_override_fails_like_pixi(tmp_path):
    # the fake models pixi's virtual-package check; without `cuda=` the build must fail
    pixi = PixiEnvironment(environment="gpu")
    text = render(Stage(Header.docker("ghcr.io/prefix-dev/pixi:noble")) + pixi.build())
    app = tmp_path / "app"
    app.mkdir()
    (app / "pixi.toml").write_text(MANIFEST)
    (app / "pixi.lock").write_text("")
    fakes = tmp_path / "fakes"
    shutil.copytree(FAKES, fakes)
    img = unpack(text, tmp_path / "root", files={"/app": app, "/opt/fakes": fakes})
    res = img.run("exec", img.build_script_argv("post"), env={"PATH": "/opt/fakes:/usr/bin:/bin"})
    assert res.returncode != 0 and b"__cuda" in res.stderr


def test_frozen_mode_and_validation():
    assert "--frozen" in PixiEnvironment(lock_mode="frozen").post_script()
    with pytest.raises(DefError):
        PixiEnvironment(workdir="app")
    with pytest.raises(DefError):
        PixiEnvironment(environment="bad name")
    with pytest.raises(DefError):
        PixiEnvironment(activation_scripts=["../x.sh"])
