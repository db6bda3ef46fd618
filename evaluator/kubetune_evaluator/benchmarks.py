"""Benchmarks shipped with kubetune: the public releases' rows rendered as lm-evaluation-harness renders them.

An EvalJob task with `benchmark: <name>` reads its dataset (a file staged from the Hugging Face dataset
repo, same columns) and gets that benchmark's prompts, choices, stop sequences, answer extraction and
few-shot sampler from here instead of from templates. Each entry cites the lm-eval 0.4 task YAML it
follows (lm_eval/tasks/...); the parity tests run lm_eval's own YAML on the same file.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.fewshot import Turn
from kubetune_evaluator.metrics.choice_accuracy import ChoiceQuestion

Row = Mapping[str, Any]


def _field(row: Row, name: str, where: str) -> Any:
    if name not in row:
        raise EvalInputError(f"{where}: missing field {name!r} (row fields: {', '.join(sorted(row))})")
    return row[name]


def _list(value: Any, name: str, where: str) -> list[Any]:
    # Parquet gives numpy arrays for list columns, JSONL plain lists.
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise EvalInputError(f"{where}: field {name!r} must be a list, got {type(value).__name__}")
    return list(value)


def _index(value: Any, size: int, name: str, where: str) -> int:
    try:
        index = int(value)
    except (TypeError, ValueError):
        index = -1
    if isinstance(value, bool) or not 0 <= index < size or str(value).strip() != str(index):
        raise EvalInputError(f"{where}: field {name!r} must be an index below {size}, got {value!r}")
    return index


def mmlu_question(row: Row, where: str) -> ChoiceQuestion:
    """lm_eval/tasks/mmlu/default/_default_template_yaml: lettered choices, the letter is scored."""
    choices = [str(c) for c in _list(_field(row, "choices", where), "choices", where)]
    if not 2 <= len(choices) <= 26:
        raise EvalInputError(f"{where}: field 'choices' must hold 2 to 26 answers, got {len(choices)}")
    letters = string.ascii_uppercase[: len(choices)]
    lines = [str(_field(row, "question", where)).strip()]
    lines += [f"{letter}. {choice}" for letter, choice in zip(letters, choices, strict=True)]
    prompt = "\n".join([*lines, "Answer:"])
    return ChoiceQuestion(prompt, tuple(letters), _index(row.get("answer"), len(choices), "answer", where))


def mmlu_description(row: Row) -> str:
    """The per-subject description of lm-eval's mmlu_<subject>.yaml ('' for rows without a subject)."""
    subject = str(row.get("subject") or "").strip()
    if not subject:
        return ""
    return (
        f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    )


def arc_question(row: Row, where: str) -> ChoiceQuestion:
    """lm_eval/tasks/arc/arc_easy.yaml (arc_challenge is the same): choice texts after 'Answer:'."""
    choices = _field(row, "choices", where)
    if not isinstance(choices, Mapping):
        raise EvalInputError(f"{where}: field 'choices' must be an object with 'text' and 'label'")
    texts = [str(t) for t in _list(choices.get("text"), "choices.text", where)]
    labels = [str(label) for label in _list(choices.get("label"), "choices.label", where)]
    key = str(_field(row, "answerKey", where))
    if key not in labels or len(texts) != len(labels):
        raise EvalInputError(f"{where}: answerKey {key!r} is not one of the labels {labels}")
    prompt = f"Question: {_field(row, 'question', where)}\nAnswer:"
    return ChoiceQuestion(prompt, tuple(texts), labels.index(key))


def _hellaswag_clean(text: str) -> str:
    """lm_eval/tasks/hellaswag/utils.py preprocess: WikiHow '[title]' and bracket artifacts removed."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag_question(row: Row, where: str) -> ChoiceQuestion:
    """lm_eval/tasks/hellaswag/hellaswag.yaml: 'activity: context' continued by each ending."""
    if "ctx_a" in row:
        context = f"{row['ctx_a']} {str(_field(row, 'ctx_b', where)).capitalize()}"
    else:
        context = str(_field(row, "ctx", where))
    activity = str(row.get("activity_label") or "")
    query = _hellaswag_clean(f"{activity}: {context}" if activity else context)
    endings = [_hellaswag_clean(str(e)) for e in _list(_field(row, "endings", where), "endings", where)]
    return ChoiceQuestion(query, tuple(endings), _index(row.get("label"), len(endings), "label", where))


def boolq_question(row: Row, where: str) -> ChoiceQuestion:
    """lm_eval/tasks/super_glue/boolq/default.yaml: 'no'/'yes' after the passage and question."""
    answer = row["answer"] if "answer" in row else _field(row, "label", where)
    if not isinstance(answer, bool | int) or int(answer) not in (0, 1):
        raise EvalInputError(f"{where}: field 'answer' must be true/false (or label 0/1), got {answer!r}")
    prompt = f"{_field(row, 'passage', where)}\nQuestion: {_field(row, 'question', where)}?\nAnswer:"
    return ChoiceQuestion(prompt, ("no", "yes"), int(answer))


def gsm8k_example(row: Row, where: str) -> tuple[str, str]:
    """lm_eval/tasks/gsm8k/gsm8k.yaml: the prompt and the full worked answer (ending '#### <number>')."""
    prompt = f"Question: {_field(row, 'question', where)}\nAnswer:"
    return prompt, " " + str(_field(row, "answer", where))  # lm-eval's target delimiter: a space


def wikitext_document(row: Row, where: str) -> str:
    """lm_eval/tasks/wikitext/preprocess_wikitext.py wikitext_detokenizer applied to the 'page' column."""
    text = str(row["page"] if "page" in row else _field(row, "text", where))
    text = text.replace("s '", "s'")
    text = re.sub(r"/' [0-9]/", r"/'[0-9]/", text)
    for spaced, joined in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", ".")):
        text = text.replace(spaced, joined)
    for mark in ":;.!?,":
        text = text.replace(f" {mark} ", f"{mark} ")
    for pattern, repl in (
        (r"\(\s*([^\)]*?)\s*\)", r"(\1)"),
        (r"\[\s*([^\]]*?)\s*\]", r"[\1]"),
        (r"{\s*([^}]*?)\s*}", r"{\1}"),
        (r"\"\s*([^\"]*?)\s*\"", r'"\1"'),
        (r"'\s*([^']*?)\s*'", r"'\1'"),
    ):
        text = re.sub(pattern, repl, text)
    text = text.replace("= = = =", "====").replace("= = =", "===").replace("= =", "==")
    text = text.replace(" " + chr(176) + " ", chr(176)).replace(" \n", "\n").replace("\n ", "\n")
    text = text.replace(" N ", " 1 ").replace(" 's", "'s")
    return text


@dataclass(frozen=True)
class Benchmark:
    """How one benchmark's rows become samples, and the lm-eval settings that go with it."""

    name: str
    kind: Literal["choice", "generation", "text"]
    metric: str  # the EvalJob metric that scores it
    question: Callable[[Row, str], ChoiceQuestion] | None = None
    example: Callable[[Row, str], tuple[str, str]] | None = None
    document: Callable[[Row, str], str] | None = None
    description: Callable[[Row], str] = lambda row: ""
    # lm-eval's few-shot sampler: "default" draws at random (seeded), "first_n" takes the pool's first
    # rows in order; `group` keeps examples to rows with the question's value of that field (MMLU subject).
    sampler: Literal["default", "first_n"] = "default"
    group: str | None = None
    # lm-eval draws n + 1 examples and drops the question itself whenever the few-shot split "equals" the
    # test split; in YAMLs with neither (boolq, hellaswag: both None) that holds for every draw.
    draws_one_more: bool = False
    until: tuple[str, ...] = ()
    max_new_tokens: int = 256  # lm-eval's default max_gen_toks
    answer: dict[str, Any] = field(default_factory=dict)  # an AnswerSpec


BENCHMARKS: dict[str, Benchmark] = {
    "mmlu": Benchmark(
        "mmlu", "choice", "accuracy", question=mmlu_question, description=mmlu_description,
        sampler="first_n", group="subject",
    ),
    "arc": Benchmark("arc", "choice", "accuracy", question=arc_question),
    "hellaswag": Benchmark(
        "hellaswag", "choice", "accuracy", question=hellaswag_question, draws_one_more=True
    ),
    "boolq": Benchmark("boolq", "choice", "accuracy", question=boolq_question, draws_one_more=True),
    "gsm8k": Benchmark(
        "gsm8k", "generation", "exact_match", example=gsm8k_example,
        until=("Question:", "</s>", "<|im_end|>"),
        answer={
            "regex": r"#### (\-?[0-9\.\,]+)",
            "ignoreCase": True,
            "regexesToIgnore": [",", "\\$", "(?s).*#### ", "\\.$"],
        },
    ),
    "wikitext": Benchmark("wikitext", "text", "perplexity", document=wikitext_document),
}  # fmt: skip


def benchmark_of(name: str) -> Benchmark:
    return BENCHMARKS[name]


def first_n_examples(
    rows: Sequence[Row],
    pool_rows: Sequence[Row],
    pool_turns: Sequence[Turn],
    *,
    n: int,
    group: str | None,
    where: str,
) -> list[list[Turn]]:
    """lm-eval's first_n sampler: each question gets the first `n` pool examples (of its group)."""
    examples = []
    for row in rows:
        turns = [
            t
            for r, t in zip(pool_rows, pool_turns, strict=True)
            if group is None or r.get(group) == row.get(group)
        ]
        if len(turns) < n:
            of = f" with {group} {row.get(group)!r}" if group else ""
            raise EvalInputError(f"{where}: {len(turns)} few-shot examples{of}, but numFewshot is {n}")
        examples.append(turns[:n])
    return examples
