"""The real pod entry points (trainer and evaluator) report through the workload contract: what the
operator reads from their termination log for bad data and for an S3 endpoint that does not answer."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune_devtools.tiny_models import build_tiny_model
from kubetune_operator.api import contract
from kubetune_operator.api.contract import Reason
from kubetune_trainer.entrypoint import main as trainer_main


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    path.touch()  # mounted by the kubelet in a pod
    monkeypatch.setenv(contract.TERMINATION_LOG_ENV, str(path))
    monkeypatch.setenv("KUBETUNE_METRICS_PORT", "off")
    # S3 credentials must exist for boto3 to try the endpoint at all.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    # A dead endpoint is retried for this long before StorageUnreachable (60 s by default).
    monkeypatch.setenv("KUBETUNE_STORAGE_RETRY_SECONDS", "1")
    return path


@pytest.fixture
def dead_endpoint() -> str:
    """An address where nothing listens: connection refused, as when MinIO is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _write(path: Path, kind: str, spec: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {"apiVersion": "kubetune.io/v1alpha1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}
        )
    )
    return path


def _failure(path: Path) -> contract.Failure:
    report = contract.read_message(path.read_text())
    assert report is not None and report.failure is not None, path.read_text()
    return report.failure


def test_trainer_reports_a_missing_template_field_as_invalid_spec(
    tmp_path: Path, termination_log: Path
) -> None:
    rows = (
        [{"word": "a b", "reversed": "b a"}] * 150
        + [{"reversed": "c d"}]
        + [{"word": "e", "reversed": "e"}] * 49
    )
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    # Config and tokenizer only: the data is checked before the weights are fetched or read.
    model = build_tiny_model(tmp_path / "model")
    for weights in model.glob("*.safetensors"):
        weights.unlink()
    spec = {
        "model": {"uri": str(model)},
        "dataset": {"uri": str(data)},
        "tasks": [{"name": "t", "templates": [{"prompt": "{{ word }}", "completion": "{{ reversed }}"}]}],
        "output": {"uri": str(tmp_path / "out")},
    }
    assert (
        trainer_main(["--config", str(_write(tmp_path / "job.yaml", "FineTuneJob", spec))])
        == contract.EXIT_FAILED
    )
    failure = _failure(termination_log)
    assert failure.reason is Reason.INVALID_SPEC
    assert "row 151" in failure.message and "word" in failure.message


def test_trainer_reports_an_unreachable_s3_as_storage_unreachable(
    tmp_path: Path, termination_log: Path, dead_endpoint: str
) -> None:
    spec = {
        "model": {"uri": "s3://models/base/"},
        "dataset": {"uri": "s3://data/train.jsonl"},
        "output": {"uri": "s3://models/out/"},
        "storage": {"endpoint": dead_endpoint},
    }
    assert (
        trainer_main(["--config", str(_write(tmp_path / "job.yaml", "FineTuneJob", spec))])
        == contract.EXIT_FAILED
    )
    failure = _failure(termination_log)
    assert failure.reason is Reason.STORAGE_UNREACHABLE, failure
    assert dead_endpoint.removeprefix("http://") in failure.message


def test_evaluator_reports_an_unreachable_s3_as_storage_unreachable_not_invalid_spec(
    tmp_path: Path, termination_log: Path, dead_endpoint: str
) -> None:
    # deferred: the evaluator (torch, transformers) cost seconds to import; collecting other tests skips them
    from kubetune_evaluator.__main__ import main as evaluator_main  # noqa: PLC0415

    spec = {
        "model": {"uri": "s3://models/tuned/"},
        "dataset": {"uri": "s3://data/test.jsonl", "split": "all"},
        "metrics": ["exact_match"],
        "output": {"uri": "s3://evals/x/"},
        "storage": {"endpoint": dead_endpoint},
    }
    assert (
        evaluator_main(["--config", str(_write(tmp_path / "job.yaml", "EvalJob", spec))])
        == contract.EXIT_FAILED
    )
    failure = _failure(termination_log)
    assert failure.reason is Reason.STORAGE_UNREACHABLE, failure
