"""Operator metrics on /metrics (prometheus-client): jobs by phase, reconcile timing and errors,
restarts, creation-to-Running latency, GPU-seconds per namespace."""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RECONCILE_SECONDS = Histogram(
    "kubetune_operator_reconcile_duration_seconds",
    "Time spent in one reconcile of a FineTuneJob/EvalJob.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_ERRORS = Counter(
    "kubetune_operator_reconcile_errors_total", "Reconciles that failed and will be retried.", ["kind"]
)
RESTARTS = Counter("kubetune_operator_restarts_total", "Gang restarts.", ["kind", "namespace"])
TIME_TO_RUNNING = Histogram(
    "kubetune_operator_time_to_running_seconds",
    "From the object's creation to all of its workers running.",
    ["kind"],
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
GPU_SECONDS = Counter(
    "kubetune_operator_gpu_seconds_total", "GPU-seconds held by running jobs.", ["kind", "namespace"]
)


@dataclass
class _Seen:
    kind: str
    namespace: str
    phase: str
    restarts: int
    gpus: int
    at: float


class JobTracker(Collector):
    """The last phase of every job this replica reconciled; exported as `kubetune_operator_jobs`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, _Seen] = {}

    def observe(
        self, uid: str, kind: str, namespace: str, *, phase: str, restarts: int, gpus: int, at: float
    ) -> None:
        with self._lock:
            before = self._seen.get(uid)
            self._seen[uid] = _Seen(kind, namespace, phase, restarts, gpus, at)
        if before is None:
            return
        if restarts > before.restarts:
            RESTARTS.labels(kind, namespace).inc(restarts - before.restarts)
        if before.phase == "Running" and before.gpus:
            # Integrated between observations: the GPUs were held for as long as the job was seen running.
            GPU_SECONDS.labels(kind, namespace).inc(before.gpus * max(0.0, at - before.at))

    def forget(self, uid: str) -> None:
        with self._lock:
            self._seen.pop(uid, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "kubetune_operator_jobs",
            "Jobs by kind, namespace and phase.",
            labels=["kind", "namespace", "phase"],
        )
        with self._lock:
            tally = Tally((seen.kind, seen.namespace, seen.phase) for seen in self._seen.values())
        for (kind, namespace, phase), count in sorted(tally.items()):
            family.add_metric([kind, namespace, phase], count)
        yield family


TRACKER = JobTracker()
REGISTRY.register(TRACKER)


def serve_metrics(port: int, addr: str = "0.0.0.0") -> None:
    """Serve /metrics on a daemon thread; port 0 disables it (e.g. a second replica in tests)."""
    if port:
        start_http_server(port, addr=addr)
