"""The platform policy end to end: a real `kubetune operator` started with a policy (the JSON the chart
passes in KUBETUNE_POLICY) against the local stack. A job outside it fails at once with PolicyViolation
and no child object or pod; a job inside it runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.operator_harness import (
    CHECKOUT_IMAGE,
    Objects,
    OperatorProcess,
    evaljob,
    finetunejob,
    wait_until,
)

pytestmark = pytest.mark.e2e
# The conftest names each test's namespace `t-<test name>-<random>`.
NAMESPACE_GLOB = "t-test-policy-*"
FTJ = "finetunejobs"
POLICY = {
    "allowedImageRepositories": ["kubetune/trainer", "kubetune/evaluator", CHECKOUT_IMAGE],
    "allowedServiceAccounts": ["", "kubetune-workload"],
    "allowedPriorityClasses": [""],
    "allowedAnnotationKeys": [],
    "maxGpusPerJob": 8,
}


@pytest.fixture(scope="module")
def operator(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(stack.kubeconfig, log, namespaces=[NAMESPACE_GLOB], policy=json.dumps(POLICY))
    yield process.start()
    process.stop()
    print(process.log_tail(40))


@pytest.fixture
def objects(k8s: KubeClients, namespace: str, operator: OperatorProcess) -> Objects:
    return Objects(k8s.api_client, namespace)


def _finished(objects: Objects, name: str, plural: str = FTJ) -> dict[str, Any] | None:
    status = objects.status(plural, name)
    return status if status.get("phase") in ("Succeeded", "Failed") else None


def _wait_finished(objects: Objects, name: str, plural: str = FTJ) -> dict[str, Any]:
    return wait_until(lambda: _finished(objects, name, plural), 90, f"{name} finished")


def _failed_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Failed")


def test_policy_disallowed_image_fails_with_policy_violation_and_no_children(objects: Objects) -> None:
    objects.create(finetunejob("miner", image="evil.example.com/miner:1"))
    done = wait_until(lambda: _finished(objects, "miner"), 90, "miner finished")
    failed = _failed_condition(done)
    assert (done["phase"], failed["reason"]) == ("Failed", "PolicyViolation")
    assert failed["message"] == (
        'spec.image "evil.example.com/miner:1" is not from an allowed repository '
        f'(allowed: "kubetune/trainer", "kubetune/evaluator", "{CHECKOUT_IMAGE}")'
    )
    assert objects.jobs("miner") == [] and objects.pods("miner") == []
    configmaps = objects.core.list_namespaced_config_map(objects.namespace).items
    assert not [c for c in configmaps if c.metadata and str(c.metadata.name).startswith("miner")]
    assert objects.core.list_namespaced_service(objects.namespace).items == []
    events = [e for e in objects.events("miner") if e.reason == "PolicyViolation"]
    assert events and events[0].type == "Warning" and "evil.example.com/miner:1" in events[0].message


def test_policy_disallowed_service_account_and_priority_class_fail_without_pods(objects: Objects) -> None:
    objects.create(finetunejob("sa", podTemplate={"serviceAccountName": "default"}))
    objects.create(finetunejob("prio", podTemplate={"priorityClassName": "system-cluster-critical"}))
    for name, field in (("sa", "serviceAccountName"), ("prio", "priorityClassName")):
        done = _wait_finished(objects, name)
        assert _failed_condition(done)["reason"] == "PolicyViolation"
        assert f"spec.podTemplate.{field}" in _failed_condition(done)["message"]
        assert objects.jobs(name) == [] and objects.pods(name) == []


def test_policy_allowed_image_and_service_account_run(objects: Objects) -> None:
    objects.create(
        finetunejob(
            "allowed",
            json.dumps({"seconds": 1}),
            image=f"{CHECKOUT_IMAGE}:1",
            podTemplate={"serviceAccountName": ""},
        )
    )
    done = wait_until(lambda: _finished(objects, "allowed"), 120, "allowed finished")
    assert done["phase"] == "Succeeded", done
    assert [job.metadata.name for job in objects.jobs("allowed")] == ["allowed-r0"]


def test_policy_evaljob_with_a_disallowed_image_fails_before_waiting_for_its_model(objects: Objects) -> None:
    # Its FineTuneJob does not exist: without the policy it would wait (ModelNotReady) for ever.
    body = evaljob("judge", {"fineTuneJobRef": {"name": "absent"}})
    body["spec"]["image"] = "kubetune/evaluator-debug:1"
    objects.create(body)
    done = _wait_finished(objects, "judge", "evaljobs")
    assert _failed_condition(done)["reason"] == "PolicyViolation"
    assert 'spec.image "kubetune/evaluator-debug:1"' in _failed_condition(done)["message"]
    assert objects.jobs("judge") == [] and objects.pods("judge") == []
