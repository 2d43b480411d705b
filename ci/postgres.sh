#!/usr/bin/env bash
# PostgreSQL on loopback from Debian's packages, in a cluster of our own under .state/.
# Usage: ci/postgres.sh start|stop|status|restart
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX=postgres

PORT="${POSTGRES_PORT:-5432}"
DB="${POSTGRES_DB:-memstack}"
USER_NAME="${POSTGRES_USER:-memstack}"
PASSWORD="${POSTGRES_PASSWORD:-memstack-dev-password}"
BASE="$STATE_DIR/postgres"
DATA="$BASE/data"
SOCKETS="$BASE/run"
PIDFILE="$STATE_DIR/postgres.pid"
LOGFILE="$STATE_DIR/postgres.log"

pg_bin() {
  local dir
  dir=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] || die "PostgreSQL binaries not found under /usr/lib/postgresql"
  echo "$dir"
}

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
  apt_install postgresql
}

init_cluster() {
  local bin=$1
  [ -f "$DATA/PG_VERSION" ] && return 0
  log "initialising a cluster in $DATA"
  mkdir -p "$BASE" "$SOCKETS"
  touch "$LOGFILE"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$BASE" "$LOGFILE"; fi
  as_owner "$bin/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >/dev/null
}

start() {
  install
  local bin
  bin=$(pg_bin)
  if pid_alive "$PIDFILE"; then
    log "already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  init_cluster "$bin"
  mkdir -p "$SOCKETS"
  touch "$LOGFILE"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$SOCKETS" "$LOGFILE"; fi
  as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 \
    -o "-p $PORT -k $SOCKETS -c listen_addresses=127.0.0.1" start >/dev/null \
    || { tail -n 20 "$LOGFILE" >&2; die "PostgreSQL did not start on port $PORT"; }
  head -n 1 "$DATA/postmaster.pid" > "$PIDFILE"
  wait_until 30 "PostgreSQL to accept connections" \
    as_owner "$bin/pg_isready" -q -h "$SOCKETS" -p "$PORT" \
    || { tail -n 20 "$LOGFILE" >&2; die "PostgreSQL is not answering on port $PORT"; }
  ensure_role "$bin"  # CREATEDB: the tests create throwaway databases
  log "running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE")), database $DB, user $USER_NAME"
}

psql_admin() {
  as_owner "$1/psql" -v ON_ERROR_STOP=1 -qAt -h "$SOCKETS" -p "$PORT" -U postgres -d postgres "${@:2}"
}

ensure_role() {
  local bin=$1 escaped
  escaped=${PASSWORD//\'/\'\'}
  if [ "$(psql_admin "$bin" -c "SELECT 1 FROM pg_roles WHERE rolname = '$USER_NAME'")" != "1" ]; then
    psql_admin "$bin" -c "CREATE ROLE \"$USER_NAME\" LOGIN CREATEDB PASSWORD '$escaped'"
  else
    psql_admin "$bin" -c "ALTER ROLE \"$USER_NAME\" LOGIN CREATEDB PASSWORD '$escaped'"
  fi
  if [ "$(psql_admin "$bin" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
    psql_admin "$bin" -c "CREATE DATABASE \"$DB\" OWNER \"$USER_NAME\""
  fi
}

stop() {
  if ! pid_alive "$PIDFILE"; then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  as_owner "$(pg_bin)/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || stop_pid "$PIDFILE" postgres
  rm -f "$PIDFILE"
  log "stopped"
}

status() {
  if pid_alive "$PIDFILE"; then
    echo "postgres: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
  else
    echo "postgres: not running"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
