"""Kopf wiring: every trigger (create, update, resume, timer) of either kind runs the same idempotent
reconcile.

`build_registry(settings)` registers the handlers explicitly, kind by kind, in a registry of their own
(the timer interval comes from the settings); `kubetune operator` runs Kopf with that registry and
`memo=kopf.Memo(settings=...)`. The startup handler adds the API client to the memo, which Kopf copies
into each object's own memo: the handlers read settings and client from there, and keep the object's
reconcile lock there too. Nothing is read from the environment or kept in module-level state here.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import kopf

from kubetune_operator.api import GROUP, VERSION, JobStatus
from kubetune_operator.api.timestamps import parse_rfc3339
from kubetune_operator.controller.kube import Kube, KubeError, load_client_config
from kubetune_operator.controller.metrics import RECONCILE_ERRORS, RECONCILE_SECONDS, TIME_TO_RUNNING, TRACKER
from kubetune_operator.controller.reconcile import KindPlan, reconcile
from kubetune_operator.controller.reconcile_evaljob import EVALJOB
from kubetune_operator.controller.reconcile_finetunejob import FINETUNEJOB
from kubetune_operator.controller.settings import OperatorSettings
from kubetune_operator.controller.status import TERMINAL_PHASES


def _settings(memo: kopf.Memo) -> OperatorSettings:
    settings = memo["settings"]
    if not isinstance(settings, OperatorSettings):
        raise TypeError("kopf.run needs memo=kopf.Memo(settings=OperatorSettings(...))")
    return settings


def _kube(memo: kopf.Memo) -> Kube:
    kube = memo["kube"]
    assert isinstance(kube, Kube)  # set by `configure` before Kopf watches anything
    return kube


def _lock(memo: kopf.Memo) -> threading.Lock:
    """This object's reconcile lock: Kopf runs timers concurrently with change handlers, and both get the
    object's own memo (dict.setdefault is atomic, so both threads get the same lock)."""
    lock: threading.Lock = memo.setdefault("reconcile_lock", threading.Lock())
    return lock


def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
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
    memo["kube"] = Kube(load_client_config())


def no_cluster_scans(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Exact namespaces only (the Helm chart's namespaced mode): nothing to discover cluster-wide, and
    least-privilege Roles forbid listing namespaces and CRDs, which Kopf would retry for a minute."""
    settings.scanning.disabled = True


def _gpus(body: dict[str, Any]) -> int:
    resources = (body.get("spec") or {}).get("resources") or {}
    return int(resources.get("nodes", 1) or 1) * int(resources.get("gpusPerNode", 0) or 0)


def _record(kind: str, body: dict[str, Any], previous: JobStatus, status: JobStatus) -> None:
    metadata = body["metadata"]
    TRACKER.observe(
        metadata["uid"],
        kind,
        metadata["namespace"],
        phase=status.phase or "Pending",
        restarts=status.restarts,
        gpus=_gpus(body),
        at=time.time(),
    )
    if status.start_time and not previous.start_time:
        created = parse_rfc3339(metadata.get("creationTimestamp"))
        started = parse_rfc3339(status.start_time)
        if created and started:
            TIME_TO_RUNNING.labels(kind).observe(max(0.0, (started - created).total_seconds()))


def reconcile_object(
    plan: KindPlan[Any, Any], body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: kopf.Memo
) -> None:
    """One reconcile under the object's lock; the changed status fields go into Kopf's patch, the Events
    are posted, the metrics updated."""
    kind = plan.kind
    raw: dict[str, Any] = dict(body)
    if raw["metadata"].get("deletionTimestamp"):
        return  # going away: children follow by ownerReference, nothing to reconcile
    stored = dict(raw.get("status") or {})
    started = time.monotonic()
    with _lock(memo):
        try:
            result = reconcile(plan, _kube(memo), raw, _settings(memo), datetime.now(UTC))
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
    changed = {key: value for key, value in result.written.items() if stored.get(key) != value}
    if changed:
        # A merge patch of the changed top-level fields only; unchanged status costs no API call.
        patch.status.update(changed)
    _record(kind, raw, result.previous, result.status)


def _needs_timer(body: kopf.Body, **_: Any) -> bool:
    """Live jobs are polled; finished ones only when a TTL will delete them."""
    # The lifecycle fields only (JobStatus ignores each kind's own).
    if JobStatus.model_validate(dict(body).get("status") or {}).phase not in TERMINAL_PHASES:
        return True
    return ((body.get("spec") or {}).get("runPolicy") or {}).get("ttlSecondsAfterFinished") is not None


def forget(uid: str, **_: Any) -> None:
    """Children go with their owner (ownerReferences); only the metrics need to forget the job (the lock
    goes with the object's memo)."""
    TRACKER.forget(uid)


def _register(
    registry: kopf.OperatorRegistry, plural: str, plan: KindPlan[Any, Any], interval: float
) -> None:
    """create, update of the spec, resume after an operator restart and the poll timer: one reconcile."""

    def handler(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: kopf.Memo, **_: Any) -> None:
        reconcile_object(plan, body, patch, logger, memo)

    handler.__name__ = f"reconcile_{plan.kind.lower()}"
    kopf.on.create(GROUP, VERSION, plural, id=f"{plural}-create", registry=registry)(handler)
    kopf.on.update(GROUP, VERSION, plural, field="spec", id=f"{plural}-update", registry=registry)(handler)
    kopf.on.resume(GROUP, VERSION, plural, id=f"{plural}-resume", registry=registry)(handler)
    kopf.timer(
        GROUP,
        VERSION,
        plural,
        id=f"{plural}-poll",
        interval=interval,
        # The create handler does the first reconcile; a timer firing with it would only repeat it.
        initial_delay=interval,
        when=_needs_timer,
        registry=registry,
    )(handler)
    kopf.on.delete(GROUP, VERSION, plural, optional=True, registry=registry)(forget)


def build_registry(settings: OperatorSettings, *, scan_cluster: bool = True) -> kopf.OperatorRegistry:
    """The operator's handlers; `scan_cluster=False` when it watches exact namespaces only."""
    registry = kopf.OperatorRegistry()
    # Kopf's default registry adds this one implicitly: in-cluster service account, else the kubeconfig.
    kopf.on.login(registry=registry)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(configure)
    if not scan_cluster:
        kopf.on.startup(registry=registry)(no_cluster_scans)
    _register(registry, "finetunejobs", FINETUNEJOB, settings.reconcile_interval_seconds)
    _register(registry, "evaljobs", EVALJOB, settings.reconcile_interval_seconds)
    return registry
