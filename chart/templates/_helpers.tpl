{{/* vim: set filetype=mustache: */}}

{{- define "memstack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name; leaves room for the longest suffix ("-worker-metrics" style suffixes are <= 14 chars). */}}
{{- define "memstack.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "memstack.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. Versions live here, never in selectors (rollback-safe). */}}
{{- define "memstack.labels" -}}
helm.sh/chart: {{ include "memstack.chart" . }}
{{ include "memstack.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: memstack
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "memstack.selectorLabels" -}}
app.kubernetes.io/name: {{ include "memstack.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Component labels: (dict "root" $ "component" "api") */}}
{{- define "memstack.componentLabels" -}}
{{ include "memstack.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "memstack.componentSelectorLabels" -}}
{{ include "memstack.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "memstack.apiName" -}}{{ include "memstack.fullname" . }}-api{{- end -}}
{{- define "memstack.workerName" -}}{{ include "memstack.fullname" . }}-worker{{- end -}}
{{/* The Prometheus `job` label of the targets = the name of the scraped Service. */}}
{{- define "memstack.apiJob" -}}{{ include "memstack.apiName" . }}{{- end -}}
{{- define "memstack.workerJob" -}}{{ include "memstack.workerName" . }}{{- end -}}
{{- define "memstack.secretName" -}}{{ include "memstack.fullname" . }}{{- end -}}
{{- define "memstack.configName" -}}{{ include "memstack.fullname" . }}{{- end -}}

{{- define "memstack.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "memstack.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image of every pod the chart runs (API, worker, migration hook, test pod).
     Registry: global.imageRegistry when set, else image.registry (Bitnami semantics); with
     both empty the reference is exactly `<repository>:<tag>` (or `<repository>@<digest>`). */}}
{{- define "memstack.imageRegistry" -}}
{{- $global := dig "imageRegistry" "" (.Values.global | default dict) | toString -}}
{{- default (.Values.image.registry | default "" | toString) $global | trimSuffix "/" -}}
{{- end -}}

{{- define "memstack.image" -}}
{{- $repository := .Values.image.repository -}}
{{- with include "memstack.imageRegistry" . -}}
{{- $repository = printf "%s/%s" . $repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------------------------------
     Configuration: the non-secret Settings keys (ConfigMap data), as a YAML dict of strings.
     --------------------------------------------------------------------------------------- */}}
{{- define "memstack.configData" -}}
{{- $c := .Values.config -}}
API_HOST: "0.0.0.0"
API_PORT: "8000"
API_ALLOWED_ORIGINS: {{ join "," $c.apiAllowedOrigins | quote }}
API_MAX_BODY_BYTES: {{ $c.apiMaxBodyBytes | int64 | toString | quote }}
RATE_LIMIT_PER_MINUTE: {{ $c.rateLimitPerMinute | int64 | toString | quote }}
TRUSTED_PROXIES: {{ join "," $c.trustedProxies | quote }}
NEO4J_URI: {{ .Values.neo4j.uri | quote }}
NEO4J_USER: {{ .Values.neo4j.user | quote }}
NEO4J_DATABASE: {{ .Values.neo4j.database | quote }}
NEO4J_POOL_SIZE: {{ .Values.neo4j.poolSize | int64 | toString | quote }}
{{- with include "memstack.caFile" (dict "root" . "dependency" "neo4j") }}
NEO4J_TLS_CA_FILE: {{ . | quote }}
{{- end }}
POSTGRES_HOST: {{ .Values.postgresql.host | quote }}
POSTGRES_PORT: {{ .Values.postgresql.port | int64 | toString | quote }}
POSTGRES_DB: {{ .Values.postgresql.database | quote }}
POSTGRES_USER: {{ .Values.postgresql.user | quote }}
POSTGRES_POOL_SIZE: {{ .Values.postgresql.poolSize | int64 | toString | quote }}
POSTGRES_SSLMODE: {{ .Values.postgresql.sslmode | quote }}
{{- with include "memstack.caFile" (dict "root" . "dependency" "postgresql") }}
POSTGRES_SSLROOTCERT: {{ . | quote }}
{{- end }}
REDIS_HOST: {{ .Values.redis.host | quote }}
REDIS_PORT: {{ .Values.redis.port | int64 | toString | quote }}
REDIS_DB: {{ .Values.redis.db | int64 | toString | quote }}
REDIS_TLS: {{ .Values.redis.tls | toString | quote }}
{{- with include "memstack.caFile" (dict "root" . "dependency" "redis") }}
REDIS_TLS_CA_FILE: {{ . | quote }}
{{- end }}
QUEUE_MAX_SIZE: {{ $c.queueMaxSize | int64 | toString | quote }}
JOB_TIMEOUT_SECONDS: {{ $c.jobTimeoutSeconds | int64 | toString | quote }}
JOB_MAX_RETRIES: {{ $c.jobMaxRetries | int64 | toString | quote }}
WORKER_HEARTBEAT_FILE: {{ .Values.worker.heartbeatFile | quote }}
LLM_PROVIDER: {{ .Values.llm.provider | quote }}
LLM_BASE_URL: {{ .Values.llm.baseUrl | quote }}
LLM_MODEL: {{ .Values.llm.model | quote }}
LLM_TIMEOUT: {{ .Values.llm.timeout | toString | quote }}
LLM_CACHE_ENABLED: {{ .Values.llm.cacheEnabled | toString | quote }}
LLM_CACHE_TTL: {{ .Values.llm.cacheTtl | int64 | toString | quote }}
ENABLE_METRICS: {{ $c.enableMetrics | toString | quote }}
METRICS_PORT: "9090"
METRICS_HOST: "0.0.0.0"
ENABLE_TELEMETRY: {{ $c.enableTelemetry | toString | quote }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ $c.otelExporterOtlpEndpoint | quote }}
SERVICE_NAME: {{ default (include "memstack.fullname" .) $c.serviceName | quote }}
ENVIRONMENT: {{ $c.environment | quote }}
LOG_LEVEL: {{ $c.logLevel | quote }}
LOG_FORMAT: {{ $c.logFormat | quote }}
{{- end -}}

{{/* ---------------------------------------------------------------------------------------
     TLS trust: a CA bundle per dependency (neo4j, postgresql, redis), from a Secret or a
     ConfigMap, mounted read-only in every pod and named by the dependency's Settings key.
     --------------------------------------------------------------------------------------- */}}
{{- define "memstack.caDependencies" -}}neo4j postgresql redis{{- end -}}

{{/* The CA file path of one dependency in the pods, or "" when none is given: (dict "root" $ "dependency" "neo4j") */}}
{{- define "memstack.caFile" -}}
{{- $ca := (index .root.Values .dependency).ca -}}
{{- if or $ca.secretName $ca.configMapName -}}/etc/memstack/ca/{{ .dependency }}/ca.crt{{- end -}}
{{- end -}}

{{/* JSON list of the CA file paths the pods get. */}}
{{- define "memstack.caFiles" -}}
{{- $files := list -}}
{{- range $dependency := splitList " " (include "memstack.caDependencies" .) -}}
{{- with include "memstack.caFile" (dict "root" $ "dependency" $dependency) -}}{{- $files = append $files . -}}{{- end -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}

{{/* Volumes (list items) of the given CA bundles. */}}
{{- define "memstack.caVolumes" -}}
{{- range $dependency := splitList " " (include "memstack.caDependencies" .) }}
{{- $ca := (index $.Values $dependency).ca }}
{{- if $ca.secretName }}
- name: ca-{{ $dependency }}
  secret:
    secretName: {{ $ca.secretName }}
    items:
      - key: {{ $ca.key }}
        path: ca.crt
{{- else if $ca.configMapName }}
- name: ca-{{ $dependency }}
  configMap:
    name: {{ $ca.configMapName }}
    items:
      - key: {{ $ca.key }}
        path: ca.crt
{{- end }}
{{- end }}
{{- end -}}

{{/* Read-only volume mounts (list items) of the given CA bundles, where memstack.caFile points. */}}
{{- define "memstack.caVolumeMounts" -}}
{{- range $dependency := splitList " " (include "memstack.caDependencies" .) }}
{{- if include "memstack.caFile" (dict "root" $ "dependency" $dependency) }}
- name: ca-{{ $dependency }}
  mountPath: /etc/memstack/ca/{{ $dependency }}
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------------------------------
     Secrets. Each secret key comes from exactly one place:
       existingSecret of its dependency  >  the ExternalSecret target  >  the chart's own Secret.
     "memstack.secretSources" returns a JSON dict KEY -> {"secret": name, "key": key, "own": bool}.
     --------------------------------------------------------------------------------------- */}}
{{- define "memstack.secretSources" -}}
{{- $own := include "memstack.secretName" . -}}
{{- $v := .Values -}}
{{- $specs := list
    (list "NEO4J_PASSWORD" $v.neo4j.existingSecret $v.neo4j.existingSecretPasswordKey)
    (list "POSTGRES_PASSWORD" $v.postgresql.existingSecret $v.postgresql.existingSecretPasswordKey)
    (list "REDIS_PASSWORD" $v.redis.existingSecret $v.redis.existingSecretPasswordKey)
    (list "LLM_API_KEY" $v.llm.existingSecret $v.llm.existingSecretKey)
    (list "MEMSTACK_BOOTSTRAP_API_KEY" $v.bootstrapApiKey.existingSecret $v.bootstrapApiKey.existingSecretKey) -}}
{{- $out := dict -}}
{{- range $specs -}}
{{- $key := index . 0 -}}
{{- if index . 1 -}}
{{- $_ := set $out $key (dict "secret" (index . 1) "key" (index . 2) "own" false) -}}
{{- else -}}
{{- $_ := set $out $key (dict "secret" $own "key" $key "own" true) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Inline values of the secret keys the chart's Secret carries (bootstrap key excluded). */}}
{{- define "memstack.inlineSecretValues" -}}
{{- $v := .Values -}}
{{- toJson (dict "NEO4J_PASSWORD" $v.neo4j.password "POSTGRES_PASSWORD" $v.postgresql.password "REDIS_PASSWORD" $v.redis.password "LLM_API_KEY" $v.llm.apiKey) -}}
{{- end -}}

{{/* Whether the chart renders its own Secret: some key is not delegated and no ExternalSecret. */}}
{{- define "memstack.ownSecretNeeded" -}}
{{- $needed := false -}}
{{- range $k, $s := (include "memstack.secretSources" . | fromJson) -}}
{{- if $s.own -}}{{- $needed = true -}}{{- end -}}
{{- end -}}
{{- if and $needed (not .Values.externalSecrets.enabled) -}}true{{- end -}}
{{- end -}}

{{/* The env entries for every secret key (secretKeyRef), for the given keys (default: all). */}}
{{- define "memstack.secretEnv" -}}
{{- $root := .root -}}
{{- $sources := include "memstack.secretSources" $root | fromJson -}}
{{- $keys := .keys | default (list "NEO4J_PASSWORD" "POSTGRES_PASSWORD" "REDIS_PASSWORD" "LLM_API_KEY" "MEMSTACK_BOOTSTRAP_API_KEY") -}}
{{- $secretName := .secretName | default "" -}}
{{- range $key := $keys }}
{{- $s := index $sources $key }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ ternary (default $s.secret $secretName) $s.secret $s.own }}
      key: {{ $s.key }}
      {{- if and $s.own (or (eq $key "REDIS_PASSWORD") (eq $key "LLM_API_KEY")) }}
      {{- /* may be absent from an ExternalSecret-filled Secret (no Redis AUTH, no LLM) */}}
      optional: true
      {{- end }}
{{- end }}
{{- end -}}

{{/* Checksum of the secret data the pods read from the chart (never of a generated key). */}}
{{- define "memstack.secretChecksum" -}}
{{- $data := include "memstack.inlineSecretValues" . | fromJson -}}
{{- $_ := set $data "MEMSTACK_BOOTSTRAP_API_KEY" .Values.bootstrapApiKey.value -}}
{{- $_ := set $data "sources" (include "memstack.secretSources" . | fromJson) -}}
{{- $_ := set $data "external" (ternary (toJson .Values.externalSecrets) "" .Values.externalSecrets.enabled) -}}
{{- toJson $data | sha256sum -}}
{{- end -}}

{{/* Names of Secrets the chart does not manage (for the reloader annotation). */}}
{{- define "memstack.foreignSecrets" -}}
{{- $names := list -}}
{{- range $k, $s := (include "memstack.secretSources" . | fromJson) -}}
{{- if not $s.own -}}{{- $names = append $names $s.secret -}}{{- end -}}
{{- end -}}
{{- if .Values.externalSecrets.enabled -}}{{- $names = append $names (include "memstack.secretName" .) -}}{{- end -}}
{{- $names | uniq | sortAlpha | join "," -}}
{{- end -}}

{{/* Pod annotations shared by API and worker: roll on config/secret data changes. */}}
{{- define "memstack.podChecksums" -}}
checksum/config: {{ include "memstack.configData" . | sha256sum }}
checksum/secret: {{ include "memstack.secretChecksum" . }}
{{- end -}}

{{- define "memstack.deploymentAnnotations" -}}
{{- if and .Values.secrets.reloader (include "memstack.foreignSecrets" .) -}}
secret.reloader.stakater.com/reload: {{ include "memstack.foreignSecrets" . | quote }}
{{- end -}}
{{- end -}}

{{/* Anti-affinity + topology spread: (dict "root" $ "component" "api" "cfg" .Values.api).
     Each spread constraint gets the component's label selector; matchLabelKeys (e.g.
     pod-template-hash: spread each rollout's pods on their own), minDomains and the node
     policies are passed through. */}}
{{- define "memstack.scheduling" -}}
{{- $sel := include "memstack.componentSelectorLabels" . | fromYaml -}}
{{- if .cfg.affinity }}
affinity:
  {{- toYaml .cfg.affinity | nindent 2 }}
{{- else if eq .cfg.podAntiAffinity "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- toYaml $sel | nindent 14 }}
{{- else if eq .cfg.podAntiAffinity "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- toYaml $sel | nindent 12 }}
{{- end }}
{{- with .cfg.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  - maxSkew: {{ .maxSkew }}
    topologyKey: {{ .topologyKey }}
    whenUnsatisfiable: {{ .whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- toYaml $sel | nindent 8 }}
    {{- with .matchLabelKeys }}
    matchLabelKeys:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- if not (kindIs "invalid" .minDomains) }}
    minDomains: {{ .minDomains }}
    {{- end }}
    {{- with .nodeAffinityPolicy }}
    nodeAffinityPolicy: {{ . }}
    {{- end }}
    {{- with .nodeTaintsPolicy }}
    nodeTaintsPolicy: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}
{{- with .cfg.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .cfg.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .cfg.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{- define "memstack.podSecurity" -}}
{{- include "memstack.podSecurityAs" (dict "root" . "serviceAccountName" (include "memstack.serviceAccountName" .)) }}
{{- end -}}

{{/* Pod security with a given service account (the migration hook runs before the release's own exists). */}}
{{- define "memstack.podSecurityAs" -}}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
serviceAccountName: {{ .serviceAccountName }}
automountServiceAccountToken: {{ .root.Values.serviceAccount.automountServiceAccountToken }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "memstack.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "memstack.workerGrace" -}}
{{- if kindIs "invalid" .Values.worker.terminationGracePeriodSeconds -}}
{{- add (int64 .Values.config.jobTimeoutSeconds) 60 -}}
{{- else -}}
{{- int64 .Values.worker.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* The probe reads the heartbeat file from WORKER_HEARTBEAT_FILE in the container's
     environment (the ConfigMap, from worker.heartbeatFile): the file the worker writes. */}}
{{- define "memstack.workerHealthcheck" -}}
exec:
  command:
    - memstack
    - healthcheck
    - --max-age
    - {{ .Values.worker.heartbeatMaxAgeSeconds | quote }}
{{- end -}}

{{- define "memstack.runbookUrl" -}}
{{- $alert := index .root.Values.prometheusRule.alerts .key -}}
{{- default (printf "%s/%s.md" (trimSuffix "/" .root.Values.prometheusRule.runbookBaseUrl) .name) $alert.runbookUrl -}}
{{- end -}}

{{/* neo4j.uri: a scheme the service accepts, a host (DNS name, IPv4 or [IPv6]), an optional
     port, and optionally a path or query (routing context). Kept equal to the schema's pattern. */}}
{{- define "memstack.neo4jUriPattern" -}}
^(bolt|neo4j)(\+s|\+ssc)?://([A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?([/?].*)?$
{{- end -}}

{{/* Annotations of the migration hook's objects (pre-install/pre-upgrade), with its weight:
     (dict "weight" "-10"). A succeeded hook is removed; a failed Job stays for inspection. */}}
{{- define "memstack.hookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}

{{/* ExternalSecret filling a Secret `name`: (dict "root" $ "name" ... "component" ... "hook" bool) */}}
{{- define "memstack.externalSecret" -}}
{{- $es := .root.Values.externalSecrets -}}
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "memstack.componentLabels" (dict "root" .root "component" .component) | nindent 4 }}
  {{- $hook := dict }}
  {{- if .hook }}
  {{- $hook = include "memstack.hookAnnotations" (dict "weight" "-10") | fromYaml }}
  {{- end }}
  {{- with include "memstack.annotations" (dict "root" .root "annotations" $hook) }}{{ . | nindent 2 }}{{ end }}
spec:
  refreshInterval: {{ $es.refreshInterval }}
  secretStoreRef:
    name: {{ $es.secretStoreRef.name }}
    kind: {{ $es.secretStoreRef.kind }}
  target:
    name: {{ .name }}
    creationPolicy: Owner
  {{- with $es.data }}
  data:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $es.remoteKey }}
  dataFrom:
    - extract:
        key: {{ . }}
  {{- end }}
{{- end -}}
