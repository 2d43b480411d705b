{{/* vim: set filetype=mustache: */}}

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
