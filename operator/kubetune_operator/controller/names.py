"""Deterministic names and labels of the children of a FineTuneJob/EvalJob.

Names are derived from the parent's kind and name and the attempt number only, so a handler that runs
twice (retry, operator restart, second replica) asks for the same object and gets a 409 instead of a
duplicate. A 409 is only "ours" when the existing object's ownerReference carries the parent's UID
(attempts.py); names only keep the kinds apart, identity is the UID.

The names of the two kinds are disjoint, so a FineTuneJob and an EvalJob may share a name (`review-rating`
and its evaluation): FineTuneJob Jobs end in `-r<n>` and its ConfigMap in `-config`, EvalJob Jobs end in
`-eval-<n>` and its ConfigMap in `-eval`; no name can end both ways. Only FineTuneJobs have a Service.
"""

from __future__ import annotations

import re
from typing import Final

from kubetune_operator.api.naming import ATTEMPT_INFIX, CONFIG_SUFFIX

LABEL_JOB_NAME: Final = "kubetune.io/job-name"
LABEL_KIND: Final = "kubetune.io/kind"
LABEL_ATTEMPT: Final = "kubetune.io/attempt"
LABEL_KUEUE_QUEUE: Final = "kueue.x-k8s.io/queue-name"
ANNOTATION_COMPLETION_INDEX: Final = "batch.kubernetes.io/job-completion-index"
# The pod condition Kubernetes adds before it stops a pod from outside (eviction, preemption, drain).
DISRUPTION_CONDITION: Final = "DisruptionTarget"
# On an attempt's Job: how many gang restarts before it were disruptions, which spend no maxRestarts.
ANNOTATION_FREE_RESTARTS: Final = "kubetune.io/free-restarts"

KIND_FINETUNE: Final = "FineTuneJob"
KIND_EVAL: Final = "EvalJob"

CONFIG_DIR: Final = "/etc/kubetune"
CONFIG_FILE: Final = "config.yaml"

# Shared with the API models, which bound the job's name so that the longest child name fits.
_ATTEMPT_INFIX: Final = ATTEMPT_INFIX
_CONFIG_SUFFIX: Final = CONFIG_SUFFIX


def child_job_name(parent: str, attempt: int, kind: str = KIND_FINETUNE) -> str:
    """`<parent>-r<attempt>` (`<parent>-eval-<attempt>` for an EvalJob): one batch/v1 Job per attempt; a
    gang restart is a new attempt."""
    return f"{parent}{_ATTEMPT_INFIX[kind]}{attempt}"


def attempt_of(job_name: str, parent: str, kind: str = KIND_FINETUNE) -> int | None:
    """The attempt number encoded in a child Job's name, None when the name is not one of ours."""
    match = re.fullmatch(rf"{re.escape(parent)}{_ATTEMPT_INFIX[kind]}(?P<attempt>\d+)", job_name)
    return int(match["attempt"]) if match is not None else None


def config_map_name(parent: str, kind: str = KIND_FINETUNE) -> str:
    return f"{parent}{_CONFIG_SUFFIX[kind]}"


def network_policy_name(parent: str, kind: str = KIND_FINETUNE) -> str:
    """The job's NetworkPolicy: the ConfigMap's name (kind-disjoint, length-bounded), another resource."""
    return config_map_name(parent, kind)


def service_name(parent: str) -> str:
    """The headless Service that gives worker pods their DNS names (`<job>-<index>.<service>`)."""
    return parent


def child_labels(kind: str, parent: str) -> dict[str, str]:
    return {LABEL_JOB_NAME: parent, LABEL_KIND: kind}


def label_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
