"""What the TRL comparisons (trainer_throughput.py: the training loop; trainer_whole_process.py: spawn to
exit) give kubetune: one FineTuneJob spec, the same in both, matching the TRL SFTConfig they run (full
fine-tuning, completion-only loss, lr 1e-4 linear without warm-up, seed 1, no split, no checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def kubetune_spec(
    model_dir: Path, data: Path, out: Path, *, epochs: float, batch_size: int, max_length: int, packing: bool
) -> dict[str, Any]:
    return {
        "model": {"uri": str(model_dir)},
        "dataset": {
            "uri": str(data),
            "format": "prompt_completion",
            "split": {"validation": 0.0, "test": 0.0},
        },
        "method": "full",
        "hyperparameters": {
            "epochs": epochs,
            "learningRate": "1e-4",
            "batchSize": batch_size,
            "maxSeqLength": max_length,
            "warmupRatio": 0.0,
            "lrScheduler": "linear",
            "packing": packing,
            "seed": 1,
        },
        "output": {"uri": str(out)},
        "checkpoint": {"everySteps": 1000000},
    }
