"""Prometheus wiring with a real trainer: rank 0 of a FineTuneJob worker Job (built by the operator's own
builders, run by the node agent with the real `kubetune_trainer` on a tiny model) serves /metrics that
`promtool check metrics` accepts, and a Prometheus whose scrape job has the chart's PodMonitor selector and
relabelling discovers the pod through the API server and returns its loss.

No Prometheus Operator runs here, so `podmonitor_scrape_config` translates the PodMonitor the way the
Prometheus Operator does (pod role, namespace selector, drop finished pods, keep the selected labels and the
named port, then the PodMonitor's own relabelings)."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune_devtools.devstack.binaries import client_tool, ensure_binaries
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import CHECKOUT_IMAGE, free_port
from kubetune_devtools.tiny_models import build_tiny_model, reverse_task_rows
from kubetune_operator.api import parse_manifest
from kubetune_operator.controller.builders import (
    Owner,
    build_config_map,
    build_headless_service,
    build_worker_job,
)
from kubetune_operator.controller.settings import OperatorSettings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubetune"


JOB = "loss"


def sanitize(label: str) -> str:
    """Kubernetes label name -> Prometheus meta label suffix, as service discovery does."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def snake_relabeling(relabeling: dict[str, Any]) -> dict[str, Any]:
    keys = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return {keys.get(key, key): value for key, value in relabeling.items()}


def podmonitor_scrape_config(monitor: dict[str, Any], discovery: dict[str, Any]) -> dict[str, Any]:
    """The scrape job the Prometheus Operator generates for the first endpoint of a PodMonitor."""
    spec = monitor["spec"]
    (endpoint,) = spec["podMetricsEndpoints"]
    relabel: list[dict[str, Any]] = [
        # filterRunning (default): finished pods keep their IP but nothing listens there.
        {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)", "action": "drop"}
    ]
    for expression in spec["selector"].get("matchExpressions", []):
        assert expression["operator"] == "In", "only In is used by the chart"
        name = sanitize(expression["key"])
        relabel.append(
            {
                "source_labels": [
                    f"__meta_kubernetes_pod_label_{name}",
                    f"__meta_kubernetes_pod_labelpresent_{name}",
                ],
                "regex": f"({'|'.join(expression['values'])});true",
                "action": "keep",
            }
        )
    relabel += [
        {
            "source_labels": ["__meta_kubernetes_pod_container_port_name"],
            "regex": endpoint["port"],
            "action": "keep",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        *[snake_relabeling(r) for r in endpoint.get("relabelings", [])],
    ]
    sd = dict(discovery)
    selector = spec["namespaceSelector"]
    if not selector.get("any"):
        sd["namespaces"] = {"names": selector["matchNames"]}
    return {
        "job_name": f"podMonitor/{monitor['metadata']['namespace']}/{monitor['metadata']['name']}/0",
        "scrape_interval": "1s",  # the chart's 15 s, shortened for the test
        "sample_limit": spec.get("sampleLimit", 0),
        "metrics_path": endpoint["path"],
        "kubernetes_sd_configs": [sd],
        "relabel_configs": relabel,
    }


def rendered_podmonitor(namespace: str) -> dict[str, Any]:
    rendered = subprocess.run(
        [str(client_tool("helm")), "template", "kt", str(CHART), "-n", "kubetune-system",
         "--set", "monitoring.podMonitor.enabled=true", "--set", f"watchNamespaces={{{namespace}}}"],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    (monitor,) = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "PodMonitor"]
    return monitor


def stack_pod_discovery(stack: LocalStack) -> dict[str, Any]:
    """API server address and client certificate the stack's own Prometheus discovers pods with."""
    config = yaml.safe_load((Path(stack.state_dir) / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        for sd in job.get("kubernetes_sd_configs", []):
            if sd.get("role") == "pod":
                return {"role": "pod", "api_server": sd["api_server"], "tls_config": sd["tls_config"]}
    raise AssertionError("the stack's prometheus.yml has no pod discovery")


@pytest.fixture(scope="module")
def trainer(stack: LocalStack, k8s: KubeClients) -> Iterator[str]:
    """A namespace where a real trainer (rank 0 of a one-node FineTuneJob) is running."""
    namespace = f"t-deploy-prom-{secrets.token_hex(3)}"
    labels = {"pod-security.kubernetes.io/enforce": "restricted", "kubetune.io/e2e": "true"}
    k8s.core.create_namespace({"metadata": {"name": namespace, "labels": labels}})
    # Pods run as uid 1000 on this machine: a world-readable work dir (pytest's tmp_path is private).
    work = Path(tempfile.mkdtemp(prefix="kt-deploy-prom-", dir="/var/tmp"))
    work.chmod(0o755)
    build_tiny_model(work / "model")
    for path in (work / "model").iterdir():
        path.chmod(0o644)  # safetensors writes model.safetensors as 0600
    (work / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in reverse_task_rows(64)))
    (work / "out").mkdir(mode=0o777)
    (work / "out").chmod(0o777)
    manifest = parse_manifest(
        {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": JOB, "namespace": namespace},
            "spec": {
                "model": {"uri": str(work / "model")},
                "dataset": {"uri": str(work / "data.jsonl"), "split": {"validation": 0.1, "test": 0.0}},
                "tasks": [{"name": "reverse", "templates": [
                    {"prompt": "Reverse: {{ word }}\nAnswer:", "completion": " {{ reversed }}"}]}],
                "method": "full",
                # Long enough to be scraped while running; the fixture deletes it afterwards.
                "hyperparameters": {
                    "epochs": 200, "batchSize": 8, "maxSeqLength": 32, "learningRate": "1e-3"},
                "output": {"uri": str(work / "out")},
                "checkpoint": {"everySteps": 100000},
            },
        }
    )  # fmt: skip
    # The operator's builders: exactly the pod labels, annotations and ports the operator creates. No owner
    # object exists, so ownerReferences are dropped (the garbage collector would delete orphans at once).
    owner = Owner(kind="FineTuneJob", name=JOB, namespace=namespace, uid="none")
    # A free port rather than 9400: pods share the host's network here, and a process bound to 0.0.0.0:9400
    # elsewhere on the machine would block the pod's IP:9400.
    # The checkout's environment (the node agent's fast mode): the model, data and output are local files of
    # this machine, which a pod inside the trainer image cannot see (and a restricted namespace allows no
    # hostPath volume to show it them).
    settings = OperatorSettings(
        launcher="python",
        trainer_module="kubetune_trainer",
        progress_port=free_port(),
        trainer_image=CHECKOUT_IMAGE,
    )
    job = without_owner(build_worker_job(owner, manifest.spec, 0, settings))  # type: ignore[arg-type]
    # The node agent's pods share the host's /tmp, where the trainer's default scratch dir may belong to
    # another user: give this one its own.
    (work / "scratch").mkdir(mode=0o777)
    (work / "scratch").chmod(0o777)
    job["spec"]["template"]["spec"]["containers"][0]["env"] += [
        {"name": "OMP_NUM_THREADS", "value": "1"},
        {"name": "KUBETUNE_WORK_DIR", "value": str(work / "scratch")},
    ]
    k8s.core.create_namespaced_config_map(namespace, without_owner(build_config_map(owner, manifest.spec)))
    k8s.core.create_namespaced_service(namespace, without_owner(build_headless_service(owner)))
    k8s.batch.create_namespaced_job(namespace, job)
    yield namespace
    k8s.core.delete_namespace(namespace, propagation_policy="Background")
    subprocess.run(["rm", "-rf", str(work)], check=False)


def without_owner(body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"].pop("ownerReferences", None)
    return body


def rank0_metrics(k8s: KubeClients, namespace: str) -> str | None:
    """The trainer's exposition once it has a loss; a failed pod ends the wait at once (wait_for retries
    on exceptions, so a failure is returned, not raised)."""
    pods = k8s.core.list_namespaced_pod(namespace, label_selector=f"kubetune.io/job-name={JOB}").items
    failed = [pod for pod in pods if pod.status.phase == "Failed"]
    if failed:
        return f"FAILED: {failed[0].status.container_statuses}"
    running = [pod for pod in pods if pod.status.phase == "Running" and pod.status.pod_ip]
    if not running:
        return None
    try:
        pod = running[0]
        (port,) = [p.container_port for p in pod.spec.containers[0].ports if p.name == "metrics"]
        with urllib.request.urlopen(f"http://{pod.status.pod_ip}:{port}/metrics", timeout=3) as response:
            text = response.read().decode()
    except OSError:
        return None
    return text if re.search(r"^kubetune_trainer_loss\{", text, re.MULTILINE) else None


def wait_for_trainer_metrics(k8s: KubeClients, namespace: str, wait_for: Any) -> str:
    exposition: str = wait_for(lambda: rank0_metrics(k8s, namespace), 240, "the trainer's loss on /metrics")
    assert not exposition.startswith("FAILED"), exposition
    return exposition


def test_trainer_metrics_pass_promtool(k8s: KubeClients, trainer: str, wait_for: Any) -> None:
    exposition = wait_for_trainer_metrics(k8s, trainer, wait_for)
    checked = subprocess.run(
        [client_tool("promtool"), "check", "metrics"],
        input=exposition,
        check=False,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def query(url: str, promql: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(
        f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}", timeout=5
    ) as r:
        payload = json.loads(r.read())
    assert payload["status"] == "success", payload
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result


def test_prometheus_with_the_podmonitor_relabelling_returns_the_loss(
    stack: LocalStack, k8s: KubeClients, trainer: str, wait_for: Any, tmp_path: Path
) -> None:
    wait_for_trainer_metrics(k8s, trainer, wait_for)
    scrape = podmonitor_scrape_config(rendered_podmonitor(trainer), stack_pod_discovery(stack))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [scrape]}))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [str(ensure_binaries().prometheus), f"--config.file={config}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        promql = f'kubetune_trainer_loss{{namespace="{trainer}", kubetune_job="{JOB}"}}'

        def loss() -> list[dict[str, Any]] | str:
            # wait_for retries on exceptions: an exited Prometheus is returned, not raised.
            return "EXITED" if process.poll() is not None else query(url, promql)

        found = wait_for(loss, 90, f"{promql} in the test Prometheus")
        assert found != "EXITED", (tmp_path / "prometheus.log").read_text()[-2000:]
        (series,) = found
        labels = series["metric"]
        assert labels["kubetune_kind"] == "FineTuneJob"
        assert labels["kubetune_attempt"] == "0"
        assert labels["job_name"] == JOB  # the trainer's own label
        loss = float(series["value"][1])
        assert 0.0 < loss < 100.0
        targets = query(url, "up")
        assert [t["metric"]["pod"] for t in targets if t["value"][1] == "1"], targets
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
