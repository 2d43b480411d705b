#!/usr/bin/env bash
# Fetch, at pinned versions and through the Go module proxy, the CRDs the chart renders
# objects for, into ${MEMSTACK_CACHE_DIR:-$HOME/.cache/memstack}/crds/, and print that directory.
#   ServiceMonitor, PrometheusRule  github.com/prometheus-operator/prometheus-operator
#   HTTPRoute                       sigs.k8s.io/gateway-api (standard channel)
#   ScaledObject                    github.com/kedacore/keda/v2
#   ExternalSecret                  github.com/external-secrets/external-secrets
# The CRDs are never committed: the chart does not ship CRDs (Helm never upgrades them).
# Idempotent: files already present are kept.
set -euo pipefail

# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LOG_PREFIX=crds
OUT="$CACHE_DIR/crds"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.4.0}"
KEDA_VERSION="${KEDA_VERSION:-v2.18.0}"
EXTERNAL_SECRETS_VERSION="${EXTERNAL_SECRETS_VERSION:-v1.3.2}"

# "module@version|path inside the module|file name in $OUT"
entries=(
  "github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}|example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml|monitoring.coreos.com_servicemonitors.yaml"
  "github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}|example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml|monitoring.coreos.com_prometheusrules.yaml"
  "sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}|config/crd/standard/gateway.networking.k8s.io_httproutes.yaml|gateway.networking.k8s.io_httproutes.yaml"
  "github.com/kedacore/keda/v2@${KEDA_VERSION}|config/crd/bases/keda.sh_scaledobjects.yaml|keda.sh_scaledobjects.yaml"
  "github.com/external-secrets/external-secrets@${EXTERNAL_SECRETS_VERSION}|config/crds/bases/external-secrets.io_externalsecrets.yaml|external-secrets.io_externalsecrets.yaml"
)

command -v go >/dev/null || { log "go is required (it fetches the CRDs through the module proxy)"; exit 1; }
mkdir -p "$OUT"
versions_file="$OUT/VERSIONS"
want_versions="prometheus-operator=${PROMETHEUS_OPERATOR_VERSION} gateway-api=${GATEWAY_API_VERSION} keda=${KEDA_VERSION} external-secrets=${EXTERNAL_SECRETS_VERSION}"
if [[ -f "$versions_file" && "$(cat "$versions_file")" != "$want_versions" ]]; then
  log "pinned versions changed: refreshing $OUT"
  rm -f "$OUT"/*.yaml
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
declare -A dirs=()
for entry in "${entries[@]}"; do
  IFS='|' read -r modver path name <<<"$entry"
  [[ -s "$OUT/$name" ]] && continue
  if [[ -z "${dirs[$modver]:-}" ]]; then
    log "downloading $modver"
    dir="$(cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "$modver" \
      | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
    [[ -n "$dir" && -d "$dir" ]] || { log "could not download $modver"; exit 1; }
    dirs[$modver]="$dir"
  fi
  src="${dirs[$modver]}/$path"
  [[ -f "$src" ]] || { log "$path not found in $modver"; exit 1; }
  install -m 0644 "$src" "$OUT/$name"
done
echo "$want_versions" >"$versions_file"
echo "$OUT"
