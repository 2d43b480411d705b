#!/usr/bin/env bash
# `make alerts-test`: prove the chart's alerts and dashboard, from nothing.
#   1. ci/install-tools.sh   helm 3 + 4 and promtool; Debian's `prometheus` package (the server)
#   2. ci/install-python.sh  the app venv (the live test runs the real API and worker)
#   3. the local servers     PostgreSQL, Redis, Neo4j (started if not running, stopped again after)
#   4. pytest tests/alerts   promtool check/test rules on the rules rendered per values file
#                            (test files generated from the rendered thresholds), runbook checks,
#                            and the live test: a real Prometheus scraping the real API and worker
#                            while dependencies, the worker and the API fail (tests/alerts/test_live.py)
# Extra arguments go to pytest. Exits non-zero on any failure.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX=alerts-test
cd "$REPO_ROOT"
started=$(date +%s)
VENV="${VENV:-.venv}"
export VENV

tools_bin="$(bash ci/install-tools.sh)"
# The server comes with promtool in Debian's package; install it if promtool came from elsewhere.
command -v prometheus >/dev/null 2>&1 || apt_install prometheus
log "tools: $tools_bin; prometheus: $(prometheus --version 2>&1 | head -1)"
bash ci/install-python.sh

load_local_env
ensure_servers  # starts what is not running, stops exactly that again on exit

status=0
MEMSTACK_ALERTS_TEST=1 \
MEMSTACK_TOOLS_BIN="$tools_bin" \
PROMETHEUS_BIN="$(command -v prometheus)" \
PYTHONDONTWRITEBYTECODE=1 \
  "$VENV/bin/python" -m pytest tests/alerts -p no:cacheprovider -q "$@" || status=$?

log "finished in $(( $(date +%s) - started ))s (exit $status)"
exit "$status"
