"""The OpenStack interop (RefStack) tests, run by real Tempest against pocketstack.

For each service, `tools/tempest.py` installs Tempest 47.0.0 in `.tempest/venv` (once),
starts its own pocketstack (security compliance on; the object run's cloud has only
identity and object enabled), and runs the required tests of guideline 2022.11 from
`../shared/interop/platform-required-<service>.txt`. Every listed test must pass (a skip
counts as a miss, as in RefStack). One module per service, so `pytest -n 2 --dist
loadfile` runs two lists at a time. Leave them out with `-m "not tempest"`.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INTEROP = REPO.parent / "shared" / "interop"


@pytest.fixture
def interop(tmp_path):
    """`interop("compute")` runs that service's list and asserts every test passed."""

    def run(service: str, timeout: float = 1800, allowed_skips: int = 0, skip_reason: str = "") -> None:
        """`allowed_skips` tests may skip, each with `skip_reason` in Tempest's reason (compute's
        two SSH validation tests while instances are simulated); every other one must pass."""
        interop_list = INTEROP / f"platform-required-{service}.txt"
        if not interop_list.is_file():
            if os.environ.get("CI"):
                pytest.fail(f"interop list missing: {interop_list}")
            pytest.skip(f"no interop list at {interop_list}")
        want = sum(1 for line in interop_list.read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
        res = subprocess.run(
            [sys.executable, str(REPO / "tools" / "tempest.py"), str(interop_list),
             "--workspace", str(tmp_path / "ws"), "--concurrency", "2"],
            cwd=REPO, capture_output=True, text=True, timeout=timeout)
        output = res.stdout + res.stderr
        summary = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", res.stdout, re.M)
        assert summary, f"no summary line from tools/tempest.py (exit {res.returncode}):\n{output[-6000:]}"
        passed, failed, skipped = map(int, summary.groups())
        assert failed == 0 and skipped <= allowed_skips and passed + skipped == want, output[-8000:]
        skips = [line for line in output.splitlines() if line.startswith("SKIPPED: ")]
        assert all(skip_reason and skip_reason in line for line in skips), output[-8000:]
        assert res.returncode == 0 or (skipped and not failed), output[-8000:]

    return run
