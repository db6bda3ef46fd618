"""One job's rank 0 drips or floods /progress; the operator stays responsive for everyone else.

A real `kubetune operator` process (reconcile interval 1 s) and fake workloads on the local stack: the
abuser's rank 0 answers /progress a byte every 0.5 s, or with 1 GiB; the victim's progress must keep
reaching its status within two intervals (plus a second of slack for this shared 2-core machine), the
operator's resident memory must not grow with what the abuser sends, and the abuser's own changes (suspend)
must still be acted on.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import Objects, OperatorProcess, finetunejob, wait_until

pytestmark = pytest.mark.e2e
NAMESPACE_GLOB = "t-test-progress-abuse-*"  # the conftest's namespace names for the tests below
FTJ = "finetunejobs"
INTERVAL = 1.0


def _healthy(port: int) -> bool | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            return True
    except OSError:
        return None


@pytest.fixture(scope="module")
def operator(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(
        stack.kubeconfig, log, namespaces=[NAMESPACE_GLOB], reconcile_interval=INTERVAL
    ).start()
    wait_until(lambda: _healthy(process.health_port), 30, "operator liveness")
    yield process
    process.stop()
    print(process.log_tail(40))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("mode", ["drip", "flood"])
def test_progress_abuse_victim_is_still_reconciled(
    k8s: KubeClients, namespace: str, operator: OperatorProcess, mode: str
) -> None:
    objects = Objects(k8s.api_client, namespace)
    assert operator.process is not None
    pid = operator.process.pid
    objects.create(finetunejob("victim", json.dumps({"seconds": 40})))
    wait_until(lambda: objects.status(FTJ, "victim").get("progress", {}).get("step"), 90, "victim progress")
    before = rss_bytes(pid)
    objects.create(finetunejob("abuser", json.dumps({"seconds": 40, "progress": mode})))
    wait_until(lambda: objects.status(FTJ, "abuser").get("phase") == "Running" or None, 60, "abuser running")

    # Watch the victim for 12 s while the abuser's /progress is being polled.
    changes: list[float] = [time.monotonic()]
    last = objects.status(FTJ, "victim")["progress"]["step"]
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        step = objects.status(FTJ, "victim")["progress"]["step"]
        if step != last:
            changes.append(time.monotonic())
            last = step
        time.sleep(0.2)
    changes.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    assert max(gaps) <= 2 * INTERVAL + 1.0, gaps
    assert objects.status(FTJ, "abuser").get("phase") == "Running"
    assert "step" not in (objects.status(FTJ, "abuser").get("progress") or {})
    grown = rss_bytes(pid) - before
    # The abuser itself is still reconciled: its suspend is acted on within a few intervals (a read that
    # never ends would hold its reconcile, and with it every change to it, until the pod went away).
    objects.patch_spec(FTJ, "abuser", {"runPolicy": {"suspend": True}})
    started = time.monotonic()
    wait_until(
        lambda: objects.status(FTJ, "abuser").get("phase") == "Suspended" or None, 15, "abuser suspended"
    )
    suspended_after = time.monotonic() - started
    assert grown < 64 * 2**20, f"operator RSS grew by {grown / 2**20:.0f} MiB"
    print(
        f"{mode}: victim gaps max {max(gaps):.2f} s, RSS +{grown / 2**20:.1f} MiB,"
        f" suspended in {suspended_after:.1f} s"
    )
