#!/usr/bin/env bash
# Redis on loopback from Debian's package, with noeviction (the queue lives there).
# Usage: ci/redis.sh start|stop|status|restart
#
# Environment (all optional):
#   REDIS_PORT, REDIS_PASSWORD     the port and the AUTH password (empty: no AUTH)
#   MEMSTACK_STATE_DIR             where the pid file, log and data dir live (default .state/), so
#                                  a second instance can run beside the first
#   REDIS_BIND                     addresses to listen on, space- or comma-separated (default 127.0.0.1)
#   REDIS_TLS_CERT_FILE            server certificate (PEM): REDIS_PORT then serves TLS only
#   REDIS_TLS_KEY_FILE             its key; both or neither
#   REDIS_TLS_CA_FILE              CA bundle Redis requires with TLS (clients are not asked for
#                                  certificates); default: the certificate file itself
# Clients verify the certificate with REDIS_TLS=true and their CA in REDIS_TLS_CA_FILE.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX=redis

PORT="${REDIS_PORT:-6379}"
PASSWORD="${REDIS_PASSWORD:-memstack-dev-password}"
DIR="$STATE_DIR/redis"
PIDFILE="$STATE_DIR/redis.pid"
LOGFILE="$STATE_DIR/redis.log"
BIND="${REDIS_BIND:-127.0.0.1}"
BIND="${BIND//,/ }"
TLS_CERT="${REDIS_TLS_CERT_FILE:-}"
TLS_KEY="${REDIS_TLS_KEY_FILE:-}"
TLS_CA="${REDIS_TLS_CA_FILE:-$TLS_CERT}"

ping() {
  local first=${BIND%% *} tls=()
  # The health check only asks "is it up": it does not verify the certificate (clients do).
  if [ -n "$TLS_CERT" ]; then tls=(--tls --insecure); fi
  REDISCLI_AUTH="$PASSWORD" redis-cli -h "$first" -p "$PORT" "${tls[@]}" ping | grep -q PONG
}

start() {
  apt_install redis-server
  if pid_alive "$PIDFILE"; then
    log "already running on ${BIND// /,}:$PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  mkdir -p "$DIR"
  local bind
  read -r -a bind <<< "$BIND"
  local args=(--bind "${bind[@]}" --dir "$DIR" --save "" --appendonly no
    --daemonize yes --pidfile "$PIDFILE" --logfile "$LOGFILE" --maxmemory-policy noeviction)
  if [ -n "$TLS_CERT$TLS_KEY" ]; then
    [ -n "$TLS_CERT" ] && [ -n "$TLS_KEY" ] || die "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together"
    args+=(--port 0 --tls-port "$PORT" --tls-cert-file "$TLS_CERT" --tls-key-file "$TLS_KEY"
      --tls-ca-cert-file "$TLS_CA" --tls-auth-clients no)
  else
    args+=(--port "$PORT")
  fi
  [ -n "$PASSWORD" ] && args+=(--requirepass "$PASSWORD")
  redis-server "${args[@]}" || die "redis-server failed to start"
  wait_until 30 "Redis to answer PING" ping \
    || { tail -n 20 "$LOGFILE" >&2; die "Redis is not answering on port $PORT"; }
  log "running on ${BIND// /,}:$PORT (pid $(cat "$PIDFILE"))${TLS_CERT:+, TLS only}"
}

status() {
  if pid_alive "$PIDFILE"; then
    echo "redis: running on ${BIND// /,}:$PORT (pid $(cat "$PIDFILE"))"
  else
    echo "redis: not running"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop_pid "$PIDFILE" redis 30 ;;
  restart) stop_pid "$PIDFILE" redis 30; start ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
