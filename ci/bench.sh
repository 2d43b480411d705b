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

for bench in tests/bench/*.py; do
  case "$(basename "$bench")" in __init__.py) continue ;; esac
  log "$bench"
  .venv/bin/python -m "tests.bench.$(basename "$bench" .py)" "$@"
done
