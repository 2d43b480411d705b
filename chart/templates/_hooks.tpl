{{/* vim: set filetype=mustache: */}}

{{/* Annotations of the migration hook's objects (pre-install/pre-upgrade), with its weight:
     (dict "weight" "-10"). A succeeded hook is removed; a failed Job stays for inspection. */}}
{{- define "memstack.hookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}
