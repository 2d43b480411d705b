#!/usr/bin/env bash
# A real Kubernetes node on this machine: containerd + runc, CNI bridge/host-local/portmap,
# kubelet and kube-proxy (nftables mode) built from the control plane's Kubernetes version,
# CoreDNS as a Deployment, and the databases of the local stack published on the node's
# bridge address, as an operator's managed services would be.
#
# Usage: ci/e2e/node.sh net-up|up|down|down-node|net-down|status
#   net-up  the node's bridge, its routes and the guard table (before the control plane
#           starts: the API server listens on the bridge address so pods can reach it)
#   up      containerd, images, kubelet, kube-proxy, CoreDNS, database forwarders
#   down    everything `net-up` and `up` did, undone in reverse and by PID: forwarders,
#           kube-proxy and its table, kubelet, every container of our containerd, the
#           shims, containerd, mounts, network namespaces, cgroups, the bridge, sysctls.
#           Safe to run at any time, also after a killed run. `down-node` and `net-down`
#           are its two halves (the control plane stops between them).
#
# Every packet stays on this machine. Pods live on 198.18.0.0/24 (RFC 2544 benchmarking
# range, never the machine's network) behind the bridge at 198.18.0.1, services on
# 198.18.1.0/24; pods get no default route, nothing is masqueraded, the service range is
# routed onto the bridge, and a guard table drops anything for 198.18.0.0/15 that would
# leave through any other interface.
#
# Env: E2E_IMAGE_DIR (OCI archives to import, from ci/image.sh), E2E_NODE_DB_PORTS
# ("5432 6379 7687": loopback ports published on the bridge address).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=ci/lib.sh
source "$here/../lib.sh"
LOG_PREFIX=e2e-node
# shellcheck source=ci/e2e/versions.sh
source "$here/versions.sh"
# shellcheck source=ci/e2e/node.env
source "$here/node.env"

S="$STATE_DIR/$E2E_CLUSTER_NAME"
N="$S/node"
PKI="$S/pki"
LOGS="$N/logs"
PIDS="$N/pids"
# Unix sockets: short fixed paths (a deep checkout would overflow sun_path's 108 bytes).
RUN_DIR="/run/memstack-node"
SOCK="$RUN_DIR/containerd.sock"
# containerd's content store and snapshots survive runs: re-importing an unchanged image
# is then quick. Everything that runs lives in CTR_STATE and goes with `down`.
CTR_ROOT="$E2E_CACHE_ROOT/containerd-root"
CTR_STATE="$RUN_DIR/state"
KUBELET_ROOT="$N/kubelet"
CGROUP_ROOT="/memstack-node"
BIN="$E2E_BIN_DIR"
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory kernel.panic kernel.panic_on_oops)


ctr_() { ctr --address "$SOCK" -n k8s.io "$@"; }
kubectl_() {
  local k="${E2E_KUBECTL:-}"
  [[ -n "$k" ]] || k="$(command -v kubectl)"
  "$k" --kubeconfig "$S/kubeconfig" "$@"
}

# --- processes, by PID file, checked against the command line (PID reuse) -------------
pid_of() { [[ -f "$PIDS/$1.pid" ]] && cat "$PIDS/$1.pid"; }
alive() { # name pattern
  local pid
  pid="$(pid_of "$1")" || return 1
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}
start_bg() { # name pattern cmd...
  local name="$1" pattern="$2"
  shift 2
  alive "$name" "$pattern" && die "$name already running (pid $(pid_of "$name")): run '$0 down' first"
  log "starting $name (log: $LOGS/$name.log)"
  setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}
stop_bg() { # name pattern [grace seconds]
  local name="$1" pattern="$2" grace="${3:-15}" pid i
  pid="$(pid_of "$name")" || return 0
  if alive "$name" "$pattern"; then
    log "stopping $name (pid $pid)"
    # setsid made it a process-group leader: the group also holds its children (socat's forks).
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do alive "$name" "$pattern" || break; sleep 0.1; done
    alive "$name" "$pattern" && { log "$name ignored SIGTERM: SIGKILL"; kill -KILL -- "-$pid" 2>/dev/null || true; }
  fi
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$PIDS/$name.pid"
}
wait_cmd() { # what timeout cmd...
  local what="$1" deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { log "timed out waiting for $what"; return 1; }
    sleep 0.5
  done
}

# --- network ---------------------------------------------------------------------------
save_sysctls() {
  # Kept from the first run that changed them: a killed run must not make its own values
  # the ones to restore.
  [[ -f "$N/sysctl.saved" ]] && return 0
  local k
  for k in "${SYSCTLS[@]}"; do
    [[ -e "/proc/sys/${k//.//}" ]] && printf '%s=%s\n' "$k" "$(sysctl -n "$k")"
  done >"$N/sysctl.saved"
}
restore_sysctls() {
  [[ -f "$N/sysctl.saved" ]] || return 0
  local line
  while IFS= read -r line; do sysctl -q -w "$line" >/dev/null || log "could not restore $line"; done <"$N/sysctl.saved"
  rm -f "$N/sysctl.saved"
  log "sysctls restored"
}

cmd_net_up() {
  mkdir -p "$N" "$LOGS" "$PIDS"
  save_sysctls
  if ! ip link show "$E2E_BRIDGE" >/dev/null 2>&1; then
    ip link add "$E2E_BRIDGE" type bridge
  fi
  ip addr replace "$E2E_NODE_IP/${E2E_POD_CIDR#*/}" dev "$E2E_BRIDGE"
  ip link set "$E2E_BRIDGE" up
  # An address kube-proxy has not programmed yet still goes to the bridge, never eth0.
  ip route replace "$E2E_SERVICE_CIDR" dev "$E2E_BRIDGE" src "$E2E_NODE_IP"
  nft -f - <<EOF
table inet memstack_node_guard
delete table inet memstack_node_guard
table inet memstack_node_guard {
  chain output {
    type filter hook output priority 0; policy accept;
    ip daddr $E2E_GUARD_RANGE oifname != { "$E2E_BRIDGE", "lo" } counter drop
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname "$E2E_BRIDGE" oifname != "$E2E_BRIDGE" counter drop
    ip daddr $E2E_GUARD_RANGE oifname != "$E2E_BRIDGE" counter drop
    ip saddr $E2E_GUARD_RANGE oifname != "$E2E_BRIDGE" counter drop
  }
}
EOF
  # Routed pod-to-service traffic, and bridged replies that must meet conntrack's un-DNAT.
  sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 >/dev/null
  log "bridge $E2E_BRIDGE $E2E_NODE_IP, pods $E2E_POD_CIDR, services $E2E_SERVICE_CIDR (guarded)"
}

cmd_net_down() {
  ip route del "$E2E_SERVICE_CIDR" dev "$E2E_BRIDGE" 2>/dev/null || true
  ip link del "$E2E_BRIDGE" 2>/dev/null && log "bridge $E2E_BRIDGE removed" || true
  nft delete table inet memstack_node_guard 2>/dev/null || true
  restore_sysctls
}

# --- the databases, as managed services ---------------------------------------------------
# Plain: the local stack's servers, forwarded from the bridge address (ports as on loopback).
# TLS, for values that ask for it: a CA of the node's own and a certificate for the bridge
# address, what an operator of managed databases hands out; a PostgreSQL and a Redis of their
# own serving TLS themselves on the bridge address (and loopback, for the tests' checks), and
# Neo4j behind a TLS listener on the bridge address (its TLS port speaks TLS from the first
# byte, so a terminator in front of the loopback server is what a client meets there).
TLS_PG_PORT="${E2E_NODE_TLS_PG_PORT:-15432}"
TLS_REDIS_PORT="${E2E_NODE_TLS_REDIS_PORT:-16379}"
TLS_NEO4J_PORT="${E2E_NODE_TLS_NEO4J_PORT:-17687}"
TLS_STATE="$N/tls-servers"

gen_db_tls() {
  local d="$N/db-tls"
  [[ -f "$d/server.crt" ]] && return 0
  mkdir -p "$d"
  (
    cd "$d"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -keyout ca.key -out ca.crt \
      -subj "/CN=memstack-node-db-ca" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout server.key -out server.csr \
      -subj "/CN=$E2E_NODE_IP" >/dev/null 2>&1
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:$E2E_NODE_IP,IP:127.0.0.1" >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 30 \
      -extfile server.ext -out server.crt >/dev/null 2>&1
    rm -f server.csr server.ext
    chmod 644 ca.crt server.crt server.key
  )
  log "database TLS: CA and server certificate for $E2E_NODE_IP in $d"
}

tls_server() { # postgres|redis start|stop
  local d="$N/db-tls"
  MEMSTACK_STATE_DIR="$TLS_STATE" \
    POSTGRES_PORT="$TLS_PG_PORT" POSTGRES_LISTEN_ADDRESSES="$E2E_NODE_IP,127.0.0.1" \
    POSTGRES_CLIENT_CIDRS="$E2E_POD_CIDR" POSTGRES_TLS_CERT_FILE="$d/server.crt" POSTGRES_TLS_KEY_FILE="$d/server.key" \
    REDIS_PORT="$TLS_REDIS_PORT" REDIS_BIND="$E2E_NODE_IP 127.0.0.1" \
    REDIS_TLS_CERT_FILE="$d/server.crt" REDIS_TLS_KEY_FILE="$d/server.key" REDIS_TLS_CA_FILE="$d/ca.crt" \
    bash "$REPO_ROOT/ci/$1.sh" "$2" >&2
}

start_databases() {
  local port
  for port in ${E2E_NODE_DB_PORTS:-5432 6379 7687}; do
    start_bg "forward-$port" "TCP-LISTEN:$port,bind=$E2E_NODE_IP" \
      socat "TCP-LISTEN:$port,bind=$E2E_NODE_IP,fork,reuseaddr" "TCP:127.0.0.1:$port"
  done
  gen_db_tls
  mkdir -p "$TLS_STATE"
  tls_server postgres start
  tls_server redis start
  start_bg tls-neo4j "OPENSSL-LISTEN:$TLS_NEO4J_PORT,bind=$E2E_NODE_IP" \
    socat "OPENSSL-LISTEN:$TLS_NEO4J_PORT,bind=$E2E_NODE_IP,fork,reuseaddr,cert=$N/db-tls/server.crt,key=$N/db-tls/server.key,verify=0" \
    "TCP:127.0.0.1:${NEO4J_BOLT_PORT:-7687}"
}

stop_databases() {
  local port
  for port in ${E2E_NODE_DB_PORTS:-5432 6379 7687}; do stop_bg "forward-$port" "TCP-LISTEN:$port,bind=$E2E_NODE_IP" 5; done
  stop_bg tls-neo4j "OPENSSL-LISTEN:$TLS_NEO4J_PORT,bind=$E2E_NODE_IP" 5
  if [[ -d "$TLS_STATE" ]]; then
    tls_server redis stop || true
    tls_server postgres stop || true
  fi
}

# --- configuration files -----------------------------------------------------------------
write_configs() {
  mkdir -p "$N/cni/net.d" "$N/cni/ipam" "$CTR_ROOT" "$RUN_DIR" "$KUBELET_ROOT" "$N/pod-logs"
  cat >"$N/containerd.toml" <<EOF
version = 2
root = "$CTR_ROOT"
state = "$CTR_STATE"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.grpc.v1.introspection.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTR_ROOT/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$E2E_PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to start.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$N/cni/net.d"
    max_conf_num = 1
EOF
  # No default route in pods: only the node's private range, through the bridge.
  cat >"$N/cni/net.d/10-memstack.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "memstack-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$E2E_BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$N/cni/ipam",
        "ranges": [[{"subnet": "$E2E_POD_CIDR", "rangeStart": "$E2E_POD_RANGE_START", "gateway": "$E2E_NODE_IP"}]],
        "routes": [{"dst": "$E2E_GUARD_RANGE"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": false}
  ]
}
EOF
  local mem_reserved="${E2E_NODE_MEMORY_RESERVED:-14Gi}" cpu_reserved="${E2E_NODE_CPU_RESERVED:-250m}"
  cat >"$N/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 here (deprecated for 1.36, still supported when asked for).
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
# Root here cannot lower oom_score_adj.
oomScoreAdj: 0
makeIPTablesUtilChains: false
containerRuntimeEndpoint: unix://$SOCK
podLogsDir: $N/pod-logs
resolvConf: ""
clusterDNS: [$E2E_DNS_IP]
clusterDomain: cluster.local
address: $E2E_NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
# The tests and the databases need most of the machine: pods get what is left.
systemReserved: {cpu: "$cpu_reserved", memory: $mem_reserved}
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
# Images are imported, never pulled: keep them all (the pause image included).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 60
failSwapOn: false
registerNode: true
nodeStatusReportFrequency: 10s
syncFrequency: 10s
EOF
  cat >"$N/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $S/kube-proxy.kubeconfig}
hostnameOverride: $E2E_NODE_NAME
bindAddress: $E2E_NODE_IP
clusterCIDR: $E2E_POD_CIDR
detectLocalMode: ClusterCIDR
nodePortAddresses: ["$E2E_NODE_IP/32"]
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# Leave the machine's conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# --- images ----------------------------------------------------------------------------------
import_images() {
  local img="$N/images"
  mkdir -p "$img"
  python3 "$here/oci_image.py" "$img/pause.tar" "$E2E_PAUSE_IMAGE" /pause "$BIN/pause=/pause"
  python3 "$here/oci_image.py" "$img/coredns.tar" "$E2E_COREDNS_IMAGE" /coredns "$BIN/coredns=/coredns"
  local f
  for f in "$img/pause.tar" "$img/coredns.tar"; do ctr_ images import "$f" >/dev/null; done
  if [[ -n "${E2E_IMAGE_DIR:-}" ]]; then
    for f in "$E2E_IMAGE_DIR"/*.tar; do
      [[ -e "$f" ]] || continue
      log "importing $(basename "$f")"
      ctr_ images import --no-unpack=false "$f" >/dev/null
    done
  fi
  log "images: $(ctr_ images ls -q | grep -v '^sha256:' | tr '\n' ' ')"
}

# --- CoreDNS ------------------------------------------------------------------------------------
coredns_manifests() {
  cat <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: system:coredns}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: system:coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:coredns}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # No forward: there is nothing outside this machine to ask.
  Corefile: |
    .:1053 {
        errors
        health {
            lameduck 5s
        }
        ready
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        cache 30
        loop
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      securityContext:
        runAsNonRoot: true
        runAsUser: 65535
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: coredns
        image: $E2E_COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        resources:
          requests: {cpu: 10m, memory: 32Mi}
          limits: {memory: 128Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 5
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $E2E_DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
}

# The kubelet wants its cgroupRoot to exist in every hierarchy; a new cpuset starts empty.
make_cgroups() {
  local sub
  for sub in /sys/fs/cgroup/*/; do
    [[ "$sub" == */unified/ ]] && continue
    mkdir -p "$sub${CGROUP_ROOT#/}"
  done
  local cs="/sys/fs/cgroup/cpuset"
  if [[ -d "$cs${CGROUP_ROOT}" ]]; then
    cat "$cs/cpuset.cpus" >"$cs${CGROUP_ROOT}/cpuset.cpus"
    cat "$cs/cpuset.mems" >"$cs${CGROUP_ROOT}/cpuset.mems"
  fi
}

node_ready() {
  [[ "$(kubectl_ get node "$E2E_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

on_failed_up() {
  (($1 == 0)) && return 0
  log "node start failed (rc=$1): tearing down"
  cmd_down_node
}

cmd_up() {
  local b
  for b in kubelet kube-proxy coredns pause; do [[ -x "$BIN/$b" ]] || die "$BIN/$b missing: run ci/e2e/build.sh"; done
  for b in containerd runc ctr nft socat; do command -v "$b" >/dev/null || die "$b missing (Debian packages: containerd runc nftables socat)"; done
  [[ -f "$S/kubelet.kubeconfig" ]] || die "no kubelet kubeconfig: start the control plane first (ci/e2e/cluster.sh up)"
  ip link show "$E2E_BRIDGE" >/dev/null 2>&1 || die "no bridge $E2E_BRIDGE: run '$0 net-up' first"
  mkdir -p "$LOGS" "$PIDS"
  trap 'on_failed_up $?' EXIT
  write_configs

  start_bg containerd "containerd --config $N/containerd.toml" containerd --config "$N/containerd.toml"
  wait_cmd containerd 60 ctr_ version || { tail -n 30 "$LOGS/containerd.log" >&2; die "containerd did not start"; }
  import_images

  make_cgroups
  # --containerd: the kubelet's cAdvisor asks containerd for each cgroup's pod and container
  # names; without our socket /metrics/cadvisor carries no pod/container labels.
  start_bg kubelet "$BIN/kubelet" "$BIN/kubelet" --config "$N/kubelet.yaml" \
    --kubeconfig "$S/kubelet.kubeconfig" --root-dir "$KUBELET_ROOT" \
    --hostname-override "$E2E_NODE_NAME" --node-ip "$E2E_NODE_IP" \
    --containerd "$SOCK" \
    --node-labels "topology.kubernetes.io/zone=$E2E_NODE_ZONE,memstack.dev/real-node=true" --v=1
  wait_cmd "node $E2E_NODE_NAME Ready" 120 node_ready || { tail -n 40 "$LOGS/kubelet.log" >&2; die "kubelet did not register a Ready node"; }

  start_bg kube-proxy "$BIN/kube-proxy" "$BIN/kube-proxy" --config "$N/kube-proxy.yaml" --v=1
  wait_cmd kube-proxy 60 curl -fsS --max-time 2 http://127.0.0.1:10256/healthz \
    || { tail -n 30 "$LOGS/kube-proxy.log" >&2; die "kube-proxy did not become healthy"; }

  coredns_manifests | kubectl_ apply -f - >/dev/null
  kubectl_ -n kube-system rollout status deploy/coredns --timeout 120s >&2 \
    || { kubectl_ -n kube-system describe pods -l k8s-app=kube-dns >&2; die "CoreDNS did not become ready"; }

  start_databases
  trap - EXIT
  log "node $E2E_NODE_NAME Ready (kubelet, kube-proxy, CoreDNS at $E2E_DNS_IP)"
}

# Network namespaces of our pods: under our containerd state, plus any left by a killed run.
our_netns() {
  find "$CTR_STATE" -path '*/netns/*' -type f 2>/dev/null || true
}

kill_containers() {
  if ctr_ version >/dev/null 2>&1; then
    local ids id
    ids="$(ctr_ tasks ls -q 2>/dev/null || true)"
    for id in $ids; do ctr_ tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    for id in $ids; do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
    for id in $(ctr_ containers ls -q 2>/dev/null || true); do ctr_ containers delete "$id" >/dev/null 2>&1 || true; done
  fi
  # Shims (and whatever they still hold) serving our socket, found by their command line.
  local p
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "-address $SOCK "; then
      kill -KILL "${p#/proc/}" 2>/dev/null || true
    fi
  done
}

kill_cgroups() {
  local sub d pid
  for sub in /sys/fs/cgroup/*/; do
    [[ -d "$sub${CGROUP_ROOT#/}" ]] || continue
    # Deepest first; any process left in our cgroups is a pod's.
    while IFS= read -r d; do
      while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$d/cgroup.procs" 2>/dev/null || true
    done < <(find "$sub${CGROUP_ROOT#/}" -mindepth 0 -type d | sort -r)
  done
  sleep 0.5
  for sub in /sys/fs/cgroup/*/; do
    [[ -d "$sub${CGROUP_ROOT#/}" ]] || continue
    find "$sub${CGROUP_ROOT#/}" -mindepth 0 -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

unmount_under() { # dir...
  local d m
  for d in "$@"; do
    [[ -d "$d" ]] || continue
    while IFS= read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
    done < <(awk -v p="$d" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r)
  done
}

cmd_down_node() {
  stop_databases
  stop_bg kube-proxy "$BIN/kube-proxy"
  nft delete table ip kube-proxy 2>/dev/null || true
  nft delete table ip6 kube-proxy 2>/dev/null || true
  stop_bg kubelet "$BIN/kubelet"
  kill_containers
  stop_bg containerd "containerd --config $N/containerd.toml" 20
  kill_cgroups
  local ns
  for ns in $(our_netns); do umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true; rm -f "$ns"; done
  unmount_under "$KUBELET_ROOT" "$RUN_DIR" "$CTR_ROOT"
  rm -rf "$RUN_DIR" "$N/cni/ipam" "$KUBELET_ROOT" "$N/pod-logs"
}

cmd_down() {
  cmd_down_node
  cmd_net_down
  log "node down"
}

cmd_status() {
  local name
  for name in containerd kubelet kube-proxy; do
    if [[ -n "$(pid_of "$name" 2>/dev/null)" ]] && kill -0 "$(pid_of "$name")" 2>/dev/null; then
      printf '%-12s running (pid %s)\n' "$name" "$(pid_of "$name")"
    else printf '%-12s stopped\n' "$name"; fi
  done
  ip -br addr show "$E2E_BRIDGE" 2>/dev/null || echo "bridge $E2E_BRIDGE: absent"
}

[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0
case "${1:-}" in
  net-up) cmd_net_up ;;
  up) cmd_up ;;
  down) cmd_down ;;
  down-node) cmd_down_node ;;
  net-down) cmd_net_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 net-up|up|down|down-node|net-down|status" >&2; exit 2 ;;
esac
