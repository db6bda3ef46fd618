"""Behaviour of the API models that the examples do not cover."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kubetune_operator.api import (
    EvalJobSpec,
    FineTuneJobSpec,
    ManifestError,
    parse_manifest,
)

MINIMAL_FTJ = {
    "model": {"uri": "s3://models/base/"},
    "dataset": {"uri": "s3://data/train.jsonl"},
    "output": {"uri": "s3://models/tuned/x/"},
}


def test_defaults_fill_everything_a_local_run_does_not_need() -> None:
    spec = FineTuneJobSpec.model_validate(MINIMAL_FTJ)
    assert spec.method == "lora"
    assert spec.effective_lora().target_modules == ["q_proj", "v_proj"]
    assert spec.resources.nodes == 1
    assert spec.checkpoint.every_steps == 200
    assert spec.run_policy.max_restarts == 3
    assert spec.storage.credentials_secret is None


def test_camel_case_on_the_wire_and_learning_rate_as_string() -> None:
    spec = FineTuneJobSpec.model_validate(
        {**MINIMAL_FTJ, "hyperparameters": {"learningRate": "2e-5", "gradientAccumulationSteps": 4}}
    )
    assert spec.hyperparameters.learning_rate == pytest.approx(2e-5)
    wire = spec.model_dump(by_alias=True, exclude_none=True)
    assert wire["hyperparameters"]["gradientAccumulationSteps"] == 4
    assert "gradient_accumulation_steps" not in wire["hyperparameters"]
    assert FineTuneJobSpec.model_validate(wire) == spec


def test_integer_quantities_are_accepted_like_kubectl_does() -> None:
    spec = FineTuneJobSpec.model_validate({**MINIMAL_FTJ, "resources": {"cpu": 4, "memory": "16Gi"}})
    assert (spec.resources.cpu, spec.resources.memory) == ("4", "16Gi")


def test_unknown_fields_are_errors_not_silently_dropped() -> None:
    with pytest.raises(ManifestError, match=r"spec\.hyperparameters\.learningrate: Extra inputs"):
        parse_manifest(
            {
                "apiVersion": "kubetune.io/v1alpha1",
                "kind": "FineTuneJob",
                "metadata": {"name": "x"},
                "spec": {**MINIMAL_FTJ, "hyperparameters": {"learningrate": "1e-4"}},
            }
        )


def test_wrong_api_version_and_kind_are_named() -> None:
    with pytest.raises(ManifestError, match="apiVersion"):
        parse_manifest({"apiVersion": "v1", "kind": "FineTuneJob", "spec": MINIMAL_FTJ})
    with pytest.raises(ManifestError, match="kind"):
        parse_manifest({"apiVersion": "kubetune.io/v1alpha1", "kind": "TrainJob", "spec": MINIMAL_FTJ})


def test_duplicate_task_names_are_rejected() -> None:
    task = {"name": "a", "templates": [{"prompt": "p {x}", "completion": "c"}]}
    with pytest.raises(ValueError, match="duplicate task names"):
        FineTuneJobSpec.model_validate({**MINIMAL_FTJ, "tasks": [task, task]})


def test_evaljob_bertscore_needs_an_encoder() -> None:
    with pytest.raises(ValueError, match="bertscoreModel"):
        EvalJobSpec.model_validate(
            {
                "model": {"uri": "s3://models/x/"},
                "dataset": {"uri": "s3://data/x.jsonl"},
                "metrics": ["bertscore"],
                "output": {"uri": "s3://evals/x/"},
            }
        )


def test_importing_the_api_pulls_neither_kopf_nor_torch() -> None:
    code = (
        "import sys, kubetune_operator.api, kubetune_operator.api.crd;"
        "bad = [m for m in ('kopf', 'torch', 'kubernetes', 'transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
