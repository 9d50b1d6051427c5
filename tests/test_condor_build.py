"""`defbuilder condor --build` (a CHTC build job) and `--dag` (BUILD -> GPUCHECK -> RUN).

Sources: CHTC/templates-GPUs, containers/pixi/build_apptainer_container.sub (a build
job: `+IsBuildJob = True`, 2 CPUs, 6GB memory, 32GB disk, the .def and its files in
transfer_input_files) and CHTC's "build.sub" for interactive builds (an executable such
as /usr/bin/hostname); htcondor-jdl(1): `preserve_relative_paths` ("the destination for
an entry that is a relative path ... becomes its relative path"), `initialdir`,
`transfer_output_remaps`; the DAGMan manual: PRE_SKIP ("the node will be marked as
successful"), RETRY ... UNLESS-EXIT, ABORT-DAG-ON ("an abort overrides node retries"),
SCRIPT POST with $RETURN. Every submit file is read with htcondor2.Submit, the DAG with
htcondor2's own DAG reader (Submit.from_dag), and the build wrapper runs, under dash and
bash, in a sandbox laid out from its submit file, with the fake apptainer.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, fake_apptainer_bin

from defbuilder.images import build_inputs

htcondor2 = pytest.importorskip("htcondor2", reason="pip install -e '.[test]' installs htcondor")

SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
    "shellcheck"
)

RECIPE = """\
from defbuilder import BuildArg, Files, Header, Stage

TAG = BuildArg("TAG", "24.04")
recipe = Stage(
    Header.docker(f"ubuntu:{TAG}"),
    arguments=[TAG],
    files=Files(["data", ("src/app.py", "/app/app.py")]),
    test="exec true",
)
job = {"name": "train", "executable": "train.sh", "gpu_check": ["python", "/app/check.py"]}
"""


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "proj"
    (proj / "data" / "sub").mkdir(parents=True)
    (proj / "src").mkdir()
    (proj / "recipe.py").write_text(RECIPE)
    (proj / "data" / "sub" / "x.txt").write_text("x\n")
    (proj / "src" / "app.py").write_text("print('app')\n")
    return proj / "recipe.py"


def _parse(path: Path) -> tuple[dict[str, str], str]:
    sub = htcondor2.Submit(path.read_text())
    return {k: v for k, v in sub.items()}, sub.getQArgs()


# --- the build job ---------------------------------------------------------------------------


def test_build_job_submit_file_key_by_key(cli, tmp_path, project):
    out_dir = tmp_path / "out"
    staging = tmp_path / "staging"
    out = cli("condor", project, "--build", "-o", out_dir, "--staging", staging,
              "--osdf-prefix", "osdf:///chtc/staging/me", "--build-arg", "TAG=22.04")  # fmt: skip
    assert out.returncode == 0, out.stderr
    image = build_inputs(str(project), {}, ["TAG=22.04"]).name
    keys, qargs = _parse(out_dir / "train-build.sub")
    logs = f"{out_dir}/train-build_$(Cluster)"
    assert keys == {
        "universe": "vanilla",
        "executable": f"{out_dir}/train-build.sh",
        "initialdir": str(project.parent),
        "log": f"{logs}.log",
        "output": f"{logs}.out",
        "error": f"{logs}.err",
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "preserve_relative_paths": "true",
        "transfer_input_files": f"{out_dir}/train.def, data, src/app.py",
        "transfer_output_files": "train-image.txt",
        "transfer_output_remaps": f'"train-image.txt = {out_dir}/train-image.txt"',
        "requirements": "(HasCHTCStaging == true)",
        "MY.IsBuildJob": "true",
        "request_cpus": "2",
        "request_memory": "6GB",
        "request_disk": "32GB",
    }
    assert qargs == "1"
    assert (out_dir / "train.def").read_text() == build_inputs(str(project)).def_text
    assert os.access(out_dir / "train-build.sh", os.X_OK)
    assert out.stdout.splitlines()[1:] == [
        f"image:       osdf:///chtc/staging/me/{image}",
        f"submit:      condor_submit {out_dir}/train-build.sub",
        f"interactive: condor_submit -interactive {out_dir}/train-build-interactive.sub, "
        "then: sh train-build.sh",
    ]
    keys, _q = _parse(out_dir / "train-build-interactive.sub")
    assert keys["executable"] == "/usr/bin/hostname"
    assert keys["transfer_input_files"] == (
        f"{out_dir}/train.def, {out_dir}/train-build.sh, data, src/app.py"
    )
    assert keys["MY.IsBuildJob"] == "true" and "transfer_output_files" not in keys


def test_build_resources_can_be_changed(cli, tmp_path, project):
    out = cli("condor", project, "--build", "-o", tmp_path / "o", "--build-request-cpus", "8",
              "--build-request-memory", "16GB", "--build-request-disk", "64GB")  # fmt: skip
    assert out.returncode == 0, out.stderr
    keys, _q = _parse(tmp_path / "o" / "train-build.sub")
    assert (keys["request_cpus"], keys["request_memory"], keys["request_disk"]) == (
        "8",
        "16GB",
        "64GB",
    )
    out = cli("condor", project, "--build", "-o", tmp_path / "p", "--build-request-memory", "x")
    assert out.returncode == 2 and out.stderr.startswith(
        "defbuilder: error: --build-request-memory 'x': expected a number"
    )


def _sandbox(submit: Path, root: Path) -> Path:
    """The job's scratch directory as HTCondor lays it out from ``submit``: each
    relative transfer_input_files entry (under initialdir) at its relative path
    (preserve_relative_paths), each absolute one by its base name, and the executable."""
    keys, _q = _parse(submit)
    assert keys["preserve_relative_paths"] == "true"
    sandbox = root / "scratch"
    sandbox.mkdir()
    for entry in [e.strip() for e in keys["transfer_input_files"].split(",")]:
        src = Path(entry) if os.path.isabs(entry) else Path(keys["initialdir"]) / entry
        dst = sandbox / (src.name if os.path.isabs(entry) else entry)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)
    shutil.copy(keys["executable"], sandbox / Path(keys["executable"]).name)
    return sandbox


def _run_build(shell: str, sandbox: Path, bindir: Path, **env: str):
    full = {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "_CONDOR_SCRATCH_DIR": str(sandbox),
        "FAKE_APPTAINER_LOG": str(sandbox.parent / "apptainer.log"),
        "FAKE_APPTAINER_MB": "1",
        **env,
    }
    return subprocess.run(
        [shell, "train-build.sh"], cwd=sandbox, env=full, capture_output=True, text=True
    )


@pytest.fixture
def built(cli, tmp_path, project):
    """A build job with staging written; the sandbox; the fake apptainer's directory."""
    staging = tmp_path / "staging"
    staging.mkdir()
    out = cli("condor", project, "--build", "-o", tmp_path / "out", "--staging", staging,
              "--osdf-prefix", "osdf:///chtc/staging/me")  # fmt: skip
    assert out.returncode == 0, out.stderr
    bindir = fake_apptainer_bin(tmp_path)
    sandbox = _sandbox(tmp_path / "out" / "train-build.sub", tmp_path)
    return sandbox, bindir, staging, build_inputs(str(project)).name


def test_build_wrapper_builds_tests_names_and_stages(built, shell):
    sandbox, bindir, staging, image = built
    res = _run_build(shell, sandbox, bindir)
    assert res.returncode == 0, res.stdout + res.stderr
    calls = (sandbox.parent / "apptainer.log").read_text().splitlines()
    assert [c.split(" argv=")[1] for c in calls] == [
        f"[build][{image}][train.def]",
        f"[test][{image}]",
    ]
    assert all(c.startswith(f"cwd={sandbox} ") for c in calls)  # %files resolve in the sandbox
    assert sorted(p.name for p in staging.iterdir()) == [image]  # no temp file left
    assert (staging / image).stat().st_size > 1 << 20
    assert not (sandbox / image).exists()  # not sent back: it is staged
    assert (sandbox / "train-image.txt").read_text() == f"osdf:///chtc/staging/me/{image}\n"
    steps = [line.split(" ", 2)[2] for line in res.stdout.splitlines() if line.startswith("# ")]
    assert steps == [
        f"building {image} from train.def on {os.uname().nodename} with {bindir}/apptainer",
        f"testing {image}",
        f"staging {image} as {staging}/{image}",
        f"image: osdf:///chtc/staging/me/{image}",
        "done",
    ]
    # built again (the PRE script did not skip it): the staged image is kept, not replaced
    staged = (staging / image).read_bytes()
    (sandbox / "train-image.txt").unlink()
    res = _run_build(shell, sandbox, bindir, FAKE_APPTAINER_MB="2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{staging}/{image} exists (built from the same inputs): keeping it" in res.stdout
    assert (staging / image).read_bytes() == staged


def test_a_failing_test_stops_before_staging(built, shell):
    sandbox, bindir, staging, image = built
    res = _run_build(shell, sandbox, bindir, FAKE_APPTAINER_TEST_EXIT="3")
    assert res.returncode == 3
    assert "FAILED with status 3: apptainer test" in res.stdout
    assert list(staging.iterdir()) == [] and not (sandbox / image).exists()
    assert not (sandbox / "train-image.txt").exists()


def test_a_failing_build_stops_first(built, shell):
    sandbox, bindir, staging, _image = built
    res = _run_build(shell, sandbox, bindir, FAKE_APPTAINER_EXIT="5")
    assert res.returncode == 5 and "FAILED with status 5: apptainer build" in res.stdout
    calls = (sandbox.parent / "apptainer.log").read_text().splitlines()
    assert len(calls) == 1 and list(staging.iterdir()) == []


def test_without_staging_the_image_comes_back(cli, tmp_path, project, shell):
    out = cli("condor", project, "--build", "-o", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    image = build_inputs(str(project)).name
    keys, _q = _parse(tmp_path / "out" / "train-build.sub")
    assert keys["transfer_output_files"] == f"{image}, train-image.txt"
    assert keys["transfer_output_remaps"] == (
        f'"{image} = {tmp_path}/out/{image}; train-image.txt = {tmp_path}/out/train-image.txt"'
    )
    assert "requirements" not in keys
    bindir = fake_apptainer_bin(tmp_path)
    sandbox = _sandbox(tmp_path / "out" / "train-build.sub", tmp_path)
    res = _run_build(shell, sandbox, bindir)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in (image, "train-image.txt"):  # what transfer_output_files sends back
        assert (sandbox / name).is_file()
    assert (sandbox / "train-image.txt").read_text() == f"{image}\n"


def test_a_source_outside_the_recipe_cannot_go_along(cli, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (tmp_path / "common.txt").write_text("x")
    (proj / "recipe.py").write_text(
        "from defbuilder import Files, Header, Stage\n"
        "recipe = Stage(Header.docker('ubuntu:24.04'), files=Files(['../common.txt']))\n"
    )
    out = cli("condor", proj / "recipe.py", "--build", "-o", tmp_path / "out")
    assert out.returncode == 2
    assert out.stderr == (
        "defbuilder: error: %files source '../common.txt' is outside the recipe's directory: "
        "a build job can only take files from the recipe's directory along\n"
    )
    assert not (tmp_path / "out").exists()


def test_paths_htcondor_would_split_are_refused(cli, tmp_path, project):
    out = cli("condor", project, "--build", "-o", tmp_path / "my out")
    assert out.returncode == 2 and out.stderr.startswith(
        f"defbuilder: error: -o '{tmp_path}/my out': a path in a submit file here can only"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--staging", "/staging/me"], "--staging is for the build job: give --build or --dag"),
        (["--set", "a=b"], "--set is for the build job: give --build or --dag"),
        (["--build-request-cpus", "4"], "--build-request-cpus is for the build job"),
        (["--dag"], "--dag needs --staging DIR"),
        (["--dag", "--staging", "/s/me", "--image", "x.sif"], "leave out --image"),
        (["--build", "--osdf-prefix", "osdf:///x"], "give --staging too"),
        (["--build", "--name", "../x"], "--name '../x': must be a plain file name"),
        (["--build", "--build-arg", "NOPE=1"], "--build-arg NOPE: the recipe declares no"),
        (["--items", "missing.txt"], "missing.txt: no such items file"),
    ],
)
def test_option_mistakes(cli, tmp_path, project, args, message):
    out = cli("condor", project, "--image", "x.sif", "-o", tmp_path / "out", *args)
    if "--image" in args[1:] or "--dag" in args:
        out = cli("condor", project, "-o", tmp_path / "out", *args)
    assert out.returncode == 2, out.stdout
    assert message in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert not (tmp_path / "out").exists()


# --- the DAG ------------------------------------------------------------------------------------


@pytest.fixture
def dag(cli, tmp_path, project):
    items = tmp_path / "items.txt"
    items.write_text("--lr 0.1\n--lr 0.01\n")
    staging = tmp_path / "staging"
    staging.mkdir()
    out = cli("condor", project, "--dag", "-o", tmp_path / "out", "--staging", staging,
              "--osdf-prefix", "osdf:///chtc/staging/me", "--items", items)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return tmp_path / "out", staging, build_inputs(str(project)).name, items


def test_dag_is_build_then_gpu_check_then_run(dag):
    out_dir, _staging, _image, _items = dag
    assert (out_dir / "train.dag").read_text().splitlines() == [
        "# BEGIN META",
        "# END META",
        "# BEGIN NODES AND EDGES",
        f"JOB BUILD {out_dir}/train-build.sub DIR {out_dir}",
        f"SCRIPT PRE BUILD {out_dir}/train-pre-build.sh",
        "PRE_SKIP BUILD 99",
        "PARENT BUILD CHILD GPUCHECK",
        f"JOB GPUCHECK {out_dir}/train-gpucheck.sub DIR {out_dir}",
        "RETRY GPUCHECK 2 UNLESS-EXIT 10",
        f"SCRIPT POST GPUCHECK {out_dir}/train-post-gpucheck.sh $RETURN",
        "ABORT-DAG-ON GPUCHECK 10 RETURN 1",
        "PARENT GPUCHECK CHILD RUN",
        f"JOB RUN {out_dir}/train.sub DIR {out_dir}",
        "# END NODES AND EDGES",
    ]


def test_htcondor_reads_the_dag(dag, tmp_path):
    out_dir, *_rest = dag
    fake = tmp_path / "dagman-bin"
    fake.mkdir()
    (fake / "condor_dagman").write_text("#!/bin/sh\nexit 0\n")  # only looked up on PATH
    (fake / "condor_dagman").chmod(0o755)
    code = (
        "import sys, htcondor2\n"
        "sub = htcondor2.Submit.from_dag(sys.argv[1], {})\n"
        "print(sub['arguments'])\n"
    )
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    res = subprocess.run(
        [sys.executable, "-c", code, str(out_dir / "train.dag")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert f"-Dag {out_dir}/train.dag" in res.stdout
    # the same reader refuses a DAG with a command DAGMan does not know
    bad = tmp_path / "bad.dag"
    bad.write_text("JOB A a.sub\nRETRIES A 2\n")
    res = subprocess.run(
        [sys.executable, "-c", code, str(bad)], capture_output=True, text=True, env=env
    )
    assert res.returncode != 0 and "'RETRIES' is not a valid DAG command" in res.stderr


def test_gpu_check_node(dag):
    out_dir, _staging, image, _items = dag
    keys, qargs = _parse(out_dir / "train-gpucheck.sub")
    assert keys["universe"] == "container"
    assert keys["container_image"] == f"osdf:///chtc/staging/me/{image}"
    assert keys["request_gpus"] == "1" and qargs == "1"
    assert keys["executable"] == "train-gpucheck.sh"
    assert keys["output"] == "train-gpucheck_$(Cluster)_$(Process).out"  # the JSON is kept
    wrapper = (out_dir / "train-gpucheck.sh").read_text()
    assert "\npython /app/check.py --require-gpu --json\n" in wrapper
    assert "|| exit $?" not in wrapper  # the check is the workload, run once


def test_run_node_one_job_per_item(dag):
    out_dir, _staging, image, items = dag
    sub = htcondor2.Submit((out_dir / "train.sub").read_text())
    assert sub["container_image"] == f"osdf:///chtc/staging/me/{image}"
    assert sub["arguments"] == "$(Cluster).$(Process) $(item)"
    assert sub.getQArgs() == f"item from {items}"
    assert list(sub.itemdata()) == [{"item": "--lr 0.1"}, {"item": "--lr 0.01"}]
    assert "\npython /app/check.py || exit $?\n" in (out_dir / "train.sh").read_text()


def test_pre_script_skips_the_build_when_staged(dag, tmp_path):
    out_dir, staging, image, _items = dag
    pre = out_dir / "train-pre-build.sh"
    assert subprocess.run([pre], capture_output=True).returncode == 0
    (staging / image).write_bytes(b"built before")
    res = subprocess.run([pre], capture_output=True, text=True)
    assert res.returncode == 99 and "skipping the build" in res.stdout


@pytest.mark.parametrize(
    ("returned", "result"),
    [("0", 0), ("1", 10), ("2", 10), ("3", 10), ("4", 10), ("5", 1), ("-1", 1), ("137", 1)],
)
def test_post_script_aborts_on_definitive_failures_and_retries_others(dag, returned, result):
    out_dir, *_rest = dag
    res = subprocess.run([out_dir / "train-post-gpucheck.sh", returned], capture_output=True)
    assert res.returncode == result


def test_build_is_done_when_the_image_is_staged(cli, tmp_path, project):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / build_inputs(str(project)).name).write_bytes(b"built before")
    out = cli("condor", project, "--dag", "-o", tmp_path / "out", "--staging", staging,
              "--osdf-prefix", "osdf:///x")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "(staged already: BUILD is done)" in out.stdout
    lines = (tmp_path / "out" / "train.dag").read_text().splitlines()
    assert f"JOB BUILD {tmp_path}/out/train-build.sub DIR {tmp_path}/out DONE" in lines


def test_every_generated_script_passes_shellcheck(dag):
    if SHELLCHECK is None:
        pytest.skip("shellcheck not installed")
    out_dir, *_rest = dag
    scripts = sorted(out_dir.glob("*.sh"))
    assert [p.name for p in scripts] == [
        "train-build.sh",
        "train-gpucheck.sh",
        "train-post-gpucheck.sh",
        "train-pre-build.sh",
        "train.sh",
    ]
    for script in scripts:
        assert stat.S_IMODE(script.stat().st_mode) & 0o111
        res = subprocess.run(
            [SHELLCHECK, "-s", "sh", "-S", "style", str(script)], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stdout


def test_hello_pytorch_dag_as_the_issue_writes_it(cli, tmp_path):
    recipe = ROOT / "recipes" / "hello_pytorch" / "recipe.py"
    out = cli("condor", recipe, "--dag", "--staging", "/staging/USER", "-o", tmp_path)
    assert out.returncode == 0, out.stderr
    image = build_inputs(str(recipe)).name
    assert out.stdout.splitlines()[-2:] == [
        f"image:       osdf:///chtc/staging/USER/{image}",
        f"submit:      condor_submit_dag {tmp_path}/hello_pytorch.dag",
    ]
    dag_text = (tmp_path / "hello_pytorch.dag").read_text()
    for node in ("BUILD", "GPUCHECK", "RUN"):
        assert f"\nJOB {node} " in dag_text
    for sub in sorted(tmp_path.glob("*.sub")):
        htcondor2.Submit(sub.read_text())  # the bindings accept each
    keys, _q = _parse(tmp_path / "hello_pytorch-gpucheck.sub")
    assert keys["container_image"] == f"osdf:///chtc/staging/USER/{image}"
    assert keys["request_gpus"] == "1"
    keys, _q = _parse(tmp_path / "hello_pytorch-build.sub")
    assert keys["transfer_input_files"].split(", ")[1:] == [
        f.name for f in build_inputs(str(recipe)).top_level()
    ]


def test_definitive_codes_are_the_gpu_checks_own():
    """GPU_CHECK_DEFINITIVE follows recipes/hello_pytorch/gpu_check.py's exit codes: the
    image is broken (1), the command line is wrong (2), no GPU is visible (3), the
    numbers are wrong (4); an unusable GPU (5) depends on the machine, so it is retried."""
    import ast

    from defbuilder.condor import GPU_CHECK_DEFINITIVE

    source = (ROOT / "recipes" / "hello_pytorch" / "gpu_check.py").read_text()
    codes = {
        node.targets[0].id: node.value.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id.startswith("EXIT_")
        and isinstance(node.value, ast.Constant)
    }
    doc = ast.get_docstring(ast.parse(source)) or ""
    assert "2  usage error" in doc  # argparse's own exit status
    assert set(GPU_CHECK_DEFINITIVE) == {
        codes["EXIT_ERROR"],
        2,
        codes["EXIT_NO_GPU"],
        codes["EXIT_MISMATCH"],
    }
    assert codes.get("EXIT_UNUSABLE_GPU") not in GPU_CHECK_DEFINITIVE
