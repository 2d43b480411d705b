#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, without Docker:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler (built by ci/e2e/build.sh)
#   and kwok, which plays the kubelet for a few fake nodes (pods become Running/Ready,
#   Job pods complete; no container ever runs).
#
# Usage: ci/e2e/cluster.sh up|down|status|env
#   up      generate PKI + kubeconfig, start everything, wait for readiness (fails with a
#           clear message and stops what it started on any error)
#   down    stop exactly the PIDs that `up` recorded (TERM, then KILL after a grace period)
#   status  show each component's PID/health and the nodes
#   env     print `export KUBECONFIG=...` for the running cluster
#
# For the real node (ci/e2e/node.sh) the same control plane runs with E2E_CLUSTER_NAME=node,
# E2E_APISERVER_ADDRESS=<the node bridge's address> (pods reach it through the `kubernetes`
# Service), E2E_SERVICE_CIDR/E2E_APISERVER_SERVICE_IP in the node's private range, the lease
# endpoint reconciler, and E2E_NODES="" (no kwok nodes unless asked for).
#
# State (certificates, etcd data, logs, pid files, kubeconfig) lives in
# ${MEMSTACK_STATE_DIR:-.state}/e2e/ (git-ignored). Ports (all 127.0.0.1, non-default):
#   etcd 23790/23800, kube-apiserver 26443, controller-manager 20257, scheduler 20259, kwok 20247.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=ci/lib.sh
source "$here/../lib.sh"
LOG_PREFIX=e2e-cluster
# shellcheck source=ci/e2e/versions.sh
source "$here/versions.sh"

S="$STATE_DIR/${E2E_CLUSTER_NAME:-e2e}"
PKI="$S/pki"
LOGS="$S/logs"
PIDS="$S/pids"
KUBECONFIG_FILE="$S/kubeconfig"
BIN="${E2E_BIN_DIR}"

ETCD_PORT="${E2E_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${E2E_ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${E2E_APISERVER_PORT:-26443}"
KCM_PORT="${E2E_KCM_PORT:-20257}"
SCHED_PORT="${E2E_SCHED_PORT:-20259}"
KWOK_PORT="${E2E_KWOK_PORT:-20247}"
read -r -a NODES <<<"${E2E_NODES-e2e-node-a e2e-node-b e2e-node-c}"
APISERVER_ADDRESS="${E2E_APISERVER_ADDRESS:-127.0.0.1}"
SERVICE_CIDR="${E2E_SERVICE_CIDR:-10.96.0.0/16}"
APISERVER_SERVICE_IP="${E2E_APISERVER_SERVICE_IP:-10.96.0.1}"
# A real kubelet registers itself as this node (its certificate is system:node:<name>).
REAL_NODE_NAME="${E2E_REAL_NODE_NAME:-memstack-node}"
REAL_NODE_IP="${E2E_REAL_NODE_IP:-$APISERVER_ADDRESS}"
START_TIMEOUT="${E2E_START_TIMEOUT:-120}"

# Order matters: `down` stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler)
((${#NODES[@]} == 0)) || COMPONENTS+=(kwok)


# --- process bookkeeping ---------------------------------------------------------
pid_of() { [[ -f "$PIDS/$1.pid" ]] && cat "$PIDS/$1.pid"; }

# True if the recorded PID is alive AND is still our binary (guards against PID reuse).
is_ours() {
  local name="$1" pid
  pid="$(pid_of "$name")" || return 1
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$BIN/$name " || return 1
}

start_proc() {
  local name="$1"; shift
  if is_ours "$name"; then die "$name already running (pid $(pid_of "$name")); run '$0 down' first"; fi
  log "starting $name (log: $LOGS/$name.log)"
  # setsid: its own process group, so a Ctrl-C of the caller does not race our shutdown.
  setsid "$BIN/$name" "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$PIDS/$name.pid"
  # Until setsid has exec'd the binary, /proc/<pid>/cmdline still shows this shell.
  local i
  for ((i = 0; i < 50; i++)); do
    is_ours "$name" && return 0
    kill -0 "$(pid_of "$name")" 2>/dev/null || break
    sleep 0.1
  done
  is_ours "$name" || { tail -n 25 "$LOGS/$name.log" >&2 || true; die "$name did not start"; }
}

stop_proc() {
  local name="$1" pid i
  pid="$(pid_of "$name")" || return 0
  if is_ours "$name"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      is_ours "$name" || break
      sleep 0.1
    done
    if is_ours "$name"; then
      log "$name (pid $pid) ignored SIGTERM for 10s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PIDS/$name.pid"
}

cmd_down() {
  local i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_proc "${COMPONENTS[i]}"; done
  # The cluster is disposable: next `up` starts from an empty etcd.
  rm -rf "$S/etcd-data"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name timeout command...
  local name="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! is_ours "$name"; then
      log "$name exited; last log lines:"; tail -n 25 "$LOGS/$name.log" >&2 || true
      die "$name did not start"
    fi
    if ((SECONDS >= deadline)); then
      log "$name not ready after ${timeout}s; last log lines:"; tail -n 25 "$LOGS/$name.log" >&2 || true
      die "timed out waiting for $name"
    fi
    sleep 0.5
  done
  log "$name ready"
}

# --- PKI ------------------------------------------------------------------------------
gen_pki() {
  mkdir -p "$PKI"
  [[ -f "$PKI/ca.crt" && -f "$PKI/admin.crt" && -f "$PKI/sa.pub" ]] && return 0
  log "generating CA, serving/client certificates and service-account keys (openssl)"
  (
    cd "$PKI"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.crt \
      -subj "/CN=memstack-e2e-ca" >/dev/null 2>&1
    cert() { # name subj extfile-content
      local name="$1" subj="$2" ext="$3"
      openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$name.key" -out "$name.csr" -subj "$subj" >/dev/null 2>&1
      printf '%s\n' "$ext" > "$name.ext"
      openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
        -extfile "$name.ext" -out "$name.crt" >/dev/null 2>&1
      rm -f "$name.csr" "$name.ext"
    }
    local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:${APISERVER_ADDRESS},IP:${APISERVER_SERVICE_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    cert admin "/O=system:masters/CN=memstack-e2e-admin" "$client"
    cert kube-controller-manager "/CN=system:kube-controller-manager" "$client"
    cert kube-scheduler "/CN=system:kube-scheduler" "$client"
    # kwok plays every kubelet; it needs to write node and pod status for all nodes.
    cert kwok "/O=system:masters/CN=memstack-e2e-kwok" "$client"
    # The real node: the kubelet's client (Node authorizer) and serving certificates,
    # kube-proxy's client, and the API server's client for kubelet logs/exec.
    cert kubelet "/O=system:nodes/CN=system:node:${REAL_NODE_NAME}" "$client"
    cert kubelet-serving "/CN=${REAL_NODE_NAME}" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:${REAL_NODE_IP},DNS:${REAL_NODE_NAME}"
    cert kube-proxy "/CN=system:kube-proxy" "$client"
    cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
    openssl genrsa -out sa.key 2048 >/dev/null 2>&1
    openssl rsa -in sa.key -pubout -out sa.pub >/dev/null 2>&1
    chmod 644 ./*.crt sa.pub
  )
}

write_kubeconfig() { # file user
  local file="$1" user="$2"
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: memstack-e2e
  cluster:
    server: https://${APISERVER_ADDRESS}:${APISERVER_PORT}
    certificate-authority: ${PKI}/ca.crt
users:
- name: ${user}
  user:
    client-certificate: ${PKI}/${user}.crt
    client-key: ${PKI}/${user}.key
contexts:
- name: memstack-e2e
  context: {cluster: memstack-e2e, user: ${user}}
current-context: memstack-e2e
EOF
  chmod 600 "$file"
}

apicurl() { # path
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://${APISERVER_ADDRESS}:${APISERVER_PORT}$1"
}

kubectl_e2e() {
  local k="${E2E_KUBECTL:-}"
  [[ -n "$k" ]] || k="$(command -v kubectl || true)"
  [[ -n "$k" ]] || die "kubectl not found (set E2E_KUBECTL)"
  "$k" --kubeconfig "$KUBECONFIG_FILE" "$@"
}

create_nodes() {
  local i=0 n zone
  for n in "${NODES[@]}"; do
    zone="e2e-zone-$((i % 2))"; i=$((i + 1))
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: ${n}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: ${n}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node-role.kubernetes.io/worker: ""
    topology.kubernetes.io/zone: ${zone}
    type: kwok
spec: {}
status:
  allocatable: {cpu: "32", memory: 128Gi, pods: "110", ephemeral-storage: 100Gi}
  capacity: {cpu: "32", memory: 128Gi, pods: "110", ephemeral-storage: 100Gi}
EOF
  done
}

nodes_ready() {
  local ready
  ready="$(kubectl_e2e get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$' || true)"
  [[ "$ready" -eq "${#NODES[@]}" ]]
}

default_sa_exists() { kubectl_e2e -n default get serviceaccount default; }

cmd_up() {
  local b
  for b in "${COMPONENTS[@]}"; do
    [[ -x "$BIN/$b" ]] || die "$BIN/$b missing: run ci/e2e/build.sh first"
  done
  command -v openssl >/dev/null || die "openssl is required"
  command -v curl >/dev/null || die "curl is required"
  for b in "${COMPONENTS[@]}"; do
    if is_ours "$b"; then die "$b is already running (pid $(pid_of "$b")): run '$0 down' first"; fi
  done
  local p
  for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHED_PORT" "$KWOK_PORT"; do
    port_free "$p" || die "port 127.0.0.1:$p is in use (another cluster? set E2E_*_PORT)"
  done

  mkdir -p "$S" "$LOGS" "$PIDS"
  # From here on any failure stops whatever this run started.
  trap 'rc=$?; if ((rc != 0)); then log "startup failed (rc=$rc): stopping what was started"; cmd_down; fi' EXIT

  gen_pki
  write_kubeconfig "$KUBECONFIG_FILE" admin
  write_kubeconfig "$S/kube-controller-manager.kubeconfig" kube-controller-manager
  write_kubeconfig "$S/kube-scheduler.kubeconfig" kube-scheduler
  write_kubeconfig "$S/kwok.kubeconfig" kwok
  rm -rf "$S/etcd-data"

  start_proc etcd \
    --name e2e --data-dir "$S/etcd-data" \
    --listen-client-urls "http://127.0.0.1:${ETCD_PORT}" --advertise-client-urls "http://127.0.0.1:${ETCD_PORT}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORT}" \
    --initial-cluster "e2e=http://127.0.0.1:${ETCD_PEER_PORT}" \
    --listen-metrics-urls "" --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn
  wait_for etcd "$START_TIMEOUT" curl -fsS --max-time 2 "http://127.0.0.1:${ETCD_PORT}/health"

  # `kubernetes.default` needs endpoints only when real pods talk to the API server.
  local reconciler=none
  [[ "$APISERVER_ADDRESS" == 127.0.0.1 ]] || reconciler=lease
  start_proc kube-apiserver \
    --etcd-servers "http://127.0.0.1:${ETCD_PORT}" \
    --bind-address "$APISERVER_ADDRESS" --advertise-address "$APISERVER_ADDRESS" --secure-port "$APISERVER_PORT" \
    --cert-dir "$PKI" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer "https://kubernetes.default.svc.cluster.local" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --authorization-mode Node,RBAC --allow-privileged=true --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --endpoint-reconciler-type "$reconciler" --profiling=false --v=1
  wait_for kube-apiserver "$START_TIMEOUT" apicurl /readyz

  start_proc kube-controller-manager \
    --kubeconfig "$S/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$S/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$S/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$S/kcm-certs" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --use-service-account-credentials=true --leader-elect=false \
    --controllers '*,-cloud-node-lifecycle-controller' --node-monitor-grace-period 60s \
    --horizontal-pod-autoscaler-sync-period 5s \
    --concurrent-deployment-syncs 10 --concurrent-replicaset-syncs 10 \
    --profiling=false --v=1
  start_proc kube-scheduler \
    --kubeconfig "$S/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$S/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$S/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --cert-dir "$S/scheduler-certs" \
    --leader-elect=false --profiling=false --v=1
  if ((${#NODES[@]} > 0)); then start_proc kwok \
    --kubeconfig "$S/kwok.kubeconfig" --config "$here/kwok-stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --server-address "127.0.0.1:${KWOK_PORT}" --node-ip 127.0.0.1 --node-port "$KWOK_PORT" \
    --cidr 10.244.0.1/16 --node-lease-duration-seconds 40; fi
  wait_for kube-controller-manager "$START_TIMEOUT" curl -fsSk --max-time 2 "https://127.0.0.1:${KCM_PORT}/healthz"
  wait_for kube-scheduler "$START_TIMEOUT" curl -fsSk --max-time 2 "https://127.0.0.1:${SCHED_PORT}/healthz"

  if ((${#NODES[@]} > 0)); then
    create_nodes | kubectl_e2e apply -f - >/dev/null
    wait_for kwok "$START_TIMEOUT" nodes_ready
  fi
  # Namespaces only become usable once the service-account controller has run.
  wait_for kube-controller-manager "$START_TIMEOUT" default_sa_exists

  trap - EXIT
  write_kubeconfig "$S/kubelet.kubeconfig" kubelet
  write_kubeconfig "$S/kube-proxy.kubeconfig" kube-proxy
  log "cluster up: Kubernetes v${E2E_K8S_VERSION}, ${#NODES[@]} kwok nodes"
  log "export KUBECONFIG=$KUBECONFIG_FILE"
}

cmd_status() {
  local b rc=0
  for b in "${COMPONENTS[@]}"; do
    if is_ours "$b"; then printf '%-24s running (pid %s)\n' "$b" "$(pid_of "$b")"
    else printf '%-24s stopped\n' "$b"; rc=1; fi
  done
  if is_ours kube-apiserver; then
    printf '%-24s %s\n' "apiserver /readyz" "$(apicurl /readyz 2>&1 | tail -n1)"
    kubectl_e2e get nodes -o wide || true
  fi
  return "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_FILE" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
