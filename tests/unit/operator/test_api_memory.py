"""The memory estimator (kubetune_operator.api.memory): the usual arithmetic on a Llama-7B-shaped config."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import pytest

from kubetune_devtools.tiny_models import LLAMA_7B_CONFIG as LLAMA_7B
from kubetune_operator.api import FineTuneJob, parse_manifest
from kubetune_operator.api.memory import (
    DEFAULT_GPU_MEMORY,
    ModelConfigError,
    ModelShape,
    Strategy,
    TrainingSetup,
    choose_strategy,
    estimate,
    estimate_grid,
    options_that_fit,
    quantity_bytes,
    setup_for,
)

SHAPE = ModelShape.from_config(LLAMA_7B)


def test_llama_7b_has_its_6_74_billion_parameters() -> None:
    assert SHAPE.parameters == 6_738_415_616


def test_gqa_and_tied_embeddings_change_the_count() -> None:
    gqa = ModelShape.from_config({**LLAMA_7B, "num_key_value_heads": 8, "tie_word_embeddings": True})
    fewer_kv = 32 * 2 * 4096 * (4096 - 1024)  # k_proj and v_proj shrink to 8 heads of 128
    assert gqa.parameters == SHAPE.parameters - fewer_kv - 32000 * 4096


def test_full_adamw_ddp_is_16_bytes_per_parameter_plus_activations() -> None:
    result = estimate(SHAPE, TrainingSetup(method="full", strategy="ddp"))
    assert result.model_state_bytes_per_parameter == pytest.approx(16.0, abs=1e-6)
    assert (result.weights, result.gradients, result.optimizer) == (
        4 * SHAPE.parameters,
        4 * SHAPE.parameters,
        8 * SHAPE.parameters,
    )
    assert result.activations > 0
    assert not result.fits(DEFAULT_GPU_MEMORY)  # 7B full fine-tuning does not fit one 80 GB GPU


def test_fsdp_shards_model_states_over_every_process() -> None:
    ddp = estimate(SHAPE, TrainingSetup(method="full", strategy="ddp", world_size=16))
    fsdp = estimate(SHAPE, TrainingSetup(method="full", strategy="fsdp", world_size=16))
    assert fsdp.optimizer == pytest.approx(ddp.optimizer / 16, abs=1)
    assert fsdp.weights == pytest.approx(ddp.weights / 16, abs=1)
    # Each process still runs its own micro-batch: the same activations, except that FSDP's bf16 policy
    # makes the residual stream bf16 and shares each norm's output among the linears it feeds (measured by
    # bench/gpu_memory_probe.py), so fewer.
    assert ddp.activations * 0.7 < fsdp.activations < ddp.activations
    assert fsdp.fits(DEFAULT_GPU_MEMORY)


def test_lora_and_qlora_need_far_less_than_full() -> None:
    full, lora, qlora = (estimate(SHAPE, TrainingSetup(method=m)) for m in ("full", "lora", "qlora"))
    assert lora.trainable == 32 * 16 * (2 * 4096 + 2 * 4096)  # q_proj and v_proj, rank 16
    assert lora.weights == pytest.approx(4 * SHAPE.parameters + 4 * lora.trainable, abs=1)  # fp32 base
    assert qlora.weights < lora.weights / 3  # 4-bit linear layers
    assert qlora.total < lora.total < full.total
    assert lora.fits(DEFAULT_GPU_MEMORY) and qlora.fits(24 * 10**9)


def test_activations_grow_with_tokens_and_checkpointing_cuts_them() -> None:
    base = TrainingSetup(method="full", micro_batch=1, max_seq_length=1024)
    one = estimate(SHAPE, base).activations
    assert estimate(SHAPE, replace(base, micro_batch=4)).activations == pytest.approx(4 * one, rel=1e-6)
    # Linear in the tokens, but for the batch x seq x seq attention mask (0.04 % here).
    assert estimate(SHAPE, replace(base, max_seq_length=2048)).activations == pytest.approx(2 * one, rel=1e-3)
    assert estimate(SHAPE, replace(base, gradient_checkpointing=True)).activations < one / 4


def test_compiled_layers_recompute_norm_and_silu_work() -> None:
    # Per token and layer a compiled layer no longer keeps, per RMSNorm, the fp32 normalised value (4h) nor
    # autocast's extra casts (DDP: 5 bf16 copies become 2), and in the MLP silu(gate) (2i, bf16).
    h, i, tokens = 4096, 11008, 1024
    for strategy, saved_per_token_per_layer in (
        ("ddp", 2 * 4 * h + 3 * 2 * h + 2 * i),
        ("fsdp", 2 * 4 * h + 2 * i),
    ):
        eager = TrainingSetup(method="full", strategy=strategy, max_seq_length=tokens)
        difference = (
            estimate(SHAPE, eager).activations - estimate(SHAPE, replace(eager, compile=True)).activations
        )
        assert difference == 32 * tokens * saved_per_token_per_layer
    # Only full fine-tuning on GPU is modelled (LoRA/QLoRA and CPU were not measured compiled).
    for setup in (TrainingSetup(method="lora"), TrainingSetup(method="full", device="cpu")):
        compiled = estimate(SHAPE, replace(setup, compile=True))
        assert (compiled.activations, compiled.total) == (
            estimate(SHAPE, setup).activations,
            estimate(SHAPE, setup).total,
        )


def test_full_fine_tuning_estimates_match_the_h200_peaks() -> None:
    # bench/gpu_check.sh on an H200, 2026-11-30 (docs/trainer.md): TinyLlama-1.1B's shape, 4 x 2048 tokens,
    # one process; torch.cuda.max_memory_allocated in GiB, by strategy, checkpointing, compile, attention.
    shape = ModelShape.from_config(
        {
            "model_type": "llama",
            "hidden_size": 2048,
            "num_hidden_layers": 22,
            "num_attention_heads": 32,
            "num_key_value_heads": 4,
            "intermediate_size": 5632,
            "vocab_size": 32000,
            "tie_word_embeddings": False,
        }
    )
    measured: dict[tuple[Strategy, bool, bool, Literal["sdpa", "flex"]], float] = {
        ("ddp", False, False, "sdpa"): 37.33,
        ("fsdp", False, False, "sdpa"): 32.18,
        ("fsdp", True, False, "sdpa"): 20.55,
        ("ddp", False, True, "sdpa"): 29.94,
        ("fsdp", False, True, "sdpa"): 27.54,
        ("ddp", False, True, "flex"): 28.05,
        ("fsdp", False, True, "flex"): 25.65,
    }
    for (strategy, checkpointing, compiled, attention), peak in measured.items():
        setup = TrainingSetup(
            method="full",
            strategy=strategy,
            micro_batch=4,
            max_seq_length=2048,
            gradient_checkpointing=checkpointing,
            compile=compiled,
            attention=attention,
        )
        assert estimate(shape, setup).tensor_bytes / 2**30 == pytest.approx(peak, rel=0.07), setup


def test_cpu_is_fp32_and_has_no_qlora() -> None:
    cpu = estimate(SHAPE, TrainingSetup(method="lora", device="cpu"))
    assert cpu.weights == 4 * SHAPE.parameters + 4 * cpu.trainable
    with pytest.raises(ValueError, match="GPUs only"):
        estimate(SHAPE, TrainingSetup(method="qlora", device="cpu"))
    assert {e.setup.method for e in estimate_grid(SHAPE, TrainingSetup(device="cpu"))} == {"full", "lora"}


def test_grid_is_strategy_by_method() -> None:
    grid = estimate_grid(SHAPE, TrainingSetup(world_size=8))
    assert [(e.setup.strategy, e.setup.method) for e in grid] == [
        (s, m) for s in ("ddp", "fsdp") for m in ("full", "lora", "qlora")
    ]


def test_options_name_what_would_fit() -> None:
    setup = TrainingSetup(method="full", world_size=8, micro_batch=2, max_seq_length=2048)
    options = options_that_fit(SHAPE, setup, DEFAULT_GPU_MEMORY, processes_per_node=8)
    assert options == [
        "method: lora",
        "method: qlora",
        "distributed.strategy: fsdp",
        "resources.nodes: 2 with distributed.strategy: fsdp",
    ]
    assert estimate(SHAPE, replace(setup, strategy="fsdp", world_size=16)).fits(DEFAULT_GPU_MEMORY)


def test_options_add_checkpointing_when_a_change_alone_is_not_enough() -> None:
    setup = TrainingSetup(method="full", world_size=1, micro_batch=8, max_seq_length=4096)
    options = options_that_fit(SHAPE, setup, DEFAULT_GPU_MEMORY)
    assert "method: lora and hyperparameters.gradientCheckpointing: true" in options
    assert not estimate(SHAPE, replace(setup, method="lora")).fits(DEFAULT_GPU_MEMORY)
    assert estimate(SHAPE, replace(setup, method="lora", gradient_checkpointing=True)).fits(
        DEFAULT_GPU_MEMORY
    )


def test_options_shorter_sequences_and_smaller_batches() -> None:
    setup = TrainingSetup(method="lora", micro_batch=16, max_seq_length=4096, gradient_checkpointing=True)
    options = options_that_fit(SHAPE, setup, 60 * 10**9)
    batch = next(o for o in options if o.startswith("hyperparameters.batchSize:"))
    length = next(o for o in options if o.startswith("hyperparameters.maxSeqLength:"))
    smaller = int(batch.split()[1])
    assert estimate(SHAPE, replace(setup, micro_batch=smaller)).fits(60 * 10**9)
    assert not estimate(SHAPE, replace(setup, micro_batch=smaller + 1)).fits(60 * 10**9)
    assert estimate(SHAPE, replace(setup, max_seq_length=int(length.split()[1]))).fits(60 * 10**9)


def test_auto_picks_ddp_when_it_fits_else_fsdp() -> None:
    assert choose_strategy(SHAPE, TrainingSetup(method="lora", world_size=8), DEFAULT_GPU_MEMORY) == "ddp"
    assert choose_strategy(SHAPE, TrainingSetup(method="full", world_size=8), DEFAULT_GPU_MEMORY) == "fsdp"
    # The trainer replicates a 4-bit base: qlora is never sharded, even when it does not fit.
    assert choose_strategy(SHAPE, TrainingSetup(method="qlora", world_size=8), 2 * 10**9) == "ddp"


def test_options_never_propose_sharding_a_4bit_base() -> None:
    setup = TrainingSetup(method="full", strategy="fsdp", world_size=2, micro_batch=1, max_seq_length=512)
    options = options_that_fit(SHAPE, setup, 24 * 10**9, processes_per_node=1)
    assert "method: qlora with distributed.strategy: ddp" in options
    assert all(not (o.startswith("method: qlora") and "fsdp" in o) for o in options)


def test_setup_for_reads_the_spec() -> None:
    job = parse_manifest(
        {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "tune"},
            "spec": {
                "model": {"uri": "s3://models/base/"},
                "dataset": {"uri": "s3://data/x.jsonl"},
                "output": {"uri": "s3://models/out/"},
                "method": "qlora",
                "lora": {"r": 8, "targetModules": ["q_proj", "k_proj"], "dropout": 0.0},
                "distributed": {"strategy": "fsdp"},
                "hyperparameters": {"batchSize": 2, "maxSeqLength": 512, "gradientCheckpointing": True},
                "resources": {"nodes": 2, "processesPerNode": 4, "gpusPerNode": 4},
            },
        }
    )
    assert isinstance(job, FineTuneJob)
    assert setup_for(job.spec) == TrainingSetup(
        method="qlora",
        strategy="fsdp",
        world_size=8,
        micro_batch=2,
        max_seq_length=512,
        gradient_checkpointing=True,
        lora_rank=8,
        lora_targets=("q_proj", "k_proj"),
        lora_dropout=False,
    )


def test_a_config_without_the_sizes_is_refused_by_name() -> None:
    with pytest.raises(ModelConfigError, match="intermediate_size"):
        ModelShape.from_config({k: v for k, v in LLAMA_7B.items() if k != "intermediate_size"})


def test_nested_text_config_is_read() -> None:
    assert ModelShape.from_config({"text_config": LLAMA_7B}).parameters == SHAPE.parameters


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("80Gi", 80 * 2**30),
        ("24G", 24 * 10**9),
        ("1.5Gi", 3 * 2**29),
        ("81920Mi", 80 * 2**30),
        ("8e9", 8 * 10**9),
    ],
)
def test_quantity_bytes(quantity: str, expected: int) -> None:
    assert quantity_bytes(quantity) == expected


def test_tensor_bytes_leave_out_the_runtime_reserve() -> None:
    gpu = estimate(SHAPE, TrainingSetup(method="lora"))
    assert gpu.total - gpu.tensor_bytes == 2**30  # CUDA context and workspaces: no tensor
    cpu = estimate(SHAPE, TrainingSetup(method="lora", device="cpu"))
    assert cpu.total - cpu.tensor_bytes == 128 * 2**20
