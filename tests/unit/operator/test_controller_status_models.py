"""The status is derived on the kind's pydantic status model and written with `dump_status`: what is written
reads back (in the API server's key order) into the same model and is written again byte for byte, for
every transition, the EvalJob's wait and a finished job's new generation; the wire shape is the one the
dict-based status code wrote (pinned below), and a misspelt field is an error, not a new status key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubetune_operator.api import (
    EvalJobStatus,
    EvalResults,
    FineTuneJobStatus,
    JobStatus,
    OutputRef,
    Progress,
)
from kubetune_operator.api.common import Phase
from kubetune_operator.controller import reasons
from kubetune_operator.controller.status import (
    Transition,
    derive_status,
    dump_status,
    observed_finished,
    waiting_status,
)

T = [f"2026-01-01T00:0{n}:00Z" for n in range(6)]
PHASES: list[tuple[Phase, str]] = [
    ("Pending", reasons.PODS_PENDING),
    ("Running", reasons.ALL_WORKERS_RUNNING),
    ("Restarting", reasons.ERROR),
    ("Suspended", reasons.SUSPENDED_BY_USER),
    ("Succeeded", reasons.COMPLETED),
    ("Failed", reasons.RESTARTS_EXHAUSTED),
]


def stored(status: JobStatus) -> dict[str, Any]:
    """What the API server hands back: the written JSON with its keys sorted (Go maps)."""
    wire: dict[str, Any] = json.loads(json.dumps(dump_status(status), sort_keys=True))
    return wire


def assert_round_trips(status: JobStatus) -> None:
    again = type(status).model_validate(stored(status))
    assert json.dumps(dump_status(again)) == json.dumps(dump_status(status))


@pytest.mark.parametrize("model", [FineTuneJobStatus, EvalJobStatus])
@pytest.mark.parametrize(("first", "first_reason"), PHASES)
@pytest.mark.parametrize(("then", "then_reason"), PHASES)
def test_every_transition_round_trips(
    model: type[JobStatus], first: Phase, first_reason: str, then: Phase, then_reason: str
) -> None:
    start = derive_status(
        model(), Transition(first, first_reason, "first"), children_created=True, now=T[0], generation=1
    )
    start.restarts = 1
    assert_round_trips(start)
    previous = model.model_validate(stored(start))
    kept = stored(start)
    # A new generation and children_created False: observedGeneration and conditions change everywhere.
    status = derive_status(
        previous, Transition(then, then_reason, "then"), children_created=False, now=T[1], generation=2
    )
    assert_round_trips(status)
    assert stored(previous) == kept  # derivation is pure: the previous status is not edited
    assert status.phase == then and status.observed_generation == 2


def test_kind_fields_wait_and_new_generation_round_trip() -> None:
    tuned = derive_status(
        FineTuneJobStatus(),
        Transition("Succeeded", reasons.COMPLETED, "done"),
        children_created=True,
        now=T[0],
        generation=1,
    )
    tuned.progress = Progress(step=320, total_steps=320, percent=100.0, train_loss=0.25)
    tuned.output = OutputRef(uri="s3://models/out/", digest="sha256:" + "a" * 64)
    assert_round_trips(tuned)
    assert_round_trips(observed_finished(tuned, 2))
    assert observed_finished(tuned, 1) is tuned  # nothing to write when nothing changed

    waiting = waiting_status(EvalJobStatus(), reasons.MODEL_NOT_READY, "FineTuneJob tune is Running", T[0], 1)
    assert_round_trips(waiting)
    scored = derive_status(
        waiting,
        Transition("Succeeded", reasons.COMPLETED, "done"),
        children_created=True,
        now=T[1],
        generation=1,
    )
    scored.model_uri, scored.verdict, scored.verdict_reasons = "s3://models/out/", "Failed", ["bleu 1 < 2"]
    scored.results = EvalResults(model={"bleu": 1.0}, baseline={"bleu": 1.5}, delta={"bleu": -0.5})
    assert_round_trips(scored)


def test_the_written_status_is_the_one_the_dict_based_code_wrote() -> None:
    """Pinned from the status code before it moved onto the models (a FineTuneJob that restarted once and
    had its spec changed while running)."""
    steps: list[tuple[Phase, str, str, int, str, int]] = [
        ("Pending", reasons.PODS_PENDING, "child Job created", 0, T[0], 1),
        ("Running", reasons.ALL_WORKERS_RUNNING, "2/2 workers running", 0, T[1], 1),
        ("Restarting", reasons.ERROR, "worker 1 exited with 3", 1, T[2], 1),
        ("Running", reasons.ALL_WORKERS_RUNNING, "2/2 workers running", 1, T[3], 2),
        ("Succeeded", reasons.COMPLETED, "done", 1, T[4], 2),
    ]
    status = FineTuneJobStatus()
    for phase, reason, message, restarts, now, generation in steps:
        previous = FineTuneJobStatus.model_validate(stored(status))
        status = derive_status(
            previous,
            Transition(phase, reason, message),
            children_created=True,
            now=now,
            generation=generation,
        )
        status.restarts = restarts

    def condition(type_: str, value: str, reason: str, message: str, at: str) -> dict[str, Any]:
        return {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": at,
            "observedGeneration": 2,
        }

    expected = {
        "phase": "Succeeded",
        "conditions": [
            condition("Created", "True", "ChildrenCreated", "ConfigMap, Service and Job created", T[0]),
            condition("Running", "False", "Completed", "done", T[4]),
            condition("Ready", "True", "Completed", "done", T[3]),
            condition("Reconciling", "False", "Completed", "done", T[3]),
            condition("Restarting", "False", "Completed", "done", T[3]),
            condition("Succeeded", "True", "Completed", "done", T[4]),
        ],
        "observedGeneration": 2,
        "restarts": 1,
        "startTime": T[1],
        "completionTime": T[4],
    }
    assert json.dumps(dump_status(status)) == json.dumps(expected)


def test_a_misspelt_status_field_is_an_error() -> None:
    status = FineTuneJobStatus()
    with pytest.raises(ValueError, match="startTme"):
        status.startTme = T[0]  # type: ignore[attr-defined]
    assert dump_status(status) == {}
