"""Kopf wiring: every trigger (create, update, resume, timer) runs the same idempotent reconcile.

Importing this module registers the handlers; `kubetune operator` sets the KUBETUNE_* environment
first (the timer interval is fixed at registration).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kopf

from kubetune_operator.api import GROUP, VERSION
from kubetune_operator.controller.failures import parse_timestamp
from kubetune_operator.controller.kube import Kube, KubeError, load_client_config
from kubetune_operator.controller.metrics import RECONCILE_ERRORS, RECONCILE_SECONDS, TIME_TO_RUNNING, TRACKER
from kubetune_operator.controller.names import KIND_EVAL, KIND_FINETUNE
from kubetune_operator.controller.reconcile_evaljob import reconcile_evaljob
from kubetune_operator.controller.reconcile_finetunejob import reconcile_finetunejob
from kubetune_operator.controller.reconciled import Reconciled
from kubetune_operator.controller.settings import OperatorSettings
from kubetune_operator.controller.status import TERMINAL_PHASES

SETTINGS = OperatorSettings()
Reconciler = Callable[[Kube, dict[str, Any], OperatorSettings, datetime], Reconciled]
RECONCILERS: dict[str, Reconciler] = {KIND_FINETUNE: reconcile_finetunejob, KIND_EVAL: reconcile_evaljob}
PLURAL_KINDS = {"finetunejobs": KIND_FINETUNE, "evaljobs": KIND_EVAL}


_KUBE: list[Kube] = []
# Kopf runs timers concurrently with change handlers; one reconcile per object at a time.
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(uid: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(uid, threading.Lock())


def _kube() -> Kube:
    with _LOCKS_GUARD:
        if not _KUBE:
            _KUBE.append(Kube(load_client_config()))
        return _KUBE[0]


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Only warnings from logs become Events: the transitions are posted explicitly (kopf.event), and
    # posting every "Handler succeeded" line cost more API calls than the reconcile itself.
    settings.posting.level = logging.WARNING
    # Sync handlers run in this pool; the API layer keeps as many connections.
    settings.execution.max_workers = 32
    settings.batching.worker_limit = 1000
    _kube()


def _gpus(body: dict[str, Any]) -> int:
    resources = (body.get("spec") or {}).get("resources") or {}
    return int(resources.get("nodes", 1) or 1) * int(resources.get("gpusPerNode", 0) or 0)


def _record(kind: str, body: dict[str, Any], previous: dict[str, Any], status: dict[str, Any]) -> None:
    metadata = body["metadata"]
    TRACKER.observe(
        metadata["uid"],
        kind,
        metadata["namespace"],
        phase=str(status.get("phase") or "Pending"),
        restarts=int(status.get("restarts") or 0),
        gpus=_gpus(body),
        at=time.time(),
    )
    if status.get("startTime") and not previous.get("startTime"):
        created = parse_timestamp(metadata.get("creationTimestamp"))
        started = parse_timestamp(status["startTime"])
        if created and started:
            TIME_TO_RUNNING.labels(kind).observe(max(0.0, (started - created).total_seconds()))


def reconcile(kind: str, body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger) -> None:
    raw: dict[str, Any] = dict(body)
    if raw["metadata"].get("deletionTimestamp"):
        return  # going away: children follow by ownerReference, nothing to reconcile
    previous = dict(raw.get("status") or {})
    started = time.monotonic()
    with _lock_for(raw["metadata"]["uid"]):
        try:
            result = RECONCILERS[kind](_kube(), raw, SETTINGS, datetime.now(UTC))
        except KubeError as error:
            if error.status == 403 and "being terminated" in error.message:
                # The namespace is being deleted, and this object with it: nothing left to do.
                logger.debug(f"namespace terminating, skipped: {error}")
                return
            RECONCILE_ERRORS.labels(kind).inc()
            raise kopf.TemporaryError(f"API error, retrying: {error}", delay=2) from error
        finally:
            RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)
    for event in result.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        logger.info(
            f"{raw['metadata']['namespace']}/{raw['metadata']['name']} {event.reason}: {event.message}"
        )
    if result.deleted:
        TRACKER.forget(raw["metadata"]["uid"])
        return
    changed = {key: value for key, value in result.status.items() if previous.get(key) != value}
    if changed:
        # A merge patch of the changed top-level fields only; unchanged status costs no API call.
        patch.status.update(changed)
    _record(kind, raw, previous, result.status)


def _needs_timer(body: kopf.Body, **_: Any) -> bool:
    """Live jobs are polled; finished ones only when a TTL will delete them."""
    status = body.get("status") or {}
    if status.get("phase") not in TERMINAL_PHASES:
        return True
    return ((body.get("spec") or {}).get("runPolicy") or {}).get("ttlSecondsAfterFinished") is not None


for _plural, _kind in PLURAL_KINDS.items():

    def _make(kind: str) -> Callable[..., None]:
        def handler(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
            reconcile(kind, body, patch, logger)

        handler.__name__ = f"reconcile_{kind.lower()}"
        return handler

    _handler = _make(_kind)
    kopf.on.create(GROUP, VERSION, _plural, id=f"{_plural}-create")(_handler)
    kopf.on.update(GROUP, VERSION, _plural, field="spec", id=f"{_plural}-update")(_handler)
    kopf.on.resume(GROUP, VERSION, _plural, id=f"{_plural}-resume")(_handler)
    kopf.timer(
        GROUP,
        VERSION,
        _plural,
        id=f"{_plural}-poll",
        interval=SETTINGS.reconcile_interval_seconds,
        # The create handler does the first reconcile; a timer firing with it would only repeat it.
        initial_delay=SETTINGS.reconcile_interval_seconds,
        when=_needs_timer,
    )(_handler)


@kopf.on.delete(GROUP, VERSION, "finetunejobs", optional=True)
@kopf.on.delete(GROUP, VERSION, "evaljobs", optional=True)
def forget(uid: str, **_: Any) -> None:
    """Children go with their owner (ownerReferences); only the metrics need to forget the job."""
    TRACKER.forget(uid)
    with _LOCKS_GUARD:
        _LOCKS.pop(uid, None)
