{{/* vim: set filetype=mustache: */}}

{{/* Egress rules shared by every NetworkPolicy of the chart. */}}
{{- define "memstack.egressRules" -}}
{{- $np := .Values.networkPolicy -}}
# DNS
- to:
    - namespaceSelector:
        {{- toYaml $np.dnsNamespaceSelector | nindent 8 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
# Neo4j (Bolt), PostgreSQL, Redis
- {{- with $np.dependencyPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - protocol: TCP
      port: {{ .Values.neo4j.port }}
    - protocol: TCP
      port: {{ .Values.postgresql.port }}
    - protocol: TCP
      port: {{ .Values.redis.port }}
{{- if ne .Values.llm.provider "none" }}
# LLM endpoint
- ports:
    - protocol: TCP
      port: {{ .Values.llm.egressPort }}
{{- end }}
{{- if .Values.config.enableTelemetry }}
# OTLP collector
- ports:
    - protocol: TCP
      port: {{ $np.otlpPort }}
{{- end }}
{{- with $np.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}
