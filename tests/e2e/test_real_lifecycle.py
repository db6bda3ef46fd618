"""Lifecycle paths of a FineTuneJob with the REAL trainer in its pods, on the local stack: a worker
SIGKILLed after a checkpoint (one node, and one of two nodes), a pod evicted through the Eviction API,
suspend and resume, and S3 going away for a while (a private MinIO process, so that the stack's MinIO
stays up for everyone else)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest
from kubernetes import client

from kubetune_devtools.devstack.binaries import go_tool_dir
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.probes import http_ok
from kubetune_devtools.devstack.s3 import ensure_bucket, s3_client, upload_directory
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import (
    Objects,
    OperatorProcess,
    built_workload_images,
    free_port,
    wait_until,
)
from kubetune_devtools.tiny_models import build_tiny_model, letter_task_spec, reverse_task_rows

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
# The conftest names namespaces `t-<test name>-<random>`: every test here is `test_lifecycle_*`.
NAMESPACE_GLOB = "t-test-lifecycle-*"
BUCKET = "real-lifecycle-e2e"
SECRET = "s3-creds"
FTJ = "finetunejobs"
PROMPT, COMPLETION = "Reverse: {{ word }}\n", "{{ reversed }}"
# The pods' S3 retry window (--pod-storage-retry-seconds): long enough to ride out the short outage
# below, short enough for the long one to fail the job within seconds.
STORAGE_RETRY_SECONDS = 20
SHORT_OUTAGE_SECONDS = 6
# The first gang restart's back-off (the operator's --restart-backoff): long enough for the operator, which
# reconciles every second, to report it, short enough not to slow the tests down.
RESTART_BACKOFF_SECONDS = 3
# Steps of the suspended job: this tiny model trains ~40 steps a second here, and the suspend must come
# while it trains.
SUSPEND_STEPS = 800


@pytest.fixture(scope="module")
def real_operator(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The conftest's operator with the real workloads, with a short pod S3 retry window."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    operator = OperatorProcess(
        stack.kubeconfig,
        log,
        namespaces=[NAMESPACE_GLOB],
        trainer_module="kubetune_trainer",
        evaluator_module="kubetune_evaluator",
        pending_timeout=120,
        restart_backoff=RESTART_BACKOFF_SECONDS,
        # A gang of several nodes runs `accelerate launch` (torch elastic, gloo on CPU); one process per pod
        # runs the trainer directly either way (builders.build_launch_command).
        launcher="accelerate",
        **built_workload_images(),
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KUBETUNE_POD_STORAGE_RETRY_SECONDS", str(STORAGE_RETRY_SECONDS))
        operator.start()
    yield operator
    operator.stop()
    print(operator.log_tail(80))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny base model and 120 rows of the letter task, on the local disk (uploaded per S3 server)."""
    root = tmp_path_factory.mktemp("inputs")
    build_tiny_model(root / "base", hidden_size=64)
    rows = reverse_task_rows(120)
    (root / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def upload_inputs(s3: S3Client, inputs: Path) -> str:
    """The inputs under a fresh prefix of BUCKET; returns `s3://BUCKET/<prefix>`."""
    ensure_bucket(s3, BUCKET)
    prefix = secrets.token_hex(4)
    upload_directory(s3, inputs, f"s3://{BUCKET}/{prefix}")
    return f"s3://{BUCKET}/{prefix}"


@pytest.fixture
def objects(k8s: KubeClients, namespace: str, s3_secret: str, real_operator: OperatorProcess) -> Objects:
    assert s3_secret == SECRET  # what the jobs' storage.credentialsSecret names
    return Objects(k8s.api_client, namespace)


def finetunejob(
    name: str, prefix: str, output: str, endpoint: str, region: str, *, max_restarts: int, steps: int
) -> dict[str, Any]:
    spec = letter_task_spec(
        f"{prefix}/base/",
        f"{prefix}/data.jsonl",
        output,
        prompt=PROMPT,
        completion=COMPLETION,
        maxSteps=steps,
        batchSize=8,
    )
    spec["checkpoint"] = {"everySteps": 4, "keep": 2}
    spec["storage"] = {"endpoint": endpoint, "region": region, "credentialsSecret": SECRET}
    spec["runPolicy"] = {"maxRestarts": max_restarts}
    # A memory limit gives the container its own memory cgroup on the node agent, which tells an OOM kill
    # from any other SIGKILL; without one the agent takes a SIGKILL it did not send for the OOM killer.
    spec["resources"] = {"memory": "4Gi"}
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": spec,
    }


def finished(objects: Objects, name: str) -> dict[str, Any] | None:
    status = objects.status(FTJ, name)
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def complete_checkpoints(s3: S3Client, output: str) -> list[int]:
    """Steps of the checkpoints under `output` whose manifest (written last) is on S3."""
    prefix = f"{output.removeprefix(f's3://{BUCKET}/')}checkpoints/"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    keys = [item["Key"].removeprefix(prefix) for item in listed]
    return sorted(
        int(key.split("/")[0].removeprefix("step-")) for key in keys if key.endswith("/manifest.json")
    )


def s3_json(s3: S3Client, uri: str) -> Any:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"))["Body"].read())


def running_pod(objects: Objects, job: str) -> Any:
    pods = [p for p in objects.pods(job) if p.status.phase == "Running" and not p.metadata.deletion_timestamp]
    return pods[0] if pods else None


def pod_log(objects: Objects, job_name: str) -> str:
    """The log of the (one) pod of child Job `job_name`."""
    core: Any = objects.core
    pods = core.list_namespaced_pod(objects.namespace, label_selector=f"job-name={job_name}").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return str(core.read_namespaced_pod_log(pods[0].metadata.name, objects.namespace))


def resumed_step(line: str) -> int:
    """The step of the checkpoint a trainer's "resumed from checkpoint" log line names."""
    found = re.search(r"checkpoints/step-(\d+)", line)
    assert found is not None, line
    return int(found.group(1))


def container_pid(agent_dir: Path, namespace: str, pod: Any) -> int:
    """The pod's container process on the node agent, from the pid the agent records for it."""
    pod_dir = agent_dir / "pods" / f"{namespace}_{pod.metadata.name}_{pod.metadata.uid}"
    records = list(pod_dir.glob("containers/*/pid.json"))
    assert len(records) == 1, records
    pid = int(json.loads(records[0].read_text())["pid"])
    # The agent's launcher sets the container up in that process, then execs the container's command in
    # it: once the environment has the pod's IP it is the trainer (and not a recycled pid).
    expected = f"POD_IP={pod.status.pod_ip}".encode()
    environ = Path(f"/proc/{pid}/environ")
    wait_until(lambda: expected in environ.read_bytes().split(b"\0"), 60, f"pid {pid} to exec the trainer")
    return pid


def test_lifecycle_worker_sigkilled_after_a_checkpoint_resumes_from_it_in_one_gang_restart(
    objects: Objects, stack: LocalStack, s3: S3Client, inputs: Path, agent_dir: Path
) -> None:
    prefix = upload_inputs(s3, inputs)
    ns = objects.namespace
    killed_out, whole_out = f"{prefix}/killed/{ns}/", f"{prefix}/whole/{ns}/"
    for name, output in (("killed", killed_out), ("whole", whole_out)):
        objects.create(
            finetunejob(
                name, prefix, output, stack.s3_endpoint_url, stack.s3_region, max_restarts=2, steps=40
            )
        )
    pod = wait_until(
        lambda: running_pod(objects, "killed"), 120, "the killed job's worker to run", interval=0.5
    )
    pid = container_pid(agent_dir, ns, pod)
    wait_until(lambda: complete_checkpoints(s3, killed_out), 120, "a first checkpoint on S3", interval=0.1)
    os.kill(pid, signal.SIGKILL)
    # No process writes to that output now: the newest complete checkpoint is the one to resume from.
    saved = complete_checkpoints(s3, killed_out)[-1]
    assert saved < 40, saved

    killed = wait_until(lambda: finished(objects, "killed"), 300, "the killed job to finish", interval=1)
    whole = wait_until(lambda: finished(objects, "whole"), 300, "the uninterrupted job to finish", interval=1)
    assert killed["phase"] == whole["phase"] == "Succeeded", (killed, whole)
    # Exactly one gang restart, for the SIGKILL (exit code 137), and the job says so.
    assert killed["restarts"] == 1 and whole["restarts"] == 0
    assert sorted(job.metadata.name for job in objects.jobs("killed")) == ["killed-r1"]
    restarts = [e.message for e in objects.events("killed") if "gang restart" in (e.message or "")]
    assert len(restarts) == 1 and "gang restart 1/2" in restarts[0] and "code 137" in restarts[0], restarts
    # The new gang resumed from that checkpoint and trained exactly what the uninterrupted run did.
    resumed = [
        line for line in pod_log(objects, "killed-r1").splitlines() if "resumed from checkpoint" in line
    ]
    assert len(resumed) == 1 and resumed_step(resumed[0]) == saved, resumed
    killed_result, whole_result = (
        s3_json(s3, f"{killed_out}result.json"),
        s3_json(s3, f"{whole_out}result.json"),
    )
    assert killed_result["metrics"]["steps"] == whole_result["metrics"]["steps"] == 40
    assert killed_result["metrics"]["tokens"] == whole_result["metrics"]["tokens"] > 0


def worker(objects: Objects, job: str, rank: int) -> Any:
    """The pod of `rank` of child Job `job` (its completion index), None before it exists."""
    core: Any = objects.core
    pods = core.list_namespaced_pod(objects.namespace, label_selector=f"job-name={job}").items
    index = "batch.kubernetes.io/job-completion-index"
    return next((p for p in pods if p.metadata.annotations.get(index) == str(rank)), None)


def kill_container(pid: int) -> None:
    """SIGKILL a container's processes (`accelerate launch` and the trainer it started), as the OOM killer or
    a crashed node leaves a worker: nothing of it runs on, nothing closes its collectives in order."""
    process = psutil.Process(pid)
    tree = [process, *process.children(recursive=True)]
    for each in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            each.send_signal(signal.SIGKILL)


def stopped_at(pod: Any) -> float | None:
    """When the pod's container ended (epoch seconds; now once the pod is gone), None while it runs."""
    if pod is None:
        return time.time()
    for status in pod.status.container_statuses or []:
        if status.state and status.state.terminated and status.state.terminated.finished_at:
            return float(status.state.terminated.finished_at.timestamp())
    return None


def test_lifecycle_two_nodes_survivor_does_not_wait_for_its_sigkilled_peer_and_the_gang_resumes(
    objects: Objects, stack: LocalStack, s3: S3Client, inputs: Path, agent_dir: Path
) -> None:
    prefix = upload_inputs(s3, inputs)
    ns, output = objects.namespace, f"{prefix}/gang/{objects.namespace}/"
    body = finetunejob(
        "gang", prefix, output, stack.s3_endpoint_url, stack.s3_region, max_restarts=2, steps=24
    )
    body["spec"]["resources"]["nodes"] = 2
    body["spec"]["distributed"] = {"strategy": "ddp"}
    body["spec"]["hyperparameters"]["batchSize"] = 4  # per process: the same global batch of 8
    objects.create(body)
    running = wait_until(
        lambda: (pod := worker(objects, "gang-r0", 1)) is not None and pod.status.phase == "Running" and pod,
        180,
        "worker 1 to run",
        interval=0.5,
    )
    pid = container_pid(agent_dir, ns, running)
    wait_until(lambda: complete_checkpoints(s3, output), 300, "a first checkpoint on S3", interval=0.1)
    kill_container(pid)
    killed = time.time()
    saved = complete_checkpoints(s3, output)[-1]  # no checkpoint completes without worker 1
    assert saved < 24, saved

    # Worker 0 stops within seconds: not after gloo's 30-minute timeout, nor the 300 s grace period.
    survivor = wait_until(lambda: stopped_at(worker(objects, "gang-r0", 0)), 120, "worker 0 to stop", 0.5)
    assert survivor - killed < 60, survivor - killed
    done = wait_until(lambda: finished(objects, "gang"), 600, "the job to finish", interval=1)
    assert done["phase"] == "Succeeded", done
    assert done["restarts"] == 1 and [job.metadata.name for job in objects.jobs("gang")] == ["gang-r1"]
    messages = [
        e.message or "" for e in sorted(objects.events("gang"), key=lambda e: e.metadata.creation_timestamp)
    ]
    backoff = [i for i, m in enumerate(messages) if f"back-off {RESTART_BACKOFF_SECONDS}s" in m]
    restarts = [i for i, m in enumerate(messages) if "gang restart 1/2" in m]
    assert len(backoff) == 1 and len(restarts) == 1 and backoff[0] < restarts[0], messages
    # The new gang started from the checkpoint worker 1 had completed, and trained to the end.
    log = str(objects.core.read_namespaced_pod_log(worker(objects, "gang-r1", 0).metadata.name, ns))
    resumed = [line for line in log.splitlines() if "resumed from checkpoint" in line]
    assert len(resumed) == 1 and resumed_step(resumed[0]) == saved, resumed
    assert s3_json(s3, f"{output}result.json")["metrics"]["steps"] == 24


def test_lifecycle_suspended_mid_training_checkpoints_on_sigterm_and_resumes_from_that_step(
    objects: Objects, stack: LocalStack, s3: S3Client, inputs: Path
) -> None:
    prefix = upload_inputs(s3, inputs)
    paused_out, whole_out = f"{prefix}/paused/{objects.namespace}/", f"{prefix}/whole/{objects.namespace}/"
    for name, output in (("paused", paused_out), ("whole", whole_out)):
        body = finetunejob(
            name, prefix, output, stack.s3_endpoint_url, stack.s3_region, max_restarts=0, steps=SUSPEND_STEPS
        )
        # No periodic checkpoint: the only one is the SIGTERM's.
        body["spec"]["checkpoint"] = {"everySteps": 10 * SUSPEND_STEPS, "keep": 2}
        objects.create(body)
    pod = wait_until(lambda: running_pod(objects, "paused"), 180, "the worker to run", interval=0.5)
    wait_until(
        lambda: (objects.status(FTJ, "paused").get("progress") or {}).get("step", 0) >= 20,
        180,
        "some steps trained",
        interval=0.2,
    )
    objects.patch_spec(FTJ, "paused", {"runPolicy": {"suspend": True}})
    suspended = wait_until(
        lambda: (
            (status := objects.status(FTJ, "paused")).get("phase") == "Suspended"
            and not objects.pods("paused")
            and status
        ),
        120,
        "the job to be suspended and its pod gone",
        interval=0.5,
    )
    assert condition(suspended, "Suspended")["status"] == "True", suspended
    # The pod saved the step it was at when SIGTERM came: the only checkpoint, before the last step.
    (saved,) = complete_checkpoints(s3, paused_out)
    assert 20 <= saved < SUSPEND_STEPS, saved

    objects.patch_spec(FTJ, "paused", {"runPolicy": {"suspend": False}})
    done = wait_until(lambda: finished(objects, "paused"), 300, "the resumed job to finish", interval=1)
    whole = wait_until(lambda: finished(objects, "whole"), 300, "the uninterrupted job to finish", interval=1)
    assert done["phase"] == whole["phase"] == "Succeeded", (done, whole)
    # The same attempt (suspend is no failure): no restart, its Job resumed with a new pod.
    assert done["restarts"] == 0 and [job.metadata.name for job in objects.jobs("paused")] == ["paused-r0"]
    (resumed_pod,) = objects.pods("paused")
    assert resumed_pod.metadata.uid != pod.metadata.uid
    log = str(objects.core.read_namespaced_pod_log(resumed_pod.metadata.name, objects.namespace))
    resumed = [line for line in log.splitlines() if "resumed from checkpoint" in line]
    assert len(resumed) == 1 and resumed_step(resumed[0]) == saved, resumed
    paused_result, whole_result = (
        s3_json(s3, f"{paused_out}result.json"),
        s3_json(s3, f"{whole_out}result.json"),
    )
    assert paused_result["metrics"]["steps"] == whole_result["metrics"]["steps"] == SUSPEND_STEPS
    assert paused_result["metrics"]["tokens"] == whole_result["metrics"]["tokens"] > 0


def test_lifecycle_evicted_worker_resumes_in_a_new_gang_without_spending_max_restarts(
    objects: Objects, stack: LocalStack, s3: S3Client, inputs: Path
) -> None:
    prefix = upload_inputs(s3, inputs)
    ns, output = objects.namespace, f"{prefix}/out/{objects.namespace}/"
    # maxRestarts 0: any restart that spent the budget would fail the job.
    objects.create(
        finetunejob(
            "evicted", prefix, output, stack.s3_endpoint_url, stack.s3_region, max_restarts=0, steps=40
        )
    )
    pod = wait_until(lambda: running_pod(objects, "evicted"), 120, "the worker to run", interval=0.5)
    first = wait_until(lambda: complete_checkpoints(s3, output), 120, "a first checkpoint", interval=0.1)[0]
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=ns))
    objects.core.create_namespaced_pod_eviction(pod.metadata.name, ns, eviction)

    done = wait_until(lambda: finished(objects, "evicted"), 300, "the evicted job to finish", interval=1)
    assert done["phase"] == "Succeeded", done
    # A new gang (restarts counts gang restarts), marked as one that spent nothing of maxRestarts 0.
    assert done["restarts"] == 1
    (job,) = objects.jobs("evicted")
    assert job.metadata.name == "evicted-r1" and job.metadata.annotations["kubetune.io/free-restarts"] == "1"
    restarts = [e.message for e in objects.events("evicted") if "gang restart" in (e.message or "")]
    assert len(restarts) == 1 and "not counted against maxRestarts (0/0 spent)" in restarts[0], restarts
    assert "EvictionByEvictionAPI" in restarts[0] and pod.metadata.name in restarts[0], restarts
    # The evicted worker checkpointed on SIGTERM before the new gang started, which resumed from there.
    resumed = [
        line for line in pod_log(objects, "evicted-r1").splitlines() if "resumed from checkpoint" in line
    ]
    assert len(resumed) == 1, resumed
    step = resumed_step(resumed[0])
    assert first <= step < 40, (first, step)
    assert s3_json(s3, f"{output}result.json")["metrics"]["steps"] == 40


class PrivateMinio:
    """A MinIO server process of this test alone (the stack's binary, credentials and health check, as
    devstack starts its own), on free ports, to be killed and started again over the same data."""

    def __init__(self, stack: LocalStack, data_dir: Path, log: Path) -> None:
        self.stack, self.data_dir, self.log = stack, data_dir, log
        self.port, self.console_port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            str(go_tool_dir("minio") / "minio"),
            "server",
            str(self.data_dir),
            f"--address=127.0.0.1:{self.port}",
            f"--console-address=127.0.0.1:{self.console_port}",
            "--quiet",
        ]
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.stack.s3_access_key_id,
            "MINIO_ROOT_PASSWORD": self.stack.s3_secret_access_key,
            "MINIO_SITE_REGION": self.stack.s3_region,
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER": "off",
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        ready = f"{self.endpoint}/minio/health/ready"
        wait_until(lambda: http_ok(ready), 60, f"the private MinIO at {self.endpoint}", interval=0.2)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def private_minio(stack: LocalStack, tmp_path: Path) -> Iterator[PrivateMinio]:
    (tmp_path / "minio").mkdir()
    server = PrivateMinio(stack, tmp_path / "minio", tmp_path / "minio.log")
    server.start()
    yield server
    server.kill()


def start_on_private_s3(
    objects: Objects, stack: LocalStack, inputs: Path, minio: PrivateMinio, name: str
) -> tuple[S3Client, str]:
    """A job reading and writing only the private MinIO; returns its client and the job's output once
    its first checkpoint is there (the worker is training and will need S3 again)."""
    s3 = s3_client(minio.endpoint, stack.s3_credentials)
    prefix = upload_inputs(s3, inputs)
    output = f"{prefix}/out/"
    objects.create(
        finetunejob(name, prefix, output, minio.endpoint, stack.s3_region, max_restarts=2, steps=40)
    )
    wait_until(lambda: complete_checkpoints(s3, output), 180, "a first checkpoint", interval=0.1)
    return s3, output


def test_lifecycle_s3_outage_shorter_than_the_pod_retry_window_is_ridden_out_without_a_restart(
    objects: Objects, stack: LocalStack, inputs: Path, private_minio: PrivateMinio
) -> None:
    s3, output = start_on_private_s3(objects, stack, inputs, private_minio, "outage")
    private_minio.kill()
    time.sleep(SHORT_OUTAGE_SECONDS)
    during = objects.status(FTJ, "outage")
    private_minio.start()
    back = time.time()
    assert during["phase"] == "Running", during  # the worker waits for S3, nothing failed

    done = wait_until(lambda: finished(objects, "outage"), 300, "the job to finish", interval=1)
    assert done["phase"] == "Succeeded", done
    assert done["restarts"] == 0 and [job.metadata.name for job in objects.jobs("outage")] == ["outage-r0"]
    # The same worker finished the run after S3 came back.
    result = s3.get_object(Bucket=BUCKET, Key=f"{output.removeprefix(f's3://{BUCKET}/')}result.json")
    assert result["LastModified"].timestamp() >= back - 1
    assert json.loads(result["Body"].read())["metrics"]["steps"] == 40


def test_lifecycle_s3_outage_longer_than_the_pod_retry_window_fails_with_storage_unreachable(
    objects: Objects, stack: LocalStack, inputs: Path, private_minio: PrivateMinio
) -> None:
    start_on_private_s3(objects, stack, inputs, private_minio, "gone")
    private_minio.kill()
    down = time.monotonic()

    done = wait_until(
        lambda: finished(objects, "gone"), STORAGE_RETRY_SECONDS + 120, "the job to fail", interval=1
    )
    assert time.monotonic() - down >= STORAGE_RETRY_SECONDS
    assert done["phase"] == "Failed", done
    failed = condition(done, "Failed")
    assert failed["reason"] == "StorageUnreachable", failed
    assert f"did not answer within {STORAGE_RETRY_SECONDS} s" in failed["message"], failed["message"]
    # Not restarted: the budget of 2 is untouched, one Job ever.
    assert done["restarts"] == 0 and [job.metadata.name for job in objects.jobs("gone")] == ["gone-r0"]
