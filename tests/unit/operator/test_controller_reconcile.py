"""The shared reconcile before any child exists: an invalid spec, a refused one and an EvalJob waiting for
its FineTuneJob go through the same steps for both kinds, and the status is written through the kind's
status model (camelCase, nothing outside the model). The lifecycle after that is tested end to end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from kubetune_operator.api import JobStatus
from kubetune_operator.controller import reasons
from kubetune_operator.controller.conditions import find_condition
from kubetune_operator.controller.kube import Kube
from kubetune_operator.controller.policies.platform import PlatformPolicy
from kubetune_operator.controller.reconcile import KindPlan, reconcile
from kubetune_operator.controller.reconcile_evaljob import EVALJOB
from kubetune_operator.controller.reconcile_finetunejob import FINETUNEJOB
from kubetune_operator.controller.settings import OperatorSettings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FINETUNE_SPEC = {
    "model": {"uri": "s3://models/base/"},
    "dataset": {"uri": "s3://data/x.jsonl"},
    "output": {"uri": "s3://models/out/"},
}
EVAL_SPEC = {
    "model": {"fineTuneJobRef": {"name": "tune"}},
    "dataset": {"uri": "s3://data/test.jsonl"},
    "output": {"uri": "s3://evals/x/"},
}


class NoFineTuneJobs:
    """An API in which the referenced FineTuneJob does not exist; anything else is a test failure."""

    def __init__(self) -> None:
        self.gets: list[tuple[str, str, str]] = []

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets.append((kind, namespace, name))
        return None


def _body(kind: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata = {"name": "job", "namespace": "team-a", "uid": "uid-1", "generation": 2}
    return {"kind": kind, "metadata": metadata, "spec": spec, "status": status or {}}


def _failed_reason(status: JobStatus) -> str:
    failed = find_condition(status.conditions, reasons.FAILED)
    assert failed is not None
    return failed.reason


def test_an_invalid_spec_fails_either_kind_with_invalid_spec_before_any_api_call() -> None:
    api = NoFineTuneJobs()
    plans: list[tuple[KindPlan[Any, Any], dict[str, Any]]] = [
        (FINETUNEJOB, {**FINETUNE_SPEC, "method": "magic"}),
        (EVALJOB, {**EVAL_SPEC, "unknownField": 1}),
    ]
    for plan, spec in plans:
        result = reconcile(plan, cast(Kube, api), _body(plan.kind, spec), OperatorSettings(), NOW)
        assert result.written["phase"] == "Failed"
        assert result.written["observedGeneration"] == 2
        assert result.written["completionTime"] == "2026-01-01T00:00:00Z"
        assert _failed_reason(result.status) == reasons.INVALID_SPEC
        assert [event.reason for event in result.events] == [reasons.INVALID_SPEC]
    assert api.gets == []


def test_the_platform_policy_refuses_an_evaljob_before_it_waits_for_its_model() -> None:
    api = NoFineTuneJobs()
    settings = OperatorSettings(
        policy=PlatformPolicy(allowed_image_repositories=("registry.example/kubetune",))
    )
    spec = {**EVAL_SPEC, "image": "docker.io/someone/else:1"}
    result = reconcile(EVALJOB, cast(Kube, api), _body("EvalJob", spec), settings, NOW)
    assert result.written["phase"] == "Failed"
    assert _failed_reason(result.status) == reasons.POLICY_VIOLATION
    assert api.gets == []


def test_an_evaljob_waits_for_its_finetunejob_and_writes_only_status_model_fields() -> None:
    api = NoFineTuneJobs()
    previous = {"phase": "Pending", "somethingElse": "kept in the cluster, not written again"}
    result = reconcile(
        EVALJOB, cast(Kube, api), _body("EvalJob", EVAL_SPEC, previous), OperatorSettings(), NOW
    )
    assert api.gets == [("FineTuneJob", "team-a", "tune")]
    assert result.written["phase"] == "Pending"
    waiting = find_condition(result.status.conditions, reasons.WAITING)
    assert waiting is not None and waiting.reason == reasons.MODEL_NOT_READY
    assert set(result.written) == {"phase", "observedGeneration", "conditions"}
    assert [event.reason for event in result.events] == [reasons.MODEL_NOT_READY]
