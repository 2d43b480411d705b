{{/* vim: set filetype=mustache: */}}

{{/* ---------------------------------------------------------------------------------------
     What operators add: common annotations, and the pod extras (env, envFrom, volumes, mounts,
     init containers, native sidecars) of every pod the chart runs. The top-level values reach
     every pod (API, worker, migration hook, test pod); a component's own values (api.*,
     worker.*, migrations.*) come after them. Extras are rendered with `tpl`.
     --------------------------------------------------------------------------------------- */}}

{{/* A value rendered as a template: a string as is, anything else as YAML first.
     (dict "value" .Values.x "context" $) */}}
{{- define "memstack.tplvalues" -}}
{{- if kindIs "string" .value -}}
{{- tpl .value .context -}}
{{- else -}}
{{- tpl (toYaml .value) .context -}}
{{- end -}}
{{- end -}}

{{/* The `annotations:` block of an object: its own annotations over commonAnnotations; nothing
     when both are empty. (dict "root" $ "annotations" (dict ...)) */}}
{{- define "memstack.annotations" -}}
{{- $common := dict -}}
{{- with .root.Values.commonAnnotations -}}
{{- $common = include "memstack.tplvalues" (dict "value" . "context" $.root) | fromYaml -}}
{{- end -}}
{{- $all := merge (deepCopy (.annotations | default dict)) $common -}}
{{- with $all -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* JSON list: the top-level list `key` followed by the component's own (cfg may be nil, as for
     the test pod), each rendered with tpl. (dict "root" $ "cfg" .Values.api "key" "extraEnv") */}}
{{- define "memstack.extraList" -}}
{{- $items := list -}}
{{- range $source := list (index .root.Values .key) (dig .key (list) (.cfg | default dict)) -}}
{{- if $source -}}
{{- $items = concat $items (include "memstack.tplvalues" (dict "value" $source "context" $.root) | fromYamlArray) -}}
{{- end -}}
{{- end -}}
{{- toJson $items -}}
{{- end -}}

{{/* The env of a main container: the chart's entries (YAML list `base`), then extraEnv; a later
     entry with the same name replaces an earlier one in place (no duplicate names, which
     server-side apply refuses). (dict "root" $ "cfg" .Values.api "base" <yaml list>) */}}
{{- define "memstack.containerEnv" -}}
{{- $entries := concat (.base | fromYamlArray) (include "memstack.extraList" (dict "root" .root "cfg" .cfg "key" "extraEnv") | fromJsonArray) -}}
{{- $order := list -}}
{{- $byName := dict -}}
{{- range $entries -}}
{{- if not (hasKey $byName .name) -}}{{- $order = append $order .name -}}{{- end -}}
{{- $_ := set $byName .name . -}}
{{- end -}}
{{- range $name := $order }}
- {{ index $byName $name | toYaml | nindent 2 | trim }}
{{- end }}
{{- end -}}

{{/* envFrom of a main container: the chart's ConfigMap, then extraEnvFrom (later sources win
     for a key present in several). (dict "root" $ "cfg" ... "configMap" <name>) */}}
{{- define "memstack.containerEnvFrom" -}}
- configMapRef:
    name: {{ .configMap }}
{{- with include "memstack.extraList" (dict "root" .root "cfg" .cfg "key" "extraEnvFrom") | fromJsonArray }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volume mounts of a main container: /tmp, the CA bundles, then extraVolumeMounts. */}}
{{- define "memstack.containerVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- with include "memstack.caVolumeMounts" .root | trim }}
{{ . }}
{{- end }}
{{- with include "memstack.extraList" (dict "root" .root "cfg" .cfg "key" "extraVolumeMounts") | fromJsonArray }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volumes of a pod: /tmp, the CA bundles, then extraVolumes. */}}
{{- define "memstack.podVolumes" -}}
{{ include "memstack.tmpVolume" .root }}
{{- with include "memstack.caVolumes" .root | trim }}
{{ . }}
{{- end }}
{{- with include "memstack.extraList" (dict "root" .root "cfg" .cfg "key" "extraVolumes") | fromJsonArray }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* initContainers of a pod: the sidecars first, as native sidecars (restartPolicy: Always:
     they start before the main container, run beside it and stop after it, so the migration Job
     and the test pod still complete), then the initContainers, which can use them. */}}
{{- define "memstack.initContainers" -}}
{{- $containers := list -}}
{{- range include "memstack.extraList" (dict "root" .root "cfg" .cfg "key" "sidecars") | fromJsonArray -}}
{{- $containers = append $containers (merge . (dict "restartPolicy" "Always")) -}}
{{- end -}}
{{- $containers = concat $containers (include "memstack.extraList" (dict "root" .root "cfg" .cfg "key" "initContainers") | fromJsonArray) -}}
{{- with $containers }}
initContainers:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Fails when the extras of a pod reuse a name or a mount path of the chart or of each other.
     (dict "root" $ "cfg" ... "pod" "api") */}}
{{- define "memstack.validateExtras" -}}
{{- $volumes := list "tmp" -}}
{{- range (include "memstack.caVolumes" .root | fromYamlArray) -}}{{- $volumes = append $volumes .name -}}{{- end -}}
{{- range (include "memstack.extraList" (dict "root" .root "cfg" .cfg "key" "extraVolumes") | fromJsonArray) -}}
{{- if has .name $volumes -}}
{{- fail (printf "extraVolumes of the %s pod: a volume named %q exists already (the chart uses tmp and ca-<dependency>): rename it" $.pod .name) -}}
{{- end -}}
{{- $volumes = append $volumes .name -}}
{{- end -}}
{{- $paths := list -}}
{{- range (include "memstack.containerVolumeMounts" . | fromYamlArray) -}}
{{- if has .mountPath $paths -}}
{{- fail (printf "extraVolumeMounts of the %s pod: %s is mounted twice (the chart mounts /tmp and /etc/memstack/ca/<dependency>): use another mountPath" $.pod .mountPath) -}}
{{- end -}}
{{- $paths = append $paths .mountPath -}}
{{- end -}}
{{- $names := list (.main | default "") -}}
{{- range $key := list "sidecars" "initContainers" -}}
{{- range (include "memstack.extraList" (dict "root" $.root "cfg" $.cfg "key" $key) | fromJsonArray) -}}
{{- if has .name $names -}}
{{- fail (printf "%s of the %s pod: a container named %q exists already: rename it" $key $.pod .name) -}}
{{- end -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- end -}}
{{- end -}}
