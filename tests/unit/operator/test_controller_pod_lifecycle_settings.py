"""What the operator gives every workload pod for its lifecycle: a SIGTERM grace period that fits a
checkpoint (runPolicy.terminationGracePeriodSeconds, else the kind's default) and the S3 retry window
(the operator's --pod-storage-retry-seconds as the pods' KUBETUNE_STORAGE_RETRY_SECONDS)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from kubetune_operator.api import EvalJobSpec, FineTuneJobSpec
from kubetune_operator.api.common import EVAL_GRACE_SECONDS, FINETUNE_GRACE_SECONDS
from kubetune_operator.controller.builders import (
    STORAGE_RETRY_SECONDS_ENV,
    Owner,
    build_evaluator_job,
    build_worker_job,
)
from kubetune_operator.controller.settings import DEFAULTS, OperatorSettings
from kubetune_operator.data import storage

FTJ_OWNER = Owner("FineTuneJob", "ft", "team-a", "u1")
EVJ_OWNER = Owner("EvalJob", "ev", "team-a", "u2")


def _worker(settings: OperatorSettings = DEFAULTS, **run_policy: Any) -> dict[str, Any]:
    spec = FineTuneJobSpec.model_validate(
        {
            "model": {"uri": "s3://models/base/"},
            "dataset": {"uri": "s3://data/reviews.jsonl"},
            "output": {"uri": "s3://models/tuned/x/"},
            "runPolicy": run_policy,
        }
    )
    return build_worker_job(FTJ_OWNER, spec, 0, settings)


def _evaluator(settings: OperatorSettings = DEFAULTS, **run_policy: Any) -> dict[str, Any]:
    spec = EvalJobSpec.model_validate(
        {
            "model": {"uri": "s3://models/tuned/"},
            "dataset": {"uri": "s3://data/test.jsonl"},
            "output": {"uri": "s3://evals/x/"},
            "runPolicy": run_policy,
        }
    )
    return build_evaluator_job(EVJ_OWNER, spec, 0, settings)


def _grace(job: dict[str, Any]) -> int:
    return int(job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


def _env(job: dict[str, Any]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_trainer_pods_get_minutes_to_checkpoint_and_evaluator_pods_kubernetes_default() -> None:
    assert _grace(_worker()) == FINETUNE_GRACE_SECONDS == 300
    assert _grace(_evaluator()) == EVAL_GRACE_SECONDS == 30


@pytest.mark.parametrize("build", [_worker, _evaluator], ids=["trainer", "evaluator"])
@pytest.mark.parametrize("seconds", [0, 45, 3600])
def test_run_policy_sets_the_grace_period_of_every_pod(build: Any, seconds: int) -> None:
    assert _grace(build(terminationGracePeriodSeconds=seconds)) == seconds


def test_torch_elastic_gives_the_trainer_processes_the_whole_grace_period() -> None:
    # accelerate's multi-process launcher SIGKILLs its processes 30 s after SIGTERM unless told otherwise.
    assert _env(_worker())["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == "300"
    assert _env(_worker(terminationGracePeriodSeconds=900))["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == "900"


@pytest.mark.parametrize("seconds", [-1, 86401])
def test_admission_refuses_a_grace_period_kubernetes_would_not_honour(seconds: int) -> None:
    with pytest.raises(ValidationError, match="terminationGracePeriodSeconds"):
        _worker(terminationGracePeriodSeconds=seconds)


@pytest.mark.parametrize("build", [_worker, _evaluator], ids=["trainer", "evaluator"])
def test_the_operators_storage_retry_window_reaches_every_container(build: Any) -> None:
    assert _env(build())[STORAGE_RETRY_SECONDS_ENV] == "60"
    assert _env(build(OperatorSettings(pod_storage_retry_seconds=0)))[STORAGE_RETRY_SECONDS_ENV] == "0"
    assert _env(build(OperatorSettings(pod_storage_retry_seconds=2.5)))[STORAGE_RETRY_SECONDS_ENV] == "2.5"


def test_the_pods_storage_layer_reads_the_window_the_operator_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _env(_worker(OperatorSettings(pod_storage_retry_seconds=2.5))).items():
        if value is not None:
            monkeypatch.setenv(name, value)
    assert storage.retry_seconds() == 2.5
