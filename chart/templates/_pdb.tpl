{{/* vim: set filetype=mustache: */}}

{{/* The PodDisruptionBudget of one component's pods, when its pdb is enabled:
     (dict "root" $ "component" "api"). The settings are .Values.<component>.pdb. */}}
{{- define "memstack.pdb" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- with (index $root.Values .component).pdb }}
{{- if .enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "memstack.fullname" $root }}-{{ $ctx.component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "memstack.componentLabels" $ctx | nindent 4 }}
  {{- with include "memstack.annotations" (dict "root" $root "annotations" dict) }}{{ . | nindent 2 }}{{ end }}
spec:
  {{- if not (kindIs "invalid" .maxUnavailable) }}
  maxUnavailable: {{ .maxUnavailable }}
  {{- else }}
  minAvailable: {{ .minAvailable }}
  {{- end }}
  {{- with .unhealthyPodEvictionPolicy }}
  unhealthyPodEvictionPolicy: {{ . }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "memstack.componentSelectorLabels" $ctx | nindent 6 }}
{{- end }}
{{- end }}
{{- end -}}
