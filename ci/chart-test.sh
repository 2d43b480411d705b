#!/usr/bin/env bash
# `make chart-test`: lint, render and validate the Helm chart on Helm 3 and Helm 4, from nothing.
#   1. ci/install-tools.sh  helm 3 + 4, kubernetes-validate, checkov, hadolint, shellcheck,
#                           yamllint, promtool, and the tools venv that runs these tests
#   2. ci/crds.sh           the CRDs of the custom resources the chart renders (pinned versions)
#   3. pytest tests/chart   (helm lint/template per values file and Helm version, Kubernetes and
#                           CRD schema validation, schema rejections, feature assertions, alert
#                           rules through promtool, checkov, hadolint, shellcheck, README freshness)
# Exits non-zero on any failure.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_PREFIX=chart-test
started=$(date +%s)

tools_bin="$(bash "$REPO_ROOT/ci/install-tools.sh")"
crds_dir="$(bash "$REPO_ROOT/ci/crds.sh")"
log "tools: $tools_bin"
log "CRDs:  $crds_dir"

cd "$REPO_ROOT"
status=0
# The tools venv (not the app venv) runs the chart tests: it has jsonschema, PyYAML and msgspec
# (service.settings is imported to check the ConfigMap/Secret keys against Settings).
MEMSTACK_CHART_TEST=1 \
MEMSTACK_TOOLS_BIN="$tools_bin" \
MEMSTACK_CRDS_DIR="$crds_dir" \
PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" \
PYTHONDONTWRITEBYTECODE=1 \
  "$CACHE_DIR/tools-venv/bin/python" -m pytest tests/chart \
    --confcutdir=tests/chart -p no:cacheprovider -q "$@" || status=$?

log "finished in $(( $(date +%s) - started ))s (exit $status)"
exit "$status"
