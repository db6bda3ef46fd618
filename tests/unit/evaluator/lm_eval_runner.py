"""lm-evaluation-harness itself, run the one way every parity test compares against: its `hf` model on
CPU in fp32, batch 8, samples logged, no bootstrap, over task YAMLs written to a temporary folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml


def lm_eval_tasks_root() -> Path:
    """The folder of lm-eval's own task YAMLs (the parity tests include them as they ship)."""
    return Path(_lm_eval().tasks.__file__).parent


def run_lm_eval(
    model_dir: Path, tasks: Mapping[str, Mapping[str, Any]], tmp_path: Path, **options: Any
) -> dict[str, Any]:
    """`tasks` maps each task name to its YAML content; `options` go to `simple_evaluate` as they are
    (e.g. num_fewshot, fewshot_random_seed)."""
    lm_eval = _lm_eval()
    tasks_dir = tmp_path / "lm-eval-tasks"
    tasks_dir.mkdir()
    for name, task in tasks.items():
        (tasks_dir / f"{name}.yaml").write_text(yaml.safe_dump(dict(task)))
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(model_dir), "dtype": "float32"},
        tasks=list(tasks),
        task_manager=lm_eval.tasks.TaskManager(include_path=str(tasks_dir), include_defaults=False),
        batch_size=8,
        device="cpu",
        log_samples=True,
        bootstrap_iters=0,
        **options,
    )
    assert results is not None
    return dict(results)


def _lm_eval() -> Any:
    try:
        # deferred: lm-eval cost seconds to import; collecting other tests skips them
        import lm_eval  # noqa: PLC0415
        import lm_eval.tasks  # noqa: PLC0415
    except ModuleNotFoundError as error:  # fail, not skip: a parity check that skips proves nothing
        pytest.fail(
            f"lm_eval is not installed ({error}): parity tests need lm-eval (dev extra)", pytrace=False
        )
    return lm_eval
