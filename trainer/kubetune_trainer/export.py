"""The final artefacts: weights (or the LoRA adapter), tokenizer, model card, digest and result file.

Layout under `output.uri`:
- `method: full`: the model in Hugging Face layout (config.json, model.safetensors, tokenizer files);
- `method: lora`: the adapter (adapter_config.json, adapter_model.safetensors) + tokenizer at the top, and
  with `lora.merge: true` the merged full model under `merged/`; adapter_config.json names the base model
  by its `spec.model.uri` (`record_adapter_base`);
- `README.md` (model card), `result.json` ({digest, metrics, ...}), plus `split/` and `checkpoints/`.

The digest (kubetune_operator.data.digest) is over the exported model files (not result.json, split/ or
checkpoints/).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def model_card(
    *, job_name: str, spec: dict[str, Any], metrics: dict[str, Any], counts: dict[str, Any], base_model: str
) -> str:
    """A Hugging Face style README.md with YAML front matter."""
    front = {
        "base_model": base_model,
        "library_name": "peft" if spec.get("method") == "lora" else "transformers",
        "tags": ["kubetune", "instruction-tuning", spec.get("method", "lora")],
    }
    templates = [t for task in spec.get("tasks", []) for t in task.get("templates", [])]
    sections = [
        f"---\n{yaml.safe_dump(front, sort_keys=False)}---\n",
        f"# {job_name}\n\nFine-tuned by kubetune (`FineTuneJob` {job_name}) from `{base_model}` "
        f"with method `{spec.get('method')}`.\n",
        "## Data\n\n"
        + f"Dataset: `{spec.get('dataset', {}).get('uri')}`\n\n"
        + "| task | rows | train | in mixture | validation | test |\n|---|---|---|---|---|---|\n"
        + "".join(
            f"| {name} | {c['rows']} | {c['train']} | {c['mixture']} | {c['validation']} | {c['test']} |\n"
            for name, c in counts.items()
        ),
        "## Templates\n\n"
        + (
            "".join(f"- prompt: `{t['prompt']!r}` completion: `{t['completion']!r}`\n" for t in templates)
            or "None (dataset format used as-is).\n"
        ),
        "## Hyperparameters\n\n```yaml\n"
        + yaml.safe_dump(spec.get("hyperparameters", {}), sort_keys=True)
        + "```\n"
        + (
            "\nLoRA:\n\n```yaml\n" + yaml.safe_dump(spec.get("lora") or {}, sort_keys=True) + "```\n"
            if spec.get("method") == "lora"
            else ""
        ),
        "## Final metrics\n\n```json\n" + json.dumps(metrics, indent=2, sort_keys=True) + "\n```\n",
    ]
    return "\n".join(sections)


ADAPTER_CONFIG = "adapter_config.json"


def record_adapter_base(directory: Path, base_model_uri: str) -> None:
    """Name the base model by `spec.model.uri` in the adapter_config.json saved in `directory`.

    PEFT records the directory the base was loaded from: the trainer pod's scratch copy
    (/tmp/kubetune/<job>/base-model), which no other pod can read. The URI is what an evaluator (and
    `kubetune eval`, PeftModel users) can fetch the base from.
    """
    path = directory / ADAPTER_CONFIG
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = base_model_uri
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
