"""Operator scale benchmark: apply N FineTuneJobs at once and measure how fast their child Jobs appear.

    .venv/bin/python bench/operator_scale.py --jobs 1000            # against `kubetune dev up`
    .venv/bin/python bench/operator_scale.py --jobs 500 --kubeconfig /path/to/kubeconfig

The FineTuneJobs are suspended (runPolicy.suspend): the operator creates ConfigMap, Service and a
suspended Indexed Job for each, no pods run, so the figure is the operator's (and API server's) own
throughput. Reports: time until every child Job exists, p50/p99 latency from a FineTuneJob's creation
to its child Job, and the operator process's peak RSS. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from kubetune_devtools.testing.operator_harness import OperatorProcess, finetunejob, free_port, wait_until


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class PeakRss(threading.Thread):
    """Samples the operator's resident set every 100 ms (it is one process; Kopf uses threads)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.cpu_seconds = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
                times = self.process.cpu_times()
                self.cpu_seconds = times.user + times.system
            except psutil.Error:
                return
            time.sleep(0.1)


class JobArrivals(threading.Thread):
    """When each child Job was first seen (watch on batch/v1 Jobs of the namespace)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        super().__init__(daemon=True)
        self.batch = client.BatchV1Api(api)
        self.namespace = namespace
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        self.ready.set()
        while True:
            # A fresh list+watch per round: resuming a watch can fail with "too large resource version".
            try:
                stream = watch.Watch()
                for event in stream.stream(
                    self.batch.list_namespaced_job, self.namespace, timeout_seconds=30
                ):
                    owner = (event["object"].metadata.labels or {}).get("kubetune.io/job-name")
                    if owner and owner not in self.seen:
                        self.seen[owner] = time.time()
            except ApiException:
                time.sleep(0.1)


def release_finalizers(custom: client.CustomObjectsApi, namespace: str) -> None:
    """With the operator gone, its finalizers would keep the namespace Terminating for ever."""
    listed = custom.list_namespaced_custom_object("kubetune.io", "v1alpha1", namespace, "finetunejobs")
    for item in listed["items"]:
        if item["metadata"].get("finalizers"):
            custom.patch_namespaced_custom_object(
                "kubetune.io",
                "v1alpha1",
                namespace,
                "finetunejobs",
                item["metadata"]["name"],
                {"metadata": {"finalizers": None}},
            )


def run(jobs: int, kubeconfig: Path, workers: int, timeout: float) -> dict[str, Any]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = f"kt-bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    log = Path(f"/tmp/{namespace}-operator.log")
    operator = OperatorProcess(kubeconfig, log, [namespace], reconcile_interval=300, metrics_port=0)
    operator.health_port = free_port()
    operator.start()
    assert operator.process is not None
    rss = PeakRss(operator.process.pid)
    rss.start()
    arrivals = JobArrivals(api, namespace)
    arrivals.start()
    arrivals.ready.wait()
    # The burst starts once the operator is up and watching (startup takes seconds on a busy machine).
    wait_until(lambda: "Initial authentication has finished" in operator.log_text(), 60, "operator start")
    time.sleep(2)
    created: dict[str, float] = {}

    def create(index: int) -> None:
        name = f"bench-{index:05d}"
        body = finetunejob(name, runPolicy={"suspend": True})
        custom.create_namespaced_custom_object("kubetune.io", "v1alpha1", namespace, "finetunejobs", body)
        created[name] = time.time()

    started = time.time()
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(create, range(jobs)))
        applied = time.time() - started
        wait_until(lambda: len(arrivals.seen) >= jobs, timeout, f"{jobs} child Jobs", interval=0.5)
        finished = max(arrivals.seen.values()) - started
    finally:
        rss.done.set()
        operator.stop()
        release_finalizers(custom, namespace)
        core.delete_namespace(namespace, propagation_policy="Background")
    latencies = [arrivals.seen[name] - created[name] for name in created]
    return {
        "jobs": jobs,
        "apply_seconds": round(applied, 2),
        "all_child_jobs_seconds": round(finished, 2),
        "create_to_job_p50_seconds": round(statistics.median(latencies), 3),
        "create_to_job_p99_seconds": round(percentile(latencies, 0.99), 3),
        "operator_peak_rss_mb": round(rss.peak / 2**20, 1),
        "operator_cpu_seconds": round(rss.cpu_seconds, 1),
        "load_average_1m": round(psutil.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kubeconfig", type=Path, default=None, help="default: the `kubetune dev up` stack")
    parser.add_argument("--workers", type=int, default=16, help="client threads applying the FineTuneJobs")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    kubeconfig = args.kubeconfig
    if kubeconfig is None:
        from kubetune_devtools.devstack.stack import load_stack

        kubeconfig = load_stack().kubeconfig
    result = run(args.jobs, kubeconfig, args.workers, args.timeout)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
