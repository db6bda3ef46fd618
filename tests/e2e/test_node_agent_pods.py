"""Pods on the node agent behave as on a kubelet: exit codes, logs, env, volumes, deletion, scheduling.

Runs against the local stack (real kube-apiserver, controller-manager and scheduler).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetune_devtools.devstack.node_agent.config import AgentConfig
from kubetune_devtools.testing.operator_harness import CHECKOUT_IMAGE

# `core`, `batch`, `agent_dir` and the node-agent version check come from tests/e2e/conftest.py.
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node_agent_is_this_checkout")]


Pod = dict[str, Any]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def python_pod(name: str, script: str, **spec: Any) -> Pod:
    container = {"name": "main", "image": CHECKOUT_IMAGE, "command": ["python3", "-c", script]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [container],
            **spec,
        },
    }


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> Pod:
    response = core.read_namespaced_pod(name, namespace, _preload_content=False)  # type: ignore[call-arg]
    pod: Pod = json.loads(response.data)
    return pod


def wait_pod(
    core: client.CoreV1Api, namespace: str, name: str, ok: Callable[[Pod], bool], timeout: float = 60.0
) -> Pod:
    """Poll the pod until `ok`; on timeout, fail showing its last status."""
    deadline = time.monotonic() + timeout
    pod: Pod = {}
    while time.monotonic() < deadline:
        pod = read_pod(core, namespace, name)
        if ok(pod):
            return pod
        time.sleep(0.3)
    pytest.fail(
        f"pod {namespace}/{name} did not get there in {timeout}s; status: {json.dumps(pod.get('status'))}"
    )


def phase_is(*phases: str) -> Callable[[Pod], bool]:
    return lambda pod: pod.get("status", {}).get("phase") in phases


def terminated(pod: Pod) -> dict[str, Any]:
    state: dict[str, Any] = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def log_of(agent_dir: Path, pod: Pod, container: str = "main") -> str:
    meta = pod["metadata"]
    path = agent_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}" / f"{container}.log"
    return path.read_text() if path.exists() else ""


def gone(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_pod(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return True
            raise
        time.sleep(0.3)
    return False


def test_pod_succeeds_with_exit_code_zero_and_its_log(
    core: client.CoreV1Api, namespace: str, agent_dir: Path
) -> None:
    core.create_namespaced_pod(namespace, python_pod("hello", "print(42)"))
    pod = wait_pod(core, namespace, "hello", phase_is("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Succeeded"
    assert terminated(pod)["exitCode"] == 0
    assert terminated(pod)["reason"] == "Completed"
    assert pod["status"]["podIP"].startswith("127.")
    assert pod["status"]["hostIP"].startswith("127.1.")
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["PodScheduled"] == "True"
    assert conditions["Initialized"] == "True"
    assert conditions["Ready"] == "False"
    assert "42" in log_of(agent_dir, pod).splitlines()
    # The same log through the API server (pods/log -> the agent's kubelet endpoint), as `kubectl logs`.
    assert core.read_namespaced_pod_log("hello", namespace) == "42\n"


def test_failing_command_fails_with_its_exit_code(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, python_pod("fails", "import sys; print('boom'); sys.exit(3)"))
    pod = wait_pod(core, namespace, "fails", phase_is("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Failed"
    assert terminated(pod)["exitCode"] == 3
    assert terminated(pod)["reason"] == "Error"


ENV_SCRIPT = """
import json, os
result = {key: os.environ.get(key) for key in ("TOKEN", "MODE", "POD_IP", "POD_NAME", "GREETING", "LITERAL")}
result["config"] = open("/etc/kt-e2e-config/mode").read()
result["argv"] = os.environ["ARG"]
result["hostname"] = os.environ["HOSTNAME"]
open("/tmp/kt-message", "w").write(json.dumps(result))
"""


def test_env_volumes_expansion_and_termination_message(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}}
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}})
    pod = python_pod(
        "env",
        ENV_SCRIPT,
        container={
            "args": [],
            "terminationMessagePath": "/tmp/kt-message",
            "env": [
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "GREETING", "value": "$(MODE)-$(POD_NAME)-$(UNDEFINED)-$$(MODE)"},
                {"name": "LITERAL", "value": "plain"},
                {"name": "ARG", "value": "x"},
            ],
            "volumeMounts": [{"name": "config", "mountPath": "/etc/kt-e2e-config", "readOnly": True}],
        },
        volumes=[{"name": "config", "configMap": {"name": "settings"}}],
    )
    core.create_namespaced_pod(namespace, pod)
    done = wait_pod(core, namespace, "env", phase_is("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", terminated(done)
    message = json.loads(terminated(done)["message"])
    assert message == {
        "TOKEN": "s3cr3t",
        "MODE": "fast",
        "POD_IP": done["status"]["podIP"],
        "POD_NAME": "env",
        "GREETING": "fast-env-$(UNDEFINED)-$(MODE)",
        "LITERAL": "plain",
        "config": "fast",
        "argv": "x",
        "hostname": "env",
    }


def test_missing_secret_waits_then_runs_once_it_exists(core: client.CoreV1Api, namespace: str) -> None:
    env = [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "late", "key": "k"}}}]
    core.create_namespaced_pod(
        namespace, python_pod("late", "import os; print(os.environ['T'])", container={"env": env})
    )

    def config_error(pod: Pod) -> bool:
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        return statuses[0].get("state", {}).get("waiting", {}).get("reason") == "CreateContainerConfigError"

    waiting = wait_pod(core, namespace, "late", config_error)
    assert (
        'secret "late" not found' in waiting["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    )
    assert waiting["status"]["phase"] == "Pending"
    # ... and says so in an Event, once (not at every retry), as `kubectl describe pod` shows it.
    time.sleep(6)  # longer than one retry period
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=late").items
    failed = [e for e in events if e.reason == "Failed"]
    assert len(failed) == 1
    assert failed[0].type == "Warning"
    assert 'secret "late" not found' in failed[0].message
    core.create_namespaced_secret(namespace, {"metadata": {"name": "late"}, "stringData": {"k": "v"}})
    assert (
        wait_pod(core, namespace, "late", phase_is("Succeeded", "Failed"))["status"]["phase"] == "Succeeded"
    )


SIGTERM_SCRIPT = """
import signal, sys, time
def stop(*_):
    print("got SIGTERM", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(600)
"""


def test_deleting_a_running_pod_sends_sigterm_and_removes_it(
    core: client.CoreV1Api, namespace: str, agent_dir: Path
) -> None:
    core.create_namespaced_pod(namespace, python_pod("victim", SIGTERM_SCRIPT))
    pod = wait_pod(core, namespace, "victim", lambda p: "ready" in log_of(agent_dir, p))
    assert pod["status"]["phase"] == "Running"
    started = time.monotonic()
    core.delete_namespaced_pod("victim", namespace, grace_period_seconds=30)
    assert gone(core, namespace, "victim", timeout=20)
    assert time.monotonic() - started < 15  # the process stopped at SIGTERM, well within the grace period
    assert "got SIGTERM" in log_of(agent_dir, pod)


def test_pod_past_its_active_deadline_fails(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(
        namespace, python_pod("slow", "import time; time.sleep(600)", activeDeadlineSeconds=2)
    )
    pod = wait_pod(core, namespace, "slow", phase_is("Succeeded", "Failed"), timeout=30)
    assert (pod["status"]["phase"], pod["status"]["reason"]) == ("Failed", "DeadlineExceeded")


def test_pod_asking_for_too_many_gpus_stays_pending_unschedulable(
    core: client.CoreV1Api, namespace: str
) -> None:
    limits = {"nvidia.com/gpu": "64"}
    core.create_namespaced_pod(
        namespace,
        python_pod("greedy", "print(1)", container={"resources": {"limits": limits, "requests": limits}}),
    )

    def unschedulable(pod: Pod) -> bool:
        conditions = {c["type"]: c for c in pod.get("status", {}).get("conditions") or []}
        return conditions.get("PodScheduled", {}).get("reason") == "Unschedulable"

    pod = wait_pod(core, namespace, "greedy", unschedulable)
    scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["status"] == "False"
    assert "nvidia.com/gpu" in scheduled["message"]
    time.sleep(2)
    assert read_pod(core, namespace, "greedy")["status"]["phase"] == "Pending"
    assert not read_pod(core, namespace, "greedy")["spec"].get("nodeName")


def test_on_failure_restarts_until_success(core: client.CoreV1Api, namespace: str) -> None:
    # Fails on its first run, succeeds on the second: the marker lives in an emptyDir that survives restarts.
    script = (
        "import os, sys\n"
        "marker = '/scratch/ran-once'\n"
        "if not os.path.exists(marker):\n"
        "    open(marker, 'w').close()\n"
        "    sys.exit(1)\n"
    )
    pod = python_pod(
        "flaky",
        script,
        restartPolicy="OnFailure",
        container={"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    core.create_namespaced_pod(namespace, pod)
    done = wait_pod(core, namespace, "flaky", phase_is("Succeeded", "Failed"), timeout=60)
    status = done["status"]["containerStatuses"][0]
    assert done["status"]["phase"] == "Succeeded"
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1


def image_entries_under_tmp() -> set[str]:
    """Top-level /tmp entries the agent mounts back into pods: the project's environment (the "image")
    when it lies under /tmp, as in a CI clone."""
    return {
        path.relative_to("/tmp").parts[0]
        for path in AgentConfig(kubeconfig=Path(), state_dir=Path()).image_paths
        if path.is_relative_to("/tmp")
    }


def test_init_container_runs_first_and_non_root_user_reads_volumes(
    core: client.CoreV1Api, namespace: str, agent_dir: Path
) -> None:
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"k": "v"}})
    mounts = [
        {"name": "shared", "mountPath": "/shared"},
        {"name": "cfg", "mountPath": "/etc/kt-cfg"},
    ]
    pod = python_pod(
        "staged",
        "import os; print(os.getuid(), open('/shared/init-done').read(), open('/etc/kt-cfg/k').read(), "
        f"sorted(set(os.listdir('/tmp')) - {image_entries_under_tmp()!r}))",
        securityContext={"runAsUser": 1000, "runAsGroup": 1000},
        container={"volumeMounts": mounts},
        initContainers=[
            {
                "name": "prepare",
                "image": CHECKOUT_IMAGE,
                # /tmp is private to each container: this marker must not show up in the main container.
                "command": [
                    "python3",
                    "-c",
                    "open('/shared/init-done', 'w').write('ready'); open('/tmp/m', 'w')",
                ],
                "volumeMounts": mounts,
            }
        ],
        volumes=[{"name": "shared", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}],
    )
    core.create_namespaced_pod(namespace, pod)
    done = wait_pod(core, namespace, "staged", phase_is("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert log_of(agent_dir, done).splitlines() == ["1000 ready v []"]


MARKED_PLACES = ("/tmp/kt-mark", "~/kt-mark", "kt-mark")  # /tmp, HOME and the working directory
WRITE_MARKS = f"""
import os
for place in {MARKED_PLACES!r}:
    open(os.path.expanduser(place), "w").write("mine")
print(os.getcwd(), os.environ["HOME"])
"""
FIND_MARKS = f"import os; print([os.path.exists(os.path.expanduser(p)) for p in {MARKED_PLACES!r}])"


def test_pods_share_no_tmp_home_or_working_directory_and_their_files_go_with_them(
    core: client.CoreV1Api, namespace: str, agent_dir: Path
) -> None:
    # The writer has an emptyDir at /tmp, as the operator's workload pods do; the reader the agent's own
    # /tmp. On a cluster neither sees the other's files: a local pod must not either.
    scratch = {"volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}]}
    writer = python_pod(
        "writer", WRITE_MARKS, container=scratch, volumes=[{"name": "scratch", "emptyDir": {}}]
    )
    core.create_namespaced_pod(namespace, writer)
    wrote = wait_pod(core, namespace, "writer", phase_is("Succeeded", "Failed"))
    assert wrote["status"]["phase"] == "Succeeded", log_of(agent_dir, wrote)
    # No workingDir: the images' WORKDIR, which is the pod's own HOME.
    assert log_of(agent_dir, wrote).split() == ["/home/kubetune", "/home/kubetune"]
    core.create_namespaced_pod(namespace, python_pod("reader", FIND_MARKS))
    read = wait_pod(core, namespace, "reader", phase_is("Succeeded", "Failed"))
    assert log_of(agent_dir, read).strip() == "[False, False, False]"
    # Deleting the pod deletes what it wrote (volumes, HOME, its containers' /tmp); its log stays.
    core.delete_namespaced_pod("writer", namespace)
    assert gone(core, namespace, "writer")
    meta = wrote["metadata"]
    pod_dir = agent_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
    deadline = time.monotonic() + 10  # the agent forgets the pod when its watch sees the deletion
    while sorted(p.name for p in pod_dir.iterdir()) != ["main.log"] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert sorted(p.name for p in pod_dir.iterdir()) == ["main.log"]


def test_container_over_its_memory_limit_is_oom_killed(core: client.CoreV1Api, namespace: str) -> None:
    limits = {"memory": "64Mi"}
    script = "chunks = [bytearray(16 * 1024 * 1024) for _ in range(64)]; print('survived 1 GiB')"
    core.create_namespaced_pod(
        namespace, python_pod("hog", script, container={"resources": {"limits": limits, "requests": limits}})
    )
    pod = wait_pod(core, namespace, "hog", phase_is("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Failed"
    assert (terminated(pod)["exitCode"], terminated(pod)["reason"]) == (137, "OOMKilled")


IN_CLUSTER_SCRIPT = """
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
config.load_incluster_config()  # KUBERNETES_SERVICE_HOST/PORT + the projected service account token
try:
    client.CoreV1Api().list_namespaced_secret("kube-system")
except ApiException as error:
    print(error.status, error.body)
"""


def test_pod_reaches_the_api_server_with_its_service_account(
    core: client.CoreV1Api, namespace: str, agent_dir: Path
) -> None:
    core.create_namespaced_pod(namespace, python_pod("incluster", IN_CLUSTER_SCRIPT))
    pod = wait_pod(core, namespace, "incluster", phase_is("Succeeded", "Failed"))
    log = log_of(agent_dir, pod)
    assert pod["status"]["phase"] == "Succeeded", log
    # Authenticated as the pod's service account (and rightly not allowed to read kube-system secrets).
    assert log.startswith("403 ")
    assert f"system:serviceaccount:{namespace}:default" in log


def test_missing_config_map_volume_keeps_pod_creating_until_it_exists(
    core: client.CoreV1Api, namespace: str
) -> None:
    pod = python_pod(
        "mounts",
        "print(open('/etc/kt-later/k').read())",
        container={"volumeMounts": [{"name": "later", "mountPath": "/etc/kt-later"}]},
        volumes=[{"name": "later", "configMap": {"name": "later"}}],
    )
    core.create_namespaced_pod(namespace, pod)

    def creating_with_message(pod: Pod) -> bool:
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        waiting = statuses[0].get("state", {}).get("waiting", {})
        return waiting.get("reason") == "ContainerCreating" and "later" in waiting.get("message", "")

    waiting = wait_pod(core, namespace, "mounts", creating_with_message)
    assert (
        'configmap "later" not found'
        in waiting["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    )
    events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=mounts").items
    assert any(e.reason == "FailedMount" and e.type == "Warning" for e in events)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "later"}, "data": {"k": "v"}})
    assert (
        wait_pod(core, namespace, "mounts", phase_is("Succeeded", "Failed"))["status"]["phase"] == "Succeeded"
    )
