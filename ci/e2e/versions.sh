# shellcheck shell=bash
# Single place where the e2e toolchain versions are pinned.
# Sourced by ci/e2e/build.sh, ci/e2e/cluster.sh and ci/e2e.sh.
E2E_K8S_VERSION="${E2E_K8S_VERSION:-1.36.3}"     # k8s.io/kubernetes v1.36.3, staging modules v0.36.3
E2E_KWOK_VERSION="${E2E_KWOK_VERSION:-0.8.0}"    # sigs.k8s.io/kwok
E2E_ETCD_VERSION="${E2E_ETCD_VERSION:-3.6.8}"    # go.etcd.io/etcd/server/v3 (the etcd client version k8s 1.36 uses)
E2E_COREDNS_VERSION="${E2E_COREDNS_VERSION:-1.15.0}"  # github.com/coredns/coredns
E2E_PAUSE_VERSION="${E2E_PAUSE_VERSION:-3.10.2}"  # kubeadm's pause version for Kubernetes 1.36

E2E_CACHE_ROOT="${MEMSTACK_CACHE_DIR:-$HOME/.cache/memstack}/e2e"
E2E_KEY="k8s-${E2E_K8S_VERSION}_kwok-${E2E_KWOK_VERSION}_etcd-${E2E_ETCD_VERSION}_coredns-${E2E_COREDNS_VERSION}"
E2E_BIN_DIR="${E2E_CACHE_ROOT}/${E2E_KEY}/bin"
export E2E_K8S_VERSION E2E_KWOK_VERSION E2E_ETCD_VERSION E2E_COREDNS_VERSION E2E_PAUSE_VERSION E2E_CACHE_ROOT E2E_KEY E2E_BIN_DIR
