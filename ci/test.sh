#!/usr/bin/env bash
# `make test`: install everything from nothing, start the servers the tests need, run every
# test, and stop what this script started (servers already running are left alone).
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX="test"
cd "$REPO_ROOT"
started_at=$(date +%s)

load_local_env

bash ci/install-python.sh

ensure_servers

log "lint"
make --no-print-directory lint

bash ci/install-chromium.sh

log "unit and integration tests"
.venv/bin/memstack migrate
.venv/bin/pytest tests/unit tests/integration

# e2e: helm install/upgrade/rollback on a real API server (built once, then cached);
# node-e2e: the image as real pods on a real node.
for suite in chart-test alerts-test e2e node-e2e; do
  if [ -f "ci/$suite.sh" ]; then
    log "$suite"
    bash "ci/$suite.sh"
  fi
done
log "all tests passed in $(( $(date +%s) - started_at ))s"
