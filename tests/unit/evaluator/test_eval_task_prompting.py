"""Per-task prompting: each task's own numFewshot and seed, chat-template messages, the signatures.

That the chat-template prompts and scores equal lm-evaluation-harness's `apply_chat_template` is checked
against lm_eval itself in test_eval_lm_eval_mmlu_parity.py; these tests need no model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from kubetune_evaluator.chat_prompts import Dialogue, chat_messages, render_chat
from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.fewshot import FewshotPool, fewshot_contexts
from kubetune_evaluator.metrics.choice_accuracy import ChoiceQuestion, accuracy_signature
from kubetune_evaluator.runner import joined_signature
from kubetune_evaluator.samples import build_task_samples
from kubetune_operator.api import EvalJobSpec

MMLU = Path(__file__).parents[2] / "data" / "mmlu"


def _choice_rows(n: int) -> list[dict[str, Any]]:
    return [{"question": f"Q {i}?", "choices": ["yes", "no"], "answer": i % 2} for i in range(n)]


def _spec(tmp_path: Path, tasks: list[dict[str, Any]], **spec: Any) -> EvalJobSpec:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in _choice_rows(30)))
    return EvalJobSpec.model_validate(
        {
            "model": {"uri": str(tmp_path / "model")},
            "dataset": {"uri": str(data), "split": "all"},
            "metrics": ["accuracy"],
            "output": {"uri": str(tmp_path / "out")},
            "tasks": tasks,
            **spec,
        }
    )


def _user_task(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "templates": [{"prompt": "{{ question }}\nAnswer:", "completion": "x"}], **extra}


def test_each_task_has_its_own_fewshot_count_and_seed(tmp_path: Path) -> None:
    mmlu = {"name": "mmlu", "dataset": {"uri": str(MMLU / "test.jsonl")}, "benchmark": "mmlu"}
    spec = _spec(
        tmp_path,
        [
            {**mmlu, "fewshotUri": str(MMLU / "dev.jsonl")},  # the job's 3
            {**mmlu, "name": "mmlu-0", "fewshot": {"numFewshot": 0}},
            _user_task("seed-7", fewshot={"numFewshot": 2, "seed": 7}),
            _user_task("seed-job", fewshot={"numFewshot": 2}),
        ],
        fewshot={"numFewshot": 3, "seed": 11, "split": "all"},
    )
    three, zero, seven, job_seed = build_task_samples(spec)
    assert {q.prompt.count("Answer:") for q in three.questions} == {4}
    assert {q.prompt.count("Answer:") for q in zero.questions} == {1}
    assert (three.shots, zero.shots) == ("3-shot(seed 11, from fewshotUri)", "0-shot")
    assert (seven.shots, job_seed.shots) == (
        "2-shot(seed 7, from all rows)",
        "2-shot(seed 11, from all rows)",
    )
    # The draw of each is lm-eval's with that task's seed (the pool is the scored file: no self-examples).
    rows = _choice_rows(30)
    pool = FewshotPool(
        rows=rows,
        questions=[ChoiceQuestion(f"{r['question']}\nAnswer:", ("yes", "no"), r["answer"]) for r in rows],
    )
    for task, seed in ((seven, 7), (job_seed, 11)):
        contexts = fewshot_contexts(rows, pool, n=2, seed=seed, delimiter="\n\n", same_split=True)
        assert [q.prompt for q in task.questions] == [c + f"Q {i}?\nAnswer:" for i, c in enumerate(contexts)]
    assert [q.prompt for q in seven.questions] != [q.prompt for q in job_seed.questions]


def test_a_task_fewshot_count_is_refused_for_perplexity_and_range_checked(tmp_path: Path) -> None:
    text = tmp_path / "wiki.jsonl"
    text.write_text(json.dumps({"page": "Some page text ."}) + "\n")
    spec = _spec(
        tmp_path,
        [
            {
                "name": "wiki",
                "benchmark": "wikitext",
                "dataset": {"uri": str(text)},
                "fewshot": {"numFewshot": 1},
            }
        ],
        metrics=["perplexity"],
    )
    with pytest.raises(EvalInputError, match="numFewshot: task 'wiki'"):
        build_task_samples(spec)
    with pytest.raises(pydantic.ValidationError, match="less than or equal to 64"):
        _spec(tmp_path, [_user_task("t", fewshot={"numFewshot": 65})])


def test_chat_messages_as_lm_eval_builds_them() -> None:
    dialogue = Dialogue(
        "About maths.\n\n",
        (("1+1?\nAnswer:", " ", "B"), ("2+2?\nAnswer:", " ", "D")),
        "3+3?\nAnswer:",
        "\n\n",
    )
    assert dialogue.text() == "About maths.\n\n1+1?\nAnswer: B\n\n2+2?\nAnswer: D\n\n3+3?\nAnswer:"
    assert chat_messages(dialogue, multiturn=True) == [
        {"role": "system", "content": "About maths.\n\n"},
        {"role": "user", "content": "1+1?\nAnswer:"},
        {"role": "assistant", "content": "B"},
        {"role": "user", "content": "2+2?\nAnswer:"},
        {"role": "assistant", "content": "D"},
        {"role": "user", "content": "3+3?\nAnswer:"},
    ]
    assert chat_messages(dialogue, multiturn=False) == [
        {"role": "system", "content": "About maths.\n\n"},
        {"role": "user", "content": "1+1?\nAnswer: B\n\n2+2?\nAnswer: D\n\n3+3?\nAnswer:"},
    ]
    assert chat_messages(Dialogue("", (), "Q"), multiturn=True) == [{"role": "user", "content": "Q"}]


class _Tokenizer:
    """A tokenizer whose template refuses system turns (Gemma's does), or that has none."""

    def __init__(self, template: str | None) -> None:
        self.chat_template = template

    def apply_chat_template(self, messages: list[dict[str, str]], **options: Any) -> str:
        import jinja2  # noqa: PLC0415

        if any(m["role"] == "system" for m in messages):
            raise jinja2.exceptions.TemplateError("System role not supported")
        assert options == {"tokenize": False, "add_generation_prompt": True, "continue_final_message": False}
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


def test_a_template_without_system_turns_gets_none_and_no_template_is_bad_input() -> None:
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    assert render_chat(_Tokenizer("t"), messages) == "<user>Q<assistant>"
    with pytest.raises(EvalInputError, match="no chat template"):
        render_chat(_Tokenizer(None), messages)


def test_the_chat_setting_reaches_the_tasks_and_the_signatures(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        [_user_task("plain"), _user_task("chat", chatTemplate={"apply": True, "fewshotAsMultiturn": False})],
    )
    plain, chat = build_task_samples(spec)
    assert (plain.chat, plain.chat_label(False)) == (None, "")
    assert chat.chat_label(True) == "chat-template(fewshot single turn)"
    job_wide = build_task_samples(_spec(tmp_path, [_user_task("t")], chatTemplate={"apply": True}))[0]
    assert job_wide.chat_label(True) == "chat-template(fewshot multiturn)"
    assert "no-chat-template|continuation:' '+choice" in accuracy_signature("0-shot")
    assert "chat-template(fewshot multiturn)|continuation:choice" in accuracy_signature(
        "0-shot", chat.chat_label(True).replace("single turn", "multiturn")
    )
    assert joined_signature({"a": "s1", "b": "s1"}) == "s1"
    assert joined_signature({"a": "s1", "b": "s2"}) == "a=s1 ; b=s2"
