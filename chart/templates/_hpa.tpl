{{/* vim: set filetype=mustache: */}}

{{/* The HorizontalPodAutoscaler of one component's Deployment, when its autoscaling is enabled:
     (dict "root" $ "component" "api"). The settings are .Values.<component>.autoscaling. */}}
{{- define "memstack.hpa" -}}
{{- $root := .root -}}
{{- $name := printf "%s-%s" (include "memstack.fullname" $root) .component -}}
{{- with (index $root.Values .component).autoscaling }}
{{- if .enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "memstack.componentLabels" (dict "root" $root "component" $.component) | nindent 4 }}
  {{- with include "memstack.annotations" (dict "root" $root "annotations" dict) }}{{ . | nindent 2 }}{{ end }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ .minReplicas }}
  maxReplicas: {{ .maxReplicas }}
  metrics:
    {{- if not (kindIs "invalid" .targetCPUUtilizationPercentage) }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .targetCPUUtilizationPercentage }}
    {{- end }}
    {{- if not (kindIs "invalid" .targetMemoryUtilizationPercentage) }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ .targetMemoryUtilizationPercentage }}
    {{- end }}
  {{- with .behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
{{- end -}}
