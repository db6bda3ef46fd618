"""Where a training step's GPU memory goes, phase by phase: the measurements the memory estimator
(kubetune_operator.api.memory) is calibrated against.

For each setup (method x strategy x activation checkpointing) the model is built with the trainer's own
functions (modeling.py, sharding.py: the same dtypes, LoRA wrapping, FSDP2 policy and compiled layers) and
three optimizer steps run on one packed micro-batch (rows of packed examples of ~300 tokens, every token
supervised), with the trainer's loss (`token_loss_sums`) and fused AdamW. Of the third step it reports,
relative to what is allocated before its forward pass (weights and optimizer state: `resident`), the
tensors still allocated after the forward pass (`activations`), and the peaks of the forward, backward and
optimizer phases (`torch.cuda.max_memory_allocated`, reset between phases). Beside them: the estimator's
figures for the same job.

    python bench/gpu_memory_probe.py --model DIR [--batch-size 4] [--seq-len 2048] [--json out.json]

DIR: a Hugging Face Llama directory (bench/gpu_check.py --work-dir keeps the one it builds). GPU only.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kubetune_operator.api import FineTuneJobSpec, LoraSpec
from kubetune_operator.api.memory import ModelShape, estimate, setup_for
from kubetune_trainer import sharding
from kubetune_trainer.modeling import apply_lora, load_model, load_model_4bit, token_loss_sums

Setup = tuple[str, str, str, bool, bool, str]  # name, method, strategy, checkpointing, compile, attention
SETUPS: list[Setup] = [
    ("full-ddp", "full", "ddp", False, False, "sdpa"),
    ("full-fsdp", "full", "fsdp", False, False, "sdpa"),
    ("full-fsdp-gc", "full", "fsdp", True, False, "sdpa"),
    ("lora-ddp", "lora", "ddp", False, False, "sdpa"),
    ("qlora-ddp", "qlora", "ddp", False, False, "sdpa"),
]
EXTRA: list[Setup] = [  # only when named with --setups
    ("full-ddp-c", "full", "ddp", False, True, "sdpa"),
    ("full-ddp-cf", "full", "ddp", False, True, "flex"),
]
LORA = {"r": 16, "alpha": 32, "targetModules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
GiB = 2**30


def packed_batch(batch: int, seq: int, vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (batch, seq), generator=generator)
    positions = (torch.arange(seq) % 300).expand(batch, seq).contiguous()  # a new example every 300
    return {"input_ids": ids.to(device), "position_ids": positions.to(device), "targets": ids.to(device)}


def build(model_dir: Path, setup: Setup, device: torch.device) -> Any:
    _, method, strategy, checkpointing, compile_layers, attention = setup

    def full() -> Any:
        if method == "qlora":
            model = load_model_4bit(
                model_dir, device=device, gradient_checkpointing=checkpointing, attention=attention
            )
        else:
            model = load_model(
                model_dir, on_gpu=True, gradient_checkpointing=checkpointing, attention=attention
            )
        if method != "full":
            model = apply_lora(model, LoraSpec.model_validate(LORA), checkpointing)
        return model

    if strategy == "fsdp":
        sharding.ensure_process_group(on_gpu=True)
        model = sharding.shard(full().to(device), device=device, bf16=True)
    else:
        model = full().to(device)
    if compile_layers:
        sharding.compile_decoder_layers(model)
    return model


def profile_table(step: Callable[[], None]) -> str:
    """One step under torch.profiler: the kernels that took the most GPU time."""
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as profiler:
        step()
        torch.cuda.synchronize()
    table: str = profiler.key_averages().table(
        sort_by="self_device_time_total", row_limit=25, max_name_column_width=70
    )
    return table


def probe(model_dir: Path, setup: Setup, args: Any) -> dict[str, Any]:
    name, method, strategy, checkpointing, _, attention = setup
    device = torch.device("cuda", 0)
    model = build(model_dir, setup, device)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    batch = packed_batch(args.batch_size, args.seq_len, vocab, device)
    # As the recipe: accelerate autocasts under fsdp too.
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    phases: dict[str, int] = {}
    milliseconds: list[float] = []
    for step in range(3 + args.timed_steps):
        if step >= 3:  # after the memory phases: steps timed end to end (CUDA events)
            start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            start.record()  # type: ignore[no-untyped-call]
            one_step(model, optimizer, batch, autocast)
            end.record()  # type: ignore[no-untyped-call]
            torch.cuda.synchronize()
            milliseconds.append(start.elapsed_time(end))  # type: ignore[no-untyped-call]
            continue
        torch.cuda.synchronize()
        resident = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        with autocast:
            logits = model(
                input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
            ).logits
        loss, _ = token_loss_sums(logits, batch["targets"])
        del logits
        after_forward = torch.cuda.memory_allocated()
        forward_peak = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        (loss / batch["targets"].numel()).backward()  # type: ignore[no-untyped-call]
        backward_peak = torch.cuda.max_memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step_peak = torch.cuda.max_memory_allocated()
        phases = {
            "resident": resident,
            "activations": after_forward - resident,
            "forwardPeak": forward_peak - resident,
            "backwardPeak": backward_peak - resident,
            "stepPeak": step_peak - resident,
            "peak": max(forward_peak, backward_peak, step_peak),
        }
    if args.profile:
        print(f"{name}: one step profiled", flush=True)
        print(profile_table(functools.partial(one_step, model, optimizer, batch, autocast)), flush=True)
    spec = FineTuneJobSpec.model_validate(
        {
            "model": {"uri": str(model_dir)},
            "dataset": {"uri": "/data.jsonl"},
            "method": method,
            "distributed": {"strategy": strategy},
            "hyperparameters": {
                "batchSize": args.batch_size,
                "maxSeqLength": args.seq_len,
                "packing": True,
                "gradientCheckpointing": checkpointing,
                "attention": attention,
            },
            "resources": {"gpusPerNode": 1},
            "output": {"uri": "/out"},
            **({"lora": LORA} if method != "full" else {}),
        }
    )
    shape = ModelShape.from_config(json.loads((model_dir / "config.json").read_text()))
    est = estimate(shape, setup_for(spec, "gpu", strategy))  # type: ignore[arg-type]
    del model, optimizer, batch
    gc.collect()
    torch.cuda.empty_cache()
    timed = {"stepMilliseconds": sorted(milliseconds)[len(milliseconds) // 2]} if milliseconds else {}
    return {
        "run": name,
        **phases,
        **timed,
        "estimate": est.as_dict(),
        "estimatedTensorBytes": est.tensor_bytes,
    }


def one_step(model: Any, optimizer: Any, batch: dict[str, torch.Tensor], autocast: Any) -> None:
    with autocast:
        logits = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
    loss, _ = token_loss_sums(logits, batch["targets"])
    (loss / batch["targets"].numel()).backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--setups", nargs="+", choices=[s[0] for s in SETUPS + EXTRA], help="default: SETUPS")
    parser.add_argument("--timed-steps", type=int, default=0, help="then time N steps (median ms)")
    parser.add_argument("--profile", action="store_true", help="then profile one step of each setup")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("GPU only", file=sys.stderr)
        return 2
    rows = []
    print(f"{'run':<13} {'resident':>9} {'activ.':>8} {'fwd pk':>8} {'bwd pk':>8} {'step pk':>8} {'peak':>8} "
          f"{'est.':>8} {'est. act.':>9}  GiB", flush=True)  # fmt: skip
    chosen = [s for s in SETUPS + EXTRA if s[0] in args.setups] if args.setups else SETUPS
    for setup in chosen:
        name = setup[0]
        try:
            row = probe(args.model, setup, args)
        except Exception as error:  # a diagnostic: one setup's failure must not hide the others' figures
            print(f"{name:<13} failed: {type(error).__name__}: {error}", flush=True)
            continue
        rows.append(row)
        phases = ("resident", "activations", "forwardPeak", "backwardPeak", "stepPeak", "peak")
        g = {k: row[k] / GiB for k in phases}
        print(f"{name:<13} {g['resident']:>9.2f} {g['activations']:>8.2f} {g['forwardPeak']:>8.2f} "
              f"{g['backwardPeak']:>8.2f} {g['stepPeak']:>8.2f} {g['peak']:>8.2f} "
              f"{row['estimatedTensorBytes'] / GiB:>8.2f} {row['estimate']['activations'] / GiB:>9.2f}"
              + (f"  step {row['stepMilliseconds']:.1f} ms" if "stepMilliseconds" in row else ""),
              flush=True)  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
