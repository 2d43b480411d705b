#!/usr/bin/env bash
# Build the monitoring stack the real node runs, from Go modules (no prebuilt downloads):
#   operator, prometheus-config-reloader  (github.com/prometheus-operator/prometheus-operator)
#   prometheus, with only the Kubernetes, file and HTTP service discovery it needs
#                                          (github.com/prometheus/prometheus, module v0.3XX.Y = v3.XX.Y)
#   kube-state-metrics                     (k8s.io/kube-state-metrics/v2)
# Binaries are cached in ${MEMSTACK_CACHE_DIR:-$HOME/.cache/memstack}/e2e/monitoring_<versions>/bin;
# a second run with the same versions does nothing. Prints the bin directory.
#
# Env: E2E_BUILD_JOBS (go build -p, default 2), E2E_FORCE_BUILD=1 to rebuild.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=ci/lib.sh
source "$here/../lib.sh"
LOG_PREFIX=e2e-build
# shellcheck source=ci/e2e/versions.sh
source "$here/versions.sh"

bins=(operator prometheus-config-reloader prometheus kube-state-metrics)
out="$E2E_MONITORING_BIN_DIR"
# shellcheck source=ci/e2e/gomod.sh
source "$here/gomod.sh"
reuse_or_clear "$out" "${bins[@]}"
e2e_go_env
work="$(dirname "$out")/src"
mkdir -p "$out" "$work"
start=$(date +%s)
version_flags() { echo "-X github.com/prometheus/common/version.Version=$1 -X github.com/prometheus/common/version.Branch=HEAD -X github.com/prometheus/common/version.Revision=$2"; }

build_operator() {
  local m=github.com/prometheus-operator/prometheus-operator v="v${E2E_PROM_OPERATOR_VERSION}"
  # The operator's go.mod replaces its two API modules with local paths: require all three.
  build_packages prometheus-operator \
    "	$m $v
	$m/pkg/apis/monitoring $v
	$m/pkg/client $v" \
    "$(version_flags "$E2E_PROM_OPERATOR_VERSION" "$v")" "" \
    "$m/cmd/operator" "$m/cmd/prometheus-config-reloader"
}

build_prometheus() {
  local m=github.com/prometheus/prometheus
  local minor="${E2E_PROMETHEUS_VERSION#3.}" v
  v="v0.$(( 300 + ${minor%%.*} )).${minor#*.}"
  # Without `builtinassets` the web UI is not embedded; the HTTP API is all the tests use.
  build_packages prometheus "	$m $v" "$(version_flags "$E2E_PROMETHEUS_VERSION" "$v")" \
    "remove_all_sd,enable_kubernetes_sd" "$m/cmd/prometheus"
}

build_ksm() {
  local m=k8s.io/kube-state-metrics/v2 v="v${E2E_KSM_VERSION}"
  build_packages kube-state-metrics "	$m $v" "$(version_flags "$v" "$v")" "" "$m"
  # Module-aware `go build` names a command whose path ends in a major version (…/v2) after
  # the element before it, so this is usually kube-state-metrics already; older toolchains say v2.
  if [[ -x "$out/v2" ]]; then mv "$out/v2" "$out/kube-state-metrics"; fi
}

[[ -x "$out/operator" && -x "$out/prometheus-config-reloader" ]] || build_operator
[[ -x "$out/prometheus" ]] || build_prometheus
[[ -x "$out/kube-state-metrics" ]] || build_ksm

have_all "$out" "${bins[@]}" || { log "build finished but binaries are missing in $out"; exit 1; }
log "built in $(( $(date +%s) - start ))s: $out"
echo "$out"
