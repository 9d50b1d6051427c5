"""Team policy keys that change what lint reports: `allow-tags` (DB115 accepts a
trusted publisher's version tags) and `require-pixi-lock` (DP206 reports an unlocked
`pixi install`, which solves the environment at build time: pixi's reference,
https://pixi.prefix.dev/latest/reference/cli/pixi/install/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from defbuilder.errors import DefError
from defbuilder.lint import lint_text
from defbuilder.lint.engine import load_policy, read_policy
from defbuilder.lint.rules import allow_tags_problem

CUDA = "nvidia/cuda:[0-9]*.[0-9]*.[0-9]*-*"
PIXI = "ghcr.io/prefix-dev/pixi:[0-9]*.[0-9]*.[0-9]*-*"
TEST = "\n%test\n    true\n"


def stage(ref: str, post: str = "") -> str:
    return f"Bootstrap: docker\nFrom: {ref}\n" + (f"\n%post\n{post}" if post else "") + TEST


def codes(text: str, **policy: object) -> list[tuple[int, str]]:
    found = lint_text(text, "x.def", policy=policy or None, shellcheck=False)
    return [(f.line, f.code) for f in found if f.code in {"DB115", "DB116", "DP202", "DP206"}]


# --- allow-tags ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "nvidia/cuda:12.9.1-base-ubuntu24.04",
        "nvidia/cuda:13.0.0-runtime-ubuntu22.04",
        "ghcr.io/prefix-dev/pixi:0.76.1-noble",
        "ghcr.io/prefix-dev/pixi:0.76.1-noble-cuda-12.9.1",
    ],
)
def test_allowed_version_tags_are_not_db115(ref: str) -> None:
    assert codes(stage(ref)) == [(2, "DB115")]
    assert codes(stage(ref), **{"allow-tags": [CUDA, PIXI]}) == []


@pytest.mark.parametrize(
    "ref",
    [
        "ghcr.io/prefix-dev/pixi:noble",  # floats: rebuilt with every pixi release
        "ghcr.io/prefix-dev/pixi:noble-cuda-12.9.1",
        "docker.io/nvidia/cuda:12.9.1-base-ubuntu24.04",  # patterns match the text as written
        "nvidia/cudax:12.9.1-base-ubuntu24.04",
        "ubuntu:24.04",
    ],
)
def test_other_tags_are_still_db115(ref: str) -> None:
    assert codes(stage(ref), **{"allow-tags": [CUDA, PIXI]}) == [(2, "DB115")]


def test_allow_tags_changes_neither_db116_nor_require_digest() -> None:
    allow = {"allow-tags": ["ubuntu:[0-9]*"]}
    assert codes(stage("ubuntu"), **allow) == [(2, "DB116")]
    assert codes(stage("ubuntu:latest"), **allow) == [(2, "DB116")]
    assert codes(stage("ubuntu:24.04"), **allow, **{"require-digest": True}) == [(2, "DP202")]


@pytest.mark.parametrize(
    "pattern",
    [
        CUDA,
        PIXI,
        "ubuntu:24.04",
        "ubuntu:2[0-9].04",
        "localhost:5000/team/base:1.*",  # a registry port is not a tag
        "nvidia/cuda:12.9.1-*",
    ],
)
def test_allow_tags_entries_that_name_an_image_and_its_versions(pattern: str) -> None:
    assert allow_tags_problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("*", "does not name one image and its tag"),
        ("*:*", "does not name one image and its tag"),
        ("nvidia/*", "does not name one image and its tag"),
        ("nvidia/cu*:12.9.1-*", "does not name one image and its tag"),
        ("nvidia/cuda", "does not name one image and its tag"),
        ("localhost:5000/team/*", "does not name one image and its tag"),
        ("nvidia/cuda:*", "allows every tag of nvidia/cuda, floating ones too"),
        ("ghcr.io/prefix-dev/pixi:?*", "allows every tag of ghcr.io/prefix-dev/pixi"),
        ("ghcr.io/prefix-dev/pixi:[!0-9]*", "allows every tag"),
        ("ubuntu:24.04@sha256:" + "a" * 64, "a digest needs no allowance"),
    ],
)
def test_allow_tags_entries_that_would_hide_a_moving_tag_are_refused(
    pattern: str, why: str, tmp_path: Path
) -> None:
    problem = allow_tags_problem(pattern)
    assert problem is not None and why in problem
    toml = tmp_path / "defbuilder.toml"
    toml.write_text(f"[policy]\nallow-tags = [{pattern!r}]\n".replace("'", '"'))
    with pytest.raises(DefError, match="policy allow-tags: ") as err:
        read_policy(str(toml))
    assert err.value.file == str(toml)


def test_policy_lists_hold_strings(tmp_path: Path) -> None:
    toml = tmp_path / "defbuilder.toml"
    toml.write_text("[policy]\nallow-tags = [1]\n")
    with pytest.raises(DefError, match="policy allow-tags: 1 is not a string"):
        read_policy(str(toml))
    toml.write_text("[policy]\nrequire-pixi-lock = 'yes'\n")
    with pytest.raises(DefError, match="policy require-pixi-lock must be a bool"):
        read_policy(str(toml))


def test_allow_tags_from_the_nearest_policy_file(tmp_path: Path) -> None:
    (tmp_path / "defbuilder.toml").write_text(f'[policy]\nallow-tags = ["{CUDA}"]\n')
    sub = tmp_path / "app"
    sub.mkdir()
    (sub / "app.def").write_text(stage("nvidia/cuda:12.9.1-base-ubuntu24.04"))
    assert load_policy(str(sub)) == {"allow-tags": [CUDA]}
    assert run_cli("lint", "--no-shellcheck", str(sub / "app.def")).returncode == 0
    assert run_cli("lint", "--no-shellcheck", str(tmp_path)).returncode == 0
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere.def"
    elsewhere.write_text(stage("nvidia/cuda:12.9.1-base-ubuntu24.04"))
    try:
        out = run_cli("lint", "--no-shellcheck", str(elsewhere))
        assert out.returncode == 1 and "DB115" in out.stdout and "allow-tags" in out.stdout
        pol = str(tmp_path / "defbuilder.toml")
        assert run_cli("lint", "--no-shellcheck", "--policy", pol, str(elsewhere)).returncode == 0
    finally:
        elsewhere.unlink()


def test_a_refused_entry_stops_lint_naming_the_policy_file(tmp_path: Path) -> None:
    (tmp_path / "defbuilder.toml").write_text('[policy]\nallow-tags = ["*"]\n')
    (tmp_path / "app.def").write_text(stage("ubuntu:24.04"))
    out = run_cli("lint", "--no-shellcheck", str(tmp_path / "app.def"))
    assert out.returncode == 2 and out.stdout == ""
    assert "defbuilder.toml" in out.stderr and "'*' does not name one image" in out.stderr


# --- require-pixi-lock (DP206) -----------------------------------------------------------

LOCK = {"require-pixi-lock": True}
REF = "ubuntu:24.04@sha256:" + "a" * 64


@pytest.mark.parametrize(
    "post",
    [
        "    pixi install --locked\n",
        "    pixi install --manifest-path /app/pixi.toml -e gpu --frozen\n",
        "    PIXI_FROZEN=1 pixi install\n",
        "    export PIXI_LOCKED=1\n    cd /app\n    pixi install\n",
        "    pixi install --manifest-path /app/pixi.toml \\\n        --locked\n",
        "    # pixi install\n    echo 'not pixi install'\n",
        "    pixi shell-hook --frozen > /tmp/hook\n",
    ],
)
def test_locked_installs_are_not_dp206(post: str) -> None:
    assert codes(stage(REF, post), **LOCK) == []


@pytest.mark.parametrize(
    ("post", "line"),
    [
        ("    pixi install\n", 5),
        ("    cd /app\n    pixi install --manifest-path /app/pixi.toml -e gpu\n", 6),
        ("    pixi install --manifest-path /app/pixi.toml \\\n        -e gpu\n", 5),
        ("    echo a\\\n    b\n    pixi install\n", 7),
        ("    echo '\f'\r\n    pixi install\n", 6),  # lines are cut at \n only
        ("    PIXI_LOCKED= pixi install\n", 5),
    ],
)
def test_unlocked_installs_are_dp206_on_their_line(post: str, line: int) -> None:
    assert codes(stage(REF, post), **LOCK) == [(line, "DP206")]


def test_dp206_reads_every_script_the_build_runs() -> None:
    text = (
        f"Bootstrap: docker\nFrom: {REF}\n"
        "%setup\n    pixi install\n"  # 4
        "%post\n    export PIXI_FROZEN=1\n"
        "%post\n    pixi install\n"  # constrained by the first %post: Apptainer appends them
        "%appinstall tool\n    pixi install\n"  # 10
        "%runscript\n    exec pixi install\n"  # runs in the container, not at build time
        "%test\n    true\n"
    )
    assert codes(text, **LOCK) == [(4, "DP206"), (10, "DP206")]
    two_stages = f"{stage(REF, '    export PIXI_LOCKED=1')}{stage(REF, '    pixi install')}"
    assert codes(two_stages, **LOCK) == [(12, "DP206")]  # each stage is its own build


def test_dp206_only_where_the_policy_requires_a_lock() -> None:
    text = stage(REF, "    pixi install\n")
    assert codes(text) == []
    assert codes(text, **{"require-pixi-lock": False}) == []
    assert codes(text, **{"require-test": True}) == []


@pytest.mark.parametrize("name", ["defbuilder.toml", "pyproject.toml", "given.toml"])
def test_a_policy_file_that_is_not_utf8_is_an_error(tmp_path: Path, name: str) -> None:
    toml = tmp_path / name
    table = "[tool.defbuilder.policy]" if name == "pyproject.toml" else "[policy]"
    toml.write_bytes(f"{table}\n# caf\xe9\nrequire-test = true\n".encode("latin-1"))
    (tmp_path / "app.def").write_text(stage("ubuntu:24.04"))
    with pytest.raises(DefError, match="not UTF-8 text"):
        read_policy(str(toml))
    given = ("--policy", str(toml)) if name == "given.toml" else ()
    out = run_cli("lint", "--no-shellcheck", *given, str(tmp_path / "app.def"))
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert f"{name}: not UTF-8 text" in out.stderr, out.stderr
