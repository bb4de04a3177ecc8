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
{{- if .Values.influxdb.retentionPolicy -}}
{{- $_ := set $s "retention_policy" .Values.influxdb.retentionPolicy -}}
{{- end -}}
{{- if .Values.influxdb.gatewayId -}}
{{- $_ := set $s "gateway" .Values.influxdb.gatewayId -}}
{{- end -}}
{{- if .Values.influxdb.retention -}}
{{- $_ := set $s "retention" (deepCopy .Values.influxdb.retention) -}}
{{- end -}}
{{- if include "shopfloor.influxTokenRef" . -}}
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
{{- $rt := deepCopy (default (dict) $site.runtime) -}}
{{- $_ := set $rt "alive_file" "/tmp/collector.alive" -}}
{{- $_ := set $site "runtime" $rt -}}
{{- $_ := set $site "gateway" (dict "host" "0.0.0.0" "port" (int .Values.gateway.port) "users_db" (printf "%s/users.db" $data) "max_upload_mb" (int .Values.gateway.maxUploadMb) "session_ttl_s" (int .Values.gateway.sessionTtlS)) -}}
{{- if .Values.mqtt.enabled -}}
{{- range $site.devices -}}
{{- if .mqtt -}}
{{- $_ := set .mqtt "host" $.Values.mqtt.host -}}
{{- $_ := set .mqtt "port" (int $.Values.mqtt.port) -}}
{{- if $.Values.mqtt.username -}}{{- $_ := set .mqtt "username" $.Values.mqtt.username -}}{{- end -}}
{{- if include "shopfloor.mqttPasswordRef" $ -}}{{- $_ := set .mqtt "password" (dict "env" "MQTT_PASSWORD") -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $site -}}
{{- end -}}

{{/* Environment of every container (no secrets). */}}
{{- define "shopfloor.env" -}}
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
- name: HOME
  value: /tmp
{{- end -}}

{{/* The chart's own Secret (secret.create), named after the release. */}}
{{- define "shopfloor.secretName" -}}
{{- printf "%s-secrets" (include "shopfloor.fullname" .) -}}
{{- end -}}

{{/* Where the InfluxDB token comes from: (secret name, key), or nothing. */}}
{{- define "shopfloor.influxTokenRef" -}}
{{- if .Values.influxdb.tokenSecret.name -}}
{{- printf "%s/%s" .Values.influxdb.tokenSecret.name .Values.influxdb.tokenSecret.key -}}
{{- else if and .Values.secret.create .Values.secret.influxToken -}}
{{- printf "%s/influx-token" (include "shopfloor.secretName" .) -}}
{{- end -}}
{{- end -}}

{{- define "shopfloor.mqttPasswordRef" -}}
{{- if .Values.mqtt.passwordSecret.name -}}
{{- printf "%s/%s" .Values.mqtt.passwordSecret.name .Values.mqtt.passwordSecret.key -}}
{{- else if and .Values.secret.create .Values.secret.mqttPassword -}}
{{- printf "%s/mqtt-password" (include "shopfloor.secretName" .) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding signing.key and signing.pub, or nothing. */}}
{{- define "shopfloor.signingSecret" -}}
{{- if .Values.signingKey.existingSecret -}}
{{- .Values.signingKey.existingSecret -}}
{{- else if and .Values.secret.create .Values.secret.signingKey -}}
{{- include "shopfloor.secretName" . -}}
{{- end -}}
{{- end -}}

{{/* Secrets only the collector needs: the InfluxDB token (it sends the outbox) and the MQTT
password (it subscribes). The gateway reads the local copy and never gets them. */}}
{{- define "shopfloor.collectorEnv" -}}
{{- $influx := include "shopfloor.influxTokenRef" . -}}
{{- if and .Values.influxdb.enabled $influx }}
- name: INFLUX_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ index (splitList "/" $influx) 0 }}
      key: {{ index (splitList "/" $influx) 1 }}
{{- end }}
{{- $mqtt := include "shopfloor.mqttPasswordRef" . -}}
{{- if and .Values.mqtt.enabled $mqtt }}
- name: MQTT_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ index (splitList "/" $mqtt) 0 }}
      key: {{ index (splitList "/" $mqtt) 1 }}
{{- end }}
{{- end -}}

{{/* The group view's group file (shopfloor serve --group): the plants' site files from their
releases' ConfigMaps, the central InfluxDB, the tokens file from a Secret. */}}
{{- define "shopfloor.groupFile" -}}
{{- $g := .Values.groupView -}}
{{- $sites := list -}}
{{- range $g.siteConfigMaps -}}
{{- $sites = append $sites (printf "/etc/shopfloor/sites/%s/site.yaml" .) -}}
{{- end -}}
{{- $i := $g.influxdb -}}
{{- $db := dict "url" (required "groupView.influxdb.url is required" $i.url) "api" $i.api "measurement" $i.measurement -}}
{{- if eq $i.api "v2" -}}
{{- $_ := set $db "bucket" (required "groupView.influxdb.bucket is required with api v2" $i.bucket) -}}
{{- else -}}
{{- $_ := set $db "database" (required "groupView.influxdb.database is required with api v1" $i.database) -}}
{{- end -}}
{{- if $i.retentionPolicy -}}
{{- $_ := set $db "retention_policy" $i.retentionPolicy -}}
{{- end -}}
{{- if $i.credentialsSecret.name -}}
{{- if $i.username -}}
{{- $_ := set $db "username" $i.username -}}
{{- $_ := set $db "password" (dict "env" "INFLUX_PASSWORD") -}}
{{- else -}}
{{- $_ := set $db "token" (dict "env" "INFLUX_TOKEN") -}}
{{- end -}}
{{- end -}}
{{- $file := dict "version" 1 "group" (dict "id" $g.group.id "name" $g.group.name) "sites" $sites "influxdb" $db "auth" (dict "tokens_file" (printf "/etc/shopfloor/tokens/%s" $g.tokensSecret.key)) "server" (dict "host" "0.0.0.0" "port" (int $g.port)) -}}
{{- toYaml $file -}}
{{- end -}}

{{- define "shopfloor.groupName" -}}
{{- printf "%s-group" (include "shopfloor.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shopfloor.groupSelector" -}}
app.kubernetes.io/name: {{ include "shopfloor.name" . }}-group
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
