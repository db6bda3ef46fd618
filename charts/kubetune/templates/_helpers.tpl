{{/* Names and labels shared by every template. */}}

{{- define "kubetune.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name; "kubetune" when the release is called kubetune. */}}
{{- define "kubetune.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object but the component, which differs between the operator and workloads. */}}
{{- define "kubetune.baseLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kubetune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubetune
{{- end -}}

{{- define "kubetune.labels" -}}
{{ include "kubetune.baseLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubetune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubetune.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubetune.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubetune.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The trainer's or evaluator's image (list . "trainer"): workloadImages.<name>, or the Dockerfile's
target of that name at the chart's appVersion (the tags `make images` builds). */}}
{{- define "kubetune.workloadImage" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $image := index $root.Values.workloadImages $name -}}
{{- default (printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag)) $image.image -}}
{{- end -}}

{{/* true when the operator watches a fixed list of namespaces (Roles instead of ClusterRoles). */}}
{{- define "kubetune.namespaced" -}}
{{- if .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/* Whether the operator's rules include `get` on secrets: rbac.secretExistenceCheck true, or
"namespaced" in namespaced mode (never a cluster-wide read of every Secret by default). */}}
{{- define "kubetune.secretCheck" -}}
{{- $check := .Values.rbac.secretExistenceCheck -}}
{{- if or (eq (toString $check) "true") (and (eq (toString $check) "namespaced") (include "kubetune.namespaced" .)) -}}true{{- end -}}
{{- end -}}

{{/* Namespaces that get the workload ServiceAccount. */}}
{{- define "kubetune.workloadNamespaces" -}}
{{- $namespaces := .Values.workloadServiceAccount.namespaces | default .Values.watchNamespaces -}}
{{- toJson ($namespaces | default list) -}}
{{- end -}}

{{/*
The operator's permissions inside a namespace (cluster-wide mode: in every namespace). One list, so
the ClusterRole and the namespaced Roles can never drift apart. docs/deploy.md explains each rule.
*/}}
{{/* NetworkPolicyPeers admitted to the jobs' progress port (JSON): this release's operator pods, then
networkPolicy.metricsFrom. The namespace is matched by the label the API server sets on every namespace. */}}
{{- define "kubetune.metricsFrom" -}}
{{- $namespace := dict "matchLabels" (dict "kubernetes.io/metadata.name" .Release.Namespace) -}}
{{- $pods := dict "matchLabels" (include "kubetune.selectorLabels" . | fromYaml) -}}
{{- $operator := dict "namespaceSelector" $namespace "podSelector" $pods -}}
{{- prepend (.Values.networkPolicy.metricsFrom | default list) $operator | toJson -}}
{{- end -}}

{{- define "kubetune.operatorRules" -}}
# Watch the custom resources, add/remove the finalizer (patch), delete expired ones (ttlSecondsAfterFinished).
- apiGroups: ["kubetune.io"]
  resources: ["finetunejobs", "evaljobs"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["kubetune.io"]
  resources: ["finetunejobs/status", "evaljobs/status"]
  verbs: ["get", "patch"]
# Children carry ownerReferences with blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement
# admission plugin (OpenShift, hardened clusters) only allows with `update` on the owner's finalizers.
- apiGroups: ["kubetune.io"]
  resources: ["finetunejobs/finalizers", "evaljobs/finalizers"]
  verbs: ["update"]
# One Indexed Job per attempt: created, listed by label, suspended/resumed (patch), deleted on restart.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "create", "patch", "delete"]
# The rendered run config and the headless Service of the rendezvous; garbage-collected with the owner.
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "create"]
{{- if .Values.networkPolicy.enabled }}
# The job's NetworkPolicy (ingress to its pods): created before its Job, read back to check its owner on a
# 409; garbage-collected with the owner, so no delete, and no list (the operator never enumerates them).
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create"]
{{- end }}
# Pod phases, exit codes and termination messages of the workers; IPs to poll rank 0's /progress.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
# kubectl describe shows what happened; a job whose pods never start quotes the Job's FailedCreate Events
# (quota, ServiceAccount, PriorityClass, Pod Security), read by involvedObject.uid (PendingTimeout).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "list"]
{{- if include "kubetune.secretCheck" . }}
# Fail fast when spec.storage.credentialsSecret is missing: a metadata-only GET by name. No list/watch:
# the operator cannot enumerate Secrets, and it never copies their values (pods use secretKeyRef).
# Cluster-wide only with rbac.secretExistenceCheck=true (see values.yaml).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
{{- end -}}

{{/* A list of strings as a CEL list literal (JSON is valid CEL for strings); null: the empty list. */}}
{{- define "kubetune.celList" -}}
{{- toJson (. | default list) -}}
{{- end -}}

{{/* A list of strings as the CEL string literal `"a", "b"` ("none" when empty), for messages that read
like the operator's (controller/policies/platform.py). */}}
{{- define "kubetune.celListText" -}}
{{- $quoted := list -}}
{{- range . }}{{ $quoted = append $quoted (printf "%q" .) }}{{ end -}}
{{- toJson (join ", " $quoted | default "none") -}}
{{- end -}}
