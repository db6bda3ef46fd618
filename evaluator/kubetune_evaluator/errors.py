"""Errors the evaluator raises for bad user input (never a traceback for these)."""

from __future__ import annotations

from kubetune_operator.api.contract import InvalidSpecError


class EvalInputError(InvalidSpecError, ValueError):
    """The EvalJob spec, the dataset or the predictions are unusable; the message names the field or row.

    Reported as InvalidSpec (workload contract): the EvalJob fails at once, without restarts."""


class JudgeError(RuntimeError):
    """The judge endpoint failed for one sample after all retries (recorded per sample, never fatal)."""
