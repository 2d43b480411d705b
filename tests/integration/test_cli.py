"""The `memstack` command line against the real servers: keys and bulk ingest."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from service.settings import Settings
from tests.support.client import Client
from tests.support.processes import RunningApi
from tests.support.stack import REPO, local_environ


def memstack(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=local_environ(LOG_FORMAT="text", **env),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_keys_create_list_revoke(api: RunningApi) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    created = memstack("keys", "create", "--tenant", tenant, "--name", "laptop")
    assert created.returncode == 0, created.stderr
    key = re.search(r"api key: (\S+)", created.stdout)
    key_id = re.search(r"key id:\s+(\S+)", created.stdout)
    assert key
    assert key_id
    assert key[1] not in created.stderr  # shown once on stdout, never logged
    assert (
        httpx.get(
            f"{api.base_url}/api/v1/projects", headers={"Authorization": f"Bearer {key[1]}"}
        ).status_code
        == 200
    )

    listed = memstack("keys", "list", "--tenant", tenant)
    assert listed.returncode == 0
    assert key_id[1] in listed.stdout
    assert "active" in listed.stdout
    assert key[1] not in listed.stdout

    assert memstack("keys", "revoke", key_id[1]).returncode == 0
    assert "revoked" in memstack("keys", "list", "--tenant", tenant).stdout
    assert memstack("keys", "revoke", str(uuid.uuid4())).returncode == 1


def test_ingest_reports_accepted_duplicates_and_rejected(
    api: RunningApi, settings: Settings, tmp_path: Path
) -> None:
    client = Client(api.base_url, settings.memstack_bootstrap_api_key)
    project = client.create_project()
    lines = [
        json.dumps({"content": f"Line {n}: Uma Thurman met Victor Hugo.", "client_id": f"id-{n}"})
        for n in range(7)
    ]
    lines += [
        json.dumps({"content": "again", "client_id": "id-0"}),  # duplicate of line 1
        json.dumps({"content": "", "client_id": "empty"}),  # rejected: empty content
        json.dumps({"content": "x", "when": "now"}),  # rejected: unknown field
        "{not json",  # rejected: not JSON
        "",
    ]
    path = tmp_path / "episodes.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = memstack(
        "ingest",
        str(path),
        "--project",
        project,
        "--url",
        api.base_url,
        "--batch",
        "3",
        MEMSTACK_API_KEY=settings.memstack_bootstrap_api_key,
    )
    assert result.returncode == 1  # some lines were rejected
    assert "accepted: 7  duplicates: 1  rejected: 3" in result.stdout
    assert re.search(r"line 9: .*length >= 1", result.stdout)
    assert re.search(r"line 10: .*unknown field `when`", result.stdout)
    assert "line 11:" in result.stdout
    assert "3/8" in result.stderr
    assert "8/8" in result.stderr  # the progress bar reached the end
    assert len(client.statuses(project)) == 7
