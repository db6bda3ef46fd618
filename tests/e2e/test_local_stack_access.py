"""Who may talk to the local stack's own parts: the node agent's kubelet log endpoint answers only the API
server's client certificate and only for Kubernetes names; etcd answers only clients holding a
certificate from its own CA. `kubectl logs` and the API server keep working.

Runs against the local stack (real kube-apiserver, etcd and node agent).
"""

from __future__ import annotations

import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client

from kubetune_devtools.devstack.layout import Ports, StackLayout
from kubetune_devtools.devstack.node_agent.config import KUBELET_PORT
from kubetune_devtools.devstack.pki import CA_NAME, ETCD_CA_NAME
from kubetune_devtools.devstack.probes import client_ssl_context, http_ok
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import CHECKOUT_IMAGE

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node_agent_is_this_checkout")]


def get(url: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    """(status, body) of a GET, error statuses included; connection and TLS errors propagate."""
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def phase_of(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    status = core.read_namespaced_pod(name, namespace).status
    return status.phase if status is not None else None


def finished_pod(core: client.CoreV1Api, namespace: str, name: str, line: str) -> client.V1Pod:
    command = ["python3", "-c", f"print({line!r})"]
    container = client.V1Container(name="main", image=CHECKOUT_IMAGE, command=command)
    spec = client.V1PodSpec(restart_policy="Never", containers=[container])
    core.create_namespaced_pod(namespace, client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=spec))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, namespace)
        if pod.status is not None and pod.status.phase in ("Succeeded", "Failed"):
            return pod
        time.sleep(0.3)
    pytest.fail(f"pod {namespace}/{name} did not finish in 60 s")


def test_kubelet_log_endpoint_answers_only_the_api_server_and_only_kubernetes_names(
    stack: LocalStack, core: client.CoreV1Api, namespace: str, agent_dir: Path
) -> None:
    line = f"pod-line-{secrets.token_hex(4)}"
    pod = finished_pod(core, namespace, "hello", line)
    assert pod.status is not None
    assert pod.status.phase == "Succeeded"

    # `kubectl logs` goes through the API server, which presents its kubelet client certificate; a
    # local process holding a connection open without ever starting TLS does not stall it.
    with socket.create_connection((pod.status.host_ip, KUBELET_PORT), timeout=5):
        kubectl = subprocess.run(
            [str(stack.tools_dir / "kubectl"), "logs", "--request-timeout=8s", "-n", namespace, "hello"],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert (kubectl.returncode, kubectl.stdout) == (0, f"{line}\n"), kubectl.stderr

    pki = StackLayout(stack.state_dir)
    base = f"https://{pod.status.host_ip}:{KUBELET_PORT}/containerLogs"
    url = f"{base}/{namespace}/hello/main"
    as_apiserver = client_ssl_context(
        stack.ca_file, pki.cert("apiserver-kubelet-client"), pki.key("apiserver-kubelet-client")
    )
    assert get(url, as_apiserver) == (200, f"{line}\n".encode())

    # No client certificate: the TLS handshake fails, nothing is served.
    with pytest.raises(OSError, match=r"certificate|EOF|reset"):
        get(url, client_ssl_context(stack.ca_file))
    # A certificate from the same CA that names another user (the cluster admin) is not the API server.
    status, body = get(url, client_ssl_context(stack.ca_file, pki.cert("admin"), pki.key("admin")))
    assert status == 403
    assert line.encode() not in body

    # Path parts outside the Kubernetes name grammar: 400, and nothing read. The traversal would land on
    # this file (pods/<ns>_<pod>_<uid>/../../<name>.log) if the endpoint joined the part onto a path.
    canary = agent_dir / f"kt-canary-{secrets.token_hex(4)}.log"
    secret = f"host-file-{secrets.token_hex(8)}"
    canary.write_text(secret)
    try:
        for path in (
            f"{namespace}/hello/..%2F..%2F{canary.stem}",
            f"{namespace}/../main",
            f"{namespace}/*/main",
            f"{namespace}/%2A/main",
            "*/hello/main",
        ):
            status, body = get(f"{base}/{path}", as_apiserver)
            assert status == 400, (path, body)
            assert secret.encode() not in body
            assert line.encode() not in body
    finally:
        canary.unlink()


def test_etcd_refuses_clients_without_a_certificate_from_its_own_ca(
    stack: LocalStack, core: client.CoreV1Api, namespace: str
) -> None:
    pki = StackLayout(stack.state_dir)
    port = Ports().etcd_client  # `kubetune dev up` and the `stack` fixture use the default ports
    health = f"https://127.0.0.1:{port}/health"

    assert not http_ok(f"http://127.0.0.1:{port}/health")  # plain HTTP
    assert not http_ok(health, client_ssl_context(pki.cert(ETCD_CA_NAME)))  # TLS, no client certificate
    # The cluster CA's admin certificate (system:masters) does not open etcd: it has a CA of its own.
    admin = client_ssl_context(pki.cert(ETCD_CA_NAME), pki.cert("admin"), pki.key("admin"))
    assert not http_ok(health, admin)
    assert pki.cert(ETCD_CA_NAME).read_bytes() != pki.cert(CA_NAME).read_bytes()
    # The one client certificate `kubetune dev up` probes with does get in, so the refusals above are
    # etcd's client authentication and not a dead port.
    probe = client_ssl_context(
        pki.cert(ETCD_CA_NAME), pki.cert("etcd-healthcheck-client"), pki.key("etcd-healthcheck-client")
    )
    assert http_ok(health, probe)

    # The API server still reads and writes through its own etcd client certificate.
    value = secrets.token_hex(8)
    written = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="written"), data={"value": value})
    core.create_namespaced_config_map(namespace, written)
    config_map = core.read_namespaced_config_map("written", namespace)
    assert config_map.data == {"value": value}


def test_kubectl_logs_follow_streams_until_the_container_exits(
    stack: LocalStack, core: client.CoreV1Api, namespace: str
) -> None:
    """The streaming path of the endpoint keeps working behind the client-certificate check."""
    script = "import time; print('first', flush=True); time.sleep(3); print('second', flush=True)"
    container = client.V1Container(name="main", image=CHECKOUT_IMAGE, command=["python3", "-c", script])
    spec = client.V1PodSpec(restart_policy="Never", containers=[container])
    core.create_namespaced_pod(
        namespace, client.V1Pod(metadata=client.V1ObjectMeta(name="talker"), spec=spec)
    )
    deadline = time.monotonic() + 60
    while (phase := phase_of(core, namespace, "talker")) in ("Pending", None):
        assert time.monotonic() < deadline, "pod talker stayed Pending"
        time.sleep(0.2)
    follow = subprocess.run(
        [str(stack.tools_dir / "kubectl"), "logs", "-f", "-n", namespace, "talker"],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert phase == "Running"  # so `-f` really followed a live container
    assert (follow.returncode, follow.stdout) == (0, "first\nsecond\n"), follow.stderr
