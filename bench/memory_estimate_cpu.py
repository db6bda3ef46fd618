"""The memory estimator (kubetune_operator.api.memory) against the measured peak RSS of a real CPU training.

For each method (full, lora) a fresh process runs the trainer (`run_job`, the code `kubetune train` and the
pods run) on a randomly initialised Llama (hidden 512, 8 layers, ~27M parameters; fp32 on CPU), packed rows
of up to 512 tokens, batch 8, 3 optimizer steps. The process records its resident memory just before the
model is loaded (VmRSS; then resets the peak with /proc/self/clear_refs) and the peak (VmHWM) when training
ends (before the export). Measured = peak - before: what the model and the training add to a process that
already holds Python, torch, the tokenizer and the data. Estimated = the estimator's CPU total for the same
spec. The error is (estimated - measured) / measured.

Each method runs twice: with glibc's default malloc, whose dynamic mmap threshold keeps freed activation
buffers in the heap so that the peak RSS grows from step to step (fragmentation, not tensors), and with
MALLOC_MMAP_THRESHOLD_=65536 (large blocks are returned to the system when freed), where RSS follows the
tensors the estimator counts.

    .venv/bin/python bench/memory_estimate_cpu.py [--hidden 512] [--layers 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

CHILD = "--child"


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(config: str) -> None:
    """Run the trainer with two probes: RSS before the model is loaded, peak RSS when training ends."""
    import torch

    from kubetune_trainer import recipe
    from kubetune_trainer.entrypoint import run_job

    torch.set_num_threads(1)
    probes: dict[str, int] = {}
    # The recipe imported load_model by name: the probe replaces that name in the recipe's namespace.
    original_load, original_export = recipe.__dict__["load_model"], recipe.FineTuneRecipe.export

    def load_model(*args: Any, **kwargs: Any) -> Any:
        probes["beforeModel"] = _status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        return original_load(*args, **kwargs)

    def export(self: Any, metrics: dict[str, Any]) -> Any:
        probes["peak"] = _status("VmHWM")
        return original_export(self, metrics)

    recipe.__dict__["load_model"] = load_model
    recipe.FineTuneRecipe.export = export  # type: ignore[method-assign]
    run_job(config)
    print(json.dumps(probes))


ALLOCATORS: dict[str, dict[str, str]] = {
    "glibc-default": {},
    "mmap-threshold-64k": {"MALLOC_MMAP_THRESHOLD_": "65536"},
}


def measure(
    method: str, model: Path, data: Path, work: Path, *, hp: dict[str, Any], allocator: str
) -> dict[str, Any]:
    from kubetune_operator.api import FineTuneJob, parse_manifest
    from kubetune_operator.api.memory import ModelShape, estimate, setup_for

    manifest = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": f"memory-{method}"},
        "spec": {
            "model": {"uri": str(model)},
            "dataset": {"uri": str(data), "split": {"validation": 0.0, "test": 0.0}},
            "method": method,
            "lora": {"r": 16, "targetModules": ["q_proj", "v_proj"]} if method != "full" else None,
            "hyperparameters": hp,
            "output": {"uri": str(work / f"out-{method}-{allocator}")},
        },
    }
    if method == "full":
        del manifest["spec"]["lora"]  # type: ignore[attr-defined]
    config = work / f"{method}-{allocator}.yaml"
    config.write_text(yaml.safe_dump(manifest))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KUBETUNE_WORK_DIR": str(work / f"scratch-{allocator}")}
    env.update(ALLOCATORS[allocator])
    done = subprocess.run(
        [sys.executable, __file__, CHILD, str(config)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    probes = json.loads(done.stdout.strip().splitlines()[-1])
    job = parse_manifest(manifest)
    assert isinstance(job, FineTuneJob)
    shape = ModelShape.from_config(json.loads((model / "config.json").read_text()))
    estimated = estimate(shape, setup_for(job.spec, "cpu", "ddp"))
    measured = probes["peak"] - probes["beforeModel"]
    return {
        "method": method,
        "allocator": allocator,
        "parameters": shape.parameters,
        "measuredBytes": measured,
        "estimatedBytes": estimated.total,
        "error": (estimated.total - measured) / measured,
        "estimate": estimated.as_dict(),
        "rssBeforeModel": probes["beforeModel"],
        "peakRss": probes["peak"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from kubetune_devtools.tiny_models import build_tiny_model, varied_length_rows, write_rows

    hp = {"batchSize": 8, "maxSeqLength": 512, "packing": True, "maxSteps": 3, "learningRate": "1e-4"}
    results = []
    with tempfile.TemporaryDirectory(prefix="kubetune-memory-") as scratch:
        work = Path(scratch)
        model = build_tiny_model(
            work / "model", hidden_size=args.hidden, layers=args.layers, heads=max(1, args.hidden // 64)
        )
        data = write_rows(work / "data.jsonl", varied_length_rows(args.rows, min_words=100, max_words=300))
        for method in ("full", "lora"):
            for allocator in ALLOCATORS:
                result = measure(method, model, data, work, hp=hp, allocator=allocator)
                results.append(result)
                print(
                    f"{method:5} {allocator:18} {result['parameters'] / 1e6:.1f}M params: measured "
                    f"{result['measuredBytes'] / 2**20:.0f} MiB, estimated "
                    f"{result['estimatedBytes'] / 2**20:.0f} MiB, error {100 * result['error']:+.1f}%",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps({"hyperparameters": hp, "results": results}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == CHILD:
        child(sys.argv[2])
    else:
        main()
