"""The workload protocol: how trainer and evaluator pods tell the operator how they ended.

One module, imported by the operator, the trainer, the evaluator and the test workloads (no torch, no
kopf, no boto3 import), so that what a pod writes is by construction what the operator reads.

A pod ends in one of three ways:
- success: exit code 0 and `{"result": {...}}` in its termination message. A trainer's result holds
  `output` ({uri, digest}), `progress` (the final /progress report: last step, 100 %, final losses) and
  `lastCheckpoint`; an evaluator's result holds `results`, `verdict`, `verdictReasons` and `reportUri`.
- a failure it understood: exit code 2 and `{"failure": {"reason": ..., "message": ...}}`, the reason one
  of `Reason` (a closed set). The operator fails the job with that reason at once: a restart of the same
  spec cannot help (bad data stays bad; storage was already retried with backoff inside the pod).
- anything else (a crash, a signal, exit code 1 with a traceback): the operator's own classification
  (OOMKilled, Error, ...) and the restart budget apply.

The message is written to `terminationMessagePath` (`/dev/termination-log`), which the kubelet keeps up to
4096 bytes of; the writer never exceeds that, trimming a failure's message and refusing an oversized
result (the caller must make it smaller: a truncated JSON would be no result at all).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Final

TERMINATION_LOG: Final = Path("/dev/termination-log")
TERMINATION_LOG_ENV: Final = "KUBETUNE_TERMINATION_LOG"
"""Overrides the path (tests, and runtimes that mount the file elsewhere)."""
TERMINATION_MESSAGE_LIMIT: Final = 4096
"""Bytes of the termination message that Kubernetes keeps."""

EXIT_SUCCEEDED: Final = 0
EXIT_ERROR: Final = 1
"""Unexpected error (traceback in the log): the operator's restart budget applies."""
EXIT_FAILED: Final = 2
"""A failure the workload understood, described by the termination message: not restarted."""
EXIT_PREEMPTED: Final = 143
"""SIGTERM received and a checkpoint saved: the next attempt resumes from it."""


class Reason(StrEnum):
    """Why a workload failed; the `reason` of the job's Failed condition."""

    INVALID_SPEC = "InvalidSpec"
    """The spec, a template or the data is unusable; the message names the field, row or file."""
    STORAGE_UNREACHABLE = "StorageUnreachable"
    """S3 did not answer (connection refused, timeouts, 5xx) after the client's retries with backoff."""
    OUT_OF_MEMORY = "OutOfMemory"
    """The process ran out of (GPU) memory; the same spec would fail again."""
    OUTPUT_IN_USE = "OutputInUse"
    """`output.uri` holds another job's output."""
    INSUFFICIENT_MEMORY = "InsufficientMemory"
    """The memory estimate per device exceeds the device's memory; the message names what would fit."""
    DIGEST_MISMATCH = "DigestMismatch"
    """Files read from storage are not the ones pinned (a model's `digest`) or recorded (a checkpoint's
    manifest): changed or swapped since; the message names both digests. Nothing of them was loaded."""


class WorkloadError(Exception):
    """The root of every error a workload reports through its termination message; carries a reason."""

    reason: ClassVar[Reason] = Reason.INVALID_SPEC


class InvalidSpecError(WorkloadError):
    reason = Reason.INVALID_SPEC


class StorageUnreachableError(WorkloadError):
    reason = Reason.STORAGE_UNREACHABLE


class WorkloadOutOfMemoryError(WorkloadError):
    reason = Reason.OUT_OF_MEMORY


class OutputInUseError(WorkloadError):
    reason = Reason.OUTPUT_IN_USE


class InsufficientMemoryError(WorkloadError):
    reason = Reason.INSUFFICIENT_MEMORY


class DigestMismatchError(WorkloadError):
    reason = Reason.DIGEST_MISMATCH


@dataclass(frozen=True)
class Failure:
    reason: Reason | None
    """None when the workload reported a reason this operator does not know (a newer workload)."""
    reported_reason: str
    message: str


@dataclass(frozen=True)
class Report:
    """What the operator read from one container's termination message."""

    result: dict[str, Any] | None = None
    failure: Failure | None = None


def _encode(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False, default=str)


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def encode_result(result: Mapping[str, Any]) -> str:
    """`{"result": ...}` as compact JSON; ValueError when it would exceed the kubelet's limit."""
    text = _encode({"result": dict(result)})
    if _size(text) > TERMINATION_MESSAGE_LIMIT:
        raise ValueError(f"result is {_size(text)} bytes, over the {TERMINATION_MESSAGE_LIMIT}-byte limit")
    return text


def result_fits(result: Mapping[str, Any]) -> bool:
    return _size(_encode({"result": dict(result)})) <= TERMINATION_MESSAGE_LIMIT


def encode_failure(reason: Reason, message: str) -> str:
    """`{"failure": {"reason", "message"}}`; a long message loses its middle, never the reason."""

    def encoded(keep: int) -> str:
        # Keep the start (what failed) and the end (the innermost cause) of the message.
        head, tail = keep // 2, keep - keep // 2
        text = message if keep >= len(message) else f"{message[:head]} [...] {message[len(message) - tail :]}"
        return _encode({"failure": {"reason": reason.value, "message": text}})

    # The largest number of characters kept that fits (JSON escaping makes bytes per character vary).
    low, high = 0, len(message)
    while low < high:
        middle = (low + high + 1) // 2
        if _size(encoded(middle)) <= TERMINATION_MESSAGE_LIMIT:
            low = middle
        else:
            high = middle - 1
    return encoded(low)


def termination_log_path() -> Path:
    return Path(os.environ.get(TERMINATION_LOG_ENV) or TERMINATION_LOG)


def write_message(text: str, path: Path | None = None) -> bool:
    """Write to the termination log where it exists (the kubelet creates it); a local run has none and
    must not create /dev/termination-log. False when nothing was written."""
    target = path or termination_log_path()
    if not target.is_file():
        return False
    try:
        target.write_text(text, encoding="utf-8")
    except OSError:
        return False
    return True


def write_result(result: Mapping[str, Any], path: Path | None = None) -> bool:
    return write_message(encode_result(result), path)


def write_failure(reason: Reason, message: str, path: Path | None = None) -> bool:
    return write_message(encode_failure(reason, message), path)


def read_message(text: str | None) -> Report | None:
    """Parse a termination message; None when absent or not ours (e.g. a log tail under
    FallbackToLogsOnError, or a truncated message)."""
    if not text:
        return None
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    failure = payload.get("failure")
    if isinstance(failure, dict) and isinstance(failure.get("reason"), str):
        reported = str(failure["reason"])
        known = reported if reported in Reason._value2member_map_ else None
        reason = Reason(known) if known is not None else None
        return Report(failure=Failure(reason, reported, str(failure.get("message") or "")))
    result = payload.get("result")
    if isinstance(result, dict):
        return Report(result=result)
    return None


# ----------------------------------------------------------------------------- exceptions -> reasons
_STORAGE_ERROR_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed"}
)


def _is_storage_outage(error: BaseException) -> bool:
    """botocore's connection-level errors and S3 5xx answers (checked without importing botocore)."""
    module = type(error).__module__
    if not module.startswith(("botocore", "urllib3", "s3transfer")):
        return False
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & {"ConnectionError", "HTTPClientError", "ConnectionClosedError", "ReadTimeoutError"}:
        return True
    if "ClientError" in names:
        response: Any = getattr(error, "response", {}) or {}
        status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        return status >= 500 or (response.get("Error") or {}).get("Code") in _STORAGE_ERROR_CODES
    return False


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    # torch.OutOfMemoryError (CUDA, MPS); older torch raised RuntimeError("CUDA out of memory ...").
    if type(error).__module__.startswith("torch") and type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def classify(error: BaseException) -> Reason | None:
    """The reason to report for an exception, or None for an unexpected error (restart may help)."""
    if isinstance(error, WorkloadError):
        return error.reason
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # the cause chain: a wrapped S3 error counts
        seen.add(id(current))
        if _is_storage_outage(current):
            return Reason.STORAGE_UNREACHABLE
        if _is_out_of_memory(current):
            return Reason.OUT_OF_MEMORY
        current = current.__cause__ or current.__context__
    return None


def failure_message(reason: Reason, error: BaseException) -> str:
    message = str(error) or type(error).__name__
    if reason is Reason.OUT_OF_MEMORY and not isinstance(error, WorkloadError):
        message += (
            "; lower hyperparameters.batchSize or maxSeqLength, use method lora/qlora, or raise "
            "resources.memory / use larger GPUs"
        )
    return message


def run_workload(main: Callable[[], object], path: Path | None = None) -> int:
    """Run a workload's main function: an error with a reason is reported (message on stderr and in the
    termination log) and ends the process with EXIT_FAILED; any other error propagates (traceback, exit 1).
    The result is written by the workload itself, through `write_result`."""
    try:
        main()
    except Exception as error:
        reason = classify(error)
        if reason is None:
            raise
        message = failure_message(reason, error)
        print(f"error ({reason.value}): {message}", file=sys.stderr, flush=True)
        write_failure(reason, message, path)
        return EXIT_FAILED
    return EXIT_SUCCEEDED
