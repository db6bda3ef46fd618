"""Pod phase and conditions from container states, as the kubelet derives them."""

from datetime import UTC, datetime

import pytest

from kubetune_devtools.devstack.node_agent.status import (
    ContainerRecord,
    PodView,
    Terminated,
    build_pod_status,
    derive_phase,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def running(name: str = "main") -> ContainerRecord:
    return ContainerRecord(name, "img", state="running", started_at=NOW)


def exited(code: int, name: str = "main", message: str = "") -> ContainerRecord:
    return ContainerRecord(
        name,
        "img",
        state="terminated",
        terminated=Terminated(code, "Completed" if code == 0 else "Error", NOW, NOW, message=message),
    )


def backing_off(name: str = "main") -> ContainerRecord:
    record = ContainerRecord(name, "img", reason="CrashLoopBackOff")
    record.last_terminated = Terminated(1, "Error", NOW, NOW)
    return record


@pytest.mark.parametrize(
    ("policy", "init", "main", "phase"),
    [
        ("Never", [], [ContainerRecord("main", "img")], "Pending"),
        ("Never", [], [running()], "Running"),
        ("Never", [], [exited(0)], "Succeeded"),
        ("Never", [], [exited(3)], "Failed"),
        ("Never", [], [exited(0, "a"), running("b")], "Running"),
        ("Never", [], [exited(0, "a"), exited(1, "b")], "Failed"),
        ("OnFailure", [], [exited(0)], "Succeeded"),
        ("OnFailure", [], [backing_off()], "Running"),
        ("Always", [], [exited(0)], "Running"),
        ("Never", [running("init")], [ContainerRecord("main", "img")], "Pending"),
        ("Never", [exited(2, "init")], [ContainerRecord("main", "img")], "Failed"),
        ("OnFailure", [exited(2, "init")], [ContainerRecord("main", "img")], "Pending"),
        ("Never", [exited(0, "init")], [running()], "Running"),
    ],
)
def test_derive_phase(
    policy: str, init: list[ContainerRecord], main: list[ContainerRecord], phase: str
) -> None:
    assert derive_phase(policy, init, main) == phase


def view(main: list[ContainerRecord], **extra: str) -> PodView:
    return PodView("Never", "127.1.0.1", "127.64.0.5", NOW, [], main, **extra)


def test_status_of_a_finished_pod_carries_exit_code_reason_and_message() -> None:
    status = build_pod_status(view([exited(0, message="all good")]), [], NOW)
    assert status["phase"] == "Succeeded"
    assert status["podIP"] == "127.64.0.5"
    assert status["podIPs"] == [{"ip": "127.64.0.5"}]
    assert status["hostIP"] == "127.1.0.1"
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    assert terminated["reason"] == "Completed"
    assert terminated["message"] == "all good"
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "False"
    assert ready["reason"] == "PodCompleted"


def test_running_pod_is_ready_and_transition_times_are_kept() -> None:
    earlier = "2025-12-31T00:00:00Z"
    previous = [{"type": "Ready", "status": "True", "lastTransitionTime": earlier}]
    status = build_pod_status(view([running()]), previous, NOW)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Running"
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["lastTransitionTime"] == earlier
    assert conditions["ContainersReady"]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert conditions["Initialized"]["status"] == "True"
    assert status["containerStatuses"][0]["ready"] is True


def test_deadline_failure_overrides_container_states() -> None:
    status = build_pod_status(
        view([exited(143)], failure_reason="DeadlineExceeded", failure_message="late"), [], NOW
    )
    assert (status["phase"], status["reason"], status["message"]) == ("Failed", "DeadlineExceeded", "late")


def test_waiting_container_reports_reason_and_message() -> None:
    record = ContainerRecord(
        "main", "img", reason="CreateContainerConfigError", message='secret "x" not found'
    )
    status = build_pod_status(view([record]), [], NOW)
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "x" not found'}
    }
