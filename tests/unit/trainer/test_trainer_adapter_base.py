"""An exported LoRA adapter names its base model by the FineTuneJob's spec.model.uri, not by the trainer
pod's scratch copy (which no other pod can read)."""

from __future__ import annotations

import json
from pathlib import Path

from kubetune_trainer.export import ADAPTER_CONFIG, record_adapter_base


def test_adapter_config_names_the_base_by_its_uri_and_keeps_the_rest(tmp_path: Path) -> None:
    saved_by_peft = {
        "base_model_name_or_path": "/tmp/kubetune/tune-0a1b2c3d4e/base-model",
        "peft_type": "LORA",
        "r": 8,
        "target_modules": ["q_proj", "v_proj"],
    }
    (tmp_path / ADAPTER_CONFIG).write_text(json.dumps(saved_by_peft))
    record_adapter_base(tmp_path, "s3://models/base/")
    config = json.loads((tmp_path / ADAPTER_CONFIG).read_text())
    assert config == {**saved_by_peft, "base_model_name_or_path": "s3://models/base/"}
