"""Helpers for tests that run images through defbuilder.runtime."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from defbuilder import runtime

needs_namespaces = pytest.mark.skipif(
    not runtime.available(),
    reason="the entry harness needs Linux mount namespaces (unshare), not available here",
)

DUMP = f"""#!{sys.executable}
import json, os, sys
print(json.dumps({{"argv": sys.argv[1:], "pid": os.getpid(),
                  "env": {{k: v for k, v in os.environ.items()}}}}))
code = os.environ.get("DUMP_EXIT")
sys.exit(int(code) if code else 0)
"""


def tools_dir(tmp_path: Path) -> Path:
    """A directory with `dump` (prints argv/pid/env as JSON), mapped at /opt/t."""
    d = tmp_path / "tools"
    d.mkdir(exist_ok=True)
    dump = d / "dump"
    dump.write_text(DUMP)
    dump.chmod(0o755)
    return d


def parse_dump(stdout: bytes) -> dict:
    return json.loads(stdout.decode().strip().splitlines()[-1])
