{{/* vim: set filetype=mustache: */}}

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
