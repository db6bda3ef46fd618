"""The operator end to end: a real `kubetune operator` process against the local stack's API server,
Job controller, scheduler and node agent; pods run the fake trainer/evaluator (seconds, not minutes)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack
from kubetune_devtools.testing.argocd_health import argocd_health
from kubetune_devtools.testing.operator_harness import (
    Objects,
    OperatorProcess,
    evaljob,
    finetunejob,
    wait_until,
)
from kubetune_operator.api.contract import read_message

pytestmark = pytest.mark.e2e
# The conftest names each test's namespace `t-<test name>-<random>`: every test here is named
# `test_operator_*`, so one operator watching this glob sees them all and nothing of other modules.
NAMESPACE_GLOB = "t-test-operator-*"
FTJ, EVJ = "finetunejobs", "evaljobs"


@pytest.fixture(scope="module")
def operator(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(stack.kubeconfig, log, namespaces=[NAMESPACE_GLOB]).start()
    wait_until(lambda: _get(f"http://127.0.0.1:{process.health_port}/healthz"), 30, "operator liveness")
    yield process
    process.stop()
    print(process.log_tail(80))


@pytest.fixture
def objects(k8s: KubeClients, namespace: str, operator: OperatorProcess) -> Objects:
    return Objects(k8s.api_client, namespace)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def phase_is(objects: Objects, plural: str, name: str, *phases: str) -> dict[str, Any] | None:
    status = objects.status(plural, name)
    return status if status.get("phase") in phases else None


def live_pods(objects: Objects, name: str) -> list[Any]:
    return [p for p in objects.pods(name) if p.status.phase in ("Pending", "Running")]


def termination(pod: Any) -> dict[str, Any]:
    """The result a pod reported through the workload contract."""
    state = pod.status.container_statuses[0].state
    report = read_message(state.terminated.message if state.terminated else None)
    return dict(report.result or {}) if report is not None else {}


def test_operator_two_node_success_path_with_progress_conditions_events(objects: Objects) -> None:
    objects.create(finetunejob("tune", json.dumps({"seconds": 4}), resources={"nodes": 2, "scratch": "2Gi"}))
    # The first test also waits for the operator to discover namespaces (seconds on a busy machine).
    running = wait_until(lambda: phase_is(objects, FTJ, "tune", "Running"), 90, "Running")
    progress = wait_until(lambda: objects.status(FTJ, "tune").get("progress", {}).get("step"), 15, "progress")
    assert progress > 0 and running["startTime"]
    done = wait_until(lambda: phase_is(objects, FTJ, "tune", "Succeeded", "Failed"), 30, "finished")
    assert done["phase"] == "Succeeded", done
    assert done["completionTime"] >= done["startTime"]
    assert done["output"] == {"uri": "s3://models/tuned/tune/", "digest": "sha256:" + "0" * 64}
    assert done["lastCheckpoint"]["step"] > 0
    assert done["restarts"] == 0 and done["observedGeneration"] == 1
    for type_ in ("Created", "Succeeded", "Ready"):
        assert condition(done, type_)["status"] == "True", type_
    assert argocd_health(objects.get(FTJ, "tune") or {})[0] == "Healthy"  # the chart's Argo CD check
    assert condition(done, "Running")["status"] == "False"
    reasons = {event.reason for event in objects.events("tune")}
    assert {"AllWorkersRunning", "Completed"} <= reasons
    # Children: one ConfigMap, one headless Service, exactly one Job, all owned by the FineTuneJob.
    (job,) = objects.jobs("tune")
    assert job.metadata.name == "tune-r0"
    assert job.metadata.owner_references[0].kind == "FineTuneJob"
    assert objects.core.read_namespaced_service("tune", objects.namespace).spec.cluster_ip == "None"
    config_map = objects.core.read_namespaced_config_map("tune-config", objects.namespace)
    assert "s3://models/base/" in config_map.data["config.yaml"]
    # Each node rank ran on its own node with the rendezvous address of rank 0.
    pods = sorted(objects.pods("tune"), key=lambda p: p.metadata.name)
    identities = [termination(p)["identity"] for p in pods]
    assert [i["KUBETUNE_NODE_RANK"] for i in identities] == ["0", "1"]
    assert {i["KUBETUNE_MASTER_ADDR"] for i in identities} == {"tune-r0-0.tune"}
    assert len({p.spec.node_name for p in pods}) == 2
    # Room to checkpoint on SIGTERM (the FineTuneJob default) and the operator's S3 retry window, as the
    # API server stored them on the Job and its pods.
    assert job.spec.template.spec.termination_grace_period_seconds == 300
    assert [p.spec.termination_grace_period_seconds for p in pods] == [300, 300]
    env = {e.name: e.value for e in pods[0].spec.containers[0].env}
    assert env["KUBETUNE_STORAGE_RETRY_SECONDS"] == "60"
    # resources.scratch: the scratch emptyDir's size and as much ephemeral storage, scheduled on nodes
    # that advertise it.
    scratch = next(v for v in pods[0].spec.volumes if v.name == "scratch")
    assert scratch.empty_dir.size_limit == "2Gi"
    assert pods[0].spec.containers[0].resources.requests["ephemeral-storage"] == "2Gi"


def test_operator_worker_failure_restarts_the_gang_once_then_succeeds(objects: Objects) -> None:
    scenario = {"seconds": 3, "failRank": 1, "failAttempts": [0], "exitCode": 3}
    objects.create(finetunejob("flaky", json.dumps(scenario), resources={"nodes": 2}))
    done = wait_until(lambda: phase_is(objects, FTJ, "flaky", "Succeeded", "Failed"), 60, "finished")
    assert done["phase"] == "Succeeded", done
    assert done["restarts"] == 1
    assert condition(done, "Restarting")["status"] == "False"
    assert [job.metadata.name for job in objects.jobs("flaky")] == ["flaky-r1"]
    warnings = [e for e in objects.events("flaky") if e.type == "Warning"]
    assert any("exited with code 3" in e.message for e in warnings)


def test_operator_failure_past_max_restarts_fails_with_the_worker_reason(objects: Objects) -> None:
    scenario = {"seconds": 5, "failRank": 0, "exitCode": 7, "failAfter": 0.2}
    objects.create(finetunejob("broken", json.dumps(scenario), runPolicy={"maxRestarts": 1}))
    done = wait_until(lambda: phase_is(objects, FTJ, "broken", "Succeeded", "Failed"), 60, "finished")
    assert done["phase"] == "Failed"
    failed = condition(done, "Failed")
    assert failed["reason"] == "Error"
    assert "code 7" in failed["message"] and "exhausted (1/1" in failed["message"]
    assert done["restarts"] == 1 and done["completionTime"]
    assert condition(done, "Ready")["status"] == "False"


def test_operator_missing_secret_fails_fast_without_pods(objects: Objects) -> None:
    objects.create(finetunejob("nosecret", storage={"credentialsSecret": "absent-creds"}))
    done = wait_until(lambda: phase_is(objects, FTJ, "nosecret", "Failed"), 20, "Failed")
    assert condition(done, "Failed")["reason"] == "MissingSecret"
    assert "absent-creds" in condition(done, "Failed")["message"]
    assert condition(done, "Created")["status"] == "False"
    assert objects.jobs("nosecret") == [] and objects.pods("nosecret") == []


def test_operator_workload_reported_storage_failure_is_not_retried(objects: Objects) -> None:
    scenario = {"reportReason": "StorageUnreachable"}
    objects.create(finetunejob("nos3", json.dumps(scenario), runPolicy={"maxRestarts": 3}))
    done = wait_until(lambda: phase_is(objects, FTJ, "nos3", "Failed"), 30, "Failed")
    assert condition(done, "Failed")["reason"] == "StorageUnreachable"
    assert done["restarts"] == 0


def test_operator_suspend_removes_pods_and_resume_runs_again(objects: Objects) -> None:
    run_policy = {"suspend": False, "terminationGracePeriodSeconds": 7}
    objects.create(finetunejob("pausable", json.dumps({"seconds": 60}), runPolicy=run_policy))
    wait_until(lambda: phase_is(objects, FTJ, "pausable", "Running"), 30, "Running")
    assert [p.spec.termination_grace_period_seconds for p in live_pods(objects, "pausable")] == [7]
    objects.patch_spec(FTJ, "pausable", {"runPolicy": {"suspend": True}})
    suspended = wait_until(lambda: phase_is(objects, FTJ, "pausable", "Suspended"), 20, "Suspended")
    assert condition(suspended, "Suspended")["reason"] == "SuspendedByUser"
    assert objects.jobs("pausable")[0].spec.suspend is True
    wait_until(lambda: not live_pods(objects, "pausable"), 20, "pods gone while suspended")
    objects.patch_spec(FTJ, "pausable", {"runPolicy": {"suspend": False}})
    resumed = wait_until(lambda: phase_is(objects, FTJ, "pausable", "Running"), 30, "Running again")
    assert condition(resumed, "Suspended")["status"] == "False"
    assert resumed["restarts"] == 0 and resumed["observedGeneration"] == 3


def test_operator_active_deadline_fails_and_stops_the_pods(objects: Objects) -> None:
    objects.create(finetunejob("slow", json.dumps({"seconds": 60}), runPolicy={"activeDeadlineSeconds": 2}))
    done = wait_until(lambda: phase_is(objects, FTJ, "slow", "Failed"), 30, "Failed")
    assert condition(done, "Failed")["reason"] == "DeadlineExceeded"
    wait_until(lambda: not live_pods(objects, "slow"), 20, "pods gone after the deadline")


def test_operator_ttl_deletes_the_finished_job_and_its_children(objects: Objects) -> None:
    objects.create(
        finetunejob("shortlived", json.dumps({"seconds": 0.5}), runPolicy={"ttlSecondsAfterFinished": 1})
    )
    # The deletion completes when Kopf releases its finalizer, which took up to ~40 s on a busy machine.
    wait_until(lambda: objects.get(FTJ, "shortlived") is None, 90, "FineTuneJob deleted by TTL")
    wait_until(lambda: not objects.jobs("shortlived"), 30, "child Job garbage-collected")


def test_operator_delete_while_running_stops_pods_promptly(objects: Objects) -> None:
    objects.create(finetunejob("doomed", json.dumps({"seconds": 120}), resources={"nodes": 2}))
    wait_until(lambda: phase_is(objects, FTJ, "doomed", "Running"), 30, "Running")
    objects.delete(FTJ, "doomed")
    wait_until(lambda: not live_pods(objects, "doomed"), 30, "pods stopped after deletion")
    wait_until(lambda: objects.get(FTJ, "doomed") is None, 20, "FineTuneJob gone")


def test_operator_evaljob_waits_for_its_finetunejob_then_scores_its_output(objects: Objects) -> None:
    objects.create(evaljob("score", {"fineTuneJobRef": {"name": "base-tune"}}, json.dumps({"seconds": 0.5})))
    waiting = wait_until(lambda: condition(objects.status(EVJ, "score"), "Waiting"), 20, "Waiting")
    assert waiting["reason"] == "ModelNotReady" and waiting["status"] == "True"
    assert objects.jobs("score") == []
    objects.create(finetunejob("base-tune", json.dumps({"seconds": 1})))
    done = wait_until(lambda: phase_is(objects, EVJ, "score", "Succeeded", "Failed"), 60, "EvalJob finished")
    assert done["phase"] == "Succeeded", done
    assert done["modelUri"] == "s3://models/tuned/base-tune/"
    assert done["verdict"] == "Passed"
    assert done["results"]["model"]["rougeL"] == 0.5
    assert done["reportUri"] == "s3://evals/score/report.html"
    (job,) = objects.jobs("score")
    assert job.spec.template.spec.termination_grace_period_seconds == 30  # the EvalJob default
    assert condition(done, "Waiting")["status"] == "False"


def test_operator_evaljob_fails_when_its_finetunejob_fails(objects: Objects) -> None:
    scenario = {"failRank": 0, "exitCode": 1, "failAfter": 0}
    objects.create(finetunejob("bad-tune", json.dumps(scenario), runPolicy={"maxRestarts": 0}))
    objects.create(evaljob("score-bad", {"fineTuneJobRef": {"name": "bad-tune"}}))
    done = wait_until(lambda: phase_is(objects, EVJ, "score-bad", "Failed"), 40, "EvalJob Failed")
    assert condition(done, "Failed")["reason"] == "ModelFailed"
    health, message = argocd_health(objects.get(EVJ, "score-bad") or {})
    assert health == "Degraded" and message.startswith("ModelFailed: "), message


def test_operator_metrics_and_health_endpoints(objects: Objects, operator: OperatorProcess) -> None:
    objects.create(finetunejob("counted", json.dumps({"seconds": 0.5})))
    wait_until(lambda: phase_is(objects, FTJ, "counted", "Succeeded"), 30, "Succeeded")
    metrics = wait_until(lambda: _get(f"http://127.0.0.1:{operator.metrics_port}/metrics"), 10, "metrics")
    assert (
        f'kubetune_operator_jobs{{kind="FineTuneJob",namespace="{objects.namespace}",phase="Succeeded"}} 1.0'
        in metrics
    )
    assert "kubetune_operator_reconcile_duration_seconds_count" in metrics
    assert "kubetune_operator_time_to_running_seconds_bucket" in metrics
    assert _get(f"http://127.0.0.1:{operator.health_port}/healthz") is not None


def test_operator_child_owned_by_someone_else_fails_with_child_conflict(objects: Objects) -> None:
    core: Any = objects.core  # Any: the stubs want model objects where the client takes dicts
    user_config = {"metadata": {"name": "clash-config"}, "data": {"mine": "yes"}}
    core.create_namespaced_config_map(objects.namespace, user_config)
    objects.create(finetunejob("clash"))
    done = wait_until(lambda: phase_is(objects, FTJ, "clash", "Failed"), 30, "Failed")
    failed = condition(done, "Failed")
    assert failed["reason"] == "ChildConflict" and '"clash-config"' in failed["message"], failed
    assert objects.jobs("clash") == [] and done["restarts"] == 0
    # Neither adopted nor changed.
    config_map = core.read_namespaced_config_map("clash-config", objects.namespace)
    assert config_map.data == {"mine": "yes"} and not config_map.metadata.owner_references


def test_operator_child_left_by_a_deleted_namesake_is_replaced_not_adopted(objects: Objects) -> None:
    core: Any = objects.core  # Any: the stubs want model objects where the client takes dicts
    # What a FineTuneJob deleted a moment ago leaves until the garbage collector gets to it: a child
    # owned by the same kind and name under another UID, here with a config the fake cannot parse.
    stale_owner = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "name": "again",
        "uid": "00000000-0000-0000-0000-000000000000",
    }
    stale = {
        "metadata": {"name": "again-config", "ownerReferences": [stale_owner]},
        "data": {"config.yaml": "{not: [yaml"},
    }
    core.create_namespaced_config_map(objects.namespace, stale)
    objects.create(finetunejob("again", json.dumps({"seconds": 0.5})))
    done = wait_until(lambda: phase_is(objects, FTJ, "again", "Succeeded", "Failed"), 60, "finished")
    assert done["phase"] == "Succeeded", done
    uid = (objects.get(FTJ, "again") or {})["metadata"]["uid"]
    config_map = core.read_namespaced_config_map("again-config", objects.namespace)
    assert [ref.uid for ref in config_map.metadata.owner_references] == [uid]


def test_operator_child_rejected_by_the_api_server_fails_with_its_message(objects: Objects) -> None:
    # Admission passes tolerations through unchecked (free-form core/v1 Tolerations); the Job's pod
    # template checks the key: 422, not a loop. (Bad labels, names, quantities are refused at admission.)
    toleration = {"key": "a b", "operator": "Exists"}
    objects.create(finetunejob("badlabel", podTemplate={"tolerations": [toleration]}))
    done = wait_until(lambda: phase_is(objects, FTJ, "badlabel", "Failed"), 30, "Failed")
    failed = condition(done, "Failed")
    assert failed["reason"] == "InvalidSpec", failed
    assert '"badlabel-r0"' in failed["message"] and "a b" in failed["message"], failed["message"]
    assert objects.jobs("badlabel") == []
    warnings = [e for e in objects.events("badlabel") if e.type == "Warning"]
    assert any(e.reason == "InvalidSpec" and "a b" in e.message for e in warnings)


def test_operator_local_path_uris_fail_with_invalid_spec_before_any_child(objects: Objects) -> None:
    # Admission accepts local paths (`kubetune train` runs the same spec on one machine); in a cluster the
    # pods share no disk, so the operator refuses them, naming the field, and creates nothing.
    objects.create(finetunejob("localout", output={"uri": "/data/out/"}))
    local_data = evaljob("localdata", {"uri": "s3://models/base/"})
    local_data["spec"]["dataset"]["uri"] = "data/test.jsonl"
    objects.create(local_data)
    for plural, name, field in ((FTJ, "localout", "spec.output.uri"), (EVJ, "localdata", "spec.dataset.uri")):
        done = wait_until(lambda p=plural, n=name: phase_is(objects, p, n, "Failed"), 30, f"{name} Failed")
        failed = condition(done, "Failed")
        assert failed["reason"] == "InvalidSpec", failed
        assert field in failed["message"] and "kubetune train" in failed["message"], failed["message"]
        assert objects.jobs(name) == []


def test_operator_finished_job_whose_ttl_changes_observes_the_new_generation(objects: Objects) -> None:
    # kstatus reads a lagging observedGeneration as InProgress: a GitOps tool that edits a finished job's
    # TTL (a mutable field) must see it Current again, with the outcome unchanged.
    objects.create(finetunejob("observed", json.dumps({"seconds": 0.5})))
    done = wait_until(lambda: phase_is(objects, FTJ, "observed", "Succeeded", "Failed"), 60, "finished")
    assert done["phase"] == "Succeeded" and done["observedGeneration"] == 1, done
    objects.patch_spec(FTJ, "observed", {"runPolicy": {"ttlSecondsAfterFinished": 3600}})
    generation = (objects.get(FTJ, "observed") or {})["metadata"]["generation"]
    assert generation == 2

    def observed() -> dict[str, Any] | None:
        status = objects.status(FTJ, "observed")
        return status if status.get("observedGeneration") == 2 else None

    again = wait_until(observed, 30, "observedGeneration 2")
    assert again["phase"] == "Succeeded" and again["completionTime"] == done["completionTime"], again
    assert {c["observedGeneration"] for c in again["conditions"]} == {2}
    assert (
        condition(again, "Reconciling")["status"] == "False" and condition(again, "Ready")["status"] == "True"
    )


def test_operator_pods_never_created_fail_with_pending_timeout_naming_why(objects: Objects) -> None:
    # A ServiceAccount that does not exist: the Job is created, its pods never are (the Job controller only
    # records FailedCreate Events; the Job gets no condition). Before pendingTimeoutSeconds: Pending for ever.
    pod_template, run_policy = {"serviceAccountName": "nope"}, {"pendingTimeoutSeconds": 5}
    objects.create(finetunejob("nosa", podTemplate=pod_template, runPolicy=run_policy))
    created = wait_until(lambda: objects.jobs("nosa"), 60, "the child Job")
    done = wait_until(lambda: phase_is(objects, FTJ, "nosa", "Failed"), 60, "Failed")
    failed = condition(done, "Failed")
    assert failed["reason"] == "PendingTimeout", failed
    assert "0/1 workers running after pendingTimeoutSeconds=5" in failed["message"], failed["message"]
    assert 'serviceaccount "nope" not found' in failed["message"], failed["message"]
    assert objects.pods("nosa") == [] and len(created) == 1
    # The failed attempt's Job is deleted: a ServiceAccount created later starts no pods for a failed job.
    wait_until(lambda: objects.jobs("nosa") == [], 30, "the child Job to be deleted")
    warnings = [e for e in objects.events("nosa") if e.type == "Warning"]
    assert any(e.reason == "PendingTimeout" and "nope" in e.message for e in warnings), warnings


def test_operator_pods_refused_by_a_quota_fail_with_pending_timeout(objects: Objects) -> None:
    # The Job fits the namespace's quota, its pods do not: only FailedCreate Events say so.
    core: Any = objects.core  # Any: the stubs want model objects where the client takes dicts
    core.create_namespaced_resource_quota(
        objects.namespace, {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    )

    def enforced() -> bool:
        status = core.read_namespaced_resource_quota("no-pods", objects.namespace).status
        return bool(status and status.hard)

    wait_until(enforced, 30, "the quota controller to fill in the quota's status")
    objects.create(finetunejob("podquota", runPolicy={"pendingTimeoutSeconds": 5}))
    done = wait_until(lambda: phase_is(objects, FTJ, "podquota", "Failed"), 60, "Failed")
    failed = condition(done, "Failed")
    assert failed["reason"] == "PendingTimeout", failed
    assert "exceeded quota: no-pods" in failed["message"], failed["message"]
    assert (
        condition(done, "Stalled")["status"] == "True" and condition(done, "Reconciling")["status"] == "False"
    )


def test_operator_child_refused_by_a_quota_fails_with_child_rejected(objects: Objects) -> None:
    core: Any = objects.core  # Any: the stubs want model objects where the client takes dicts
    quota = {"metadata": {"name": "no-jobs"}, "spec": {"hard": {"count/jobs.batch": "0"}}}
    core.create_namespaced_resource_quota(objects.namespace, quota)

    def enforced() -> bool:
        status = core.read_namespaced_resource_quota("no-jobs", objects.namespace).status
        return bool(status and status.hard)

    wait_until(enforced, 30, "the quota controller to fill in the quota's status")
    objects.create(finetunejob("quota"))
    done = wait_until(lambda: phase_is(objects, FTJ, "quota", "Failed"), 30, "Failed")
    failed = condition(done, "Failed")
    assert failed["reason"] == "ChildRejected", failed
    assert '"quota-r0"' in failed["message"] and "exceeded quota" in failed["message"], failed["message"]
    assert objects.jobs("quota") == [] and done["restarts"] == 0
