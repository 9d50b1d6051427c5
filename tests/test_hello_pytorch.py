"""recipes/hello_pytorch: rendered deterministically, and its .def behaves as documented.

The build stage's %post runs like Apptainer runs it (/bin/sh -ex, dash) against the
fake pixi, whose env python is this test environment's real Python with torch 2.13
(CPU); then the final stage is entered through the harness: run with and without
arguments, exec, test, instance start, and the gpu-check app. The four flaws of the
upstream example (UW-Madison-DSI/pixi-docker-chtc, ``examples/hello_pytorch``) are
checked one by one.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from harness import needs_namespaces

from defbuilder.blocks.bases import PIXI_VERSION
from defbuilder.parse import split_stages
from defbuilder.runtime import unpack

RECIPE = ROOT / "recipes" / "hello_pytorch" / "recipe.py"
FAKES = Path(__file__).parent / "fakes"
# nvidia/cuda's Docker ENV (10-docker2singularity.sh), which the activation must keep
CUDA_ENV = (
    'export PATH="/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:'
    '/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n'
)


def rendered(*sets: str) -> str:
    args = [a for s in sets for a in ("--set", s)]
    out = run_cli("render", str(RECIPE), *args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_render_is_deterministic_across_hash_seeds():
    a = run_cli("render", str(RECIPE), env={"PYTHONHASHSEED": "1"}).stdout
    b = run_cli("render", str(RECIPE), env={"PYTHONHASHSEED": "999"}).stdout
    assert a == b and a


def test_parameters():
    text = rendered("cuda=13.0", "environment=gpu", "base=pixi")
    assert f"From: ghcr.io/prefix-dev/pixi:{PIXI_VERSION}-noble-cuda-13.0.0" in text
    assert "export CONDA_OVERRIDE_CUDA=13\n" in text
    assert "From: nvidia/cuda:12.9.1-base-ubuntu24.04" in rendered()
    assert "From: nvidia/cuda:11.8.0-base-ubuntu22.04" in rendered("cuda=11.8", "os=jammy")


def refused(*sets: str) -> str:
    args = [a for s in sets for a in ("--set", s)]
    out = run_cli("render", str(RECIPE), *args)
    assert out.returncode == 2 and out.stdout == "", out
    assert "Traceback" not in out.stderr
    return out.stderr


def test_base_is_a_choice():
    err = refused("base=foo")
    assert "recipe.py:" in err and "--set base='foo'" in err
    assert "expected one of: cuda, pixi" in err
    assert "expected one of: noble, jammy, focal" in refused("os=bionic")


def test_cuda_release_nvidia_does_not_publish_is_refused():
    err = refused("cuda=11.8")  # 11.8.0-base-ubuntu24.04 does not exist
    assert "no CUDA 11.8 image for ubuntu24.04" in err
    assert "nearest published: 12.5.1-*-ubuntu24.04" in err and "ubuntu22.04 (jammy)" in err
    assert "its CUDA variants for noble: 12.9.1, 13.0.0" in refused("cuda=12.8", "base=pixi")


def copy_recipe(tmp_path: Path) -> Path:
    """The recipe directory as a user has it, without a pixi.lock (as in this repo)."""
    dst = tmp_path / "hello_pytorch"
    shutil.copytree(
        RECIPE.parent, dst, ignore=shutil.ignore_patterns("__pycache__", "*.def", "pixi.lock")
    )
    return dst


def test_without_a_lock_it_renders_unlocked_and_warns_with_one_locked(tmp_path):
    recipe = copy_recipe(tmp_path) / "recipe.py"
    out = run_cli("render", str(recipe))
    assert out.returncode == 0, out.stderr
    assert "defbuilder: warning: " in out.stderr and ": no lock file" in out.stderr
    assert f"{tmp_path}/hello_pytorch/pixi.lock" in out.stderr  # the missing file, named
    build, final = split_stages(out.stdout)
    assert "pixi install --manifest-path /app/pixi.toml --environment gpu\n" in out.stdout
    assert "--locked" not in build.section("post").body
    assert "pixi.lock" not in build.section("files").body
    assert "/app/pixi.lock" in final.section("files").body.split()  # kept for hand-back
    (recipe.parent / "pixi.lock").write_text("version: 6\n")
    out = run_cli("render", str(recipe))
    assert out.returncode == 0 and "Warning" not in out.stderr, out.stderr
    build, final = split_stages(out.stdout)
    assert "--environment gpu --locked" in build.section("post").body
    assert build.section("files").body.split()[-2:] == ["pixi.lock", "/app/pixi.lock"]
    assert "/app/pixi.lock" not in final.section("files").body.split()


def test_isolated_from_the_host_and_pinned():
    text = rendered()
    assert "export PYTHONNOUSERSITE=1" in text  # the host's ~/.local cannot shadow torch
    assert f"From: ghcr.io/prefix-dev/pixi:{PIXI_VERSION}-noble\n" in text  # not `noble`
    assert "From: ghcr.io/prefix-dev/pixi:noble\n" not in text


def test_manifest_lists_aarch64_in_the_rich_platform_form():
    import tomllib

    manifest = tomllib.loads((RECIPE.parent / "pixi.toml").read_text())
    platforms = manifest["workspace"]["platforms"]
    assert {"platform": "linux-64", "cuda": "12"} in platforms
    assert {"platform": "linux-aarch64", "cuda": "12"} in platforms  # GH200 nodes
    assert "system-requirements" not in manifest  # deprecated since pixi 0.71
    assert tuple(int(p) for p in PIXI_VERSION.split(".")) >= (0, 71)  # reads that form


def test_prune_changes_the_build_stage_only():
    on, off = split_stages(rendered()), split_stages(rendered("prune=false"))
    strict = split_stages(rendered("prune=strict"))
    assert "-name '*.a'" in on[0].section("post").body
    assert "du -sh" in on[0].section("post").body
    assert "-name '*.a'" not in off[0].section("post").body
    assert "/include" in strict[0].section("post").body
    assert "/include" not in on[0].section("post").body
    assert render_final(on) == render_final(off) == render_final(strict)


def render_final(stages) -> str:
    return "\n".join(f"{s.name}:{s.args}:{s.body}" for s in stages[1].sections)


def test_the_rendered_flagship_passes_lint_when_its_bases_are_pinned(tmp_path):
    digest = "sha256:" + "0" * 64  # a placeholder: the test is about the rule, not the image
    text = rendered(f"build_digest={digest}", f"final_digest={digest}")
    path = tmp_path / "app.def"
    path.write_text(text)
    out = run_cli("lint", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


# --- the four flaws of the upstream example ------------------------------------------


def test_flaw1_no_inert_shebang_lines():
    """Upstream put `#!/bin/bash` in %post, where Apptainer runs /bin/sh -ex and the
    line is a comment. Here no build section holds a #! line, and run/start/test
    scripts have none either: they are plain POSIX sh (interpreter #!/bin/sh)."""
    for stage in split_stages(rendered()):
        for sec in stage.sections:
            lines = sec.body.splitlines()
            if sec.name in ("post", "setup", "pre"):
                assert not any(ln.lstrip().startswith("#!") for ln in lines), sec.name
                assert sec.args == ""  # runs as /bin/sh -ex: stops at the first failure
            if sec.name in ("runscript", "startscript", "test"):
                assert not any(ln.lstrip().startswith("#!") for ln in lines), sec.name


def test_flaw2_nothing_needs_sed():
    text = rendered()
    assert "sed " not in text
    assert "'. /app/activate.sh' 'exec \"$@\"'" in text  # entrypoint = activate + exec


@needs_namespaces
class TestThroughHarness:
    @pytest.fixture
    def image(self, tmp_path, shell):
        text = rendered()
        app = tmp_path / "app"
        app.mkdir()
        recipe_dir = RECIPE.parent
        shutil.copy(recipe_dir / "pixi.toml", app / "pixi.toml")  # build %files
        (app / "pixi.lock").write_text("version: 6\n")
        fakes = tmp_path / "fakes"
        shutil.copytree(FAKES, fakes)
        build = unpack(
            text, tmp_path / "build-root", stage="build", files={"/app": app, "/opt/fakes": fakes}
        )
        res = build.run(
            "exec",
            build.build_script_argv("post"),
            sh=shell,
            env={"PATH": "/opt/fakes:/usr/bin:/bin", "FAKE_PIXI_PYTHON": sys.executable},
        )
        assert res.returncode == 0, res.stderr.decode()
        shutil.copy(recipe_dir / "gpu_check.py", app / "gpu_check.py")  # final %files
        return unpack(
            text,
            tmp_path / "final-root",
            stage="final",
            files={"/app": app},
            base_env={"10-docker2singularity.sh": CUDA_ENV},
        )

    def test_run_without_arguments_runs_the_gpu_check(self, image, shell):
        res = image.run("run", [], sh=shell, timeout=300)
        assert res.returncode == 0, res.stderr.decode()
        assert b"No GPU found" in res.stdout and b"Status: ok" in res.stdout

    def test_run_with_arguments_replaces_the_default_command(self, image, shell):
        res = image.run(
            "run", ["python", "-c", "import sys; print(sys.argv[1:])", "a b", ""], sh=shell
        )
        assert res.stdout == b"['a b', '']\n"

    def test_flaw3_exec_sees_the_environment(self, image, shell):
        res = image.run(
            "exec",
            [
                "python",
                "-c",
                "import os; print(os.environ['CONDA_PREFIX'], os.environ['PATH'].split(':')[:2])",
            ],
            sh=shell,
        )
        assert res.stdout.decode().strip() == (
            "/app/.pixi/envs/gpu ['/app/.pixi/envs/gpu/bin', '/usr/local/nvidia/bin']"
        )

    def test_test_action_runs_the_check(self, image, shell):
        res = image.run("test", [], sh=shell, timeout=300)
        assert res.returncode == 0 and b"Matmul check on cpu" in res.stdout

    def test_app_gpu_check_reports_no_gpu_as_exit_3(self, image, shell):
        res = image.run("run", ["--json", "--require-gpu"], app="gpu-check", sh=shell, timeout=300)
        assert res.returncode == 3
        assert json.loads(res.stdout)["status"] == "no-gpu"

    def test_instance_start_runs_the_entrypoint(self, image, shell):
        res = image.run("start", ["python", "-c", "print('started')"], sh=shell)
        assert res.stdout == b"started\n"

    def test_flaw4_runscript_execs_so_signals_reach_the_program(self, image, shell):
        prog = (
            "import os, signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
            "print(os.getpid(), flush=True)\ntime.sleep(60)\n"
        )
        proc = image.popen("run", ["python", "-c", prog], sh=shell, stdout=subprocess.PIPE)
        try:
            assert int(proc.stdout.readline()) == proc.pid
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 42


# --- lint: the flagship passes its own checks; a team may require locks --------------------

POLICY = RECIPE.parent / "defbuilder.toml"
UNLOCKED = "pixi install --manifest-path /app/pixi.toml --environment gpu"


def lint_codes(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split(": ")[1].split()[0] for line in out.stdout.splitlines()]


def test_flagship_lints_clean_with_default_rules(tmp_path):
    """The recipe, its directory, recipes/ and a .def rendered beside the recipe find
    recipes/hello_pytorch/defbuilder.toml (allow-tags: the two bases' version tags);
    a .def rendered elsewhere names it with --policy (docs/lint.md)."""
    from conftest import run_installed

    for target in (RECIPE, RECIPE.parent, ROOT / "recipes"):
        out = run_installed("lint", target)
        assert out.returncode == 0 and out.stdout == "", (target, out.stdout + out.stderr)
    recipe = copy_recipe(tmp_path) / "recipe.py"
    beside = recipe.parent / "app.def"
    assert run_installed("render", recipe, "-o", beside).returncode == 0
    out = run_installed("lint", beside)
    assert out.returncode == 0 and out.stdout == "", out.stdout + out.stderr
    elsewhere = tmp_path / "app.def"
    assert run_installed("render", RECIPE, "-o", elsewhere).returncode == 0
    out = run_installed("lint", "--policy", POLICY, elsewhere)
    assert out.returncode == 0 and out.stdout == "", out.stdout + out.stderr
    out = run_installed("lint", elsewhere)  # no policy above it: the tags are reported
    assert out.returncode == 1 and lint_codes(out) == ["DB115", "DB115"]


def test_a_team_that_requires_locks_gets_dp206_until_pixi_lock_is_committed(tmp_path):
    import tomllib

    from conftest import run_installed

    assert tomllib.loads(POLICY.read_text())["policy"]["require-pixi-lock"] is False
    strict = tmp_path / "strict.toml"
    strict.write_text(
        POLICY.read_text().replace("require-pixi-lock = false", "require-pixi-lock = true")
    )
    hello = copy_recipe(tmp_path)
    recipe, app = hello / "recipe.py", hello / "app.def"
    out = run_installed("lint", "--policy", strict, recipe)
    assert out.returncode == 1 and lint_codes(out) == ["DP206"], out.stdout + out.stderr
    assert run_installed("render", recipe, "-o", app).returncode == 0
    line = app.read_text().splitlines().index(UNLOCKED) + 1
    out = run_installed("lint", "--policy", strict, app)
    assert out.returncode == 1 and lint_codes(out) == ["DP206"]
    assert out.stdout.startswith(f"{app}:{line}: DP206 [error] policy requires a pixi lock")
    assert run_installed("lint", app).returncode == 0  # the recipe's own policy: no lock needed
    (hello / "pixi.lock").write_text("version: 6\n")  # committed: the install is --locked
    out = run_installed("lint", "--policy", strict, recipe)
    assert out.returncode == 0 and out.stdout == "", out.stdout


def test_help_names_the_image_the_docs_build():
    """%help's commands use the image name every page builds (hello-pytorch.sif), and
    the README's `render ... > app.def` output at the root is ignored by git."""
    stage = split_stages(rendered())[-1]
    help_ = stage.section("help")
    assert help_ is not None and "app.sif" not in help_.body
    assert "apptainer run --nv hello-pytorch.sif " in help_.body
    for page in (ROOT / "README.md", RECIPE.parent / "README.md"):
        assert "hello-pytorch.sif" in page.read_text() and " app.sif" not in page.read_text()
    assert "/app.def" in (ROOT / ".gitignore").read_text().splitlines()
