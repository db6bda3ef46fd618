"""Pod status from the agent's view of its containers (pure: the kubelet's phase and condition rules)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

State = Literal["waiting", "running", "terminated"]

# Waiting/terminated reasons, named as the kubelet names them.
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
CONFIG_ERROR = "CreateContainerConfigError"
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
CRASH_LOOP = "CrashLoopBackOff"
COMPLETED = "Completed"
ERROR = "Error"
OOM_KILLED = "OOMKilled"
START_ERROR = "StartError"
DEADLINE_EXCEEDED = "DeadlineExceeded"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Terminated:
    exit_code: int
    reason: str
    started_at: datetime | None
    finished_at: datetime
    message: str = ""
    signal: int | None = None

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "finishedAt": rfc3339(self.finished_at),
        }
        if self.started_at is not None:
            out["startedAt"] = rfc3339(self.started_at)
        if self.message:
            out["message"] = self.message
        if self.signal is not None:
            out["signal"] = self.signal
        return out


@dataclass
class ContainerRecord:
    """What the agent knows of one container of a pod."""

    name: str
    image: str
    state: State = "waiting"
    reason: str = CONTAINER_CREATING
    message: str = ""
    started_at: datetime | None = None
    terminated: Terminated | None = None
    last_terminated: Terminated | None = None
    restart_count: int = 0
    image_id: str = ""
    """The local store's ID of the image the container runs (empty in the fast mode), as `imageID`."""

    @property
    def succeeded(self) -> bool:
        return self.state == "terminated" and self.terminated is not None and self.terminated.exit_code == 0

    def to_api(self) -> dict[str, Any]:
        if self.state == "running":
            state: dict[str, Any] = {"running": {"startedAt": rfc3339(self.started_at or datetime.now(UTC))}}
        elif self.state == "terminated" and self.terminated is not None:
            state = {"terminated": self.terminated.to_api()}
        else:
            state = {
                "waiting": {"reason": self.reason, **({"message": self.message} if self.message else {})}
            }
        out: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "ready": self.state == "running",
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated.to_api()} if self.last_terminated else {},
        }
        return out


def derive_phase(
    restart_policy: str, init: Sequence[ContainerRecord], main: Sequence[ContainerRecord]
) -> str:
    """The pod phase from container states (kubelet getPhase, without sidecars)."""
    init_failed = any(r.state == "terminated" and not r.succeeded for r in init)
    if init_failed and restart_policy == "Never":
        return "Failed"
    if not all(r.succeeded for r in init):
        return "Pending"
    running = sum(r.state == "running" for r in main)
    stopped = [r for r in main if r.state == "terminated" or r.last_terminated is not None]
    never_started = [r for r in main if r.state == "waiting" and r.last_terminated is None]
    if never_started and not running and not stopped:
        return "Pending"
    if running or never_started:
        return "Running"
    finished = [r for r in main if r.state == "terminated"]
    if len(finished) < len(main):
        return "Running"  # some container waits for its restart
    all_ok = all(r.succeeded for r in main)
    if restart_policy == "Always":
        return "Running"
    if restart_policy == "OnFailure" and not all_ok:
        return "Running"
    return "Succeeded" if all_ok else "Failed"


def _condition(
    previous: Mapping[str, Mapping[str, Any]],
    kind: str,
    ok: bool,
    now: datetime,
    *,
    reason: str = "",
    message: str = "",
) -> dict[str, Any]:
    status = "True" if ok else "False"
    before = previous.get(kind)
    changed_at = before.get("lastTransitionTime") if before and before.get("status") == status else None
    condition: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": changed_at or rfc3339(now),
    }
    if reason and not ok:
        condition["reason"] = reason
    if message and not ok:
        condition["message"] = message
    return condition


def build_conditions(
    previous: Sequence[Mapping[str, Any]],
    phase: str,
    has_sandbox: bool,
    *,
    init: Sequence[ContainerRecord],
    main: Sequence[ContainerRecord],
    now: datetime,
) -> list[dict[str, Any]]:
    """PodReadyToStartContainers, Initialized, ContainersReady, Ready; PodScheduled is kept as the
    scheduler wrote it (the patch merges conditions by type)."""
    before = {str(c["type"]): c for c in previous}
    terminal = phase in ("Succeeded", "Failed")
    initialized = all(r.succeeded for r in init)
    unready = [r.name for r in main if r.state != "running"]
    if terminal:
        ready_reason, ready_message = "PodCompleted", ""
    else:
        ready_reason, ready_message = (
            "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]",
        )
    init_pending = [r.name for r in init if not r.succeeded]
    return [
        _condition(before, "PodReadyToStartContainers", has_sandbox and not terminal, now),
        _condition(
            before,
            "Initialized",
            initialized,
            now,
            reason="ContainersNotInitialized",
            message=f"containers with incomplete status: [{' '.join(init_pending)}]",
        ),
        _condition(
            before,
            "ContainersReady",
            not unready and not terminal,
            now,
            reason=ready_reason,
            message=ready_message,
        ),
        _condition(
            before, "Ready", not unready and not terminal, now, reason=ready_reason, message=ready_message
        ),
    ]


@dataclass
class PodView:
    """Everything the status of one pod is built from."""

    restart_policy: str
    host_ip: str
    pod_ip: str | None
    start_time: datetime
    init: list[ContainerRecord] = field(default_factory=list)
    main: list[ContainerRecord] = field(default_factory=list)
    failure_reason: str = ""  # e.g. DeadlineExceeded: the pod failed regardless of its containers
    failure_message: str = ""


def build_pod_status(
    view: PodView, previous_conditions: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, Any]:
    """The `status` to patch onto the pod."""
    phase = "Failed" if view.failure_reason else derive_phase(view.restart_policy, view.init, view.main)
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": build_conditions(
            previous_conditions, phase, view.pod_ip is not None, init=view.init, main=view.main, now=now
        ),
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": rfc3339(view.start_time),
        "containerStatuses": [r.to_api() for r in view.main],
    }
    if view.init:
        status["initContainerStatuses"] = [r.to_api() for r in view.init]
    if view.pod_ip:
        status["podIP"] = view.pod_ip
        status["podIPs"] = [{"ip": view.pod_ip}]
    if view.failure_reason:
        status["reason"] = view.failure_reason
        status["message"] = view.failure_message
    return status
