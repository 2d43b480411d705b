{{/* vim: set filetype=mustache: */}}

{{/* The runbook URL of one alert: its own runbookUrl, else <runbookBaseUrl>/<alert name>.md:
     (dict "root" $ "key" "apiHighErrorRate" "name" "MemStackApiHighErrorRate"). */}}
{{- define "memstack.runbookUrl" -}}
{{- $alert := index .root.Values.prometheusRule.alerts .key -}}
{{- default (printf "%s/%s.md" (trimSuffix "/" .root.Values.prometheusRule.runbookBaseUrl) .name) $alert.runbookUrl -}}
{{- end -}}
