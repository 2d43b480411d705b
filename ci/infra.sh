#!/usr/bin/env bash
# The local stack: PostgreSQL, Redis and Neo4j on loopback.
# Usage: ci/infra.sh up|down|status
set -euo pipefail
HERE="$(dirname "$0")"
# shellcheck source=ci/lib.sh
source "$HERE/lib.sh"
LOG_PREFIX=infra
# NEO4J_URI alone (e.g. from the environment) moves the local Bolt port too, and vice versa.
sync_neo4j_uri
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
