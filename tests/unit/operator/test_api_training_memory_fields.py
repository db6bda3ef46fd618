"""spec.distributed.strategy, method: qlora and resources.gpuMemory (issue 18): defaults and admission."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune_operator.api import FineTuneJob, ManifestError, parse_manifest


def finetunejob(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "tune"},
        "spec": {
            "model": {"uri": "s3://models/base/"},
            "dataset": {"uri": "s3://data/reviews.jsonl"},
            "output": {"uri": "s3://models/tuned/"},
            **spec,
        },
    }


def parse(**spec: Any) -> FineTuneJob:
    manifest = parse_manifest(finetunejob(**spec))
    assert isinstance(manifest, FineTuneJob)
    return manifest


def test_defaults_are_auto_strategy_and_no_gpu_memory() -> None:
    spec = parse().spec
    assert spec.distributed.strategy == "auto"
    assert spec.resources.gpu_memory is None


@pytest.mark.parametrize("strategy", ["auto", "ddp", "fsdp"])
def test_each_strategy_is_accepted(strategy: str) -> None:
    assert parse(distributed={"strategy": strategy}).spec.distributed.strategy == strategy


def test_unknown_strategy_is_rejected_with_its_path() -> None:
    with pytest.raises(ManifestError, match=r"spec\.distributed\.strategy"):
        parse(distributed={"strategy": "deepspeed"})


def test_qlora_with_gpus_takes_lora_settings() -> None:
    spec = parse(method="qlora", lora={"r": 8}, resources={"gpusPerNode": 1}).spec
    assert spec.method == "qlora"
    assert spec.effective_lora().r == 8


def test_qlora_without_gpus_is_rejected_naming_method_and_gpus() -> None:
    with pytest.raises(ManifestError, match=r"spec\.method: qlora needs GPUs.*gpusPerNode"):
        parse(method="qlora")


def test_lora_settings_stay_refused_with_full() -> None:
    with pytest.raises(ManifestError, match=r"spec\.lora: only allowed with method: lora or qlora"):
        parse(method="full", lora={"r": 8})


@pytest.mark.parametrize(("written", "kept"), [("80Gi", "80Gi"), (24000000000, "24000000000")])
def test_gpu_memory_is_a_quantity(written: Any, kept: str) -> None:
    assert parse(resources={"gpuMemory": written}).spec.resources.gpu_memory == kept


def test_gpu_memory_is_not_a_unit_kubernetes_does_not_know() -> None:
    with pytest.raises(ManifestError, match=r"spec\.resources\.gpuMemory"):
        parse(resources={"gpuMemory": "80GB"})


def test_evaljob_resources_have_no_gpu_memory() -> None:
    # The preflight is the trainer's: an EvalJob does not take a field it would ignore.
    document = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "EvalJob",
        "metadata": {"name": "ev"},
        "spec": {
            "model": {"uri": "s3://models/tuned/"},
            "dataset": {"uri": "s3://data/reviews.jsonl"},
            "output": {"uri": "s3://evals/x/"},
            "resources": {"gpuMemory": "80Gi"},
        },
    }
    with pytest.raises(ManifestError, match=r"spec\.resources\.gpuMemory"):
        parse_manifest(document)
