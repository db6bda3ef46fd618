"""Log P(continuation | context) with a causal LM, computed as lm-evaluation-harness's `hf` model does.

Parity with lm-eval (0.4.x, `lm_eval/api/model.py` and `lm_eval/models/huggingface.py`) decides every
detail here, because published benchmark numbers come from it:

- all trailing whitespace of the context (spaces *and* newlines) moves to the front of the continuation,
  and the pair is tokenized as one string, so the continuation gets the tokens it has in running text;
- an empty context is scored from the BOS token (EOS when the tokenizer has none);
- an input longer than the model's context keeps its last `max_length` tokens (left truncation);
- requests run longest first (ties by token ids), results come back in input order; requests with the
  same model input (one-token answers to one prompt) share a forward pass, as lm-eval's do.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.shard import WHOLE, Shard

DEFAULT_MAX_LENGTH = 2048  # lm-eval's fallback when neither config nor tokenizer gives a length
# transformers' `model_max_length` when a tokenizer sets none (VERY_LARGE_INTEGER = int(1e30)).
TOKENIZER_INFINITY = int(1e30)
_LENGTH_CONFIG_FIELDS = ("n_positions", "max_position_embeddings", "n_ctx")

TokenPair = tuple[list[int], list[int]]


def resolve_max_length(model: Any, tokenizer: Any) -> int:
    """The model's context length, looked up in the order lm-eval uses (config, tokenizer, 2048)."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for name in _LENGTH_CONFIG_FIELDS:
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    tokenizer_length = getattr(tokenizer, "model_max_length", None)
    if tokenizer_length is not None and tokenizer_length != TOKENIZER_INFINITY:
        return int(tokenizer_length)
    return DEFAULT_MAX_LENGTH


def prefix_token_id(tokenizer: Any) -> int:
    """The token an empty context is scored from: BOS, or EOS when the tokenizer has no BOS."""
    if tokenizer.bos_token_id is not None:
        return int(tokenizer.bos_token_id)
    return int(tokenizer.eos_token_id)


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a text as lm-eval's `tok_encode`: the tokenizer's special tokens unless already there."""
    # The tokenizer's own special tokens, except when the text already starts with the prefix token's
    # text (a rendered chat template): a second BOS would change every score.
    prefix_text = tokenizer.decode([prefix_token_id(tokenizer)])
    add_special = not (prefix_text and text.startswith(prefix_text))
    return list(tokenizer(text, add_special_tokens=add_special)["input_ids"])


def encode_pair(tokenizer: Any, context: str, continuation: str) -> TokenPair:
    """Token ids of (context, continuation) as lm-eval's `loglikelihood` builds them."""
    stripped = context.rstrip()
    if not stripped:
        # lm-eval scores an empty context from the prefix token. A whitespace-only context is the same
        # case once its whitespace has moved to the continuation (lm-eval itself stops with an
        # assertion there when the tokenizer adds no BOS).
        continuation_ids = list(tokenizer(context + continuation, add_special_tokens=False)["input_ids"])
        prefix = prefix_token_id(tokenizer)
        if continuation_ids and continuation_ids[0] == prefix:
            return continuation_ids[:1], continuation_ids[1:]
        return [prefix], continuation_ids
    continuation = context[len(stripped) :] + continuation
    whole = encode_text(tokenizer, stripped + continuation)
    context_ids = encode_text(tokenizer, stripped)
    return whole[: len(context_ids)], whole[len(context_ids) :]


def length_order(pairs: Sequence[TokenPair]) -> list[int]:
    """Indices longest first, ties by token ids: lm-eval's Collator order (the sort is stable)."""

    def key(index: int) -> tuple[int, tuple[int, ...]]:
        tokens = pairs[index][0] + pairs[index][1]
        return -len(tokens), tuple(tokens)

    return sorted(range(len(pairs)), key=key)


def model_input(pair: TokenPair, max_length: int) -> list[int]:
    """The tokens fed to the model: context + continuation minus its last token, left-truncated."""
    context_ids, continuation_ids = pair
    return (context_ids + continuation_ids)[-(max_length + 1) :][:-1]


def pair_loglikelihoods(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[TokenPair],
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[float]:
    """Summed log P(continuation | context) for each tokenized pair, in the order given."""
    owned = owned_pair_loglikelihoods(
        model, tokenizer, pairs, batch_size=batch_size, max_length=max_length, on_batch=on_batch
    )
    return [owned[index] for index in range(len(pairs))]


@torch.inference_mode()
def owned_pair_loglikelihoods(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[TokenPair],
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    shard: Shard = WHOLE,
) -> dict[int, float]:
    """Log-likelihoods of the pairs in the batches `shard` owns (all of them for `WHOLE`), by pair index."""
    limit = max_length if max_length is not None else resolve_max_length(model, tokenizer)
    for context_ids, continuation_ids in pairs:
        if not context_ids or not continuation_ids:
            raise ValueError("log-likelihood requests need a non-empty context and continuation")
        if len(continuation_ids) > limit:
            raise EvalInputError(
                f"an answer of {len(continuation_ids)} tokens does not fit the model's context "
                f"of {limit} tokens"
            )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # Requests with the same model input share one forward pass (lm-eval's group_by="contexts" does this
    # for one-token answers: MMLU's letters all continue the same prompt, so 4 requests cost 1).
    sharing: dict[tuple[int, ...], list[int]] = {}
    for index in length_order(pairs):
        sharing.setdefault(tuple(model_input(pairs[index], limit)), []).append(index)
    unique = list(sharing.items())  # longest first, as the pairs were ordered
    keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    results: dict[int, float] = {}
    for number, start in enumerate(range(0, len(unique), batch_size)):
        if not shard.owns(number):
            continue
        batch = unique[start : start + batch_size]
        width = max(len(tokens) for tokens, _ in batch)
        # Right padding: the real tokens keep positions 0..n-1 and, the model being causal, never see the
        # padding after them, so no attention mask is needed (lm-eval passes none either); without one
        # the attention kernel takes its causal fast path instead of reading a materialized mask.
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        for row, (tokens, _) in enumerate(batch):
            input_ids[row, : len(tokens)] = torch.tensor(tokens)
        # Only the positions that predict a continuation token go through the output layer and the
        # log-softmax (all rows share the set): with a real vocabulary that is most of the work saved.
        needed = sorted(
            {
                position
                for tokens, indices in batch
                for index in indices
                for position in range(len(tokens) - len(pairs[index][1]), len(tokens))
            }
        )
        column = {position: j for j, position in enumerate(needed)} if keeps_logits else None
        kwargs = {"logits_to_keep": torch.tensor(needed, device=model.device)} if column else {}
        logits = model(input_ids=input_ids.to(model.device), **kwargs).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for row, (tokens, indices) in enumerate(batch):
            for index in indices:
                continuation_ids = pairs[index][1]
                span = range(len(tokens) - len(continuation_ids), len(tokens))
                positions = torch.tensor([column[p] for p in span] if column else list(span))
                targets = torch.tensor(continuation_ids)
                results[index] = float(logprobs[row, positions, targets].sum())
        if on_batch is not None:
            on_batch(sum(len(indices) for _, indices in batch))
    return results
