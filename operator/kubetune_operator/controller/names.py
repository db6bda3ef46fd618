"""Deterministic names and labels of the children of a FineTuneJob/EvalJob.

Names are derived from the parent and the attempt number only, so a handler that runs twice (retry,
operator restart, second replica) asks for the same object and gets a 409 instead of a duplicate.
"""

from __future__ import annotations

import re
from typing import Final

LABEL_JOB_NAME: Final = "kubetune.io/job-name"
LABEL_KIND: Final = "kubetune.io/kind"
LABEL_ATTEMPT: Final = "kubetune.io/attempt"
LABEL_KUEUE_QUEUE: Final = "kueue.x-k8s.io/queue-name"
ANNOTATION_COMPLETION_INDEX: Final = "batch.kubernetes.io/job-completion-index"

KIND_FINETUNE: Final = "FineTuneJob"
KIND_EVAL: Final = "EvalJob"

CONFIG_DIR: Final = "/etc/kubetune"
CONFIG_FILE: Final = "config.yaml"

_ATTEMPT_SUFFIX = re.compile(r"^(?P<parent>.+)-r(?P<attempt>\d+)$")


def child_job_name(parent: str, attempt: int) -> str:
    """`<parent>-r<attempt>`: one batch/v1 Job per attempt; a gang restart is a new attempt."""
    return f"{parent}-r{attempt}"


def attempt_of(job_name: str, parent: str) -> int | None:
    """The attempt number encoded in a child Job's name, None when the name is not one of ours."""
    match = _ATTEMPT_SUFFIX.match(job_name)
    if match is None or match["parent"] != parent:
        return None
    return int(match["attempt"])


def config_map_name(parent: str) -> str:
    return f"{parent}-config"


def service_name(parent: str) -> str:
    """The headless Service that gives worker pods their DNS names (`<job>-<index>.<service>`)."""
    return parent


def child_labels(kind: str, parent: str) -> dict[str, str]:
    return {LABEL_JOB_NAME: parent, LABEL_KIND: kind}


def label_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
