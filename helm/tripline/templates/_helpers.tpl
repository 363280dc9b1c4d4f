{{/*
Shared helpers: names, labels, the merged component map, images, environment, probes and the
shutdown arithmetic. Every per-component template renders from "tripline.components".
*/}}

{{- define "tripline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tripline.fullname" -}}
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

{{- define "tripline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "api") */}}
{{- define "tripline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tripline.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component's objects: (dict "root" $ "component" "api") */}}
{{- define "tripline.labels" -}}
helm.sh/chart: {{ include "tripline.chart" .root }}
{{ include "tripline.selectorLabels" . }}
app.kubernetes.io/part-of: tripline
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* Every enabled component: `defaults` deep-merged under each entry of `components`.
Use as: $components := include "tripline.components" . | fromYaml */}}
{{- define "tripline.components" -}}
{{- $out := dict -}}
{{- range $name, $component := .Values.components -}}
{{- $merged := mergeOverwrite (deepCopy $.Values.defaults) (deepCopy (default dict $component)) -}}
{{- if $merged.enabled -}}
{{- $_ := set $out $name $merged -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{- define "tripline.componentName" -}}
{{- printf "%s-%s" (include "tripline.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Service of a component's ops port (probes, /metrics): (dict "root" $ "component" "api") */}}
{{- define "tripline.opsServiceName" -}}
{{- printf "%s-ops" (include "tripline.componentName" . | trunc 59 | trimSuffix "-") -}}
{{- end -}}

{{/* The label that tells the ops Service from the client one (the ServiceMonitor selects it). */}}
{{- define "tripline.opsServiceLabel" -}}
tripline/port: ops
{{- end -}}

{{- define "tripline.serviceAccountName" -}}
{{- if .c.serviceAccount.create -}}
{{- default (include "tripline.componentName" .) .c.serviceAccount.name -}}
{{- else -}}
{{- default "default" .c.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference from (dict "root" $ "image" $imageValues). */}}
{{- define "tripline.image" -}}
{{- $registry := default .root.Values.image.registry .image.registry -}}
{{- $tag := default .root.Chart.AppVersion .image.tag | toString -}}
{{- $ref := .image.repository -}}
{{- if $registry -}}{{- $ref = printf "%s/%s" $registry $ref -}}{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $ref .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref $tag -}}
{{- end -}}
{{- end -}}

{{- define "tripline.imagePullPolicy" -}}
{{- default .root.Values.image.pullPolicy .image.pullPolicy -}}
{{- end -}}

{{/* The image holding tripline-migrate: migrations.image, else the api component's image. */}}
{{- define "tripline.migrationsImage" -}}
{{- $api := mergeOverwrite (deepCopy .Values.defaults) (deepCopy (default dict .Values.components.api)) -}}
{{- $image := deepCopy $api.image -}}
{{- range $key, $value := .Values.migrations.image -}}
{{- if $value -}}{{- $_ := set $image $key $value -}}{{- end -}}
{{- end -}}
{{- include "tripline.image" (dict "root" . "image" $image) -}}
{{- end -}}

{{- define "tripline.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- printf "%s-credentials" (include "tripline.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* TRUSTED_HOSTS, normalised (probes and scrapes bypass the app's Host check). */}}
{{- define "tripline.trustedHosts" -}}
{{- $hosts := list -}}
{{- range (splitList "," (toString (default "" .Values.config.TRUSTED_HOSTS))) -}}
{{- if trim . -}}{{- $hosts = append $hosts (trim .) -}}{{- end -}}
{{- end -}}
{{- join "," $hosts -}}
{{- end -}}

{{/* Seconds from SIGTERM to exit, at worst, plus a margin: (dict "c" $component) */}}
{{- define "tripline.terminationGracePeriodSeconds" -}}
{{- $s := .c.shutdown -}}
{{- add (ceil $s.drainSeconds) (ceil $s.preStopSleepSeconds) $s.gracefulTimeoutSeconds $s.jobCompletionWaitSeconds $s.marginSeconds -}}
{{- end -}}

{{/* The Secret a component's Certificate fills: (dict "root" $ "component" "api" "c" $c) */}}
{{- define "tripline.certificateSecretName" -}}
{{- default (printf "%s-tls" (include "tripline.componentName" .)) .c.certificate.secretName -}}
{{- end -}}

{{/* A component's certified names, as a JSON list: certificate.dnsNames, else the Ingress's
hosts, else the route's hostnames. (dict "c" $c) */}}
{{- define "tripline.certificateDnsNames" -}}
{{- $names := .c.certificate.dnsNames -}}
{{- if and (not $names) .c.ingress.enabled -}}
{{- $names = list -}}
{{- range .c.ingress.hosts -}}{{- $names = append $names .host -}}{{- end -}}
{{- end -}}
{{- if and (not $names) .c.route.enabled -}}
{{- $names = .c.route.hostnames -}}
{{- end -}}
{{- default list $names | uniq | toJson -}}
{{- end -}}

{{/* The environment variables a component reads, as a JSON list: files/component-settings.yaml,
generated from the component's Settings class (scripts/chart_settings.py). (dict "root" $ "name" "api") */}}
{{- define "tripline.componentReads" -}}
{{- $all := .root.Files.Get "files/component-settings.yaml" | fromYaml -}}
{{- if not (hasKey $all .name) -}}
{{- fail (printf "components.%s: files/component-settings.yaml does not say which settings it reads (generate it from its Settings class: scripts/chart_settings.py, make charts-docs)" .name) -}}
{{- end -}}
{{- get $all .name | toJson -}}
{{- end -}}

{{/* A component's non-secret settings, the data of its ConfigMap: the `config` entries and the
tracing variables, only those the component reads (OTEL_*: every process's tracing).
(dict "root" $ "name" "api") */}}
{{- define "tripline.componentConfig" -}}
{{- $reads := include "tripline.componentReads" . | fromJsonArray -}}
{{- $data := dict -}}
{{- range $key, $value := .root.Values.config -}}
{{- if has $key $reads -}}{{- $_ := set $data $key (toString $value) -}}{{- end -}}
{{- end -}}
{{- if has "TRUSTED_HOSTS" $reads -}}
{{- $_ := set $data "TRUSTED_HOSTS" (include "tripline.trustedHosts" .root) -}}
{{- end -}}
{{- with .root.Values.tracing -}}
{{- if .endpoint -}}
{{- $_ := set $data "OTEL_EXPORTER_OTLP_ENDPOINT" (toString .endpoint) -}}
{{- $_ := set $data "OTEL_TRACES_SAMPLER" (toString .sampler) -}}
{{- $_ := set $data "OTEL_TRACES_SAMPLER_ARG" (toString .samplerRatio) -}}
{{- end -}}
{{- end -}}
{{- range $key := keys $data | sortAlpha }}
{{ $key }}: {{ get $data $key | quote }}
{{- end }}
{{- end -}}

{{/* Credentials as env vars from the Secret, those the component reads (`reads`, a list; all
when absent): (dict "root" $ "reads" $reads), or (dict "root" $ "databaseOnly" true) */}}
{{- define "tripline.secretEnv" -}}
{{- $secret := include "tripline.secretName" .root -}}
{{- $keys := .root.Values.secrets.keys -}}
{{- /* name, key in the Secret, optional */ -}}
{{- $vars := list (list "DATABASE_URL" $keys.databaseUrl false) -}}
{{- if not .databaseOnly -}}
{{- $vars = concat $vars (list
  (list "REDIS_URL" $keys.redisUrl false)
  (list "SECRET_KEY" $keys.secretKey false)
  (list "SECRET_KEY_PREVIOUS" (default "secret-key-previous" $keys.secretKeyPrevious) true)
  (list "SENTRY_DSN" $keys.sentryDsn true)
  (list "SMTP_PASSWORD" (default "smtp-password" $keys.smtpPassword) true)) -}}
{{- end -}}
{{- $reads := ternary .reads (list) (hasKey . "reads") -}}
{{- range $vars }}
{{- if or (not $reads) (has (index . 0) $reads) }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ index . 1 }}
      {{- if index . 2 }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The component's own environment, the variables it reads of these: (dict "root" $ "name"
"api" "c" $component); `env` entries are checked in "tripline.validate". */}}
{{- define "tripline.componentEnv" -}}
{{- $c := .c -}}
{{- $reads := include "tripline.componentReads" . | fromJsonArray -}}
{{- $image := mergeOverwrite (deepCopy .root.Values.image) (deepCopy $c.image) -}}
{{- $builtin := dict
  "SERVICE_NAME" .name
  "HOST" "0.0.0.0"
  "PORT" (toString $c.port)
  "OPS_PORT" (toString $c.opsPort)
  "VERSION" (toString (default .root.Chart.AppVersion $image.tag))
  "SHUTDOWN_DRAIN_SECONDS" (toString $c.shutdown.drainSeconds)
  "GRACEFUL_SHUTDOWN_TIMEOUT" (toString $c.shutdown.gracefulTimeoutSeconds)
-}}
{{- if $c.shutdown.jobCompletionWaitSeconds -}}
{{- $_ := set $builtin "JOB_COMPLETION_WAIT" (toString $c.shutdown.jobCompletionWaitSeconds) -}}
{{- end -}}
{{- $env := dict -}}
{{- range $key, $value := $builtin -}}
{{- if has $key $reads -}}{{- $_ := set $env $key $value -}}{{- end -}}
{{- end -}}
{{- range $key, $value := $c.env -}}
{{- $_ := set $env $key (toString $value) -}}
{{- end -}}
{{- range $key := keys $env | sortAlpha }}
- name: {{ $key }}
  value: {{ get $env $key | quote }}
{{- end }}
{{- end -}}

{{/* One httpGet probe: (dict "root" $ "probe" $c.readinessProbe) */}}
{{- define "tripline.probe" -}}
httpGet:
  path: {{ .probe.path }}
  port: ops
{{- with .probe.initialDelaySeconds }}
initialDelaySeconds: {{ . }}
{{- end }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
successThreshold: {{ default 1 .probe.successThreshold }}
{{- end -}}

{{/* The hardened container security context of Tripline's own containers. Only the app
containers may get a writable root filesystem (Tilt's live update, dev profile): init, hook and
test containers always keep it read-only. (dict "c" $component "readOnly" true) */}}
{{- define "tripline.containerSecurityContext" -}}
{{- $context := deepCopy .c.containerSecurityContext -}}
{{- if .readOnly -}}{{- $_ := set $context "readOnlyRootFilesystem" true -}}{{- end -}}
{{- toYaml $context }}
{{- end -}}

{{/* Fail with a readable message on combinations the schema cannot express. */}}
{{- define "tripline.validate" -}}
{{- $components := include "tripline.components" . | fromYaml -}}
{{- $prodLike := has (toString .Values.config.ENVIRONMENT) (list "staging" "prod") -}}
{{- if and $prodLike .Values.secrets.create -}}
{{- fail "secrets.create is for dev and CI only: with config.ENVIRONMENT staging or prod, store the credentials in a Secret of your own and set secrets.existingSecret" -}}
{{- end -}}
{{- if and (or $components .Values.migrations.enabled) (not .Values.secrets.existingSecret) (not .Values.secrets.create) -}}
{{- fail "no credentials: set secrets.existingSecret (a Secret with the keys in secrets.keys) or, for dev/CI, secrets.create=true with secrets.values" -}}
{{- end -}}
{{- if and .Values.secrets.create (not .Values.secrets.existingSecret) (or (not .Values.secrets.values.databaseUrl) (not .Values.secrets.values.redisUrl) (not .Values.secrets.values.secretKey)) -}}
{{- fail "secrets.create needs secrets.values.databaseUrl, secrets.values.redisUrl and secrets.values.secretKey" -}}
{{- end -}}
{{- if and .Values.devDatabases.enabled (or $components .Values.migrations.enabled) -}}
{{- fail "devDatabases must be a release of their own: the migrations hook runs before a release creates anything, so it cannot wait for a database that release would create. Install them first with -f values-dev-databases.yaml (tilt up does this)" -}}
{{- end -}}
{{- if and .Values.keda.enabled (not .Values.keda.scaleToZero) (gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) -}}
{{- fail "keda.minReplicaCount must not exceed keda.maxReplicaCount" -}}
{{- end -}}
{{- /* Each setting reaches only the components that read it: one read by none is a mistake. */ -}}
{{- $readers := .Files.Get "files/component-settings.yaml" | fromYaml -}}
{{- range $key, $_ := .Values.config -}}
{{- $read := false -}}
{{- range $readers -}}{{- if has $key . -}}{{- $read = true -}}{{- end -}}{{- end -}}
{{- if not $read -}}
{{- fail (printf "config.%s is read by no component (files/component-settings.yaml, generated from the Settings classes)" $key) -}}
{{- end -}}
{{- end -}}
{{- range $name, $c := $components -}}
{{- $reads := include "tripline.componentReads" (dict "root" $ "name" $name) | fromJsonArray -}}
{{- range $key, $_ := $c.env -}}
{{- if not (or (has $key $reads) (hasPrefix "OTEL_" $key)) -}}
{{- fail (printf "components.%s.env.%s: the %s component does not read %s (files/component-settings.yaml, generated from its Settings class); raw variables go in extraEnv" $name $key $name $key) -}}
{{- end -}}
{{- end -}}
{{- if eq (int $c.port) (int $c.opsPort) -}}
{{- fail (printf "components.%s.opsPort must differ from components.%s.port (the probes and /metrics are kept off the public port)" $name $name) -}}
{{- end -}}
{{- if and $c.ingress.enabled (not $c.service.enabled) -}}
{{- fail (printf "components.%s.ingress needs components.%s.service.enabled" $name $name) -}}
{{- end -}}
{{- if and $c.route.enabled (not $c.service.enabled) -}}
{{- fail (printf "components.%s.route needs components.%s.service.enabled" $name $name) -}}
{{- end -}}
{{- if and $c.route.enabled (not $c.route.parentRefs) -}}
{{- fail (printf "components.%s.route needs parentRefs: the Gateway (and listener) it attaches to" $name) -}}
{{- end -}}
{{- if and $c.route.enabled (not (trim (toString $.Values.config.FORWARDED_ALLOW_IPS))) -}}
{{- fail (printf "components.%s.route is enabled but config.FORWARDED_ALLOW_IPS is empty: every client would appear as the Gateway's proxy (one login limit for all). Set it to the Gateway proxies' addresses or CIDR (docs/deploying.md, \"Client addresses\")" $name) -}}
{{- end -}}
{{- if and $c.certificate.enabled (not $c.certificate.issuerRef.name) -}}
{{- fail (printf "components.%s.certificate needs issuerRef.name: the cert-manager (Cluster)Issuer that signs it" $name) -}}
{{- end -}}
{{- if and $c.certificate.enabled (not (include "tripline.certificateDnsNames" (dict "c" $c) | fromJsonArray)) -}}
{{- fail (printf "components.%s.certificate has no name to certify: set certificate.dnsNames, or the ingress hosts or route hostnames" $name) -}}
{{- end -}}
{{- if and $c.ingress.enabled (not (trim (toString $.Values.config.FORWARDED_ALLOW_IPS))) -}}
{{- fail (printf "components.%s.ingress is enabled but config.FORWARDED_ALLOW_IPS is empty: every client would appear as the ingress controller (one login limit for all). Set it to the ingress controller pods' addresses or CIDR (docs/deploying.md, \"Client addresses\")" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* NetworkPolicy egress rules: DNS, and one TCP port to some peers. */}}
{{- define "tripline.egress.dns" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with .dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "tripline.egress.port" -}}
- ports:
    - port: {{ .port }}
      protocol: TCP
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
