"""Load the base model and tokenizer, and wrap the model with LoRA adapters when asked."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from kubetune_operator.data.errors import ConfigError

if TYPE_CHECKING:
    from kubetune_operator.api import LoraSpec

log = logging.getLogger(__name__)


def load_tokenizer(model_dir: Path) -> Any:

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token_id is None:
        # Padding positions never carry labels (see tokenization.py), so reusing EOS here is safe.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


ATTENTION_IMPLEMENTATIONS: dict[str, str] = {"sdpa": "sdpa", "flex": "flex_attention"}
"""hyperparameters.attention -> transformers' attn_implementation. With packed rows transformers turns the
position ids into the attention mask: a row-wide block-diagonal boolean mask for sdpa, a BlockMask that
skips the blocks between examples for flex."""


def load_model(
    model_dir: Path, *, on_gpu: bool, gradient_checkpointing: bool, attention: str = "sdpa"
) -> Any:

    # fp32 master weights; on GPU accelerate autocasts to bf16 (mixed_precision="bf16").
    model: Any = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation=ATTENTION_IMPLEMENTATIONS[attention]
    )
    return _training_ready(model, gradient_checkpointing)


def model_skeleton(model_dir: Path, *, gradient_checkpointing: bool, attention: str = "sdpa") -> Any:
    """The architecture of `load_model` without reading any weights (call it under `init_empty_weights`)."""

    config = AutoConfig.from_pretrained(model_dir)
    auto_class: Any = AutoModelForCausalLM  # from_config is untyped in transformers 5
    implementation = ATTENTION_IMPLEMENTATIONS[attention]
    model: Any = auto_class.from_config(config, dtype=torch.float32, attn_implementation=implementation)
    return _training_ready(model, gradient_checkpointing)


def _training_ready(model: Any, gradient_checkpointing: bool) -> Any:
    model.config.use_cache = False
    if gradient_checkpointing:
        # Per decoder layer (transformers' GradientCheckpointingLayer); non-reentrant, which FSDP2 needs.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def require_cuda_for_flex(on_gpu: bool) -> None:
    if not on_gpu:
        raise ConfigError(
            "spec.hyperparameters.attention: flex needs an NVIDIA GPU (FlexAttention has no backward pass on "
            "CPU) and this machine has none; use attention: sdpa here, or run on a GPU node"
        )


def require_cuda_for_qlora(on_gpu: bool) -> None:
    if not on_gpu:
        raise ConfigError(
            "spec.method: qlora needs an NVIDIA GPU (bitsandbytes' 4-bit NF4 kernels) and this machine has "
            "none (torch.cuda.is_available() is false); use method: lora here, or run on a GPU node"
        )


def load_model_4bit(
    model_dir: Path, *, device: torch.device, gradient_checkpointing: bool, attention: str = "sdpa"
) -> Any:
    """QLoRA's base: weights quantised to 4-bit NF4 (double quantisation), computing in bf16, ready for
    adapters (peft's prepare_model_for_kbit_training: norms in fp32, input grads for checkpointing)."""
    # bitsandbytes only on this path (transformers imports it for the 4-bit load): it is an optional
    # extra (`qlora`), GPU-only and slow to import, so the other methods never touch it.
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("spec.method: qlora needs bitsandbytes in the trainer image (the `qlora` extra)")
    # deferred: peft takes ~2.5 s to import and only lora/qlora jobs need it
    from peft import prepare_model_for_kbit_training  # noqa: PLC0415

    bnb_config: Any = BitsAndBytesConfig  # untyped in transformers 5
    quantization = bnb_config(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model: Any = AutoModelForCausalLM.from_pretrained(
        model_dir,
        quantization_config=quantization,
        dtype=torch.bfloat16,
        attn_implementation=ATTENTION_IMPLEMENTATIONS[attention],
        # The whole model on this process's GPU (an index: accelerate's device may be plain "cuda").
        device_map={"": device.index if device.index is not None else torch.cuda.current_device()},
    )
    model.config.use_cache = False
    prepare: Any = prepare_model_for_kbit_training  # untyped in peft 0.21
    return prepare(
        model,
        use_gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )


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
    # deferred: peft takes ~2.5 s to import and only lora/qlora jobs need it
    from peft import LoraConfig, get_peft_model  # noqa: PLC0415

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
