"""Shared fixtures of the trainer tests: a tiny tokenizer/model built locally (no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from kubetune_devtools.tiny_models import build_tiny_model


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    # Two cores shared by several test runs: threads only add contention at these sizes.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path) -> Any:
    # deferred: the trainer (torch) cost seconds to import; collecting other tests skips them
    from kubetune_trainer.modeling import load_tokenizer  # noqa: PLC0415

    return load_tokenizer(tiny_model_dir)
