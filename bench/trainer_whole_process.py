"""What a user waits for: `kubetune train job.yaml` vs a TRL `SFTTrainer` script, start to finish.

Both run as fresh processes (interpreter start, imports, data reading and tokenization, model load, the
training loop, saving the model), timed from spawn to exit. Same tiny Llama (its tokenizer knows the data's
words, so one word is one token), the same JSONL file of prompt/completion rows of 10-300 words, 1 epoch,
batch 8, max length 512, lr 1e-4 linear, completion-only loss, fp32 on CPU, the same number of threads for
both (`OMP_NUM_THREADS`), no evaluation split, no checkpoints. kubetune with `packing: true` (the setting for
mixed-length data), TRL with `packing=False` as in `bench/trainer_throughput.py` (TRL's packing concatenates
examples across boundaries unless padding-free attention is available, which changes the task).

Both read compiled bytecode, as installed packages do: the bench writes the `.pyc` files to a temporary
`PYTHONPYCACHEPREFIX` in an uncounted warm-up run of each on 16 rows (this machine's venv has none and
`PYTHONDONTWRITEBYTECODE=1`: compiling torch/transformers/TRL on every start would dominate). Rounds
alternate the order (kubetune first in the first round, TRL first in the second, ...) so that a change of
machine load hits both; reported: wall seconds per run, CPU seconds per run (user + system of the child,
steadier on a shared machine), and TRL/kubetune ratios of the medians.

    .venv/bin/python bench/trainer_whole_process.py [--rows 1200] [--rounds 3] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trl_comparison import kubetune_spec

WORDS = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "theta", "zeta", "eta"]

TRL_SCRIPT = '''\
"""A plain TRL SFT script: the data file, the model, SFTConfig, train, save."""
import sys

import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

model_dir, data, out = sys.argv[1], sys.argv[2], sys.argv[3]
batch_size, max_length, epochs = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
dataset = load_dataset("json", data_files=data, split="train")
config = SFTConfig(
    output_dir=out,
    num_train_epochs=epochs,
    per_device_train_batch_size=batch_size,
    learning_rate=1e-4,
    lr_scheduler_type="linear",
    max_length=max_length,
    completion_only_loss=True,
    packing=False,
    gradient_checkpointing=False,
    bf16=False,
    fp16=False,
    use_cpu=True,
    report_to=[],
    save_strategy="no",
    logging_steps=1000000,
    seed=1,
    dataloader_num_workers=0,
    disable_tqdm=True,
)
trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
trainer.train()
trainer.save_model(out)
'''


def timed(command: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """Wall and CPU seconds of one child process, from spawn to exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with log.open("w") as sink:
        done = subprocess.run(command, env=env, stdout=sink, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.stderr.write(log.read_text()[-4000:])
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": round(wall, 2), "cpu": round(cpu, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--min-words", type=int, default=10)
    parser.add_argument("--max-words", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the uncounted first run of each on 16 rows (it writes the .pyc files both then read)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from kubetune_devtools.tiny_models import (
        build_tiny_model,
        varied_length_rows,
        write_finetune_job,
        write_rows,
    )

    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "KUBETUNE_METRICS_PORT": "off",
        "TOKENIZERS_PARALLELISM": "false",
    }
    # Bytecode as an installed package has it (pip/uv compile .pyc; the images run compileall): without it
    # every process compiles ~3,000 modules of torch/transformers first, and TRL more of them than kubetune.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    runs: dict[str, list[dict[str, float]]] = {"kubetune": [], "trl": []}
    with tempfile.TemporaryDirectory(prefix="kubetune-whole-") as tmp:
        root = Path(tmp)
        model_dir = build_tiny_model(
            root / "model",
            hidden_size=args.hidden_size,
            layers=args.layers,
            extra_corpus=[" ".join(WORDS)] * 20,
        )
        rows = varied_length_rows(args.rows, seed=0, min_words=args.min_words, max_words=args.max_words)
        data = write_rows(root / "data.jsonl", rows)
        script = root / "trl_sft.py"
        script.write_text(TRL_SCRIPT)
        env["KUBETUNE_WORK_DIR"] = str(root / "work")
        env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        warm_rows = write_rows(root / "warm.jsonl", rows[:16])
        for round_no in [*(["warm-up"] if args.warmup else []), *range(args.rounds)]:
            warm = round_no == "warm-up"
            data_file = warm_rows if warm else data
            out_kt, out_trl = root / f"kt-{round_no}", root / f"trl-{round_no}"
            job = write_finetune_job(
                root / f"kt-{round_no}.yaml",
                f"whole-{round_no}",
                kubetune_spec(
                    model_dir,
                    data_file,
                    out_kt,
                    epochs=args.epochs,
                    batch_size=args.batch_size,
                    max_length=args.max_length,
                    packing=True,
                ),
            )
            commands = {
                "kubetune": [str(bin_dir / "kubetune"), "train", str(job)],
                "trl": [
                    sys.executable,
                    str(script),
                    str(model_dir),
                    str(data_file),
                    str(out_trl),
                    str(args.batch_size),
                    str(args.max_length),
                    str(args.epochs),
                ],
            }
            order = ["trl", "kubetune"] if not warm and int(round_no) % 2 else ["kubetune", "trl"]
            for name in order:
                shutil.rmtree(root / "work", ignore_errors=True)  # no model download cached between runs
                measured = timed(commands[name], env, root / f"{name}-{round_no}.log")
                print(f"round {round_no} {name:<9} {measured}", flush=True)
                if not warm:
                    runs[name].append(measured)

    medians = {
        name: {kind: statistics.median(r[kind] for r in rs) for kind in ("wall", "cpu")}
        for name, rs in runs.items()
    }
    ratio = {kind: round(medians["trl"][kind] / medians["kubetune"][kind], 2) for kind in ("wall", "cpu")}
    per_round = [round(t["wall"] / k["wall"], 2) for k, t in zip(runs["kubetune"], runs["trl"], strict=True)]
    summary = {
        "setup": {**vars(args), "json": None, "cpu_count": os.cpu_count()},
        "runs": runs,
        "medians": medians,
        "trl_over_kubetune": ratio,
        "per_round_wall_ratio": per_round,
    }
    print(f"{'':<10}{'median wall s':>14}{'median CPU s':>14}")
    for name, m in medians.items():
        print(f"{name:<10}{m['wall']:>14.1f}{m['cpu']:>14.1f}")
    print(f"TRL/kubetune: wall {ratio['wall']:.2f}x, CPU {ratio['cpu']:.2f}x; per round (wall) {per_round}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
