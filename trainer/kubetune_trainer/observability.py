"""Rank 0's HTTP endpoint: Prometheus metrics on `/metrics` and live progress as JSON on `/progress`.

The operator polls `/progress` (documented in docs/trainer.md) to fill `status.progress` and
`status.lastCheckpoint`; Prometheus scrapes `/metrics`. Port: env `KUBETUNE_METRICS_PORT` (default 9400; `0`
picks a free port, `off` disables), bound to env `POD_IP` when set, else 0.0.0.0.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from kubetune_operator.api.timestamps import utc_now

DEFAULT_PORT = 9400
log = logging.getLogger(__name__)


@dataclass
class Progress:
    """What `/progress` returns (camelCase on the wire, the shape of FineTuneJob `status.progress`)."""

    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    percent: float = 0.0
    eta_seconds: int | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    tokens_per_second: float | None = None
    updated_at: str = field(default_factory=utc_now)
    last_checkpoint: dict[str, Any] | None = None
    phase: str = "Starting"

    def to_json(self) -> dict[str, Any]:
        def camel(name: str) -> str:
            head, *rest = name.split("_")
            return head + "".join(p.title() for p in rest)

        return {camel(k): v for k, v in asdict(self).items()}


class TrainerMetrics:
    """The `kubetune_trainer_*` Prometheus series, in a registry of their own (no clash with defaults)."""

    def __init__(self, job: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["job_name"]
        self._job = job

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"kubetune_trainer_{name}", doc, labels, registry=self.registry)

        self.loss = gauge("loss", "Training loss (mean over completion tokens) of the last optimiser step.")
        self.eval_loss = gauge("eval_loss", "Validation loss of the latest evaluation.")
        self.eval_token_accuracy = gauge(
            "eval_token_accuracy", "Validation next-token accuracy on completions."
        )
        self.learning_rate = gauge("learning_rate", "Current learning rate.")
        self.step = gauge("step", "Optimiser steps done.")
        self.total_steps = gauge("total_steps", "Optimiser steps planned.")
        self.epoch = gauge("epoch", "Epochs done (fractional).")
        self.tokens_per_second = gauge("tokens_per_second", "Non-padding tokens per second, all ranks.")
        self.examples_per_second = gauge("examples_per_second", "Examples per second, all ranks.")
        self.padding_ratio = gauge("padding_ratio", "Share of padding positions in the last step's batches.")
        self.gpu_memory_bytes = gauge("gpu_memory_bytes", "Peak GPU memory allocated by rank 0.")
        self.tokens = Counter(
            "kubetune_trainer_tokens", "Non-padding tokens trained on.", labels, registry=self.registry
        )
        self.checkpoints = Counter(
            "kubetune_trainer_checkpoints", "Checkpoints saved.", labels, registry=self.registry
        )

    def set(self, gauge: Gauge, value: float) -> None:
        gauge.labels(self._job).set(value)

    def inc(self, counter: Counter, value: float = 1.0) -> None:
        counter.labels(self._job).inc(value)


class StatusServer:
    """Serves `/metrics`, `/progress` and `/healthz` from a daemon thread."""

    def __init__(self, metrics: TrainerMetrics) -> None:
        self.metrics = metrics
        self.progress = Progress()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.started = time.monotonic()

    def update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self.progress, key, value)
            self.progress.updated_at = utc_now()

    def progress_json(self) -> dict[str, Any]:
        with self._lock:
            return self.progress.to_json()

    def start(self) -> int | None:
        """Start serving; returns the bound port, or None when disabled or the port is taken."""
        setting = os.environ.get("KUBETUNE_METRICS_PORT", str(DEFAULT_PORT))
        if setting.lower() in {"off", "none", "-1", ""}:
            return None
        host = os.environ.get("POD_IP") or "0.0.0.0"  # scraped from other pods by design
        server_ref = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body, ctype = generate_latest(server_ref.metrics.registry), CONTENT_TYPE_LATEST
                elif path == "/progress":
                    body, ctype = json.dumps(server_ref.progress_json()).encode(), "application/json"
                elif path == "/healthz":
                    body, ctype = b"ok\n", "text/plain"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes every 15 s: keep logs quiet
                return

        try:
            self._server = ThreadingHTTPServer((host, int(setting)), Handler)
        except OSError as err:
            # A busy port on a laptop must not stop a local training run.
            log.warning("metrics endpoint not started on %s:%s: %s", host, setting, err)
            return None
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="kubetune-metrics", daemon=True).start()
        port: int = self._server.server_address[1]
        log.info("serving /metrics and /progress on %s:%d", host, port)
        return port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
