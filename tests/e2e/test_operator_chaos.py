"""Chaos: 30 FineTuneJobs while the operator process is SIGKILLed at random 10 times.

Every job must still reach its terminal phase, each attempt's child Job is created once (one uid), the
attempts are contiguous and only the newest remains (deterministic names + create-before-delete restarts).
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import Objects, OperatorProcess, finetunejob, wait_until

pytestmark = pytest.mark.e2e
JOBS = 30
KILLS = 10
STARTED = "Initial authentication has finished"


class JobWatch(threading.Thread):
    """Records every child Job (name and uid) ever seen per FineTuneJob."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        super().__init__(daemon=True)
        self.batch = client.BatchV1Api(api)
        self.namespace = namespace
        self.seen: dict[str, set[str]] = {}
        self.uids: dict[str, set[str]] = {}
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            # A fresh list+watch each round: a resumed watch may hit "too large resource version" (504).
            try:
                self._round()
            except ApiException:
                time.sleep(0.2)

    def _round(self) -> None:
        stream = watch.Watch()
        for event in stream.stream(self.batch.list_namespaced_job, self.namespace, timeout_seconds=2):
            job = event["object"]
            owner = (job.metadata.labels or {}).get("kubetune.io/job-name", "?")
            self.seen.setdefault(owner, set()).add(job.metadata.name)
            self.uids.setdefault(job.metadata.name, set()).add(job.metadata.uid)

    def stop(self) -> None:
        self._stop.set()


def test_chaos_operator_killed_ten_times_every_job_finishes_without_duplicates(
    stack: LocalStack, k8s: KubeClients, namespace: str, tmp_path: Path
) -> None:
    # Named test_chaos_*: its namespace is not in the lifecycle module's operator glob.
    kubeconfig, objects = stack.kubeconfig, Objects(k8s.api_client, namespace)
    rng = random.Random(7)
    watcher = JobWatch(objects.batch.api_client, objects.namespace)
    watcher.start()
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log", namespaces=[objects.namespace]).start()
    expected: dict[str, str] = {}
    for index in range(JOBS):
        name = f"chaos-{index}"
        # A third fail once (one gang restart), a tenth fail for good; the rest succeed.
        if index % 10 == 9:
            scenario: dict[str, Any] = {"seconds": 2, "failRank": 0, "exitCode": 5, "failAfter": 0.3}
            spec: dict[str, Any] = {"runPolicy": {"maxRestarts": 1}}
            expected[name] = "Failed"
        elif index % 3 == 0:
            scenario = {"seconds": 2, "failRank": 0, "failAttempts": [0], "exitCode": 4, "failAfter": 0.3}
            spec = {}
            expected[name] = "Succeeded"
        else:
            scenario, spec, expected[name] = {"seconds": 2}, {}, "Succeeded"
        objects.create(finetunejob(name, json.dumps(scenario), **spec))
    try:
        for round_ in range(KILLS):
            # Kill it while it works: after it has logged in again (startup can take seconds under load).
            wait_until(lambda n=round_: operator.log_text().count(STARTED) > n, 60, "operator started")
            time.sleep(rng.uniform(0.5, 3.0))
            operator.kill()
            time.sleep(rng.uniform(0.0, 1.0))
            operator.start()

        def all_terminal() -> dict[str, str] | None:
            phases = {name: objects.status("finetunejobs", name).get("phase", "") for name in expected}
            return phases if all(p in ("Succeeded", "Failed") for p in phases.values()) else None

        phases = wait_until(all_terminal, 240, "every FineTuneJob terminal", interval=2)
    finally:
        operator.stop()
        watcher.stop()
    assert phases == expected
    for name in expected:
        status = objects.status("finetunejobs", name)
        attempts = sorted(watcher.seen.get(name, set()))
        # Every attempt was created once (one uid per name), attempts are contiguous, only the last remains.
        assert all(len(watcher.uids[job]) == 1 for job in attempts), (name, watcher.uids)
        assert attempts == [f"{name}-r{n}" for n in range(status["restarts"] + 1)], (name, attempts, status)
        remaining = [job.metadata.name for job in objects.jobs(name) if not job.metadata.deletion_timestamp]
        assert remaining == [f"{name}-r{status['restarts']}"], (name, remaining)
