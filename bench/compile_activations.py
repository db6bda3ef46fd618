"""What `hyperparameters.compile` saves in activations, per token and decoder layer: eager vs compiled layers.

The memory estimator (kubetune_operator.api.memory) models a compiled layer as keeping the inputs of its
matmuls and attention and recomputing the pointwise work (RMSNorm's fp32 normalisation, autocast's casts,
SiLU) in the backward pass. This measures that on CPU, without a GPU: a randomly initialised Llama whose
layers are compiled as the trainer compiles them (`sharding.compile_decoder_layers`), bf16 autocast over
fp32 weights (the trainer's DDP recipe), and again with bf16 layers fed bf16 inputs (what FSDP2's
MixedPrecisionPolicy gives each layer). Every tensor saved for the backward pass is recorded through
`torch.autograd.graph.saved_tensors_hooks` (a compiled layer saves through the same hooks), one entry per
storage, parameters and autocast's weight copies left out. Bytes per layer are the difference between a
4-layer and a 2-layer model, halved, so the embeddings, the loss and the shared attention mask cancel.

Reported per setup: bytes per token per layer eager, compiled, the saving, and the saving the estimator
predicts for the same shape. Attention differs between CPU and GPU (on CPU, SDPA's inputs are the
grouped-query heads repeated), so the saving is what to compare, not the totals.

    .venv/bin/python bench/compile_activations.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from typing import Any

import torch

from kubetune_operator.api.memory import ModelShape, Strategy, TrainingSetup, estimate

# TinyLlama-1.1B's ratios (the GPU check's model) at a size a CPU compiles in seconds.
CONFIG: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 256,
    "num_attention_heads": 8,
    "num_key_value_heads": 1,
    "intermediate_size": 704,
    "vocab_size": 512,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
}
BATCH, SEQ = 2, 512


def _bf16_inputs(
    module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """FSDP2's cast_forward_inputs: each layer computes on bf16 hidden states."""
    cast = tuple(a.to(torch.bfloat16) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
    return cast, kwargs


def saved_bytes(layers: int, compiled: bool, strategy: Strategy) -> int:
    """Bytes of the distinct storages saved for backward by one forward pass (the second, when compiled)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from kubetune_trainer.sharding import compile_decoder_layers

    torch.manual_seed(0)
    config = LlamaConfig(**CONFIG, num_hidden_layers=layers)
    auto_class: Any = AutoModelForCausalLM  # from_config is untyped in transformers 5
    # As the trainer builds it (modeling.py): fp32 weights, SDPA; packed rows' position ids -> the mask.
    model = auto_class.from_config(config, dtype=torch.float32, attn_implementation="sdpa")
    if strategy == "fsdp":
        model.model.layers.to(torch.bfloat16)
        for layer in model.model.layers:
            layer.register_forward_pre_hook(_bf16_inputs, with_kwargs=True)
    if compiled:
        compile_decoder_layers(model)
    ids = torch.randint(0, CONFIG["vocab_size"], (BATCH, SEQ))
    # Packed rows: two examples per row, positions restart at the second.
    positions = torch.cat([torch.arange(SEQ // 2), torch.arange(SEQ // 2)]).expand(BATCH, SEQ)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    weight_shapes = {tuple(p.shape) for p in model.parameters()} | {
        tuple(reversed(p.shape)) for p in model.parameters()
    }
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        # Activations have a token dimension (BATCH x SEQ differs from every weight's dimensions).
        if storage.data_ptr() not in parameters and tuple(tensor.shape) not in weight_shapes:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    for _ in range(2 if compiled else 1):  # a compiled layer's first call compiles it
        storages.clear()
        with (
            torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor),
            torch.autocast("cpu", dtype=torch.bfloat16),
        ):
            logits = model(input_ids=ids, position_ids=positions, use_cache=False).logits
        logits.float().sum().backward()
    return sum(storages.values())


def per_token_per_layer(compiled: bool, strategy: Strategy) -> float:
    return (saved_bytes(4, compiled, strategy) - saved_bytes(2, compiled, strategy)) / 2 / (BATCH * SEQ)


def predicted_saving(strategy: Strategy) -> float:
    """The estimator's eager minus compiled activations for the same shape, per token per layer."""
    shape = ModelShape.from_config({**CONFIG, "num_hidden_layers": 2})
    eager = TrainingSetup(method="full", strategy=strategy, micro_batch=BATCH, max_seq_length=SEQ)
    difference = (
        estimate(shape, eager).activations - estimate(shape, replace(eager, compile=True)).activations
    )
    return difference / shape.num_layers / (BATCH * SEQ)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    hidden = CONFIG["hidden_size"]
    rows = []
    print(
        f"{'setup':<6} {'eager':>8} {'compiled':>9} {'saving':>8} {'predicted':>10}"
        f"  bytes/token/layer (h={hidden})"
    )
    for strategy in ("ddp", "fsdp"):
        eager, compiled = per_token_per_layer(False, strategy), per_token_per_layer(True, strategy)
        predicted = predicted_saving(strategy)
        row = {
            "setup": strategy,
            "eager": eager,
            "compiled": compiled,
            "saving": eager - compiled,
            "predicted": predicted,
            "savingOverPredicted": (eager - compiled) / predicted if predicted else math.nan,
        }
        rows.append(row)
        print(
            f"{strategy:<6} {eager:>8.0f} {compiled:>9.0f} {eager - compiled:>8.0f} {predicted:>10.0f}"
            f"  ({(eager - compiled) / hidden:.1f}h saved, {predicted / hidden:.1f}h predicted)",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"config": CONFIG, "batch": BATCH, "seq": SEQ, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
