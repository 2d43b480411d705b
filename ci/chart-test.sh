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
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${MEMSTACK_CACHE_DIR:-$HOME/.cache/memstack}"
started=$(date +%s)

log() { printf '[chart-test] %s\n' "$*" >&2; }

tools_bin="$(bash "$here/install-tools.sh")"
crds_dir="$(bash "$here/crds.sh")"
log "tools: $tools_bin"
log "CRDs:  $crds_dir"

cd "$repo"
status=0
# The tools venv (not the app venv) runs the chart tests: it has jsonschema, PyYAML and msgspec
# (service.settings is imported to check the ConfigMap/Secret keys against Settings).
MEMSTACK_CHART_TEST=1 \
MEMSTACK_TOOLS_BIN="$tools_bin" \
MEMSTACK_CRDS_DIR="$crds_dir" \
PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" \
PYTHONDONTWRITEBYTECODE=1 \
  "$cache/tools-venv/bin/python" -m pytest tests/chart \
    --confcutdir=tests/chart -p no:cacheprovider -q "$@" || status=$?

log "finished in $(( $(date +%s) - started ))s (exit $status)"
exit "$status"
