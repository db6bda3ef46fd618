"""`chatTemplate.apply: auto`: each model's prompts go through its chat template when its tokenizer has one,
plain otherwise, and the signatures say which each model got.

The slow test scores MMLU (2-shot) with the tiny model (which has a chat template) against a baseline
whose tokenizer has none: the model's log-likelihoods equal an `apply: true` run, the baseline's an
`apply: false` run, the signature names both choices, and 2 shards merged (through the shard files'
JSON) equal one pod.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from kubetune_evaluator.chat_prompts import chat_label, uses_chat_template
from kubetune_evaluator.metrics.choice_accuracy import accuracy_signature
from kubetune_evaluator.runner import compute_shard, finish_eval, merge_requests, run_eval
from kubetune_evaluator.sample_records import sample_records
from kubetune_evaluator.shard import Shard
from kubetune_evaluator.shard_exchange import ShardIdentity, decode_shard, encode_shard
from kubetune_operator.api import EvalJobSpec
from kubetune_operator.api.evaljob import ChatTemplateSpec

DATA = Path(__file__).parents[2] / "data" / "mmlu"
AUTO_FOUND = "chat-template(auto, fewshot multiturn)"
AUTO_NONE = "no-chat-template(auto: the tokenizer has none)"


class _Tokenizer:
    def __init__(self, template: str | None) -> None:
        self.chat_template = template


def test_auto_follows_the_tokenizer_and_true_or_false_do_not() -> None:
    auto, always = ChatTemplateSpec(apply="auto"), ChatTemplateSpec(apply=True)
    assert uses_chat_template(auto, _Tokenizer("{{ messages }}")) is True
    assert uses_chat_template(auto, _Tokenizer(None)) is False
    assert uses_chat_template(auto, _Tokenizer("")) is False
    assert uses_chat_template(always, _Tokenizer(None)) is True  # render_chat then refuses it
    assert uses_chat_template(None, _Tokenizer("{{ messages }}")) is False  # apply: false
    assert chat_label(True, applied=True, auto=True) == AUTO_FOUND
    assert chat_label(False, applied=False, auto=True) == AUTO_NONE
    assert chat_label(False) == "chat-template(fewshot single turn)"
    assert chat_label(True, applied=False) == ""
    # auto without a template scores plain text: the space before each choice, and says why.
    assert f"{AUTO_NONE}|continuation:' '+choice" in accuracy_signature("2-shot", AUTO_NONE, templated=False)
    assert f"{AUTO_FOUND}|continuation:choice" in accuracy_signature("2-shot", AUTO_FOUND, templated=True)


@pytest.mark.parametrize("value", ["sometimes", "true", 1, None])
def test_apply_is_true_false_or_auto(value: Any) -> None:
    with pytest.raises(ValueError, match="apply"):
        ChatTemplateSpec.model_validate({"apply": value})


def _spec(model: Path, tmp_path: Path, apply: bool | str, baseline: Path | None = None) -> EvalJobSpec:
    return EvalJobSpec.model_validate(
        {
            "model": {"uri": str(model)},
            **({"baseline": {"uri": str(baseline)}} if baseline else {}),
            "dataset": {"uri": str(DATA / "test.jsonl")},
            "tasks": [{"name": "mmlu", "benchmark": "mmlu", "fewshotUri": str(DATA / "dev.jsonl")}],
            "metrics": ["accuracy"],
            "fewshot": {"numFewshot": 2},
            "chatTemplate": {"apply": apply},
            "generation": {"batchSize": 4, "maxSamples": 10},
            "output": {"uri": str(tmp_path / "out")},
        }
    )


@pytest.mark.slow
def test_auto_applies_the_template_of_the_model_that_has_one_only(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    without = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, without)
    (without / "chat_template.jinja").unlink()  # the tiny tokenizer's template lives only here
    spec = _spec(tiny_model_dir, tmp_path, "auto", baseline=without)
    auto = run_eval(spec)

    templated = run_eval(_spec(tiny_model_dir, tmp_path, True))
    plain = run_eval(_spec(without, tmp_path, False))
    assert auto.model.choice_loglikelihoods == templated.model.choice_loglikelihoods
    assert auto.baseline is not None
    assert auto.baseline.choice_loglikelihoods == plain.model.choice_loglikelihoods
    assert auto.model.choice_loglikelihoods != plain.model.choice_loglikelihoods  # the template mattered
    signature = auto.signatures["accuracy"]
    assert f"{AUTO_FOUND}|continuation:choice" in signature
    assert signature.endswith(f"|baseline:{AUTO_NONE}")
    assert "|baseline:" not in templated.signatures["accuracy"]
    records = sample_records(auto)
    assert len(records) == 10 and all(r["prompt"].endswith("<|assistant|>") for r in records)

    # Two shards, each shard's requests through the JSON of its shard file, merged: the same outcome.
    identity = ShardIdentity(job_uid="uid", attempt=0, spec_digest="digest")
    parts = []
    for rank in range(2):
        shard = Shard(rank, 2)
        tasks, systems = compute_shard(spec, shard)
        assert [system.chat for system in systems] == [{"mmlu": True}, {"mmlu": False}]
        parts.append(decode_shard(encode_shard(identity, shard, systems), identity, shard))
    merged = [merge_requests([systems[i] for systems in parts]) for i in range(2)]
    sharded = finish_eval(spec, tasks, merged)
    assert sharded.results == auto.results
    assert sample_records(sharded) == records
