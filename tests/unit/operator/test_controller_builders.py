"""Pure builders: spec -> ConfigMap, headless Service, Indexed Job (no cluster)."""

from __future__ import annotations

from typing import Any

import yaml

from kubetune_operator.api import EvalJobSpec, FineTuneJobSpec
from kubetune_operator.controller.builders import (
    Owner,
    build_config_map,
    build_evaluator_job,
    build_headless_service,
    build_worker_job,
)
from kubetune_operator.controller.names import LABEL_JOB_NAME, LABEL_KIND, LABEL_KUEUE_QUEUE
from kubetune_operator.controller.settings import OperatorSettings

OWNER = Owner(kind="FineTuneJob", name="review-rating", namespace="team-a", uid="uid-1")
SETTINGS = OperatorSettings(trainer_module="kubetune_trainer", launcher="accelerate")


def make_spec(**overrides: Any) -> FineTuneJobSpec:
    raw: dict[str, Any] = {
        "model": {"uri": "s3://models/base/"},
        "dataset": {"uri": "s3://data/reviews.jsonl"},
        "output": {"uri": "s3://models/tuned/review-rating/"},
        "resources": {"nodes": 2, "processesPerNode": 8, "gpusPerNode": 8, "cpu": "16", "memory": "128Gi"},
        "storage": {"endpoint": "http://minio.storage:9000", "credentialsSecret": "s3-creds"},
        "podTemplate": {
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
            "priorityClassName": "high",
            "serviceAccountName": "trainer",
            "labels": {"team": "a", LABEL_JOB_NAME: "spoofed"},
            "annotations": {"note": "x"},
        },
    }
    raw.update(overrides)
    return FineTuneJobSpec.model_validate(raw)


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = job["spec"]["template"]["spec"]["containers"]
    return containers[0]


def env_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(job)["env"]}


def test_worker_job_is_an_indexed_gang_without_job_level_retries() -> None:
    job = build_worker_job(OWNER, make_spec(), 0, SETTINGS)
    spec = job["spec"]
    assert job["metadata"]["name"] == "review-rating-r0"
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (
        "Indexed",
        2,
        2,
        0,
    )
    assert spec["suspend"] is False
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["metadata"]["labels"][LABEL_KIND] == "FineTuneJob"
    # A disrupted pod (evicted, preempted) fails the Job with reason PodFailurePolicy, the operator's cue
    # for a restart that spends no maxRestarts; the pods' restartPolicy Never is what that rule requires.
    rule = {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert spec["podFailurePolicy"] == {"rules": [rule]}
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_accelerate_command_carries_gang_geometry_and_rendezvous_address() -> None:
    command = container(build_worker_job(OWNER, make_spec(), 2, SETTINGS))["command"]
    args = dict(zip(command[2::2], command[3::2], strict=False))
    assert command[:2] == ["accelerate", "launch"]
    assert args["--num_machines"] == "2"
    assert args["--machine_rank"] == "$(KUBETUNE_NODE_RANK)"
    assert args["--num_processes"] == "16"
    assert args["--main_process_ip"] == "review-rating-r2-0.review-rating"
    assert "--multi_gpu" in command
    assert command[command.index("-m") + 1] == "kubetune_trainer"


def test_a_single_process_and_the_python_launcher_skip_accelerate() -> None:
    spec = make_spec(resources={"nodes": 1})
    # One process: the trainer is the container's main process, so SIGTERM reaches it (no launcher as PID 1).
    assert container(build_worker_job(OWNER, spec, 0, SETTINGS))["command"] == [
        "python",
        "-m",
        "kubetune_trainer",
        "--config",
        "/etc/kubetune/config.yaml",
    ]
    two_cpu_processes = make_spec(resources={"nodes": 1, "processesPerNode": 2})
    assert "--multi_gpu" in container(build_worker_job(OWNER, two_cpu_processes, 0, SETTINGS))["command"]
    python = OperatorSettings(trainer_module="fake", launcher="python", python_executable="/venv/bin/python")
    command = container(build_worker_job(OWNER, spec, 0, python))["command"]
    assert command == ["/venv/bin/python", "-m", "fake", "--config", "/etc/kubetune/config.yaml"]


def test_credentials_only_as_secret_refs_and_never_in_the_config_map() -> None:
    spec = make_spec()
    env = env_of(build_worker_job(OWNER, spec, 0, SETTINGS))
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "s3-creds",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-creds"
    assert env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.storage:9000"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["PYTHONUNBUFFERED"]["value"] == "1"
    config = build_config_map(OWNER, spec)["data"]["config.yaml"]
    assert "AWS_SECRET_ACCESS_KEY" not in config
    parsed = yaml.safe_load(config)
    assert parsed["spec"]["storage"]["credentialsSecret"] == "s3-creds"
    assert FineTuneJobSpec.model_validate(parsed["spec"]) == spec


def test_no_credentials_secret_means_ambient_chain() -> None:
    env = env_of(build_worker_job(OWNER, make_spec(storage={}), 0, SETTINGS))
    assert "AWS_ACCESS_KEY_ID" not in env
    assert "AWS_ENDPOINT_URL" not in env


def test_resources_security_and_pod_template_overrides() -> None:
    job = build_worker_job(OWNER, make_spec(), 0, SETTINGS)
    pod = job["spec"]["template"]
    main = container(job)
    assert main["resources"]["limits"] == {"cpu": "16", "memory": "128Gi", "nvidia.com/gpu": "8"}
    assert main["resources"]["requests"] == main["resources"]["limits"]
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert pod["spec"]["priorityClassName"] == "high"
    assert pod["spec"]["serviceAccountName"] == "trainer"
    assert pod["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert pod["spec"]["subdomain"] == "review-rating"
    assert pod["metadata"]["labels"]["team"] == "a"
    # The user cannot take over the labels the Service selector and the operator rely on.
    assert pod["metadata"]["labels"][LABEL_JOB_NAME] == "review-rating"
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["note"] == "x"


def test_suspend_and_queue_name_start_the_job_suspended() -> None:
    suspended = build_worker_job(OWNER, make_spec(runPolicy={"suspend": True}), 0, SETTINGS)
    assert suspended["spec"]["suspend"] is True
    queued = build_worker_job(OWNER, make_spec(runPolicy={"queueName": "team-a-queue"}), 0, SETTINGS)
    assert queued["spec"]["suspend"] is True
    assert queued["metadata"]["labels"][LABEL_KUEUE_QUEUE] == "team-a-queue"


def test_headless_service_selects_the_workers_and_publishes_not_ready() -> None:
    service = build_headless_service(OWNER)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {LABEL_JOB_NAME: "review-rating", LABEL_KIND: "FineTuneJob"}


def test_evaluator_job_is_one_pod_with_judge_key_from_secret() -> None:
    spec = EvalJobSpec.model_validate(
        {
            "model": {"uri": "s3://models/tuned/"},
            "dataset": {"uri": "s3://data/test.jsonl"},
            "metrics": ["rouge", "judge"],
            "judge": {"endpoint": "http://judge:8000/v1", "model": "m", "apiKeySecret": "judge-key"},
            "output": {"uri": "s3://evals/x/"},
        }
    )
    owner = Owner(kind="EvalJob", name="ev", namespace="team-a", uid="u2")
    job = build_evaluator_job(owner, spec, 0, OperatorSettings(evaluator_module="fake_eval"))
    assert job["spec"]["completions"] == 1
    assert container(job)["command"][1:3] == ["-m", "fake_eval"]
    assert env_of(job)["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "judge-key",
        "key": "OPENAI_API_KEY",
    }
    assert "subdomain" not in job["spec"]["template"]["spec"]


def test_evaluator_pod_is_scraped_on_its_metrics_port() -> None:
    spec = EvalJobSpec.model_validate(
        {
            "model": {"uri": "s3://models/tuned/"},
            "dataset": {"uri": "s3://data/test.jsonl"},
            "output": {"uri": "s3://evals/x/"},
        }
    )
    settings = OperatorSettings()
    job = build_evaluator_job(Owner(kind="EvalJob", name="ev", namespace="a", uid="u"), spec, 0, settings)
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(settings.progress_port)
    assert container(job)["ports"] == [{"name": "metrics", "containerPort": settings.progress_port}]
