"""Errors the evaluator raises for bad user input (never a traceback for these)."""

from __future__ import annotations


class EvalInputError(ValueError):
    """The EvalJob spec, the dataset or the predictions are unusable; the message names the field or row."""


class JudgeError(RuntimeError):
    """The judge endpoint failed for one sample after all retries (recorded per sample, never fatal)."""
