"""The alert suite's own script is shellcheck-clean."""

from __future__ import annotations

import subprocess

from tests.chart_tools import REPO, tool


def test_shellcheck_alerts_script() -> None:
    proc = subprocess.run(
        [tool("shellcheck"), "-x", str(REPO / "ci" / "alerts-test.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
