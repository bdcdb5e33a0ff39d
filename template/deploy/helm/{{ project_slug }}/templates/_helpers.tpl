{{/*
Names, labels and the one pod specification every workload of the chart shares.
Workloads differ only in what they pass to "app.podSpec": the component name, the arguments of
`python -m <package>`, the ConfigMap and ServiceAccount to use, and whether the pod serves HTTP
(ports, probes, preStop). Image, settings, secret files, security context and resources come from
one place, so a new workload (worker, scheduler, CronJob) is a few lines.
*/}}

{{- define "app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "app.fullname" -}}
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

{{- define "app.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object; "app.selectorLabels" is the immutable subset. */}}
{{- define "app.labels" -}}
helm.sh/chart: {{ include "app.chart" . }}
{{ include "app.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector of one component's pods (web, worker, ...). Call with (dict "root" . "component" "web"). */}}
{{- define "app.componentSelector" -}}
{{ include "app.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "app.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "app.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "app.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Pull policy: the one set, else IfNotPresent for a digest (a digest names one immutable image,
so the node's copy is the same image) and Always for a tag (a tag can be moved).
*/}}
{{- define "app.pullPolicy" -}}
{{- .Values.image.pullPolicy | default (ternary "IfNotPresent" "Always" (not (empty .Values.image.digest))) }}
{{- end }}

{{/* The container port: the service's own PORT setting. */}}
{{- define "app.port" -}}
{{- .Values.config.PORT | default "8000" | int }}
{{- end }}

{{/* The internal port (metrics, admin routes): the service's own ADMIN_PORT setting. */}}
{{- define "app.adminPort" -}}
{{- .Values.config.ADMIN_PORT | default "8001" | int }}
{{- end }}

{{/* Where secret files are mounted: the service's own SECRETS_DIR setting. */}}
{{- define "app.secretsDir" -}}
{{- .Values.config.SECRETS_DIR | default "/run/secrets" }}
{{- end }}

{{/*
Shutdown budget: preStop sleep + SHUTDOWN_DRAIN_SECONDS + SHUTDOWN_GRACE_SECONDS + margin must fit
in terminationGracePeriodSeconds, or the kubelet SIGKILLs the process mid-request. Rendering fails
when it does not.
*/}}
{{- define "app.shutdownBudget" -}}
{{- $drain := .Values.config.SHUTDOWN_DRAIN_SECONDS | default "5" | float64 | ceil | int }}
{{- $grace := .Values.config.SHUTDOWN_GRACE_SECONDS | default "20" | float64 | ceil | int }}
{{- add .Values.lifecycle.preStopSleepSeconds $drain $grace .Values.lifecycle.shutdownMarginSeconds }}
{{- end }}

{{- define "app.checkShutdownBudget" -}}
{{- $needed := include "app.shutdownBudget" . | int }}
{{- if lt (int .Values.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least lifecycle.preStopSleepSeconds + config.SHUTDOWN_DRAIN_SECONDS + config.SHUTDOWN_GRACE_SECONDS + lifecycle.shutdownMarginSeconds = %d" (int .Values.terminationGracePeriodSeconds) $needed) }}
{{- end }}
{{- end }}

{{/*
Server processes per web pod: the service's own WEB_CONCURRENCY setting (a supervisor starts that
many processes). Each one uses at most one core and takes its own memory and connection pools, so
the budgets count processes, not pods.
*/}}
{{- define "app.webProcesses" -}}
{{- $value := .Values.config.WEB_CONCURRENCY | default "1" | toString }}
{{- if not (regexMatch "^([1-9]|[1-5][0-9]|6[0-4])$" $value) }}
{{- fail (printf "config.WEB_CONCURRENCY must be 1 to 64 (server processes per pod, as the service accepts), not %q" $value) }}
{{- end }}
{{- $value | int }}
{{- end }}

{{/*
The most web pods a release runs at once, for the connection budgets, as JSON
{"replicas", "surge", "pods"}: autoscaling.maxReplicas (or replicaCount) plus what a rolling
update adds (rollingUpdate.maxSurge, a percentage rounded up).
*/}}
{{- define "app.worstCaseWebPods" -}}
{{- $replicas := ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled | int }}
{{- $surge := .Values.rollingUpdate.maxSurge | toString }}
{{- $surgePods := 0 }}
{{- if hasSuffix "%" $surge }}
{{- $surgePods = div (add (mul $replicas (trimSuffix "%" $surge | int)) 99) 100 }}
{{- else }}
{{- $surgePods = $surge | int }}
{{- end }}
{{- dict "replicas" $replicas "surge" $surgePods "pods" (add $replicas $surgePods) | toJson }}
{{- end }}

{{/*
Kubernetes quantities as integers, for the budgets. Call with (dict "value" <quantity> "name"
<the value's path, for the error>). A YAML number is taken as it is (Helm reads numbers as
floats, which print as 5.36870912e+08, so they are never parsed as text).
  "app.cpuMillicores": "2" or 2 -> 2000, 1.5 -> 1500, "500m" -> 500
  "app.memoryBytes":   "512Mi" -> 536870912, "1G" -> 1000000000, 536870912 -> 536870912;
                       binary Ki Mi Gi Ti Pi Ei, decimal k (or K) M G T P E, or plain bytes
*/}}
{{- define "app.cpuMillicores" -}}
{{- if kindIs "string" .value }}
{{- $text := trim .value }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?m?$" $text) }}
{{- fail (printf "%s: %q is not a CPU quantity this chart reads (e.g. \"2\", 1.5, \"500m\")" .name .value) }}
{{- end }}
{{- if hasSuffix "m" $text }}
{{- round (trimSuffix "m" $text | float64) 0 | int64 }}
{{- else }}
{{- round (mulf ($text | float64) 1000) 0 | int64 }}
{{- end }}
{{- else }}
{{- round (mulf (.value | float64) 1000) 0 | int64 }}
{{- end }}
{{- end }}

{{- define "app.memoryBytes" -}}
{{- if kindIs "string" .value }}
{{- $text := trim .value }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$" $text) }}
{{- fail (printf "%s: %q is not a memory quantity this chart reads (e.g. 512Mi, 1Gi, 500M, or bytes)" .name .value) }}
{{- end }}
{{- $unit := regexReplaceAll "^[0-9.]+" $text "" }}
{{- $factors := dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "Ei" 1152921504606846976 "k" 1000 "K" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "P" 1000000000000000 "E" 1000000000000000000 }}
{{- round (mulf (trimSuffix $unit $text | float64) (get $factors $unit)) 0 | int64 }}
{{- else }}
{{- round (.value | float64) 0 | int64 }}
{{- end }}
{{- end }}

{{/* Bytes as the largest binary unit that divides them (671088640 -> 640Mi), else bytes. */}}
{{- define "app.formatBytes" -}}
{{- $bytes := . | int64 }}
{{- $shown := printf "%d" $bytes }}
{{- range $unit := list "Ki" "Mi" "Gi" "Ti" }}
{{- $factor := get (dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776) $unit | int64 }}
{{- if and (gt $bytes 0) (eq (mod $bytes $factor) 0) }}
{{- $shown = printf "%d%s" (div $bytes $factor) $unit }}
{{- end }}
{{- end }}
{{- $shown }}
{{- end }}

{{/* The ConfigMap data: the service's settings, by their environment variable names. */}}
{{- define "app.configData" -}}
{{- $data := dict }}
{{- range $key, $value := .Values.config }}
{{- $_ := set $data $key ($value | toString) }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/* The feature flags ConfigMap's name, when featureFlags is set (hooks run before it exists). */}}
{{- define "app.featureFlagsConfigMap" -}}
{{- if .Values.featureFlags }}
{{- printf "%s-flags" (include "app.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "app.featureFlagsDir" -}}/etc/feature-flags{{- end }}

{{/* The shared files volume (sharedStorage, storage_provider=local): its claim, when enabled. */}}
{{- define "app.sharedStorageClaim" -}}
{{- $shared := .Values.sharedStorage | default dict }}
{{- if $shared.enabled }}
{{- $shared.existingClaim | default (printf "%s-files" (include "app.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/*
Pod spec of every workload. Call with a dict:
  root: the top context; component: label value; args: arguments of `python -m <package>`;
  configMap: ConfigMap name; serviceAccountName; serving: true for the HTTP server (ports,
  probes, preStop, grace period); restartPolicy: for Jobs; hook: true for Helm hooks, which
  run before the release's own objects (the shared files claim) exist; for workloads that do
  not serve HTTP, optionally livenessProbe (a probe object) and terminationGracePeriodSeconds.
*/}}
{{- define "app.podSpec" -}}
{{- $root := .root }}
{{- $values := $root.Values }}
{{- $sharedClaim := ternary "" (include "app.sharedStorageClaim" $root) (.hook | default false) -}}
{{- $flags := ternary "" (include "app.featureFlagsConfigMap" $root) (.hook | default false) -}}
serviceAccountName: {{ .serviceAccountName }}
automountServiceAccountToken: {{ $values.serviceAccount.automountToken }}
{{- with $values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $values.podSecurityContext | nindent 2 }}
{{- if .restartPolicy }}
restartPolicy: {{ .restartPolicy }}
{{- end }}
{{- if .serving }}
terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
{{- else if .terminationGracePeriodSeconds }}
terminationGracePeriodSeconds: {{ .terminationGracePeriodSeconds }}
{{- end }}
containers:
  - name: {{ .component }}
    image: {{ include "app.image" $root | quote }}
    imagePullPolicy: {{ include "app.pullPolicy" $root }}
    args:
      {{- toYaml .args | nindent 6 }}
    envFrom:
      - configMapRef:
          name: {{ .configMap }}
    {{- if $flags }}
    env:
      - name: FEATURE_FLAGS_FILE
        value: {{ printf "%s/flags.json" (include "app.featureFlagsDir" $root) | quote }}
    {{- end }}
    {{- if .serving }}
    ports:
      - name: http
        containerPort: {{ include "app.port" $root }}
        protocol: TCP
      - name: admin
        containerPort: {{ include "app.adminPort" $root }}
        protocol: TCP
    startupProbe:
      httpGet:
        path: /startupz
        port: http
      {{- toYaml $values.probes.startup | nindent 6 }}
    livenessProbe:
      httpGet:
        path: /livez
        port: http
      {{- toYaml $values.probes.liveness | nindent 6 }}
    readinessProbe:
      httpGet:
        path: /readyz
        port: http
      {{- toYaml $values.probes.readiness | nindent 6 }}
    lifecycle:
      preStop:
        exec:
          command: ["sleep", "{{ $values.lifecycle.preStopSleepSeconds }}"]
    {{- else if .livenessProbe }}
    livenessProbe:
      {{- toYaml .livenessProbe | nindent 6 }}
    {{- end }}
    securityContext:
      {{- toYaml $values.securityContext | nindent 6 }}
    resources:
      {{- toYaml (.resources | default $values.resources) | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- if $values.existingSecret }}
      - name: secrets
        mountPath: {{ include "app.secretsDir" $root }}
        readOnly: true
      {{- end }}
      {{- if $sharedClaim }}
      - name: shared-files
        mountPath: {{ $values.config.STORAGE_LOCAL_PATH }}
      {{- end }}
      {{- if $flags }}
      # The directory, never a subPath: a subPath mount does not see ConfigMap updates.
      - name: feature-flags
        mountPath: {{ include "app.featureFlagsDir" $root }}
        readOnly: true
      {{- end }}
      {{- with $values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ $values.tmpSizeLimit }}
  {{- if $values.existingSecret }}
  - name: secrets
    secret:
      secretName: {{ $values.existingSecret }}
      defaultMode: 0440
  {{- end }}
  {{- if $sharedClaim }}
  - name: shared-files
    persistentVolumeClaim:
      claimName: {{ $sharedClaim }}
  {{- end }}
  {{- if $flags }}
  - name: feature-flags
    configMap:
      name: {{ $flags }}
  {{- end }}
  {{- with $values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
