{{/*
Helpers of the Immunizer chart. Component templates take a dict:
  (dict "root" $ "name" "<service>")   # <service>: monitor, analyze, plan, execute, dashboard
and read that service's block of values with (index .root.Values .name).
*/}}

{{/* Chart name. */}}
{{- define "immunizer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; truncated to 63 characters (DNS label). */}}
{{- define "immunizer.fullname" -}}
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

{{- define "immunizer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "immunizer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "immunizer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "immunizer.labels" -}}
helm.sh/chart: {{ include "immunizer.chart" . }}
{{ include "immunizer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: immunizer
{{- end }}

{{/* Per-component names and labels; argument: (dict "root" $ "name" "<service>"). */}}
{{- define "immunizer.componentName" -}}
{{- printf "%s-%s" (include "immunizer.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "immunizer.componentSelectorLabels" -}}
{{ include "immunizer.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "immunizer.componentLabels" -}}
{{ include "immunizer.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "immunizer.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "immunizer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "immunizer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret with the signing key and dashboard credentials (the chart's or an existing one). */}}
{{- define "immunizer.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "immunizer.fullname" . }}
{{- end }}
{{- end }}

{{/* Secret and key holding the Kafka SASL password. */}}
{{/* The TLS Secret of a component's identity (execute: server certificate; dashboard: operator). */}}
{{- define "immunizer.tlsSecretName" -}}
{{- $t := .root.Values.controlPlane.tls -}}
{{- $given := ternary $t.executeSecret $t.dashboardSecret (eq .name "execute") -}}
{{- $given | default (printf "%s-%s-tls" (include "immunizer.fullname" .root) .name) -}}
{{- end }}

{{/* The Secret holding execute.key, plan.key and the public keys (immunizer pki init). */}}
{{- define "immunizer.signingSecretName" -}}
{{- .Values.controlPlane.signing.secret | default (printf "%s-signing" (include "immunizer.fullname" .)) -}}
{{- end }}

{{- define "immunizer.kafkaSaslSecretName" -}}
{{- if .Values.kafka.sasl.existingSecret }}
{{- .Values.kafka.sasl.existingSecret }}
{{- else }}
{{- include "immunizer.secretName" . }}
{{- end }}
{{- end }}

{{- define "immunizer.kafkaSaslSecretKey" -}}
{{- if .Values.kafka.sasl.existingSecret }}
{{- .Values.kafka.sasl.existingSecretPasswordKey }}
{{- else }}
{{- print "kafka-sasl-password" }}
{{- end }}
{{- end }}

{{/* Where the Kafka CA bundle is mounted. */}}
{{- define "immunizer.kafkaCaDir" -}}
/etc/immunizer/kafka-ca
{{- end }}

{{/*
Replica bound: a consumer group never gives a partition to two members, so monitor and
analyze replicas beyond the number of model-keyed partitions would sit idle.
*/}}
{{- define "immunizer.checkReplicas" -}}
{{- $v := index .root.Values .name }}
{{- $parts := int .root.Values.kafka.topics.modelKeyedPartitions }}
{{- $as := $v.autoscaling | default dict }}
{{- if $as.enabled }}
{{- if gt (int $as.maxReplicas) $parts }}
{{- fail (printf "%s.autoscaling.maxReplicas (%d) exceeds kafka.topics.modelKeyedPartitions (%d): replicas beyond the partition count get no partition" .name (int $as.maxReplicas) $parts) }}
{{- end }}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) }}
{{- fail (printf "%s.autoscaling.minReplicas (%d) exceeds maxReplicas (%d)" .name (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- end }}
{{- else if gt (int $v.replicaCount) $parts }}
{{- fail (printf "%s.replicaCount (%d) exceeds kafka.topics.modelKeyedPartitions (%d): replicas beyond the partition count get no partition" .name (int $v.replicaCount) $parts) }}
{{- end }}
{{- end }}

{{/* The service's configuration as IMMUNIZER_* variables (docs/conventions.md). */}}
{{- define "immunizer.configmap" -}}
{{- $root := .root }}
{{- $v := index $root.Values .name }}
{{- $kafka := $root.Values.kafka }}
{{- $env := dict "IMMUNIZER_KAFKA_BOOTSTRAP" $kafka.bootstrap "IMMUNIZER_KAFKA_TOPIC_PREFIX" $kafka.topicPrefix "IMMUNIZER_KAFKA_SECURITY_PROTOCOL" $kafka.securityProtocol "IMMUNIZER_LOG_LEVEL" $root.Values.logLevel "IMMUNIZER_HTTP_LISTEN" "0.0.0.0" "IMMUNIZER_HTTP_PORT" $v.httpPort }}
{{- if $kafka.sasl.mechanism }}
{{- $_ := set $env "IMMUNIZER_KAFKA_SASL_MECHANISM" $kafka.sasl.mechanism }}
{{- $_ := set $env "IMMUNIZER_KAFKA_SASL_USERNAME" $kafka.sasl.username }}
{{- end }}
{{- if $kafka.tls.caSecret }}
{{- $_ := set $env "IMMUNIZER_KAFKA_SSL_CA_LOCATION" (printf "%s/%s" (include "immunizer.kafkaCaDir" $root) $kafka.tls.caSecretKey) }}
{{- end }}
{{- if eq .name "execute" }}
{{- $_ := set $env "IMMUNIZER_EXECUTE_GRPC_LISTEN" (printf "0.0.0.0:%v" $v.grpcPort) }}
{{- end }}
{{- if eq .name "dashboard" }}
{{- $_ := set $env "IMMUNIZER_DASHBOARD_EXECUTE_ADDRESS" (printf "%s:%v" (include "immunizer.componentName" (dict "root" $root "name" "execute")) $root.Values.execute.grpcPort) }}
{{- end }}
{{- /* values <service>.env last: it overrides what the chart derives. */}}
{{- range $key, $value := $v.env }}
{{- $_ := set $env $key $value }}
{{- end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "immunizer.componentName" . }}
  labels:
    {{- include "immunizer.componentLabels" . | nindent 4 }}
data:
  {{- range $key, $value := $env }}
  {{ $key }}: {{ $value | toString | quote }}
  {{- end }}
{{- end }}

{{/* Optional config file (values <service>.config), passed with --config. */}}
{{- define "immunizer.configfile" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "immunizer.componentName" . }}-file
  labels:
    {{- include "immunizer.componentLabels" . | nindent 4 }}
data:
  config.yaml: |
    {{- toYaml (index .root.Values .name).config | nindent 4 }}
{{- end }}

{{/* Environment variables taken from Secrets. */}}
{{- define "immunizer.secretEnv" -}}
{{- $root := .root }}
{{- if $root.Values.kafka.sasl.mechanism }}
- name: IMMUNIZER_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "immunizer.kafkaSaslSecretName" $root }}
      key: {{ include "immunizer.kafkaSaslSecretKey" $root }}
{{- end }}
{{- if eq .name "execute" }}
- name: IMMUNIZER_EXECUTE_TLS_CA_FILE
  value: /etc/immunizer/tls/ca.crt
- name: IMMUNIZER_EXECUTE_TLS_CERT_FILE
  value: /etc/immunizer/tls/tls.crt
- name: IMMUNIZER_EXECUTE_TLS_KEY_FILE
  value: /etc/immunizer/tls/tls.key
- name: IMMUNIZER_EXECUTE_DIRECTIVE_SIGNING_KEY_FILE
  value: /etc/immunizer/keys/execute.key
- name: IMMUNIZER_EXECUTE_PLAN_PUBLIC_KEYS
  value: {{ $keys := list }}{{ range $root.Values.controlPlane.signing.trustedPlanKeys }}{{ $keys = append $keys (printf "/etc/immunizer/keys/%s" .) }}{{ end }}{{ join "," $keys | quote }}
{{- end }}
{{- if eq .name "plan" }}
- name: IMMUNIZER_PLAN_SIGNING_KEY_FILE
  value: /etc/immunizer/keys/plan.key
{{- end }}
{{- if eq .name "dashboard" }}
- name: IMMUNIZER_DASHBOARD_EXECUTE_TLS_CA_FILE
  value: /etc/immunizer/tls/ca.crt
- name: IMMUNIZER_DASHBOARD_EXECUTE_TLS_CERT_FILE
  value: /etc/immunizer/tls/tls.crt
- name: IMMUNIZER_DASHBOARD_EXECUTE_TLS_KEY_FILE
  value: /etc/immunizer/tls/tls.key
- name: IMMUNIZER_DASHBOARD_AUTH_USER
  valueFrom:
    secretKeyRef:
      name: {{ include "immunizer.secretName" $root }}
      key: {{ $root.Values.secrets.keys.dashboardUser }}
- name: IMMUNIZER_DASHBOARD_AUTH_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "immunizer.secretName" $root }}
      key: {{ $root.Values.secrets.keys.dashboardPassword }}
{{- end }}
{{- end }}

{{- define "immunizer.deployment" -}}
{{- $root := .root }}
{{- $v := index $root.Values .name }}
{{- $as := $v.autoscaling | default dict }}
{{- $args := $v.args }}
{{- if $v.config }}
{{- $args = concat (list "--config" "/etc/immunizer/config/config.yaml") $v.args }}
{{- end }}
{{- $secretEnv := include "immunizer.secretEnv" . }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "immunizer.componentName" . }}
  labels:
    {{- include "immunizer.componentLabels" . | nindent 4 }}
spec:
  {{- if not $as.enabled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    {{- toYaml $v.strategy | nindent 4 }}
  selector:
    matchLabels:
      {{- include "immunizer.componentSelectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "immunizer.componentSelectorLabels" . | nindent 8 }}
      annotations:
        checksum/config: {{ include "immunizer.configmap" . | sha256sum }}
        {{- if $v.config }}
        checksum/config-file: {{ include "immunizer.configfile" . | sha256sum }}
        {{- end }}
        {{- if not $root.Values.secrets.existingSecret }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- end }}
        {{- if $root.Values.metrics.podAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $v.httpPort | quote }}
        prometheus.io/path: /metrics
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "immunizer.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: 30
      containers:
        - name: {{ .name }}
          image: {{ include "immunizer.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [{{ printf "immunizer-%s" .name | quote }}]
          {{- with $args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "immunizer.componentName" . }}
          {{- if trim $secretEnv }}
          env:
            {{- $secretEnv | trim | nindent 12 }}
          {{- end }}
          ports:
            - name: http
              containerPort: {{ $v.httpPort }}
              protocol: TCP
            {{- if eq .name "execute" }}
            - name: grpc
              containerPort: {{ $v.grpcPort }}
              protocol: TCP
            {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $v.config }}
            - name: config
              mountPath: /etc/immunizer/config
              readOnly: true
            {{- end }}
            {{- if or (eq .name "execute") (eq .name "dashboard") }}
            - name: tls
              mountPath: /etc/immunizer/tls
              readOnly: true
            {{- end }}
            {{- if or (eq .name "execute") (eq .name "plan") }}
            - name: signing-keys
              mountPath: /etc/immunizer/keys
              readOnly: true
            {{- end }}
            {{- if eq .name "dashboard" }}
            # The incident history (dashboard.data_dir, relative to the image's WORKDIR): kept
            # across container restarts; not across pod rescheduling.
            - name: dashboard-data
              mountPath: /var/lib/immunizer/dashboard-data
            {{- end }}
            {{- if $root.Values.kafka.tls.caSecret }}
            - name: kafka-ca
              mountPath: {{ include "immunizer.kafkaCaDir" $root }}
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- if $v.config }}
        - name: config
          configMap:
            name: {{ include "immunizer.componentName" . }}-file
        {{- end }}
        {{- if eq .name "dashboard" }}
        - name: dashboard-data
          emptyDir: {}
        {{- end }}
        {{- if or (eq .name "execute") (eq .name "dashboard") }}
        # cert-manager-compatible Secret (tls.crt, tls.key, ca.crt) of this pod's identity.
        - name: tls
          secret:
            secretName: {{ include "immunizer.tlsSecretName" . }}
            defaultMode: 0440
            items:
              - {key: tls.crt, path: tls.crt}
              - {key: tls.key, path: tls.key}
              - {key: ca.crt, path: ca.crt}
        {{- end }}
        {{- if or (eq .name "execute") (eq .name "plan") }}
        # Only this pod's own signing key (and, for execute, the plan keys it trusts).
        - name: signing-keys
          secret:
            secretName: {{ include "immunizer.signingSecretName" $root }}
            defaultMode: 0440
            items:
              {{- if eq .name "execute" }}
              - {key: execute.key, path: execute.key}
              {{- range $root.Values.controlPlane.signing.trustedPlanKeys }}
              - {key: {{ . }}, path: {{ . }}}
              {{- end }}
              {{- else }}
              - {key: plan.key, path: plan.key}
              {{- end }}
        {{- end }}
        {{- if $root.Values.kafka.tls.caSecret }}
        - name: kafka-ca
          secret:
            secretName: {{ $root.Values.kafka.tls.caSecret }}
            defaultMode: 0444
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{- define "immunizer.service" -}}
{{- $v := index .root.Values .name }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "immunizer.componentName" . }}
  labels:
    {{- include "immunizer.componentLabels" . | nindent 4 }}
  {{- with $v.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $v.service.type }}
  selector:
    {{- include "immunizer.componentSelectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $v.httpPort }}
      targetPort: http
      protocol: TCP
    {{- if eq .name "execute" }}
    - name: grpc
      port: {{ $v.grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    {{- end }}
{{- end }}

{{/* CPU-based HPA; scale-down is slow because every change rebalances the consumer group. */}}
{{- define "immunizer.hpa" -}}
{{- $v := index .root.Values .name }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "immunizer.componentName" . }}
  labels:
    {{- include "immunizer.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "immunizer.componentName" . }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 60
      policies:
        - type: Pods
          value: 2
          periodSeconds: 60
    scaleDown:
      stabilizationWindowSeconds: 600
      policies:
        - type: Pods
          value: 1
          periodSeconds: 300
{{- end }}

{{- define "immunizer.pdb" -}}
{{- $v := index .root.Values .name }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "immunizer.componentName" . }}
  labels:
    {{- include "immunizer.componentLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ $v.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "immunizer.componentSelectorLabels" . | nindent 6 }}
{{- end }}

{{/* Everything one service needs: ConfigMap, Deployment, Service, [config file], [HPA], [PDB]. */}}
{{- define "immunizer.component" -}}
{{- $v := index .root.Values .name }}
{{- $as := $v.autoscaling | default dict }}
{{- if $v.enabled }}
{{- if hasKey $v "autoscaling" }}
{{- include "immunizer.checkReplicas" . }}
{{- end }}
{{ include "immunizer.configmap" . }}
---
{{ include "immunizer.deployment" . }}
---
{{ include "immunizer.service" . }}
{{- if $v.config }}
---
{{ include "immunizer.configfile" . }}
{{- end }}
{{- if $as.enabled }}
---
{{ include "immunizer.hpa" . }}
{{- end }}
{{- if $v.pdb.enabled }}
---
{{ include "immunizer.pdb" . }}
{{- end }}
{{- end }}
{{- end }}
