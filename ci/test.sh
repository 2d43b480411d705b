#!/usr/bin/env bash
# `make test`: install everything from nothing, start the servers the tests need, run every
# test, and stop what this script started (servers already running are left alone).
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX=test
cd "$REPO_ROOT"
started_at=$(date +%s)

set -a
# shellcheck source=ci/local.env
source ci/local.env
set +a

bash ci/install-python.sh

STARTED=()
cleanup() {
  local s
  for s in "${STARTED[@]}"; do bash "ci/$s.sh" stop || true; done
}
trap cleanup EXIT
for s in postgres redis neo4j; do
  if ! bash "ci/$s.sh" status >/dev/null 2>&1; then
    bash "ci/$s.sh" start
    STARTED+=("$s")
  fi
done

log "lint"
make --no-print-directory lint

bash ci/install-chromium.sh

log "unit and integration tests"
.venv/bin/memstack migrate
.venv/bin/pytest tests/unit tests/integration

for suite in chart-test alerts-test; do
  if [ -f "ci/$suite.sh" ]; then
    log "$suite"
    bash "ci/$suite.sh"
  fi
done
log "all tests passed in $(( $(date +%s) - started_at ))s"
