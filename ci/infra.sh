#!/usr/bin/env bash
# The local stack: PostgreSQL, Redis and Neo4j on loopback.
# Usage: ci/infra.sh up|down|status
set -euo pipefail
HERE="$(dirname "$0")"
SERVICES=(postgres redis neo4j)

case "${1:-}" in
  up) for s in "${SERVICES[@]}"; do bash "$HERE/$s.sh" start; done ;;
  down) for s in "${SERVICES[@]}"; do bash "$HERE/$s.sh" stop; done ;;
  status)
    rc=0
    for s in "${SERVICES[@]}"; do bash "$HERE/$s.sh" status || rc=3; done
    exit "$rc" ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
