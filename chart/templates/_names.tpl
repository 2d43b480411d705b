{{/* vim: set filetype=mustache: */}}

{{/* Names: the chart, the release, the objects, the service account. */}}

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
