#!/usr/bin/env bash
# `make bench`: start the local servers if needed, run the benchmarks, stop what was started.
# Benchmarks print ratios against baselines measured in the same run; they assert nothing.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX=bench
cd "$REPO_ROOT"
load_local_env
bash ci/install-python.sh

ensure_servers
.venv/bin/memstack migrate

# Each module prints its rows and appends them to the report; the whole table comes last.
# BENCH=<module> runs one of them alone.
read -r -a BENCHES <<<"${BENCH:-accept_path pipeline_throughput sse_fanout search_latency}"
report="$(mktemp)"
trap 'rm -f "$report"; stop_started_servers' EXIT
export MEMSTACK_BENCH_REPORT="$report"
for bench in "${BENCHES[@]}"; do
  log "tests/bench/$bench.py"
  .venv/bin/python -m "tests.bench.$bench"
done
log "all targets"
.venv/bin/python -m tests.bench.report "$report"
