{{/* vim: set filetype=mustache: */}}

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
