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

{{- define "voxgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "voxgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "voxgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "voxgate.labels" -}}
helm.sh/chart: {{ include "voxgate.chart" . }}
{{ include "voxgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
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
