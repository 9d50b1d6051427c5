"""`condor.write_condor` and `images.build_recipe` called directly: what `defbuilder
condor` and `defbuilder build` do, with the command line left out (cli.py only turns
its options into these arguments and prints what comes back)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import fake_apptainer_bin

from defbuilder import DefError
from defbuilder.condor import write_condor
from defbuilder.images import Built, build_inputs, build_recipe, sha256_file

RECIPE = """\
from defbuilder import BuildArg, Files, Header, Stage

TAG = BuildArg("TAG", "24.04")
recipe = Stage(
    Header.docker(f"ubuntu:{TAG}"),
    arguments=[TAG],
    files=Files([("data.txt", "/data.txt")]),
    test="exec true",
)
job = {"name": "train", "executable": "train.sh", "gpu_check": ["python", "/app/check.py"]}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "recipe.py").write_text(RECIPE)
    (proj / "data.txt").write_text("data\n")
    return proj / "recipe.py"


# --- write_condor ------------------------------------------------------------------------------


def test_job_mode_writes_the_job_and_says_how_to_submit(tmp_path, project, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("items.txt").write_text("a\nb\n")
    out = tmp_path / "out"
    written = write_condor(
        str(project), str(out), {"image": "x.sif", "items_file": "items.txt", "name": None}
    )
    sub, wrapper = str(out / "train.sub"), str(out / "train.sh")
    assert written.paths == (sub, wrapper)
    assert written.lines == (
        f"wrote {sub} and {wrapper}",
        f"submit:      condor_submit {sub}",
        f"interactive: condor_submit -interactive {sub}",
    )
    assert str(tmp_path / "items.txt") in (out / "train.sub").read_text()  # made absolute
    assert os.access(wrapper, os.X_OK)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"staging": "/staging/me"}, "--staging is for the build job: give --build or --dag"),
        ({"osdf_prefix": "osdf:///x"}, "--osdf-prefix is for the build job"),
        ({"sets": ["bad"]}, "--set is for the build job"),  # refused before it is read
        ({"build_args": ["TAG=1"]}, "--build-arg is for the build job"),
        ({"resources": {"request_cpus": None, "request_disk": "1GB"}}, "--build-request-disk is"),
    ],
)
def test_job_mode_refuses_the_build_jobs_settings(tmp_path, project, kwargs, message):
    with pytest.raises(DefError, match=message):
        write_condor(str(project), str(tmp_path / "out"), {"image": "x.sif"}, **kwargs)
    assert not (tmp_path / "out").exists()


def test_the_items_file_is_checked_first(tmp_path, project):
    for mode in ("job", "build", "dag"):
        with pytest.raises(DefError, match="no such items file") as err:
            write_condor(
                str(project),
                str(tmp_path / "out"),
                {"items_file": str(tmp_path / "missing.txt")},
                mode=mode,  # type: ignore[arg-type]
                staging="/staging/me" if mode == "job" else None,
            )
        assert err.value.file == str(tmp_path / "missing.txt")


def test_dag_mode_needs_staging_and_its_own_image(tmp_path, project):
    with pytest.raises(DefError, match="--dag needs --staging DIR: the GPU check"):
        write_condor(str(project), str(tmp_path / "out"), mode="dag")
    with pytest.raises(DefError, match="--dag runs the jobs in the image it builds"):
        write_condor(
            str(project), str(tmp_path / "out"), {"image": "x.sif"}, mode="dag", staging="/s"
        )
    assert not (tmp_path / "out").exists()


def test_build_mode_writes_the_build_job(tmp_path, project):
    pytest.importorskip("htcondor2")
    out = tmp_path / "out"
    written = write_condor(
        str(project),
        str(out),
        {"name": "img"},
        mode="build",
        staging="/staging/me",
        sets=[],
        build_args=["TAG=22.04"],
        resources={"request_cpus": 4, "request_memory": None},
    )
    image = build_inputs(str(project), {}, ["TAG=22.04"]).name
    names = ["img.def", "img-build.sub", "img-build.sh", "img-build-interactive.sub"]
    assert written.paths == tuple(str(out / n) for n in names)
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert written.lines == (
        f"wrote {', '.join(written.paths)}",
        f"image:       osdf:///chtc/staging/me/{image}",
        f"submit:      condor_submit {out / 'img-build.sub'}",
        f"interactive: condor_submit -interactive {out / 'img-build-interactive.sub'}, "
        "then: sh img-build.sh",
    )
    assert "\nrequest_cpus            = 4\n" in (out / "img-build.sub").read_text()


def test_dag_mode_runs_the_job_in_the_image_it_builds(tmp_path, project):
    pytest.importorskip("htcondor2")
    staging = tmp_path / "staging"
    staging.mkdir()
    out = tmp_path / "out"
    prefix = "osdf:///chtc/staging/me"
    written = write_condor(
        str(project), str(out), mode="dag", staging=str(staging), osdf_prefix=prefix
    )
    image = build_inputs(str(project)).name
    dag = str(out / "train.dag")
    assert dag in written.paths and str(out / "train.sub") in written.paths
    assert written.lines == (
        f"wrote {dag} and {', '.join(p for p in written.paths if p != dag)}",
        f"image:       {prefix}/{image}",
        f"submit:      condor_submit_dag {dag}",
    )
    assert f"{prefix}/{image}" in (out / "train.sub").read_text()  # the job runs in it
    (staging / image).write_bytes(b"staged")
    again = write_condor(
        str(project), str(out), mode="dag", staging=str(staging), osdf_prefix=prefix
    )
    assert again.lines[1] == f"image:       {prefix}/{image} (staged already: BUILD is done)"


# --- build_recipe ------------------------------------------------------------------------------


@pytest.fixture
def fake_apptainer(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{fake_apptainer_bin(tmp_path)}:{os.environ['PATH']}")
    log = tmp_path / "apptainer.log"
    monkeypatch.setenv("FAKE_APPTAINER_LOG", str(log))
    monkeypatch.setenv("FAKE_APPTAINER_MB", "1")
    return log


def test_build_by_inputs_builds_once_then_finds_it(tmp_path, project, fake_apptainer, capfd):
    final = tmp_path / f"app-{build_inputs(str(project)).digest[:8]}.sif"
    built = build_recipe(str(project), str(tmp_path / "app.sif"), by_inputs=True)
    assert built == Built(0, str(final))
    assert final.stat().st_size > 1 << 20
    capfd.readouterr()
    again = build_recipe(str(project), str(tmp_path / "app.sif"), by_inputs=True)
    assert again == Built(0, str(final))
    out, err = capfd.readouterr()
    assert (out, err) == (
        "",
        f"defbuilder: {final} exists, built from the same inputs: not building\n",
    )
    assert len(fake_apptainer.read_text().splitlines()) == 1  # built once


def test_build_by_inputs_stages_what_was_built_here(tmp_path, project, fake_apptainer, capfd):
    final = Path(build_recipe(str(project), str(tmp_path / "app.sif"), by_inputs=True).image or "")
    staging = tmp_path / "staging"
    staging.mkdir()
    prefix = "osdf:///chtc/staging/me"
    built = build_recipe(
        str(project), str(tmp_path / "app.sif"), by_inputs=True, staging=str(staging),
        osdf_prefix=prefix,
    )  # fmt: skip
    assert built == Built(0, f"{prefix}/{final.name}")
    assert (staging / final.name).read_bytes() == final.read_bytes()
    assert "built from the same inputs: not building" in capfd.readouterr().err
    final.unlink()  # only the staged copy is left: found there
    again = build_recipe(
        str(project), str(tmp_path / "app.sif"), by_inputs=True, staging=str(staging),
        osdf_prefix=prefix,
    )  # fmt: skip
    assert again == built
    assert len(fake_apptainer.read_text().splitlines()) == 1


def test_build_hash_named_and_failures(tmp_path, project, fake_apptainer, monkeypatch):
    built = build_recipe(str(project), str(tmp_path / "app.sif"), hash_named=True)
    assert built.status == 0 and built.error is None
    image = Path(str(built.image))
    assert image.name == f"app-{sha256_file(str(image))[:8]}.sif" and image.parent == tmp_path
    assert not (tmp_path / "app.sif").exists()
    monkeypatch.setenv("FAKE_APPTAINER_EXIT", "4")
    before = sorted(p.name for p in tmp_path.iterdir())
    for by_inputs in (False, True):
        failed = build_recipe(str(project), str(tmp_path / "x.sif"), by_inputs=by_inputs)
        assert failed == Built(4, None, "defbuilder: apptainer build failed with status 4")
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing left
    with pytest.raises(DefError, match="staging directory does not exist"):
        build_recipe(str(project), staging=str(tmp_path / "nowhere"))
