#!/usr/bin/env bash
# Local/CI Neo4j for MemStack: an embedded Neo4j Community DBMS built from the
# org.neo4j Maven artifacts (no Docker, no tarball), Bolt on loopback only.
#
# Usage: ci/neo4j.sh start|stop|status|restart|install
#
# Env (defaults):
#   NEO4J_BOLT_PORT        7687
#   NEO4J_PASSWORD         memstack-dev-password   (user is always "neo4j")
#   MEMSTACK_STATE_DIR     <repo>/.state   data: neo4j/, pid: neo4j.pid, log: neo4j.log
#   MEMSTACK_CACHE_DIR     ~/.cache/memstack   built launcher + jars: neo4j-<version>/
#   NEO4J_START_TIMEOUT    180 (seconds)
#   NEO4J_STOP_TIMEOUT     60 (seconds before SIGKILL)
#   NEO4J_HEAP             1g (-Xmx)     NEO4J_PAGECACHE_MB  256
#   NEO4J_JAVA_OPTS        extra JVM options (space-separated)
#   NEO4J_CDS              1 (0: no class-data-sharing archive)
#   JAVA                   java on PATH
set -euo pipefail

# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_PREFIX=neo4j
PROJECT_DIR="$REPO_ROOT/ci/neo4j"
MAIN_CLASS="memstack.LocalNeo4j"

BOLT_HOST="127.0.0.1"
BOLT_PORT="${NEO4J_BOLT_PORT:-7687}"
PASSWORD="${NEO4J_PASSWORD:-memstack-dev-password}"
STATE_DIR="$(realpath -m "$STATE_DIR")"
START_TIMEOUT="${NEO4J_START_TIMEOUT:-180}"
STOP_TIMEOUT="${NEO4J_STOP_TIMEOUT:-60}"
HEAP="${NEO4J_HEAP:-1g}"
PAGECACHE_MB="${NEO4J_PAGECACHE_MB:-256}"
JAVA_BIN="${JAVA:-java}"
read -r -a EXTRA_JAVA_OPTS <<<"${NEO4J_JAVA_OPTS:-}"

DATA_DIR="$STATE_DIR/neo4j"
PID_FILE="$STATE_DIR/neo4j.pid"
LOG_FILE="$STATE_DIR/neo4j.log"

neo4j_version() {
    local v
    v="$(sed -n 's:.*<neo4j.version>\([^<]*\)</neo4j.version>.*:\1:p' "$PROJECT_DIR/pom.xml" | head -n 1)"
    [[ -n "$v" ]] || die "cannot read neo4j.version from $PROJECT_DIR/pom.xml"
    printf '%s' "$v"
}

# Hash of everything that goes into the build; a change triggers a rebuild.
source_hash() {
    (cd "$PROJECT_DIR" && find pom.xml src -type f -print0 | LC_ALL=C sort -z \
        | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

VERSION="$(neo4j_version)"
INSTALL_DIR="$CACHE_DIR/neo4j-$VERSION"

LIB_DIR=""  # set by install: $INSTALL_DIR/<source hash>/lib

# Build the launcher and copy its runtime jars into
# $INSTALL_DIR/<hash of pom.xml + src>/lib unless that build is already
# cached. Builds in a scratch copy of the project (keeps the work tree clean)
# under a lock and moves the result into place only when complete; a running
# server keeps its own build (old builds are pruned once nothing runs them).
install() {
    local hash build
    hash="$(source_hash)"
    build="$INSTALL_DIR/$hash"
    LIB_DIR="$build/lib"
    if [[ -f "$build/.complete" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
    command -v "$JAVA_BIN" >/dev/null || die "java not found (JDK 17+ needed)"
    mkdir -p "$INSTALL_DIR"
    exec 9>"$INSTALL_DIR/.lock"
    flock 9
    if [[ -f "$build/.complete" ]]; then  # built by another process meanwhile
        exec 9>&-
        return 0
    fi
    log "building the Neo4j $VERSION launcher into $build (first run downloads ~170 MB into ~/.m2)"
    local work
    work="$(mktemp -d "$INSTALL_DIR/.build.XXXXXX")"
    cp -R "$PROJECT_DIR/pom.xml" "$PROJECT_DIR/src" "$work/"
    if ! (cd "$work" && mvn -q -B -Dmaven.test.skip=true package dependency:copy-dependencies \
            >"$work/mvn.log" 2>&1); then
        tail -n 50 "$work/mvn.log" >&2 || true
        rm -rf "$work"
        die "maven build of the Neo4j launcher failed"
    fi
    mkdir -p "$work/stage"
    mv "$work/target/dependency" "$work/stage/lib"
    cp "$work/target/memstack-local-neo4j.jar" "$work/stage/lib/"
    rm -rf "$build"
    mv "$work/stage" "$build"
    touch "$build/.complete"
    rm -rf "$work"
    local old
    for old in "$INSTALL_DIR"/*/; do
        old="${old%/}"
        [[ "$old" != "$build" && "${old##*/}" =~ ^[0-9a-f]{16}$ ]] || continue
        if ! grep -qsF "$old/lib" /proc/[0-9]*/cmdline; then
            rm -rf "$old"
        fi
    done
    exec 9>&-
    log "installed $(find "$LIB_DIR" -name '*.jar' | wc -l) jars"
}

# PID from the pid file if that process is alive AND is our launcher (a stale
# pid file, or a pid reused by another process, counts as not running).
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(tr -dc '0-9' <"$PID_FILE")"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$MAIN_CLASS $DATA_DIR" || return 1
    printf '%s' "$pid"
}

# Class-data sharing: the first start dumps the loaded classes into an
# archive at exit (on stop); later starts map it, which roughly halves the
# JVM's startup time. The archive belongs to one build and one JDK (keyed by
# the java binary's path and mtime); a stale or broken one is ignored by the
# JVM. NEO4J_CDS=0 turns it off. Sets cds_opts in the caller.
CDS_PENDING="$STATE_DIR/neo4j.cds-pending"
cds_options() {
    [[ "${NEO4J_CDS:-1}" == 1 ]] || return 0
    local java_path jdk_key archive
    java_path="$(readlink -f "$(command -v "$JAVA_BIN")")"
    jdk_key="$(printf '%s:%s' "$java_path" "$(stat -c %Y "$java_path")" | sha256sum | cut -c1-12)"
    archive="${LIB_DIR%/lib}/classes-$jdk_key.jsa"
    if [[ -s "$archive" ]]; then
        cds_opts=(-XX:SharedArchiveFile="$archive" "-Xlog:cds*=off")
    else
        local tmp="$archive.$$.tmp"
        printf '%s %s\n' "$tmp" "$archive" >"$CDS_PENDING"
        cds_opts=(-XX:ArchiveClassesAtExit="$tmp" "-Xlog:cds*=off")
    fi
}

# After the JVM has exited cleanly: move a freshly dumped archive into place
# ("discard" after a crash or SIGKILL: the dump may be incomplete).
cds_finish() {
    [[ -f "$CDS_PENDING" ]] || return 0
    local tmp archive
    read -r tmp archive <"$CDS_PENDING" || true
    rm -f "$CDS_PENDING"
    if [[ "${1:-}" != discard && -n "${tmp:-}" && -s "$tmp" && -n "${archive:-}" ]]; then
        mv -f "$tmp" "$archive"
        log "class-data archive written ($(du -h "$archive" | cut -f1)); next starts are faster"
    fi
    [[ -z "${tmp:-}" ]] || rm -f "$tmp"
}

python_bin() {
    if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
        printf '%s' "$REPO_ROOT/.venv/bin/python"
    else
        printf '%s' python3
    fi
}

# A real login + "RETURN 1" over Bolt (stdlib-only client).
bolt_check() {
    "$(python_bin)" "$PROJECT_DIR/boltcheck.py" "$BOLT_HOST" "$BOLT_PORT" neo4j "$PASSWORD"
}

show_log_tail() {
    log "last lines of $LOG_FILE:"
    tail -n 40 "$LOG_FILE" >&2 2>/dev/null || true
    if [[ -f "$DATA_DIR/logs/debug.log" ]]; then
        log "last lines of $DATA_DIR/logs/debug.log:"
        tail -n 20 "$DATA_DIR/logs/debug.log" >&2 || true
    fi
}

start() {
    local pid
    if pid="$(running_pid)"; then
        log "already running (pid $pid, bolt://$BOLT_HOST:$BOLT_PORT)"
        return 0
    fi
    if [[ -f "$PID_FILE" ]]; then
        log "removing stale pid file $PID_FILE"
        rm -f "$PID_FILE"
        cds_finish discard
    fi
    if python3 - "$BOLT_HOST" "$BOLT_PORT" <<'EOF'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
EOF
    then
        die "port $BOLT_HOST:$BOLT_PORT is already in use by another process (set NEO4J_BOLT_PORT)"
    fi

    (( ${#PASSWORD} >= 8 )) || die "NEO4J_PASSWORD must have at least 8 characters"
    install
    mkdir -p "$DATA_DIR"
    local cds_opts=()
    cds_options

    local started offset
    started="$(date +%s)"
    offset=$(( $(stat -c %s "$LOG_FILE" 2>/dev/null || echo 0) + 1 ))
    printf '==== %s ci/neo4j.sh start (Neo4j %s, bolt %s:%s)\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$VERSION" "$BOLT_HOST" "$BOLT_PORT" >>"$LOG_FILE"
    # No job control in a script: the child is not a process-group leader, so
    # setsid execs in place and $! is the JVM's pid.
    NEO4J_BOLT_HOST="$BOLT_HOST" NEO4J_BOLT_PORT="$BOLT_PORT" NEO4J_PASSWORD="$PASSWORD" \
    NEO4J_PAGECACHE_MB="$PAGECACHE_MB" \
        nohup setsid "$JAVA_BIN" \
        -Xms128m -Xmx"$HEAP" -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
        -XX:-OmitStackTraceInFastThrow -XX:+DisableExplicitGC \
        -Djdk.nio.maxCachedBufferSize=1024 -Dio.netty.tryReflectionSetAccessible=true \
        -Dlog4j2.disable.jmx=true \
        --add-opens=java.base/java.nio=ALL-UNNAMED \
        --add-opens=java.base/java.io=ALL-UNNAMED \
        --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
        --add-opens=java.base/java.lang=ALL-UNNAMED \
        ${cds_opts[@]+"${cds_opts[@]}"} ${EXTRA_JAVA_OPTS[@]+"${EXTRA_JAVA_OPTS[@]}"} \
        -cp "$LIB_DIR/*" "$MAIN_CLASS" "$DATA_DIR" \
        </dev/null >>"$LOG_FILE" 2>&1 8>&- &
    pid=$!
    mkdir -p "$(dirname "$PID_FILE")"
    printf '%s\n' "$pid" >"$PID_FILE"

    local deadline=$(( started + START_TIMEOUT ))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            cds_finish discard
            show_log_tail
            die "Neo4j exited during startup (see $LOG_FILE)"
        fi
        if tail -c +"$offset" "$LOG_FILE" | grep -q 'MEMSTACK_NEO4J_READY' && bolt_check >/dev/null 2>&1; then
            break
        fi
        if (( $(date +%s) >= deadline )); then
            show_log_tail
            bolt_check || true
            log "Neo4j did not answer on bolt://$BOLT_HOST:$BOLT_PORT within ${START_TIMEOUT}s; stopping it"
            stop
            die "Neo4j start timed out after ${START_TIMEOUT}s (NEO4J_START_TIMEOUT; full log: $LOG_FILE)"
        fi
        sleep 0.5
    done
    log "running (pid $pid, bolt://$BOLT_HOST:$BOLT_PORT, user neo4j) after $(( $(date +%s) - started ))s"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        if [[ -f "$PID_FILE" ]]; then
            log "not running (removing stale pid file)"
            rm -f "$PID_FILE"
            cds_finish discard
        else
            log "not running"
        fi
        return 0
    fi
    log "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$(( $(date +%s) + STOP_TIMEOUT ))
    while kill -0 "$pid" 2>/dev/null; do
        if (( $(date +%s) >= deadline )); then
            log "pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
            cds_finish discard
            break
        fi
        sleep 0.2
    done
    rm -f "$PID_FILE"
    cds_finish
    log "stopped"
}

status() {
    local pid
    if pid="$(running_pid)"; then
        echo "neo4j: running (pid $pid, bolt://$BOLT_HOST:$BOLT_PORT)"
        return 0
    fi
    echo "neo4j: not running (bolt://$BOLT_HOST:$BOLT_PORT)"
    return 3
}

# One start/stop at a time per state directory (the JVM does not inherit the lock).
if [[ "${1:-}" =~ ^(start|stop|restart)$ ]]; then
    mkdir -p "$STATE_DIR"
    exec 8>"$STATE_DIR/neo4j.lock"
    flock 8
fi

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    restart) stop; start ;;
    status) status ;;
    install) install; log "launcher ready in ${LIB_DIR%/lib}" ;;
    *) echo "usage: $0 start|stop|status|restart|install" >&2; exit 2 ;;
esac
