"""Batched generation: left padding, KV cache, greedy or sampled, stop at EOS.

Prompts are generated longest-first so each batch holds prompts of similar length (less padding),
then predictions are put back in the caller's order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def prepare_tokenizer_for_generation(tokenizer: Any) -> None:
    """Decoder-only models must be left-padded so every prompt ends right where generation starts."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


@torch.inference_mode()
def generate_predictions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    batch_size: int = 16,
    seed: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """One completion per prompt (new tokens only, special tokens dropped)."""
    prepare_tokenizer_for_generation(tokenizer)
    torch.manual_seed(seed)
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        if temperature > 0
        else {"do_sample": False}
    )
    predictions: dict[int, str] = {}
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True).to(model.device)
        output = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            use_cache=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
        )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        for index, text in zip(
            batch, tokenizer.batch_decode(new_tokens, skip_special_tokens=True), strict=True
        ):
            predictions[index] = text
        if on_batch is not None:
            on_batch(len(batch))
    return [predictions[i] for i in range(len(prompts))]
