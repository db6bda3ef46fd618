"""Few-shot prompts of multiple-choice tasks: the draw, the text, where examples come from, bad input.

That the draw and the text equal lm-evaluation-harness's is checked against lm_eval itself in
test_eval_lm_eval_parity.py; these tests need no model.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.fewshot import FewshotPool, fewshot_contexts, shots_label
from kubetune_evaluator.metrics.choice_accuracy import ChoiceQuestion
from kubetune_evaluator.samples import build_task_samples
from kubetune_operator.api import EvalJobSpec, FewshotSpec


def _rows(n: int, prefix: str) -> list[dict[str, Any]]:
    return [{"question": f"{prefix} {i}?", "choices": ["yes", "no"], "answer": i % 2} for i in range(n)]


def _pool(rows: list[dict[str, Any]]) -> FewshotPool:
    questions = [ChoiceQuestion(f"{r['question']}\nAnswer:", ("yes", "no"), r["answer"]) for r in rows]
    return FewshotPool(rows=rows, questions=questions, where="pool")


def test_an_example_is_prompt_space_answer_delimiter() -> None:
    pool = _pool(_rows(1, "Dev"))
    (context,) = fewshot_contexts(
        [{"question": "Test?"}], pool, n=1, seed=0, delimiter="\n\n", same_split=False
    )
    assert context == "Dev 0?\nAnswer: yes\n\n"


def test_one_seeded_generator_draws_for_each_question_in_turn() -> None:
    """lm-eval's sampler: random.Random(seed).sample(pool, n) per question, in order."""
    pool_rows = _rows(10, "Dev")
    test_rows = _rows(4, "Test")
    contexts = fewshot_contexts(test_rows, _pool(pool_rows), n=3, seed=1234, delimiter="|", same_split=False)
    rng = random.Random(1234)
    for context in contexts:
        expected = "".join(
            f"{pool_rows[i]['question']}\nAnswer: {'yes' if i % 2 == 0 else 'no'}|"
            for i in rng.sample(range(10), 3)
        )
        assert context == expected
    assert len(set(contexts)) > 1  # different examples per question


def test_a_question_is_never_its_own_example_when_the_pool_holds_it() -> None:
    rows = _rows(4, "Q")
    for seed in range(20):
        contexts = fewshot_contexts(rows, _pool(rows), n=3, seed=seed, delimiter="|", same_split=True)
        for row, context in zip(rows, contexts, strict=True):
            examples = context.split("|")[:-1]
            assert len(examples) == 3
            assert not any(e.startswith(row["question"]) for e in examples)


def test_too_few_examples_is_bad_input() -> None:
    rows = _rows(3, "Q")
    with pytest.raises(EvalInputError, match="3 few-shot examples, but numFewshot 3 needs at least 4"):
        fewshot_contexts(rows, _pool(rows), n=3, seed=0, delimiter="", same_split=True)


def _spec(tmp_path: Path, rows: list[dict[str, Any]], **spec: Any) -> EvalJobSpec:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return EvalJobSpec.model_validate(
        {
            "model": {"uri": str(tmp_path / "model")},
            "dataset": {"uri": str(data), "split": "test", "splitSpec": {"validation": 0.1, "test": 0.2}},
            "metrics": ["accuracy"],
            "output": {"uri": str(tmp_path / "out")},
            **spec,
        }
    )


def test_examples_come_from_the_training_rows_by_default(tmp_path: Path) -> None:
    rows = _rows(50, "Q")
    spec = _spec(tmp_path, rows, fewshot={"numFewshot": 2})
    (task,) = build_task_samples(spec)
    zero_shot = build_task_samples(_spec(tmp_path, rows))[0]
    training = set(range(50)) - set(task.rows)
    for question, plain in zip(task.questions, zero_shot.questions, strict=True):
        examples, _, rest = question.prompt.rpartition("\n\n")
        assert rest == plain.prompt
        asked = [int(e.split("?")[0].split()[-1]) for e in examples.split("\n\n")]
        assert len(asked) == 2 and set(asked) <= training


def test_examples_from_a_separate_dev_file(tmp_path: Path) -> None:
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps(row) + "\n" for row in _rows(5, "Dev")))
    spec = _spec(tmp_path, _rows(20, "Q"), fewshot={"numFewshot": 5, "uri": str(dev), "delimiter": "\n"})
    (task,) = build_task_samples(spec)
    for question in task.questions:
        assert sorted(line for line in question.prompt.splitlines() if line.startswith("Dev")) == [
            f"Dev {i}?" for i in range(5)
        ]


def test_generation_examples_are_prompt_completion_delimiter_from_the_training_rows(tmp_path: Path) -> None:
    rows = [{"prompt": f"Q{i}:", "completion": f" A{i}"} for i in range(40)]
    spec = _spec(tmp_path, rows, metrics=["exact_match"], fewshot={"numFewshot": 2})
    (task,) = build_task_samples(spec)
    assert task.kind == "generation"
    training = set(range(40)) - set(task.rows)
    for sample in task.generation:
        *examples, prompt = sample.prompt.split("\n\n")
        assert prompt == f"Q{sample.row}:"
        assert len(examples) == 2
        for example in examples:
            number = int(example.split(":")[0][1:])
            assert example == f"Q{number}: A{number}" and number in training


def test_fewshot_with_chat_rows_is_bad_input(tmp_path: Path) -> None:
    chat = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    spec = _spec(tmp_path, [chat] * 10, metrics=["exact_match"], fewshot={"numFewshot": 1})
    with pytest.raises(EvalInputError, match="few-shot"):
        build_task_samples(spec)


def test_the_signature_names_the_prompting() -> None:
    assert shots_label(FewshotSpec()) == "0-shot"
    assert shots_label(FewshotSpec(num_fewshot=5)) == "5-shot(seed 1234, from train rows)"
    assert FewshotSpec.model_validate({"numFewshot": 5}).num_fewshot == 5
