{{/* vim: set filetype=mustache: */}}

{{/* ---------------------------------------------------------------------------------------
     Gateway API: durations (GEP-2257) and the namespaces of the Gateways the route attaches to.
     --------------------------------------------------------------------------------------- */}}

{{/* A Gateway API duration, as the HTTPRoute CRD accepts it: 1-4 groups of up to 5 digits and a
     unit (h, m, s, ms). Kept equal to the schema's pattern of httpRoute.timeouts.*. */}}
{{- define "memstack.gatewayDurationPattern" -}}
^([0-9]{1,5}(h|m|s|ms)){1,4}$
{{- end -}}

{{/* Milliseconds of a Gateway API duration ("1h30m" -> 5400000). */}}
{{- define "memstack.gatewayDurationMs" -}}
{{- $units := dict "h" 3600000 "m" 60000 "s" 1000 "ms" 1 -}}
{{- $ms := int64 0 -}}
{{- range $part := regexFindAll "[0-9]+(ms|h|m|s)" (toString .) -1 -}}
{{- $count := regexFind "^[0-9]+" $part | int64 -}}
{{- $unit := regexReplaceAll "^[0-9]+" $part "" -}}
{{- $ms = add $ms (mul $count (index $units $unit)) | int64 -}}
{{- end -}}
{{- $ms -}}
{{- end -}}

{{/* JSON list of the namespaces of httpRoute.parentRefs (a parentRef without one is in the
     release namespace), sorted and without duplicates. */}}
{{- define "memstack.gatewayNamespaces" -}}
{{- $namespaces := list -}}
{{- range .Values.httpRoute.parentRefs -}}
{{- $namespaces = append $namespaces (default $.Release.Namespace .namespace) -}}
{{- end -}}
{{- $namespaces | uniq | sortAlpha | toJson -}}
{{- end -}}
