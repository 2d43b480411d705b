{{/* vim: set filetype=mustache: */}}

{{/* Labels and selectors of every object, per component. */}}

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
