#!/usr/bin/env bash
# PostgreSQL on loopback from Debian's packages, in a cluster of our own under .state/.
# Usage: ci/postgres.sh start|stop|status|restart
#
# Environment (all optional):
#   POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER, POSTGRES_PASSWORD   the server and the app's role
#   MEMSTACK_STATE_DIR               where the cluster, pid file and log live (default .state/),
#                                    so a second instance can run beside the first
#   POSTGRES_LISTEN_ADDRESSES        listen_addresses, comma-separated (default 127.0.0.1)
#   POSTGRES_CLIENT_CIDRS            extra client networks (comma-separated CIDRs) admitted with a
#                                    password; loopback is always admitted
#   POSTGRES_TLS_CERT_FILE           server certificate (PEM, may include the chain): turns on
#   POSTGRES_TLS_KEY_FILE            ssl=on with this key; both or neither
#   POSTGRES_TLS_CA_FILE             CA bundle for client certificates (ssl_ca_file), optional
# With TLS on, clients may still connect without it; sslmode=verify-full makes them verify the
# certificate against their CA (POSTGRES_SSLROOTCERT). The files are copied into the cluster
# directory (owned by the server's user, key mode 0600), so they may live anywhere.
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
LISTEN="${POSTGRES_LISTEN_ADDRESSES:-127.0.0.1}"
CLIENT_CIDRS="${POSTGRES_CLIENT_CIDRS:-}"
TLS_CERT="${POSTGRES_TLS_CERT_FILE:-}"
TLS_KEY="${POSTGRES_TLS_KEY_FILE:-}"
TLS_CA="${POSTGRES_TLS_CA_FILE:-}"
TLS_DIR="$BASE/tls"
HBA_BEGIN="# memstack ci/postgres.sh: POSTGRES_CLIENT_CIDRS (rewritten at each start)"

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

# server_options: the -c settings of this start (listen addresses, TLS), one per line.
server_options() {
  echo "listen_addresses=$LISTEN"
  if [ -n "$TLS_CERT" ]; then
    echo "ssl=on"
    echo "ssl_cert_file=$TLS_DIR/server.crt"
    echo "ssl_key_file=$TLS_DIR/server.key"
    if [ -n "$TLS_CA" ]; then echo "ssl_ca_file=$TLS_DIR/ca.crt"; fi
  else
    echo "ssl=off"
  fi
}

# install_tls: copy the certificate and key where the server's user owns them (it refuses a key
# others can read).
install_tls() {
  rm -rf "$TLS_DIR"
  [ -n "$TLS_CERT$TLS_KEY" ] || return 0
  [ -n "$TLS_CERT" ] && [ -n "$TLS_KEY" ] || die "POSTGRES_TLS_CERT_FILE and POSTGRES_TLS_KEY_FILE go together"
  mkdir -p "$TLS_DIR"
  command install -m 0644 "$TLS_CERT" "$TLS_DIR/server.crt"
  command install -m 0600 "$TLS_KEY" "$TLS_DIR/server.key"
  if [ -n "$TLS_CA" ]; then command install -m 0644 "$TLS_CA" "$TLS_DIR/ca.crt"; fi
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$TLS_DIR"; fi
}

# write_hba: admit POSTGRES_CLIENT_CIDRS with a password (scram), in a block of our own.
write_hba() {
  local hba="$DATA/pg_hba.conf" cidr kept
  kept=$(awk -v marker="$HBA_BEGIN" '$0 == marker { exit } { print }' "$hba")
  {
    printf '%s\n' "$kept"
    if [ -n "$CLIENT_CIDRS" ]; then
      echo "$HBA_BEGIN"
      for cidr in ${CLIENT_CIDRS//,/ }; do echo "host all all $cidr scram-sha-256"; done
    fi
  } > "$hba.new"
  mv "$hba.new" "$hba"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$hba"; fi
}

start() {
  install
  local bin
  bin=$(pg_bin)
  if pid_alive "$PIDFILE"; then
    log "already running on $LISTEN:$PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  init_cluster "$bin"
  mkdir -p "$SOCKETS"
  touch "$LOGFILE"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$SOCKETS" "$LOGFILE"; fi
  install_tls
  write_hba
  local options=(-p "$PORT" -k "$SOCKETS") option
  while IFS= read -r option; do options+=(-c "$option"); done < <(server_options)
  as_owner "$bin/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 -o "${options[*]}" start >/dev/null \
    || { tail -n 20 "$LOGFILE" >&2; die "PostgreSQL did not start on port $PORT"; }
  head -n 1 "$DATA/postmaster.pid" > "$PIDFILE"
  wait_until 30 "PostgreSQL to accept connections" \
    as_owner "$bin/pg_isready" -q -h "$SOCKETS" -p "$PORT" \
    || { tail -n 20 "$LOGFILE" >&2; die "PostgreSQL is not answering on port $PORT"; }
  ensure_role "$bin"  # CREATEDB: the tests create throwaway databases
  log "running on $LISTEN:$PORT (pid $(cat "$PIDFILE")), database $DB, user $USER_NAME${TLS_CERT:+, TLS on}"
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
    echo "postgres: running on $LISTEN:$PORT (pid $(cat "$PIDFILE"))"
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
