"""Cross-check the parser with spython's SingularityParser (spython 0.3.x).

Where spython agrees with Apptainer's reading we require the same answer; where it
does not, the test pins spython's behaviour so docs/spython.md stays true.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from defbuilder.parse import parse, split_stages

spython = pytest.importorskip("spython.main.parse.parsers", reason="spython is in [test]")
writers = pytest.importorskip("spython.main.parse.writers")

DEFS = Path(__file__).parent / "defs"


def sp(name: str):
    return spython.SingularityParser(str(DEFS / name)).recipe


def ours(name: str):
    return parse((DEFS / name).read_text(), name)


def test_agrees_on_stages_base_images_and_files():
    r, s = ours("multistage_pixi.def"), sp("multistage_pixi.def")
    assert [st.name for st in r.stages] == list(s)
    assert [st.header.from_ for st in r.stages] == [s[k].fromHeader for k in s]
    assert s["build"].files == [f"{e.src} {e.dst}" for e in r.stages[0].files[0].entries]


def test_agrees_that_duplicate_sections_append():
    assert sp("duplicate_sections.def")["spython-base"].install == ["echo one", "echo two"]
    assert ours("duplicate_sections.def").stages[0].post.body.split() == [
        "echo",
        "one",
        "echo",
        "two",
    ]
    post = ours("duplicate_sections.def").stages[0].post.body
    assert [line.strip() for line in post.splitlines() if line.strip()] == sp(
        "duplicate_sections.def"
    )["spython-base"].install


def _lines(stage, name: str) -> list[str]:
    """A top-level section's non-blank lines, stripped, duplicates appended (spython's view)."""
    return [
        line.strip()
        for s in stage.sections
        if s.name == name and s.app is None
        for line in s.body.splitlines()
        if line.strip()
    ]


# Files where spython reads every section it models as Apptainer does; where it does
# not (multistage_pixi.def, arguments.def, ...), the tests below pin the difference.
@pytest.mark.parametrize(
    "name",
    [
        "conda.def",
        "crlf.def",
        "singularity2.def",
        "duplicate_sections.def",
        "case_tabs_nonewline.def",
        "scif_apps.def",
    ],
)
def test_split_matches_spython_on_sections(name):
    [stage] = split_stages((DEFS / name).read_bytes().decode("utf-8"))
    [theirs] = sp(name).values()
    assert theirs.fromHeader == stage.header["from"]
    assert theirs.install == _lines(stage, "post")
    assert theirs.files == _lines(stage, "files")
    assert theirs.labels == _lines(stage, "labels")
    assert [theirs.cmd] == (_lines(stage, "runscript") or [None])  # one-line runscripts


def test_spython_lowercases_header_values():
    # Apptainer keeps the value's case: {{ VERSION }} is a different name from {{ version }}
    assert sp("arguments.def")["devel"].fromHeader == "ubuntu:{{ version }}"
    assert ours("arguments.def").stages[0].header.from_ == "ubuntu:{{ VERSION }}"


def test_spython_drops_arguments_apps_and_help():
    out = writers.SingularityWriter(sp("arguments.def")).convert()
    assert "%arguments" not in out  # the build-arg defaults are lost
    out = writers.SingularityWriter(sp("scif_apps.def")).convert()
    assert "%apprun" not in out and "%appinstall" not in out
    assert len(ours("scif_apps.def").stages[0].apps) == 2


def test_spython_accepts_a_section_apptainer_rejects():
    sp("invalid_section.def")  # no error: %environments is silently dropped
    from defbuilder import DefError

    with pytest.raises(DefError, match="invalid section"):
        ours("invalid_section.def")


def test_spython_rewrites_the_runscript():
    final = sp("multistage_pixi.def")["final"]
    assert final.cmd == "/bin/bash /entrypoint.sh"  # not the file's %runscript any more
    assert (
        ours("multistage_pixi.def")
        .stages[1]
        .runscript.body.strip()
        .endswith('/app/entrypoint.sh "$@"')
    )


def test_spython_reads_only_docker_bootstraps():
    with pytest.raises(NotImplementedError):
        sp("library_registry.def")
    assert ours("library_registry.def").stages[0].header.bootstrap == "library"


def test_spython_fails_on_comments_above_the_header():
    with pytest.raises(NotImplementedError):
        sp("comments_before_header.def")
    assert ours("comments_before_header.def").stages[0].header.bootstrap == "docker"
