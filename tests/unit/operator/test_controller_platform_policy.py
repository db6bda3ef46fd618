"""The platform policy check (controller/policies/platform.py): pure, no cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from kubetune_operator.api.common import JobStatus, PodTemplate
from kubetune_operator.cli import app
from kubetune_operator.controller.conditions import set_condition
from kubetune_operator.controller.policies.platform import (
    PlatformPolicy,
    image_allowed,
    policy_failure,
    policy_violation,
)

CHART_DEFAULT = PlatformPolicy.from_json(
    '{"allowedImageRepositories": ["kubetune/trainer", "kubetune/evaluator"],'
    ' "allowedServiceAccounts": ["", "kubetune-workload"], "allowedPriorityClasses": [""],'
    ' "allowedAnnotationKeys": ["example.com/"], "maxGpusPerJob": 16}'
)


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("kubetune/trainer", True),
        ("kubetune/trainer:0.1.0", True),
        ("kubetune/trainer@sha256:" + "a" * 64, True),
        ("registry.example.com/ml/anything:1", True),
        ("kubetune/trainer-evil:1", False),
        ("kubetune/trainerx", False),
        ("kubetune/trainer:x/../evil", False),
        ("evil.io/kubetune/trainer:1", False),
        ("docker.io/kubetune/trainer:1", False),
        ("registry.example.com/mlx/a:1", False),
    ],
)
def test_image_allowed_by_repository_or_prefix(image: str, allowed: bool) -> None:
    assert image_allowed(image, ("kubetune/trainer", "registry.example.com/ml/")) is allowed


def _violation(
    image: str = "kubetune/trainer:0.1.0", pods: int = 1, gpus: int = 0, **template: Any
) -> str | None:
    return policy_violation(
        CHART_DEFAULT, image, PodTemplate.model_validate(template), pods=pods, gpus_per_pod=gpus
    )


def test_the_defaults_pass() -> None:
    assert _violation() is None
    assert _violation(serviceAccountName="kubetune-workload", annotations={"example.com/team": "a"}) is None
    assert _violation(pods=2, gpus=8) is None


def test_each_rule_names_the_field_the_value_and_the_allowed_values() -> None:
    assert _violation(image="evil/miner:1") == (
        'spec.image "evil/miner:1" is not from an allowed repository '
        '(allowed: "kubetune/trainer", "kubetune/evaluator")'
    )
    assert _violation(serviceAccountName="admin") == (
        'spec.podTemplate.serviceAccountName "admin" is not allowed (allowed: "", "kubetune-workload")'
    )
    assert _violation(priorityClassName="system-node-critical") == (
        'spec.podTemplate.priorityClassName "system-node-critical" is not allowed (allowed: "")'
    )
    message = _violation(annotations={"example.com/ok": "1", "sidecar.istio.io/inject": "false"})
    assert message == (
        'spec.podTemplate.annotations key "sidecar.istio.io/inject" is not allowed (allowed: "example.com/")'
    )
    message = _violation(pods=4, gpus=8)
    assert message is not None and "spec.resources" in message and "32 GPUs" in message and "16" in message


def test_no_policy_allows_everything_and_an_empty_list_allows_nothing() -> None:
    template = PodTemplate.model_validate({"serviceAccountName": "admin", "priorityClassName": "high"})
    assert (
        policy_violation(PlatformPolicy.from_json(""), "any/image", template, pods=64, gpus_per_pod=64)
        is None
    )
    nothing = PlatformPolicy.from_json('{"allowedPriorityClasses": []}')
    assert policy_violation(nothing, "x", PodTemplate(), pods=1, gpus_per_pod=0) == (
        'spec.podTemplate.priorityClassName "" is not allowed (allowed: none)'
    )


def test_a_misspelt_policy_key_is_refused_not_ignored() -> None:
    with pytest.raises(ValidationError):
        PlatformPolicy.from_json('{"allowedImages": ["kubetune/trainer"]}')


def test_failure_only_before_children_exist() -> None:
    bad = PodTemplate.model_validate({"serviceAccountName": "admin"})
    failed = policy_failure(CHART_DEFAULT, JobStatus(), "kubetune/trainer:1", bad, pods=1, gpus_per_pod=0)
    assert failed is not None and (failed.phase, failed.reason) == ("Failed", "PolicyViolation")
    # A job already running under the policy it was admitted with is not failed by a tightened one.
    now = datetime.now(UTC).isoformat()
    created = JobStatus(
        conditions=set_condition(
            [], "Created", True, reason="ChildrenCreated", message="", now=now, generation=1
        )
    )
    assert policy_failure(CHART_DEFAULT, created, "kubetune/trainer:1", bad, pods=1, gpus_per_pod=0) is None


def test_the_operator_refuses_to_start_with_a_policy_it_cannot_read() -> None:
    result = CliRunner().invoke(app, ["operator", "--policy", '{"allowedImage": ["kubetune/trainer"]}'])
    assert result.exit_code == 2
    assert "--policy" in result.output and "allowedImage" in result.output
