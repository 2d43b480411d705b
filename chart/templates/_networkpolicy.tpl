{{/* vim: set filetype=mustache: */}}

{{/* ---------------------------------------------------------------------------------------
     NetworkPolicy: admitted sources follow what is enabled, egress ports follow the configured
     endpoints (never a second value to keep in step with them).
     --------------------------------------------------------------------------------------- */}}

{{/* The TCP port of a URL: the explicit one, else the given default (by scheme):
     (dict "url" "neo4j+s://db:7688" "value" "neo4j.uri" "default" 7687) -> 7688.
     Fails, naming the value, when the port is outside 1-65535. */}}
{{- define "memstack.urlPort" -}}
{{- $rest := regexReplaceAll "^[A-Za-z][A-Za-z0-9+.-]*://" (toString .url) "" -}}
{{- $authority := regexReplaceAll "^.*@" (regexReplaceAll "[/?#].*$" $rest "") "" -}}
{{- $port := int64 .default -}}
{{- with regexFind ":[0-9]+$" $authority -}}{{- $port = trimPrefix ":" . | int64 -}}{{- end -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "%s (%s) has port %d: use a TCP port between 1 and 65535" .value .url $port) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/* Port of an http(s) URL: explicit, else 443 for https and 80 for http (as the clients use). */}}
{{- define "memstack.httpUrlPort" -}}
{{- include "memstack.urlPort" (dict "url" .url "value" .value "default" (ternary 443 80 (hasPrefix "https://" (toString .url)))) -}}
{{- end -}}

{{/* JSON list of the dependency ports (Neo4j from neo4j.uri, default 7687; PostgreSQL; Redis). */}}
{{- define "memstack.dependencyPorts" -}}
{{- $neo4j := include "memstack.urlPort" (dict "url" .Values.neo4j.uri "value" "neo4j.uri" "default" 7687) | int64 -}}
{{- list $neo4j (int64 .Values.postgresql.port) (int64 .Values.redis.port) | uniq | toJson -}}
{{- end -}}

{{/* Peers (list items) allowed to send HTTP to the API, following what is enabled: the ingress
     controller with ingress.enabled, the Gateway's namespaces with httpRoute.enabled, and always
     this release's own pods (the helm test pod). */}}
{{- define "memstack.apiHttpPeers" -}}
{{- $np := .Values.networkPolicy -}}
{{- if .Values.ingress.enabled }}
- namespaceSelector:
    {{- toYaml $np.ingressControllerNamespaceSelector | nindent 4 }}
  podSelector:
    {{- toYaml $np.ingressControllerPodSelector | nindent 4 }}
{{- end }}
{{- if .Values.httpRoute.enabled }}
{{- if $np.gatewayNamespaceSelector }}
- namespaceSelector:
    {{- toYaml $np.gatewayNamespaceSelector | nindent 4 }}
  podSelector:
    {{- toYaml $np.gatewayPodSelector | nindent 4 }}
{{- else }}
{{- range $namespace := include "memstack.gatewayNamespaces" . | fromJsonArray }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ $namespace }}
  podSelector:
    {{- toYaml $np.gatewayPodSelector | nindent 4 }}
{{- end }}
{{- end }}
{{- end }}
- podSelector:
    matchLabels:
      {{- include "memstack.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/* Egress rules shared by every NetworkPolicy of the chart. */}}
{{- define "memstack.egressRules" -}}
{{- $np := .Values.networkPolicy -}}
# DNS
- to:
    - namespaceSelector:
        {{- toYaml $np.dnsNamespaceSelector | nindent 8 }}
      {{- with $np.dnsPodSelector }}
      podSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- with $np.dnsPeers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    {{- range $port := $np.dnsPorts }}
    - protocol: UDP
      port: {{ $port }}
    - protocol: TCP
      port: {{ $port }}
    {{- end }}
# Neo4j (port of neo4j.uri), PostgreSQL, Redis
- {{- with $np.dependencyPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- range $port := include "memstack.dependencyPorts" . | fromJsonArray }}
    - protocol: TCP
      port: {{ $port }}
    {{- end }}
{{- if ne .Values.llm.provider "none" }}
# LLM endpoint (port of llm.baseUrl)
- ports:
    - protocol: TCP
      port: {{ include "memstack.httpUrlPort" (dict "url" .Values.llm.baseUrl "value" "llm.baseUrl") }}
{{- end }}
{{- if .Values.config.enableTelemetry }}
# OTLP collector (port of config.otelExporterOtlpEndpoint)
- ports:
    - protocol: TCP
      port: {{ include "memstack.httpUrlPort" (dict "url" .Values.config.otelExporterOtlpEndpoint "value" "config.otelExporterOtlpEndpoint") }}
{{- end }}
{{- with $np.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}
