"""From recipe to job: submit files (checked with the real htcondor2 bindings), the job
wrapper (run through the harness), build/hash/push/mimic-chtc against a fake apptainer."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, fake_apptainer_bin, run_cli
from harness import needs_namespaces

from defbuilder import DefError
from defbuilder.condor import DEFAULT_REQUIREMENTS, CondorJob, job_from, write_job
from defbuilder.runtime import unpack

htcondor2 = pytest.importorskip("htcondor2", reason="pip install -e '.[test]' installs htcondor")

RECIPE = ROOT / "recipes" / "hello_pytorch" / "recipe.py"
UPSTREAM_IMAGE = (
    "oras://ghcr.io/uw-madison-dsi/pixi-docker-chtc:apptainer-hello-pytorch-noble-cuda-12.9"
)

# The upstream submit file, key by key (UW-Madison-DSI/pixi-docker-chtc, the
# hello-PyTorch example's submit file), with its requirements bug fixed: both
# conditions, joined with &&.
UPSTREAM = {
    "universe": "container",
    "container_image": UPSTREAM_IMAGE,
    "+JobDurationCategory": '"Medium"',
    "should_transfer_files": "YES",
    "when_to_transfer_output": "ON_EXIT",
    "requirements": "(GPUs_DriverVersion >= 12.0) && (OpSysMajorVer > 7)",
    "request_cpus": "1",
    "request_gpus": "1",
    "request_memory": "2GB",
    "request_disk": "7GB",
    "gpus_minimum_capability": "5.0",
    "+WantGPULab": "true",
    "+GPUJobLength": '"short"',
}


def _submit(text: str):
    return htcondor2.Submit(text)


def test_hello_pytorch_submit_matches_upstream_key_by_key(tmp_path):
    out = run_cli("condor", str(RECIPE), "--image", UPSTREAM_IMAGE, "-o", str(tmp_path))
    assert out.returncode == 0, out.stderr
    sub = _submit((tmp_path / "hello_pytorch.sub").read_text())
    from defbuilder.condor import job_defaults

    # the recipe raises upstream's 5.0 where its PyTorch needs it (see its `job` dict)
    wanted = {**UPSTREAM}
    wanted["gpus_minimum_capability"] = job_defaults(str(RECIPE)).get(
        "gpus_minimum_capability", UPSTREAM["gpus_minimum_capability"]
    )
    for key, value in wanted.items():
        key = "MY." + key[1:] if key.startswith("+") else key
        assert sub.get(key) == value, key
    for key in ("log", "output", "error"):
        assert "$(Cluster)_$(Process)" in sub.get(key)
    assert sub.get("executable") == "hello_pytorch.sh"
    assert sub.getQArgs() == "1"
    assert os.access(tmp_path / "hello_pytorch.sh", os.X_OK)


def test_docs_list_every_option_from_the_field_metadata():
    from defbuilder.condor import options_markdown

    page = (ROOT / "docs" / "chtc.md").read_text()
    start = page.index("<!-- condor-options:")
    table = page[page.index("\n", start) + 1 : page.index("<!-- end of condor-options -->")]
    assert table == options_markdown()


def test_every_condor_option_says_what_it_is(tmp_path):
    """--help: format, default and an example for each option, from CondorJob's metadata."""
    import argparse

    import attrs

    from defbuilder.cli import build_parser

    condor = next(
        a for a in build_parser("condor")._actions if isinstance(a, argparse._SubParsersAction)
    ).choices["condor"]
    helps = {a.dest: a.help or "" for a in condor._actions}
    for field in attrs.fields(CondorJob):
        if field.name == "extra":
            continue
        text = helps["job_" + field.name]
        assert field.metadata["help"].replace("%", "%%") in text
        assert "(default: " in text and text.strip().lower() != field.name.replace("_", " ")
        assert "e.g." in text or field.type == "bool", field.name
    for dest in ("recipe", "output", "key", "no_default_requirements"):
        assert len(helps[dest]) > 20, dest
    assert "osdf:///" in helps["job_image"] and "oras://" in helps["job_image"]
    assert ".sif" in helps["job_image"] and "MiB" in helps["job_request_memory"]
    assert "KiB" in helps["job_request_disk"]


@pytest.mark.parametrize("command", ["build", "hash", "push", "mimic-chtc"])
def test_image_commands_explain_themselves(command):
    import argparse

    from defbuilder.cli import build_parser

    sub = next(
        a for a in build_parser(command)._actions if isinstance(a, argparse._SubParsersAction)
    ).choices[command]
    assert sub.description and len(sub.description) > 60
    for action in sub._actions:
        if action.dest == "help":
            continue
        assert action.help and len(action.help) > 15, (command, action.dest)
        assert action.help.lower() != action.dest.replace("_", " "), (command, action.dest)
    if command == "build":
        (set_,) = [a for a in sub._actions if a.dest == "set"]
        assert "e.g. --set" in set_.help


def test_upstream_bug_is_real_and_fixed():
    # the upstream shape: a second `requirements` line silently replaces the first
    bad = _submit(
        "requirements = (GPUs_DriverVersion >= 12.0)\nrequirements = (OpSysMajorVer > 7)\n"
    )
    assert bad.get("requirements") == "(OpSysMajorVer > 7)"
    job = CondorJob(image="x.sif", requirements=["(A > 1)", "(B == true)", "(C)"])
    assert _submit(job.submit()).get("requirements") == "(A > 1) && (B == true) && (C)"


def test_every_key_settable_from_cli(tmp_path):
    out = run_cli(
        "condor",
        str(RECIPE),
        "--image",
        "osdf:///chtc/staging/me/app-0123abcd.sif",
        "--name",
        "train",
        "--request-gpus",
        "2",
        "--request-memory",
        "40GB",
        "--gpus-minimum-memory",
        "20000",
        "--gpu-job-length",
        "long",
        "--project-name",
        "DSI",
        "--transfer-input-files",
        "data.tar.gz",
        "--transfer-input-files",
        "src",
        "--transfer-output-files",
        "model.pt",
        "--queue",
        "5",
        "--no-want-gpu-lab",
        "--requirements",
        "(HasCHTCStaging)",
        "--key",
        '+AccountingGroup="lab"',
        "-o",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    sub = _submit((tmp_path / "train.sub").read_text())
    assert sub.get("request_gpus") == "2" and sub.get("request_memory") == "40GB"
    assert sub.get("gpus_minimum_memory") == "20000"
    assert sub.get("MY.GPUJobLength") == '"long"' and sub.get("MY.ProjectName") == '"DSI"'
    assert sub.get("MY.WantGPULab") is None
    assert sub.get("transfer_input_files") == "data.tar.gz, src"
    assert sub.get("transfer_output_files") == "model.pt"
    assert sub.get("requirements").endswith("&& (HasCHTCStaging)")
    assert sub.get("MY.AccountingGroup") == '"lab"'
    assert sub.getQArgs() == "5"
    assert sub.get("container_image").startswith("osdf:///")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"image": "ubuntu:24.04"}, "use oras://"),
        ({"image": "x.sif", "gpu_job_length": "forever"}, "expected short, medium, long"),
        ({"image": "x.sif", "requirements": ["(A)\n(B)"]}, r"control character \(U\+000A\)"),
    ],
)
def test_bad_jobs(kw, message):
    with pytest.raises(DefError, match=message):
        CondorJob(**kw)


def _job_recipe(tmp_path: Path, job: str) -> str:
    path = tmp_path / "recipe.py"
    path.write_text(
        "from defbuilder import Header, Stage\n"
        "recipe = Stage(Header.docker('ubuntu:24.04'))\n" + job
    )
    return str(path)


def test_job_from_layers_defaults_then_recipe_then_options(tmp_path):
    recipe = _job_recipe(
        tmp_path,
        "job = {'name': 'train', 'request_gpus': 2, "
        "'requirements': '(HasCHTCStaging)', 'extra': {'+A': '1'}}\n",
    )
    job = job_from(recipe, {"image": "x.sif", "request_gpus": 4, "queue": None})
    assert (job.name, job.request_gpus, job.queue) == ("train", 4, 1)
    assert job.requirements == ("(HasCHTCStaging)",) and job.extra == (("+A", "1"),)
    # --requirements adds to the recipe's (one string is one requirement) ...
    job = job_from(recipe, {"image": "x.sif", "requirements": ["(B)"]})
    assert job.requirements == ("(HasCHTCStaging)", "(B)")
    # ... or to the defaults; --no-default-requirements keeps only the given ones
    assert job_from(str(RECIPE), {"image": "x.sif", "requirements": ["(B)"]}).requirements == (
        *DEFAULT_REQUIREMENTS,
        "(B)",
    )
    assert job_from(
        recipe, {"image": "x.sif", "requirements": ["(B)"]}, default_requirements=False
    ).requirements == ("(B)",)
    assert job_from(recipe, {"image": "x.sif"}, default_requirements=False).requirements == ()
    # --key replaces the recipe's extra keys
    job = job_from(recipe, {"image": "x.sif"}, keys=[' +B = "2" ', "+C="])
    assert job.extra == (("+B", '"2"'), ("+C", ""))


@pytest.mark.parametrize(
    ("job", "options", "keys", "message"),
    [
        ("", {}, (), "give the container image with --image"),
        ("job = ['x']\n", {"image": "x.sif"}, (), "`job` must be a dict"),
        ("job = {'gpus': 1}\n", {"image": "x.sif"}, (), "`job` has no key 'gpus'"),
        ("", {"image": "x.sif"}, ["novalue"], "--key 'novalue': expected KEY=VALUE"),
        ("", {"image": "x.sif"}, ["=v"], "expected KEY=VALUE"),
    ],
)
def test_job_from_mistakes(tmp_path, job, options, keys, message):
    with pytest.raises(DefError, match=message):
        job_from(_job_recipe(tmp_path, job), options, keys=keys)


def test_job_from_a_def_has_no_recipe_defaults(tmp_path):
    d = tmp_path / "app.def"
    d.write_text("Bootstrap: docker\nFrom: ubuntu:24.04\n")
    assert job_from(str(d), {"image": "x.sif"}) == CondorJob(image="x.sif")


def test_write_job_writes_the_submit_file_and_an_executable_wrapper(tmp_path):
    job = CondorJob(image="x.sif", name="train", executable="train.sh")
    sub, wrapper = write_job(job, str(tmp_path / "out"))
    assert (sub, wrapper) == (
        str(tmp_path / "out" / "train.sub"),
        str(tmp_path / "out" / "train.sh"),
    )
    assert Path(sub).read_text() == job.submit() and Path(wrapper).read_text() == job.wrapper()
    assert os.stat(sub).st_mode & 0o777 == 0o644 and os.stat(wrapper).st_mode & 0o777 == 0o755
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train.sh", "train.sub"]


def test_wrapper_passes_shellcheck(tmp_path):
    exe = shutil.which("shellcheck", path=str(ROOT / ".venv" / "bin")) or shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck not installed")
    path = tmp_path / "job.sh"
    path.write_text(CondorJob(image="x.sif", command=["python", "t.py"]).wrapper())
    res = subprocess.run(
        [exe, "-s", "sh", "-S", "warning", str(path)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout


@needs_namespaces
@pytest.mark.parametrize(("check_status", "expected"), [(0, 7), (3, 3)])
def test_wrapper_activates_checks_and_returns_workload_status(
    tmp_path, shell, check_status, expected
):
    app = tmp_path / "app"
    app.mkdir()
    (app / "activate.sh").write_text("export ACTIVATED=yes\n")
    (app / "check").write_text(f"#!/bin/sh\necho check ran\nexit {check_status}\n")
    (app / "check").chmod(0o755)
    job = CondorJob(image="x.sif", activate="/app/activate.sh", gpu_check=["/app/check"])
    (app / "job.sh").write_text(job.wrapper())
    (app / "job.sh").chmod(0o755)
    img = unpack("Bootstrap: docker\nFrom: ubuntu:24.04\n", tmp_path / "root", files={"/app": app})
    res = img.run(
        "exec",
        ["/app/job.sh", "42.0", "/bin/sh", "-c", 'echo "workload sees $ACTIVATED"; exit 7'],
        sh=shell,
        env={"CUDA_VISIBLE_DEVICES": "GPU-1234"},
    )
    assert res.returncode == expected
    assert b"# Job 42.0 running on" in res.stdout
    assert b"CUDA_VISIBLE_DEVICES=GPU-1234" in res.stdout
    assert (b"workload sees yes" in res.stdout) == (check_status == 0)
    assert b"+ . /app/activate.sh" in res.stderr  # set -x logging


# --- build / hash / push / mimic-chtc with a fake apptainer ---------------------------


@pytest.fixture
def fake_apptainer(tmp_path):
    bindir = fake_apptainer_bin(tmp_path)
    log = tmp_path / "apptainer.log"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "FAKE_APPTAINER_LOG": str(log)}
    return env, log


def _recipe(tmp_path: Path) -> Path:
    d = tmp_path / "proj"
    d.mkdir()
    (d / "recipe.py").write_text(
        "from defbuilder import BuildArg, Header, Stage\n"
        "TAG = BuildArg('TAG', '24.04')\n"
        "recipe = Stage(Header.docker(f'ubuntu:{TAG}'), arguments=[TAG], post='true')\n"
    )
    return d / "recipe.py"


@pytest.mark.parametrize("naming", [["--hash-name"], ["--name-by", "output"]])
def test_build_names_the_image_by_its_content(tmp_path, fake_apptainer, naming):
    # --name-by output is documented as the same as --hash-name
    env, _log = fake_apptainer
    recipe = _recipe(tmp_path)
    out = run_cli(
        "build", str(recipe), "-o", str(tmp_path / "app.sif"), *naming, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    produced = Path(out.stdout.strip())
    assert produced.name == f"app-{hashlib.sha256(produced.read_bytes()).hexdigest()[:8]}.sif"
    assert not (tmp_path / "app.sif").exists()


def test_build_hash_name_matches_openssl(tmp_path, fake_apptainer):
    env, log = fake_apptainer
    recipe = _recipe(tmp_path)
    out = run_cli(
        "build",
        str(recipe),
        "-o",
        str(tmp_path / "app.sif"),
        "--hash-name",
        "--build-arg",
        "TAG=22.04",
        env={**env, "FAKE_APPTAINER_MB": "5"},
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    produced = Path(out.stdout.strip())
    assert not (tmp_path / "app.sif").exists()
    data = produced.read_bytes()
    assert len(data) > 5 * 2**20
    if shutil.which("openssl"):
        sha8 = subprocess.run(
            f"openssl sha256 -r {produced} | cut -b -8",
            shell=True,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    else:
        sha8 = hashlib.sha256(data).hexdigest()[:8]
    assert produced.name == f"app-{sha8}.sif"
    line = log.read_text().splitlines()[0]
    assert line.startswith(f"cwd={recipe.parent} ")  # %files paths resolve from the recipe
    assert "[build][--build-arg][TAG=22.04]" in line
    assert (
        Path(str(log) + ".def").read_text() == run_cli("render", str(recipe)).stdout
    )  # the def it built is the rendering
    assert not list(recipe.parent.glob(".defbuilder-*"))  # temp def removed
    assert run_cli("hash", str(produced)).stdout.strip() == str(
        produced.with_name(f"app-{sha8}-{hashlib.sha256(data).hexdigest()[:8]}.sif")
    )


def test_image_path_names_the_image_after_the_recipe(tmp_path, monkeypatch):
    from defbuilder.images import image_path

    monkeypatch.chdir(tmp_path)
    assert image_path("proj/recipe.py") == str(tmp_path / "proj.sif")
    assert image_path("proj/train.py") == str(tmp_path / "train.sif")
    assert image_path("proj/recipe.py", "out/x.sif") == str(tmp_path / "out" / "x.sif")


def test_build_arg_flags_only_for_declared_arguments(tmp_path):
    from defbuilder.images import build_arg_flags
    from defbuilder.loader import load_recipe

    recipe = load_recipe(str(_recipe(tmp_path)), {})
    assert build_arg_flags(recipe, ["TAG=22.04"]) == ["--build-arg", "TAG=22.04"]
    with pytest.raises(DefError, match=r"--build-arg NOPE: .* \(declared: TAG\)"):
        build_arg_flags(recipe, ["NOPE=1"])
    with pytest.raises(DefError, match="expected NAME=VALUE"):
        build_arg_flags(recipe, ["TAG"])


def test_build_failures(tmp_path, fake_apptainer):
    env, _log = fake_apptainer
    recipe = _recipe(tmp_path)
    out = run_cli("build", str(recipe), "--build-arg", "NOPE=1", env=env)
    assert out.returncode == 2 and "declares no such argument" in out.stderr
    out = run_cli(
        "build", str(recipe), "-o", str(tmp_path / "x.sif"), env={**env, "FAKE_APPTAINER_EXIT": "3"}
    )
    assert out.returncode == 3 and not (tmp_path / "x.sif").exists()
    out = run_cli("build", str(recipe), env={"PATH": "/usr/bin:/bin"})
    if shutil.which("apptainer", path="/usr/bin:/bin") or shutil.which(
        "singularity", path="/usr/bin:/bin"
    ):
        pytest.skip("a real apptainer is installed")
    assert out.returncode == 2 and "neither apptainer nor singularity" in out.stderr
    assert "install Apptainer" in out.stderr


def test_push_oras_and_staging(tmp_path, fake_apptainer):
    env, log = fake_apptainer
    image = tmp_path / "app-0123abcd.sif"
    image.write_bytes(b"sif bytes")
    out = run_cli("push", str(image), "oras://ghcr.io/me/app:1", env=env)
    assert out.returncode == 0
    assert (
        log.read_text().splitlines()[-1].endswith(f"argv=[push][{image}][oras://ghcr.io/me/app:1]")
    )
    staging = tmp_path / "staging"
    staging.mkdir()
    out = run_cli(
        "push", str(image), "--staging", str(staging), "--osdf-prefix", "osdf:///chtc/staging/me"
    )
    assert out.stdout.strip() == "osdf:///chtc/staging/me/app-0123abcd.sif"
    assert (staging / image.name).read_bytes() == b"sif bytes"
    assert (
        run_cli(
            "push", str(image), "--staging", str(staging), "--osdf-prefix", "osdf:///x"
        ).returncode
        == 0
    )  # identical file: fine
    image.write_bytes(b"other bytes")
    out = run_cli("push", str(image), "--staging", str(staging), "--osdf-prefix", "osdf:///x")
    assert out.returncode == 2 and "immutable" in out.stderr
    assert (staging / image.name).read_bytes() == b"sif bytes"


def test_osdf_url_from_staging_path():
    from defbuilder.images import osdf_url

    assert osdf_url("/staging/mfeickert/apptainer/x.sif") == (
        "osdf:///chtc/staging/mfeickert/apptainer/x.sif"
    )


def test_mimic_chtc_prints_the_seed_line(tmp_path):
    out = run_cli("mimic-chtc", "--print", "img.sif", cwd=tmp_path)
    assert out.stdout.strip() == (
        f"apptainer exec --scratch /tmp --scratch /var/tmp --workdir {tmp_path} --pwd "
        f"{tmp_path} --bind {tmp_path} --no-home --containall --nv img.sif bash"
    )
    out = run_cli(
        "mimic-chtc", "--print", "img.sif", "--", "python", "-c", "print(1)", cwd=tmp_path
    )
    assert out.stdout.strip().endswith("img.sif python -c 'print(1)'")


def test_mimic_chtc_runs_apptainer(tmp_path, fake_apptainer):
    env, log = fake_apptainer
    out = run_cli("mimic-chtc", "img.sif", "--", "true", env=env, cwd=tmp_path)
    assert out.returncode == 0
    assert log.read_text().strip().endswith("[--nv][img.sif][true]")


@pytest.mark.skipif(not shutil.which("apptainer"), reason="needs a real apptainer binary")
def test_real_apptainer_builds_a_tiny_image(tmp_path):  # pragma: no cover - no apptainer here
    d = tmp_path / "p"
    d.mkdir()
    (d / "recipe.py").write_text(
        "from defbuilder import Header, Stage\nrecipe = Stage(Header('scratch'))\n"
    )
    out = run_cli("build", str(d / "recipe.py"), "-o", str(tmp_path / "t.sif"))
    assert out.returncode == 0, out.stderr
