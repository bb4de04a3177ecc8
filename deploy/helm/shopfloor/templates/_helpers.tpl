{{- define "shopfloor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shopfloor.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "shopfloor.labels" -}}
app.kubernetes.io/name: {{ include "shopfloor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "shopfloor.selector" -}}
app.kubernetes.io/name: {{ include "shopfloor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "shopfloor.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "shopfloor.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "shopfloor.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The site file as deployed: the user's site with every path on the data volume. */}}
{{- define "shopfloor.site" -}}
{{- $site := deepCopy .Values.site -}}
{{- $data := "/var/lib/shopfloor" -}}
{{- if .Values.influxdb.enabled -}}
{{- $s := dict "kind" "influxdb" "url" .Values.influxdb.url "api" .Values.influxdb.api "outbox_path" (printf "%s/outbox.db" $data) "local_cache" (printf "%s/shopfloor.db" $data) -}}
{{- if eq .Values.influxdb.api "v2" -}}
{{- $_ := set $s "org" .Values.influxdb.org -}}
{{- $_ := set $s "bucket" .Values.influxdb.bucket -}}
{{- else -}}
{{- $_ := set $s "database" .Values.influxdb.database -}}
{{- end -}}
{{- if .Values.influxdb.tokenSecret.name -}}
{{- $_ := set $s "token" (dict "env" "INFLUX_TOKEN") -}}
{{- end -}}
{{- $_ := set $site "storage" $s -}}
{{- else -}}
{{- $_ := set $site "storage" (dict "kind" "sqlite" "path" (printf "%s/shopfloor.db" $data)) -}}
{{- end -}}
{{- $ev := deepCopy (default (dict) $site.evidence) -}}
{{- $_ := set $ev "ledger_path" (printf "%s/ledger.db" $data) -}}
{{- $_ := set $ev "key_dir" (printf "%s/keys" $data) -}}
{{- $_ := set $site "evidence" $ev -}}
{{- $_ := set $site "gateway" (dict "host" "0.0.0.0" "port" (int .Values.gateway.port) "users_db" (printf "%s/users.db" $data) "max_upload_mb" (int .Values.gateway.maxUploadMb) "session_ttl_s" (int .Values.gateway.sessionTtlS)) -}}
{{- if .Values.mqtt.enabled -}}
{{- range $site.devices -}}
{{- if .mqtt -}}
{{- $_ := set .mqtt "host" $.Values.mqtt.host -}}
{{- $_ := set .mqtt "port" (int $.Values.mqtt.port) -}}
{{- if $.Values.mqtt.username -}}{{- $_ := set .mqtt "username" $.Values.mqtt.username -}}{{- end -}}
{{- if $.Values.mqtt.passwordSecret.name -}}{{- $_ := set .mqtt "password" (dict "env" "MQTT_PASSWORD") -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $site -}}
{{- end -}}

{{- define "shopfloor.env" -}}
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
- name: HOME
  value: /tmp
{{- if and .Values.influxdb.enabled .Values.influxdb.tokenSecret.name }}
- name: INFLUX_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.influxdb.tokenSecret.name }}
      key: {{ .Values.influxdb.tokenSecret.key }}
{{- end }}
{{- if and .Values.mqtt.enabled .Values.mqtt.passwordSecret.name }}
- name: MQTT_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.mqtt.passwordSecret.name }}
      key: {{ .Values.mqtt.passwordSecret.key }}
{{- end }}
{{- end -}}
