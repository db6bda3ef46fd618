"""pendingTimeoutSeconds: an attempt whose pods do not start fails, naming what held them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubetune_operator.controller.policies.pending import (
    only_unscheduled,
    pending_since,
    pending_timeout_message,
)

CREATED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def job(start: datetime | None = None) -> dict[str, Any]:
    status = {"startTime": start.isoformat().replace("+00:00", "Z")} if start else {}
    return {"metadata": {"name": "tune-r0", "creationTimestamp": "2026-01-01T12:00:00Z"}, "status": status}


def pod(index: int, phase: str = "Pending", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"tune-r0-{index}-abcde",
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
        },
        "status": {"phase": phase, **status},
    }


def failed_create(message: str, at: str = "2026-01-01T12:00:01Z") -> dict[str, Any]:
    return {"type": "Warning", "reason": "FailedCreate", "message": message, "lastTimestamp": at}


def message(
    pods: list[dict[str, Any]], events: list[dict[str, Any]], after: float, start: datetime | None = None
) -> str | None:
    now = (start or CREATED) + timedelta(seconds=after)
    return pending_timeout_message(job(start), pods, events, nodes=2, timeout_seconds=60, now=now)


def test_clock_starts_when_the_job_starts_not_when_it_was_queued() -> None:
    assert pending_since(job()) == CREATED
    resumed = CREATED + timedelta(hours=3)  # Kueue admitted it three hours later
    assert pending_since(job(resumed)) == resumed
    assert message([], [failed_create("quota")], after=59, start=resumed) is None
    assert message([], [failed_create("quota")], after=60, start=resumed) is not None


def test_no_pods_created_quotes_the_job_controllers_failed_create_events() -> None:
    events = [
        failed_create(
            'Error creating: pods "tune-r0-0-x" is forbidden: error looking up service account '
            'team-a/trainer: serviceaccount "trainer" not found'
        ),
        {"type": "Normal", "reason": "SuccessfulCreate", "message": "Created pod: other"},
    ]
    text = message([], events, after=61)
    assert text is not None
    assert text.startswith("0/2 workers running after pendingTimeoutSeconds=60: FailedCreate: ")
    assert 'serviceaccount "trainer" not found' in text
    assert "SuccessfulCreate" not in text


def test_repeated_events_are_quoted_once_newest_first() -> None:
    events = [
        failed_create("exceeded quota: gpu-quota", "2026-01-01T12:00:01Z"),
        failed_create("no PriorityClass with name urgent was found", "2026-01-01T12:00:30Z"),
        failed_create("exceeded quota: gpu-quota", "2026-01-01T12:00:01Z"),
    ]
    text = message([], events, after=61) or ""
    assert text.index("PriorityClass") < text.index("exceeded quota")
    assert text.count("exceeded quota") == 1


def test_one_cause_repeated_for_each_generated_pod_is_quoted_once() -> None:
    events = [
        failed_create(f'Error creating: pods "tune-r0-0-{suffix}" is forbidden: exceeded quota: no-pods')
        for suffix in ("q9dss", "fdq6v", "bfpz2")
    ]
    text = message([], events, after=61) or ""
    assert text.endswith(": FailedCreate: Error creating: exceeded quota: no-pods"), text


def test_unscheduled_and_stuck_containers_are_named_per_pod() -> None:
    unscheduled = pod(
        1,
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes: GPU",
            }
        ],
    )
    creating = pod(0, containerStatuses=[{"state": {"waiting": {"reason": "ContainerCreating"}}}])
    text = message([unscheduled, creating], [], after=61) or ""
    assert "pod tune-r0-0-abcde: ContainerCreating" in text
    assert "pod tune-r0-1-abcde: Unschedulable: 0/3 nodes: GPU" in text
    assert text.index("tune-r0-0") < text.index("tune-r0-1")  # by rank


def test_running_pods_are_counted_not_blamed() -> None:
    running = pod(0, "Running", containerStatuses=[{"state": {"running": {}}}])
    creating = pod(1, containerStatuses=[{"state": {"waiting": {"reason": "ContainerCreating"}}}])
    text = message([running, creating], [], after=61) or ""
    assert text.startswith("1/2 workers running")
    assert "tune-r0-0" not in text


def test_without_any_clue_the_message_still_says_how_many_pods_exist() -> None:
    assert "1 of 2 pods created; no Event or pod condition says why" in (
        message([pod(0)], [], after=61) or ""
    )


def test_many_causes_are_capped() -> None:
    events = [failed_create(f"cause {n}", f"2026-01-01T12:00:{n:02d}Z") for n in range(8)]
    text = message([], events, after=61) or ""
    assert "cause 7" in text and "cause 3" in text and "cause 2" not in text
    assert text.endswith("(and 3 more)")


def test_unschedulable_only_when_the_scheduler_alone_held_every_waiting_pod() -> None:
    def unscheduled(index: int) -> dict[str, Any]:
        return pod(index, conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}])

    creating = pod(1, containerStatuses=[{"state": {"waiting": {"reason": "ContainerCreating"}}}])
    running = pod(0, "Running")
    assert only_unscheduled([running, unscheduled(1)], nodes=2)
    assert not only_unscheduled([unscheduled(0)], nodes=2)  # the other pod was never created
    assert not only_unscheduled([unscheduled(0), creating], nodes=2)
    assert not only_unscheduled([running, pod(1, "Running")], nodes=2)
