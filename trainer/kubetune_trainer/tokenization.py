"""Examples -> token ids and labels with the loss on completion tokens only.

- prompt tokens get label -100; completion tokens and one appended EOS are supervised (the model must learn
  to stop);
- padding never uses labels, so a tokenizer whose pad token is EOS (or that has none) is fine: pad positions
  are masked by the attention mask / position ids and carry label -100, while the real EOS stays supervised;
- truncation to `max_len` cuts the *prompt* from the left first, and the completion's tail only when the
  completion alone does not fit; a completion is never dropped entirely. Both cases are counted and reported.

Works on plain lists (no tensors) so it is cheap to test and to run in `--dry-run`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetune_operator.data.errors import DataError
from kubetune_operator.data.formats import Example

IGNORE_INDEX = -100
# Keep at least this many completion tokens when the prompt alone is longer than max_len.
MIN_PROMPT_SHARE = 0.5
# Examples per tokenizer call: large enough for the fast tokenizer's batch path, small enough to bound memory.
TOKENIZE_BATCH = 1024

log = logging.getLogger(__name__)


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    task: str = "default"
    row: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def completion_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass
class TruncationStats:
    examples: int = 0
    prompt_truncated: int = 0
    completion_truncated: int = 0
    lengths: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "examples": self.examples,
            "promptTruncated": self.prompt_truncated,
            "completionTruncated": self.completion_truncated,
        }


def chat_prompt_and_completion(tokenizer: Any, messages: list[dict[str, str]], where: str) -> tuple[str, str]:
    """Split a chat rendered by the tokenizer's chat template into (context, last assistant turn)."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{where}: format 'messages' needs a tokenizer with a chat template")
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise DataError(
            f"{where}: the chat template renders the last assistant turn in a way that does not "
            "extend the prompt; cannot tell completion tokens apart"
        )
    completion = full[len(prompt) :]
    eos = tokenizer.eos_token or ""
    # Templates that already close the turn with EOS: strip it, EOS is appended (and supervised) below.
    if eos and completion.rstrip().endswith(eos):
        completion = completion.rstrip()[: -len(eos)]
    return prompt, completion


def tokenize_example(
    tokenizer: Any, example: Example, max_len: int, stats: TruncationStats
) -> TokenizedExample:
    prompt, completion = example_texts(tokenizer, example)
    prompt_ids: list[int] = tokenizer(prompt, add_special_tokens=True)["input_ids"] if prompt else []
    completion_ids: list[int] = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return assemble_example(
        tokenizer, example, prompt_ids=prompt_ids, completion_ids=completion_ids, max_len=max_len, stats=stats
    )


def example_texts(tokenizer: Any, example: Example) -> tuple[str, str]:
    """(prompt, completion) text of an example; chat examples rendered by the tokenizer's chat template."""
    if example.messages is not None:
        where = f"task {example.task!r} row {example.row + 1}"
        return chat_prompt_and_completion(tokenizer, example.messages, where)
    return example.prompt, example.completion


def assemble_example(
    tokenizer: Any,
    example: Example,
    *,
    prompt_ids: list[int],
    completion_ids: list[int],
    max_len: int,
    stats: TruncationStats,
) -> TokenizedExample:
    """Append the supervised EOS, truncate to `max_len` (prompt first) and mask the prompt's labels."""
    where = f"task {example.task!r} row {example.row + 1}"
    if tokenizer.eos_token_id is None:
        raise DataError("the tokenizer has no EOS token; set eos_token in tokenizer_config.json")
    completion_ids = [*completion_ids, tokenizer.eos_token_id]
    if len(completion_ids) <= 1:
        raise DataError(f"{where}: the completion has no tokens")
    stats.examples += 1
    overflow = len(prompt_ids) + len(completion_ids) - max_len
    if overflow > 0:
        keep_prompt = max(len(prompt_ids) - overflow, 0)
        if keep_prompt == 0 and prompt_ids:
            # The completion alone fills the window: keep some context so the example still means something.
            keep_prompt = min(len(prompt_ids), int(max_len * MIN_PROMPT_SHARE))
        if keep_prompt < len(prompt_ids):
            stats.prompt_truncated += 1
            prompt_ids = prompt_ids[len(prompt_ids) - keep_prompt :]
        room = max_len - len(prompt_ids)
        if len(completion_ids) > room:
            stats.completion_truncated += 1
            completion_ids = completion_ids[:room]
    input_ids = prompt_ids + completion_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + completion_ids
    stats.lengths.append(len(input_ids))
    return TokenizedExample(input_ids, labels, example.task, example.row)


def tokenize_batch(
    tokenizer: Any, examples: Sequence[Example], max_len: int, stats: TruncationStats
) -> list[TokenizedExample]:
    """Like `tokenize_example` for each example, with one tokenizer call for all prompts and one for all
    completions: a fast (Rust) tokenizer encodes a list in one pass, several times faster than per text."""
    if not examples:
        return []
    texts = [example_texts(tokenizer, example) for example in examples]
    prompts = tokenizer([p for p, _ in texts], add_special_tokens=True)["input_ids"]
    completions = tokenizer([c for _, c in texts], add_special_tokens=False)["input_ids"]
    return [
        # An empty prompt has no tokens at all (not even BOS), as in tokenize_example.
        assemble_example(
            tokenizer,
            example,
            prompt_ids=list(p) if text[0] else [],
            completion_ids=list(c),
            max_len=max_len,
            stats=stats,
        )
        for example, text, p, c in zip(examples, texts, prompts, completions, strict=True)
    ]


def tokenize_examples(
    tokenizer: Any, examples: Sequence[Example], max_len: int, split: str = "train"
) -> tuple[list[TokenizedExample], TruncationStats]:
    stats = TruncationStats()
    out: list[TokenizedExample] = []
    for start in range(0, len(examples), TOKENIZE_BATCH):
        out.extend(tokenize_batch(tokenizer, examples[start : start + TOKENIZE_BATCH], max_len, stats))
    if stats.prompt_truncated or stats.completion_truncated:
        log.warning(
            "%s: truncated to maxSeqLength=%d: %d prompts (from the left), %d completions (their tail)",
            split,
            max_len,
            stats.prompt_truncated,
            stats.completion_truncated,
        )
    return out, stats
