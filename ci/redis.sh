#!/usr/bin/env bash
# Redis on loopback from Debian's package, with noeviction (the queue lives there).
# Usage: ci/redis.sh start|stop|status|restart
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX=redis

PORT="${REDIS_PORT:-6379}"
PASSWORD="${REDIS_PASSWORD:-memstack-dev-password}"
DIR="$STATE_DIR/redis"
PIDFILE="$STATE_DIR/redis.pid"
LOGFILE="$STATE_DIR/redis.log"

ping() {
  REDISCLI_AUTH="$PASSWORD" redis-cli -h 127.0.0.1 -p "$PORT" ping | grep -q PONG
}

start() {
  apt_install redis-server
  if pid_alive "$PIDFILE"; then
    log "already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  mkdir -p "$DIR"
  local args=(--port "$PORT" --bind 127.0.0.1 --dir "$DIR" --save "" --appendonly no
    --daemonize yes --pidfile "$PIDFILE" --logfile "$LOGFILE" --maxmemory-policy noeviction)
  [ -n "$PASSWORD" ] && args+=(--requirepass "$PASSWORD")
  redis-server "${args[@]}" || die "redis-server failed to start"
  wait_until 30 "Redis to answer PING" ping \
    || { tail -n 20 "$LOGFILE" >&2; die "Redis is not answering on port $PORT"; }
  log "running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
}

status() {
  if pid_alive "$PIDFILE"; then
    echo "redis: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
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
