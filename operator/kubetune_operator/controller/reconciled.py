"""What one reconcile produced: the next status, the Events to post, whether the object was deleted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubetune_operator.controller import reasons
from kubetune_operator.controller.builders import Owner
from kubetune_operator.controller.kube import Kube
from kubetune_operator.controller.policies.ttl import ttl_expired
from kubetune_operator.controller.status import Event, observed_finished


@dataclass
class Reconciled:
    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    deleted: bool = False


def finished(
    kube: Kube, owner: Owner, body: dict[str, Any], previous: dict[str, Any], now: datetime
) -> Reconciled:
    """A finished job only waits for its TTL; its children stay for `kubectl logs` until then."""
    run_policy = (body.get("spec") or {}).get("runPolicy") or {}
    ttl = run_policy.get("ttlSecondsAfterFinished")
    if isinstance(ttl, int) and ttl_expired(previous.get("completionTime"), ttl, now):
        # Background: the object goes at once, the garbage collector removes the children after it.
        kube.delete(owner.kind, owner.namespace, owner.name, propagation="Background")
        message = f"deleted {ttl}s after it finished (ttlSecondsAfterFinished)"
        return Reconciled(previous, [Event("Normal", reasons.TTL_EXPIRED, message)], deleted=True)
    return Reconciled(observed_finished(previous, body.get("metadata", {}).get("generation")))
