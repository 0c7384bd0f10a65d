{{/* The chart's name. */}}
{{- define "larder.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, the base of every resource name. */}}
{{- define "larder.fullname" -}}
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

{{- define "larder.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "larder.selectorLabels" -}}
app.kubernetes.io/name: {{ include "larder.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The service's pods (not the migration hook's). */}}
{{- define "larder.serverSelectorLabels" -}}
{{ include "larder.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "larder.labels" -}}
helm.sh/chart: {{ include "larder.chart" . }}
{{ include "larder.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "larder.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "larder.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "larder.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret the pods read DATABASE_URL, REDIS_URL… from. */}}
{{- define "larder.secretName" -}}
{{- default (include "larder.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* The Secret the migration hook reads DATABASE_URL from: it must exist before the
release's ordinary resources, so it is the user's, or a hook Secret of its own. */}}
{{- define "larder.migrationSecretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- printf "%s-migrate" (include "larder.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Refuses values that cannot work together. */}}
{{- define "larder.validate" -}}
{{- if and (not .Values.existingSecret) (not .Values.database.url) }}
{{- fail "set database.url (a postgres:// URL) or existingSecret (a Secret holding DATABASE_URL)" }}
{{- end }}
{{- if and .Values.redis.url .Values.redis.clusterUrls }}
{{- fail "set redis.url or redis.clusterUrls, not both" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- end }}

{{/* The pods' security context, shared by the service and the migration hook; the uid is
the image's `nonroot` user. */}}
{{- define "larder.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "larder.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop:
    - ALL
{{- end }}

{{/* Proxies in front of the pods: as set, or when unset one with the chart's ingress
(the controller appends the address it saw) and none without. */}}
{{- define "larder.trustedProxies" -}}
{{- if kindIs "invalid" .Values.trustedProxies -}}
{{- if .Values.ingress.enabled }}1{{ else }}0{{ end -}}
{{- else -}}
{{- .Values.trustedProxies -}}
{{- end -}}
{{- end }}
