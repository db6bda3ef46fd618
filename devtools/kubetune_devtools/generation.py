"""Greedy generation of completions for held-out prompts (a quick exact-match check after training)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer


def load_for_inference(output_dir: Path, base_dir: Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from an export: a full model, or a LoRA adapter on top of `base_dir`."""
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    if (output_dir / "adapter_config.json").exists():
        if base_dir is None:
            raise ValueError("a LoRA adapter needs its base model directory")
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        model: Any = PeftModel.from_pretrained(base, output_dir)
    else:
        model = AutoModelForCausalLM.from_pretrained(output_dir, dtype=torch.float32)
    return model.eval(), tokenizer


@torch.no_grad()
def greedy_completions(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 32, batch_size: int = 32
) -> list[str]:
    """Decoded greedy continuations (left-padded batches, stopping at EOS)."""
    tokenizer.padding_side = "left"
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True)
        generated = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = generated[:, batch["input_ids"].shape[1] :]
        outputs.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    return outputs


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference after stripping surrounding whitespace."""
    if not references:
        return 0.0
    return sum(p.strip() == r.strip() for p, r in zip(predictions, references, strict=True)) / len(references)
