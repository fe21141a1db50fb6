{{/* Edge security (docs/security.md): where the Secrets are mounted, and the checks. */}}

{{- define "voxgate.tlsDir" -}}/etc/voxgate/tls{{- end }}
{{- define "voxgate.clientCaDir" -}}/etc/voxgate/client-ca{{- end }}
{{- define "voxgate.callersDir" -}}/etc/voxgate/callers{{- end }}

{{/* The TLS Secret: security.tls.secretName, or FULLNAME-tls (what certManager writes). */}}
{{- define "voxgate.tlsSecretName" -}}
{{- .Values.security.tls.secretName | default (printf "%s-tls" (include "voxgate.fullname" .)) }}
{{- end }}

{{/* Port of the probes: the plaintext health-only port when TLS is on (kubelet cannot speak TLS). */}}
{{- define "voxgate.probePort" -}}
{{- if .Values.security.tls.enabled }}{{ .Values.security.tls.healthPort }}{{ else }}{{ .Values.containerPort }}{{ end }}
{{- end }}

{{/*
Refuse, at render time, what voxgate would refuse at start: a DashScope key on a pod IP with no caller
authentication (unless config.VOXGATE_AUTH is "none"), and options that need another one.
*/}}
{{- define "voxgate.securityChecks" -}}
{{- $security := .Values.security }}
{{- if and $security.mutualTls.enabled (not $security.tls.enabled) }}
{{- fail "security.mutualTls.enabled needs security.tls.enabled" }}
{{- end }}
{{- if and $security.tls.certManager.enabled (not $security.tls.certManager.issuerRef.name) }}
{{- fail "security.tls.certManager.enabled needs security.tls.certManager.issuerRef.name" }}
{{- end }}
{{- if and $security.tls.enabled (eq ($security.tls.healthPort | int) (.Values.containerPort | int)) }}
{{- fail "security.tls.healthPort must differ from containerPort" }}
{{- end }}
{{- $authenticated := or $security.callers.existingSecret $security.mutualTls.enabled }}
{{- if and (include "voxgate.apiKeySecretName" .) (not $authenticated) (ne (.Values.config.VOXGATE_AUTH | toString) "none") }}
{{- fail "with an API key, voxgate refuses to serve the pod network without caller authentication: set security.callers.existingSecret (keys from `voxgate caller-key NAME`) or security.mutualTls.enabled, or config.VOXGATE_AUTH=none if a mesh authenticates callers (docs/security.md)" }}
{{- end }}
{{- end }}

{{/* Secrets as whole directories, never subPath: a subPath mount never sees a rotated file. */}}
{{- define "voxgate.securityVolumeMounts" -}}
{{- if .Values.security.tls.enabled }}
- name: tls
  mountPath: {{ include "voxgate.tlsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.security.mutualTls.enabled }}
- name: client-ca
  mountPath: {{ include "voxgate.clientCaDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.security.callers.existingSecret }}
- name: callers
  mountPath: {{ include "voxgate.callersDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "voxgate.securityVolumes" -}}
{{- if .Values.security.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "voxgate.tlsSecretName" . }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- if .Values.security.mutualTls.enabled }}
- name: client-ca
  secret:
    secretName: {{ .Values.security.mutualTls.caSecret | default (include "voxgate.tlsSecretName" .) }}
    items:
      - key: {{ .Values.security.mutualTls.caKey }}
        path: {{ .Values.security.mutualTls.caKey }}
{{- end }}
{{- if .Values.security.callers.existingSecret }}
- name: callers
  secret:
    secretName: {{ .Values.security.callers.existingSecret }}
    items:
      - key: {{ .Values.security.callers.secretKey }}
        path: {{ .Values.security.callers.secretKey }}
{{- end }}
{{- end }}
