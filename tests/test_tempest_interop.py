"""The OpenStack interop (RefStack) tests, run by real Tempest against pocketstack.

For each service done so far, `tools/tempest.py` installs Tempest 47.0.0 in `.tempest/venv`
(once), starts its own pocketstack (security compliance on), and runs the required tests
of guideline 2022.11 from `../shared/interop/platform-required-<service>.txt`
(identity: 15, image: 23, object-storage: 61, network: 80; the object run's cloud has only identity and
object enabled). Every one must pass. About half a minute to two minutes per list once Tempest
is installed (1-2 minutes more the first time). Leave it out with `-m "not tempest"`.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
INTEROP = REPO.parent / "shared" / "interop"

pytestmark = pytest.mark.tempest


@pytest.mark.parametrize("service", ["identity", "image", "object-storage", "network"])
def test_interop_tests_all_pass(service, tmp_path):
    interop_list = INTEROP / f"platform-required-{service}.txt"
    if not interop_list.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"interop list missing: {interop_list}")
        pytest.skip(f"no interop list at {interop_list}")
    want = sum(1 for line in interop_list.read_text().splitlines() if line.strip() and not line.startswith("#"))
    res = subprocess.run(
        [sys.executable, str(REPO / "tools" / "tempest.py"), str(interop_list),
         "--workspace", str(tmp_path / "ws"), "--concurrency", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    output = res.stdout + res.stderr
    summary = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", res.stdout, re.M)
    assert summary, f"no summary line from tools/tempest.py (exit {res.returncode}):\n{output[-6000:]}"
    passed, failed, skipped = map(int, summary.groups())
    assert (passed, failed, skipped) == (want, 0, 0), output[-8000:]
    assert res.returncode == 0, output[-8000:]
