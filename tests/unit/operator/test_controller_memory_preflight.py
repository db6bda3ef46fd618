"""The operator's memory preflight decision (controller/memory_preflight.py): when it checks, what it says.
The S3 read itself is tested against MinIO in tests/e2e/test_memory_preflight.py."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune_devtools.tiny_models import LLAMA_7B_CONFIG as LLAMA_7B
from kubetune_operator.api import FineTuneJob, parse_manifest
from kubetune_operator.controller import reasons
from kubetune_operator.controller.memory_preflight import ConfigUnavailableError, memory_preflight

ENDPOINT = "http://minio.storage:9000"


def spec(**fields: Any) -> Any:
    job = parse_manifest(
        {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "seven-b"},
            "spec": {
                "model": {"uri": "s3://models/llama-7b/"},
                "dataset": {"uri": "s3://data/x.jsonl"},
                "output": {"uri": "s3://models/out/"},
                "storage": {"endpoint": ENDPOINT},
                "method": "full",
                "distributed": {"strategy": "ddp"},
                "resources": {"gpusPerNode": 1, "gpuMemory": "80Gi"},
                **fields,
            },
        }
    )
    assert isinstance(job, FineTuneJob)
    return job.spec


def reader(config: dict[str, Any]) -> Any:
    calls: list[tuple[str, str | None, str]] = []

    def read(uri: str, endpoint: str | None, region: str) -> dict[str, Any]:
        calls.append((uri, endpoint, region))
        return config

    read.calls = calls  # type: ignore[attr-defined]
    return read


def test_a_7b_full_ddp_job_on_80gb_fails_insufficient_memory_naming_what_fits() -> None:
    read = reader(LLAMA_7B)
    refused = memory_preflight(spec(), ENDPOINT, "team-a/seven-b", read)
    assert refused is not None
    assert (refused.phase, refused.reason) == ("Failed", reasons.INSUFFICIENT_MEMORY)
    assert "exceeds the 80.0 GiB of spec.resources.gpuMemory (80Gi)" in refused.message
    assert "would fit: method: lora and hyperparameters.gradientCheckpointing: true; method: qlora" in (
        refused.message
    )
    assert "resources.nodes: 2 with distributed.strategy: fsdp" in refused.message
    assert refused.message.endswith("no pods were created")
    assert read.calls == [("s3://models/llama-7b/", ENDPOINT, "us-east-1")]


def test_a_job_that_fits_passes() -> None:
    # LoRA on a 7B model keeps the frozen base in fp32: 8 x 1024 tokens would not fit 80 GB, 4 x 1024 do.
    lora = spec(method="lora", hyperparameters={"batchSize": 4})
    assert memory_preflight(lora, ENDPOINT, "team-a/seven-b", reader(LLAMA_7B)) is None


def test_auto_strategy_passes_when_sharding_over_more_nodes_fits() -> None:
    resources = {"nodes": 2, "gpusPerNode": 1, "gpuMemory": "80Gi"}
    hyperparameters = {"batchSize": 1, "maxSeqLength": 1024}
    sharded = spec(distributed={"strategy": "auto"}, resources=resources, hyperparameters=hyperparameters)
    assert memory_preflight(sharded, ENDPOINT, "team-a/seven-b", reader(LLAMA_7B)) is None
    replicated = spec(distributed={"strategy": "ddp"}, resources=resources, hyperparameters=hyperparameters)
    assert memory_preflight(replicated, ENDPOINT, "team-a/seven-b", reader(LLAMA_7B)) is not None


@pytest.mark.parametrize(
    ("fields", "setting"),
    [
        ({"resources": {"gpusPerNode": 1}}, ENDPOINT),  # no gpuMemory: nothing to check against
        ({"resources": {"gpusPerNode": 0, "gpuMemory": "80Gi"}}, ENDPOINT),  # no GPUs
        ({}, None),  # the platform gave the operator no endpoint
        ({}, "http://other:9000"),  # the job's endpoint is not the operator's: never read it
        ({"storage": {}}, ENDPOINT),  # AWS S3, but the setting names another endpoint
    ],
)
def test_skipped_without_reading_anything(fields: dict[str, Any], setting: str | None) -> None:
    read = reader(LLAMA_7B)
    assert memory_preflight(spec(**fields), setting, "team-a/seven-b", read) is None
    assert read.calls == []


def test_aws_setting_checks_jobs_without_an_endpoint() -> None:
    read = reader(LLAMA_7B)
    refused = memory_preflight(spec(storage={}), "aws", "team-a/seven-b", read)
    assert refused is not None and read.calls == [("s3://models/llama-7b/", None, "us-east-1")]


def test_unreadable_or_unknown_configs_skip_instead_of_refusing() -> None:
    def unreadable(uri: str, endpoint: str | None, region: str) -> dict[str, Any]:
        raise ConfigUnavailableError("s3://models/llama-7b/config.json: NoSuchKey")

    assert memory_preflight(spec(), ENDPOINT, "team-a/seven-b", unreadable) is None
    gpt2 = reader({"model_type": "gpt2", "n_embd": 768})
    assert memory_preflight(spec(), ENDPOINT, "team-a/seven-b", gpt2) is None
