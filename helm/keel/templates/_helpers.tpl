{{/*
Names. Kubernetes names are at most 63 characters (DNS labels), so everything is cut there.
*/}}
{{- define "keel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release-qualified name: "<release>-keel", or just "<release>" when it already contains
the chart name (so `helm install keel helm/keel` gives "keel-node", not "keel-keel-node").
*/}}
{{- define "keel.fullname" -}}
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

{{/* Per-component names. Room is left for the suffixes and the StatefulSet's pod ordinal. */}}
{{- define "keel.node.fullname" -}}
{{- printf "%s-node" (include "keel.fullname" . | trunc 50 | trimSuffix "-") }}
{{- end }}

{{- define "keel.node.headlessName" -}}
{{- printf "%s-headless" (include "keel.node.fullname" .) }}
{{- end }}

{{- define "keel.gateway.fullname" -}}
{{- printf "%s-gateway" (include "keel.fullname" . | trunc 50 | trimSuffix "-") }}
{{- end }}

{{- define "keel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels. Call with (dict "ctx" $ "component" "node"|"gateway"), or without "component" for what
both roles share.
The selector labels never change after the first install (a selector is immutable), so they
carry no version.
*/}}
{{- define "keel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keel.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "keel.labels" -}}
helm.sh/chart: {{ include "keel.chart" .ctx }}
{{ include "keel.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Values.image.tag | default .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: keel
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "keel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "keel.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "keel.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Whether something other than .Values.node.replicas owns the node count. */}}
{{- define "keel.node.autoscaled" -}}
{{- if or .Values.keda.enabled .Values.node.autoscaling.enabled }}true{{ end }}
{{- end }}

{{/* Where the NATS credentials file is mounted (only with nats.credentialsSecret). */}}
{{- define "keel.natsCredsDir" -}}/etc/keel/nats{{- end }}

{{/*
The NATS settings of a role: .Values.nats, with the role's own `nats` values (gateway.nats)
on top, so the gateway can connect as its own user. Returns YAML; use with fromYaml.
Call with (dict "ctx" $ "role" .Values.gateway).
*/}}
{{- define "keel.nats" -}}
{{- $own := .role.nats | default dict }}
{{- toYaml (mergeOverwrite (deepCopy .ctx.Values.nats) (deepCopy $own)) }}
{{- end }}

{{/*
The environment both roles share: NATS, logs, traces. Call with
(dict "ctx" $ "nats" <keel.nats> "serviceName" "keel-node"|"keel-gateway").
*/}}
{{- define "keel.commonEnv" -}}
{{- $v := .ctx.Values }}
{{- $nats := .nats }}
{{- if $nats.urlSecret.name }}
- name: KEEL_NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $nats.urlSecret.name }}
      key: {{ $nats.urlSecret.key }}
{{- else }}
- name: KEEL_NATS_URL
  value: {{ required "nats.url is required: Keel on Kubernetes runs on NATS JetStream" $nats.url | quote }}
{{- end }}
{{- if $nats.credentialsSecret }}
- name: KEEL_NATS_CREDS
  value: {{ printf "%s/%s" (include "keel.natsCredsDir" .ctx) $nats.credentialsKey | quote }}
{{- end }}
- name: KEEL_LOG_FORMAT
  value: {{ $v.logFormat | quote }}
{{- if $v.otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $v.otel.endpoint | quote }}
{{- end }}
- name: OTEL_SERVICE_NAME
  value: {{ .serviceName | quote }}
{{- end }}

{{/*
The volume and the mount for the NATS credentials file; empty without a credentialsSecret.
Call with (dict "ctx" $ "nats" <keel.nats>).
*/}}
{{- define "keel.natsCredsVolume" -}}
{{- with .nats.credentialsSecret }}
- name: nats-creds
  secret:
    secretName: {{ . }}
    items:
      - key: {{ $.nats.credentialsKey }}
        path: {{ $.nats.credentialsKey }}
    # Group-readable: the files belong to the pod's fsGroup, the process is not root.
    defaultMode: 0440
{{- end }}
{{- end }}

{{- define "keel.natsCredsMount" -}}
{{- if .nats.credentialsSecret }}
- name: nats-creds
  mountPath: {{ include "keel.natsCredsDir" .ctx }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
Pod annotations: Prometheus' conventional scrape annotations (the metrics are on the HTTP
port), then the user's. Call with (dict "ctx" $ "podAnnotations" .Values.X.podAnnotations).
*/}}
{{- define "keel.podAnnotations" -}}
{{- if .ctx.Values.metrics.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/path: /metrics
prometheus.io/port: "8080"
{{- end }}
{{- with .podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Soft anti-affinity by hostname, unless the component sets its own affinity: one node (or
gateway) per machine where the scheduler can, so losing a machine loses one replica.
Call with (dict "ctx" $ "component" "node" "affinity" .Values.node.affinity).
*/}}
{{- define "keel.affinity" -}}
{{- if .affinity }}
{{- toYaml .affinity }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "keel.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- end }}
{{- end }}
