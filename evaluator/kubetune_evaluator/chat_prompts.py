"""Prompts through the model's chat template, as lm-evaluation-harness's `--apply_chat_template` renders them.

lm-eval 0.4 (`ConfigurableTask.fewshot_context`, `build_qa_turn`, `multiturn_to_singleturn`) builds a list
of messages: the task description as a system turn, each few-shot example as a user turn (its prompt) and
an assistant turn (its answer), the question as the last user turn. With `fewshot_as_multiturn` these go
to the template as they are; without it everything after the system turn is joined as plain text (prompt,
target delimiter, answer, few-shot delimiter per example, then the question) into one user turn. The
template is applied with `add_generation_prompt=True`, and a multiple-choice continuation then has no
target delimiter (the choice follows the assistant header directly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jinja2

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.fewshot import Turn, join_examples

if TYPE_CHECKING:
    from kubetune_operator.api.evaljob import ChatTemplateSpec


@dataclass(frozen=True)
class Dialogue:
    """One sample's prompt in parts: what the plain-text prompt joins and a chat template keeps apart."""

    system: str  # the task description ('' when none): MMLU's subject line
    examples: tuple[Turn, ...]
    question: str  # the sample's own rendered prompt
    delimiter: str = "\n\n"  # after each example (the few-shot delimiter)

    def text(self) -> str:
        """The plain-text prompt (no chat template)."""
        return self.system + join_examples(self.examples, self.delimiter) + self.question


def chat_messages(dialogue: Dialogue, *, multiturn: bool) -> list[dict[str, str]]:
    """The messages lm-eval gives the chat template for this prompt."""
    messages = [{"role": "system", "content": dialogue.system}] if dialogue.system else []
    if multiturn:
        for user, _, answer in dialogue.examples:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        messages.append({"role": "user", "content": dialogue.question})
    else:
        text = join_examples(dialogue.examples, dialogue.delimiter) + dialogue.question
        messages.append({"role": "user", "content": text})
    return messages


def render_chat(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """The template's text with the generation prompt; a template that refuses a system turn gets the
    messages without it (as lm-eval's HFLM.apply_chat_template retries)."""
    if not getattr(tokenizer, "chat_template", None):
        raise EvalInputError(
            "chatTemplate.apply: the model's tokenizer has no chat template (tokenizer_config.json)"
        )

    def apply(history: Sequence[dict[str, str]]) -> str:
        text: str = tokenizer.apply_chat_template(
            list(history), tokenize=False, add_generation_prompt=True, continue_final_message=False
        )
        return text

    try:
        return apply(messages)
    except jinja2.exceptions.TemplateError:
        return apply([m for m in messages if m["role"] != "system"])


def uses_chat_template(setting: ChatTemplateSpec | None, tokenizer: Any) -> bool:
    """Whether this model's prompts go through its chat template: always with `apply: true` (render_chat
    refuses a tokenizer without one), with `auto` when the tokenizer has one, never without a setting."""
    if setting is None:
        return False
    if setting.apply == "auto":
        return bool(getattr(tokenizer, "chat_template", None))
    return True


def chat_label(multiturn: bool, *, applied: bool = True, auto: bool = False) -> str:
    """The signature's words for how the prompts were rendered: through the chat template (with `auto`
    saying it was chosen because the tokenizer has one), plain text chosen by `auto` because it has none,
    or '' for plain text as set."""
    if not applied:
        return "no-chat-template(auto: the tokenizer has none)" if auto else ""
    turns = "fewshot multiturn" if multiturn else "fewshot single turn"
    return f"chat-template(auto, {turns})" if auto else f"chat-template({turns})"
