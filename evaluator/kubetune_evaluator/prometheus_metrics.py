"""Prometheus gauges of an evaluation (prefix `kubetune_eval_`), served by the evaluator pod."""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, start_http_server

if TYPE_CHECKING:
    from kubetune_evaluator.runner import EvalOutcome

DEFAULT_PORT = 9400
log = logging.getLogger("kubetune.evaluator")


class EvalGauges:
    """One registry per run, so a test (or a second run in one process) starts from a clean slate."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.score = Gauge(
            "kubetune_eval_score",
            "Score of a system on a task.",
            ["task", "score", "system"],
            registry=self.registry,
        )
        self.score_low = Gauge(
            "kubetune_eval_score_ci_low",
            "Lower end of the 95% bootstrap CI.",
            ["task", "score", "system"],
            registry=self.registry,
        )
        self.score_high = Gauge(
            "kubetune_eval_score_ci_high",
            "Upper end of the 95% bootstrap CI.",
            ["task", "score", "system"],
            registry=self.registry,
        )
        self.delta = Gauge(
            "kubetune_eval_delta", "Model minus baseline (paired).", ["task", "score"], registry=self.registry
        )
        self.samples = Gauge(
            "kubetune_eval_samples", "Samples scored per task.", ["task"], registry=self.registry
        )
        self.passed = Gauge(
            "kubetune_eval_verdict_passed", "1 if the thresholds passed, else 0.", registry=self.registry
        )
        self.completed = Gauge(
            "kubetune_eval_completed_timestamp_seconds",
            "When the evaluation finished.",
            registry=self.registry,
        )

    def record(self, outcome: EvalOutcome) -> None:
        for task in outcome.tasks:
            self.samples.labels(task.name).set(len(task))
            for name, entry in outcome.task_scores.get(task.name, {}).items():
                for system in ("model", "baseline"):
                    if system in entry and math.isfinite(entry[system]["value"]):
                        self.score.labels(task.name, name, system).set(entry[system]["value"])
                        self.score_low.labels(task.name, name, system).set(entry[system]["low"])
                        self.score_high.labels(task.name, name, system).set(entry[system]["high"])
                if "delta" in entry and math.isfinite(entry["delta"]["value"]):
                    self.delta.labels(task.name, name).set(entry["delta"]["value"])
        self.passed.set(1.0 if outcome.verdict == "Passed" else 0.0)
        self.completed.set_to_current_time()

    def serve(self) -> int | None:
        """Serve /metrics on KUBETUNE_METRICS_PORT (default 9400; `0` a free port, `off` disabled) at
        POD_IP, else 0.0.0.0 (Prometheus scrapes pods from elsewhere); returns the bound port."""
        setting = os.environ.get("KUBETUNE_METRICS_PORT", str(DEFAULT_PORT)).strip().lower()
        if setting in {"off", "none", ""}:
            return None
        addr = os.environ.get("POD_IP") or "0.0.0.0"
        try:
            server, _ = start_http_server(int(setting), addr=addr, registry=self.registry)
        except OSError as error:  # a taken port costs the scrape, not the evaluation
            log.warning("cannot serve metrics on %s:%s: %s", addr, setting, error)
            return None
        port: int = server.server_port
        return port
