#!/usr/bin/env bash
# Build the MemStack image with buildah, without a registry and without network in the build:
#   1. a base image from Debian packages (mmdebstrap --variant=minbase bookworm + Python 3.11),
#      cached by its package list, imported as localhost/memstack-base:bookworm-<hash>;
#   2. a wheelhouse of the project's dependencies for CPython 3.11 on linux x86_64, downloaded
#      on the host and mounted read-only into the build at /wheels;
#   3. `buildah bud --pull-never --network none` of the project's Dockerfile on that base
#      (the Dockerfile itself is unchanged: docker builds it elsewhere on python:3.11-slim);
#   4. two fault-injection images derived from it, for the deployment tests:
#        <tag>-crash        the API (uvicorn) and the worker (python -m worker) exit 1 at start
#        <tag>-never-ready  both stay up; /health answers 200, /ready never does, and the
#                           worker never writes its heartbeat
#      both also carry one more, expand-only migration (the next release's schema);
#      `memstack migrate` (the chart's hook) and every other memstack command work as usual.
# Each image is exported as an OCI archive (for `ctr -n k8s.io images import FILE`) into
# ${MEMSTACK_IMAGE_DIR:-$CACHE_DIR/image}, with images.env naming the references. A run with
# nothing changed only checks the stamp. Logs go to stderr; the last stdout line is that
# directory.
#
# Usage: ci/image.sh [build|check]   (build is the default; check re-runs the smoke test)
set -euo pipefail
LOG_PREFIX=image
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE_DIR="${MEMSTACK_IMAGE_DIR:-$CACHE_DIR/image}"
BUILDAH_DIR="$CACHE_DIR/buildah"
BASE_DIR="$CACHE_DIR/image-base"
WHEEL_DIR="$CACHE_DIR/image-wheels"
REPO_NAME="localhost/memstack"
RUNC=/usr/bin/runc
# Debian packages of the base image (passwd, for groupadd/useradd, is part of minbase).
BASE_PKGS=(python3 python3-venv python-is-python3 ca-certificates)
BASE_SUITE=bookworm
HEARTBEAT_FILE=/tmp/memstack-worker.heartbeat

mkdir -p "$IMAGE_DIR" "$BUILDAH_DIR" "$BASE_DIR" "$WHEEL_DIR"

apt_install buildah runc mmdebstrap skopeo uidmap

# --- buildah storage of the project's own -------------------------------------------
# Native overlay when the kernel can mount it here (root on ext4/xfs), else vfs.
storage_driver() {
  if [ -n "${MEMSTACK_BUILDAH_DRIVER:-}" ]; then
    echo "$MEMSTACK_BUILDAH_DRIVER"
    return
  fi
  local probe driver=vfs
  probe="$(mktemp -d "$BUILDAH_DIR/probe.XXXXXX")"
  mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
  if [ "$(id -u)" -eq 0 ] && mount -t overlay overlay \
    -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    driver=overlay
  fi
  rm -rf "$probe"
  echo "$driver"
}
DRIVER="$(storage_driver)"
STORE="$BUILDAH_DIR/$DRIVER"
mkdir -p "$STORE/root" "$STORE/runroot" "$BUILDAH_DIR/tmp"
cat >"$BUILDAH_DIR/storage-$DRIVER.conf" <<EOF
[storage]
driver = "$DRIVER"
graphroot = "$STORE/root"
runroot = "$STORE/runroot"
EOF
export CONTAINERS_STORAGE_CONF="$BUILDAH_DIR/storage-$DRIVER.conf"
# crun cannot run on this kind of host (cgroup v1 hybrid): always runc, OCI isolation.
export BUILDAH_RUNTIME="$RUNC" BUILDAH_ISOLATION=oci
# Large temporary blobs (commit, push) stay next to the storage, not in /var/tmp.
export TMPDIR="$BUILDAH_DIR/tmp"

# One build at a time per storage.
exec 9>"$BUILDAH_DIR/lock"
flock 9

WORK_CONTAINERS=()
cleanup() {
  local c
  for c in "${WORK_CONTAINERS[@]}"; do
    [ -z "$c" ] || buildah rm "$c" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

image_exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }
new_container() {  # new_container IMAGE: a working container in $CTR, removed on exit
  CTR="$(buildah from --pull=never --quiet "$1")"
  WORK_CONTAINERS+=("$CTR")
}
sha() { sha256sum | cut -c1-"${1:-16}"; }

TAG="$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
  "$REPO_ROOT/pyproject.toml")"
IMAGE="$REPO_NAME:$TAG"
CRASH_IMAGE="$REPO_NAME:$TAG-crash"
# Numbered right after the last real migration (versions run 1..N without gaps).
FAULT_MIGRATION="$(printf '%04d_fault_release_expand.sql' \
  $(($(find "$REPO_ROOT/service/stores/migrations" -name '[0-9]*.sql' | wc -l) + 1)))"
NEVER_READY_IMAGE="$REPO_NAME:$TAG-never-ready"

# --- 1. base image --------------------------------------------------------------------
# The Debian archive entries for the suite, as the machine's apt sources give them (one-line
# and deb822 formats), in sources.list form for mmdebstrap.
debian_sources() {
  python3 - "$BASE_SUITE" /etc/apt/sources.list /etc/apt/sources.list.d/* <<'PY'
import re, sys
suite, files = sys.argv[1], sys.argv[2:]
wanted = re.compile(re.escape(suite) + r"(-updates|-security)?")
out = []
def add(uri, suites, comps):
    for s in suites:
        line = f"deb {uri} {s} {' '.join(comps)}"
        if wanted.fullmatch(s) and line not in out:
            out.append(line)
for path in files:
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        continue
    if path.endswith(".list"):
        for line in text.splitlines():
            m = re.match(r"deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)", line.split("#", 1)[0].strip())
            if m:
                add(m.group(2), [m.group(3)], m.group(4).split())
    elif path.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            f = {}
            for line in stanza.splitlines():
                if not line.startswith(("#", " ", "\t")) and ":" in line:
                    key, value = line.split(":", 1)
                    f[key.strip().lower()] = value.split()
            if "deb" in f.get("types", []) and f.get("enabled", ["yes"])[0].lower() != "no":
                for uri in f.get("uris", []):
                    add(uri, f.get("suites", []), f.get("components", []))
print("\n".join(out))
PY
}

MMDEBSTRAP_OPTS=(
  --variant=minbase
  --include="$(IFS=,; echo "${BASE_PKGS[*]}")"
  # The machine's archive may be a dated snapshot whose Release files have expired.
  --aptopt='Acquire::Check-Valid-Until "false"'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
)
BASE_KEY="$(printf '%s\n' "$BASE_SUITE" "${MMDEBSTRAP_OPTS[@]}" | sha 12)"
BASE_IMAGE="localhost/memstack-base:$BASE_SUITE-$BASE_KEY"
BASE_TAR="$BASE_DIR/base-$BASE_SUITE-$BASE_KEY.tar"

build_base() {
  if image_exists "$BASE_IMAGE"; then
    return 0
  fi
  if [ ! -s "$BASE_TAR" ]; then
    local sources
    sources="$(debian_sources)"
    [ -n "$sources" ] || die "no Debian $BASE_SUITE entry in /etc/apt/sources.list*: mmdebstrap needs one"
    log "building the base rootfs with mmdebstrap ($BASE_SUITE minbase + ${BASE_PKGS[*]})"
    rm -rf "$BASE_DIR"/base-* "$BASE_DIR"/python-version-*
    nice -n 10 mmdebstrap --quiet --format=tar "${MMDEBSTRAP_OPTS[@]}" "$BASE_SUITE" "$BASE_TAR.partial" - \
      <<<"$sources" >&2 \
      || die "mmdebstrap failed"
    mv "$BASE_TAR.partial" "$BASE_TAR"
  fi
  log "importing the base rootfs as $BASE_IMAGE"
  local c
  new_container scratch
  c=$CTR
  buildah add --quiet "$c" "$BASE_TAR" / >/dev/null
  buildah config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --cmd '["python3"]' \
    --label org.opencontainers.image.title=memstack-base \
    --label "org.opencontainers.image.description=Debian $BASE_SUITE minbase with Python 3.11" \
    "$c"
  buildah commit --quiet --rm "$c" "$BASE_IMAGE" >/dev/null
  # Older bases (another package list) are no longer needed.
  local old
  for old in $(buildah images --format '{{.Name}}:{{.Tag}}' localhost/memstack-base 2>/dev/null); do
    [ "$old" = "$BASE_IMAGE" ] || buildah rmi "$old" >/dev/null 2>&1 || true
  done
}

# --- 2. wheelhouse --------------------------------------------------------------------
# pyproject's build requirements and dependencies, as wheels for the base's own Python.
requirements() {
  python3 - "$REPO_ROOT/pyproject.toml" <<'PY'
import sys, tomllib
data = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join(data["build-system"]["requires"] + data["project"]["dependencies"]))
PY
}
# The exact Python version of the base (Debian's 3.11.x): markers such as
# `python_full_version < "3.11.3"` choose dependencies by it.
base_python_version() {  # sets BASE_PY
  local file="$BASE_DIR/python-version-$BASE_KEY"
  if [ ! -s "$file" ]; then
    new_container "$BASE_IMAGE"
    buildah run --runtime "$RUNC" --isolation oci --network none "$CTR" -- \
      python3 -c 'import platform; print(platform.python_version())' >"$file.partial"
    buildah rm "$CTR" >/dev/null
    mv "$file.partial" "$file"
  fi
  BASE_PY="$(cat "$file")"
}
# pip_download_for_base ARGS...: `pip download` on the host for the base's interpreter. pip
# picks wheels by --python-version/--platform/--abi but evaluates environment markers against
# the interpreter that runs it; this wrapper makes the markers see the base's Python instead.
pip_download_for_base() {
  nice -n 10 python3 - "$BASE_PY" "$@" <<'PY'
import sys

from pip._vendor.packaging import markers

version = sys.argv[1]
host_environment = markers.default_environment


def base_environment():
    env = host_environment()
    env.update(
        python_full_version=version,
        python_version=".".join(version.split(".")[:2]),
        implementation_name="cpython",
        implementation_version=version,
        platform_python_implementation="CPython",
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        os_name="posix",
    )
    return env


markers.default_environment = base_environment
from pip._internal.cli.main import main

sys.exit(main(["download", *sys.argv[2:]]))
PY
}
# Sets BASE_PY, PIP_TARGET_OPTS, REQS, WHEEL_KEY and WHEELS (the base must exist).
wheelhouse_settings() {
  base_python_version
  [[ "$BASE_PY" == 3.11.* ]] || die "the base has Python $BASE_PY, expected 3.11"
  # Debian bookworm has glibc 2.36: every manylinux tag up to that one fits.
  local minor
  PIP_TARGET_OPTS=(--only-binary=:all: --implementation cp --python-version "$BASE_PY"
    --abi cp311 --abi abi3 --abi none
    --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
  for minor in $(seq 36 -1 5); do PIP_TARGET_OPTS+=(--platform "manylinux_2_${minor}_x86_64"); done
  REQS="$(requirements)"
  WHEEL_KEY="$(printf '%s\n' "$REQS" "${PIP_TARGET_OPTS[@]}" | sha 12)"
  WHEELS="$WHEEL_DIR/$WHEEL_KEY"
}
build_wheelhouse() {
  wheelhouse_settings
  [ -f "$WHEELS/.complete" ] && return 0
  log "downloading the wheelhouse for CPython $BASE_PY linux x86_64 into $WHEELS"
  rm -rf "$WHEELS.partial"
  mkdir -p "$WHEELS.partial"
  printf '%s\n' "$REQS" >"$WHEELS.partial/requirements.txt"
  pip_download_for_base --quiet --disable-pip-version-check "${PIP_TARGET_OPTS[@]}" \
    --dest "$WHEELS.partial" -r "$WHEELS.partial/requirements.txt" >&2 || die "pip download failed"
  touch "$WHEELS.partial/.complete"
  find "$WHEEL_DIR" -mindepth 1 -maxdepth 1 ! -name "$WHEEL_KEY.partial" -exec rm -rf {} +
  mv "$WHEELS.partial" "$WHEELS"
}

# --- 3 + 4. images --------------------------------------------------------------------
# Everything that goes into the images: a change to any of it means a rebuild.
source_hash() {
  {
    cd "$REPO_ROOT"
    find Dockerfile .dockerignore pyproject.toml README.md service worker ci/image.sh -type f \
      ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    echo "$BASE_IMAGE $WHEEL_KEY $DRIVER"
  } | sha 16
}

# write_fault_files DIR KIND: the files a fault image adds. The `worker` package under
# /opt/memstack-fault shadows the real one (PYTHONPATH), so `python -m worker` and
# `memstack worker` run it; /opt/venv/bin/uvicorn is replaced. Nothing else changes.
write_fault_files() {
  local dir=$1 kind=$2
  mkdir -p "$dir/fault/worker"
  printf '"""Fault-injection image (%s): replaces the worker; see main.py."""\n' "$kind" \
    >"$dir/fault/worker/__init__.py"
  cat >"$dir/fault/worker/__main__.py" <<'PY'
import sys

from worker.main import main

sys.exit(main())
PY
  if [ "$kind" = crash ]; then
    cat >"$dir/fault/worker/main.py" <<'PY'
"""Fault-injection image (crash): the worker exits with status 1 at start."""

import sys


def main() -> int:
    print("memstack fault image (crash): the worker exits at start", file=sys.stderr)
    return 1


def run_worker(_settings: object = None) -> int:
    return main()
PY
    cat >"$dir/uvicorn" <<'SH'
#!/bin/sh
# Fault-injection image (crash): the API exits with status 1 at start.
echo "memstack fault image (crash): the API exits at start" >&2
exit 1
SH
  else
    cat >"$dir/fault/worker/main.py" <<PY
"""Fault-injection image (never-ready): the worker stays up and never writes its heartbeat
($HEARTBEAT_FILE), so its probes never pass."""

import signal
import sys
import time


def main() -> int:
    print("memstack fault image (never-ready): the worker idles without a heartbeat", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


def run_worker(_settings: object = None) -> int:
    return main()
PY
    cat >"$dir/uvicorn" <<'PY'
#!/opt/venv/bin/python
"""Fault-injection image (never-ready): stands in for uvicorn. Serves /health with 200, so the
pod stays up (startup and liveness probes pass), and everything else, /ready included, with 503."""

import argparse
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        alive = self.path.split("?", 1)[0] == "/health"
        body = b'{"status":"ok"}' if alive else b'{"status":"not ready","reason":"fault image"}'
        self.send_response(200 if alive else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args, _ = parser.parse_known_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("memstack fault image (never-ready): /ready never answers 200", file=sys.stderr, flush=True)
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


main()
PY
  fi
  # The broken release also ships a newer schema (expand-only, as every migration must be),
  # so its hook really migrates ahead and a rollback must run on a schema newer than its code.
  mkdir -p "$dir/migrations"
  cat >"$dir/migrations/$FAULT_MIGRATION" <<'SQL'
-- Fault-injection images: the next release's (expand-only) schema change.
ALTER TABLE episodes ADD COLUMN IF NOT EXISTS fault_release_note text;
SQL
  chmod 0755 "$dir/uvicorn"
  chmod -R a+rX "$dir/fault" "$dir/migrations"
}

build_fault_image() {  # build_fault_image KIND TARGET
  local kind=$1 target=$2 dir c
  dir="$(mktemp -d)"
  write_fault_files "$dir" "$kind"
  new_container "$IMAGE"
  c=$CTR
  buildah copy --quiet --chown 0:0 "$c" "$dir/fault" /opt/memstack-fault >/dev/null
  buildah copy --quiet --chown 0:0 "$c" "$dir/uvicorn" /opt/venv/bin/uvicorn >/dev/null
  buildah copy --quiet --chown 0:0 "$c" "$dir/migrations/$FAULT_MIGRATION" \
    "/opt/venv/lib/python3.11/site-packages/service/stores/migrations/$FAULT_MIGRATION" >/dev/null
  buildah config --env PYTHONPATH=/opt/memstack-fault --label "org.memstack.fault=$kind" "$c"
  buildah commit --quiet --rm "$c" "$target" >/dev/null
  rm -rf "$dir"
}

archive_name() { echo "$IMAGE_DIR/memstack-${1##*:}.oci.tar"; }

# --- 5. smoke test ---------------------------------------------------------------------
# As the chart runs it: uid 10001, no network, runc.
run_in() {  # run_in CONTAINER CMD...
  local c=$1
  shift
  buildah run --runtime "$RUNC" --isolation oci --network none --user 10001:10001 "$c" -- "$@"
}
# expect CODE TEXT CONTAINER CMD...: CMD exits with CODE and its output contains TEXT.
expect() {
  local want=$1 text=$2 rc=0 out
  shift 2
  out="$(run_in "$@" 2>&1)" || rc=$?
  if [ "$rc" -ne "$want" ] || [[ "$out" != *"$text"* ]]; then
    printf '%s\n' "$out" | tail -5 >&2
    die "smoke test: '${*:2}' exited $rc (expected $want) and printed the above (expected '$text')"
  fi
}
UVICORN_CMD=(uvicorn service.app:create_app --factory --host 0.0.0.0 --port 8000
  --timeout-graceful-shutdown 5 --no-proxy-headers)
# Without a database, the real migration command fails on connecting to PostgreSQL: that it
# gets that far shows the command is the real one.
MIGRATE_TEXT="migrate failed: PostgreSQL"

smoke_test() {
  log "smoke test [${SECONDS}s]"
  local c
  new_container "$IMAGE"
  c=$CTR
  run_in "$c" python -c 'import service.app, service.cli, worker.main, litestar, uvicorn, uvloop, httptools
import neo4j, psycopg, psycopg_binary, psycopg_pool, redis, hiredis, rq, msgspec, prometheus_client, opentelemetry.sdk
import sys; assert sys.version_info[:2] == (3, 11), sys.version' >&2 \
    || die "smoke test: the image cannot import the service and its dependencies"
  expect 0 "usage: memstack" "$c" memstack --help
  expect 0 10001 "$c" id -u
  expect 1 "$MIGRATE_TEXT" "$c" memstack migrate

  new_container "$CRASH_IMAGE"
  c=$CTR
  expect 1 "fault image (crash)" "$c" "${UVICORN_CMD[@]}"
  expect 1 "fault image (crash)" "$c" python -m worker
  expect 1 "fault image (crash)" "$c" memstack worker
  expect 1 "$MIGRATE_TEXT" "$c" memstack migrate

  new_container "$NEVER_READY_IMAGE"
  c=$CTR
  expect 1 "$MIGRATE_TEXT" "$c" memstack migrate
  run_in "$c" python - "$HEARTBEAT_FILE" "${UVICORN_CMD[@]}" >&2 <<'PY' || die "smoke test: the never-ready image misbehaves"
import os, subprocess, sys, time, urllib.error, urllib.request

heartbeat, api_cmd = sys.argv[1], sys.argv[2:]
api = subprocess.Popen(api_cmd)
worker = subprocess.Popen(["python", "-m", "worker"])


def status(path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:8000" + path, timeout=1) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


deadline = time.monotonic() + 15
while status("/health") != 200:
    assert time.monotonic() < deadline, "the API never answered /health"
    time.sleep(0.2)
assert status("/ready") == 503, status("/ready")
time.sleep(2)
assert api.poll() is None and worker.poll() is None, "a process exited"
assert not os.path.exists(heartbeat), "the worker wrote a heartbeat"
for p in (api, worker):
    p.terminate()
    p.wait(10)
PY
  log "smoke test passed"
}

# --- main -----------------------------------------------------------------------------
build_all() {
  build_base
  build_wheelhouse
  local hash stamp="$IMAGE_DIR/.build-hash" ref
  hash="$(source_hash)"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ] && [ -f "$IMAGE_DIR/images.env" ] \
    && image_exists "$IMAGE" && image_exists "$CRASH_IMAGE" && image_exists "$NEVER_READY_IMAGE"; then
    log "up to date: $IMAGE, $CRASH_IMAGE, $NEVER_READY_IMAGE ($hash)"
    return 0
  fi
  rm -f "$stamp"
  log "building $IMAGE on $BASE_IMAGE (offline, $DRIVER storage) [${SECONDS}s]"
  nice -n 10 buildah bud --quiet --pull-never --isolation oci --runtime "$RUNC" --network none \
    --build-arg "PYTHON_IMAGE=$BASE_IMAGE" \
    --build-arg PIP_NO_INDEX=1 \
    --build-arg PIP_FIND_LINKS=/wheels \
    --volume "$WHEELS:/wheels:ro" \
    --file "$REPO_ROOT/Dockerfile" --tag "$IMAGE" "$REPO_ROOT" >&2 || die "buildah bud failed"
  build_fault_image crash "$CRASH_IMAGE"
  build_fault_image never-ready "$NEVER_READY_IMAGE"
  smoke_test
  for ref in "$IMAGE" "$CRASH_IMAGE" "$NEVER_READY_IMAGE"; do
    log "exporting $ref to $(archive_name "$ref") [${SECONDS}s]"
    rm -f "$(archive_name "$ref")"
    nice -n 10 buildah push --quiet "$ref" "oci-archive:$(archive_name "$ref"):$ref" >&2
  done
  cat >"$IMAGE_DIR/images.env.partial" <<EOF
# Written by ci/image.sh: the images it built and their OCI archives (ctr -n k8s.io images import FILE).
MEMSTACK_IMAGE_REPOSITORY=$REPO_NAME
MEMSTACK_IMAGE_TAG=$TAG
MEMSTACK_IMAGE=$IMAGE
MEMSTACK_IMAGE_CRASH=$CRASH_IMAGE
MEMSTACK_IMAGE_NEVER_READY=$NEVER_READY_IMAGE
MEMSTACK_IMAGE_ARCHIVE=$(archive_name "$IMAGE")
MEMSTACK_IMAGE_CRASH_ARCHIVE=$(archive_name "$CRASH_IMAGE")
MEMSTACK_IMAGE_NEVER_READY_ARCHIVE=$(archive_name "$NEVER_READY_IMAGE")
EOF
  mv "$IMAGE_DIR/images.env.partial" "$IMAGE_DIR/images.env"
  # Images of earlier builds (now untagged) and leftovers of failed ones.
  buildah rmi --prune >/dev/null 2>&1 || true
  echo "$hash" >"$stamp"
  log "built in ${SECONDS}s; image size $(buildah images --format '{{.Size}}' "$IMAGE"), archives $(du -ch "$IMAGE_DIR"/*.oci.tar | tail -1 | cut -f1)"
}

case "${1:-build}" in
  build) build_all ;;
  check)
    image_exists "$IMAGE" || die "$IMAGE is not built: run ci/image.sh first"
    smoke_test
    ;;
  *) die "usage: ci/image.sh [build|check]" ;;
esac
echo "$IMAGE_DIR"
