"""The Gateway API HTTPRoute carries the SSE events stream: an SSE-safe default timeout, and only
the durations the HTTPRoute CRD accepts (pattern and the backendRequest <= request rule)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CRDS_DIR, RenderError, _render, render, render_error
from tests.chart_tools import CHART, FULLNAME

API = f"{FULLNAME}-api"
ROUTE = {"httpRoute.enabled": "true", "httpRoute.parentRefs[0].name": "public-gateway"}
ACCEPTED = ["0s", "1s", "500ms", "90s", "1h30m", "99999s", "1h1m1s1ms", "0ms"]
# Rejected by the CRD: unknown units, fractions, signs, > 5 digits, > 4 groups, spaces, empty.
REJECTED = ["1d", "1.5s", "-1s", "100000s", "1h1m1s1ms1h", "10", "1 s", "", "1S", "s"]


def _timeouts_schema() -> dict[str, Any]:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    result: dict[str, Any] = schema["properties"]["httpRoute"]["properties"]["timeouts"]
    return result


def _crd_timeouts() -> dict[str, Any]:
    for crd in yaml.safe_load_all((CRDS_DIR / "gateway.networking.k8s.io_httproutes.yaml").read_text()):
        if crd and crd.get("kind") == "CustomResourceDefinition":
            (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
            rules = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["rules"]
            timeouts: dict[str, Any] = rules["items"]["properties"]["timeouts"]
            return timeouts
    raise AssertionError("no HTTPRoute CRD")


def test_events_route_gets_an_sse_safe_timeout_by_default(helm: str) -> None:
    """Without a timeout Envoy-based gateways cut every SSE stream after 15 s."""
    route = render(helm, sets=ROUTE).get("HTTPRoute", API)
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert rule["timeouts"] == {"request": "0s"}


def test_route_timeouts_can_be_changed_or_left_to_the_gateway(helm: str) -> None:
    longer = render(helm, sets={**ROUTE, "httpRoute.timeouts.request": "2h"}).get("HTTPRoute", API)
    assert longer["spec"]["rules"][0]["timeouts"] == {"request": "2h"}
    both = render(
        helm, sets={**ROUTE, "httpRoute.timeouts.request": "0s", "httpRoute.timeouts.backendRequest": "1h"}
    ).get("HTTPRoute", API)
    assert both["spec"]["rules"][0]["timeouts"] == {"request": "0s", "backendRequest": "1h"}
    none = render(helm, sets={**ROUTE, "httpRoute.timeouts.request": "null"}).get("HTTPRoute", API)
    assert "timeouts" not in none["spec"]["rules"][0]


def test_schema_and_chart_use_the_crd_duration_pattern() -> None:
    crd = _crd_timeouts()["properties"]
    helpers = (CHART / "templates" / "_gateway.tpl").read_text(encoding="utf-8")
    match = re.search(r'define "memstack\.gatewayDurationPattern" -}}\n(.*)\n', helpers)
    assert match is not None
    for field in ("request", "backendRequest"):
        assert _timeouts_schema()["properties"][field]["pattern"] == crd[field]["pattern"] == match.group(1)
    assert _timeouts_schema()["additionalProperties"] is False


@pytest.mark.parametrize("field", ["request", "backendRequest"])
@pytest.mark.parametrize("duration", ACCEPTED)
def test_crd_durations_are_accepted(helm: str, field: str, duration: str) -> None:
    sets = {**ROUTE, "httpRoute.timeouts.request": "0s", f"httpRoute.timeouts.{field}": duration}
    route = render(helm, sets=sets).get("HTTPRoute", API)
    assert route["spec"]["rules"][0]["timeouts"][field] == duration


@pytest.mark.parametrize("field", ["request", "backendRequest"])
@pytest.mark.parametrize("duration", REJECTED)
def test_durations_the_crd_rejects_are_rejected(helm: str, field: str, duration: str) -> None:
    args: tuple[str, ...] = ("--set", "httpRoute.enabled=true", "--set", "httpRoute.parentRefs[0].name=gw")
    args += ("--set-string", f"httpRoute.timeouts.{field}={duration}")
    with pytest.raises(RenderError) as schema_error:
        _render(helm, args)
    assert f"/httpRoute/timeouts/{field}" in str(schema_error.value)
    # The chart's own check names the value when schema validation is skipped.
    with pytest.raises(RenderError) as chart_error:
        _render(helm, ("--skip-schema-validation", *args))
    assert f"httpRoute.timeouts.{field} ({duration}) is not a Gateway API duration" in str(chart_error.value)


def test_unknown_timeout_field_is_rejected(helm: str) -> None:
    assert "additional properties 'idle' not allowed" in render_error(
        helm, sets={**ROUTE, "httpRoute.timeouts.idle": "1s"}
    )


@pytest.mark.parametrize(
    ("limit", "backend", "ok"),
    [("10s", "11s", False), ("1m", "61s", False), ("1h", "3601s", False), ("1m", "60s", True),
     ("1h30m", "90m", True), ("1h30m", "1h30m1s", False), ("0s", "99999h", True), ("500ms", "1s", False)],
)  # fmt: skip
def test_backend_request_no_longer_than_request(helm: str, limit: str, backend: str, ok: bool) -> None:
    """The CRD's CEL rule: backendRequest <= request unless request is 0s."""
    sets = {**ROUTE, "httpRoute.timeouts.request": limit, "httpRoute.timeouts.backendRequest": backend}
    if ok:
        render(helm, sets=sets)
        return
    message = render_error(helm, sets=sets)
    assert (
        f"httpRoute.timeouts.backendRequest ({backend}) is longer than httpRoute.timeouts.request" in message
    )
