"""Batched generation as lm-evaluation-harness's `hf` model does `generate_until`.

Left padding, KV cache, greedy or sampled, at most `max_new_tokens`; a row stops at EOS or at the first
of its stop sequences (`until`) and its text is cut before that sequence. Prompts run longest first
(ties by text: lm-eval's order, so a batch holds the same prompts as lm-eval's) and come back in the
caller's order. A prompt longer than the model's context minus `max_new_tokens` keeps its last tokens.
Sampling is seeded per batch (seed + batch number), so a sharded EvalJob samples what one pod samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from kubetune_evaluator.loglikelihood import resolve_max_length
from kubetune_evaluator.shard import WHOLE, Shard


def prepare_tokenizer_for_generation(tokenizer: Any) -> None:
    """Decoder-only models must be left-padded so every prompt ends right where generation starts."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """The text before the first occurrence of any stop sequence (lm-eval's postprocess_generated_text)."""
    for stop in until:
        if stop:
            text = text.split(stop, maxsplit=1)[0]
    return text


class StopSequences(StoppingCriteria):
    """Marks a row done once its generated text (special tokens dropped) holds a stop sequence.

    Only the new tokens are searched, never the prompt: a prompt ending in "\\n" must not make a first
    generated "\\n" match a "\\n\\n" stop (lm-eval's MultiTokenEOSCriteria also looks at new tokens only).
    """

    def __init__(self, tokenizer: Any, until: Sequence[str], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.until = [stop for stop in until if stop]
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **_: Any) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width :], skip_special_tokens=True)
        done = [any(stop in text for stop in self.until) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


def generate_predictions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    batch_size: int = 16,
    seed: int = 0,
    until: Sequence[str] = (),
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """One completion per prompt (new tokens only, special tokens dropped, cut at the first stop)."""
    owned = owned_generations(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        batch_size=batch_size,
        seed=seed,
        until=until,
        on_batch=on_batch,
    )
    return [owned[i] for i in range(len(prompts))]


@torch.inference_mode()
def owned_generations(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    batch_size: int = 16,
    seed: int = 0,
    until: Sequence[str] = (),
    on_batch: Callable[[int], None] | None = None,
    shard: Shard = WHOLE,
) -> dict[int, str]:
    """The completions of the prompts in the batches `shard` owns (all for `WHOLE`), by prompt index."""
    prepare_tokenizer_for_generation(tokenizer)
    lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], prompts[i]))
    context_limit = max(resolve_max_length(model, tokenizer) - max_new_tokens, 1)
    sampling: dict[str, Any] = (
        {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        if temperature > 0
        else {"do_sample": False}
    )
    predictions: dict[int, str] = {}
    for number, start in enumerate(range(0, len(order), batch_size)):
        if not shard.owns(number):
            continue
        # Seeded per batch, not once per run: a sampled batch draws the same tokens whichever pod runs it.
        torch.manual_seed(seed + number)
        batch = order[start : start + batch_size]
        encoded = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True)
        # Left truncation of the padded batch, as lm-eval's tok_batch_encode(left_truncate_len=...).
        encoded = {key: value[:, -context_limit:].to(model.device) for key, value in encoded.items()}
        width = encoded["input_ids"].shape[1]
        stopping = StoppingCriteriaList([StopSequences(tokenizer, until, width)]) if until else None
        output = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            use_cache=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            stopping_criteria=stopping,
            **sampling,
        )
        texts = tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        for index, text in zip(batch, texts, strict=True):
            predictions[index] = cut_at_stop(text, until)
        if on_batch is not None:
            on_batch(len(batch))
    return predictions
