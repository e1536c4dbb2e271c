{{- define "ferry.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ferry.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ferry.labels" -}}
{{ include "ferry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The least grace period the drain arithmetic allows. */}}
{{- define "ferry.minGrace" -}}
{{- $d := .Values.drain -}}
{{- add (int $d.preStopSleepSeconds) (int $d.drainDelaySeconds) (int $d.shutdownTimeoutSeconds) (int $d.appStopTimeoutSeconds) 2 -}}
{{- end -}}

{{- define "ferry.grace" -}}
{{- $min := include "ferry.minGrace" . | int -}}
{{- $g := .Values.drain.terminationGracePeriodSeconds -}}
{{- if $g -}}
{{- if lt (int $g) $min -}}
{{- fail (printf "drain.terminationGracePeriodSeconds %d is less than preStop + drain delay + shutdown timeout + app stop timeout + 2 = %d" (int $g) $min) -}}
{{- end -}}
{{- int $g -}}
{{- else -}}
{{- $min -}}
{{- end -}}
{{- end -}}
