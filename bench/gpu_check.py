"""GPU readiness check: the real trainer on a randomly initialised ~1B Llama, on one GPU, in a few minutes.

Runs `python -m kubetune_trainer` (the pods' entry point) on the same packed data for each of RUNS (or
`--runs`): `method: full` with `strategy: ddp`, `method: full` with `strategy: fsdp` (FSDP2 over one process:
the sharded code path, bf16 compute, fp32 master weights), `method: qlora` (4-bit NF4 base + LoRA), and the
checkpointing, LoRA and `compile: true` variants, and prints
per run: tokens/s (steady state: the median of the per-step figures the trainer logs from step 10 on; the
whole-run average beside it), MFU, the peak GPU memory (`torch.cuda.max_memory_allocated`) and the memory
estimator's figure for the same job (kubetune_operator.api.memory) with its error.

MFU = model FLOPs per second / the GPU's peak dense bf16 FLOPs. Model FLOPs per trained token: 6 N for full
fine-tuning and 4 N for (Q)LoRA (the frozen base needs no weight gradients), N = parameters less the input
embedding (a lookup); attention's own FLOPs are not counted (packed rows attend within their examples only),
so the figure is conservative. Peaks (dense bf16, NVIDIA data sheets): H100/H200 SXM 989 TFLOPS, H100 NVL
835, H100 PCIe 756, A100 312; another GPU prints MFU n/a.

    bench/gpu_check.sh                 # installs (pinned uv, trainer + qlora extras), then runs this
    .venv/bin/python bench/gpu_check.py --cpu-smoke [--json out.json]

`--cpu-smoke`: a tiny model and a few steps on CPU, so CI runs every part but the GPU figures (printed as
n/a); QLoRA is then expected to be refused with the trainer's InvalidSpec message (no GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# ~1.1B parameters: TinyLlama-1.1B's shape (22 layers, hidden 2048, GQA with 4 KV heads, vocab 32000).
GPU_MODEL = {
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
}
CPU_MODEL = {
    "hidden_size": 64,
    "intermediate_size": 192,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 320,
}
PEAK_BF16_FLOPS = [  # most specific name first
    ("H200", 989e12),
    ("H100 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("A100", 312e12),
]


@dataclass(frozen=True)
class Run:
    name: str
    method: str
    strategy: str
    checkpointing: bool = False
    compile: bool = False
    attention: str = "sdpa"


# The three runs, the estimator's other branches (checkpointing, LoRA), hyperparameters.compile and
# hyperparameters.attention: flex.
RUNS = [
    Run("full-ddp", "full", "ddp"),
    Run("full-fsdp", "full", "fsdp"),
    Run("qlora-ddp", "qlora", "ddp"),
    Run("full-fsdp-gc", "full", "fsdp", checkpointing=True),
    Run("lora-ddp", "lora", "ddp"),
    Run("full-ddp-c", "full", "ddp", compile=True),
    Run("full-fsdp-c", "full", "fsdp", compile=True),
    Run("full-ddp-cf", "full", "ddp", compile=True, attention="flex"),
    Run("full-fsdp-cf", "full", "fsdp", compile=True, attention="flex"),
    Run("qlora-ddp-f", "qlora", "ddp", attention="flex"),
]


def peak_flops(device_name: str) -> float | None:
    for name, flops in PEAK_BF16_FLOPS:
        if name.lower() in device_name.lower():
            return flops
    return None


def build_model(directory: Path, shape: dict[str, int], on_gpu: bool) -> int:
    """Tokenizer + random Llama in Hugging Face layout; returns the parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from kubetune_devtools.tiny_models import build_tokenizer

    tokenizer = build_tokenizer(directory, vocab_size=320)
    config_class: Any = LlamaConfig  # keyword arguments typed per field in transformers 5
    config = config_class(
        **{**shape, "vocab_size": max(shape["vocab_size"], len(tokenizer))},
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    # Initialised on the GPU (seconds, not minutes on the CPU) and saved in bf16 (half the bytes to load).
    with torch.device("cuda" if on_gpu else "cpu"):
        model: Any = LlamaForCausalLM(config)
    if on_gpu:
        model = model.to(dtype=torch.bfloat16)
    model.save_pretrained(directory)
    return sum(p.numel() for p in model.parameters())


def write_rows(path: Path, count: int, min_words: int, max_words: int) -> None:
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "theta", "zeta", "eta"]
    with path.open("w") as handle:
        for _ in range(count):
            text = [rng.choice(words) for _ in range(rng.randint(min_words, max_words))]
            cut = rng.randint(1, len(text) - 1)
            row = {"prompt": "Continue: " + " ".join(text[:cut]), "completion": " " + " ".join(text[cut:])}
            handle.write(json.dumps(row) + "\n")


@dataclass(frozen=True)
class Bench:
    root: Path
    model: Path
    data: Path
    compute_params: int
    """Parameters that multiply (all but the input embedding, a lookup)."""
    args: argparse.Namespace
    device: str
    peak_flops: float | None
    on_gpu: bool


def job_spec(bench: Bench, out: Path, run: Run) -> dict[str, Any]:
    method, strategy = run.method, run.strategy
    args = bench.args
    split = {"validation": 0.0, "test": 0.0}
    spec: dict[str, Any] = {
        "model": {"uri": str(bench.model)},
        "dataset": {"uri": str(bench.data), "format": "prompt_completion", "split": split},
        "method": method,
        "distributed": {"strategy": strategy},
        "hyperparameters": {
            "maxSteps": args.steps,
            "batchSize": args.batch_size,
            "maxSeqLength": args.seq_len,
            "packing": True,
            "learningRate": "1e-5",
            "warmupRatio": 0.0,
            "gradientCheckpointing": args.gradient_checkpointing or run.checkpointing,
            "compile": run.compile,
            "attention": run.attention,
        },
        "resources": {"gpusPerNode": 1},
        "output": {"uri": str(out)},
        "checkpoint": {"everySteps": 100000},
    }
    if method != "full":
        spec["lora"] = {"r": 16, "alpha": 32, "targetModules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    return spec


def estimator_bytes(config_dir: Path, spec: dict[str, Any], strategy: str) -> int | None:
    from kubetune_operator.api import FineTuneJobSpec
    from kubetune_operator.api.memory import ModelShape, estimate, setup_for

    shape = ModelShape.from_config(json.loads((config_dir / "config.json").read_text()))
    setup = setup_for(FineTuneJobSpec.model_validate(spec), "gpu", strategy)  # type: ignore[arg-type]
    # tensor_bytes, not total: max_memory_allocated does not see the CUDA runtime reserve that total adds.
    return int(estimate(shape, setup).tensor_bytes)


def run_trainer(job: Path, timeout: int) -> tuple[int, list[dict[str, Any]], str]:
    """(exit code, the JSON log records, the stderr tail) of one trainer process."""
    env = {**os.environ, "KUBETUNE_METRICS_PORT": "off", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "kubetune_trainer", "--config", str(job)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    records = []
    for line in proc.stderr.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return proc.returncode, records, proc.stderr[-1500:]


def measure(bench: Bench, run: Run) -> dict[str, Any]:
    name, method, strategy = run.name, run.method, run.strategy

    out = bench.root / name
    spec = job_spec(bench, out, run)
    job = bench.root / f"{name}.yaml"
    manifest = {"apiVersion": "kubetune.io/v1alpha1", "kind": "FineTuneJob", "metadata": {"name": name}}
    job.write_text(yaml.safe_dump({**manifest, "spec": spec}))
    started = time.monotonic()
    code, records, tail = run_trainer(job, bench.args.timeout)
    row: dict[str, Any] = {"run": name, "method": method, "strategy": strategy, "exitCode": code}
    row["gradientCheckpointing"] = spec["hyperparameters"]["gradientCheckpointing"]
    row["compile"] = spec["hyperparameters"]["compile"]
    row["attention"] = spec["hyperparameters"]["attention"]
    row["seconds"] = round(time.monotonic() - started, 1)
    if code != 0:
        # The last line is the failure the trainer reports (`error (<Reason>): ...`, or a traceback's end).
        row["error"] = " ".join(tail.strip().splitlines()[-1:])
        return row
    result = json.loads((out / "result.json").read_text())
    metrics = result["metrics"]
    steady = [
        float(r["tokensPerSecond"]) for r in records if r.get("message") == "step" and int(r["step"]) >= 10
    ]
    tokens_per_second = statistics.median(steady) if steady else float(metrics["tokensPerSecond"])
    flops_per_token = (6 if method == "full" else 4) * bench.compute_params
    measured = metrics.get("peakGpuMemoryBytes")
    # Estimated also on CPU (pure arithmetic, for a GPU), so --cpu-smoke runs that code too.
    estimated = estimator_bytes(bench.model, spec, strategy)
    row.update(
        {
            "steps": metrics["steps"],
            "tokensPerSecond": round(tokens_per_second, 1),
            "tokensPerSecondWholeRun": metrics["tokensPerSecond"],
            "mfu": round(tokens_per_second * flops_per_token / bench.peak_flops, 4)
            if bench.peak_flops
            else None,
            "peakGpuMemoryBytes": measured,
            "estimatedBytes": estimated,
            "estimateError": round(estimated / measured - 1, 4) if measured and estimated else None,
            "trainLoss": metrics["trainLoss"],
        }
    )
    return row


def show(value: float | None, unit: str) -> str:
    """`GiB` (bytes), `%` (a fraction), `+%` (a signed fraction); n/a for what was not measured."""
    if value is None:
        return "n/a"
    if unit == "GiB":
        return f"{value / 2**30:.2f} GiB"
    return f"{100 * value:+.1f} %" if unit == "+%" else f"{100 * value:.1f} %"


HEADER = f"{'run':<13} {'tokens/s':>10} {'MFU':>8} {'peak memory':>12} {'estimate':>12} {'error':>8}"


def format_row(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['run']:<13} not run: {row['error']}"
    return (
        f"{row['run']:<13} {row['tokensPerSecond']:>10} {show(row['mfu'], '%'):>8} "
        f"{show(row['peakGpuMemoryBytes'], 'GiB'):>12} {show(row['estimatedBytes'], 'GiB'):>12} "
        f"{show(row['estimateError'], '+%'):>8}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny model, few steps, on CPU")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (GPU 60, CPU 4)")
    parser.add_argument("--batch-size", type=int, help="packed rows per step (GPU 4, CPU 2)")
    parser.add_argument("--seq-len", type=int, help="tokens per packed row (GPU 2048, CPU 64)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per run")
    parser.add_argument("--work-dir", type=Path, help="default: a temporary folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--memory-probe", action="store_true", help="then bench/gpu_memory_probe.py on the same model (GPU)"
    )
    parser.add_argument("--runs", nargs="+", choices=[run.name for run in RUNS], help="default: all")
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        # Also on a machine with a GPU: this process and the trainers it starts must not see it.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch

    on_gpu = torch.cuda.is_available() and not args.cpu_smoke
    if not on_gpu and not args.cpu_smoke:
        print("no CUDA GPU visible: run with --cpu-smoke on a machine without one", file=sys.stderr)
        return 2
    args.steps = args.steps or (60 if on_gpu else 4)
    args.batch_size = args.batch_size or (4 if on_gpu else 2)
    args.seq_len = args.seq_len or (2048 if on_gpu else 64)
    name = torch.cuda.get_device_name(0) if on_gpu else "cpu"

    started = time.monotonic()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "device": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "steps": args.steps,
        "batchSize": args.batch_size,
        "seqLen": args.seq_len,
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="kubetune-gpu-check-") as scratch:
        root = args.work_dir or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        shape = GPU_MODEL if on_gpu else CPU_MODEL
        params = build_model(root / "model", shape, on_gpu)
        # Enough rows for every step's packed rows, of 40-400 words (~2 tokens each).
        rows = max(200, args.steps * args.batch_size * args.seq_len // 300 + 100)
        write_rows(root / "data.jsonl", rows, 40 if on_gpu else 5, 400 if on_gpu else 20)
        bench = Bench(
            root=root,
            model=root / "model",
            data=root / "data.jsonl",
            compute_params=params - shape["vocab_size"] * shape["hidden_size"],
            args=args,
            device=name,
            peak_flops=peak_flops(name) if on_gpu else None,
            on_gpu=on_gpu,
        )
        report.update({"peakBf16Flops": bench.peak_flops, "parameters": params})
        precision = "bf16 autocast" if on_gpu else "fp32"
        print(f"device: {name}; model: {params / 1e6:.1f}M parameters; {args.steps} steps of "
              f"{args.batch_size} x {args.seq_len} tokens, packed, {precision}", flush=True)  # fmt: skip
        print(HEADER, flush=True)
        for run in RUNS:
            if args.runs and run.name not in args.runs:
                continue
            row = measure(bench, run)
            report["runs"].append(row)
            report["seconds"] = round(time.monotonic() - started, 1)
            # Each row as soon as it is measured: a run cut short by a time limit keeps what it has.
            print(format_row(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(report, indent=2))
        if args.memory_probe and on_gpu:
            # Phase by phase, in a process of its own (bench/gpu_memory_probe.py), on the same model.
            probe = [
                sys.executable,
                str(Path(__file__).with_name("gpu_memory_probe.py")),
                "--model",
                str(root / "model"),
            ]
            probe += ["--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]
            if args.json:
                probe += ["--json", str(args.json.with_suffix(".probe.json"))]
            subprocess.run(probe, check=False, timeout=args.timeout * 3)
    print(f"total {round(time.monotonic() - started, 1)} s")
    rows_out = report["runs"]
    # On GPU every run must succeed; on CPU QLoRA must be refused (no GPU), the others succeed.
    # On CPU the GPU-only runs (qlora, flex) must be refused with InvalidSpec.
    gpu_only = {run.name for run in RUNS if run.method == "qlora" or run.attention == "flex"}
    expected_failures = set() if on_gpu else gpu_only & {row["run"] for row in rows_out}
    failed = {row["run"] for row in rows_out if "error" in row}
    return 0 if failed == expected_failures else 1


if __name__ == "__main__":
    sys.exit(main())
