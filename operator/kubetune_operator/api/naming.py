"""What a job's name must satisfy so that every child object can carry it.

The operator derives its children's names from the job's name (controller/names.py uses the suffixes
below), and the longest of them bounds the name: an Indexed Job's pods get the hostname
`<job name>-<completion index>`, a DNS label of at most 63 characters that the API server checks when the
Job is created, and the Job's name is also the value of the pods' `batch.kubernetes.io/job-name` label (at
most 63 characters). A FineTuneJob's name is also the name of its headless Service, a DNS-1035 label (it
starts with a letter). Checking this at admission turns a child the API server would refuse later into a
rejected manifest.
"""

from __future__ import annotations

import re
from typing import Final

KIND_FINETUNE: Final = "FineTuneJob"
KIND_EVAL: Final = "EvalJob"

MAX_RESTARTS: Final = 100
"""Bound of `runPolicy.maxRestarts`: attempt numbers (in child Job names) never exceed it."""
MAX_NODES: Final = 512
"""Bound of `resources.nodes`: completion indexes (in pod hostnames) stay below it."""

ATTEMPT_INFIX: Final = {KIND_FINETUNE: "-r", KIND_EVAL: "-eval-"}
"""Child Job of attempt n: `<name><infix><n>`; the infixes keep the two kinds' names disjoint."""
CONFIG_SUFFIX: Final = {KIND_FINETUNE: "-config", KIND_EVAL: "-eval"}
"""The ConfigMap holding the rendered run config."""

DNS_LABEL_LENGTH: Final = 63
DNS_1035_LABEL_PATTERN: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_1123_LABEL_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
NAME_PATTERN: Final = {KIND_FINETUNE: DNS_1035_LABEL_PATTERN, KIND_EVAL: DNS_1123_LABEL_PATTERN}
_PATTERN_TEXT: Final = {
    KIND_FINETUNE: "lower-case letters, digits and '-', starting with a letter (it names a Service)",
    KIND_EVAL: "lower-case letters, digits and '-' (no dots: it is part of pod hostnames)",
}


def longest_child_suffix(kind: str) -> str:
    """What the longest pod hostname adds to the job's name: the last attempt's infix and the last index."""
    last_index = MAX_NODES - 1 if kind == KIND_FINETUNE else 0  # an EvalJob runs one pod
    return f"{ATTEMPT_INFIX[kind]}{MAX_RESTARTS}-{last_index}"


def max_name_length(kind: str) -> int:
    """FineTuneJob: 63 - len("-r100-511") = 54; EvalJob: 63 - len("-eval-100-0") = 52."""
    return DNS_LABEL_LENGTH - len(longest_child_suffix(kind))


def name_problem(kind: str, name: str) -> str | None:
    """Why `name` cannot name a job of `kind` (its children could not be created), None when it can."""
    limit = max_name_length(kind)
    if len(name) > limit:
        return (
            f"must be at most {limit} characters (it is {len(name)}): child pods are named "
            f"<name>{longest_child_suffix(kind)}, a DNS label of at most {DNS_LABEL_LENGTH}"
        )
    if not re.fullmatch(NAME_PATTERN[kind], name):
        return f"{name!r} must consist of {_PATTERN_TEXT[kind]}"
    return None


def name_rules(kind: str) -> list[dict[str, str]]:
    """The CEL rules (at the CRD's root, where `self.metadata.name` is visible) that say the same; the
    messages name the field, a fieldPath into metadata is refused by the API server."""
    limit = max_name_length(kind)
    return [
        {
            "rule": f"self.metadata.name.size() <= {limit}",
            "message": f"metadata.name must be at most {limit} characters: child pods are named "
            f"<name>{longest_child_suffix(kind)}, a DNS label of at most {DNS_LABEL_LENGTH}",
        },
        {
            "rule": f"self.metadata.name.matches('{NAME_PATTERN[kind]}')",
            "message": f"metadata.name must consist of {_PATTERN_TEXT[kind]}",
        },
    ]
