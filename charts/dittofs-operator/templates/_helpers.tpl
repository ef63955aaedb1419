{{- define "dittofs-operator.name" -}}dittofs-operator{{- end -}}
{{- define "dittofs-operator.fullname" -}}{{ .Release.Name }}{{- end -}}
{{- define "dittofs-operator.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "dittofs-operator.tlsSecret" -}}{{ .Release.Name }}-webhook-tls{{- end -}}
{{- define "dittofs-operator.webhookService" -}}{{ .Release.Name }}-webhook{{- end -}}
{{- define "dittofs-operator.validating" -}}{{ .Release.Name }}-validating{{- end -}}
{{- define "dittofs-operator.mutating" -}}{{ .Release.Name }}-mutating{{- end -}}
{{- define "dittofs-operator.labels" -}}
app.kubernetes.io/name: {{ include "dittofs-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "dittofs-operator.selector" -}}
app.kubernetes.io/name: {{ include "dittofs-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{/* Arguments naming the certificate Secret, Service and webhook configurations: one place for the Job and the Deployment. */}}
{{- define "dittofs-operator.certArgs" -}}
- --secret={{ include "dittofs-operator.tlsSecret" . }}
- --service={{ include "dittofs-operator.webhookService" . }}
- --webhook-config={{ include "dittofs-operator.validating" . }}
- --webhook-config={{ include "dittofs-operator.mutating" . }}
{{- end -}}
{{/* watchNamespaces must be namespace names (RFC 1123 labels): a typo must fail the install, not leave a tenant unserved. */}}
{{- define "dittofs-operator.checkWatchNamespaces" -}}
{{- range .Values.watchNamespaces }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" (toString .)) }}
{{- fail (printf "watchNamespaces: %q is not a namespace name (lowercase letters, digits and '-', at most 63)" (toString .)) }}
{{- end }}
{{- end }}
{{- end -}}
{{/* With watchNamespaces, the webhooks are called for those namespaces only: another installation serves the others. */}}
{{- define "dittofs-operator.namespaceSelector" -}}
{{- if .Values.watchNamespaces }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: In
      values:
        {{- range .Values.watchNamespaces }}
        - {{ . | quote }}
        {{- end }}
{{- end }}
{{- end -}}
