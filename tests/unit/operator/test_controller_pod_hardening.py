"""Workload pods are hardened by default: no API token, read-only root, writable scratch only where needed."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune_operator.api import EvalJobSpec, FineTuneJobSpec
from kubetune_operator.controller.builders import Owner, build_evaluator_job, build_worker_job
from kubetune_operator.controller.settings import OperatorSettings

SETTINGS = OperatorSettings()


def _worker(resources: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = FineTuneJobSpec.model_validate(
        {
            "model": {"uri": "s3://models/base/"},
            "dataset": {"uri": "s3://data/reviews.jsonl"},
            "output": {"uri": "s3://models/tuned/x/"},
            "podTemplate": {"serviceAccountName": "someone-elses"},
            "resources": resources or {},
        }
    )
    return build_worker_job(Owner("FineTuneJob", "ft", "team-a", "u1"), spec, 0, SETTINGS)


def _evaluator(api_key_secret: str | None = "judge-key") -> dict[str, Any]:
    judge: dict[str, Any] = {"endpoint": "http://judge:8000/v1", "model": "m"}
    if api_key_secret:
        judge["apiKeySecret"] = api_key_secret
    spec = EvalJobSpec.model_validate(
        {
            "model": {"uri": "s3://models/tuned/"},
            "dataset": {"uri": "s3://data/test.jsonl"},
            "metrics": ["rouge", "judge"],
            "judge": judge,
            "output": {"uri": "s3://evals/x/"},
        }
    )
    return build_evaluator_job(Owner("EvalJob", "ev", "team-a", "u2"), spec, 0, SETTINGS)


@pytest.mark.parametrize("build", [_worker, _evaluator], ids=["trainer", "evaluator"])
def test_pod_has_no_token_a_read_only_root_and_scratch_volumes(build: Any) -> None:
    pod = build()["spec"]["template"]["spec"]
    main = pod["containers"][0]
    assert pod["automountServiceAccountToken"] is False
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert mounts["/tmp"] == "scratch" and "emptyDir" in volumes["scratch"]
    assert mounts["/dev/shm"] == "dshm" and volumes["dshm"]["emptyDir"] == {"medium": "Memory"}
    assert all(name in volumes for name in mounts.values())
    env = {e["name"]: e.get("value") for e in main["env"]}
    # Every cache the libraries keep under ~ or $XDG_CACHE_HOME lands on the scratch volume.
    assert env["HOME"] == "/tmp" and env["TMPDIR"] == "/tmp" and env["XDG_CACHE_HOME"].startswith("/tmp/")
    # Unsized unless resources.scratch says: no ephemeral-storage request the user did not ask for.
    assert volumes["scratch"]["emptyDir"] == {}
    assert "ephemeral-storage" not in main.get("resources", {}).get("requests", {})


def test_resources_scratch_sizes_the_scratch_volume_and_requests_that_much_disk() -> None:
    pod = _worker({"scratch": "200Gi", "memory": "64Gi"})["spec"]["template"]["spec"]
    scratch = next(v for v in pod["volumes"] if v["name"] == "scratch")
    assert scratch["emptyDir"] == {"sizeLimit": "200Gi"}
    resources = pod["containers"][0]["resources"]
    assert resources["requests"]["ephemeral-storage"] == resources["limits"]["ephemeral-storage"] == "200Gi"
    assert resources["requests"]["memory"] == "64Gi"


def test_a_negative_scratch_size_is_refused() -> None:
    with pytest.raises(ValueError, match="scratch"):
        _worker({"scratch": "-1Gi"})


def test_judge_key_and_its_bound_endpoint_come_from_the_same_secret() -> None:
    env = {e["name"]: e for e in _evaluator()["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "judge-key",
        "key": "OPENAI_API_KEY",
    }
    assert env["KUBETUNE_JUDGE_KEY_ENDPOINT"]["valueFrom"]["secretKeyRef"] == {
        "name": "judge-key",
        "key": "endpoint",
        "optional": True,
    }
    without = {e["name"] for e in _evaluator(None)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "OPENAI_API_KEY" not in without and "KUBETUNE_JUDGE_KEY_ENDPOINT" not in without
