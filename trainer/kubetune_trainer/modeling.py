"""Load the base model and tokenizer, and wrap the model with LoRA adapters when asked."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from kubetune_trainer.errors import ConfigError

if TYPE_CHECKING:
    from kubetune_operator.api import LoraSpec

log = logging.getLogger(__name__)


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token_id is None:
        # Padding positions never carry labels (see tokenization.py), so reusing EOS here is safe.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_dir: Path, *, on_gpu: bool, gradient_checkpointing: bool) -> Any:
    from transformers import AutoModelForCausalLM

    # fp32 master weights; on GPU accelerate autocasts to bf16 (mixed_precision="bf16").
    model: Any = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="sdpa"
    )
    model.config.use_cache = False
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def linear_module_names(model: torch.nn.Module) -> set[str]:
    """Short names (`q_proj`, `down_proj`, ...) of the Linear layers LoRA can adapt."""
    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name
    }


def check_target_modules(model: torch.nn.Module, targets: list[str]) -> None:
    available = linear_module_names(model)
    missing = [t for t in targets if t not in available]
    if missing:
        raise ConfigError(
            f"spec.lora.targetModules: {missing} not in the model; its linear modules are {sorted(available)}"
        )


def apply_lora(model: Any, lora: LoraSpec, gradient_checkpointing: bool) -> Any:
    from peft import LoraConfig, get_peft_model

    check_target_modules(model, list(lora.target_modules))
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    if gradient_checkpointing:
        # With frozen embeddings no input requires grad and checkpointed blocks would get no gradient.
        model.enable_input_require_grads()
    return get_peft_model(model, config)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def token_loss_sums(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of cross-entropy over supervised tokens, number of correct argmax predictions) — fp32."""
    flat_logits = logits.float().reshape(-1, logits.shape[-1])
    flat_targets = targets.reshape(-1)
    loss_sum = torch.nn.functional.cross_entropy(
        flat_logits, flat_targets, ignore_index=-100, reduction="sum"
    )
    mask = flat_targets != -100
    correct = (flat_logits.argmax(-1)[mask] == flat_targets[mask]).sum()
    return loss_sum, correct
