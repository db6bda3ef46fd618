"""Local paths are for `kubetune train` / `kubetune eval`, never for a job the operator runs.

The API accepts a local path wherever it accepts an S3 URI, because the CLI runs the same spec on one
machine. In a cluster the pods share no disk with each other or with the user: a local `output.uri` would
be written inside a pod and lost with it, and a local model or dataset would be read from whatever node
the pod lands on. The operator therefore fails such a job with InvalidSpec before creating anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubetune_operator.api.common import JobStatus
from kubetune_operator.controller import reasons
from kubetune_operator.controller.conditions import is_true
from kubetune_operator.controller.status import Transition


def _uri_fields(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(field path, value) of every `uri` / `...Uri` string in the raw spec, in document order."""
    if isinstance(value, dict):
        for key, item in value.items():
            field = f"{path}.{key}"
            if isinstance(item, str) and (key == "uri" or key.endswith("Uri")):
                yield field, item
            else:
                yield from _uri_fields(item, field)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _uri_fields(item, f"{path}[{index}]")


def local_path_fields(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """Every URI field of a raw (camelCase) spec that is not an `s3://` URI."""
    return [(field, uri) for field, uri in _uri_fields(spec, "spec") if not uri.startswith("s3://")]


def local_path_failure(previous: JobStatus, spec: dict[str, Any]) -> Transition | None:
    """Failed/InvalidSpec naming the first local-path field; None when all are S3 or children exist.

    Like the platform policy, checked only before the first child is created: the fields are immutable,
    and a job already running (on a single-node dev stack, say) is not failed by an operator upgrade.
    """
    if is_true(previous.conditions, reasons.CREATED):
        return None
    found = local_path_fields(spec)
    if not found:
        return None
    field, uri = found[0]
    return Transition(
        "Failed",
        reasons.INVALID_SPEC,
        f'{field} "{uri}" is a local path: pods in a cluster share no disk, so a job the operator runs '
        "needs s3:// URIs; local paths only work with `kubetune train` / `kubetune eval`",
    )
