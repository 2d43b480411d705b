"""What the chart and alert suites share: where the chart and tools are, the release they
render, and the alert names (a contract with runbooks and operators' routes)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "chart"
VALUES_DIR = REPO / "values"
CACHE = Path(os.environ.get("MEMSTACK_CACHE_DIR", str(Path.home() / ".cache" / "memstack")))
TOOLS_BIN = Path(os.environ.get("MEMSTACK_TOOLS_BIN", str(CACHE / "bin")))

ENVIRONMENTS = ("default", "dev", "staging", "prod")
RELEASE = "rel"
NAMESPACE = "memstack"
FULLNAME = f"{RELEASE}-memstack"

# values key -> alert name
ALERTS = {
    "apiHighErrorRate": "MemStackApiHighErrorRate",
    "apiHighLatencyP99": "MemStackApiHighLatencyP99",
    "apiDown": "MemStackApiDown",
    "workerDown": "MemStackWorkerDown",
    "queueNearFull": "MemStackQueueNearFull",
    "highMemoryUsage": "MemStackHighMemoryUsage",
    "highCpuUsage": "MemStackHighCpuUsage",
    "dependencyDown": "MemStackDependencyDown",
    "jobFailureRatioHigh": "MemStackJobFailureRatioHigh",
}


def tool(name: str) -> str:
    """A tool installed by ci/install-tools.sh (or found on PATH)."""
    path = TOOLS_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found in {TOOLS_BIN} or on PATH: run ci/install-tools.sh")
    return found


def values_args(env: str) -> list[str]:
    return [] if env == "default" else ["-f", str(VALUES_DIR / f"{env}.yaml")]
