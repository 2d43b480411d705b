#!/usr/bin/env bash
# `make node-e2e`: the chart's own image as real pods on a real node.
#   1. binaries (ci/e2e/build.sh: control plane, kubelet, kube-proxy, CoreDNS, pause;
#      ci/e2e/build-monitoring.sh: Prometheus Operator, Prometheus, kube-state-metrics)
#   2. the MemStack images (ci/image.sh: buildah, locally built Debian base)
#   3. helm 3 + helm 4 + kubectl, the CRDs the chart renders objects for
#   4. the node's bridge, the control plane listening on it, the node (ci/e2e/node.sh), the
#      monitoring of a kube-prometheus-stack user on it (ci/e2e/monitoring.sh)
#   5. pytest tests/node
#   6. teardown in reverse, by PID, on every exit path (also a killed earlier run's)
# Env: NODE_E2E_PYTEST_ARGS (pytest arguments instead of `tests/node`), E2E_KEEP_CLUSTER=1 to leave it running.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "$0")/lib.sh"
LOG_PREFIX="node-e2e"
cd "$REPO_ROOT"
# shellcheck source=ci/e2e/versions.sh
source ci/e2e/versions.sh
# shellcheck source=ci/e2e/node.env
source ci/e2e/node.env
t0=$SECONDS
phase() { log "$1 ($((SECONDS - t0))s elapsed)"; }

export E2E_APISERVER_ADDRESS="$E2E_NODE_IP" E2E_SERVICE_CIDR E2E_APISERVER_SERVICE_IP \
  E2E_REAL_NODE_NAME="$E2E_NODE_NAME" E2E_REAL_NODE_IP="$E2E_NODE_IP" E2E_NODES=""

phase "node packages"
apt_install containerd runc containernetworking-plugins nftables iptables conntrack socat curl openssl

phase "building or reusing the Kubernetes binaries"
bash ci/e2e/build.sh >/dev/null
bash ci/e2e/build-monitoring.sh >/dev/null

phase "building or reusing the MemStack images"
E2E_IMAGE_DIR="$(bash ci/image.sh | tail -n 1)"
export E2E_IMAGE_DIR
[[ -d "$E2E_IMAGE_DIR" ]] || die "ci/image.sh printed no directory"

phase "helm 3, helm 4, kubectl and the CRDs"
tools_bin="$(bash ci/install-tools.sh | tail -n 1)"
crds_dir="$(bash ci/crds.sh | tail -n 1)"
[[ -d "$crds_dir" ]] || die "ci/crds.sh printed no directory"
[[ -x .venv/bin/pytest ]] || bash ci/install-python.sh
export E2E_KUBECTL="$tools_bin/kubectl"
kubeconfig="$(bash ci/e2e/cluster.sh env)"
kubeconfig="${kubeconfig#export KUBECONFIG=}"

teardown() {
  bash ci/e2e/node.sh down-node || true
  bash ci/e2e/cluster.sh down || true
  bash ci/e2e/node.sh net-down || true
}
cleanup() {
  local rc=$?
  if [[ "${E2E_KEEP_CLUSTER:-0}" == 1 ]]; then
    log "E2E_KEEP_CLUSTER=1: node left running (KUBECONFIG=$kubeconfig); stop it with: bash ci/node-e2e.sh down"
  else
    teardown
  fi
  stop_started_servers
  log "total $((SECONDS - t0))s, exit $rc"
  exit "$rc"
}
if [[ "${1:-}" == down ]]; then teardown; exit 0; fi

# Whatever a killed run left behind (its recorded PIDs, mounts, tables, bridge).
teardown
load_local_env
ensure_servers
trap cleanup EXIT
trap 'exit 130' INT TERM

phase "starting the node's network, the control plane and the node"
bash ci/e2e/node.sh net-up
bash ci/e2e/cluster.sh up
"$E2E_KUBECTL" --kubeconfig "$kubeconfig" apply --server-side -f "$crds_dir" >/dev/null
"$E2E_KUBECTL" --kubeconfig "$kubeconfig" wait --for condition=Established crd --all --timeout 60s >/dev/null
bash ci/e2e/node.sh up
MEMSTACK_NODE_PROMETHEUS_URL="$(bash ci/e2e/monitoring.sh up | tail -n 1)"
export MEMSTACK_NODE_PROMETHEUS_URL

phase "running tests/node"
export MEMSTACK_NODE_KUBECONFIG="$kubeconfig"
export MEMSTACK_NODE_DB_CA="$STATE_DIR/$E2E_CLUSTER_NAME/node/db-tls/ca.crt"
export MEMSTACK_E2E_HELM3="$tools_bin/helm3"
export MEMSTACK_E2E_HELM4="$tools_bin/helm4"
export MEMSTACK_E2E_KUBECTL="$E2E_KUBECTL"
# shellcheck disable=SC2086
.venv/bin/pytest -p no:cacheprovider ${NODE_E2E_PYTEST_ARGS:-tests/node}
