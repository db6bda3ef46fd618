"""Models shared by the evaluator's parity tests (tiny random Llamas built in a second, fp32, 1 thread)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from kubetune_devtools.tiny_models import build_tiny_model


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return build_tiny_model(Path(tmp_path_factory.mktemp("tiny")), seed=3)


@pytest.fixture(scope="module")
def varied_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Larger random weights, so that generations vary (the default tiny model only ever writes ':::')."""
    torch.set_num_threads(1)
    return build_tiny_model(Path(tmp_path_factory.mktemp("tiny-varied")), seed=3, initializer_range=1.0)


@pytest.fixture(scope="module")
def short_context_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's weights with a 32-token context: long inputs are left-truncated (choices) or scored
    in several rolling windows (perplexity) by both tools."""
    directory = tmp_path_factory.mktemp("tiny-short") / "model"
    shutil.copytree(tiny_model_dir, directory)
    config = json.loads((directory / "config.json").read_text())
    config["max_position_embeddings"] = 32
    (directory / "config.json").write_text(json.dumps(config))
    return directory
