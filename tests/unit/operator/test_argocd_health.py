"""The Argo CD health check shipped in the chart (charts/kubetune/files/argocd-health.lua, quoted in
docs/deploy.md) run in Lua 5.1, the dialect of Argo CD's gopher-lua, against statuses made by the
operator's own status code: a change of the status shape breaks these tests, not only Argo CD."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from kubetune_devtools.testing.argocd_health import argocd_health
from kubetune_operator.api import EvalJobStatus, FineTuneJobStatus, Progress
from kubetune_operator.api.common import Phase
from kubetune_operator.controller import reasons
from kubetune_operator.controller.kube import Kube
from kubetune_operator.controller.reconcile import reconcile
from kubetune_operator.controller.reconcile_evaljob import EVALJOB
from kubetune_operator.controller.reconcile_finetunejob import FINETUNEJOB
from kubetune_operator.controller.settings import OperatorSettings
from kubetune_operator.controller.status import Transition, derive_status, dump_status, observed_finished

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "charts" / "kubetune" / "files" / "argocd-health.lua"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
T0 = "2026-01-01T00:00:00Z"
FINETUNE_SPEC = {
    "model": {"uri": "s3://models/base/"},
    "dataset": {"uri": "s3://data/x.jsonl"},
    "output": {"uri": "s3://models/out/"},
}


class NoFineTuneJobs:
    """An API in which nothing exists (the EvalJob's FineTuneJob is not there yet)."""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return None


def body(kind: str, status: dict[str, Any] | None, generation: int = 1, spec: Any = None) -> dict[str, Any]:
    metadata = {"name": "job", "namespace": "team-a", "uid": "uid-1", "generation": generation}
    return {"kind": kind, "metadata": metadata, "spec": spec or {}, "status": status}


def derived(*steps: tuple[Phase, str, str]) -> FineTuneJobStatus:
    """The FineTuneJob status after these transitions."""
    status = FineTuneJobStatus()
    for phase, reason, message in steps:
        transition = Transition(phase, reason, message)
        status = derive_status(status, transition, children_created=True, now=T0, generation=1)
    return status


def lifecycle(*steps: tuple[Phase, str, str]) -> dict[str, Any]:
    """The FineTuneJob status after these transitions, as the operator writes it."""
    return dump_status(derived(*steps))


def test_the_docs_quote_the_shipped_script_verbatim() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```lua\n(.*?)```", docs, flags=re.DOTALL)
    assert blocks == [SCRIPT.read_text()]


def test_a_job_without_status_is_progressing() -> None:
    assert argocd_health(body("FineTuneJob", None)) == (
        "Progressing",
        "Waiting for the operator to report status",
    )


@pytest.mark.parametrize(
    ("steps", "health", "message"),
    [
        ([("Pending", reasons.PODS_PENDING, "1/2 workers running")], "Progressing", "Pending (PodsPending"),
        (
            [
                ("Running", reasons.ALL_WORKERS_RUNNING, "2/2 workers running"),
                ("Restarting", reasons.ERROR, "worker 1 exited with 3"),
            ],
            "Progressing",
            "Restarting (Error: worker 1 exited with 3)",
        ),
        (
            [("Running", reasons.ALL_WORKERS_RUNNING, "1/1"), ("Suspended", reasons.SUSPENDED_BY_USER, "")],
            "Suspended",
            "SuspendedByUser",
        ),
        (
            [("Suspended", reasons.WAITING_FOR_ADMISSION, "queued in team-a-queue")],
            "Suspended",
            "WaitingForAdmission: queued in team-a-queue",
        ),
        (
            [("Running", reasons.ALL_WORKERS_RUNNING, "1/1"), ("Succeeded", reasons.COMPLETED, "done")],
            "Healthy",
            "Completed: done",
        ),
        (
            [
                ("Restarting", reasons.ERROR, "worker 0 exited with 3"),
                ("Failed", reasons.RESTARTS_EXHAUSTED, "restart budget exhausted (3/3 restarts)"),
            ],
            "Degraded",
            "RestartsExhausted: restart budget exhausted (3/3 restarts)",
        ),
    ],
)
def test_every_phase_the_operator_writes_has_its_health(
    steps: list[tuple[Phase, str, str]], health: str, message: str
) -> None:
    actual_health, actual_message = argocd_health(body("FineTuneJob", lifecycle(*steps)))
    assert actual_health == health
    assert actual_message.startswith(message), actual_message


def test_running_shows_the_progress_the_status_model_holds() -> None:
    status = derived(("Running", reasons.ALL_WORKERS_RUNNING, "2/2 workers running"))
    status.progress = Progress(step=30, total_steps=320, percent=9.375)
    written = dump_status(status)
    assert argocd_health(body("FineTuneJob", written)) == (
        "Progressing",
        "Running (AllWorkersRunning: 2/2 workers running), 9.4% done",
    )


def test_an_invalid_spec_reconciled_by_the_operator_is_degraded_with_its_message() -> None:
    spec = {**FINETUNE_SPEC, "method": "magic"}
    result = reconcile(
        FINETUNEJOB, cast(Kube, NoFineTuneJobs()), body("FineTuneJob", {}, spec=spec), OperatorSettings(), NOW
    )
    health, message = argocd_health(body("FineTuneJob", result.written, spec=spec))
    assert health == "Degraded"
    assert message.startswith("InvalidSpec: ") and "method" in message


def test_an_evaljob_waiting_for_its_finetunejob_is_progressing_and_says_so() -> None:
    spec = {
        "model": {"fineTuneJobRef": {"name": "tune"}},
        "dataset": {"uri": "s3://data/test.jsonl"},
        "output": {"uri": "s3://evals/x/"},
    }
    result = reconcile(
        EVALJOB, cast(Kube, NoFineTuneJobs()), body("EvalJob", {}, spec=spec), OperatorSettings(), NOW
    )
    health, message = argocd_health(body("EvalJob", result.written, spec=spec))
    assert health == "Progressing"
    assert message.startswith("Pending (ModelNotReady: ") and "tune" in message


def test_an_evaljob_verdict_decides_between_healthy_and_degraded() -> None:
    done = derive_status(
        EvalJobStatus(),
        Transition("Succeeded", reasons.COMPLETED, "done"),
        children_created=True,
        now=T0,
        generation=1,
    )
    passed, failed = done.model_copy(deep=True), done.model_copy(deep=True)
    passed.verdict, passed.verdict_reasons = "Passed", []
    failed.verdict, failed.verdict_reasons = "Failed", ["rougeL 0.31 < 0.40", "bleu 0.1 < 0.2"]
    assert argocd_health(body("EvalJob", dump_status(passed))) == (
        "Healthy",
        "Completed: done (verdict Passed)",
    )
    assert argocd_health(body("EvalJob", dump_status(failed))) == (
        "Degraded",
        "Verdict Failed: rougeL 0.31 < 0.40; bleu 0.1 < 0.2",
    )


def test_a_spec_change_is_progressing_until_the_operator_observes_it() -> None:
    failed = lifecycle(("Failed", reasons.PENDING_TIMEOUT, "pods never created"))
    assert argocd_health(body("FineTuneJob", failed, generation=2)) == (
        "Progressing",
        "Waiting for the operator to observe generation 2",
    )
    observed = dump_status(observed_finished(FineTuneJobStatus.model_validate(failed), 2))
    assert argocd_health(body("FineTuneJob", observed, generation=2))[0] == "Degraded"
