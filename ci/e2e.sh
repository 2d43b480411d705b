#!/usr/bin/env bash
# `make e2e`: helm install/upgrade/rollback/uninstall of the chart against a real Kubernetes
# control plane on loopback, without Docker, on Helm 3 and Helm 4.
#   1. build (or reuse the cached) kube-apiserver/controller-manager/scheduler, kwok, etcd
#   2. helm 3 + helm 4 + kubectl (ci/install-tools.sh), the CRDs the chart uses (ci/crds.sh)
#   3. start the cluster (ci/e2e/cluster.sh up), install the CRDs
#   4. pytest tests/e2e
#   5. stop the cluster by PID, whatever happened (trap)
# Env: E2E_PYTEST_ARGS (extra pytest arguments, e.g. "-k prod"), E2E_KEEP_CLUSTER=1 to leave it running.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_PREFIX=e2e
cd "$REPO_ROOT"
# shellcheck source=ci/e2e/versions.sh
source ci/e2e/versions.sh

t0=$SECONDS
phase() { log "$1 ($((SECONDS - t0))s elapsed)"; }

phase "building or reusing the control-plane binaries"
tb=$SECONDS
bin_dir="$(bash ci/e2e/build.sh)"
build_secs=$((SECONDS - tb))
log "control-plane binaries: $bin_dir"

phase "installing helm 3, helm 4 and kubectl"
tools_out="$(bash ci/install-tools.sh)"
tools_bin="$(tail -n 1 <<<"$tools_out")"
for t in helm3 helm4 kubectl; do
  [[ -x "$tools_bin/$t" ]] || { log "ci/install-tools.sh did not provide $t in $tools_bin"; exit 1; }
done

phase "fetching the CRDs the chart uses"
crds_dir="$(bash ci/crds.sh | tail -n 1)"
[[ -d "$crds_dir" ]] || { log "ci/crds.sh printed no directory"; exit 1; }

venv="${VENV:-.venv}"
if [[ ! -x "$venv/bin/pytest" ]]; then
  phase "creating the Python venv"
  bash ci/install-python.sh
fi

export E2E_KUBECTL="$tools_bin/kubectl"
state="$(bash ci/e2e/cluster.sh env)"
kubeconfig="${state#export KUBECONFIG=}"

cleanup() {
  local rc=$?
  if [[ "${E2E_KEEP_CLUSTER:-0}" == 1 ]]; then
    log "E2E_KEEP_CLUSTER=1: cluster left running (KUBECONFIG=$kubeconfig); stop it with: bash ci/e2e/cluster.sh down"
  else
    bash ci/e2e/cluster.sh down || true
  fi
  log "total $((SECONDS - t0))s (binaries: ${build_secs}s), exit $rc"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A cluster left behind by a killed run (its recorded PIDs only) would hold the ports.
bash ci/e2e/cluster.sh down
phase "starting the cluster"
bash ci/e2e/cluster.sh up

phase "installing CRDs from $crds_dir"
# Server-side: the HTTPRoute CRD is larger than the client-side last-applied annotation allows.
"$E2E_KUBECTL" --kubeconfig "$kubeconfig" apply --server-side -f "$crds_dir" >/dev/null
"$E2E_KUBECTL" --kubeconfig "$kubeconfig" wait --for condition=Established crd --all --timeout 60s >/dev/null

phase "running tests/e2e"
export MEMSTACK_E2E_KUBECONFIG="$kubeconfig"
export MEMSTACK_E2E_HELM3="$tools_bin/helm3"
export MEMSTACK_E2E_HELM4="$tools_bin/helm4"
export MEMSTACK_E2E_KUBECTL="$E2E_KUBECTL"
# shellcheck disable=SC2086
"$venv/bin/pytest" tests/e2e -p no:cacheprovider ${E2E_PYTEST_ARGS:-}
