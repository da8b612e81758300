{{- define "profinfer-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "profinfer-agent.labels" -}}
app.kubernetes.io/name: {{ include "profinfer-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "profinfer-agent.selector" -}}
app.kubernetes.io/name: {{ include "profinfer-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
