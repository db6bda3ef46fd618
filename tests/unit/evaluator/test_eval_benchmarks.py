"""Each shipped benchmark renders a public-release row as lm-evaluation-harness's task YAML does.

Prompts, choices and targets are compared with lm_eval's own YAML fields rendered by lm_eval's Jinja
environment (and its hellaswag/wikitext preprocessing functions) on rows in the releases' columns; a
benchmark EvalJob task reads those columns, applies the answer rule, and names file and row on bad rows.
No model: the log-likelihood side is covered by the parity tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune_evaluator.answers import extract_answer, lm_eval_exact_match
from kubetune_evaluator.benchmarks import BENCHMARKS
from kubetune_evaluator.errors import EvalInputError
from kubetune_evaluator.samples import build_task_samples
from kubetune_operator.api import EvalJobSpec
from kubetune_operator.api.evaljob import AnswerSpec


def _lm_eval_dir() -> Path:
    try:
        # deferred: lm-eval cost seconds to import; collecting other tests skips them
        import lm_eval.tasks  # noqa: PLC0415
    except ModuleNotFoundError as error:
        pytest.fail(
            f"lm_eval is not installed ({error}): these tests need lm-eval (dev extra)", pytrace=False
        )
    return Path(lm_eval.tasks.__file__).parent


def _yaml(relative: str) -> dict[str, Any]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]
    loaded: dict[str, Any] = yaml.load((_lm_eval_dir() / relative).read_text(), Loader=Loader)
    return loaded


def _render(template: str, doc: dict[str, Any]) -> Any:
    # deferred: lm-eval cost seconds to import; collecting other tests skips them
    from lm_eval.utils import apply_template  # noqa: PLC0415

    return apply_template(template, doc)


ARC: dict[str, Any] = {
    "question": "Which gas do plants take in?",
    "choices": {"text": ["oxygen", "carbon dioxide", "helium"], "label": ["A", "B", "C"]},
    "answerKey": "B",
}
BOOLQ = {"question": "is the sky blue", "passage": "The sky looks blue by day.", "answer": True}
HELLASWAG = {
    "activity_label": "Cooking",
    "ctx_a": "A man cracks eggs into a bowl [title] Whisk them.",
    "ctx_b": "then he",
    "ctx": "A man cracks eggs into a bowl [title] Whisk them. then he",
    "endings": ["pours them  into a pan.", "sings [step] a song.", "leaves.", "eats the bowl."],
    "label": "0",
}
GSM8K = {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"}


def test_arc_prompt_choices_and_target_are_lm_evals() -> None:
    config = _yaml("arc/arc_easy.yaml")
    question = BENCHMARKS["arc"].question(ARC, "row")  # type: ignore[misc]
    assert question.prompt == _render(config["doc_to_text"], ARC)
    assert list(question.choices) == ARC["choices"]["text"]
    assert str(question.answer) == _render(config["doc_to_target"], ARC)


def test_boolq_prompt_and_no_yes_choices_are_lm_evals() -> None:
    config = _yaml("super_glue/boolq/default.yaml")
    question = BENCHMARKS["boolq"].question(BOOLQ, "row")  # type: ignore[misc]
    assert question.prompt == _render(config["doc_to_text"], BOOLQ)
    assert list(question.choices) == config["doc_to_choice"] and question.answer == 1


def test_hellaswag_query_and_endings_are_lm_evals_preprocessing() -> None:
    # deferred: datasets and lm-eval cost seconds to import; collecting other tests skips them
    import datasets  # noqa: PLC0415
    from lm_eval.tasks.hellaswag import utils  # noqa: PLC0415

    (doc,) = utils.process_docs(datasets.Dataset.from_list([HELLASWAG]))
    question = BENCHMARKS["hellaswag"].question(HELLASWAG, "row")  # type: ignore[misc]
    assert (question.prompt, list(question.choices), question.answer) == (
        doc["query"],
        doc["choices"],
        doc["gold"],
    )


def test_gsm8k_prompt_target_stops_and_strict_match_are_lm_evals() -> None:
    config = _yaml("gsm8k/gsm8k.yaml")
    bench = BENCHMARKS["gsm8k"]
    prompt, target = bench.example(GSM8K, "row")  # type: ignore[misc]
    assert prompt == _render(config["doc_to_text"], GSM8K)
    assert target == " " + _render(config["doc_to_target"], GSM8K)
    assert list(bench.until) == config["generation_kwargs"]["until"]
    strict = config["filter_list"][0]["filter"][0]
    answer = AnswerSpec.model_validate(bench.answer)
    assert answer.regex == strict["regex_pattern"]
    assert answer.regexes_to_ignore == config["metric_list"][0]["regexes_to_ignore"]
    prediction = extract_answer(" 3 plus 4 is 7.\n#### 7", answer)
    assert lm_eval_exact_match([prediction], [[GSM8K["answer"]]], answer).scores["exactMatch"].corpus == 1.0


def test_wikitext_detokenizer_is_lm_evals() -> None:
    # deferred: lm-eval cost seconds to import; collecting other tests skips them
    from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer  # noqa: PLC0415

    page = (
        ' = Title = \n The cat @-@ like ( big ) dog , 1 @,@ 000 " quoted " N times ; it \'s 5 @.@ 2 ° C . \n'
    )
    assert BENCHMARKS["wikitext"].document({"page": page}, "row") == wikitext_detokenizer({"page": page})  # type: ignore[misc]


def _spec(tmp_path: Path, rows: list[dict[str, Any]], benchmark: str, **extra: Any) -> EvalJobSpec:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return EvalJobSpec.model_validate(
        {
            "model": {"uri": str(tmp_path / "model")},
            "dataset": {"uri": str(path)},
            "tasks": [{"name": benchmark, "benchmark": benchmark}],
            "output": {"uri": str(tmp_path / "out")},
            **extra,
        }
    )


def test_gsm8k_task_scores_every_row_with_its_stops_and_answer_rule(tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps(GSM8K) + "\n")
    rows = [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1}"} for i in range(3)]
    spec = _spec(tmp_path, rows, "gsm8k", metrics=["exact_match"], fewshot={"numFewshot": 1})
    spec.tasks[0].fewshot_uri = str(train)
    (task,) = build_task_samples(spec)
    assert task.kind == "generation" and len(task) == 3  # every row: the file is the split
    assert task.until == ("Question:", "</s>", "<|im_end|>") and task.max_new_tokens == 256
    assert task.answer is not None and task.answer.ignore_case
    example = "Question: " + GSM8K["question"] + "\nAnswer: " + GSM8K["answer"] + "\n\n"
    assert task.generation[2].prompt == example + "Question: What is 2 + 1?\nAnswer:"
    assert task.generation[2].references == ("2 + 1 = 3\n#### 3",)


def test_bad_benchmark_row_names_file_row_and_field(tmp_path: Path) -> None:
    rows = [ARC, {**ARC, "answerKey": "Z"}]
    with pytest.raises(EvalInputError, match=r"data.jsonl: row 2 \(arc\): answerKey 'Z'"):
        build_task_samples(_spec(tmp_path, rows, "arc", metrics=["accuracy"]))


def test_a_task_needs_templates_or_a_benchmark() -> None:
    with pytest.raises(ValueError, match="templates are required unless benchmark is set"):
        EvalJobSpec.model_validate(
            {
                "model": {"uri": "/m"},
                "dataset": {"uri": "/d.jsonl"},
                "tasks": [{"name": "t"}],
                "output": {"uri": "/o"},
            }
        )
