{{/* vim: set filetype=mustache: */}}

{{/* Pod-level pieces shared by the API, the worker and the migration hook. */}}

{{/* Pod annotations shared by API and worker: roll on config/secret data changes. */}}
{{- define "memstack.podChecksums" -}}
checksum/config: {{ include "memstack.configData" . | sha256sum }}
checksum/secret: {{ include "memstack.secretChecksum" . }}
{{- end -}}

{{- define "memstack.deploymentAnnotations" -}}
{{- if and .Values.secrets.reloader (include "memstack.foreignSecrets" .) -}}
secret.reloader.stakater.com/reload: {{ include "memstack.foreignSecrets" . | quote }}
{{- end -}}
{{- end -}}

{{- define "memstack.podSecurity" -}}
{{- include "memstack.podSecurityAs" (dict "root" . "serviceAccountName" (include "memstack.serviceAccountName" .)) }}
{{- end -}}

{{/* Pod security with a given service account (the migration hook runs before the release's own exists). */}}
{{- define "memstack.podSecurityAs" -}}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
serviceAccountName: {{ .serviceAccountName }}
automountServiceAccountToken: {{ .root.Values.serviceAccount.automountServiceAccountToken }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "memstack.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "memstack.workerGrace" -}}
{{- if kindIs "invalid" .Values.worker.terminationGracePeriodSeconds -}}
{{- add (int64 .Values.config.jobTimeoutSeconds) 60 -}}
{{- else -}}
{{- int64 .Values.worker.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* The probe reads the heartbeat file from WORKER_HEARTBEAT_FILE in the container's
     environment (the ConfigMap, from worker.heartbeatFile): the file the worker writes. */}}
{{- define "memstack.workerHealthcheck" -}}
exec:
  command:
    - memstack
    - healthcheck
    - --max-age
    - {{ .Values.worker.heartbeatMaxAgeSeconds | quote }}
{{- end -}}
