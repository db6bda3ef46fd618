"""The agent's state of one pod, and how it is rebuilt from the pod's status after an agent restart."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubetune_devtools.devstack.node_agent import status
from kubetune_devtools.devstack.node_agent.process import PodPaths
from kubetune_devtools.devstack.node_agent.status import ContainerRecord, Terminated

DEFAULT_GRACE_SECONDS = 30
MAX_BACKOFF_SECONDS = 300.0  # the kubelet's cap of the restart and image-pull back-offs


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_time(value: str | None) -> datetime | None:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if value else None


def is_terminal(pod: dict[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


@dataclass
class PodRuntime:
    """The agent's state of one pod bound to one of its nodes."""

    pod: dict[str, Any]
    paths: PodPaths
    host_ip: str
    start_time: datetime
    init: list[ContainerRecord]
    main: list[ContainerRecord]
    ip: str | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    next_start: dict[str, float] = field(default_factory=dict)
    backoff: dict[str, float] = field(default_factory=dict)
    killed_by_agent: set[str] = field(default_factory=set)
    volume_dirs: dict[str, str] | None = None
    stopping: bool = False
    kill_at: float = 0.0
    failure_reason: str = ""
    failure_message: str = ""
    terminal: bool = False
    deletion_confirmed: bool = False
    last_status: dict[str, Any] | None = None
    last_signature: tuple[Any, ...] = ()
    cgroups: dict[str, Path] = field(default_factory=dict)

    def schedule_retry(self, container: str, key: str, first_delay: float, now: float) -> float:
        """The kubelet's doubling back-off (`first_delay`, then twice the last, up to 300 s) for one kind of
        retry of one container (`key`: its restarts, its image pulls): schedules the container's next start
        and returns the delay."""
        delay = self.backoff.get(key, first_delay)
        self.backoff[key] = min(delay * 2, MAX_BACKOFF_SECONDS)
        self.next_start[container] = now + delay
        return delay

    def signature(self) -> tuple[Any, ...]:
        """Everything the status is built from: when unchanged, building and comparing it is skipped
        (that work dominated the idle loop with 100 running pods)."""
        return (
            self.ip,
            self.failure_reason,
            *((r.state, r.reason, r.message, r.restart_count) for r in [*self.init, *self.main]),
        )

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.pod["spec"]
        return spec

    def grace_seconds(self) -> float:
        metadata = self.pod["metadata"]
        grace = metadata.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        return float(grace)

    def container_spec(self, name: str) -> dict[str, Any]:
        containers: list[dict[str, Any]] = [*self.spec.get("initContainers", []), *self.spec["containers"]]
        return next(c for c in containers if c["name"] == name)


def records_after_restart(
    specs: list[dict[str, Any]], previous: list[dict[str, Any]]
) -> list[ContainerRecord]:
    """Container records of a pod found at start-up: a container the last agent ran is lost (exit 137)."""
    before = {s["name"]: s for s in previous}
    records = []
    for spec in specs:
        record = ContainerRecord(spec["name"], spec.get("image", ""))
        old = before.get(spec["name"])
        if old is not None:
            record.restart_count = int(old.get("restartCount", 0))
            record.image_id = str(old.get("imageID") or "")
            state = old.get("state") or {}
            if "terminated" in state:
                done = state["terminated"]
                record.state = "terminated"
                record.terminated = Terminated(
                    exit_code=int(done["exitCode"]),
                    reason=done.get("reason", ""),
                    started_at=parse_time(done.get("startedAt")),
                    finished_at=parse_time(done.get("finishedAt")) or utcnow(),
                    message=done.get("message", ""),
                )
            elif "running" in state:
                record.state = "terminated"
                record.terminated = Terminated(
                    exit_code=137,
                    reason=status.ERROR,
                    started_at=parse_time(state["running"].get("startedAt")),
                    finished_at=utcnow(),
                    message="the node agent restarted and lost this container",
                )
        records.append(record)
    return records
