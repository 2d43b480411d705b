{{/* vim: set filetype=mustache: */}}

{{/* ---------------------------------------------------------------------------------------
     Cross-field rules the JSON schema cannot express. Each message says what to change.
     --------------------------------------------------------------------------------------- */}}
{{- define "memstack.validate" -}}
{{- $v := .Values -}}
{{- range $name := list "api" "worker" -}}
{{- $c := index $v $name -}}
{{- if and $c.autoscaling.enabled (gt (int $c.autoscaling.minReplicas) (int $c.autoscaling.maxReplicas)) -}}
{{- fail (printf "%s.autoscaling.minReplicas (%v) is greater than %s.autoscaling.maxReplicas (%v): lower minReplicas or raise maxReplicas" $name $c.autoscaling.minReplicas $name $c.autoscaling.maxReplicas) -}}
{{- end -}}
{{- if and $c.autoscaling.enabled (kindIs "invalid" $c.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" $c.autoscaling.targetMemoryUtilizationPercentage) -}}
{{- fail (printf "%s.autoscaling is enabled without a metric: set targetCPUUtilizationPercentage and/or targetMemoryUtilizationPercentage, or set %s.autoscaling.enabled=false" $name $name) -}}
{{- end -}}
{{- if and $c.pdb.enabled (not (kindIs "invalid" $c.pdb.minAvailable)) (not (kindIs "invalid" $c.pdb.maxUnavailable)) -}}
{{- fail (printf "%s.pdb: set either minAvailable or maxUnavailable, not both (set the other to null)" $name) -}}
{{- end -}}
{{- if and $c.pdb.enabled (kindIs "invalid" $c.pdb.minAvailable) (kindIs "invalid" $c.pdb.maxUnavailable) -}}
{{- fail (printf "%s.pdb is enabled without minAvailable or maxUnavailable: set one (maxUnavailable: 1 is recommended) or disable the PDB" $name) -}}
{{- end -}}
{{- end -}}
{{- /* A PDB that allows no eviction at the smallest replica count the workload can run at
       (fixed replicas, the HPA's minReplicas, or KEDA's minReplicaCount but at least 1)
       blocks every node drain. Percentages round up, as the disruption controller does. */ -}}
{{- range $name := list "api" "worker" -}}
{{- $c := index $v $name -}}
{{- if $c.pdb.enabled -}}
{{- $floor := int64 $c.replicas -}}
{{- $floorName := printf "%s.replicas" $name -}}
{{- $raise := "raise replicas" -}}
{{- if and (eq $name "worker") $v.worker.keda.enabled -}}
{{- $floor = max 1 (int64 $v.worker.keda.minReplicaCount) | int64 -}}
{{- $floorName = "worker.keda.minReplicaCount" -}}
{{- $raise = "raise worker.keda.minReplicaCount" -}}
{{- else if $c.autoscaling.enabled -}}
{{- $floor = int64 $c.autoscaling.minReplicas -}}
{{- $floorName = printf "%s.autoscaling.minReplicas" $name -}}
{{- $raise = printf "raise %s.autoscaling.minReplicas" $name -}}
{{- end -}}
{{- if not (kindIs "invalid" $c.pdb.maxUnavailable) -}}
{{- if eq (trimSuffix "%" (toString $c.pdb.maxUnavailable)) "0" -}}
{{- fail (printf "%s.pdb.maxUnavailable (%v) allows no eviction and blocks every node drain: use %s.pdb.maxUnavailable: 1 (or minAvailable below %s)" $name $c.pdb.maxUnavailable $name $floorName) -}}
{{- end -}}
{{- else if not (kindIs "invalid" $c.pdb.minAvailable) -}}
{{- $min := $c.pdb.minAvailable -}}
{{- $required := int64 0 -}}
{{- if kindIs "string" $min -}}
{{- $required = div (add (mul (int64 (trimSuffix "%" $min)) $floor) 99) 100 | int64 -}}
{{- else -}}
{{- $required = int64 $min -}}
{{- end -}}
{{- if and (gt $floor 0) (ge $required $floor) -}}
{{- fail (printf "%s.pdb.minAvailable (%v) >= %s (%d) blocks every node drain: use %s.pdb.maxUnavailable: 1 (and minAvailable: null) or %s" $name $min $floorName $floor $name $raise) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.worker.keda.enabled $v.worker.autoscaling.enabled -}}
{{- fail "worker.keda.enabled and worker.autoscaling.enabled are both true: KEDA creates its own HPA, set worker.autoscaling.enabled=false" -}}
{{- end -}}
{{- if and $v.worker.keda.enabled (gt (int $v.worker.keda.minReplicaCount) (int $v.worker.keda.maxReplicaCount)) -}}
{{- fail "worker.keda.minReplicaCount is greater than worker.keda.maxReplicaCount: lower the minimum or raise the maximum" -}}
{{- end -}}
{{- range $spec := list (list "neo4j" "password" $v.neo4j.password $v.neo4j.existingSecret) (list "postgresql" "password" $v.postgresql.password $v.postgresql.existingSecret) (list "redis" "password" $v.redis.password $v.redis.existingSecret) (list "llm" "apiKey" $v.llm.apiKey $v.llm.existingSecret) (list "bootstrapApiKey" "value" $v.bootstrapApiKey.value $v.bootstrapApiKey.existingSecret) -}}
{{- $section := index $spec 0 -}}{{- $field := index $spec 1 -}}
{{- if and (index $spec 2) (index $spec 3) -}}
{{- fail (printf "%s.%s and %s.existingSecret are both set: keep only one (remove %s.%s to use the existing Secret %q)" $section $field $section $section $field (index $spec 3)) -}}
{{- end -}}
{{- if and (index $spec 2) $v.externalSecrets.enabled -}}
{{- fail (printf "%s.%s is set while externalSecrets.enabled=true: the ExternalSecret provides the credentials, remove %s.%s (or use %s.existingSecret)" $section $field $section $field $section) -}}
{{- end -}}
{{- end -}}
{{- /* Required endpoints: a blank value (empty or YAML null) would start pods pointing at nothing. */ -}}
{{- range $spec := list (list "neo4j.uri" $v.neo4j.uri "bolt://neo4j:7687") (list "postgresql.host" $v.postgresql.host "postgresql.databases.svc") (list "redis.host" $v.redis.host "redis.databases.svc") -}}
{{- if not (trim (toString (index $spec 1 | default ""))) -}}
{{- fail (printf "%s is empty: it is required, set it (e.g. %s)" (index $spec 0) (index $spec 2)) -}}
{{- end -}}
{{- end -}}
{{- if not (regexMatch (include "memstack.neo4jUriPattern" .) (toString $v.neo4j.uri)) -}}
{{- fail (printf "neo4j.uri (%s) is not a Neo4j URI with a host: use <scheme>://<host>[:<port>] with scheme bolt, bolt+s, bolt+ssc, neo4j, neo4j+s or neo4j+ssc (e.g. bolt://neo4j:7687)" $v.neo4j.uri) -}}
{{- end -}}
{{- if $v.externalSecrets.enabled -}}
{{- if not $v.externalSecrets.secretStoreRef.name -}}
{{- fail "externalSecrets.enabled=true needs externalSecrets.secretStoreRef.name (the SecretStore or ClusterSecretStore to read from)" -}}
{{- end -}}
{{- if and (not $v.externalSecrets.remoteKey) (not $v.externalSecrets.data) -}}
{{- fail "externalSecrets.enabled=true needs externalSecrets.remoteKey (extract a whole remote secret) or externalSecrets.data (per-key mapping)" -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.llm.provider "openai-compatible") (or (not $v.llm.baseUrl) (not $v.llm.model)) -}}
{{- fail "llm.provider=openai-compatible needs llm.baseUrl and llm.model (or set llm.provider=none)" -}}
{{- end -}}
{{- $workerGrace := int64 (include "memstack.workerGrace" .) -}}
{{- if le $workerGrace (int64 $v.config.jobTimeoutSeconds) -}}
{{- fail (printf "worker.terminationGracePeriodSeconds (%d) must be greater than config.jobTimeoutSeconds (%v) so a stopping worker finishes its job: raise it or set it to null (job timeout + 60)" $workerGrace $v.config.jobTimeoutSeconds) -}}
{{- end -}}
{{- if le (int64 $v.api.terminationGracePeriodSeconds) (add (int64 $v.api.preStopSleepSeconds) (int64 $v.api.shutdownDrainSeconds)) -}}
{{- fail (printf "api.terminationGracePeriodSeconds (%v) must be greater than api.preStopSleepSeconds + api.shutdownDrainSeconds (%d): raise it or shorten the drain" $v.api.terminationGracePeriodSeconds (add (int64 $v.api.preStopSleepSeconds) (int64 $v.api.shutdownDrainSeconds))) -}}
{{- end -}}
{{- if and $v.ingress.enabled (not $v.ingress.hosts) -}}
{{- fail "ingress.enabled=true needs at least one host in ingress.hosts" -}}
{{- end -}}
{{- range $dependency := splitList " " (include "memstack.caDependencies" .) -}}
{{- $ca := (index $v $dependency).ca -}}
{{- if and $ca.secretName $ca.configMapName -}}
{{- fail (printf "%s.ca.secretName and %s.ca.configMapName are both set: the CA bundle comes from one of them, remove the other" $dependency $dependency) -}}
{{- end -}}
{{- end -}}
{{- if and (include "memstack.caFile" (dict "root" . "dependency" "postgresql")) (eq $v.postgresql.sslmode "disable") -}}
{{- fail "postgresql.ca is set but postgresql.sslmode is disable: the CA would never be used, set sslmode: verify-full" -}}
{{- end -}}
{{- if and (include "memstack.caFile" (dict "root" . "dependency" "redis")) (not $v.redis.tls) -}}
{{- fail "redis.ca is set but redis.tls is false: the CA would never be used, set redis.tls: true" -}}
{{- end -}}
{{- if and (include "memstack.caFile" (dict "root" . "dependency" "neo4j")) (not (regexMatch "^(neo4j|bolt)\\+s://" (toString $v.neo4j.uri))) -}}
{{- fail (printf "neo4j.ca is set but neo4j.uri (%s) is not neo4j+s:// or bolt+s://: the CA verifies TLS connections only, use neo4j+s://" $v.neo4j.uri) -}}
{{- end -}}
{{- if and $v.config.enableTelemetry (not $v.config.otelExporterOtlpEndpoint) -}}
{{- fail "config.enableTelemetry=true needs config.otelExporterOtlpEndpoint (the OTLP/HTTP collector, e.g. http://otel-collector:4318)" -}}
{{- end -}}
{{- /* Ports come from the endpoints (also for the NetworkPolicy): fail on one out of range. */ -}}
{{- $_ := include "memstack.dependencyPorts" . -}}
{{- if $v.config.otelExporterOtlpEndpoint -}}
{{- $_ := include "memstack.httpUrlPort" (dict "url" $v.config.otelExporterOtlpEndpoint "value" "config.otelExporterOtlpEndpoint") -}}
{{- end -}}
{{- if $v.llm.baseUrl -}}
{{- $_ := include "memstack.httpUrlPort" (dict "url" $v.llm.baseUrl "value" "llm.baseUrl") -}}
{{- end -}}
{{- if and $v.httpRoute.enabled (not $v.httpRoute.parentRefs) -}}
{{- fail "httpRoute.enabled=true needs httpRoute.parentRefs (the Gateway to attach to)" -}}
{{- end -}}
{{- /* The HTTPRoute CRD rejects these; failing here names the value instead of the API server. */ -}}
{{- range $field, $duration := $v.httpRoute.timeouts -}}
{{- if not (regexMatch (include "memstack.gatewayDurationPattern" $) (toString $duration)) -}}
{{- fail (printf "httpRoute.timeouts.%s (%v) is not a Gateway API duration: use 1-4 groups of up to 5 digits with h, m, s or ms (e.g. 0s, 90s, 1h30m)" $field $duration) -}}
{{- end -}}
{{- end -}}
{{- with $v.httpRoute.timeouts -}}
{{- if and .request .backendRequest -}}
{{- $request := int64 (include "memstack.gatewayDurationMs" .request) -}}
{{- if and (gt $request 0) (gt (int64 (include "memstack.gatewayDurationMs" .backendRequest)) $request) -}}
{{- fail (printf "httpRoute.timeouts.backendRequest (%s) is longer than httpRoute.timeouts.request (%s): the Gateway API rejects it, shorten backendRequest or set request to 0s (no timeout)" .backendRequest .request) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $name := list "api" "worker" -}}
{{- range $i, $c := (index $v $name).topologySpreadConstraints -}}
{{- if and (not (kindIs "invalid" $c.minDomains)) (ne $c.whenUnsatisfiable "DoNotSchedule") -}}
{{- fail (printf "%s.topologySpreadConstraints[%d].minDomains needs whenUnsatisfiable: DoNotSchedule (Kubernetes rejects it with %s): change one of them" $name $i $c.whenUnsatisfiable) -}}
{{- end -}}
{{- range $key := $c.matchLabelKeys | default list -}}
{{- if hasKey (include "memstack.componentSelectorLabels" (dict "root" $ "component" $name) | fromYaml) $key -}}
{{- fail (printf "%s.topologySpreadConstraints[%d].matchLabelKeys has %s, which the chart's label selector already sets: remove it (e.g. keep pod-template-hash)" $name $i $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $key, $_ := $v.commonAnnotations -}}
{{- if hasPrefix "helm.sh/hook" $key -}}
{{- fail (printf "commonAnnotations.%s: helm.sh/hook* annotations would make every object a hook (and drop it from the release): remove it" $key) -}}
{{- end -}}
{{- end -}}
{{- /* Pod extras: no name or mount path used twice in a pod. */ -}}
{{- include "memstack.validateExtras" (dict "root" . "cfg" $v.api "pod" "api" "main" "api") -}}
{{- include "memstack.validateExtras" (dict "root" . "cfg" $v.worker "pod" "worker" "main" "worker") -}}
{{- if $v.migrations.enabled -}}
{{- include "memstack.validateExtras" (dict "root" . "cfg" $v.migrations "pod" "migration hook" "main" "migrate") -}}
{{- end -}}
{{- if $v.tests.enabled -}}
{{- include "memstack.validateExtras" (dict "root" . "pod" "test" "main" "test") -}}
{{- end -}}
{{- /* Monitoring of a release that serves no metrics: no target would ever be up, so
       MemStackApiDown/MemStackWorkerDown would page on a healthy release. */ -}}
{{- if and (not $v.config.enableMetrics) (or $v.serviceMonitor.enabled $v.prometheusRule.enabled) -}}
{{- fail (printf "config.enableMetrics=false serves no metrics, but %s: nothing would be scraped and MemStackApiDown/MemStackWorkerDown would page on a healthy release. Set serviceMonitor.enabled=false and prometheusRule.enabled=false too, or keep config.enableMetrics=true" (ternary "serviceMonitor.enabled=true" "prometheusRule.enabled=true" $v.serviceMonitor.enabled)) -}}
{{- end -}}
{{- end -}}

{{/* neo4j.uri: a scheme the service accepts, a host (DNS name, IPv4 or [IPv6]), an optional
     port, and optionally a path or query (routing context). Kept equal to the schema's pattern. */}}
{{- define "memstack.neo4jUriPattern" -}}
^(bolt|neo4j)(\+s|\+ssc)?://([A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?([/?].*)?$
{{- end -}}
