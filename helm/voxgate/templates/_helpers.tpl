{{/* Chart name, cut to the 63 characters a DNS label allows. */}}
{{- define "voxgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or <release> when it already contains the chart name. */}}
{{- define "voxgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A name with a suffix (FULLNAME-headless, FULLNAME-test), still within the 63 characters of a DNS
label: the full name is cut first so that the suffix survives.
Call as: include "voxgate.suffixedName" (list . "headless")
*/}}
{{- define "voxgate.suffixedName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $room := sub 62 (len $suffix) | int }}
{{- printf "%s-%s" (include "voxgate.fullname" $root | trunc $room | trimSuffix "-") $suffix }}
{{- end }}

{{- define "voxgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "voxgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "voxgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every object: the chart's own, then the commonLabels they do not name (a commonLabels
entry cannot rename the release's objects or move its pods out of the selector: see
voxgate.checkValues, which refuses a selector label there).
*/}}
{{- define "voxgate.labels" -}}
{{- $labels := include "voxgate.selectorLabels" . | fromYaml }}
{{- $_ := set $labels "helm.sh/chart" (include "voxgate.chart" .) }}
{{- $_ = set $labels "app.kubernetes.io/version" (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- $_ = set $labels "app.kubernetes.io/managed-by" .Release.Service }}
{{- toYaml (merge $labels (.Values.commonLabels | default dict)) }}
{{- end }}

{{/* The pods' labels: the labels above, then the podLabels they do not name. */}}
{{- define "voxgate.podLabels" -}}
{{- toYaml (merge (include "voxgate.labels" . | fromYaml) (.Values.podLabels | default dict)) }}
{{- end }}

{{/* metadata.annotations of every object: commonAnnotations, then the object's own (a dict). */}}
{{- define "voxgate.annotations" -}}
{{- $root := index . 0 }}
{{- $own := index . 1 | default dict }}
{{- $all := merge (deepCopy $own) ($root.Values.commonAnnotations | default dict) }}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest when image.digest is set (it wins over the tag), else repository:tag. */}}
{{- define "voxgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "voxgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "voxgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Secret holding DASHSCOPE_API_KEY: the user's existingSecret or the one this chart creates from
apiKey.value; empty when neither is set (voxgate then serves on its embedded upstream).
Setting both is refused: it is never clear which key a pod would run with.
*/}}
{{- define "voxgate.apiKeySecretName" -}}
{{- if and .Values.apiKey.value .Values.apiKey.existingSecret }}
{{- fail "apiKey: set apiKey.value or apiKey.existingSecret, not both" }}
{{- end }}
{{- if .Values.apiKey.existingSecret }}
{{- .Values.apiKey.existingSecret }}
{{- else if .Values.apiKey.value }}
{{- include "voxgate.fullname" . }}
{{- end }}
{{- end }}

{{/* VOXGATE_DRAIN_GRACE_S as a whole number of seconds, rounded up. */}}
{{- define "voxgate.drainGraceCeil" -}}
{{- .Values.drain.graceSeconds | float64 | ceil | int }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop pause, then the drain, then time to close and exit.
Kubernetes counts the grace period from the start of preStop, so all three must fit in it.
*/}}
{{- define "voxgate.terminationGracePeriodSeconds" -}}
{{- add .Values.drain.preStopSeconds (include "voxgate.drainGraceCeil" . | int) .Values.drain.shutdownSlackSeconds }}
{{- end }}

{{/* OTEL_RESOURCE_ATTRIBUTES: pod and namespace from the downward API, then otel.resourceAttributes. */}}
{{- define "voxgate.otelResourceAttributes" -}}
{{- $attributes := list "k8s.pod.name=$(K8S_POD_NAME)" "k8s.namespace.name=$(K8S_NAMESPACE_NAME)" (printf "k8s.deployment.name=%s" (include "voxgate.fullname" .)) }}
{{- range $key, $value := .Values.otel.resourceAttributes }}
{{- $attributes = append $attributes (printf "%s=%s" $key ($value | toString)) }}
{{- end }}
{{- join "," $attributes }}
{{- end }}

{{/* VOXGATE_TASK_START_RATE of one process: the account's rate over the most processes that can run
(pods at most, times workers per pod), so that all of them together stay within it. */}}
{{- define "voxgate.taskStartRate" -}}
{{- $pods := ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled | int }}
{{- $workers := .Values.config.VOXGATE_WORKERS | default 1 | int }}
{{- printf "%.4f" (divf (.Values.taskStartRate.accountPerSecond | float64) (mul $pods $workers)) }}
{{- end }}

{{/*
Values that pass the schema one by one but contradict each other: refused here, with the fix,
rather than rendered into something that misbehaves in the cluster. Included by deployment.yaml.
*/}}
{{- define "voxgate.checkValues" -}}
{{- $v := .Values }}
{{- $selector := include "voxgate.selectorLabels" . | fromYaml }}
{{- range $key, $_ := $selector }}
{{- if hasKey ($v.podLabels | default dict) $key }}
{{- fail (printf "podLabels: %s is a selector label the chart sets; it cannot be overridden" $key) }}
{{- end }}
{{- if hasKey ($v.commonLabels | default dict) $key }}
{{- fail (printf "commonLabels: %s is a selector label the chart sets; it cannot be overridden" $key) }}
{{- end }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling: minReplicas (%d) is greater than maxReplicas (%d)" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and $v.keda.enabled (not $v.autoscaling.enabled) }}
{{- fail "keda.enabled needs autoscaling.enabled=true: the ScaledObject takes its replica bounds and targets from autoscaling" }}
{{- end }}
{{- if and $v.autoscaling.pool.enabled (not $v.autoscaling.enabled) }}
{{- fail "autoscaling.pool.enabled needs autoscaling.enabled=true (it adds a metric to the HorizontalPodAutoscaler)" }}
{{- end }}
{{- if and $v.keda.enabled $v.autoscaling.pool.enabled }}
{{- fail "keda.enabled scales on the pool through its Prometheus trigger; autoscaling.pool.enabled is the HorizontalPodAutoscaler's way (a Prometheus adapter): enable one of them" }}
{{- end }}
{{- if and (or $v.autoscaling.pool.enabled $v.keda.enabled) (not $v.otel.enabled) }}
{{- fail "autoscaling.pool.enabled and keda.enabled scale on voxgate's pool metrics, which voxgate exports only over OTLP: set otel.enabled=true and route them to Prometheus (docs/deploy.md)" }}
{{- end }}
{{- if and $v.metrics.enabled $v.metrics.podAnnotations (gt (int $v.config.VOXGATE_WORKERS) 1) }}
{{- fail "metrics.podAnnotations name one port, but each of the VOXGATE_WORKERS workers serves its own (metrics.port + i): set metrics.podAnnotations=false and metrics.serviceMonitor.enabled=true" }}
{{- end }}
{{- $chartEnv := list "VOXGATE_LISTEN" "VOXGATE_DRAIN_GRACE_S" "DASHSCOPE_API_KEY" }}
{{- $metricsEnv := list "OTEL_METRICS_EXPORTER" "OTEL_EXPORTER_PROMETHEUS_HOST" "OTEL_EXPORTER_PROMETHEUS_PORT" }}
{{- if $v.metrics.enabled }}
{{- $chartEnv = concat $chartEnv $metricsEnv }}
{{- range $metricsEnv }}
{{- if hasKey $v.otel.extraEnv . }}
{{- fail (printf "otel.extraEnv: %s is set by metrics.enabled; change it through metrics.*" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- $chartEnv = concat $chartEnv (keys $v.config) }}
{{- if $v.otel.enabled }}
{{- $chartEnv = concat $chartEnv (list "OTEL_EXPORTER_OTLP_ENDPOINT" "OTEL_EXPORTER_OTLP_PROTOCOL" "OTEL_SERVICE_NAME" "OTEL_RESOURCE_ATTRIBUTES" "K8S_POD_NAME" "K8S_NAMESPACE_NAME") (keys $v.otel.extraEnv) }}
{{- end }}
{{- range $v.extraEnv }}
{{- if has .name $chartEnv }}
{{- fail (printf "extraEnv: %s is set by the chart; change it through its value (config, apiKey, containerPort, drain or otel), not extraEnv" .name) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The /metrics ports, one per worker (worker i serves metrics.port + i), as a YAML list of
{name, port}; empty without metrics.enabled. Port names are at most 15 characters.
*/}}
{{- define "voxgate.metricsPorts" -}}
{{- if .Values.metrics.enabled }}
{{- range $i := until (int .Values.config.VOXGATE_WORKERS) }}
- name: {{ ternary "metrics" (printf "metrics-%d" $i) (eq $i 0) }}
  port: {{ add (int $.Values.metrics.port) $i }}
{{- end }}
{{- else }}
[]
{{- end }}
{{- end }}
