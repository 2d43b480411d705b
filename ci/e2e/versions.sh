# shellcheck shell=bash
# Single place where the e2e toolchain versions are pinned.
# Sourced by ci/e2e/build.sh, ci/e2e/cluster.sh and ci/e2e.sh.
E2E_K8S_VERSION="${E2E_K8S_VERSION:-1.36.3}"     # k8s.io/kubernetes v1.36.3, staging modules v0.36.3
E2E_KWOK_VERSION="${E2E_KWOK_VERSION:-0.8.0}"    # sigs.k8s.io/kwok
E2E_ETCD_VERSION="${E2E_ETCD_VERSION:-3.6.8}"    # go.etcd.io/etcd/server/v3 (the etcd client version k8s 1.36 uses)
E2E_COREDNS_VERSION="${E2E_COREDNS_VERSION:-1.15.0}"  # github.com/coredns/coredns
E2E_PAUSE_VERSION="${E2E_PAUSE_VERSION:-3.10.2}"  # kubeadm's pause version for Kubernetes 1.36
# The monitoring stack on the real node (its own cache key: changing it never rebuilds Kubernetes).
E2E_PROM_OPERATOR_VERSION="${E2E_PROM_OPERATOR_VERSION:-0.93.0}"  # newest with all three modules on the proxy
E2E_PROMETHEUS_VERSION="${E2E_PROMETHEUS_VERSION:-3.13.1}"  # an LTS in the operator's compatibility matrix
E2E_KSM_VERSION="${E2E_KSM_VERSION:-2.20.0}"  # kube-state-metrics on client-go v0.36, as Kubernetes 1.36

E2E_CACHE_ROOT="${MEMSTACK_CACHE_DIR:-$HOME/.cache/memstack}/e2e"
E2E_KEY="k8s-${E2E_K8S_VERSION}_kwok-${E2E_KWOK_VERSION}_etcd-${E2E_ETCD_VERSION}_coredns-${E2E_COREDNS_VERSION}"
E2E_BIN_DIR="${E2E_CACHE_ROOT}/${E2E_KEY}/bin"
E2E_MONITORING_BIN_DIR="${E2E_CACHE_ROOT}/monitoring_po-${E2E_PROM_OPERATOR_VERSION}_prometheus-${E2E_PROMETHEUS_VERSION}_ksm-${E2E_KSM_VERSION}/bin"
export E2E_PROM_OPERATOR_VERSION E2E_PROMETHEUS_VERSION E2E_KSM_VERSION E2E_MONITORING_BIN_DIR
export E2E_K8S_VERSION E2E_KWOK_VERSION E2E_ETCD_VERSION E2E_COREDNS_VERSION E2E_PAUSE_VERSION E2E_CACHE_ROOT E2E_KEY E2E_BIN_DIR
