"""Bad data and bad specs give a clear error naming the row/field, exit code 2, and no output at all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kubetune_devtools.tiny_models import letter_task_spec, reverse_task_rows, write_finetune_job, write_rows
from kubetune_operator.api import LoraSpec
from kubetune_operator.cli import app
from kubetune_operator.data.errors import ConfigError
from kubetune_trainer.modeling import apply_lora


def run_cli(
    tmp_path: Path,
    model: Path,
    rows: list[dict[str, Any]] | None,
    *args: str,
    prompt: str = "Reverse: {{ word }}",
    data_name: str = "data.jsonl",
) -> tuple[int, str, Path]:
    data = tmp_path / data_name
    if rows is not None:
        write_rows(data, rows)
    out = tmp_path / "out"
    spec = letter_task_spec(str(model), str(data), str(out), prompt=prompt, completion=" {{ reversed }}")
    job = write_finetune_job(tmp_path / "job.yaml", "bad", spec)
    result = CliRunner().invoke(app, ["train", *args, str(job)])
    return result.exit_code, result.output, out


GOOD = reverse_task_rows(40)


@pytest.mark.parametrize(
    ("rows", "prompt", "expected"),
    [
        ([*GOOD[:5], {"word": "a b"}, *GOOD[5:]], "Reverse: {{ word }}", r"row 6: .*'reversed' is undefined"),
        (
            [*GOOD[:7], {"word": "a", "reversed": " "}, *GOOD[7:]],
            "Reverse: {{ word }}",
            r"row 8: empty completion",
        ),
        (GOOD, "Reverse: {{ wrod }}", r"row 1: task 'letters' template 0 prompt: 'wrod' is undefined"),
        (GOOD, "Reverse: {wrod}", r"row 1: .*field 'wrod' is not in the row"),
        (None, "Reverse: {{ word }}", r"data.jsonl: dataset not found"),
    ],
    ids=["missing-field", "empty-completion", "jinja-absent-field", "format-absent-field", "missing-file"],
)
def test_bad_data_fails_with_the_row_and_field_and_writes_nothing(
    tmp_path: Path, tiny_model_dir: Path, rows: list[dict[str, Any]] | None, prompt: str, expected: str
) -> None:
    code, output, out = run_cli(tmp_path, tiny_model_dir, rows, prompt=prompt)
    assert code == 2, output
    assert "Traceback" not in output

    assert re.search(expected, output), output
    assert not out.exists()


def test_unreadable_file_is_reported(tmp_path: Path, tiny_model_dir: Path) -> None:
    (tmp_path / "data.parquet").write_bytes(b"PAR1 garbage")
    code, output, out = run_cli(tmp_path, tiny_model_dir, None, data_name="data.parquet")
    assert code == 2 and "data.parquet: not a readable parquet file" in output and not out.exists()


def test_dry_run_shows_counts_lengths_and_loss_mask(tmp_path: Path, tiny_model_dir: Path) -> None:
    code, output, out = run_cli(tmp_path, tiny_model_dir, GOOD, "--dry-run")
    assert code == 0, output
    assert "letters" in output and "34" in output  # 40 rows - 2 validation - 4 test
    assert "truncated prompts 0" in output and "Preview" in output
    assert "Reverse: " in output and "⟦" in output  # the reversed letters and EOS carry the loss
    assert "⟦ " in output and "</s>⟧" in output
    assert not out.exists()


def test_lora_target_modules_are_checked_against_the_model(tiny_model_dir: Path) -> None:
    # deferred: transformers cost seconds to import; collecting other tests skips them
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with pytest.raises(ConfigError, match=r"\['qkv'\] not in the model; its linear modules are .*'q_proj'"):
        apply_lora(model, LoraSpec(target_modules=["q_proj", "qkv"]), gradient_checkpointing=False)
