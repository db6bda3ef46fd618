"""The workload contract: what trainer/evaluator pods write is what the operator reads."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from kubetune_operator.api import contract
from kubetune_operator.api.contract import Reason
from kubetune_operator.controller import reasons
from kubetune_operator.controller.failures import classify_pod
from kubetune_operator.data.errors import DataError, data_or_outage

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "termination-log"
    path.touch()  # the kubelet creates the file; the workload only writes it
    return path


def failed_pod(message: str, exit_code: int = 2) -> dict[str, Any]:
    terminated = {"exitCode": exit_code, "reason": "Error", "message": message}
    return {
        "metadata": {
            "name": "job-r0-0-abc",
            "annotations": {"batch.kubernetes.io/job-completion-index": "0"},
        },
        "status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": terminated}}]},
    }


def test_result_round_trip(log: Path) -> None:
    result = {"output": {"uri": "s3://m/o/", "digest": "sha256:" + "a" * 64}, "progress": {"percent": 100.0}}
    assert contract.write_result(result, log)
    report = contract.read_message(log.read_text())
    assert report is not None and report.result == result and report.failure is None


@pytest.mark.parametrize("reason", list(Reason))
def test_failure_round_trip_for_every_reason(log: Path, reason: Reason) -> None:
    assert contract.write_failure(reason, "row 137: missing field 'review_body'", log)
    report = contract.read_message(log.read_text())
    assert report is not None and report.result is None
    assert report.failure == contract.Failure(reason, reason.value, "row 137: missing field 'review_body'")
    # Every reported reason fails the job at once, with the workload's message.
    failure = classify_pod(failed_pod(log.read_text()), NOW, 60)
    assert failure is not None and (failure.reason, failure.retriable) == (reason.value, False)
    assert "row 137" in failure.message and reason.value in reasons.WORKLOAD_REPORTED_FAILURES


def test_unknown_reason_is_kept_in_the_message_and_treated_as_a_retriable_error() -> None:
    message = json.dumps({"failure": {"reason": "QuotaTooSmall", "message": "ask your admin"}})
    report = contract.read_message(message)
    assert report is not None and report.failure == contract.Failure(None, "QuotaTooSmall", "ask your admin")
    failure = classify_pod(failed_pod(message, 2), NOW, 60)
    assert failure is not None and failure.reason == reasons.ERROR and failure.retriable
    assert "QuotaTooSmall: ask your admin" in failure.message and "code 2" in failure.message


@pytest.mark.parametrize(
    "text", [None, "", "Traceback (most recent call last):", "[1, 2]", '{"digest": "x"}']
)
def test_messages_that_are_not_the_contract_read_as_nothing(text: str | None) -> None:
    assert contract.read_message(text) is None


def test_failure_messages_are_trimmed_to_the_kubelet_limit_keeping_reason_start_and_end() -> None:
    message = "start: " + 'é"\\\n' * 5000 + " :end"
    text = contract.encode_failure(Reason.INVALID_SPEC, message)
    assert len(text.encode()) <= contract.TERMINATION_MESSAGE_LIMIT == 4096
    report = contract.read_message(text)
    assert report is not None and report.failure is not None
    assert report.failure.reason is Reason.INVALID_SPEC
    assert report.failure.message.startswith("start: ") and report.failure.message.endswith(" :end")
    assert "[...]" in report.failure.message
    short = contract.encode_failure(Reason.OUTPUT_IN_USE, "short")
    assert json.loads(short) == {"failure": {"reason": "OutputInUse", "message": "short"}}


def test_oversized_results_are_refused_not_truncated() -> None:
    big = {"blob": "x" * 5000}
    assert not contract.result_fits(big)
    with pytest.raises(ValueError, match="4096"):
        contract.encode_result(big)
    assert contract.result_fits({"blob": "x" * 3000})


def test_a_local_run_never_creates_the_termination_log(tmp_path: Path) -> None:
    assert not contract.write_result({"a": 1}, tmp_path / "absent")
    assert not (tmp_path / "absent").exists()


def _s3_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "GetObject")


def test_exceptions_map_to_reasons() -> None:
    outage = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert contract.classify(outage) is Reason.STORAGE_UNREACHABLE
    assert contract.classify(_s3_error("SlowDown", 503)) is Reason.STORAGE_UNREACHABLE
    assert contract.classify(_s3_error("NoSuchKey", 404)) is None
    assert contract.classify(MemoryError()) is Reason.OUT_OF_MEMORY
    assert contract.classify(DataError("row 3: missing field 'x'")) is Reason.INVALID_SPEC
    assert contract.classify(ValueError("a bug")) is None
    try:  # a wrapped outage is still an outage
        try:
            raise outage
        except EndpointConnectionError as inner:
            raise RuntimeError("download failed") from inner
    except RuntimeError as wrapped:
        assert contract.classify(wrapped) is Reason.STORAGE_UNREACHABLE
    # Reading data: an outage is not the data's fault; a missing object is.
    assert isinstance(data_or_outage("s3://d/x.jsonl: cannot read", outage), contract.StorageUnreachableError)
    assert isinstance(data_or_outage("s3://d/x.jsonl: cannot read", _s3_error("NoSuchKey", 404)), DataError)


def test_run_workload_reports_known_failures_and_lets_bugs_through(log: Path) -> None:
    def bad_data() -> None:
        raise contract.InvalidSpecError("s3://d/x.jsonl: row 137: template field 'review_body' missing")

    assert contract.run_workload(bad_data, log) == contract.EXIT_FAILED == 2
    report = contract.read_message(log.read_text())
    assert report is not None and report.failure is not None
    assert report.failure.reason is Reason.INVALID_SPEC and "row 137" in report.failure.message

    def oom() -> None:
        raise MemoryError("CUDA out of memory")

    assert contract.run_workload(oom, log) == contract.EXIT_FAILED
    oom_report = contract.read_message(log.read_text())
    assert oom_report is not None and oom_report.failure is not None
    assert oom_report.failure.reason is Reason.OUT_OF_MEMORY and "batchSize" in oom_report.failure.message

    def bug() -> None:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        contract.run_workload(bug, log)
    assert contract.run_workload(lambda: None, log) == contract.EXIT_SUCCEEDED


def test_the_contract_imports_neither_torch_nor_kopf_nor_boto() -> None:
    code = (
        "import sys, kubetune_operator.api.contract;"
        "bad = [m for m in ('kopf', 'torch', 'kubernetes', 'boto3', 'botocore') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
