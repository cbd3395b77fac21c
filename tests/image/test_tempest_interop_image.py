"""The OpenStack interop (RefStack) image tests, run by real Tempest against pocketstack.

`tools/tempest.py` installs Tempest 47.0.0 in `.tempest/venv` (once), starts its own
pocketstack and runs the 23 required image tests of guideline 2022.11 from
`../shared/interop/platform-required-image.txt`. Every one must pass. Leave it out with
`-m "not tempest"`.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
INTEROP_LIST = REPO.parent / "shared" / "interop" / "platform-required-image.txt"

pytestmark = pytest.mark.tempest


def test_interop_image_tests_all_pass(tmp_path):
    if not INTEROP_LIST.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"interop list missing: {INTEROP_LIST}")
        pytest.skip(f"no interop list at {INTEROP_LIST}")
    want = sum(1 for line in INTEROP_LIST.read_text().splitlines() if line.strip() and not line.startswith("#"))
    res = subprocess.run(
        [sys.executable, str(REPO / "tools" / "tempest.py"), str(INTEROP_LIST),
         "--workspace", str(tmp_path / "ws"), "--concurrency", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    output = res.stdout + res.stderr
    summary = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", res.stdout, re.M)
    assert summary, f"no summary line from tools/tempest.py (exit {res.returncode}):\n{output[-6000:]}"
    passed, failed, skipped = map(int, summary.groups())
    assert (passed, failed, skipped) == (want, 0, 0), output[-8000:]
    assert res.returncode == 0, output[-8000:]
