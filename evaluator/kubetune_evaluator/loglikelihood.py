"""Log P(continuation | context) with a causal LM, computed as lm-evaluation-harness's `hf` model does.

Parity with lm-eval (0.4.x, `lm_eval/api/model.py` and `lm_eval/models/huggingface.py`) decides every
detail here, because published benchmark numbers come from it:

- all trailing whitespace of the context (spaces *and* newlines) moves to the front of the continuation,
  and the pair is tokenized as one string, so the continuation gets the tokens it has in running text;
- an empty context is scored from the BOS token (EOS when the tokenizer has none);
- an input longer than the model's context keeps its last `max_length` tokens (left truncation);
- requests with the same model input (one-token answers to one prompt) share a forward pass, as lm-eval's
  do; results come back in input order.

Not from lm-eval, and no change to any number beyond float rounding: inputs that share a long prefix (the
few-shot examples MMLU draws the same for every question of a subject) are batched together, and a batch
whose rows all start with the same tokens computes them once (a KV cache copied to every row) instead of
once per row. Otherwise requests run longest first (ties by token ids), as lm-eval's do.
"""

from __future__ import annotations

import copy
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
# Tokens a batch's rows must share before they are computed once: a separate forward pass for a shorter
# prefix costs about what it saves.
MIN_SHARED_PREFIX = 32

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
    return encode_texts(tokenizer, [text])[0]


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """`encode_text` of each text, in one call of the tokenizer per setting (a call per text costs more in
    Python than the tokenizing itself)."""
    # The tokenizer's own special tokens, except when the text already starts with the prefix token's
    # text (a rendered chat template): a second BOS would change every score.
    prefix_text = tokenizer.decode([prefix_token_id(tokenizer)])
    adds = [not (prefix_text and text.startswith(prefix_text)) for text in texts]
    found: list[list[int]] = [[] for _ in texts]
    for add_special in (True, False):
        chosen = [index for index, adds_special in enumerate(adds) if adds_special is add_special]
        if chosen:
            encoded = tokenizer([texts[i] for i in chosen], add_special_tokens=add_special)["input_ids"]
            for index, ids in zip(chosen, encoded, strict=True):
                found[index] = list(ids)
    return found


def encode_pair(tokenizer: Any, context: str, continuation: str) -> TokenPair:
    """Token ids of (context, continuation) as lm-eval's `loglikelihood` builds them."""
    return encode_pairs(tokenizer, [(context, continuation)])[0]


def encode_pairs(tokenizer: Any, requests: Sequence[tuple[str, str]]) -> list[TokenPair]:
    """`encode_pair` of each (context, continuation), each distinct context tokenized once."""
    pairs: list[TokenPair | None] = [None] * len(requests)
    wholes: list[tuple[int, str, str]] = []  # (request, stripped context, whole text)
    for index, (context, continuation) in enumerate(requests):
        stripped = context.rstrip()
        if stripped:
            wholes.append((index, stripped, context + continuation))
            continue
        # lm-eval scores an empty context from the prefix token. A whitespace-only context is the same
        # case once its whitespace has moved to the continuation (lm-eval itself stops with an
        # assertion there when the tokenizer adds no BOS).
        continuation_ids = list(tokenizer(context + continuation, add_special_tokens=False)["input_ids"])
        prefix = prefix_token_id(tokenizer)
        if continuation_ids and continuation_ids[0] == prefix:
            pairs[index] = (continuation_ids[:1], continuation_ids[1:])
        else:
            pairs[index] = ([prefix], continuation_ids)
    # All trailing whitespace of the context moves into the continuation: the whole text is unchanged.
    contexts = list(dict.fromkeys(stripped for _, stripped, _ in wholes))
    context_ids = dict(zip(contexts, encode_texts(tokenizer, contexts), strict=True))
    encoded = encode_texts(tokenizer, [whole for _, _, whole in wholes])
    for (index, stripped, _), whole_ids in zip(wholes, encoded, strict=True):
        cut = len(context_ids[stripped])
        pairs[index] = (whole_ids[:cut], whole_ids[cut:])
    return [pair for pair in pairs if pair is not None]


def length_order(pairs: Sequence[TokenPair]) -> list[int]:
    """Indices longest first, ties by token ids: lm-eval's Collator order (the sort is stable)."""

    def key(index: int) -> tuple[int, tuple[int, ...]]:
        tokens = pairs[index][0] + pairs[index][1]
        return -len(tokens), tuple(tokens)

    return sorted(range(len(pairs)), key=key)


def common_length(first: Sequence[int], second: Sequence[int]) -> int:
    """How many leading tokens two inputs share."""
    for position, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            return position
    return min(len(first), len(second))


def prefix_runs(inputs: Sequence[tuple[int, ...]]) -> tuple[list[list[int]], list[int]]:
    """Inputs sharing at least MIN_SHARED_PREFIX leading tokens, as runs of indices (in token order every
    input shares at least as much with its neighbour as with any later one), and the length of each run's
    common prefix."""
    lexical = sorted(range(len(inputs)), key=lambda index: inputs[index])
    runs: list[list[int]] = []
    shared: list[int] = []
    for previous, index in zip([None, *lexical], lexical, strict=False):
        common = common_length(inputs[previous], inputs[index]) if previous is not None else 0
        if common >= MIN_SHARED_PREFIX:
            runs[-1].append(index)
            shared[-1] = min(shared[-1], common)
        else:
            runs.append([index])
            shared.append(len(inputs[index]))
    return runs, shared


def batch_order(inputs: Sequence[tuple[int, ...]]) -> list[int]:
    """The order batches are cut in: each run of `prefix_runs` longest first, the runs by their longest
    input; inputs that share nothing run longest first, ties by token ids, as lm-eval's Collator orders
    them."""
    runs, _ = prefix_runs(inputs)

    def longest_first(index: int) -> tuple[int, tuple[int, ...]]:
        return -len(inputs[index]), inputs[index]

    for run in runs:
        run.sort(key=longest_first)
    runs.sort(key=lambda run: longest_first(run[0]))
    return [index for run in runs for index in run]


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
    inputs = list(sharing)
    unique = [(inputs[i], sharing[inputs[i]]) for i in batch_order(inputs)]
    # Every batch of a run feeds the run's common prefix once (the same tokens, so one cache serves all).
    runs, run_shared = prefix_runs(inputs)
    shared_by_input = {inputs[i]: length for run, length in zip(runs, run_shared, strict=True) for i in run}
    parameters = inspect.signature(model.forward).parameters
    keeps_logits = "logits_to_keep" in parameters
    # The KV cache argument: `cache` in transformers 5, `past_key_values` before (and in remote code).
    cache_argument = next((name for name in ("cache", "past_key_values") if name in parameters), None)
    prefix_cache: tuple[tuple[int, ...], Any] | None = None  # the last shared prefix and its KV cache
    results: dict[int, float] = {}
    for number, start in enumerate(range(0, len(unique), batch_size)):
        if not shard.owns(number):
            continue
        batch = unique[start : start + batch_size]
        # Each row's first position that predicts a continuation token; a shared prefix stops before it.
        first_needed = [len(tokens) - max(len(pairs[i][1]) for i in indices) for tokens, indices in batch]
        shared = min(
            [*first_needed, *(min(shared_by_input[t], common_length(batch[0][0], t)) for t, _ in batch)]
        )
        kwargs: dict[str, Any] = {}
        if cache_argument is not None and shared >= MIN_SHARED_PREFIX:
            prefix = batch[0][0][:shared]
            if prefix_cache is None or prefix_cache[0] != prefix:
                ids = torch.tensor([prefix], device=model.device)
                only_last = {"logits_to_keep": 1} if keeps_logits else {}
                output = model(input_ids=ids, use_cache=True, **only_last)
                prefix_cache = (prefix, getattr(output, cache_argument, None))
            if hasattr(prefix_cache[1], "batch_repeat_interleave"):
                cache = copy.deepcopy(prefix_cache[1])  # the forward pass below appends to it
                cache.batch_repeat_interleave(len(batch))
                kwargs.update({cache_argument: cache, "use_cache": True})
            else:  # no cache this code can copy to every row (another cache type): rows fed whole
                cache_argument, shared = None, 0
        else:
            shared = 0
        width = max(len(tokens) for tokens, _ in batch) - shared
        # Right padding: the real tokens keep positions 0..n-1 and, the model being causal, never see the
        # padding after them, so no attention mask is needed (lm-eval passes none either); without one
        # the attention kernel takes its causal fast path instead of reading a materialized mask.
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        for row, (tokens, _) in enumerate(batch):
            input_ids[row, : len(tokens) - shared] = torch.tensor(tokens[shared:])
        # Only the positions that predict a continuation token go through the output layer and the
        # log-softmax (all rows share the set): with a real vocabulary that is most of the work saved.
        # Positions count from the first token fed (after the shared prefix).
        needed = sorted(
            {
                position - shared
                for tokens, indices in batch
                for index in indices
                for position in range(len(tokens) - len(pairs[index][1]), len(tokens))
            }
        )
        column = {position: j for j, position in enumerate(needed)} if keeps_logits else None
        if column:
            kwargs["logits_to_keep"] = torch.tensor(needed, device=model.device)
        logits = model(input_ids=input_ids.to(model.device), **kwargs).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        for row, (tokens, indices) in enumerate(batch):
            for index in indices:
                continuation_ids = pairs[index][1]
                span = range(len(tokens) - len(continuation_ids) - shared, len(tokens) - shared)
                positions = torch.tensor([column[p] for p in span] if column else list(span))
                targets = torch.tensor(continuation_ids)
                results[index] = float(logprobs[row, positions, targets].sum())
        if on_batch is not None:
            on_batch(sum(len(indices) for _, indices in batch))
    return results
