"""The lifecycle shared by FineTuneJob and EvalJob: attempts of a child Job, gang restarts, suspend,
deadline. Orchestrates the pure modules through the `Kube` layer; every step is idempotent.

Crash safety: the attempt number lives in the child Job's name (`<name>-r<n>`), and a restart creates
attempt n+1 *before* deleting attempt n. Whatever point the operator dies at, the next reconcile finds
the highest attempt in the cluster and continues from it: never two live Jobs, never a lost restart.
The count of restarts that spent no budget (disruptions) travels the same way, as an annotation of the
attempt's Job (`kubetune.io/free-restarts`), created with it in one request.

Back-off: after a failure that spends maxRestarts, the failed attempt's Job stays until the back-off has
passed (policies/restart.py), and only then is the next one created: the wait needs no state of its own.

Identity: only children whose ownerReference carries this job's UID count (ownership.py). A name taken by
a deleted job of the same kind and name is freed and created again; a name taken by anything else fails
the job with ChildConflict. A child the API server refuses (400/422: invalid, 403: quota, admission,
RBAC) fails the job with the server's message instead of retrying the same request for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubetune_operator.api import RunPolicy
from kubetune_operator.api.common import JobStatus, Phase
from kubetune_operator.api.timestamps import rfc3339
from kubetune_operator.controller import reasons
from kubetune_operator.controller.builders import Owner
from kubetune_operator.controller.failures import WorkerFailure
from kubetune_operator.controller.kube import Kube, KubeError
from kubetune_operator.controller.names import (
    ANNOTATION_FREE_RESTARTS,
    LABEL_ATTEMPT,
    attempt_of,
    child_labels,
    label_selector,
)
from kubetune_operator.controller.observe import AttemptState, observe_attempt
from kubetune_operator.controller.ownership import Claim, claim, describe_owners, owned_by
from kubetune_operator.controller.policies.deadline import deadline_exceeded
from kubetune_operator.controller.policies.pending import (
    DEFAULT_PENDING_TIMEOUT_SECONDS,
    only_unscheduled,
    pending_since,
    pending_timeout_message,
)
from kubetune_operator.controller.policies.restart import (
    MAX_RESTART_BACKOFF_SECONDS,
    decide_restart,
    failed_at,
    restart_backoff_seconds,
)
from kubetune_operator.controller.policies.suspend import desired_job_suspend
from kubetune_operator.controller.settings import OperatorSettings
from kubetune_operator.controller.status import Transition

ChildrenForAttempt = Callable[[int], list[dict[str, Any]]]
"""The objects of one attempt, the batch/v1 Job last (ConfigMap and Service first, so pods find them)."""


@dataclass(frozen=True)
class Workload:
    owner: Owner
    nodes: int
    run_policy: RunPolicy
    credentials_secret: str | None
    children: ChildrenForAttempt


@dataclass
class AttemptOutcome:
    transition: Transition
    attempt: int
    children_created: bool
    state: AttemptState | None = None
    notes: list[str] = field(default_factory=list)


def free_restarts(job: dict[str, Any]) -> int:
    """How many of the gang restarts before this attempt did not spend maxRestarts (disruptions)."""
    annotations = job.get("metadata", {}).get("annotations") or {}
    try:
        return max(0, int(annotations.get(ANNOTATION_FREE_RESTARTS, 0)))
    except ValueError:
        return 0


def with_free_restarts(job: dict[str, Any], count: int) -> None:
    if count:
        job["metadata"].setdefault("annotations", {})[ANNOTATION_FREE_RESTARTS] = str(count)


def _create(kube: Kube, obj: dict[str, Any]) -> bool | Transition:
    """Create one child: True when created, False when the name exists (409), a Failed transition when
    the API server refuses it for good."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    try:
        return kube.create(obj)
    except KubeError as error:
        if error.status in (400, 422):
            message = f'the API server rejected {kind} "{name}": {error.message}'
            return Transition("Failed", reasons.INVALID_SPEC, message)
        if error.status == 403 and "being terminated" not in error.message:
            message = f'the API server refused to create {kind} "{name}": {error.message}'
            return Transition("Failed", reasons.CHILD_REJECTED, message)
        raise


def _create_one(kube: Kube, owner: Owner, obj: dict[str, Any]) -> Transition | None:
    """None once the child exists and is ours; otherwise why not (Pending: try again, Failed: give up)."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    created = _create(kube, obj)
    if isinstance(created, Transition):
        return created
    if created:
        return None
    existing = kube.get(kind, owner.namespace, name)
    if existing is None:  # deleted between our create and get: the next reconcile creates it
        return Transition(
            "Pending", reasons.PODS_PENDING, f'{kind} "{name}" was just deleted; creating it again'
        )
    found = claim(existing, owner)
    if found is Claim.OURS:
        return None
    if found is Claim.FOREIGN:
        message = (
            f'{kind} "{name}" already exists and belongs to {describe_owners(existing)}, not to this '
            f"{owner.kind} (uid {owner.uid}); delete that {kind} or give the {owner.kind} another name"
        )
        return Transition("Failed", reasons.CHILD_CONFLICT, message)
    # Left by a deleted job of the same name: never adopted (its spec, pods and result are not ours).
    message = f'waiting for {kind} "{name}" of a deleted {owner.kind} of the same name to go away'
    try:
        kube.delete(kind, owner.namespace, name, uid=str(existing["metadata"].get("uid")))
    except KubeError as error:
        if error.status != 403:
            raise
        # RBAC without delete on this kind (the chart grants get/create on ConfigMaps and Services): the
        # garbage collector removes it, its owner being gone.
        return Transition("Pending", reasons.PODS_PENDING, message)
    created = _create(kube, obj)
    if isinstance(created, Transition):
        return created
    if created:
        return None
    return Transition("Pending", reasons.PODS_PENDING, message)


def _create_all(kube: Kube, owner: Owner, objects: list[dict[str, Any]]) -> Transition | None:
    """Create in order (the Job last); stop at the first child that is not ours yet."""
    for obj in objects:
        blocked = _create_one(kube, owner, obj)
        if blocked is not None:
            return blocked
    return None


def run_attempts(
    kube: Kube,
    workload: Workload,
    previous: JobStatus,
    settings: OperatorSettings,
    now: datetime,
) -> AttemptOutcome:
    owner = workload.owner
    listed = kube.list("Job", owner.namespace, label_selector(child_labels(owner.kind, owner.name)))
    jobs = [job for job in listed if owned_by(job, owner.uid)]
    attempts = {
        n: job
        for job in jobs
        if (n := attempt_of(job["metadata"]["name"], owner.name, owner.kind)) is not None
    }
    attempt = max([previous.restarts, *attempts])
    for stale, job in attempts.items():
        if stale < attempt and not job["metadata"].get("deletionTimestamp"):
            kube.delete("Job", owner.namespace, job["metadata"]["name"])
    current = attempts.get(attempt)

    if current is None:
        secret = workload.credentials_secret
        # Fail fast, before any pod: metadata only, so the operator never receives the credentials. Without
        # RBAC for it (None) the pod finds out instead: CreateContainerConfigError -> MissingSecret.
        if not attempts and secret and kube.exists_metadata_only("Secret", owner.namespace, secret) is False:
            message = (
                f'Secret "{secret}" (spec.storage.credentialsSecret) not found in namespace '
                f"{owner.namespace}; create it with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
            return AttemptOutcome(Transition("Failed", reasons.MISSING_SECRET, message), attempt, False)
        blocked = _create_all(kube, owner, workload.children(attempt))
        if blocked is not None:
            return AttemptOutcome(blocked, attempt, False)
        phase: Phase = "Restarting" if attempt > 0 else "Pending"
        if workload.run_policy.suspend or workload.run_policy.queue_name:
            return _suspended(workload, attempt)
        return AttemptOutcome(Transition(phase, reasons.PODS_PENDING, "child Job created"), attempt, True)

    if current.get("metadata", {}).get("deletionTimestamp"):
        # Deleted by someone else (a namespace being torn down, a user): its dying pods are no failure.
        # Once it is gone the same attempt is created again and the trainer resumes from its checkpoint.
        message = f"child Job {current['metadata']['name']} is being deleted"
        return AttemptOutcome(Transition("Pending", reasons.PODS_PENDING, message), attempt, True)

    if deadline_exceeded(previous.start_time, workload.run_policy.active_deadline_seconds, now):
        kube.delete("Job", owner.namespace, current["metadata"]["name"])
        message = f"running longer than activeDeadlineSeconds={workload.run_policy.active_deadline_seconds}"
        return AttemptOutcome(Transition("Failed", reasons.DEADLINE_EXCEEDED, message), attempt, True)

    job_suspended = bool(current.get("spec", {}).get("suspend"))
    desired = desired_job_suspend(workload.run_policy.suspend, workload.run_policy.queue_name, job_suspended)
    if desired is not None:
        kube.merge_patch("Job", owner.namespace, current["metadata"]["name"], {"spec": {"suspend": desired}})
        current = {**current, "spec": {**current.get("spec", {}), "suspend": desired}}

    selector = label_selector({**child_labels(owner.kind, owner.name), LABEL_ATTEMPT: str(attempt)})
    # Pods of this attempt's Job only (by its UID): a deleted namesake's pods may still be terminating.
    pods = [
        pod
        for pod in kube.list("Pod", owner.namespace, selector)
        if owned_by(pod, current["metadata"]["uid"])
    ]
    # The job's own bound covers unschedulable pods and the rest alike; unset, the operator's
    # --pending-timeout bounds unschedulable pods and anything else gets at least DEFAULT_PENDING_TIMEOUT.
    configured = workload.run_policy.pending_timeout_seconds
    state = observe_attempt(
        current, pods, workload.nodes, now, configured or settings.pending_timeout_seconds
    )
    if state.phase == "Pending":
        timeout = configured or max(DEFAULT_PENDING_TIMEOUT_SECONDS, settings.pending_timeout_seconds)
        timed_out = _pending_timed_out(kube, workload, current, pods, now, timeout=timeout)
        if timed_out is not None:
            return AttemptOutcome(timed_out, attempt, True, state)
    if state.phase == "Suspended":
        return _suspended(workload, attempt, state)
    if state.phase == "Failed" and state.failure is not None:
        free = free_restarts(current)
        decision = decide_restart(state.failure, attempt, workload.run_policy.max_restarts, free)
        if not decision.restart:
            return AttemptOutcome(
                Transition("Failed", decision.reason, decision.message), attempt, True, state
            )
        waiting = _backing_off(
            workload, current, pods, state.failure, spent=attempt - free, settings=settings, now=now
        )
        if waiting is not None:
            return AttemptOutcome(waiting, attempt, True, state)
        # Create the next attempt first, then remove this one (see the module docstring).
        next_job = workload.children(attempt + 1)[-1]
        with_free_restarts(next_job, free + (0 if state.failure.spends_budget else 1))
        blocked = _create_all(kube, owner, [next_job])
        if blocked is not None:
            return AttemptOutcome(blocked, attempt, True, state)
        kube.delete("Job", owner.namespace, current["metadata"]["name"])
        return AttemptOutcome(
            Transition("Restarting", decision.reason, decision.message), attempt + 1, True, state
        )
    if state.phase == "Pending" and attempt > 0 and previous.phase == "Restarting":
        return AttemptOutcome(Transition("Restarting", state.reason, state.message), attempt, True, state)
    return AttemptOutcome(Transition(state.phase, state.reason, state.message), attempt, True, state)


def _backing_off(
    workload: Workload,
    job: dict[str, Any],
    pods: list[dict[str, Any]],
    failure: WorkerFailure,
    *,
    spent: int,
    settings: OperatorSettings,
    now: datetime,
) -> Transition | None:
    """Restarting while the back-off after a budget-spending failure runs (counted from when the cluster
    recorded the failure, so an operator restart does not start it again); None once the gang may restart.
    The failed Job stays meanwhile: the Job controller has stopped its surviving pods, and it keeps the
    attempt's number in the cluster (the module docstring's crash safety)."""
    if not failure.spends_budget:
        return None  # evicted, preempted, drained: nothing in the job failed, the new pods go elsewhere
    delay = restart_backoff_seconds(spent, settings.restart_backoff_seconds)
    since = failed_at(job, pods)
    if delay <= 0 or since is None or (now - since).total_seconds() >= delay:
        return None
    max_restarts = workload.run_policy.max_restarts
    message = (
        f"back-off {delay:g}s (doubling after each restart, up to {MAX_RESTART_BACKOFF_SECONDS:g}s): the "
        f"next gang ({spent + 1}/{max_restarts} of maxRestarts) starts at "
        f"{rfc3339(since + timedelta(seconds=delay))}, after: {failure.message}"
    )
    return Transition("Restarting", failure.reason, message)


def _pending_timed_out(
    kube: Kube,
    workload: Workload,
    job: dict[str, Any],
    pods: list[dict[str, Any]],
    now: datetime,
    *,
    timeout: float,
) -> Transition | None:
    """Failed/PendingTimeout (Unschedulable when only the scheduler held them) once the attempt's pods
    have had `pendingTimeoutSeconds` to start; the Job is deleted so that pods created later hold no quota
    or GPUs for a job that has already failed."""
    since = pending_since(job)
    if since is None or (now - since).total_seconds() < timeout:
        return None  # the Events are only read once they are needed
    events = kube.events_about(workload.owner.namespace, str(job["metadata"]["uid"]))
    message = pending_timeout_message(
        job, pods, events, nodes=workload.nodes, timeout_seconds=timeout, now=now
    )
    if message is None:
        return None
    kube.delete("Job", workload.owner.namespace, job["metadata"]["name"], uid=str(job["metadata"]["uid"]))
    reason = reasons.UNSCHEDULABLE if only_unscheduled(pods, workload.nodes) else reasons.PENDING_TIMEOUT
    return Transition("Failed", reason, message)


def _suspended(workload: Workload, attempt: int, state: AttemptState | None = None) -> AttemptOutcome:
    if workload.run_policy.queue_name and not workload.run_policy.suspend:
        message = f"waiting for Kueue to admit the Job from queue {workload.run_policy.queue_name}"
        return AttemptOutcome(
            Transition("Suspended", reasons.WAITING_FOR_ADMISSION, message), attempt, True, state
        )
    message = "runPolicy.suspend is true: pods removed, state and checkpoints kept"
    return AttemptOutcome(Transition("Suspended", reasons.SUSPENDED_BY_USER, message), attempt, True, state)
