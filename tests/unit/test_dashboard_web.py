"""The dashboard's own unit tests (Vitest: Redux slices, the API client, components), run from pytest so that
``make test`` covers them. Skips when Node.js or the dashboard's npm packages (``make install``) are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "services" / "gateway" / "web"
VITEST = WEB / "node_modules" / "vitest" / "vitest.mjs"


@pytest.mark.skipif(shutil.which("node") is None, reason="node not found: install Node.js >= 18")
@pytest.mark.skipif(not VITEST.is_file(), reason="dashboard packages missing: run `make install`")
def test_dashboard_unit_tests_pass() -> None:
    proc = subprocess.run(
        ["node", str(VITEST), "run", "--reporter=dot"],
        cwd=WEB,
        env={**os.environ, "CI": "1", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"vitest failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert "passed" in proc.stdout, proc.stdout[-2000:]
