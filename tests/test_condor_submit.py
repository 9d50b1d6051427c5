"""No value given to `defbuilder condor` can add a line or a key to the submit file, or
write outside `-o`: each is checked by HTCondor's own rules and every file is read back
with the htcondor2 bindings.

HTCondor's rules, from its manual: condor_submit(1), "a backslash at the end of a line
continues the command on the next line, a line beginning with # is a comment";
htcondor-jdl(1), "Macros and comments": $(NAME), $$(NAME) and $ENV(NAME) are expanded,
and "+<attribute> is converted to MY.<attribute>"; "ClassAd Syntax": an
attribute name is letters, digits and underscores, not starting with a digit, and "a
backslash inside a string causes the following character to be considered as part of
the string".
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defbuilder import DefError
from defbuilder.condor import (
    RESERVED_KEYS,
    CondorJob,
    bracketed,
    check_submit,
    classad_string,
    job_from,
    write_job,
)

htcondor2 = pytest.importorskip("htcondor2", reason="pip install -e '.[test]' installs htcondor")
classad2 = pytest.importorskip("classad2")


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "recipe.py"
    path.write_text(
        "from defbuilder import Header, Stage\n"
        "recipe = Stage(Header.docker('ubuntu:24.04'))\n"
        "job = {'name': 'train', 'executable': 'train.sh'}\n"
    )
    return path


def _parsed(text: str) -> dict[str, str]:
    sub = htcondor2.Submit(text)
    return {k.lower(): v for k, v in sub.items()}


# --- job names and wrappers stay inside -o ------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--name", "../../x"),
        ("--name", "/tmp/x"),
        ("--name", "a/b"),
        ("--name", ".."),
        ("--name", ""),
        ("--name", "-rf"),
        ("--executable", "/tmp/evil.sh"),
        ("--executable", "../evil.sh"),
        ("--executable", "job.sh\nrm -rf ~"),
        ("--executable", "job sh"),
    ],
)
def test_names_must_be_plain_file_names(cli, tmp_path, recipe, option, value):
    out = cli("condor", recipe, "--image", "x.sif", "-o", tmp_path / "out", f"{option}={value}")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (
        f"defbuilder: error: {option} {value!r}: must be a plain file name "
        "(letters, digits, then also . _ + -), not a path\n"
    )
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.py"]


def test_the_wrapper_cannot_be_the_submit_file(cli, tmp_path, recipe):
    out = cli("condor", recipe, "--image", "x.sif", "-o", tmp_path, "--executable", "train.sub")
    assert out.returncode == 2
    assert "--executable 'train.sub': that is the submit file's name" in out.stderr


def test_a_wrapper_another_job_runs_is_not_changed(cli, tmp_path, recipe):
    # two jobs naming the same --executable: the second would make the first run its
    # workload; the same job written again (or the same wrapper) is fine
    first = ("condor", recipe, "--image", "x.sif", "-o", tmp_path, "--executable", "run.sh")
    assert cli(*first, "--name", "a", "--command", "echo", "--command", "a").returncode == 0
    before = (tmp_path / "run.sh").read_text()
    assert (
        cli(*first, "--name", "a", "--command", "echo", "--command", "A").returncode == 0
    )  # its own
    again = cli(*first, "--name", "a", "--command", "echo", "--command", "a")
    assert again.returncode == 0 and (tmp_path / "run.sh").read_text() == before
    same = cli(*first, "--name", "b", "--command", "echo", "--command", "a")
    assert same.returncode == 0  # the same workload: nothing changes for a.sub
    out = cli(*first, "--name", "c", "--command", "echo", "--command", "c")
    assert out.returncode == 2 and out.stdout == ""
    assert "run.sh is the wrapper" in out.stderr and "own --executable" in out.stderr
    assert (tmp_path / "run.sh").read_text() == before
    assert not (tmp_path / "c.sub").exists()


# --- the issue's injections, refused with the option and nothing written --------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arguments", "a\nqueue 100"], "--arguments 'a\\nqueue 100': contains a control"),
        (
            ["--request-memory", "2GB\nexecutable = /bin/rm"],
            "--request-memory '2GB\\nexecutable = /bin/rm': contains a control character",
        ),
        (["--request-memory", "2GB\\"], "--request-memory '2GB\\\\': ends with a backslash"),
        (["--request-memory", "lots"], "--request-memory 'lots': expected a number with a"),
        (["--image", "x.sif\nfoo = 1"], "--image 'x.sif\\nfoo = 1': contains a control"),
        (["--image", "my image.sif"], "--image 'my image.sif': contains white space"),
        (["--transfer-input-files", "a\nb = 1"], "--transfer-input-files 'a\\nb = 1'"),
        (["--transfer-input-files", "a\r"], "--transfer-input-files 'a\\r': contains a control"),
        (["--requirements", "(A) \\"], "--requirements '(A) \\\\': ends with a backslash"),
        (["--project-name", "x\x1by"], "--project-name 'x\\x1by': contains a control"),
        (["--project-name", "$(x)"], "--project-name '$(x)': contains $, which HTCondor"),
        (["--gpus-minimum-capability", "8.0\n"], "--gpus-minimum-capability '8.0\\n': contains"),
        (["--key", "queue=5"], "--key 'queue': is reserved"),
        (["--key", "Executable=/bin/rm"], "--key 'Executable': is reserved"),
        (["--key", "+wantgpulab=false"], "--key '+wantgpulab': is reserved"),
        (["--key", "MY.WantGPULab=false"], "--key 'MY.WantGPULab': is reserved"),
        (["--key", "Process=7"], "--key 'Process': is reserved"),
        (["--key", "DOLLAR=x"], "--key 'DOLLAR': is reserved"),
        (["--key", "+A\nqueue = 1=1"], "--key '+A\\nqueue': expected a submit command"),
        (["--key=-A=1"], "--key '-A': expected a submit command"),
        (["--key", "+1A=1"], "--key '+1A': expected a submit command"),
        (["--key", "a b=1"], "--key 'a b': expected a submit command"),
        (["--key", "+A=x\ny = 1"], "--key +A='x\\ny = 1': contains a control character"),
        (["--key", "a=1", "--key", "A=2"], "--key 'A': given twice"),
        (["--queue", "0"], "--queue 0: must be at least 1"),
        (["--gpu-job-length", "forever"], "--gpu-job-length 'forever': expected short"),
    ],
)
def test_injections_are_refused(cli, tmp_path, recipe, args, message):
    out = cli("condor", recipe, "--image", "x.sif", "-o", tmp_path / "out", *args)
    assert out.returncode == 2 and out.stdout == "", out.stderr
    assert out.stderr.startswith("defbuilder: error: " + message), out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists()


def test_project_name_is_a_quoted_classad_string(cli, tmp_path, recipe):
    name = 'a "quoted" \\ name (x) # y'
    out = cli("condor", recipe, "--image", "x.sif", "-o", tmp_path, "--project-name", name)
    assert out.returncode == 0, out.stderr
    sub = htcondor2.Submit((tmp_path / "train.sub").read_text())
    assert sub["MY.ProjectName"] == classad_string(name)
    assert classad2.ExprTree(sub.expand("MY.ProjectName")).eval() == name


def test_macros_stay_in_their_value(cli, tmp_path, recipe):
    out = cli(
        "condor", recipe, "--image", "x.sif", "-o", tmp_path,
        "--arguments", "$(Cluster).$(Process) --seed $(Process)",
        "--transfer-input-files", "data_$(Process).tar.gz",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = _parsed((tmp_path / "train.sub").read_text())
    assert got["arguments"] == "$(Cluster).$(Process) --seed $(Process)"
    assert got["transfer_input_files"] == "data_$(Process).tar.gz"


def test_recipe_job_values_are_reported_at_their_line(cli, tmp_path):
    path = tmp_path / "recipe.py"
    path.write_text(
        "from defbuilder import Header, Stage\n"
        "recipe = Stage(Header.docker('ubuntu:24.04'))\n"
        "job = {\n"
        "    'name': 'train',\n"
        "    'request_memory': '2GB\\nqueue 9',\n"
        "}\n"
    )
    out = cli("condor", "recipe.py", "--image", "x.sif", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == (
        "defbuilder: error: recipe.py:5: job['request_memory'] '2GB\\nqueue 9': contains a "
        "control character (U+000A); a submit-file value is one line\n"
    )


def test_read_back_refuses_a_file_that_says_something_else():
    job = CondorJob(image="x.sif")
    items = job.items()
    check_submit(job.submit(), items, "1", where="job.sub")
    text = job.submit().replace("queue 1", "executable = /bin/rm\nqueue 1")
    with pytest.raises(DefError, match=r"would set executable to '/bin/rm', not 'job\.sh'"):
        check_submit(text, items, "1", where="job.sub")
    with pytest.raises(DefError, match=r"would set extra to '1', not None"):
        check_submit("extra = 1\n" + job.submit(), items, "1", where="job.sub")
    with pytest.raises(DefError, match="would queue '5', not '1'"):
        check_submit(job.submit().replace("queue 1", "queue 5"), items, "1", where="job.sub")


def test_reserved_keys_cover_every_key_the_job_writes():
    job = CondorJob(
        image="x.sif",
        transfer_input_files=["a"],
        transfer_output_files=["b"],
        gpus_minimum_memory="1",
        job_duration_category="Short",
        project_name="p",
    )
    written = {k.lower() for k, _ in job.items()}
    reserved = {k.lower() for k in RESERVED_KEYS}
    assert written <= reserved and "queue" in reserved


# --- any value at all: a clean refusal, or a file whose keys are exactly the intended ones ---

_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("\n\r\\\"'$()#=+ ,\t\x00\x0b\u2028")),
    ),
    max_size=24,
)
# text a careful user could give: anything printable, quotes, $, #, =, backslashes...
_SAFE = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
        st.sampled_from(list("\\\"'$()#=+ ,@:;")),
    ),
    max_size=24,
).map(lambda s: s.strip().rstrip("\\").strip())
# a word of a command: the wrapper quotes it, so newlines and tabs are fine
_WORD = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
        st.sampled_from(list("\n\t\\\"'$`(){}*?;&|<> ")),
    ),
    max_size=16,
)
_PLAIN = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,12}", fullmatch=True)
_QUANTITY = st.from_regex(r"[0-9]{1,4}(\.[0-9])?( ?[KMGTkmgt][Bb]?)?", fullmatch=True)
_NAME = st.from_regex(r"(\+|MY\.)?[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
_KEY = st.one_of(_NAME, _NAME, _NAME, st.sampled_from([*RESERVED_KEYS, "QUEUE", "+wantgpulab"]))

#: A careful value for each field; one field per example gets arbitrary text instead.
_CAREFUL = {
    "image": _SAFE.map(lambda s: "oras://" + "".join(s.split())),
    "name": _PLAIN,
    "executable": _PLAIN,
    "arguments": _SAFE,
    "request_memory": _QUANTITY,
    "request_disk": _QUANTITY,
    "gpus_minimum_capability": st.one_of(st.none(), st.from_regex(r"[0-9]\.[0-9]", fullmatch=True)),
    "gpus_minimum_memory": st.one_of(st.none(), _QUANTITY),
    "requirements": st.lists(_SAFE.filter(bool), max_size=3),
    "project_name": st.one_of(st.none(), _SAFE.map(lambda s: s.replace("$", ""))),
    "gpu_job_length": st.sampled_from([None, "short", "medium", "long"]),
    "transfer_input_files": st.lists(_SAFE, max_size=3),
    "transfer_output_files": st.lists(_SAFE, max_size=2),
    "command": st.lists(_WORD, max_size=3),
    "gpu_check": st.lists(_WORD, max_size=2),
    "activate": st.one_of(st.none(), _SAFE),
    "extra": st.lists(st.tuples(_KEY, _SAFE), max_size=3),
    "items_file": st.one_of(st.none(), st.none(), _PLAIN.map(lambda s: f"/work/{s}.txt")),
}
_LISTS = {k for k in _CAREFUL if k in ("requirements", "command", "gpu_check", "extra")} | {
    "transfer_input_files",
    "transfer_output_files",
}


@st.composite
def _fields(draw):
    fields = {name: draw(strategy) for name, strategy in _CAREFUL.items()}
    hostile = draw(st.sampled_from([None, *_CAREFUL]))
    if hostile == "extra":
        fields["extra"] = draw(st.lists(st.tuples(_TEXT, _TEXT), min_size=1, max_size=3))
    elif hostile in _LISTS:
        fields[hostile] = draw(st.lists(_TEXT, min_size=1, max_size=3))
    elif hostile is not None:
        fields[hostile] = draw(_TEXT)
    fields["queue"] = draw(st.sampled_from([1, 2, 3, 5, 8, 13, 0]))
    return fields


def _intended(f: dict) -> dict[str, str]:
    """What the submit file must say, derived from the inputs (not from CondorJob)."""
    logs = f"{f['name']}_$(Cluster)_$(Process)"
    want = {
        "universe": "container",
        "container_image": f["image"],
        "executable": f["executable"],
        "arguments": f["arguments"] + (" $(item)" if f["items_file"] else ""),
        "log": logs + ".log",
        "output": logs + ".out",
        "error": logs + ".err",
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "request_cpus": "1",
        "request_gpus": "1",
        "request_memory": f["request_memory"],
        "request_disk": f["request_disk"],
        "my.wantgpulab": "true",
    }
    split = [n.strip(" \t") for v in f["transfer_input_files"] for n in v.split(",")]
    if any(split):
        want["transfer_input_files"] = ", ".join(n for n in split if n)
    split = [n.strip(" \t") for v in f["transfer_output_files"] for n in v.split(",")]
    if any(split):
        want["transfer_output_files"] = ", ".join(n for n in split if n)
    if f["requirements"]:
        want["requirements"] = " && ".join(map(bracketed, f["requirements"]))
    for key in ("gpus_minimum_capability", "gpus_minimum_memory"):
        if f[key]:
            want[key] = f[key]
    if f["gpu_job_length"]:
        want["my.gpujoblength"] = f'"{f["gpu_job_length"]}"'
    for key, value in f["extra"]:
        name = "my." + key[1:] if key.startswith("+") else key
        want[name.lower()] = value
    return want


@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(_fields())
def test_any_value_is_refused_or_read_back_exactly(fields):
    try:
        job = CondorJob(**fields)
    except DefError as exc:
        assert not set(str(exc)) & set("\n\r\x00")  # one clean line
        return
    text = job.submit()
    sub = htcondor2.Submit(text)
    got = {k.lower(): v for k, v in sub.items()}
    want = _intended(fields)
    project = got.pop("my.projectname", None)
    assert got == want
    queued = f"item from {fields['items_file']}" if fields["items_file"] else str(fields["queue"])
    assert sub.getQArgs() == queued
    if fields["project_name"]:
        assert classad2.ExprTree(sub.expand("MY.ProjectName")).eval() == fields["project_name"]
    else:
        assert project is None
    # the wrapper: a file name inside -o, and a script dash reads
    assert os.path.basename(job.executable) == job.executable not in ("", ".", "..")
    dash = shutil.which("dash") or shutil.which("sh")
    assert dash is not None
    res = subprocess.run([dash, "-n"], input=job.wrapper(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_write_job_reads_back_before_writing(tmp_path, monkeypatch):
    job = job_from(str(tmp_path / "none.def"), {"image": "x.sif"})
    monkeypatch.setattr(CondorJob, "submit", lambda self: "executable = /bin/rm\nqueue 1\n")
    with pytest.raises(DefError, match="nothing written"):
        write_job(job, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
