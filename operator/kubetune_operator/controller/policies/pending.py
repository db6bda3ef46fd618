"""`runPolicy.pendingTimeoutSeconds`: an attempt whose pods do not all start fails, saying what held them.

Whatever keeps the pods from running ends here: pods the Job controller cannot create (a ResourceQuota, a
missing ServiceAccount or PriorityClass, Pod Security admission: only its `FailedCreate` Events say so, a
Job has no condition for it), pods that are never scheduled, containers stuck in ContainerCreating. The
clock starts when the child Job starts (its `status.startTime`, which Kubernetes sets when the Job is
created unsuspended and resets when Kueue or a user resumes it), so time spent queued does not count.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from kubetune_operator.api.timestamps import parse_rfc3339
from kubetune_operator.controller.failures import rank_of

_GENERATED_POD = re.compile(r'pods "[^"]+" is forbidden: ')
DEFAULT_PENDING_TIMEOUT_SECONDS = 600
"""Bound when the job sets none (and the operator's --pending-timeout, which bounds unscheduled pods, is
shorter): image pulls and volume attaches may take minutes."""
MAX_BLOCKERS = 5
"""Distinct causes quoted in the message; more would only repeat themselves for a large gang."""


def pending_since(job: dict[str, Any]) -> datetime | None:
    """When the attempt's child Job started (or was created, before the Job controller saw it)."""
    started = job.get("status", {}).get("startTime") or job.get("metadata", {}).get("creationTimestamp")
    return parse_rfc3339(started)


def _pod_blockers(pods: list[dict[str, Any]]) -> list[str]:
    found = []
    for pod in sorted(pods, key=rank_of):
        status = pod.get("status", {})
        if status.get("phase") in ("Running", "Succeeded"):
            continue
        where = f"pod {pod.get('metadata', {}).get('name', '?')}"
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                found.append(
                    f"{where}: {condition.get('reason', 'NotScheduled')}: {condition.get('message', '')}"
                )
        for container in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]:
            waiting = (container.get("state") or {}).get("waiting")
            if waiting:
                detail = f": {waiting['message']}" if waiting.get("message") else ""
                found.append(f"{where}: {waiting.get('reason', 'Waiting')}{detail}")
    return found


def only_unscheduled(pods: list[dict[str, Any]], nodes: int) -> bool:
    """Every pod exists and each that does not run waits for the scheduler: the reason is Unschedulable
    (capacity, selectors, taints), not something that kept the pods or their containers from starting."""
    waiting = [pod for pod in pods if pod.get("status", {}).get("phase") not in ("Running", "Succeeded")]
    return (
        len(pods) >= nodes
        and bool(waiting)
        and all(
            any(
                c.get("type") == "PodScheduled" and c.get("status") == "False"
                for c in pod.get("status", {}).get("conditions") or []
            )
            for pod in waiting
        )
    )


def _event_blockers(events: list[dict[str, Any]]) -> list[str]:
    warnings = [event for event in events if event.get("type") == "Warning"]
    newest_first = sorted(
        warnings, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""), reverse=True
    )
    # Each FailedCreate names the generated pod (`pods "tune-r0-0-x7k2p" is forbidden: ...`): without the
    # name, one cause repeated for every try is quoted once.
    return [
        f"{event.get('reason', 'Warning')}: {_GENERATED_POD.sub('', str(event.get('message', '')))}".strip()
        for event in newest_first
    ]


def pending_timeout_message(
    job: dict[str, Any],
    pods: list[dict[str, Any]],
    events: list[dict[str, Any]],
    *,
    nodes: int,
    timeout_seconds: float,
    now: datetime,
) -> str | None:
    """Why the attempt failed to start within `timeout_seconds`, None while it still may.

    `pods` are the attempt's pods, `events` those about its Job (FailedCreate and the like)."""
    since = pending_since(job)
    if since is None or (now - since).total_seconds() < timeout_seconds:
        return None
    running = sum(1 for pod in pods if pod.get("status", {}).get("phase") in ("Running", "Succeeded"))
    blockers = list(dict.fromkeys([*_event_blockers(events), *_pod_blockers(pods)]))
    if not blockers:
        blockers = [f"{len(pods)} of {nodes} pods created; no Event or pod condition says why"]
    shown = "; ".join(blockers[:MAX_BLOCKERS])
    more = f" (and {len(blockers) - MAX_BLOCKERS} more)" if len(blockers) > MAX_BLOCKERS else ""
    return f"{running}/{nodes} workers running after pendingTimeoutSeconds={timeout_seconds:g}: {shown}{more}"
