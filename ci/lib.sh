# Shared helpers for the ci/ scripts. Source it; do not run it.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${MEMSTACK_STATE_DIR:-$REPO_ROOT/.state}"
# A relative MEMSTACK_STATE_DIR is taken from the repository root, wherever a script runs from.
[[ "$STATE_DIR" = /* ]] || STATE_DIR="$REPO_ROOT/$STATE_DIR"
CACHE_DIR="${MEMSTACK_CACHE_DIR:-$HOME/.cache/memstack}"
mkdir -p "$STATE_DIR" "$CACHE_DIR"

log() { printf '[%s] %s\n' "${LOG_PREFIX:-ci}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# run_as_root CMD...: apt and friends need root; use sudo when we are not root.
run_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install PKG...: install Debian packages that are missing (idempotent, retries the dpkg lock).
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local attempt
  for attempt in 1 2 3 4 5 6; do
    if run_as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 update -qq \
      && run_as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null; then
      return 0
    fi
    log "apt-get failed (attempt $attempt); retrying"
    sleep 5
  done
  die "could not install ${missing[*]}"
}

# pid_alive FILE: true when FILE names a running process.
pid_alive() {
  local file=$1 pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# stop_pid FILE NAME [TIMEOUT]: SIGTERM the process in FILE, SIGKILL after TIMEOUT seconds.
stop_pid() {
  local file=$1 name=$2 timeout=${3:-30} pid waited=0
  if ! pid_alive "$file"; then
    rm -f "$file"
    log "$name: not running"
    return 0
  fi
  pid=$(cat "$file")
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge "$timeout" ]; then
      log "$name: still running after ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 1
    waited=$((waited + 1))
  done
  rm -f "$file"
  log "$name: stopped (pid $pid)"
}

# wait_until TIMEOUT DESCRIPTION CMD...: poll CMD every half second until it succeeds.
wait_until() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
with socket.socket() as s:
    s.settimeout(1)
    sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
PY
}

# load_local_env: export the local stack's settings (ci/local.env) into this shell.
load_local_env() {
  set -a
  # shellcheck source=ci/local.env
  source "$REPO_ROOT/ci/local.env"
  set +a
  sync_neo4j_uri
}

# load_dev_env [FILE]: the local settings, then a developer's own .env (default: the repo's),
# which wins over them; NEO4J_URI and NEO4J_BOLT_PORT are kept in step afterwards.
load_dev_env() {
  local file=${1:-$REPO_ROOT/.env}
  load_local_env
  if [ -f "$file" ]; then
    set -a
    # shellcheck source=/dev/null
    source "$file"
    set +a
  fi
  sync_neo4j_uri
}

# sync_neo4j_uri: the service reads NEO4J_URI, ci/neo4j.sh starts Bolt on NEO4J_BOLT_PORT; keep
# them pointing at the same local server. Only one set: the other follows it. Both set to
# different loopback ports: stop with a clear message. A non-loopback NEO4J_URI is left alone.
sync_neo4j_uri() {
  local uri=${NEO4J_URI:-} port=${NEO4J_BOLT_PORT:-} re='^(bolt|neo4j)://(127\.0\.0\.1|localhost)(:([0-9]+))?/?$'
  if [ -z "$uri" ]; then
    [ -n "$port" ] && export NEO4J_URI="bolt://127.0.0.1:$port"
    return 0
  fi
  [[ "$uri" =~ $re ]] || return 0
  local uri_port=${BASH_REMATCH[4]:-7687}
  if [ -z "$port" ]; then
    export NEO4J_BOLT_PORT="$uri_port"
  elif [ "$port" != "$uri_port" ]; then
    die "NEO4J_URI=$uri and NEO4J_BOLT_PORT=$port disagree; set only one of them"
  fi
}

# ensure_servers: start whichever of PostgreSQL, Redis and Neo4j is not running, and stop
# exactly those again when the calling script exits; servers already running are left alone.
STARTED_SERVERS=()
stop_started_servers() {
  local s
  for s in "${STARTED_SERVERS[@]}"; do bash "$REPO_ROOT/ci/$s.sh" stop || true; done
}
ensure_servers() {
  local s
  trap stop_started_servers EXIT
  for s in postgres redis neo4j; do
    if ! bash "$REPO_ROOT/ci/$s.sh" status >/dev/null 2>&1; then
      bash "$REPO_ROOT/ci/$s.sh" start
      STARTED_SERVERS+=("$s")
    fi
  done
}
