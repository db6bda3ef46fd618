"""The torch-free data side: readers, templates, formats, split, mixture, pipeline."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kubetune_operator.api import FineTuneJobSpec
from kubetune_operator.data.datasets import read_rows
from kubetune_operator.data.errors import ConfigError, DataError, TemplateError
from kubetune_operator.data.formats import rows_to_examples
from kubetune_operator.data.mixture import TaskExamples, mix_tasks
from kubetune_operator.data.pipeline import prepare_data
from kubetune_operator.data.split import manifest_indices, split_indices
from kubetune_operator.data.templates import compile_templates, render_row

ROWS = [{"review": f"review {i}", "stars": i % 5 + 1} for i in range(50)]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reads_every_file_type_and_shard_prefixes_in_name_order(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "part-0.jsonl", ROWS[:10])
    (shards / "part-1.json").write_text(json.dumps(ROWS[10:20]))
    (shards / "part-2.csv").write_text(
        "review,stars\n" + "".join(f"{r['review']},{r['stars']}\n" for r in ROWS[20:30])
    )
    pq.write_table(pa.Table.from_pylist(ROWS[30:40]), shards / "part-3.parquet")
    (shards / "README.md").write_text("ignored")
    rows = read_rows(str(shards))
    assert [r["review"] for r in rows] == [r["review"] for r in ROWS[:40]]
    assert rows[25]["stars"] == str(ROWS[25]["stars"])  # csv values are text
    assert rows[35]["stars"] == ROWS[35]["stars"]


def test_unreadable_and_invalid_files_name_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_rows(str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"bad.jsonl: line 2: invalid JSON"):
        read_rows(str(bad))
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"broken.parquet: not a readable parquet"):
        read_rows(str(tmp_path / "broken.parquet"))


def test_jinja_and_format_templates_render_and_missing_fields_are_named() -> None:
    templates = compile_templates(
        [("Rate: {{ review }}", " {{ stars }}"), ("Rate this: {review}", " {stars}")], "t"
    )
    seen = {render_row(templates, ROWS[3], random.Random(s), "row 4") for s in range(20)}
    assert seen == {("Rate: review 3", " 4"), ("Rate this: review 3", " 4")}
    with pytest.raises(TemplateError, match=r"row 9: task 't' template 0 prompt: 'body' is undefined"):
        compile_templates([("{{ body }}", "{{ stars }}")], "t")[0].render(ROWS[8], "row 9")
    with pytest.raises(TemplateError, match=r"field 'body' is not in the row"):
        compile_templates([("{body}", "{stars}")], "t")[0].render(ROWS[0], "row 1")


def test_templates_are_sandboxed_and_reject_attribute_access() -> None:
    with pytest.raises(TemplateError, match="plain field name"):
        compile_templates([("{review.__class__}", "x")], "t")
    with pytest.raises(TemplateError):  # the Jinja2 sandbox refuses access to internals
        compile_templates([("{{ review.__class__.__mro__ }}", "x")], "t")[0].render(ROWS[0], "row 1")


def test_formats_auto_detect_and_reject_missing_or_empty_completions() -> None:
    rows = [{"instruction": "Add", "input": "1 2", "output": "3"}, {"instruction": "Say hi", "output": "hi"}]
    alpaca = rows_to_examples(rows, source="a.jsonl")
    assert "### Input:\n1 2" in alpaca[0].prompt and alpaca[0].completion == "3"
    assert "### Input" not in alpaca[1].prompt
    text = rows_to_examples([{"text": "hello"}], source="t.jsonl")
    assert (text[0].prompt, text[0].completion) == ("", "hello")
    chat = rows_to_examples(
        [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}],
        source="c.jsonl",
    )
    assert chat[0].messages is not None and chat[0].messages[-1]["content"] == "a"
    with pytest.raises(DataError, match=r"p.jsonl: row 2: missing field 'completion'"):
        rows_to_examples(
            [{"prompt": "a", "completion": "b"}, {"prompt": "a"}], source="p.jsonl", fmt="prompt_completion"
        )
    with pytest.raises(DataError, match=r"p.jsonl: row 1: empty completion"):
        rows_to_examples([{"prompt": "a", "completion": "  "}], source="p.jsonl")
    with pytest.raises(DataError, match="cannot detect the dataset format"):
        rows_to_examples([{"foo": 1}], source="x.jsonl")


def test_template_choice_of_a_row_does_not_depend_on_the_other_rows_selected() -> None:
    templates = compile_templates([(f"T{i} {{review}}", "{stars}") for i in range(5)], "t")
    everything = rows_to_examples(ROWS, source="s", task="t", templates=templates, seed=7)
    some = rows_to_examples(ROWS, source="s", task="t", templates=templates, seed=7, indices=[3, 30])
    assert [e.prompt for e in some] == [everything[3].prompt, everything[30].prompt]
    assert len({e.prompt.split()[0] for e in everything}) == 5


def test_split_is_deterministic_disjoint_and_sized() -> None:
    a = split_indices(1000, 0.1, 0.2, seed=42)
    assert split_indices(1000, 0.1, 0.2, seed=42) == a
    assert (len(a.train), len(a.validation), len(a.test)) == (700, 100, 200)
    assert sorted(a.train + a.validation + a.test) == list(range(1000))
    assert split_indices(1000, 0.1, 0.2, seed=43).test != a.test
    assert len(split_indices(5, 0.05, 0.05, seed=1).test) == 1  # a requested hold-out never vanishes
    with pytest.raises(DataError, match="nothing left to train"):
        split_indices(2, 0.5, 0.4, seed=1)


def test_mixture_caps_weights_and_shuffles() -> None:
    big = rows_to_examples([{"text": f"b{i}"} for i in range(100)], source="b", task="big")
    small = rows_to_examples([{"text": f"s{i}"} for i in range(10)], source="s", task="small")
    mixed = mix_tasks([TaskExamples("big", big, 1.0, 30), TaskExamples("small", small, 2.0)], seed=1)
    tasks = [e.task for e in mixed]
    assert tasks.count("big") == 30 and tasks.count("small") == 20
    assert len({e.completion for e in mixed if e.task == "small"}) == 10  # up-sampled: every row twice
    assert tasks != sorted(tasks)
    with pytest.raises(ConfigError, match="empty"):
        mix_tasks([TaskExamples("none", [], 1.0)], seed=1)


def test_prepare_data_builds_splits_manifest_and_fails_before_output_on_bad_rows(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "reviews.jsonl", ROWS)
    spec = FineTuneJobSpec.model_validate(
        {
            "model": {"uri": "/m"},
            "output": {"uri": str(tmp_path / "out")},
            "dataset": {"uri": str(data), "split": {"validation": 0.1, "test": 0.2, "seed": 3}},
            "tasks": [
                {
                    "name": "rating",
                    "templates": [{"prompt": "Rate: {{ review }}", "completion": " {{ stars }}"}],
                    "maxExamples": 20,
                }
            ],
        }
    )
    prepared = prepare_data(spec)
    assert prepared.counts["rating"] == {"rows": 50, "train": 35, "mixture": 20, "validation": 5, "test": 10}
    test_rows = manifest_indices(prepared.manifest, "rating", "test")
    assert [e.row for e in prepared.test] == test_rows
    assert all(prepared.test[i].prompt == f"Rate: review {r}" for i, r in enumerate(test_rows))
    assert not set(test_rows) & {e.row for e in prepared.train}
    write_jsonl(data, [*ROWS[:10], {"stars": 3}, *ROWS[10:]])
    with pytest.raises(TemplateError, match=r"reviews.jsonl: row 11: .*'review' is undefined"):
        prepare_data(spec)
    assert not (tmp_path / "out").exists()
