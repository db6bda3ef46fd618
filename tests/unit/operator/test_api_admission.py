"""The models refuse what the operator's children could not carry (the CRDs' CEL says the same; the
examples in examples/invalid/ are applied to the real API server by tests/e2e/test_stack_crds.py)."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune_operator.api import ManifestError, parse_manifest
from kubetune_operator.api.naming import MAX_NODES, MAX_RESTARTS, max_name_length
from kubetune_operator.controller.names import KIND_EVAL, KIND_FINETUNE, child_job_name, config_map_name


def finetunejob(name: str = "review-rating", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": "s3://models/base/"},
            "dataset": {"uri": "s3://data/reviews.jsonl"},
            "output": {"uri": "s3://models/tuned/"},
            **spec,
        },
    }


def evaljob(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": "s3://models/tuned/"},
            "dataset": {"uri": "s3://data/reviews.jsonl"},
            "output": {"uri": "s3://evals/x/"},
        },
    }


@pytest.mark.parametrize(("kind", "last_index"), [(KIND_FINETUNE, MAX_NODES - 1), (KIND_EVAL, 0)])
def test_the_longest_name_gives_a_63_character_hostname_to_the_last_pod(kind: str, last_index: int) -> None:
    name = "a" * max_name_length(kind)
    # An Indexed Job's pods are named `<job>-<index>`: the API server refuses the Job past 63 characters.
    hostname = f"{child_job_name(name, MAX_RESTARTS, kind)}-{last_index}"
    assert len(hostname) == 63
    assert len(config_map_name(name, kind)) <= 63
    make = finetunejob if kind == KIND_FINETUNE else evaljob
    parse_manifest(make(name))
    with pytest.raises(ManifestError, match=r"metadata\.name: must be at most"):
        parse_manifest(make(name + "a"))


def test_limits_are_54_and_52() -> None:
    assert (max_name_length(KIND_FINETUNE), max_name_length(KIND_EVAL)) == (54, 52)


@pytest.mark.parametrize("name", ["review.rating", "7b-tune", "Review", "tune-"])
def test_finetunejob_name_must_be_a_dns_1035_label(name: str) -> None:
    with pytest.raises(ManifestError, match=r"metadata\.name: .* must consist of"):
        parse_manifest(finetunejob(name))


def test_evaljob_name_may_start_with_a_digit_but_holds_no_dot() -> None:
    parse_manifest(evaljob("7b-eval"))
    with pytest.raises(ManifestError, match=r"metadata\.name"):
        parse_manifest(evaljob("review.eval"))


@pytest.mark.parametrize("key", ["team", "app.kubernetes.io/name", "example.com/a_b.c-d", "A" * 63])
def test_label_and_annotation_keys_kubernetes_accepts_pass(key: str) -> None:
    pod = {"labels": {key: "v"}, "annotations": {key: "any text at all"}, "nodeSelector": {key: "v"}}
    parse_manifest(finetunejob(podTemplate=pod))


@pytest.mark.parametrize("field", ["labels", "annotations", "nodeSelector"])
@pytest.mark.parametrize("key", ["a b", "", "-team", "a/b/c", "Example.com/team", "/team", "a" * 64])
def test_label_and_annotation_keys_kubernetes_refuses_are_rejected(field: str, key: str) -> None:
    with pytest.raises(ManifestError, match=rf"spec\.podTemplate\.{field}"):
        parse_manifest(finetunejob(podTemplate={field: {key: "v"}}))


@pytest.mark.parametrize("value", ["a b", "-x", "x" * 64, "ü"])
def test_label_values_kubernetes_refuses_are_rejected(value: str) -> None:
    with pytest.raises(ManifestError, match=r"spec\.podTemplate\.labels\.team"):
        parse_manifest(finetunejob(podTemplate={"labels": {"team": value}}))
    parse_manifest(finetunejob(podTemplate={"labels": {"team": ""}, "annotations": {"team": value}}))


@pytest.mark.parametrize("field", ["cpu", "memory"])
@pytest.mark.parametrize("value", ["-1Gi", -1, "-500m", "-0.5"])
def test_negative_quantities_are_rejected(field: str, value: str | int) -> None:
    with pytest.raises(ManifestError, match=rf"spec\.resources\.{field}: .* non-negative"):
        parse_manifest(finetunejob(resources={field: value}))


@pytest.mark.parametrize("value", ["0", 4, "500m", "+2", "128Gi", "1e3"])
def test_non_negative_quantities_pass(value: str | int) -> None:
    parse_manifest(finetunejob(resources={"cpu": value, "memory": value}))


@pytest.mark.parametrize(
    "resource", ["cpu", "memory", "nvidia.com", "kubernetes.io/gpu", "x.kubernetes.io/gpu"]
)
def test_gpu_resource_must_be_an_extended_resource(resource: str) -> None:
    with pytest.raises(ManifestError, match=r"spec\.resources\.gpuResource"):
        parse_manifest(finetunejob(resources={"gpusPerNode": 1, "gpuResource": resource}))


@pytest.mark.parametrize("resource", ["nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915"])
def test_gpu_resources_of_device_plugins_pass(resource: str) -> None:
    parse_manifest(finetunejob(resources={"gpusPerNode": 1, "gpuResource": resource}))
