"""A large dataset: time to the first optimizer step and peak RSS, kubetune vs TRL `SFTTrainer`, same data.

Generates `--rows` prompt/completion rows of 10-300 words (1,000,000 rows are ~1 GB of JSONL) as `--shards`
JSONL shards in a temporary directory (nothing is kept), then runs, each as a fresh process with one rank:

- kubetune (`python -m kubetune_trainer`, packing on, no split): the rows are read, rendered and tokenized
  once into the token cache under output.uri, then memory-mapped;
- kubetune again on the same output (a restarted pod): the cache is reused, no row is read;
- a TRL script: `load_dataset("json")` over the same shards (Arrow, memory-mapped) and `SFTTrainer`, whose
  tokenization is a `datasets.map` (cached by `datasets` in the temporary directory too).

Each process is stopped once it reports its first optimizer step (kubetune's step log line, a TRL callback).
Reported: seconds from spawn to that step, and the process's peak RSS then (`VmHWM`).

    .venv/bin/python bench/trainer_data_scale.py [--rows 1000000] [--shards 8] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORDS = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "theta", "zeta", "eta"]
FIRST_STEP = "FIRST-OPTIMIZER-STEP"

TRL_SCRIPT = """\
import sys

import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer

model_dir, data_dir, out, batch_size, max_length = sys.argv[1:6]


class FirstStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        print("FIRST-OPTIMIZER-STEP", flush=True)


tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
dataset = load_dataset("json", data_dir=data_dir, split="train", cache_dir=out + "/hf-cache")
config = SFTConfig(
    output_dir=out, max_steps=1, per_device_train_batch_size=int(batch_size), learning_rate=1e-4,
    max_length=int(max_length), completion_only_loss=True, packing=False, gradient_checkpointing=False,
    bf16=False, fp16=False, use_cpu=True, report_to=[], save_strategy="no", seed=1,
    dataloader_num_workers=0, disable_tqdm=True,
)
trainer = SFTTrainer(
    model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[FirstStep()]
)
trainer.train()
"""


def write_shards(directory: Path, rows: int, shards: int, seed: int = 0) -> int:
    """`rows` rows of 10-300 words over `shards` JSONL files; returns the bytes written."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    per_shard = -(-rows // shards)
    written = 0
    for shard in range(shards):
        with (directory / f"part-{shard:05d}.jsonl").open("w") as out:
            for _ in range(min(per_shard, rows - shard * per_shard)):
                total = rng.randint(10, 300)
                words = rng.choices(WORDS, k=total)
                cut = rng.randint(1, total - 1)
                line = json.dumps(
                    {
                        "prompt": "Continue: " + " ".join(words[:cut]),
                        "completion": " " + " ".join(words[cut:]),
                    }
                )
                written += out.write(line + "\n")
    return written


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident set so far (VmHWM, KiB), read while it runs."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for process {pid}")


def until_first_step(command: list[str], env: dict[str, str], marker: str, log: Path) -> dict[str, float]:
    """Run `command` until a line containing `marker` appears; seconds to it and the child's peak RSS."""
    start = time.monotonic()
    with log.open("w") as sink:
        child = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert child.stdout is not None
        seconds = None
        for line in child.stdout:
            sink.write(line)
            if marker in line:
                seconds = time.monotonic() - start
                peak_kib = peak_rss_kib(child.pid)
                child.send_signal(signal.SIGKILL)
                break
        child.wait()
    if seconds is None:
        sys.stderr.write(log.read_text()[-4000:])
        raise SystemExit(f"{command[:3]} exited {child.returncode} before its first optimizer step")
    return {"secondsToFirstStep": round(seconds, 1), "peakRssMiB": round(peak_kib / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-trl", action="store_true", help="kubetune only (TRL's tokenization is slow)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from kubetune_devtools.tiny_models import build_tiny_model, write_finetune_job

    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "RAYON_NUM_THREADS": str(args.threads),
        "KUBETUNE_METRICS_PORT": "off",
    }
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kubetune-scale-") as tmp:
        root = Path(tmp)
        model_dir = build_tiny_model(
            root / "model", hidden_size=256, layers=4, extra_corpus=[" ".join(WORDS)] * 20
        )
        started = time.monotonic()
        size = write_shards(root / "data", args.rows, args.shards)
        print(
            f"{args.rows} rows, {size / 1e9:.2f} GB in {args.shards} shards "
            f"({time.monotonic() - started:.0f} s)"
        )
        spec = {
            "model": {"uri": str(model_dir)},
            "dataset": {
                "uri": str(root / "data"),
                "format": "prompt_completion",
                "split": {"validation": 0.0, "test": 0.0},
            },
            "method": "full",
            "hyperparameters": {
                "epochs": 1,
                "learningRate": "1e-4",
                "batchSize": args.batch_size,
                "maxSeqLength": args.max_length,
                "packing": True,
                "seed": 1,
            },
            "output": {"uri": str(root / "kt-out")},
            "checkpoint": {"everySteps": 1000000},
        }
        job = write_finetune_job(root / "job.yaml", "scale", spec)
        env["KUBETUNE_WORK_DIR"] = str(root / "work")
        kubetune = [sys.executable, "-m", "kubetune_trainer", "--config", str(job)]
        step_marker = '"message": "step", "step": 1,'
        results["kubetune"] = until_first_step(kubetune, env, step_marker, root / "kt.log")
        results["kubetune_restart"] = until_first_step(kubetune, env, step_marker, root / "kt-restart.log")
        if not args.skip_trl:
            script = root / "trl_first_step.py"
            script.write_text(TRL_SCRIPT)
            trl = [
                sys.executable,
                str(script),
                str(model_dir),
                str(root / "data"),
                str(root / "trl-out"),
                str(args.batch_size),
                str(args.max_length),
            ]
            results["trl"] = until_first_step(trl, env, FIRST_STEP, root / "trl.log")
    summary = {
        "setup": {**vars(args), "json": None, "bytes": size, "cpu_count": os.cpu_count()},
        "results": results,
    }
    print(f"{'':<18}{'s to 1st step':>14}{'peak RSS MiB':>14}")
    for name, r in results.items():
        print(f"{name:<18}{r['secondsToFirstStep']:>14.1f}{r['peakRssMiB']:>14.1f}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
