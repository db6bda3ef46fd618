"""Live progress of an evaluation for EvalJob `status.progress`: samples done of all planned, every shard.

The plan is known up front: each system (model, baseline) runs every task's samples once. A pod counts the
samples of the batches it computes (`PlanProgress`, fed by the runner's progress calls); ranks above 0 of a
sharded EvalJob write their count next to their shard file every few seconds (`ShardProgressWriter`), and
rank 0 adds them up (`PeerProgress`, a background reader) and serves the total as JSON on `/progress`,
next to `/metrics`, which the operator polls as it polls a FineTuneJob's rank 0.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from kubetune_evaluator.progress import ProgressSink
from kubetune_evaluator.shard import Shard
from kubetune_evaluator.shard_exchange import ShardIdentity, shards_prefix
from kubetune_operator.data.storage import exists, join_uri, read_text, write_text

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from kubetune_evaluator.samples import TaskSamples
    from kubetune_operator.api import EvalJobSpec
    from kubetune_operator.data.storage import StorageOptions

log = logging.getLogger("kubetune.evaluator")
DEFAULT_PORT = 9400
WRITE_INTERVAL_SECONDS = 10.0


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def planned_samples(spec: EvalJobSpec, tasks: Sequence[TaskSamples]) -> int:
    """Samples the model work covers: every task the models compute something for, once per system."""
    systems = 2 if spec.baseline is not None else 1
    computed = [t for t in tasks if t.kind in {"generation", "text"} or "accuracy" in spec.metrics]
    return systems * sum(len(task) for task in computed)


class PlanProgress:
    """A ProgressSink that forwards to another (log lines, a bar) and counts samples done of the plan."""

    def __init__(self, inner: ProgressSink, clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.done, self.stage_name = 0, 0, "Reading inputs"
        self._inner, self._clock, self._started = inner, clock, clock()
        self._lock = threading.Lock()
        self.listeners: list[Callable[[int], None]] = []

    def plan(self, total: int) -> None:
        """The samples of the whole evaluation (all shards), once the tasks are read."""
        with self._lock:
            self.total = total

    def stage(self, description: str, total: int) -> None:
        self._inner.stage(description, total)
        with self._lock:
            self.stage_name = description

    def advance(self, amount: int) -> None:
        self._inner.advance(amount)
        with self._lock:
            self.done = min(self.done + amount, self.total)
            done = self.done
        for listener in self.listeners:
            listener(done)

    def report(self, others_done: int = 0) -> dict[str, Any]:
        """The `/progress` document: this pod's samples plus `others_done` (the other shards')."""
        with self._lock:
            done = min(self.done + others_done, self.total)
            stage, elapsed = self.stage_name, self._clock() - self._started
        percent = 100.0 * done / self.total if self.total else 0.0
        eta = round(elapsed * (self.total - done) / done) if done else None
        return {
            "samples": done,
            "totalSamples": self.total,
            "percent": round(percent, 1),
            "etaSeconds": eta,
            "stage": stage,
            "updatedAt": _utc_now(),
        }


def progress_uri(output_uri: str, identity: ShardIdentity, shard: Shard) -> str:
    return join_uri(shards_prefix(output_uri, identity), f"progress-{shard.rank}-of-{shard.count}.json")


class ShardProgressWriter:
    """Ranks above 0: their samples done, written next to their shard at most every `interval` seconds."""

    def __init__(
        self,
        uri: str,
        storage: StorageOptions | None,
        interval: float = WRITE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uri, self._storage, self._interval, self._clock = uri, storage, interval, clock
        self._last = -interval

    def __call__(self, done: int, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        try:
            write_text(self._uri, json.dumps({"samples": done}), self._storage)
        except Exception as error:  # progress is best effort: the evaluation goes on without it
            log.warning("could not write progress to %s: %s", self._uri, error)


class PeerProgress:
    """Rank 0: the other shards' samples done, re-read from their progress files in the background."""

    def __init__(
        self, uris: Sequence[str], storage: StorageOptions | None, interval: float = WRITE_INTERVAL_SECONDS
    ) -> None:
        self._uris, self._storage, self._interval = list(uris), storage, interval
        self._counts: dict[str, int] = {}
        self._stop = threading.Event()

    def total(self) -> int:
        return sum(self._counts.values())

    def refresh(self) -> None:
        for uri in self._uris:
            try:
                if exists(uri, self._storage):
                    self._counts[uri] = int(json.loads(read_text(uri, self._storage))["samples"])
            except Exception as error:  # a file being replaced, S3 hiccups: keep the last count
                log.debug("progress of a shard unreadable at %s: %s", uri, error)

    def start(self) -> PeerProgress:
        def loop() -> None:
            while not self._stop.wait(self._interval):
                self.refresh()

        threading.Thread(target=loop, name="kubetune-shard-progress", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scraped every 15 s: keep pod logs short
        return


def serve_status(registry: CollectorRegistry, progress: Callable[[], dict[str, Any]]) -> int | None:
    """Serve `/metrics` (the registry) and `/progress` (JSON) on KUBETUNE_METRICS_PORT (default 9400;
    `0` a free port, `off` disabled) at POD_IP, else 0.0.0.0; returns the bound port."""
    setting = os.environ.get("KUBETUNE_METRICS_PORT", str(DEFAULT_PORT)).strip().lower()
    if setting in {"off", "none", ""}:
        return None
    metrics = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        if environ.get("PATH_INFO") == "/progress":
            body = json.dumps(progress()).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        return list(metrics(environ, start_response))

    addr = os.environ.get("POD_IP") or "0.0.0.0"
    try:
        server = make_server(addr, int(setting), app, _ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as error:  # a taken port costs the scrape, not the evaluation
        log.warning("cannot serve metrics on %s:%s: %s", addr, setting, error)
        return None
    threading.Thread(target=server.serve_forever, name="kubetune-eval-status", daemon=True).start()
    port: int = server.server_port
    return port


def peer_progress_uris(output_uri: str, identity: ShardIdentity, shard: Shard) -> list[str]:
    return [
        progress_uri(output_uri, identity, Shard(rank, shard.count))
        for rank in range(shard.count)
        if rank != shard.rank
    ]
