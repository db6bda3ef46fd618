"""Errors raised for bad user input (data, templates, config).

They carry a message that names the file, row and field at fault; the CLI and the pod entry point print
the message (no traceback) and exit non-zero, so `kubectl describe` / the termination message says
exactly what to fix.
"""

from __future__ import annotations

from kubetune_operator.api.contract import InvalidSpecError, Reason, StorageUnreachableError, classify


class KubetuneError(InvalidSpecError):
    """Base class of the errors a user can fix by changing their job or data (reported as InvalidSpec)."""


class ConfigError(KubetuneError):
    """The job spec asks for something impossible (unknown module name, empty split, ...)."""


class DataError(KubetuneError):
    """A dataset file or row cannot be used (unreadable, missing field, empty completion, ...)."""


class TemplateError(DataError):
    """A prompt template is invalid or refers to a field that a row does not have."""


class UnsafeObjectKeyError(KubetuneError):
    """An S3 object's key would land outside the folder it is downloaded into (`..`, `//`, absolute)."""


def data_or_outage(message: str, error: BaseException) -> InvalidSpecError | StorageUnreachableError:
    """DataError for what the user must fix; StorageUnreachableError when S3 did not answer, which is not
    the data's fault (storage.py retried it for its window; the operator reports StorageUnreachable)."""
    if classify(error) is Reason.STORAGE_UNREACHABLE:
        return StorageUnreachableError(f"{message}: {error}")
    return DataError(f"{message}: {error}")
