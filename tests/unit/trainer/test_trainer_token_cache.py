"""The token cache: batched tokenization, streamed reading, the memory-mapped store, build once / reuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubetune_operator.api import FineTuneJobSpec
from kubetune_operator.data.datasets import iter_file_rows, read_file_rows
from kubetune_operator.data.errors import DataError
from kubetune_operator.data.formats import Example
from kubetune_operator.data.pipeline import prepare_data
from kubetune_operator.data.storage import StorageOptions
from kubetune_trainer import token_cache
from kubetune_trainer.batching import make_units
from kubetune_trainer.token_store import ExampleStore, StoreWriter
from kubetune_trainer.tokenization import (
    TruncationStats,
    tokenize_batch,
    tokenize_example,
    tokenize_examples,
)

ROWS = [{"review": f"review {i} " + "a b " * (i % 7), "stars": i % 5 + 1} for i in range(60)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def job_spec(tmp_path: Path, data: Path, model_dir: Path, max_len: int = 16) -> FineTuneJobSpec:
    """Two tasks over one dataset (two templates each), a split and a capped, up-weighted mixture."""
    return FineTuneJobSpec.model_validate(
        {
            "model": {"uri": str(model_dir)},
            "output": {"uri": str(tmp_path / "out")},
            "dataset": {"uri": str(data), "split": {"validation": 0.1, "test": 0.2, "seed": 3}},
            "tasks": [
                {
                    "name": "rating",
                    "templates": [
                        {"prompt": "Rate: {{ review }}", "completion": " {{ stars }}"},
                        {"prompt": "Stars for {review}?", "completion": " {stars}"},
                    ],
                    "maxExamples": 30,
                },
                {
                    "name": "copy",
                    "templates": [{"prompt": "Copy: {{ review }}", "completion": " {{ review }}"}],
                    "weight": 1.5,
                },
            ],
            "hyperparameters": {"maxSeqLength": max_len, "seed": 5},
        }
    )


def as_pairs(examples: Any) -> list[tuple[list[int], list[int], str, int]]:
    return [(e.input_ids, e.labels, e.task, e.row) for e in examples]


def test_batched_tokenization_equals_one_example_at_a_time(tiny_tokenizer: Any) -> None:
    examples = [
        Example("Reverse: a b c\nAnswer:", " c b a"),
        Example("", "a b c d e f"),  # text format: no prompt tokens at all, not even BOS
        Example("p " * 40, " x y"),  # the prompt is cut from the left
        Example("q", " z" * 40),  # the completion's tail is cut
        Example("", "", messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]),
    ]
    one, batched = TruncationStats(), TruncationStats()
    expected = [tokenize_example(tiny_tokenizer, e, 24, one) for e in examples]
    assert as_pairs(tokenize_batch(tiny_tokenizer, examples, 24, batched)) == as_pairs(expected)
    assert (batched.examples, batched.prompt_truncated, batched.completion_truncated) == (5, 1, 1)
    assert batched.as_dict() == one.as_dict()


def test_a_local_jsonl_file_streams_the_same_rows_and_names_a_bad_line(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", ROWS)
    with data.open("a") as f:
        f.write("\n")  # blank lines are skipped, as by the whole-file reader
    assert list(iter_file_rows(str(data))) == read_file_rows(str(data))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n\n[1]\n')
    rows = iter_file_rows(str(bad))
    assert next(rows) == {"a": 1}
    with pytest.raises(DataError, match=r"bad.jsonl: line 3: expected a JSON object"):
        next(rows)


def test_store_round_trips_examples_views_and_lengths(tmp_path: Path, tiny_tokenizer: Any) -> None:
    examples = [
        Example(f"Rate: {i}", " a b" * (i % 4 + 1), task=("t1", "t2")[i % 2], row=i) for i in range(30)
    ]
    tokenized, _ = tokenize_examples(tiny_tokenizer, examples, 32)
    writer = StoreWriter(tmp_path / "store", ["t1", "t2"])
    for example in tokenized:
        writer.add(example)
    writer.close()
    store = ExampleStore(tmp_path / "store", ["t1", "t2"])
    assert as_pairs(store) == as_pairs(tokenized)
    assert store.lengths.tolist() == [len(e) for e in tokenized]
    # A rank's share of a part, then one batch of it: views of views over the same files.
    part = store.view(np.array([29, 3, 3, 10, 7], dtype=np.int64))
    assert as_pairs(part[1::2]) == as_pairs([tokenized[3], tokenized[10]])
    assert part[0].row == 29 and part[0].task == "t2"
    assert make_units(part, packing=False, capacity=64) == [[0], [1], [2], [3], [4]]
    packed = make_units(part, packing=True, capacity=64)
    assert sorted(i for unit in packed for i in unit) == [0, 1, 2, 3, 4]
    assert all(sum(len(part[i]) for i in unit) <= 64 for unit in packed)


def test_cache_equals_the_in_memory_pipeline(
    tmp_path: Path, tiny_model_dir: Path, tiny_tokenizer: Any
) -> None:
    """Same mixture order, held-out examples, manifest, counts and split files as prepare_data + tokenize."""
    data = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    spec = job_spec(tmp_path, data, tiny_model_dir)
    cached = token_cache.prepare_token_data(spec, tiny_tokenizer, tiny_model_dir, tmp_path / "work")
    prepared = prepare_data(spec)
    for part in ("train", "validation", "test"):
        expected, _ = tokenize_examples(tiny_tokenizer, getattr(prepared, part), 16)
        assert as_pairs(getattr(cached, part)) == as_pairs(expected), part
    assert len(cached.train) == 30 + round(1.5 * 42)
    assert cached.counts == prepared.counts
    assert json.loads(json.dumps(prepared.manifest)) == cached.manifest
    assert cached.truncation.prompt_truncated > 0  # maxSeqLength 16 cuts the long reviews
    out = tmp_path / "split-out"
    cached.write_split_files(str(out), StorageOptions())
    for part in ("test", "validation"):
        lines = (out / "split" / f"{part}.jsonl").read_text().splitlines()
        assert lines == [json.dumps(e.to_json()) for e in getattr(prepared, part)]
    assert json.loads((out / "split" / "manifest.json").read_text()) == cached.manifest
    assert cached.directory == tmp_path / "out" / token_cache.CACHE_DIR / cached.directory.name


def test_cache_is_reused_and_rebuilt_when_an_input_changes(
    tmp_path: Path, tiny_model_dir: Path, tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    spec = job_spec(tmp_path, data, tiny_model_dir)
    first = token_cache.prepare_token_data(spec, tiny_tokenizer, tiny_model_dir, tmp_path / "work")
    assert not first.reused and (first.directory / token_cache.COMPLETE).exists()
    builds: list[Path] = []
    real_build = token_cache.build_cache
    monkeypatch.setattr(
        token_cache,
        "build_cache",
        lambda *a: builds.append(a[2]) or real_build(*a),  # type: ignore[func-returns-value]
    )
    again = token_cache.prepare_token_data(spec, tiny_tokenizer, tiny_model_dir, tmp_path / "work")
    assert again.reused and builds == [] and again.directory == first.directory
    assert as_pairs(again.train) == as_pairs(first.train)
    # Another maxSeqLength, or other rows in the same file: another key, built again.
    longer = token_cache.prepare_token_data(
        job_spec(tmp_path, data, tiny_model_dir, max_len=64),
        tiny_tokenizer,
        tiny_model_dir,
        tmp_path / "work",
    )
    assert not longer.reused and longer.directory != first.directory
    write_jsonl(data, ROWS[:40])
    changed = token_cache.prepare_token_data(spec, tiny_tokenizer, tiny_model_dir, tmp_path / "work")
    assert not changed.reused and changed.counts["rating"]["rows"] == 40
    assert len(builds) == 2
    # Each build removed the caches of other keys: they are never read again.
    assert [d.name for d in (tmp_path / "out" / token_cache.CACHE_DIR).iterdir()] == [changed.directory.name]
    # A cache whose build was cut short (no .complete marker) is not trusted.
    (changed.directory / token_cache.COMPLETE).unlink()
    assert not token_cache.prepare_token_data(spec, tiny_tokenizer, tiny_model_dir, tmp_path / "work").reused


def test_bad_rows_fail_the_build_naming_the_row(
    tmp_path: Path, tiny_model_dir: Path, tiny_tokenizer: Any
) -> None:
    data = write_jsonl(tmp_path / "rows.jsonl", [*ROWS[:5], {"review": "no stars"}])
    with pytest.raises(DataError, match=r"rows.jsonl: row 6.*stars"):
        token_cache.prepare_token_data(
            job_spec(tmp_path, data, tiny_model_dir), tiny_tokenizer, tiny_model_dir, tmp_path / "work"
        )
