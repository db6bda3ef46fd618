"""Pod Events as the kubelet posts them (`kubectl describe pod` shows them): pure builder."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from kubetune_devtools.devstack.node_agent.status import rfc3339

NORMAL = "Normal"
WARNING = "Warning"


def build_event(
    pod: dict[str, Any],
    node: str,
    reason: str,
    message: str,
    *,
    kind: str,
    container: str | None,
    now: datetime,
) -> dict[str, Any]:
    metadata = pod["metadata"]
    involved: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": metadata["name"],
        "namespace": metadata["namespace"],
        "uid": metadata["uid"],
    }
    if container is not None:
        involved["fieldPath"] = f"spec.containers{{{container}}}"
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{metadata['name']}.{secrets.token_hex(8)}",
            "namespace": metadata["namespace"],
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
