#!/usr/bin/env bash
# `make dev`: start the local stack, migrate, then run the API (uvicorn, reload) and the
# worker in the foreground. Ctrl-C stops both; the servers keep running (`make infra-down`).
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX=dev
cd "$REPO_ROOT"

# The local defaults, then a developer's own .env (which wins); NEO4J_URI follows NEO4J_BOLT_PORT.
load_dev_env

bash ci/install-python.sh
bash ci/infra.sh up
.venv/bin/memstack migrate

PIDS=()
stop_children() {
  trap - INT TERM EXIT
  log "stopping the API and the worker"
  kill -TERM "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
}
trap stop_children INT TERM EXIT

.venv/bin/memstack serve --reload &
PIDS+=($!)
# The worker serves its metrics next to the API's.
METRICS_PORT=$(( ${METRICS_PORT:-9090} + 1 )) .venv/bin/python -m worker &
PIDS+=($!)
log "API on http://${API_HOST:-127.0.0.1}:${API_PORT:-8000} (try /ready), metrics on :${METRICS_PORT:-9090}; Ctrl-C to stop"
wait -n "${PIDS[@]}"
