#!/usr/bin/env bash
# The monitoring an operator of kube-prometheus-stack runs, on the real node: the Prometheus
# Operator, a Prometheus it manages that selects ServiceMonitors and PrometheusRules labelled
# `release: kube-prometheus-stack` in every namespace, kube-state-metrics, and the kubelet's
# cAdvisor endpoint scraped the way kube-prometheus-stack scrapes it. Every binary is built here
# (ci/e2e/build-monitoring.sh); every image is a one-layer archive of one static binary.
#
# Usage: ci/e2e/monitoring.sh up|status   (after ci/e2e/node.sh up; the node's teardown removes it)
# Prints, on `up`, the Prometheus URL the tests use (its Service's ClusterIP, reachable from here).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=ci/e2e/node.sh
source "$here/node.sh"
# shellcheck source=ci/e2e/gomod.sh
source "$here/gomod.sh"
LOG_PREFIX=e2e-monitoring  # node.sh (sourced above) brings ci/lib.sh

NS=monitoring
# What kube-prometheus-stack's Prometheus selects by default (its release name).
SELECTOR_LABEL="release: kube-prometheus-stack"
MBIN="$E2E_MONITORING_BIN_DIR"
PO_V="v${E2E_PROM_OPERATOR_VERSION}"
PROM_V="v${E2E_PROMETHEUS_VERSION}"
KSM_V="v${E2E_KSM_VERSION}"
OPERATOR_IMAGE="localhost/prometheus-operator:$PO_V"
RELOADER_IMAGE="localhost/prometheus-config-reloader:$PO_V"
PROMETHEUS_IMAGE="localhost/prometheus:$PROM_V"
KSM_IMAGE="localhost/kube-state-metrics:$KSM_V"
# Scrape and evaluate often: the alert tests wait on it.
INTERVAL="${E2E_MONITORING_INTERVAL:-5s}"

import_monitoring_images() {
  local img="$N/images" name
  mkdir -p "$img"
  python3 "$here/oci_image.py" "$img/operator.tar" "$OPERATOR_IMAGE" /bin/operator "$MBIN/operator=/bin/operator" --user 65534:65534
  python3 "$here/oci_image.py" "$img/reloader.tar" "$RELOADER_IMAGE" /bin/prometheus-config-reloader \
    "$MBIN/prometheus-config-reloader=/bin/prometheus-config-reloader" --user 65534:65534
  python3 "$here/oci_image.py" "$img/prometheus.tar" "$PROMETHEUS_IMAGE" /bin/prometheus "$MBIN/prometheus=/bin/prometheus" --user 65534:65534
  python3 "$here/oci_image.py" "$img/ksm.tar" "$KSM_IMAGE" /bin/kube-state-metrics \
    "$MBIN/kube-state-metrics=/bin/kube-state-metrics" --user 65534:65534
  for name in operator reloader prometheus ksm; do ctr_ images import "$img/$name.tar" >/dev/null; done
}

operator_module() { module_dir "github.com/prometheus-operator/prometheus-operator@$PO_V"; }

# Every CRD of the operator's version (the chart's tests pin only the two the chart renders).
apply_crds() {
  kubectl_ apply --server-side --force-conflicts -f "$(operator_module)/example/prometheus-operator-crd" >/dev/null
  kubectl_ wait --for condition=Established crd --all --timeout 60s >/dev/null
}

# The operator's own published RBAC for itself and for Prometheus, from its module.
upstream_rbac() {
  local dir
  dir="$(operator_module)/example/rbac"
  cat "$dir/prometheus-operator/prometheus-operator-cluster-role.yaml"
  echo "---"
  cat "$dir/prometheus/prometheus-cluster-role.yaml"
}

pod_security() {
  cat <<'EOF2'
      securityContext: {runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, seccompProfile: {type: RuntimeDefault}}
EOF2
}
container_security() {
  cat <<'EOF2'
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
EOF2
}

manifests() {
  cat <<EOF2
apiVersion: v1
kind: Namespace
metadata: {name: $NS}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: prometheus-operator, namespace: $NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: prometheus-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: prometheus-operator}
subjects: [{kind: ServiceAccount, name: prometheus-operator, namespace: $NS}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus-operator, namespace: $NS}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: prometheus-operator}}
  template:
    metadata: {labels: {app.kubernetes.io/name: prometheus-operator}}
    spec:
      serviceAccountName: prometheus-operator
$(pod_security)
      containers:
      - name: prometheus-operator
        image: $OPERATOR_IMAGE
        imagePullPolicy: Never
        args:
        - --kubelet-service=kube-system/kubelet
        - --kubelet-endpoints=true
        - --prometheus-config-reloader=$RELOADER_IMAGE
        - --log-level=info
        ports: [{name: http, containerPort: 8080}]
        resources: {requests: {cpu: 20m, memory: 64Mi}, limits: {memory: 256Mi}}
$(container_security)
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: prometheus, namespace: $NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: prometheus}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: prometheus}
subjects: [{kind: ServiceAccount, name: prometheus, namespace: $NS}]
---
apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata: {name: kube-prometheus-stack-prometheus, namespace: $NS}
spec:
  version: $PROM_V
  image: $PROMETHEUS_IMAGE
  imagePullPolicy: Never
  replicas: 1
  serviceAccountName: prometheus
  serviceMonitorSelector: {matchLabels: {$SELECTOR_LABEL}}
  serviceMonitorNamespaceSelector: {}
  podMonitorSelector: {matchLabels: {$SELECTOR_LABEL}}
  podMonitorNamespaceSelector: {}
  probeSelector: {matchLabels: {$SELECTOR_LABEL}}
  ruleSelector: {matchLabels: {$SELECTOR_LABEL}}
  ruleNamespaceSelector: {}
  scrapeInterval: $INTERVAL
  evaluationInterval: $INTERVAL
  retention: 2h
  securityContext: {runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, fsGroup: 65534, seccompProfile: {type: RuntimeDefault}}
  resources: {requests: {cpu: 50m, memory: 256Mi}, limits: {memory: 1Gi}}
---
apiVersion: v1
kind: Service
metadata: {name: prometheus, namespace: $NS}
spec:
  selector: {app.kubernetes.io/name: prometheus}
  ports: [{name: http-web, port: 9090, targetPort: 9090}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: kube-state-metrics, namespace: $NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kube-state-metrics}
rules:
- {apiGroups: [""], resources: [pods, nodes], verbs: [list, watch]}
- {apiGroups: [apps], resources: [deployments], verbs: [list, watch]}
- {apiGroups: [autoscaling], resources: [horizontalpodautoscalers], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kube-state-metrics}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kube-state-metrics}
subjects: [{kind: ServiceAccount, name: kube-state-metrics, namespace: $NS}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: kube-state-metrics, namespace: $NS}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: kube-state-metrics}}
  template:
    metadata: {labels: {app.kubernetes.io/name: kube-state-metrics}}
    spec:
      serviceAccountName: kube-state-metrics
$(pod_security)
      containers:
      - name: kube-state-metrics
        image: $KSM_IMAGE
        imagePullPolicy: Never
        args: [--port=8080, --telemetry-port=8081, "--resources=pods,nodes,deployments,horizontalpodautoscalers"]
        ports: [{name: http, containerPort: 8080}, {name: telemetry, containerPort: 8081}]
        readinessProbe: {httpGet: {path: /readyz, port: 8081}, periodSeconds: 5}
        resources: {requests: {cpu: 20m, memory: 64Mi}, limits: {memory: 256Mi}}
$(container_security)
---
apiVersion: v1
kind: Service
metadata:
  name: kube-state-metrics
  namespace: $NS
  labels: {app.kubernetes.io/name: kube-state-metrics}
spec:
  selector: {app.kubernetes.io/name: kube-state-metrics}
  ports: [{name: http, port: 8080, targetPort: http}]
---
# As kube-prometheus-stack: the series keep the pod's namespace/pod/container (honorLabels).
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: kube-prometheus-stack-kube-state-metrics
  namespace: $NS
  labels: {$SELECTOR_LABEL}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: kube-state-metrics}}
  endpoints: [{port: http, honorLabels: true}]
---
# As kube-prometheus-stack's kubelet ServiceMonitor (its cAdvisor endpoint): the Service and
# Endpoints are the operator's (--kubelet-service), the token is Prometheus' own.
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: kube-prometheus-stack-kubelet
  namespace: $NS
  labels: {$SELECTOR_LABEL}
spec:
  jobLabel: k8s-app
  namespaceSelector: {matchNames: [kube-system]}
  selector: {matchLabels: {app.kubernetes.io/name: kubelet, k8s-app: kubelet}}
  endpoints:
  - port: https-metrics
    scheme: https
    path: /metrics/cadvisor
    honorLabels: true
    honorTimestamps: true
    # cAdvisor timestamps its samples: without this, a gone container's series outlive it by
    # the 5-minute lookback (kube-prometheus-stack sets it too).
    trackTimestampsStaleness: true
    bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
    tlsConfig: {caFile: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt, insecureSkipVerify: true}
    relabelings:
    - {action: replace, sourceLabels: [__metrics_path__], targetLabel: metrics_path}
EOF2
}

prometheus_url() {
  echo "http://$(kubectl_ -n "$NS" get service prometheus -o jsonpath='{.spec.clusterIP}'):9090"
}

cmd_up() {
  for b in operator prometheus-config-reloader prometheus kube-state-metrics; do
    [[ -x "$MBIN/$b" ]] || die "$MBIN/$b missing: run ci/e2e/build-monitoring.sh"
  done
  import_monitoring_images
  apply_crds
  { upstream_rbac; echo "---"; manifests; } | kubectl_ apply --server-side -f - >/dev/null
  kubectl_ -n "$NS" rollout status deploy/prometheus-operator --timeout 120s >&2
  kubectl_ -n "$NS" rollout status deploy/kube-state-metrics --timeout 120s >&2
  wait_cmd "the operator's Prometheus StatefulSet" 120 kubectl_ -n "$NS" get statefulset prometheus-kube-prometheus-stack-prometheus
  kubectl_ -n "$NS" rollout status statefulset/prometheus-kube-prometheus-stack-prometheus --timeout 180s >&2 \
    || { kubectl_ -n "$NS" describe pods >&2; die "Prometheus did not become ready"; }
  local url
  url="$(prometheus_url)"
  wait_cmd "Prometheus ready at $url" 60 curl -fsS --max-time 2 "$url/-/ready"
  log "monitoring up: operator $PO_V, Prometheus $PROM_V, kube-state-metrics $KSM_V at $url"
  echo "$url"
}

cmd_status() {
  kubectl_ -n "$NS" get pods -o wide
  prometheus_url
}

case "${1:-}" in
  up) cmd_up ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|status" >&2; exit 2 ;;
esac
