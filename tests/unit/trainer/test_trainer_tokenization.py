"""Completion-only labels, EOS, truncation, packing, collation and the batch plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from kubetune_devtools.tiny_models import varied_length_rows
from kubetune_operator.data.formats import Example
from kubetune_trainer.batching import BatchPlan, collate, make_units, model_inputs, padding_ratio
from kubetune_trainer.modeling import token_loss_sums
from kubetune_trainer.packing import best_fit_pack
from kubetune_trainer.tokenization import IGNORE_INDEX, TruncationStats, tokenize_example, tokenize_examples


def test_only_completion_and_eos_carry_loss_and_pad_differs_from_eos(tiny_tokenizer: Any) -> None:
    tok = tiny_tokenizer
    assert tok.pad_token_id != tok.eos_token_id
    example = tokenize_example(tok, Example("Reverse: a b c\nAnswer:", " c b a"), 64, TruncationStats())
    prompt_len = len(tok("Reverse: a b c\nAnswer:")["input_ids"])
    assert example.labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert example.labels[prompt_len:] == example.input_ids[prompt_len:]
    assert example.input_ids[-1] == tok.eos_token_id and example.labels[-1] == tok.eos_token_id
    assert tok.decode(example.input_ids[prompt_len:-1]) == " c b a"


def test_truncation_cuts_the_prompt_first_and_never_drops_the_completion(tiny_tokenizer: Any) -> None:
    stats = TruncationStats()
    long_prompt = Example("Continue: " + "a b " * 100, " c d")
    kept = tokenize_example(tiny_tokenizer, long_prompt, 32, stats)
    assert len(kept) == 32 and kept.completion_tokens == len(tiny_tokenizer(" c d")["input_ids"]) + 1
    assert (stats.prompt_truncated, stats.completion_truncated) == (1, 0)
    long_completion = Example("Say:", " x" * 200)
    cut = tokenize_example(tiny_tokenizer, long_completion, 32, stats)
    assert len(cut) == 32 and cut.completion_tokens >= 16
    assert stats.completion_truncated == 1


def test_chat_messages_supervise_only_the_last_assistant_turn(tiny_tokenizer: Any) -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
        {"role": "assistant", "content": "ciao"},
    ]
    example = tokenize_example(tiny_tokenizer, Example("", "", messages=messages), 128, TruncationStats())
    supervised = [
        t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX
    ]
    assert tiny_tokenizer.decode(supervised) == "ciao</s>"  # EOS once, not twice


def test_best_fit_packing_respects_capacity_and_keeps_every_example_once() -> None:
    lengths = [70, 50, 40, 30, 30, 20, 60, 10]
    bins = best_fit_pack(lengths, 100)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 100 for b in bins)
    assert len(bins) == 4  # 310 tokens cannot fit in fewer than 4 rows of 100
    with pytest.raises(ValueError, match="more than the row capacity"):
        best_fit_pack([101], 100)


def test_packed_and_padded_batches_give_the_same_loss_with_fewer_pads(
    tiny_model_dir: Path, tiny_tokenizer: Any
) -> None:
    # deferred: transformers cost seconds to import; collecting other tests skips them
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    rows = varied_length_rows(12, seed=3, min_words=2, max_words=30)
    examples, _ = tokenize_examples(
        tiny_tokenizer, [Example(r["prompt"], r["completion"]) for r in rows], 128
    )
    pad = tiny_tokenizer.pad_token_id

    def total_loss(packing: bool) -> tuple[float, int, float]:
        units = make_units(examples, packing, 128)
        batch = collate([[examples[i] for i in u] for u in units], pad, packed=packing)
        inputs = model_inputs(batch)
        with torch.no_grad():
            loss_sum, _ = token_loss_sums(model(**inputs, use_cache=False).logits, batch["targets"])
        return float(loss_sum), int((batch["targets"] != IGNORE_INDEX).sum()), padding_ratio(batch)

    padded_loss, padded_tokens, padded_ratio = total_loss(False)
    packed_loss, packed_tokens, packed_ratio = total_loss(True)
    assert packed_tokens == padded_tokens
    assert packed_loss == pytest.approx(padded_loss, rel=1e-4)
    assert packed_ratio < padded_ratio / 2


def test_batch_plan_is_deterministic_and_shards_the_global_batch_over_ranks() -> None:
    one = BatchPlan(num_units=50, batch_size=8, world_size=1, seed=1)
    two = BatchPlan(num_units=50, batch_size=4, world_size=2, seed=1)
    assert one.batches_per_epoch == two.batches_per_epoch == 7
    for m in range(14):
        assert sorted(one.units_for(m, 0)) == sorted(two.units_for(m, 0) + two.units_for(m, 1))
    epoch0 = [u for m in range(6) for u in one.units_for(m, 0)]
    assert sorted(epoch0 + one.units_for(6, 0)[:2]) == list(range(50))  # every unit once per epoch
    assert one.units_for(7, 0) != one.units_for(0, 0)  # a new permutation each epoch
    assert BatchPlan(50, 8, 1, seed=2).units_for(0, 0) != one.units_for(0, 0)
