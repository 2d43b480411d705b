"""Schema-driven fuzz of the whole API (schemathesis) against the real service and servers.

Every operation in `/schema/openapi.json` gets generated requests with a valid bearer key.
Checks: no 5xx, the status code is one the operation documents, and the body and headers
match the documented schema. Path ids are mostly real (a project with a small graph) so the
requests reach the handlers instead of stopping at a 404; deleting a project always gets a
fresh one. The SSE stream is left out (it never ends; test_pipeline covers it). Both valid
(positive) and invalid (negative) requests are generated; all failures are reported at once.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.openapi import from_url

from service.settings import Settings
from tests.integration.conftest import RunningApi, running_api
from tests.integration.pipeline_helpers import Client, RunningWorker, running_worker

MAX_EXAMPLES = 60
CASES_RUN = [0]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CORPUS = [
    'Alice Smith works at Acme Corp in Berlin. Yesterday Alice met Bob Jones at the "Quantum Lab".',
    "Carol White leads Globex Corporation in Paris.",
]


@dataclass(frozen=True)
class Target:
    api: RunningApi
    client: Client
    project: str
    episode: str
    entity: str
    key: str


@pytest.fixture(scope="module")
def fuzz_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorker]:
    with running_worker(tmp_path_factory.mktemp("fuzz-worker") / "worker.log") as running:
        yield running


@pytest.fixture(scope="module")
def target(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, fuzz_worker: RunningWorker
) -> Iterator[Target]:
    log = tmp_path_factory.mktemp("fuzz-api") / "api.log"
    with running_api(log, RATE_LIMIT_PER_MINUTE="0") as api:
        client = Client(api.base_url, settings.memstack_bootstrap_api_key)
        project = client.create_project()
        episodes = [client.post_episode(project, text).json()["id"] for text in CORPUS]
        client.wait_all(project, "completed", len(CORPUS))
        found = client.http.post(f"/api/v1/projects/{project}/search", json={"query": "Acme"}).json()
        entity = next(r["id"] for r in found["results"] if r["kind"] == "entity")
        yield Target(api, client, project, episodes[0], entity, settings.memstack_bootstrap_api_key)


def aim(case: Case[Any], target: Target) -> None:
    """Point most generated path ids at real objects; keep some random ones for the 404 paths."""
    params = case.path_parameters
    if not params or random.random() < 0.2:
        return
    if "project_id" in params:
        deleting_project = case.method.upper() == "DELETE" and case.path.endswith("{project_id}")
        params["project_id"] = target.client.create_project() if deleting_project else target.project
    if "episode_id" in params and case.method.upper() == "GET":
        params["episode_id"] = target.episode
    if "entity_id" in params:
        params["entity_id"] = target.entity
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = "fuzz-replay"  # replays answer 200 with the first episode


def fuzz_operation(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, target: Target
) -> list[str]:
    """Run one operation's generated cases; returns the failures (each once)."""
    failures: dict[str, str] = {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Case[Any]) -> None:
        aim(case, target)
        CASES_RUN[0] += 1
        try:
            case.call_and_validate(
                base_url=target.api.base_url,
                headers={"Authorization": f"Bearer {target.key}"},
                checks=CHECKS,
                timeout=30,
            )
        except FailureGroup as exc:  # a check failed: keep the first example of each kind
            text = str(exc).strip()
            failures.setdefault(text.splitlines()[0] if text else type(exc).__name__, text[:3000])

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
        assert mode is GenerationMode.NEGATIVE, operation.label
    return [f"{operation.label} ({mode.value}):\n{text}" for text in failures.values()]


def test_api_conforms_to_its_schema(target: Target) -> None:
    schema = from_url(f"{target.api.base_url}/schema/openapi.json").exclude(path_regex=r"/events$")
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 15, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += fuzz_operation(operation, mode, target)
    assert not failures, "\n\n".join(failures)
    assert "unhandled error" not in target.api.log(), "the API logged an unhandled error"
    print(f"fuzzed {CASES_RUN[0]} requests over {len(operations)} operations")
    assert CASES_RUN[0] >= 10 * len(operations), CASES_RUN


NUL_CASES = [
    ("/api/v1/tenants", {"name": "a\x00b"}),
    ("/api/v1/keys", {"name": "a\x00b"}),
    ("/api/v1/projects", {"name": "a\x00b"}),
    ("/api/v1/projects/{project}/episodes", {"content": "a\x00b"}),
    ("/api/v1/projects/{project}/episodes", {"content": "ok", "metadata": {"k": "v\x00"}}),
    ("/api/v1/projects/{project}/episodes/bulk", {"episodes": [{"content": "a\x00b"}]}),
]


@pytest.mark.parametrize(("path", "body"), NUL_CASES)
def test_nul_characters_are_a_client_error(target: Target, path: str, body: dict[str, Any]) -> None:
    response = target.client.http.post(path.format(project=target.project), json=body)
    assert response.status_code == 422, response.text
