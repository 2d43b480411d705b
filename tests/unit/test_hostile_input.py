"""Unit checks behind issue 13: JSON depth, field names, log escaping, local Neo4j port."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from service.api.body import MAX_JSON_DEPTH, check_depth, field_of, json_depth
from service.observability.logging import escape_controls
from service.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'"[[[["', 0),
        (b'{"a": "\\"[[[", "b": [[]]}', 3),
        (b"[" * 500 + b"]" * 500, 500),
        (b"[]" * 10_000, 1),
    ],
)
def test_json_depth_ignores_brackets_in_strings(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


def test_check_depth_refuses_only_beyond_the_limit() -> None:
    check_depth(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    check_depth(b'["' + b"{" * 10_000 + b'"]')
    with pytest.raises(Exception, match=str(MAX_JSON_DEPTH)):
        check_depth(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))


@pytest.mark.parametrize(
    ("path", "message", "field"),
    [
        ("", "Expected `object`, got `array`", "body"),
        (".limit", "Expected `int`, got `str`", "limit"),
        ("", "Object missing required field `content`", "content"),
        (".episodes[2]", "Object contains unknown field `colour`", "episodes[2].colour"),
        (".episodes[0]", "metadata: must not contain NUL (U+0000) characters", "episodes[0].metadata"),
    ],
)
def test_body_errors_name_the_public_field(path: str, message: str, field: str) -> None:
    assert field_of(path, message) == field


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("GET /a 200", "GET /a 200"),
        ("C:\\temp", "C:\\temp"),
        ("/x\r\nFORGED", "/x\\r\\nFORGED"),
        ("/x\x1b[31m\x00\t", "/x\\x1b[31m\\x00\\t"),
        ("/\\\n", "/\\\\\\n"),
        ("/\u202eevil\u2028", "/\\u202eevil\\u2028"),
    ],
)
def test_log_messages_escape_control_characters(raw: str, escaped: str) -> None:
    assert escape_controls(raw) == escaped
    assert "\n" not in escape_controls(raw)


def test_the_metrics_server_binds_loopback_unless_told() -> None:
    assert load_settings({}).metrics_host == "127.0.0.1"
    assert load_settings({"METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"  # noqa: S104


def _dev_env(tmp_path: Path, dotenv: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / ".env"
    env_file.write_text(dotenv, encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    script = f'source ci/lib.sh && load_dev_env "{env_file}" && echo "$NEO4J_URI $NEO4J_BOLT_PORT"'
    return subprocess.run(
        ["bash", "-c", script],
        cwd=REPO,
        env={**base, "MEMSTACK_STATE_DIR": str(tmp_path / "state"), **environ},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("dotenv", "environ", "expected"),
    [
        ("", {}, " "),
        ("", {"NEO4J_BOLT_PORT": "7799"}, "bolt://127.0.0.1:7799 7799"),
        ("NEO4J_BOLT_PORT=7798\n", {}, "bolt://127.0.0.1:7798 7798"),
        ("NEO4J_URI=bolt://localhost:7711\n", {}, "bolt://localhost:7711 7711"),
        ("NEO4J_URI=neo4j://db.example:7687\n", {"NEO4J_BOLT_PORT": "7799"}, "neo4j://db.example:7687 7799"),
    ],
)
def test_make_dev_keeps_neo4j_uri_and_bolt_port_in_step(
    tmp_path: Path, dotenv: str, environ: dict[str, str], expected: str
) -> None:
    result = _dev_env(tmp_path, dotenv, **environ)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip("\n") == expected


def test_a_neo4j_uri_and_bolt_port_that_disagree_stop_make_dev(tmp_path: Path) -> None:
    result = _dev_env(tmp_path, "NEO4J_URI=bolt://127.0.0.1:7711\n", NEO4J_BOLT_PORT="7799")
    assert result.returncode != 0
    assert "NEO4J_URI" in result.stderr
    assert "NEO4J_BOLT_PORT" in result.stderr
