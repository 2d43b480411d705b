"""Small typed helpers around kubectl and helm for the e2e scenarios.

Everything goes through the real binaries (kubectl, helm 3, helm 4) against the
cluster named by MEMSTACK_E2E_KUBECONFIG; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# MEMSTACK_E2E_CHART: another copy of the chart (e.g. an operator's fork); default: ours.
CHART = Path(os.environ.get("MEMSTACK_E2E_CHART") or REPO / "chart")
VALUES_DIR = REPO / "values"
RELEASE = "memstack"

# Pods running this image never become Ready: ci/e2e/kwok-stages.yaml excludes it from
# the kwok "pod-ready" stage (Job pods excepted, so the migration hook still completes).
NEVER_READY_REPOSITORY = "e2e.invalid/memstack"
NEVER_READY_TAG = "never-ready"
NEVER_READY_IMAGE = f"{NEVER_READY_REPOSITORY}:{NEVER_READY_TAG}"

HOOK_ANNOTATION = "helm.sh/hook"
KEEP_ANNOTATION = "helm.sh/resource-policy"

Obj = dict[str, Any]
T = TypeVar("T")


class CommandFailed(AssertionError):
    """A command that had to succeed did not."""


@dataclass(frozen=True)
class Result:
    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.args)}\n(exit {self.returncode})\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )


def run(args: Sequence[str], *, env: dict[str, str], timeout: float = 600, check: bool = True) -> Result:
    proc = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout, check=False)
    res = Result(list(args), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandFailed(res.describe())
    return res


def wait_until(what: str, fn: Callable[[], T | None], *, timeout: float = 120, interval: float = 0.5) -> T:
    """Poll fn until it returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def resource_arg(obj: Obj) -> str:
    """kubectl's fully qualified `kind.version.group` form (just the kind for the core group)."""
    api_version = str(obj["apiVersion"])
    kind = str(obj["kind"])
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return f"{kind}.{version}.{group}"
    return kind


def ident(obj: Obj) -> tuple[str, str]:
    return (resource_arg(obj), str(obj["metadata"]["name"]))


def is_hook(obj: Obj) -> bool:
    return HOOK_ANNOTATION in (obj.get("metadata", {}).get("annotations") or {})


def hook_events(obj: Obj) -> set[str]:
    raw = str((obj.get("metadata", {}).get("annotations") or {}).get(HOOK_ANNOTATION, ""))
    return {part.strip() for part in raw.split(",") if part.strip()}


def is_kept(obj: Obj) -> bool:
    return (obj.get("metadata", {}).get("annotations") or {}).get(KEEP_ANNOTATION) == "keep"


def parse_manifests(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict) and doc.get("kind")]


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    kubectl: str
    helm3: str
    helm4: str

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        # Keep helm's caches/config out of the operator's home and per test run.
        base = Path(self.kubeconfig).parent / "helm-home"
        env["HELM_CACHE_HOME"] = str(base / "cache")
        env["HELM_CONFIG_HOME"] = str(base / "config")
        env["HELM_DATA_HOME"] = str(base / "data")
        return env

    @classmethod
    def from_environ(cls, kubeconfig_env: str, make_target: str) -> Cluster:
        """The cluster named by `kubeconfig_env`, with kubectl and both Helms from the
        environment (or PATH); fails loudly, never skips, when it is not there or not ready."""

        def tool(env: str, fallback: str) -> str:
            path = os.environ.get(env) or shutil.which(fallback)
            if not path:
                raise pytest.UsageError(
                    f"{env} is not set and {fallback} is not on PATH (run `{make_target}`)"
                )
            return path

        c = cls(
            kubeconfig=os.environ[kubeconfig_env],
            kubectl=tool("MEMSTACK_E2E_KUBECTL", "kubectl"),
            helm3=tool("MEMSTACK_E2E_HELM3", "helm3"),
            helm4=tool("MEMSTACK_E2E_HELM4", "helm4"),
        )
        c.kubectl_run("get", "--raw", "/readyz")
        for version in (3, 4):
            out = c.helm(version, "version", "--template", "{{.Version}}").stdout.strip()
            assert out.startswith(f"v{version}."), f"helm{version} is {out}"
        return c

    def helm_bin(self, version: int) -> str:
        return {3: self.helm3, 4: self.helm4}[version]

    # --- kubectl ------------------------------------------------------------------------
    def kubectl_run(self, *args: str, check: bool = True, timeout: float = 120) -> Result:
        return run([self.kubectl, *args], env=self.env, check=check, timeout=timeout)

    def get(
        self, resource: str, name: str, namespace: str | None, *, managed_fields: bool = False
    ) -> Obj | None:
        args = ["get", resource, name, "-o", "json", "--ignore-not-found"]
        if managed_fields:
            args.append("--show-managed-fields")
        if namespace:
            args += ["-n", namespace]
        out = self.kubectl_run(*args).stdout.strip()
        if not out:
            return None
        obj: Obj = json.loads(out)
        return obj

    def must_get(
        self, resource: str, name: str, namespace: str | None, *, managed_fields: bool = False
    ) -> Obj:
        obj = self.get(resource, name, namespace, managed_fields=managed_fields)
        assert obj is not None, f"{resource}/{name} not found in namespace {namespace}"
        return obj

    def list_objects(self, resource: str, namespace: str, selector: str | None = None) -> list[Obj]:
        args = ["get", resource, "-n", namespace, "-o", "json"]
        if selector:
            args += ["-l", selector]
        items: list[Obj] = json.loads(self.kubectl_run(*args).stdout)["items"]
        return items

    def events(self, namespace: str) -> list[Obj]:
        return self.list_objects("events", namespace)

    def namespaced_resource_types(self) -> list[str]:
        out = self.kubectl_run("api-resources", "--verbs=list", "--namespaced", "-o", "name").stdout
        return [r for r in out.split() if r and r not in {"events", "events.events.k8s.io"}]

    # --- helm ---------------------------------------------------------------------------
    def helm(self, version: int, *args: str, check: bool = True, timeout: float = 600) -> Result:
        return run([self.helm_bin(version), *args], env=self.env, check=check, timeout=timeout)

    def template(self, version: int, namespace: str, values: Iterable[str]) -> list[Obj]:
        out = self.helm(version, "template", RELEASE, str(CHART), "-n", namespace, *values).stdout
        return parse_manifests(out)

    def history(self, version: int, namespace: str) -> list[Obj]:
        out = self.helm(version, "history", RELEASE, "-n", namespace, "-o", "json").stdout
        hist: list[Obj] = json.loads(out)
        return hist

    def manifest(self, version: int, namespace: str) -> list[Obj]:
        return parse_manifests(self.helm(version, "get", "manifest", RELEASE, "-n", namespace).stdout)


def wait_flag(helm_version: int) -> str:
    """`--wait` means the kstatus watcher on Helm 4; be explicit so both versions really wait."""
    return "--wait" if helm_version == 3 else "--wait=watcher"
