"""Training throughput of the kubetune trainer vs TRL's SFTTrainer, in one run on the same machine.

Same tiny Llama, same prompt/completion data (20-400 tokens per example), same batch size, max length,
learning rate and epochs, completion-only loss, fp32, gradient checkpointing off on both (TRL 1.x defaults to
gradient checkpointing and bf16: both turned off here). Throughput = non-padding tokens trained per second of
the training loop; the padding ratio is measured on the batches each trainer really built.

    .venv/bin/python bench/trainer_throughput.py [--examples 400] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from trl_comparison import kubetune_spec


def make_rows(n: int, seed: int, min_tokens: int = 20, max_tokens: int = 400) -> list[dict[str, str]]:
    """Prompt/completion rows whose total token length is uniform in [min_tokens, max_tokens]."""
    rng = random.Random(seed)
    letters = "abcdefgh"
    rows = []
    for _ in range(n):
        target = rng.randint(min_tokens, max_tokens)
        # One token per spaced letter with the tiny tokenizer; the split point varies the prompt share.
        words = [rng.choice(letters) for _ in range(target - 3)]
        cut = rng.randint(1, max(1, len(words) // 2))
        rows.append(
            {"prompt": "Continue: " + " ".join(words[:cut]), "completion": " " + " ".join(words[cut:])}
        )
    return rows


def run_kubetune(
    model_dir: Path, data: Path, out: Path, args: argparse.Namespace, packing: bool
) -> dict[str, Any]:
    from kubetune_devtools.tiny_models import write_finetune_job
    from kubetune_trainer.entrypoint import run_job

    spec = kubetune_spec(
        model_dir, data, out, epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length,
        packing=packing,
    )  # fmt: skip
    result = run_job(write_finetune_job(out.parent / f"{out.name}.yaml", out.name, spec))
    assert result is not None
    m = result["metrics"]
    return {
        "tokensPerSecond": m["tokensPerSecond"],
        "paddingRatio": m["paddingRatio"],
        "tokens": m["tokens"],
        "seconds": m["trainSeconds"],
        "steps": m["steps"],
        "finalLoss": m["trainLoss"],
    }


def run_trl(
    model_dir: Path, rows: list[dict[str, str]], out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = SFTConfig(
        output_dir=str(out),
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=1e-4,
        lr_scheduler_type="linear",
        max_length=args.max_length,
        completion_only_loss=True,
        packing=False,
        gradient_checkpointing=False,
        bf16=False,
        fp16=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=1000000,
        seed=1,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    seen = {"real": 0, "positions": 0}
    collator = trainer.data_collator

    def counting_collator(features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collator(features)
        mask = batch.get("attention_mask")
        real = int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        seen["real"] += real
        seen["positions"] += int(batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting_collator
    # The dataloader is built inside train(): the wrapped collator is the one it uses.
    start = time.monotonic()
    output = trainer.train()
    seconds = time.monotonic() - start
    return {
        "tokensPerSecond": round(seen["real"] / output.metrics["train_runtime"], 1),
        "paddingRatio": round(1 - seen["real"] / seen["positions"], 4),
        "tokens": seen["real"],
        "seconds": round(output.metrics["train_runtime"], 3),
        "wallSeconds": round(seconds, 3),
        "steps": output.global_step,
        "finalLoss": output.training_loss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("KUBETUNE_METRICS_PORT", "off")
    import torch

    torch.set_num_threads(args.threads)
    from kubetune_devtools.tiny_models import build_tiny_model, write_rows
    from kubetune_trainer.modeling import load_tokenizer

    with tempfile.TemporaryDirectory(prefix="kubetune-bench-") as tmp:
        root = Path(tmp)
        model_dir = build_tiny_model(root / "model", hidden_size=args.hidden_size, layers=args.layers)
        rows = make_rows(args.examples, seed=0)
        tokenizer = load_tokenizer(model_dir)
        lengths = [len(tokenizer(r["prompt"] + r["completion"])["input_ids"]) + 1 for r in rows]
        data = write_rows(root / "data.jsonl", rows)
        results = {
            "trl_sft": run_trl(model_dir, rows, root / "trl", args),
            "kubetune_padded": run_kubetune(model_dir, data, root / "kt-padded", args, packing=False),
            "kubetune_packed": run_kubetune(model_dir, data, root / "kt-packed", args, packing=True),
        }
    import transformers
    import trl

    base = results["trl_sft"]["tokensPerSecond"]
    summary = {
        "setup": {
            **vars(args),
            "json": None,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "cpu_count": os.cpu_count(),
        },
        "results": results,
        "example_tokens": {
            "min": min(lengths),
            "max": max(lengths),
            "mean": round(sum(lengths) / len(lengths), 1),
        },
        "speedup_vs_trl": {k: round(v["tokensPerSecond"] / base, 2) for k, v in results.items()},
    }
    print(f"{'trainer':<18}{'tokens/s':>10}{'padding':>10}{'seconds':>10}{'vs TRL':>8}")
    for name, r in results.items():
        print(
            f"{name:<18}{r['tokensPerSecond']:>10.0f}{r['paddingRatio']:>10.1%}{r['seconds']:>10.1f}"
            f"{summary['speedup_vs_trl'][name]:>7.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
