"""Turn dataset rows into `Example`s: prompt/completion text (or chat messages) + where they came from.

Formats (`dataset.format`, used when a job has no `tasks` templates):
- `prompt_completion`: fields `prompt`, `completion`;
- `alpaca`: `instruction`, optional `input`, `output` -> the Stanford Alpaca prompt;
- `messages`: `messages: [{role, content}, ...]` ending with an assistant turn; the tokenizer's chat template
  renders it later (loss on the last assistant turn);
- `text`: `text` (plain language-modelling; every token carries loss);
- `auto`: the first of the above whose fields the first row has.

No torch import. Stable API: `Example`, `detect_format`, `rows_to_examples`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubetune_operator.data.errors import DataError
from kubetune_operator.data.templates import PromptTemplate, render_row

FORMATS = ("auto", "prompt_completion", "alpaca", "messages", "text")

ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


@dataclass
class Example:
    """One training/evaluation example.

    `messages` is set only for the chat format (then `prompt`/`completion` are filled in at tokenization time
    from the tokenizer's chat template). `row` is the 0-based index of the source row in its dataset.
    """

    prompt: str
    completion: str
    task: str = "default"
    row: int = 0
    messages: list[dict[str, str]] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task": self.task,
            "row": self.row,
            "prompt": self.prompt,
            "completion": self.completion,
        }
        if self.messages is not None:
            out["messages"] = self.messages
        return out


def detect_format(row: dict[str, Any], where: str) -> str:
    if "messages" in row:
        return "messages"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "text" in row:
        return "text"
    raise DataError(
        f"{where}: cannot detect the dataset format from fields {sorted(row)}; expected "
        "prompt+completion, instruction+output (alpaca), messages or text - or give task templates"
    )


def _field(row: dict[str, Any], name: str, where: str) -> str:
    if name not in row or row[name] is None:
        raise DataError(f"{where}: missing field {name!r} (row fields: {', '.join(sorted(row)) or 'none'})")
    value = row[name]
    if not isinstance(value, str):
        value = str(value)
    return value


def _messages(row: dict[str, Any], where: str) -> list[dict[str, str]]:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field 'messages' must be a non-empty list of {{role, content}}")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise DataError(f"{where}: messages[{i}] must have 'role' and 'content'")
        out.append({"role": str(message["role"]), "content": str(message["content"])})
    if out[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last message must be the assistant's (it is the completion)")
    if not out[-1]["content"].strip():
        raise DataError(f"{where}: empty completion (last assistant message)")
    return out


def row_to_example(row: dict[str, Any], fmt: str, task: str, index: int, where: str) -> Example:
    if fmt == "auto":
        fmt = detect_format(row, where)
    if fmt == "messages":
        return Example(prompt="", completion="", task=task, row=index, messages=_messages(row, where))
    if fmt == "prompt_completion":
        prompt, completion = _field(row, "prompt", where), _field(row, "completion", where)
    elif fmt == "alpaca":
        instruction, output = _field(row, "instruction", where), _field(row, "output", where)
        extra = str(row.get("input") or "")
        template = ALPACA_WITH_INPUT if extra.strip() else ALPACA_NO_INPUT
        prompt, completion = template.format(instruction=instruction, input=extra), output
    elif fmt == "text":
        prompt, completion = "", _field(row, "text", where)
    else:
        raise DataError(f"{where}: unknown dataset format {fmt!r} (one of {', '.join(FORMATS)})")
    if not completion.strip():
        raise DataError(f"{where}: empty completion")
    return Example(prompt=prompt, completion=completion, task=task, row=index)


def rows_to_examples(
    rows: Sequence[dict[str, Any]],
    *,
    source: str,
    task: str = "default",
    fmt: str = "auto",
    templates: Sequence[PromptTemplate] = (),
    seed: int = 0,
    indices: Sequence[int] | None = None,
) -> list[Example]:
    """Convert the rows at `indices` (default: all) into examples.

    With `templates`, each row is rendered by one template drawn from a RNG seeded by (seed, task), so the
    same row gets the same template in every run; otherwise `fmt` decides. Errors name `source`, the 1-based
    row number and the field.
    """
    if fmt not in FORMATS:
        raise DataError(f"{source}: unknown dataset format {fmt!r} (one of {', '.join(FORMATS)})")
    rng = random.Random(f"{seed}:{task}")
    choice_per_row = [rng.random() for _ in range(len(rows))] if templates else []
    examples = []
    for index in range(len(rows)) if indices is None else indices:
        row = rows[index]
        where = f"{source}: row {index + 1}"
        if templates:
            # One RNG per row, seeded from a pre-drawn stream: the template of row i does not depend on which
            # other rows are selected (train vs test), so the evaluator renders test rows identically.
            prompt, completion = render_row(templates, row, random.Random(choice_per_row[index]), where)
            if not completion.strip():
                raise DataError(f"{where}: empty completion after rendering the template")
            examples.append(Example(prompt=prompt, completion=completion, task=task, row=index))
        else:
            examples.append(row_to_example(row, fmt, task, index, where))
    return examples
