"""The evaluator against the local stack's real MinIO: LoRA adapter, base model, data and outputs on S3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from kubetune_devtools.tiny_models import build_tiny_model, reverse_task_rows, write_rows
from kubetune_evaluator.entrypoint import evaluate_manifest
from kubetune_operator.data.storage import read_text, upload_dir

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BUCKET = "evaluator-e2e"


def _lora_adapter(base: Path, target: Path) -> Path:
    """A LoRA adapter with random (non-zero) B matrices, so the merged model really differs from its base."""
    # deferred: torch, peft and transformers cost seconds to import; collecting other tests skips them
    import torch  # noqa: PLC0415
    from peft import LoraConfig, get_peft_model  # noqa: PLC0415
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
    model.save_pretrained(target)
    return target


def test_eval_of_a_lora_adapter_from_and_to_s3(s3_prefix: str, tmp_path: Path, s3: S3Client) -> None:
    # deferred: torch cost seconds to import; collecting other tests skips them
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    base = build_tiny_model(tmp_path / "base")
    upload_dir(base, f"{s3_prefix}/base/")
    upload_dir(_lora_adapter(base, tmp_path / "adapter"), f"{s3_prefix}/adapter/")
    upload_dir(
        write_rows(tmp_path / "data" / "rows.jsonl", reverse_task_rows(40)).parent, f"{s3_prefix}/data/"
    )
    manifest = tmp_path / "eval.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubetune.io/v1alpha1",
                "kind": "EvalJob",
                "metadata": {"name": "adapter-eval"},
                "spec": {
                    "model": {"uri": f"{s3_prefix}/adapter/"},
                    "baseline": {"uri": f"{s3_prefix}/base/"},
                    "dataset": {"uri": f"{s3_prefix}/data/", "split": "test"},
                    "tasks": [
                        {
                            "name": "reverse",
                            "templates": [
                                {"prompt": "Reverse: {word}\nAnswer:", "completion": " {reversed}"}
                            ],
                        }
                    ],
                    "metrics": ["rouge", "bleu"],
                    "generation": {"maxNewTokens": 6, "batchSize": 4},
                    "output": {"uri": f"{s3_prefix}/eval/"},
                },
            }
        )
    )
    run = evaluate_manifest(manifest, termination_log=None)

    assert run.uris["report.html"] == f"{s3_prefix}/eval/report.html"
    results = json.loads(read_text(f"{s3_prefix}/eval/results.json"))
    assert results["model"]["adapter"] is True and results["baseline"]["adapter"] is False
    assert results["model"]["digest"] != results["baseline"]["digest"]
    assert results["tasks"]["reverse"]["samples"] == 4  # 10% of 40 rows, recomputed split
    samples = read_text(f"{s3_prefix}/eval/samples.jsonl").splitlines()
    assert len(samples) == 4
    # The merged adapter is a different model: its greedy predictions differ from the base's somewhere.
    records = [json.loads(line) for line in samples]
    assert any(r["prediction"] != r["baselinePrediction"] for r in records)
    assert "<svg" in read_text(f"{s3_prefix}/eval/report.html")
