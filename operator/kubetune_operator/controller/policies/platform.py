"""The platform policy: what a job may ask of the cluster beyond its own namespace's quota.

Creating a FineTuneJob or EvalJob creates pods, so the platform team (the chart's `policy` values, passed
as JSON in KUBETUNE_POLICY) limits what those pods may be: image repositories, ServiceAccounts,
PriorityClasses, pod annotation keys and GPUs per job. The chart's ValidatingAdmissionPolicy applies the
same rules at admission (templates/admission-policy.yaml); this check is the one that holds without it.

A list left out (None) allows anything; an empty list allows nothing (for ServiceAccounts and
PriorityClasses, "" is the namespace default / no priority class and must be listed to be allowed).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kubetune_operator.api.common import JobStatus, PodTemplate
from kubetune_operator.controller import reasons
from kubetune_operator.controller.conditions import is_true
from kubetune_operator.controller.status import Transition


class PlatformPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    allowed_image_repositories: tuple[str, ...] | None = Field(None, alias="allowedImageRepositories")
    """Repositories (`registry/path/name`, no tag or digest) spec.image may come from; an entry ending
    in `/` allows every repository under it."""
    allowed_service_accounts: tuple[str, ...] | None = Field(None, alias="allowedServiceAccounts")
    allowed_priority_classes: tuple[str, ...] | None = Field(None, alias="allowedPriorityClasses")
    allowed_annotation_keys: tuple[str, ...] | None = Field(None, alias="allowedAnnotationKeys")
    """podTemplate.annotations keys passed to pods; an entry ending in `/` allows every key with that
    prefix (`example.com/`)."""
    max_gpus_per_job: int = Field(0, ge=0, alias="maxGpusPerJob")
    """resources.nodes x resources.gpusPerNode at most; 0: no limit."""

    @classmethod
    def from_json(cls, text: str) -> PlatformPolicy:
        """The policy in KUBETUNE_POLICY; empty: no policy (everything allowed)."""
        return cls.model_validate_json(text) if text.strip() else cls()


def image_allowed(image: str, repositories: tuple[str, ...]) -> bool:
    """Whether `image` is `<repository>`, `<repository>:<tag>` or `<repository>@<digest>` of an allowed
    repository, or lies under an allowed `prefix/`. The same rule as the chart's CEL expression."""
    for repository in repositories:
        if repository.endswith("/"):
            if image.startswith(repository):
                return True
            continue
        rest = image[len(repository) :] if image.startswith(repository) else None
        # A tag or digest never holds "/": `kubetune/trainer:x/../evil` is not kubetune/trainer.
        if rest == "" or (rest is not None and rest[:1] in (":", "@") and "/" not in rest):
            return True
    return False


def _key_allowed(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == entry or (entry.endswith("/") and key.startswith(entry)) for entry in allowed)


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(f'"{value}"' for value in values) or "none"


def policy_violation(
    policy: PlatformPolicy, image: str, pod_template: PodTemplate, *, pods: int, gpus_per_pod: int
) -> str | None:
    """The first rule the job breaks, as a message naming the field, its value and what is allowed;
    None when it keeps them all. `pods`: the pods the job runs (an EvalJob runs one)."""
    allowed_images = policy.allowed_image_repositories
    if allowed_images is not None and not image_allowed(image, allowed_images):
        return f'spec.image "{image}" is not from an allowed repository (allowed: {_listed(allowed_images)})'
    accounts = policy.allowed_service_accounts
    account = pod_template.service_account_name
    if accounts is not None and account not in accounts:
        return (
            f'spec.podTemplate.serviceAccountName "{account}" is not allowed (allowed: {_listed(accounts)})'
        )
    classes = policy.allowed_priority_classes
    priority = pod_template.priority_class_name
    if classes is not None and priority not in classes:
        return f'spec.podTemplate.priorityClassName "{priority}" is not allowed (allowed: {_listed(classes)})'
    keys = policy.allowed_annotation_keys
    if keys is not None:
        for key in sorted(pod_template.annotations):
            if not _key_allowed(key, keys):
                return f'spec.podTemplate.annotations key "{key}" is not allowed (allowed: {_listed(keys)})'
    gpus = pods * gpus_per_pod
    if policy.max_gpus_per_job and gpus > policy.max_gpus_per_job:
        return (
            f"spec.resources: {pods} pod(s) x gpusPerNode {gpus_per_pod} = {gpus} GPUs is over the "
            f"limit of {policy.max_gpus_per_job} per job (allowed: at most {policy.max_gpus_per_job})"
        )
    return None


def policy_failure(
    policy: PlatformPolicy,
    previous: JobStatus,
    image: str,
    pod_template: PodTemplate,
    *,
    pods: int,
    gpus_per_pod: int,
) -> Transition | None:
    """Failed/PolicyViolation for a job that breaks the policy and has no children yet.

    Checked before the first child is created and not after: the fields it reads are immutable (CRD
    rules), so only a tightened policy could change the answer, and that must not fail jobs already
    running under the policy they were admitted with.
    """
    if is_true(previous.conditions, reasons.CREATED):
        return None
    violation = policy_violation(policy, image, pod_template, pods=pods, gpus_per_pod=gpus_per_pod)
    return None if violation is None else Transition("Failed", reasons.POLICY_VIOLATION, violation)
