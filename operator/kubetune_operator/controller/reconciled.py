"""What one reconcile produced: the status before and after, the Events to post, whether the object was
deleted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubetune_operator.api import JobStatus
from kubetune_operator.controller import reasons
from kubetune_operator.controller.builders import Owner
from kubetune_operator.controller.kube import Kube
from kubetune_operator.controller.policies.ttl import ttl_expired
from kubetune_operator.controller.status import Event, dump_status, observed_finished


@dataclass
class Reconciled:
    previous: JobStatus
    """The stored status, parsed with the kind's status model."""
    status: JobStatus
    """The next status (the same object when nothing changed)."""
    events: list[Event] = field(default_factory=list)
    deleted: bool = False

    @property
    def written(self) -> dict[str, Any]:
        """The next status on the wire (camelCase, the fields it holds)."""
        return dump_status(self.status)


def finished(
    kube: Kube, owner: Owner, body: dict[str, Any], previous: JobStatus, now: datetime
) -> Reconciled:
    """A finished job only waits for its TTL; its children stay for `kubectl logs` until then."""
    run_policy = (body.get("spec") or {}).get("runPolicy") or {}
    ttl = run_policy.get("ttlSecondsAfterFinished")
    if isinstance(ttl, int) and ttl_expired(previous.completion_time, ttl, now):
        # Background: the object goes at once, the garbage collector removes the children after it.
        kube.delete(owner.kind, owner.namespace, owner.name, propagation="Background")
        message = f"deleted {ttl}s after it finished (ttlSecondsAfterFinished)"
        return Reconciled(previous, previous, [Event("Normal", reasons.TTL_EXPIRED, message)], deleted=True)
    return Reconciled(previous, observed_finished(previous, body.get("metadata", {}).get("generation")))
