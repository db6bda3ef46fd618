"""The fine-tuning recipe: setup -> train (eval, checkpoints, preemption) -> export, read top to bottom.

Shaped like a torchtune recipe / accelerate's complete_nlp_example. Every process runs the same code
(`accelerate launch` starts one per device); rank 0 alone writes the split files, the model and the result,
and serves /metrics and /progress.

Loss normalisation: an optimiser step's loss is sum(token losses) / N where N is the number of supervised
tokens over *all* its micro-batches on *all* ranks (all-reduced before the backward passes). Each rank
backpropagates `local_sum * world_size / N` because DDP averages gradients over ranks; the result equals the
gradient of the global token mean, whatever the packing, padding, accumulation or number of processes.
FSDP (`strategy: fsdp`, sharding.py) also averages gradients over ranks, so the same scaling holds there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed
from transformers import get_scheduler

from kubetune_operator.api import contract
from kubetune_operator.data.digest import check_model_digest, directory_digest
from kubetune_operator.data.pipeline import storage_options
from kubetune_operator.data.split import split_manifest_uri
from kubetune_operator.data.storage import (
    MODEL_WEIGHT_SUFFIXES,
    delete_prefix,
    download_prefix,
    exists,
    is_s3,
    join_uri,
    read_text,
    upload_dir,
    write_json,
)
from kubetune_trainer import (
    checkpoints,
    export,
    output_owner,
    preflight,
    sharded_state,
    sharding,
    train_state,
)
from kubetune_trainer.batching import BatchPlan, collate, make_units, model_inputs
from kubetune_trainer.modeling import (
    apply_lora,
    count_parameters,
    load_model,
    load_model_4bit,
    load_tokenizer,
    model_skeleton,
    require_cuda_for_flex,
    require_cuda_for_qlora,
    token_loss_sums,
)
from kubetune_trainer.observability import StatusServer, TrainerMetrics
from kubetune_trainer.token_cache import Sync, prepare_token_data
from kubetune_trainer.tokenization import TokenizedExample, TruncationStats

if TYPE_CHECKING:
    from kubetune_operator.api import FineTuneJob

log = logging.getLogger("kubetune_trainer")
PREEMPTED_EXIT_CODE = contract.EXIT_PREEMPTED
HISTORY_POINTS = 2000  # 128 + SIGTERM, what Kubernetes expects from a terminated container


class PreemptedError(Exception):
    """SIGTERM arrived; a checkpoint was saved and the process should exit."""


@dataclass
class RunState:
    step: int = 0
    tokens: int = 0
    examples: int = 0
    train_loss: float | None = None
    eval_metrics: dict[str, float] = field(default_factory=dict)
    last_checkpoint: dict[str, Any] | None = None
    # [step, train loss] pairs (thinned on long runs), kept across resumes: the loss curve of the job.
    history: list[list[float]] = field(default_factory=list)


def work_dir_for(job: FineTuneJob) -> Path:
    """Node-local scratch space; the same path on every process of a node (they share downloads)."""
    base = Path(os.environ.get("KUBETUNE_WORK_DIR") or Path(tempfile.gettempdir()) / "kubetune")
    key = hashlib.sha256(job.spec.output.uri.encode()).hexdigest()[:10]
    return base / f"{job.metadata.get('name', 'local')}-{key}"


class FineTuneRecipe:
    def __init__(self, job: FineTuneJob, *, progress_bar: bool = False) -> None:
        self.job = job
        self.spec = job.spec
        self.hp = job.spec.hyperparameters
        self.name = str(job.metadata.get("name", "local"))
        # Recorded in every checkpoint and in result.json: whose output this is (output_owner.py).
        self.identity = output_owner.job_identity(job)
        self.options = storage_options(job.spec.storage)
        self.output = job.spec.output.uri
        self.work_dir = work_dir_for(job)
        self.progress_bar = progress_bar
        self.state = RunState()
        self._stop_requested = False
        self._model_checked = False  # spec.model.digest verified on this node (_fetch_model)
        self._saved_step = -1  # the step of the checkpoint this process last saved (every rank)
        # Throughput of this process's run (after a resume, only the steps trained since).
        self._tokens_this_run = self._real_this_run = self._positions_this_run = 0.0

    # ----------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        self.on_gpu = torch.cuda.is_available()
        if self.spec.method == "qlora":
            require_cuda_for_qlora(self.on_gpu)
        if self.hp.attention == "flex":
            require_cuda_for_flex(self.on_gpu)
        # cpu=True on CPU-only machines: otherwise accelerate ignores RANK/WORLD_SIZE and every launched
        # process trains alone (measured with accelerate 1.15); with it, gloo data parallelism (MULTI_CPU).
        self.accelerator = Accelerator(mixed_precision="bf16" if self.on_gpu else "no", cpu=not self.on_gpu)
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched != self.world:
            raise RuntimeError(f"launched {launched} processes but accelerate sees {self.world}")
        set_seed(self.hp.seed)
        self.work_dir.mkdir(parents=True, exist_ok=True)

        # Config and tokenizer first (a few MB), then the data: bad rows or templates fail before the weights
        # are downloaded or any output is written. The weights come last, just before the model is built.
        model_dir = self._fetch_model(weights=False)
        self.strategy = sharding.resolve_strategy(self.spec, fits_one_device=self._fits_one_device(model_dir))
        if self.strategy == "fsdp":
            sharding.ensure_process_group(self.on_gpu)
        # Before any weight is read: a job that cannot fit this GPU fails with InsufficientMemory.
        gpu_memory = preflight.local_gpu_memory() if self.on_gpu else None
        preflight.check_before_loading(self.spec, model_dir, gpu_memory, strategy=self.strategy)
        self.tokenizer = load_tokenizer(model_dir)
        max_len = self.hp.max_seq_length
        # Rows read, rendered and tokenized once per job (rank 0; bad rows or templates fail here, before any
        # output), cached under output.uri and memory-mapped by every rank (token_cache.py).
        sync = Sync(
            is_main=self.accelerator.is_main_process,
            is_local_main=self.accelerator.is_local_main_process,
            barrier=self.accelerator.wait_for_everyone,
        )
        self.data = prepare_token_data(self.spec, self.tokenizer, model_dir, self.work_dir, sync)
        self.train_examples, self.truncation = self.data.train, self.data.truncation
        self.validation_examples, self.test_examples = self.data.validation, self.data.test
        self.units = make_units(self.train_examples, self.hp.packing, max_len)
        self.plan = BatchPlan(len(self.units), self.hp.batch_size, self.world, self.hp.seed)
        accum = self.hp.gradient_accumulation_steps
        self.steps_per_epoch = max(1, math.ceil(self.plan.batches_per_epoch / accum))
        self.total_steps = self.hp.max_steps or max(
            1, math.ceil(self.hp.epochs * self.plan.batches_per_epoch / accum)
        )

        model_dir = self._fetch_model(weights=True)
        self.model_dir = model_dir
        if self.strategy == "fsdp":
            model = sharding.build_sharded_model(
                build_full=lambda: self._build_model(model_dir),
                build_skeleton=lambda: self._build_model(model_dir, skeleton=True),
                device=self.accelerator.device,
                bf16=self.on_gpu,
                rank=self.rank,
            )
        else:
            model = self._build_model(model_dir)
        self.compiled_layers = sharding.compile_decoder_layers(model) if self.hp.compile else 0
        trainable, total = count_parameters(model)
        # Fused AdamW on GPU: one kernel for all parameters instead of foreach's several passes over the fp32
        # state (DTensor shards included); on CPU the default implementation.
        optimizer = torch.optim.AdamW(
            self._param_groups(model), lr=float(self.hp.learning_rate), fused=True if self.on_gpu else None
        )
        self.scheduler = get_scheduler(
            self.hp.lr_scheduler,
            optimizer,
            num_warmup_steps=math.ceil(self.hp.warmup_ratio * self.total_steps),
            num_training_steps=self.total_steps,
        )
        # The scheduler is not passed to prepare(): accelerate would step it once per process, while our
        # total_steps already counts global optimiser steps. Checkpoints save it (train_state).
        if self.strategy == "fsdp":
            self.model, self.optimizer = model, optimizer  # already sharded: nothing for accelerate to wrap
        else:
            self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        log.info(
            "setup done",
            extra={
                "trainableParameters": trainable,
                "parameters": total,
                "trainExamples": len(self.train_examples),
                "units": len(self.units),
                "totalSteps": self.total_steps,
                "processes": self.world,
                "strategy": self.strategy,
                "compiledLayers": self.compiled_layers,
                "truncation": self.truncation.as_dict(),
                "counts": self.data.counts,
            },
        )

        self.metrics = TrainerMetrics(self.name)
        self.server = StatusServer(self.metrics)
        if self.accelerator.is_main_process:
            self.server.start()
            self.server.update(total_steps=self.total_steps, phase="Running")
        self._resume()
        if self.accelerator.is_main_process and self.state.step == 0:
            self._write_split_files()
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _fits_one_device(self, model_dir: Path) -> bool | None:
        """Whether the memory estimate (preflight.py) fits this GPU with ddp, for `strategy: auto`; None
        when unknown (on CPU: no device memory to fit; a model the estimator cannot read)."""
        if self.spec.distributed.strategy != "auto" or not self.on_gpu:
            return None
        shape, _ = preflight.read_model_shape(model_dir)
        memory = preflight.local_gpu_memory()
        if shape is None or memory is None:
            return None
        return preflight.resolved_strategy(self.spec, shape, memory) == "ddp"

    def _build_model(self, model_dir: Path, *, skeleton: bool = False) -> Any:
        """The base model (fp32, or 4-bit for qlora), with LoRA adapters for lora/qlora; `skeleton`: the
        same modules without reading weights (fsdp's other ranks)."""
        checkpointing, attention = self.hp.gradient_checkpointing, self.hp.attention
        if skeleton:
            model = model_skeleton(model_dir, gradient_checkpointing=checkpointing, attention=attention)
        elif self.spec.method == "qlora":
            device = self.accelerator.device
            model = load_model_4bit(
                model_dir, device=device, gradient_checkpointing=checkpointing, attention=attention
            )
        else:
            model = load_model(
                model_dir, on_gpu=self.on_gpu, gradient_checkpointing=checkpointing, attention=attention
            )
        if self.spec.method in ("lora", "qlora"):
            model = apply_lora(model, self.spec.effective_lora(), checkpointing)
        return model

    def _fetch_model(self, *, weights: bool) -> Path:
        """The base model's directory: without `weights`, only its config and tokenizer files (S3).

        A pinned model (spec.model.digest) is fetched whole the first time and its digest checked before
        any of its files is read (config and tokenizer included: the tokens cached under output.uri come
        from them); DigestMismatch otherwise."""
        uri, pinned = self.spec.model.uri, self.spec.model.digest
        weights = weights or pinned is not None
        target = self.work_dir / "base-model"
        # Markers beside the folder, not in it: the folder holds exactly the model's files (its digest).
        marker = self.work_dir / ("base-model.complete" if weights else "base-model.complete-config")
        fetched = marker.exists() or (self.work_dir / "base-model.complete").exists()
        if self.accelerator.is_local_main_process:
            if not fetched:
                # Files left by an earlier download (of a prefix that changed since) would join the digest.
                shutil.rmtree(target, ignore_errors=True)
                skip = () if weights else MODEL_WEIGHT_SUFFIXES
                download_prefix(uri, target, self.options, skip_suffixes=skip)
                if target.is_dir():
                    marker.touch()
            if pinned is not None and not self._model_checked:
                # One process per node checks; the others wait at the barrier below before reading.
                directory = download_prefix(uri, target, self.options) if not is_s3(uri) else target
                check_model_digest(directory, pinned, f"spec.model.digest ({uri})")
            self._model_checked = True
        self.accelerator.wait_for_everyone()
        return download_prefix(uri, target, self.options) if not is_s3(uri) else target

    def _param_groups(self, model: torch.nn.Module) -> list[dict[str, Any]]:
        # No weight decay on norms and biases (1-D tensors), as in the usual transformer recipes.
        params = [p for p in model.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": self.hp.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]

    def _write_split_files(self) -> None:
        self.data.write_split_files(self.output, self.options)

    def _resume(self) -> None:
        latest = checkpoints.latest_complete(self.output, self.options)
        if latest is None:
            return
        # Whose checkpoint it is, before anything of it is downloaded or loaded.
        manifest = checkpoints.read_manifest(latest, self.options)
        saved = manifest["state"]
        if output_owner.claim_output(saved.get("job"), self.identity, latest.uri) == "redo":
            # The job was re-created under its name with another training spec: start over.
            log.info("checkpoints of a previous job of this name with another spec: training from scratch")
            self.accelerator.wait_for_everyone()
            if self.accelerator.is_main_process:
                delete_prefix(join_uri(self.output, "checkpoints"), self.options)
            self.accelerator.wait_for_everyone()
            return
        local = self.work_dir / f"resume-step-{latest.step}"
        source = local if is_s3(self.output) else Path(latest.uri)
        if self.accelerator.is_local_main_process:
            if is_s3(self.output):
                shutil.rmtree(local, ignore_errors=True)
                checkpoints.fetch_checkpoint(latest, local, self.options)
            # Before any rank reads a file of it (the others wait at the barrier): DigestMismatch.
            if checkpoints.verify_checkpoint(source, manifest, latest.uri) is None:
                log.warning("checkpoint without file digests (an older trainer's): not verified")
        self.accelerator.wait_for_everyone()
        # Never accelerate.load_state: it unpickles, and a pickle in checkpoints/ would run code here.
        if self.strategy == "fsdp":
            sharded_state.load_sharded(source, self.model, self.optimizer, self.scheduler, self.rank)
        else:
            train_state.load_all(
                source, self.accelerator.unwrap_model(self.model), self.optimizer, self.scheduler, self.rank
            )
        self.state.step, self.state.tokens = int(saved["step"]), int(saved.get("tokens", 0))
        self._saved_step = latest.step  # a SIGTERM before the next step leaves this checkpoint as it is
        self.state.examples = int(saved.get("examples", 0))
        self.state.history = [list(point) for point in saved.get("history", [])]
        self.state.last_checkpoint = {"uri": latest.uri, "step": latest.step}
        if manifest.get("digest"):
            self.state.last_checkpoint["digest"] = manifest["digest"]
        log.info("resumed from checkpoint", extra={"checkpoint": latest.uri, "step": self.state.step})

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # Only set a flag: the step in flight finishes, then every rank checkpoints together.
        self._stop_requested = True

    # ----------------------------------------------------------------------------------------- train
    def _micro_batch(self, index: int) -> dict[str, torch.Tensor]:
        rows = [
            [self.train_examples[i] for i in self.units[u]] for u in self.plan.units_for(index, self.rank)
        ]
        return collate(rows, self.tokenizer.pad_token_id, packed=self.hp.packing)

    def _forward_sums(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = {k: v.to(self.accelerator.device) for k, v in model_inputs(batch).items()}
        with self.accelerator.autocast():
            # use_cache=False: with a KV cache transformers ignores packed position ids (no block mask).
            logits = self.model(**inputs, use_cache=False).logits
        return token_loss_sums(logits, batch["targets"].to(self.accelerator.device))

    def _reduce(self, values: list[float], first: torch.Tensor | None = None) -> list[float]:
        """Sums over all processes, in one collective and one host synchronisation. `first`: a device
        scalar placed before `values` without reading it back first (the step's loss)."""
        tensor = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        if first is not None:
            tensor = torch.cat([first.reshape(1).to(torch.float64), tensor])
        return [float(v) for v in self.accelerator.reduce(tensor, reduction="sum").tolist()]

    def _step_micro_batches(self, step: int) -> list[dict[str, torch.Tensor]]:
        """The micro-batches of optimizer step `step` (none past the last step)."""
        if step >= self.total_steps:
            return []
        accum = self.hp.gradient_accumulation_steps
        return [self._micro_batch(step * accum + k) for k in range(accum)]

    def train(self) -> dict[str, Any]:
        accum = self.hp.gradient_accumulation_steps
        eval_every = self.hp.eval_every_steps
        started, start_step = time.monotonic(), self.state.step
        bar = self._progress_bar()
        self.model.train()
        # Host synchronisations per step: two, each on an idle GPU queue or at the step's end (the stop flag
        # with the token count; the step's statistics). The next step's batches are collated while the GPU
        # still runs this step's backward pass and optimizer (measured on an H200: the loop cost ~23 ms per
        # step beyond a bare forward/backward/step; docs/trainer.md).
        micro = self._step_micro_batches(self.state.step)
        while self.state.step < self.total_steps:
            step_start = time.monotonic()
            local_tokens = sum(int((b["targets"] != -100).sum()) for b in micro)
            stop, global_tokens = self._reduce([float(self._stop_requested), float(local_tokens)])
            if stop > 0:
                self.save_checkpoint()
                raise PreemptedError(f"stopped by SIGTERM after step {self.state.step}; checkpoint saved")
            loss_total = torch.zeros((), dtype=torch.float64, device=self.accelerator.device)
            for k, batch in enumerate(micro):
                # FSDP reduce-scatters every micro-batch's gradients: skipping that would keep unsharded
                # gradients, the memory sharding saves.
                sync = k == accum - 1 or self.strategy == "fsdp"
                with contextlib.nullcontext() if sync else self.accelerator.no_sync(self.model):
                    loss_sum, _ = self._forward_sums(batch)
                    self.accelerator.backward(loss_sum * self.world / max(global_tokens, 1.0))
                loss_total += loss_sum.detach().double()  # summed on the device: no read-back per micro-batch
            if self.hp.max_grad_norm > 0 and self.strategy == "fsdp":
                # Sharded (DTensor) gradients: torch computes the global norm across ranks.
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hp.max_grad_norm)
            elif self.hp.max_grad_norm > 0:
                self.accelerator.clip_grad_norm_(self.model.parameters(), self.hp.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.state.step += 1

            done = micro
            micro = self._step_micro_batches(self.state.step)
            loss_sum_all, real, positions, examples = self._reduce(
                [
                    float(sum(int(b["real_tokens"]) for b in done)),
                    float(sum(b["input_ids"].numel() for b in done)),
                    float(sum(int(b["num_examples"]) for b in done)),
                ],
                first=loss_total,
            )
            self.state.train_loss = loss_sum_all / max(global_tokens, 1.0)
            self.state.tokens += int(real)
            self.state.examples += int(examples)
            if self.state.step % max(1, self.total_steps // HISTORY_POINTS) == 0 or self.state.step == 1:
                self.state.history.append([self.state.step, self.state.train_loss])
            elapsed = time.monotonic() - started
            self._report_step(
                real=real,
                positions=positions,
                examples=examples,
                step_seconds=time.monotonic() - step_start,
                elapsed=elapsed,
                start_step=start_step,
            )
            if bar is not None:
                bar.update(
                    self._bar_task, completed=self.state.step, description=f"loss {self.state.train_loss:.4f}"
                )
            if eval_every and self.state.step % eval_every == 0 and self.state.step < self.total_steps:
                self.evaluate_validation()
            if self.state.step % self.spec.checkpoint.every_steps == 0 and self.state.step < self.total_steps:
                self.save_checkpoint()
        if bar is not None:
            bar.stop()
        train_seconds = time.monotonic() - started
        self.evaluate_validation()
        test = self.evaluate(self.test_examples)
        steps_run = self.state.step - start_step
        return {
            "trainLoss": self.state.train_loss,
            "steps": self.state.step,
            "tokens": self.state.tokens,
            "evalLoss": self.state.eval_metrics.get("loss"),
            "evalTokenAccuracy": self.state.eval_metrics.get("tokenAccuracy"),
            "testLoss": test.get("loss"),
            "testTokenAccuracy": test.get("tokenAccuracy"),
            "trainSeconds": round(train_seconds, 3),
            "tokensPerSecond": round(self._tokens_this_run / train_seconds, 1) if steps_run else None,
            "paddingRatio": round(1 - self._real_this_run / self._positions_this_run, 4)
            if steps_run
            else None,
            "truncation": self.truncation.as_dict(),
            "strategy": self.strategy,
            "compiledLayers": self.compiled_layers,
            "peakGpuMemoryBytes": torch.cuda.max_memory_allocated() if self.on_gpu else None,
        }

    def _report_step(
        self,
        *,
        real: float,
        positions: float,
        examples: float,
        step_seconds: float,
        elapsed: float,
        start_step: int,
    ) -> None:
        self._tokens_this_run += real
        self._real_this_run += real
        self._positions_this_run += positions
        if not self.accelerator.is_main_process:
            return
        m = self.metrics
        lr = self.scheduler.get_last_lr()[0]
        epoch = self.state.step / self.steps_per_epoch
        m.set(m.loss, self.state.train_loss or 0.0)
        m.set(m.learning_rate, lr)
        m.set(m.step, self.state.step)
        m.set(m.total_steps, self.total_steps)
        m.set(m.epoch, epoch)
        m.set(m.tokens_per_second, real / step_seconds)
        m.set(m.examples_per_second, examples / step_seconds)
        m.set(m.padding_ratio, 1 - real / positions)
        m.inc(m.tokens, real)
        if self.on_gpu:
            m.set(m.gpu_memory_bytes, torch.cuda.max_memory_allocated())
        done = self.state.step - start_step
        eta = int(elapsed / done * (self.total_steps - self.state.step)) if done else None
        self.server.update(
            step=self.state.step,
            epoch=round(epoch, 4),
            eta_seconds=eta,
            percent=round(100.0 * self.state.step / self.total_steps, 2),
            train_loss=self.state.train_loss,
            tokens_per_second=round(self._tokens_this_run / elapsed, 1),
        )
        if self.state.step == 1 or self.state.step % 10 == 0 or self.state.step == self.total_steps:
            log.info(
                "step",
                extra={
                    "step": self.state.step,
                    "totalSteps": self.total_steps,
                    "loss": round(self.state.train_loss or 0.0, 5),
                    "learningRate": lr,
                    "tokensPerSecond": round(real / step_seconds, 1),
                },
            )

    # -------------------------------------------------------------------------------------- evaluate
    @torch.no_grad()
    def evaluate(self, examples: Sequence[TokenizedExample]) -> dict[str, float]:
        """Teacher-forced loss and next-token accuracy on completion tokens, examples sharded over ranks."""
        if not examples:
            return {}
        was_training = self.model.training
        self.model.eval()
        mine = examples[self.rank :: self.world]
        loss_sum = correct = count = 0.0
        size = self.hp.batch_size
        # FSDP gathers each layer from all ranks in every forward, so every rank runs as many batches as
        # rank 0 (the one with the most examples); a rank out of examples runs one and ignores it.
        batches = math.ceil(math.ceil(len(examples) / self.world) / size)
        for start in range(0, len(mine) if self.strategy == "ddp" else batches * size, size):
            chunk = mine[start : start + size]
            batch = collate([[e] for e in chunk or examples[:1]], self.tokenizer.pad_token_id, packed=False)
            batch_loss, batch_correct = self._forward_sums(batch)
            if not chunk:
                continue
            loss_sum += float(batch_loss)
            correct += float(batch_correct)
            count += float((batch["targets"] != -100).sum())
        loss_sum, correct, count = self._reduce([loss_sum, correct, count])
        if was_training:
            self.model.train()
        return {"loss": loss_sum / max(count, 1.0), "tokenAccuracy": correct / max(count, 1.0)}

    def evaluate_validation(self) -> None:
        metrics = self.evaluate(self.validation_examples)
        if not metrics:
            return
        self.state.eval_metrics = metrics
        if self.accelerator.is_main_process:
            self.metrics.set(self.metrics.eval_loss, metrics["loss"])
            self.metrics.set(self.metrics.eval_token_accuracy, metrics["tokenAccuracy"])
            self.server.update(eval_loss=metrics["loss"])
            log.info(
                "evaluation",
                extra={
                    "step": self.state.step,
                    "evalLoss": round(metrics["loss"], 5),
                    "evalTokenAccuracy": round(metrics["tokenAccuracy"], 4),
                },
            )

    # ----------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> None:
        step = self.state.step
        if step == self._saved_step:
            # A SIGTERM right after the periodic save of this step: it is sealed already. Saving it again
            # would rewrite files under a manifest that vouches for them (every rank decides alike).
            return
        local = self.work_dir / "checkpoint" / f"step-{step}"
        if self.accelerator.is_local_main_process:
            shutil.rmtree(local, ignore_errors=True)
        if self.accelerator.is_main_process:
            checkpoints.clear_incomplete(self.output, step, self.options)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process and self.strategy == "ddp":
            train_state.save_model_and_optimizer(
                local, self.accelerator.unwrap_model(self.model), self.optimizer, self.scheduler
            )
        if self.strategy == "fsdp":
            # Every rank writes its own shards (sharded_state.py); rng files included.
            sharded_state.save_sharded(local, self.model, self.optimizer, self.scheduler, self.rank)
        else:
            train_state.save_rng(local, self.rank)
        self.accelerator.wait_for_everyone()
        uploaded: dict[str, str] = {}
        if self.accelerator.is_local_main_process:
            uploaded = checkpoints.upload_checkpoint(local, self.output, step, self.options)
            shutil.rmtree(local, ignore_errors=True)
        # Every node's file digests to rank 0 for the manifest (also the barrier after the uploads).
        digests = {name: sha for part in gather_object([uploaded]) for name, sha in part.items()}
        if self.accelerator.is_main_process:
            uri, digest = checkpoints.seal_checkpoint(
                self.output,
                step,
                {
                    "step": step,
                    "tokens": self.state.tokens,
                    "examples": self.state.examples,
                    "history": self.state.history,
                    "job": self.identity,
                },
                self.options,
                digests=digests,
            )
            removed = checkpoints.prune_checkpoints(self.output, self.spec.checkpoint.keep, self.options)
            self.state.last_checkpoint = {"uri": uri, "step": step, "digest": digest}
            self.metrics.inc(self.metrics.checkpoints)
            self.server.update(last_checkpoint=self.state.last_checkpoint)
            log.info("checkpoint saved", extra={"uri": uri, "step": step, "pruned": removed})
        self.accelerator.wait_for_everyone()
        self._saved_step = step

    # ---------------------------------------------------------------------------------------- export
    def export(self, metrics: dict[str, Any]) -> dict[str, Any] | None:
        """Rank 0 writes the model, card and result; returns the result (None on other ranks)."""
        self.accelerator.wait_for_everyone()
        # Every rank takes part in gathering the sharded weights; rank 0 receives them.
        gathered = sharding.full_state_dict(self.model) if self.strategy == "fsdp" else None
        if not self.accelerator.is_main_process:
            return None
        staging = self.work_dir / "export"
        shutil.rmtree(staging, ignore_errors=True)
        model = self._export_model(gathered)
        model.save_pretrained(staging, safe_serialization=True)
        if self.spec.method in ("lora", "qlora"):
            export.record_adapter_base(staging, self.spec.model.uri)
        self.tokenizer.save_pretrained(staging)
        if self.spec.method == "lora" and self.spec.effective_lora().merge:
            merged = model.merge_and_unload()
            merged.save_pretrained(staging / "merged", safe_serialization=True)
            self.tokenizer.save_pretrained(staging / "merged")
        spec_json = self.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        (staging / "README.md").write_text(
            export.model_card(
                job_name=self.name,
                spec=spec_json,
                metrics=metrics,
                counts=self.data.counts,
                base_model=self.spec.model.uri,
            )
        )
        digest = directory_digest(staging)
        upload_dir(staging, self.output, self.options)
        self.server.update(phase="Succeeded", percent=100.0, eta_seconds=0)
        result = {
            "output": {"uri": self.output, "digest": digest},
            "progress": self.server.progress_json(),
            "metrics": metrics,
            "splitManifest": split_manifest_uri(self.output),
            "lastCheckpoint": self.state.last_checkpoint,
            "counts": self.data.counts,
            "history": self.state.history,
            "job": self.identity,
        }
        # result.json last: its presence means the export is complete.
        write_json(join_uri(self.output, "result.json"), result, self.options)
        report_result(result)
        log.info("exported", extra={"uri": self.output, "digest": digest})
        return result

    def _export_model(self, gathered: dict[str, torch.Tensor] | None) -> Any:
        """A plain fp32 CPU model to save: the trained one itself (ddp), or one rebuilt from the base model
        with the gathered weights (fsdp) or the trained adapters (qlora: LoRA on the unquantised base, so
        that `lora.merge` yields full-precision weights)."""
        if gathered is None and self.spec.method != "qlora":
            return self.accelerator.unwrap_model(self.model)
        model = load_model(self.model_dir, on_gpu=False, gradient_checkpointing=False)
        if self.spec.method in ("lora", "qlora"):
            model = apply_lora(model, self.spec.effective_lora(), False)
        if gathered is not None:
            model.load_state_dict(gathered)
            return model
        trained = self.accelerator.unwrap_model(self.model)
        adapters = {n: p.detach().float().cpu() for n, p in trained.named_parameters() if p.requires_grad}
        missing = set(adapters) - {n for n, _ in model.named_parameters()}
        if missing:
            raise RuntimeError(f"qlora export: adapters {sorted(missing)[:3]} not in the unquantised model")
        model.load_state_dict(adapters, strict=False)
        return model

    def _progress_bar(self) -> Any:
        if not (self.progress_bar and self.accelerator.is_main_process):
            return None
        # deferred: only `kubetune train` in a terminal draws a bar; pods never import rich's widgets
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        )
        self._bar_task = bar.add_task("training", total=self.total_steps, completed=self.state.step)
        bar.start()
        return bar

    def cleanup(self) -> None:
        if getattr(self, "_previous_sigterm", None) is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        if getattr(self, "server", None) is not None:
            self.server.stop()
        if getattr(self, "accelerator", None) is not None:
            self.accelerator.end_training()


def finished_result(job: FineTuneJob) -> dict[str, Any] | None:
    """The result of an already finished run of this job (a restarted pod must not train again).

    Raises OutputInUseError, before anything is written, when output.uri holds another job's result or
    checkpoints (output_owner.py)."""
    options = storage_options(job.spec.storage)
    uri = join_uri(job.spec.output.uri, "result.json")
    if not exists(uri, options):
        latest = checkpoints.latest_complete(job.spec.output.uri, options)
        if latest is not None:
            saved = checkpoints.read_checkpoint_state(latest, options)
            output_owner.claim_output(saved.get("job"), output_owner.job_identity(job), latest.uri)
        return None
    result: dict[str, Any] = json.loads(read_text(uri, options))
    claim = output_owner.claim_output(result.get("job"), output_owner.job_identity(job), uri)
    if claim == "redo":
        log.info(
            "result of a previous job of this name with another spec: training again", extra={"uri": uri}
        )
        return None
    return result


def report_result(result: dict[str, Any]) -> bool:
    """The operator's copy of the result (workload contract): output uri + digest, final progress, last
    checkpoint. Skipped outside a pod (no termination log)."""
    keys = ("output", "progress", "lastCheckpoint")
    return contract.write_result({key: result[key] for key in keys if result.get(key) is not None})


def run_training(job: FineTuneJob, *, progress_bar: bool = False) -> dict[str, Any] | None:
    """Train, export and return the result dict (on rank 0; None elsewhere)."""
    done = finished_result(job)
    if done is not None:
        log.info("output already complete; nothing to do", extra={"uri": job.spec.output.uri})
        # A restarted attempt after a complete export still reports the digest to the operator.
        report_result(done)
        return done
    recipe = FineTuneRecipe(job, progress_bar=progress_bar)
    try:
        recipe.setup()
        metrics = recipe.train()
        return recipe.export(metrics)
    finally:
        recipe.cleanup()


__all__ = ["FineTuneRecipe", "PreemptedError", "TruncationStats", "run_training"]
