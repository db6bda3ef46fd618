"""Build tiny models and learnable datasets for tests, benchmarks and demos (no downloads).

`build_tiny_model(dir)` trains a byte-level BPE tokenizer (tokenizers, < 1 s) and saves a randomly initialised
Llama (a few million parameters) in Hugging Face layout with `<pad>` != `</s>` and a chat template, so every
code path (padding, EOS, chat format, LoRA target names q_proj/v_proj/...) is exercised like a real model.
`reverse_task_rows(n)` makes a task a tiny model learns in about a minute on a CPU.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}</s>{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
LETTERS = "abcdefgh"


# The config.json of a Llama-7B (6.74B parameters), no weights: the memory estimator's and preflight's tests.
LLAMA_7B_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "intermediate_size": 11008,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
}


def reverse_task_rows(n: int, seed: int = 0, min_len: int = 3, max_len: int = 5) -> list[dict[str, Any]]:
    """Rows {"word": "b a d", "reversed": "d a b", "shifted": "c b e"}: spaced letters, one token each.

    `shifted` maps every letter to the next one (h wraps to a): a copy-like task a copy-trained base model
    adapts to with LoRA alone.
    """
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        letters = [rng.choice(LETTERS) for _ in range(rng.randint(min_len, max_len))]
        shifted = [LETTERS[(LETTERS.index(c) + 1) % len(LETTERS)] for c in letters]
        rows.append(
            {"word": " ".join(letters), "reversed": " ".join(reversed(letters)), "shifted": " ".join(shifted)}
        )
    return rows


def varied_length_rows(
    n: int, seed: int = 0, min_words: int = 10, max_words: int = 200
) -> list[dict[str, Any]]:
    """Prompt/completion rows of very different lengths (for packing and throughput)."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "theta", "zeta", "eta"]
    rows = []
    for _ in range(n):
        total = rng.randint(min_words, max_words)
        cut = rng.randint(1, max(1, total - 1))
        text = [rng.choice(words) for _ in range(total)]
        rows.append({"prompt": "Continue: " + " ".join(text[:cut]), "completion": " " + " ".join(text[cut:])})
    return rows


def build_tokenizer(output_dir: Path, vocab_size: int = 320, extra_corpus: Sequence[str] = ()) -> Any:
    """A byte-level BPE tokenizer trained on letters and common words (plus `extra_corpus`, e.g. a
    demo's own text, so that its words become single tokens), saved as tokenizer.json."""
    # deferred: tokenizers and transformers cost seconds; tests that only need rows skip them
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [
        " ".join(string.ascii_lowercase),
        "Reverse: Copy: Continue: Answer: Rate this review:",
        *[" ".join(r["word"] for r in reverse_task_rows(50, seed=s)) for s in range(5)],
        *extra_corpus,
    ]
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer_class: Any = PreTrainedTokenizerFast  # untyped constructor in transformers 5
    fast = tokenizer_class(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(output_dir)
    return fast


def build_tiny_model(
    output_dir: Path,
    *,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
    initializer_range: float = 0.02,
    vocab_size: int = 320,
    extra_corpus: Sequence[str] = (),
) -> Path:
    """Save a tokenizer + randomly initialised LlamaForCausalLM (fp32 safetensors) in `output_dir`."""
    # deferred: torch and transformers cost seconds; tests that only need rows skip them
    import torch  # noqa: PLC0415
    from transformers import LlamaConfig, LlamaForCausalLM  # noqa: PLC0415

    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(output_dir, vocab_size, extra_corpus)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(output_dir)
    return output_dir


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_finetune_job(path: Path, name: str, spec: dict[str, Any]) -> Path:
    """Write a FineTuneJob manifest (camelCase spec dict) to `path`."""
    manifest = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": spec,
    }
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def letter_task_spec(
    model_uri: str,
    data_uri: str,
    output_uri: str,
    *,
    prompt: str,
    completion: str,
    method: str = "full",
    **hyperparameters: Any,
) -> dict[str, Any]:
    """A FineTuneJob spec for the letter tasks of `reverse_task_rows` (tiny-model friendly defaults)."""
    hp = {
        "epochs": 6,
        "learningRate": "3e-3",
        "batchSize": 16,
        "maxSeqLength": 64,
        "warmupRatio": 0.05,
        "seed": 1,
        **hyperparameters,
    }
    spec: dict[str, Any] = {
        "model": {"uri": model_uri},
        "dataset": {"uri": data_uri, "split": {"validation": 0.05, "test": 0.1, "seed": 1}},
        "tasks": [{"name": "letters", "templates": [{"prompt": prompt, "completion": completion}]}],
        "method": method,
        "hyperparameters": hp,
        "output": {"uri": output_uri},
        "checkpoint": {"everySteps": 1000, "keep": 2},
    }
    return spec
