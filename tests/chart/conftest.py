"""Chart tests: pytest over `helm template` output, on Helm 3 and Helm 4.

They run through `ci/chart-test.sh` (`make chart-test`), which installs the tools and the CRDs
and sets MEMSTACK_CHART_TEST=1; under a plain `pytest tests` they are skipped with that reason.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart_tools import (
    CACHE,
    CHART,
    ENVIRONMENTS,
    NAMESPACE,
    RELEASE,
    tool,
    values_args,
)

CRDS_DIR = Path(os.environ.get("MEMSTACK_CRDS_DIR", str(CACHE / "crds")))

HELMS = ("helm3", "helm4")
# A fixed bootstrap key for renders that must be byte-for-byte reproducible.
BOOTSTRAP = "b" * 40

Manifest = dict[str, Any]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("MEMSTACK_CHART_TEST") == "1":
        return
    skip = pytest.mark.skip(reason="chart tests run through ci/chart-test.sh (make chart-test)")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@dataclass(frozen=True)
class Rendered:
    text: str
    docs: tuple[Manifest, ...]

    def kinds(self, kind: str) -> list[Manifest]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> Manifest:
        for doc in self.docs:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(
            f"{kind}/{name} not rendered; have {[(d['kind'], d['metadata']['name']) for d in self.docs]}"
        )

    def has(self, kind: str, name: str | None = None) -> bool:
        return any(d["kind"] == kind and (name is None or d["metadata"]["name"] == name) for d in self.docs)


class RenderError(Exception):
    pass


@functools.lru_cache(maxsize=512)
def _render(helm: str, args: tuple[str, ...]) -> Rendered:
    cmd = [tool(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip())
    docs = tuple(d for d in yaml.safe_load_all(proc.stdout) if d)
    return Rendered(proc.stdout, docs)


def render(
    helm: str = "helm4",
    env: str = "default",
    *,
    sets: dict[str, str] | None = None,
    strings: dict[str, str] | None = None,
) -> Rendered:
    args = values_args(env)
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    for key, value in (strings or {}).items():
        args += ["--set-string", f"{key}={value}"]
    return _render(helm, tuple(args))


def render_error(helm: str = "helm4", env: str = "default", *, sets: dict[str, str] | None = None) -> str:
    try:
        render(helm, env, sets=sets)
    except RenderError as exc:
        return str(exc)
    raise AssertionError(f"rendering with {sets} was expected to fail")


def pod_spec(doc: Manifest) -> Manifest:
    spec: Manifest = doc["spec"]
    if doc["kind"] == "Pod":
        return spec
    template: Manifest = spec["template"]["spec"]
    return template


def containers(doc: Manifest) -> list[Manifest]:
    result: list[Manifest] = pod_spec(doc)["containers"]
    return result


def workloads(rendered: Rendered) -> Iterator[Manifest]:
    for doc in rendered.docs:
        if doc["kind"] in {"Deployment", "Job", "Pod"}:
            yield doc


@pytest.fixture(params=HELMS)
def helm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=ENVIRONMENTS)
def env(request: pytest.FixtureRequest) -> str:
    return str(request.param)
