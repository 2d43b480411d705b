#!/usr/bin/env bash
# `make bench`: start the local servers if needed, run the benchmarks, stop what was started.
# Benchmarks print ratios against baselines measured in the same run; they assert nothing.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX=bench
cd "$REPO_ROOT"
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
.venv/bin/memstack migrate

for bench in tests/bench/*.py; do
  case "$(basename "$bench")" in __init__.py) continue ;; esac
  log "$bench"
  .venv/bin/python -m "tests.bench.$(basename "$bench" .py)" "$@"
done
