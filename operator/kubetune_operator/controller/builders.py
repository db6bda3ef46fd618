"""Pure builders: a FineTuneJob/EvalJob spec -> the ConfigMap, headless Service and batch/v1 Job dicts.

No API calls here (dask-kubernetes `build_*_spec` pattern): every function is unit-tested on its output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from kubetune_operator.api import (
    API_VERSION,
    EvalJobSpec,
    FineTuneJobSpec,
    PodTemplate,
    ResourcesSpec,
    RunPolicy,
    StorageSpec,
)
from kubetune_operator.api.common import EVAL_GRACE_SECONDS, FINETUNE_GRACE_SECONDS
from kubetune_operator.controller.names import (
    ANNOTATION_COMPLETION_INDEX,
    CONFIG_DIR,
    CONFIG_FILE,
    DISRUPTION_CONDITION,
    KIND_EVAL,
    KIND_FINETUNE,
    LABEL_ATTEMPT,
    LABEL_KUEUE_QUEUE,
    child_job_name,
    child_labels,
    config_map_name,
    network_policy_name,
    service_name,
)
from kubetune_operator.controller.settings import OperatorSettings

CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
STORAGE_RETRY_SECONDS_ENV = "KUBETUNE_STORAGE_RETRY_SECONDS"
"""The workloads' S3 retry window (read by the shared storage layer in the pod), set from the operator's
--pod-storage-retry-seconds."""
OPTIONAL_CREDENTIAL_KEYS = ("AWS_SESSION_TOKEN",)


@dataclass(frozen=True)
class Owner:
    """The parent object, as far as its children need to know it."""

    kind: str
    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        # blockOwnerDeletion: a foreground deletion of the parent waits for its children.
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def metadata(self, name: str, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": {**child_labels(self.kind, self.name), **(extra_labels or {})},
            "ownerReferences": [self.reference()],
        }


def render_run_config(owner: Owner, spec: FineTuneJobSpec | EvalJobSpec) -> str:
    """The manifest the pod reads with `--config`: the spec only (Secrets are referenced by name)."""
    document = {
        "apiVersion": API_VERSION,
        "kind": owner.kind,
        # The uid lets the trainer tell its own output from another job's (OutputInUse).
        "metadata": {"name": owner.name, "namespace": owner.namespace, "uid": owner.uid},
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    return yaml.safe_dump(document, sort_keys=False)


def build_config_map(owner: Owner, spec: FineTuneJobSpec | EvalJobSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": owner.metadata(config_map_name(owner.name, owner.kind)),
        "data": {CONFIG_FILE: render_run_config(owner, spec)},
    }


def build_headless_service(owner: Owner) -> dict[str, Any]:
    """Gives every worker pod the DNS name `<job>-<index>.<service>` used as the rendezvous address."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(service_name(owner.name)),
        "spec": {
            "clusterIP": "None",
            "selector": child_labels(owner.kind, owner.name),
            # Rank 0 must be resolvable before it is Ready, or the other ranks cannot rendezvous.
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": 29500, "targetPort": 29500}],
        },
    }


def build_network_policy(owner: Owner, settings: OperatorSettings) -> dict[str, Any]:
    """Ingress to the job's pods: from its own pods on any port (c10d rendezvous, NCCL/gloo pick ports),
    and to the progress/metrics port from `settings.network_policy_metrics_from` (operator, Prometheus).

    Egress stays open (S3, the judge endpoint). Without an enforcing CNI the object is inert.
    """
    pods = {"matchLabels": child_labels(owner.kind, owner.name)}
    ingress: list[dict[str, Any]] = [{"from": [{"podSelector": pods}]}]
    if settings.network_policy_metrics_from:
        ingress.append(
            {
                "from": [dict(peer) for peer in settings.network_policy_metrics_from],
                "ports": [{"protocol": "TCP", "port": settings.progress_port}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": owner.metadata(network_policy_name(owner.name, owner.kind)),
        "spec": {"podSelector": pods, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def build_storage_env(storage: StorageSpec) -> list[dict[str, Any]]:
    """S3 settings; credentials only as secretKeyRef (never copied), else the ambient AWS chain."""
    env: list[dict[str, Any]] = [
        {"name": "AWS_DEFAULT_REGION", "value": storage.region},
        {"name": "AWS_REGION", "value": storage.region},
    ]
    if storage.endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": storage.endpoint})
    if storage.credentials_secret:
        for key in CREDENTIAL_KEYS + OPTIONAL_CREDENTIAL_KEYS:
            ref: dict[str, Any] = {"name": storage.credentials_secret, "key": key}
            if key in OPTIONAL_CREDENTIAL_KEYS:
                ref["optional"] = True
            env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def termination_grace_seconds(kind: str, run_policy: RunPolicy) -> int:
    """runPolicy.terminationGracePeriodSeconds, else the kind's default: a trainer checkpoints on SIGTERM
    (minutes for a large model), an evaluator saves nothing."""
    if run_policy.termination_grace_period_seconds is not None:
        return run_policy.termination_grace_period_seconds
    return FINETUNE_GRACE_SECONDS if kind == KIND_FINETUNE else EVAL_GRACE_SECONDS


def build_resources(resources: ResourcesSpec) -> dict[str, Any]:
    amounts: dict[str, str] = {}
    if resources.cpu:
        amounts["cpu"] = resources.cpu
    if resources.memory:
        amounts["memory"] = resources.memory
    if resources.gpus_per_node:
        amounts[resources.gpu_resource] = str(resources.gpus_per_node)
    if resources.scratch:
        # The scratch emptyDir is the pod's only writable disk (read-only root): its size is the pod's.
        amounts["ephemeral-storage"] = resources.scratch
    # Requests equal limits: GPUs must, and equal cpu/memory gives the pods Guaranteed QoS.
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}


def build_launch_command(
    owner: Owner, spec: FineTuneJobSpec, attempt: int, settings: OperatorSettings
) -> list[str]:
    """`accelerate launch` with the gang's geometry, then the trainer module (or the module directly)."""
    config = ["--config", f"{CONFIG_DIR}/{CONFIG_FILE}"]
    resources = spec.resources
    num_processes = resources.nodes * resources.processes_per_node
    if settings.launcher == "python" or num_processes == 1:
        # One process needs no launcher, and must have none: accelerate's single-process launcher would be
        # the container's PID 1 without a SIGTERM handler, which the kernel then never delivers, so the
        # trainer would be SIGKILLed at the end of the grace period without its checkpoint. The trainer
        # itself handles SIGTERM (torch elastic, the multi-process launcher, forwards it).
        return [settings.python_executable, "-m", settings.trainer_module, *config]
    command = [
        settings.accelerate_executable,
        "launch",
        "--num_machines",
        str(resources.nodes),
        "--machine_rank",
        "$(KUBETUNE_NODE_RANK)",
        "--main_process_ip",
        master_address(owner, attempt),
        "--main_process_port",
        str(settings.main_process_port),
        "--num_processes",
        str(num_processes),
    ]
    # Also on CPU: `--cpu` with several processes silently runs one (measured); multi_gpu uses gloo there.
    command.append("--multi_gpu")
    return [*command, "-m", settings.trainer_module, *config]


def master_address(owner: Owner, attempt: int) -> str:
    """Rank 0's stable DNS name: `<job>-0.<service>` (Indexed Job hostname + headless Service)."""
    return f"{child_job_name(owner.name, attempt)}-0.{service_name(owner.name)}"


def security_context() -> tuple[dict[str, Any], dict[str, Any]]:
    """Pod and container securityContext of the `restricted` Pod Security profile, read-only root."""
    pod = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    container = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return pod, container


SCRATCH_DIR = "/tmp"


def scratch_volumes(
    size: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes, mounts and env that make a read-only root filesystem workable for trainer and evaluator.

    Everything they write goes under /tmp (an emptyDir): the downloaded model and checkpoint staging
    (KUBETUNE_WORK_DIR defaults to $TMPDIR/kubetune), the evaluator's model download (tempfile), and, with
    HOME=/tmp, every cache under ~ (Hugging Face, torch/triton, accelerate, matplotlib via XDG_CACHE_HOME).
    /dev/shm is memory-backed: the container runtime's default is 64 MiB, too small for DataLoader workers
    and NCCL. `size`: resources.scratch, the emptyDir's sizeLimit.
    """
    volumes = [
        {"name": "scratch", "emptyDir": {"sizeLimit": size} if size else {}},
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
    ]
    mounts = [
        {"name": "scratch", "mountPath": SCRATCH_DIR},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    env = [
        {"name": "HOME", "value": SCRATCH_DIR},
        {"name": "TMPDIR", "value": SCRATCH_DIR},
        {"name": "XDG_CACHE_HOME", "value": f"{SCRATCH_DIR}/.cache"},
    ]
    return volumes, mounts, env


def _pod_template(
    owner: Owner,
    attempt: int,
    container: dict[str, Any],
    *,
    overrides: PodTemplate,
    run_policy: RunPolicy,
    settings: OperatorSettings,
    subdomain: str | None,
    scrape: bool,
    scratch_size: str | None,
) -> dict[str, Any]:
    pod_security, container_security = security_context()
    pod_security["runAsUser"] = settings.run_as_user
    pod_security["runAsGroup"] = settings.run_as_user
    container["securityContext"] = container_security
    scratch, scratch_mounts, scratch_env = scratch_volumes(scratch_size)
    container["volumeMounts"] = [*container.get("volumeMounts", []), *scratch_mounts]
    container["env"] = [*container.get("env", []), *scratch_env]
    annotations = dict(overrides.annotations)
    if scrape:
        # One template serves every index, so all pods carry these; only rank 0 serves /metrics and the
        # Prometheus job keeps completion index 0 (see docs/operator.md).
        annotations.update(
            {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(settings.progress_port),
                "prometheus.io/path": "/metrics",
            }
        )
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": pod_security,
        "containers": [container],
        # Workloads never call the Kubernetes API: no token in the pod, whatever its ServiceAccount.
        "automountServiceAccountToken": False,
        # Suspend, gang restarts, deadlines, deletion and drains stop pods with SIGTERM: the trainer then
        # saves a checkpoint, which must fit in this window or the pod is SIGKILLed halfway through it.
        "terminationGracePeriodSeconds": termination_grace_seconds(owner.kind, run_policy),
        "volumes": [{"name": "config", "configMap": {"name": config_map_name(owner.name, owner.kind)}}],
    }
    spec["volumes"].extend(scratch)
    if subdomain:
        spec["subdomain"] = subdomain
    if overrides.node_selector:
        spec["nodeSelector"] = dict(overrides.node_selector)
    if overrides.tolerations:
        spec["tolerations"] = list(overrides.tolerations)
    if overrides.affinity:
        spec["affinity"] = dict(overrides.affinity)
    if overrides.priority_class_name:
        spec["priorityClassName"] = overrides.priority_class_name
    if overrides.service_account_name:
        spec["serviceAccountName"] = overrides.service_account_name
    # Our labels win over user labels: the Service selector and the operator's own lookups rely on them.
    labels = {**overrides.labels, **child_labels(owner.kind, owner.name), LABEL_ATTEMPT: str(attempt)}
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}


def _common_env(owner: Owner, attempt: int, settings: OperatorSettings) -> list[dict[str, Any]]:
    return [
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "KUBETUNE_JOB_NAME", "value": owner.name},
        {"name": "KUBETUNE_RESTART", "value": str(attempt)},
        {"name": "KUBETUNE_METRICS_PORT", "value": str(settings.progress_port)},
        {"name": STORAGE_RETRY_SECONDS_ENV, "value": f"{settings.pod_storage_retry_seconds:g}"},
    ]


def _job(
    owner: Owner,
    attempt: int,
    template: dict[str, Any],
    *,
    nodes: int,
    suspend: bool,
    queue_name: str | None,
) -> dict[str, Any]:
    labels = {LABEL_ATTEMPT: str(attempt)}
    if queue_name:
        labels[LABEL_KUEUE_QUEUE] = queue_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": owner.metadata(child_job_name(owner.name, attempt, owner.kind), labels),
        "spec": {
            "completionMode": "Indexed",
            "completions": nodes,
            "parallelism": nodes,
            # Restarts belong to the operator and take the whole gang: one failed pod fails the Job.
            "backoffLimit": 0,
            # A pod that Kubernetes disrupts (eviction, preemption, drain) fails the Job with reason
            # PodFailurePolicy, which outlives the pod and tells the operator to restart the gang without
            # spending maxRestarts (observe.py); the Job also waits until the pod stops, i.e. after its
            # SIGTERM checkpoint.
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onPodConditions": [{"type": DISRUPTION_CONDITION, "status": "True"}],
                    }
                ]
            },
            # Kueue admits a queued Job by unsuspending it; it must therefore start suspended.
            "suspend": suspend or bool(queue_name),
            "template": template,
        },
    }


def build_worker_job(
    owner: Owner, spec: FineTuneJobSpec, attempt: int, settings: OperatorSettings
) -> dict[str, Any]:
    """The Indexed Job of one attempt: `nodes` pods, rank from the completion index."""
    resources = spec.resources
    env = [
        *_common_env(owner, attempt, settings),
        {
            "name": "KUBETUNE_NODE_RANK",
            "valueFrom": {
                "fieldRef": {"fieldPath": f"metadata.annotations['{ANNOTATION_COMPLETION_INDEX}']"}
            },
        },
        {"name": "KUBETUNE_NUM_NODES", "value": str(resources.nodes)},
        {"name": "KUBETUNE_PROCESSES_PER_NODE", "value": str(resources.processes_per_node)},
        {"name": "KUBETUNE_MASTER_ADDR", "value": master_address(owner, attempt)},
        {"name": "KUBETUNE_MASTER_PORT", "value": str(settings.main_process_port)},
        # torch elastic (accelerate's multi-process launcher) passes SIGTERM on to the processes and
        # SIGKILLs them after this many seconds, 30 by default: give them the pod's whole grace period.
        {
            "name": "TORCH_ELASTIC_SHUTDOWN_TIMEOUT",
            "value": str(termination_grace_seconds(owner.kind, spec.run_policy)),
        },
        *build_storage_env(spec.storage),
    ]
    container: dict[str, Any] = {
        "name": "trainer",
        "image": spec.image or settings.trainer_image,
        "command": build_launch_command(owner, spec, attempt, settings),
        "env": env,
        "ports": [
            {"name": "rendezvous", "containerPort": settings.main_process_port},
            {"name": "metrics", "containerPort": settings.progress_port},
        ],
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    resources_block = build_resources(resources)
    if resources_block:
        container["resources"] = resources_block
    template = _pod_template(
        owner,
        attempt,
        container,
        overrides=spec.pod_template,
        run_policy=spec.run_policy,
        settings=settings,
        subdomain=service_name(owner.name),
        scrape=True,
        scratch_size=resources.scratch,
    )
    return _job(
        owner,
        attempt,
        template,
        nodes=resources.nodes,
        suspend=spec.run_policy.suspend,
        queue_name=spec.run_policy.queue_name,
    )


def build_evaluator_job(
    owner: Owner, spec: EvalJobSpec, attempt: int, settings: OperatorSettings
) -> dict[str, Any]:
    """`resources.nodes` evaluator pods (one unless sharded); they read the rendered config (with the
    resolved model URI) and score, each the batches of its rank (kubetune_evaluator.shard); rank 0 merges
    the others' shares, found under output.uri by the job's UID and attempt, and publishes."""
    env = [
        *_common_env(owner, attempt, settings),
        {"name": "KUBETUNE_JOB_UID", "value": owner.uid},
        {
            "name": "KUBETUNE_NODE_RANK",
            "valueFrom": {
                "fieldRef": {"fieldPath": f"metadata.annotations['{ANNOTATION_COMPLETION_INDEX}']"}
            },
        },
        {"name": "KUBETUNE_NUM_NODES", "value": str(spec.resources.nodes)},
        {"name": "KUBETUNE_PROCESSES_PER_NODE", "value": str(spec.resources.processes_per_node)},
        *build_storage_env(spec.storage),
    ]
    if spec.judge is not None and spec.judge.api_key_secret:
        env.append(
            {
                "name": "OPENAI_API_KEY",
                "valueFrom": {"secretKeyRef": {"name": spec.judge.api_key_secret, "key": "OPENAI_API_KEY"}},
            }
        )
        # The endpoint the key may be sent to, from the same Secret: the evaluator refuses any other
        # (optional here so that a Secret without it fails with a clear InvalidSpec, not a config error).
        secret_endpoint = {"name": spec.judge.api_key_secret, "key": "endpoint", "optional": True}
        env.append({"name": "KUBETUNE_JUDGE_KEY_ENDPOINT", "valueFrom": {"secretKeyRef": secret_endpoint}})
    container: dict[str, Any] = {
        "name": "evaluator",
        "image": spec.image or settings.evaluator_image,
        "command": [
            settings.python_executable,
            "-m",
            settings.evaluator_module,
            "--config",
            f"{CONFIG_DIR}/{CONFIG_FILE}",
        ],
        "env": env,
        # The evaluator serves its score gauges here (kubetune_eval_*), like the trainer's rank 0.
        "ports": [{"name": "metrics", "containerPort": settings.progress_port}],
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    resources_block = build_resources(spec.resources)
    if resources_block:
        container["resources"] = resources_block
    template = _pod_template(
        owner,
        attempt,
        container,
        overrides=spec.pod_template,
        run_policy=spec.run_policy,
        settings=settings,
        subdomain=None,
        scrape=True,
        scratch_size=spec.resources.scratch,
    )
    return _job(
        owner,
        attempt,
        template,
        nodes=spec.resources.nodes,
        suspend=spec.run_policy.suspend,
        queue_name=spec.run_policy.queue_name,
    )


def owner_from_body(kind: str, body: dict[str, Any]) -> Owner:
    metadata = body["metadata"]
    if kind not in (KIND_FINETUNE, KIND_EVAL):
        raise ValueError(f"unknown kind {kind}")
    return Owner(kind=kind, name=metadata["name"], namespace=metadata["namespace"], uid=metadata["uid"])
