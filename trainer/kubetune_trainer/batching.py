"""Deterministic, resumable batches: units (one example, or a packed row), epoch orders, and collation.

The data position of the whole run is one integer, the micro-batch index `m`: epoch `m // batches_per_epoch`,
global batch `m % batches_per_epoch` of that epoch's seeded permutation, and rank `r` takes units
`r::world_size` of it. So a resumed run (or one with more processes and the same global batch) sees exactly
the same data in the same order, and never re-reads a batch, without a stateful sampler.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch

from kubetune_trainer.packing import best_fit_pack
from kubetune_trainer.token_store import ExampleStore
from kubetune_trainer.tokenization import IGNORE_INDEX, TokenizedExample

NON_MODEL_KEYS = frozenset({"targets", "real_tokens", "num_examples"})


def make_units(examples: Sequence[TokenizedExample], packing: bool, capacity: int) -> list[list[int]]:
    """Training units: each a list of example indices (one per unit without packing)."""
    if not packing:
        return [[i] for i in range(len(examples))]
    # A memory-mapped store knows its lengths without building a million examples.
    lengths = examples.lengths.tolist() if isinstance(examples, ExampleStore) else [len(e) for e in examples]
    return best_fit_pack(lengths, capacity)


@dataclass(frozen=True)
class BatchPlan:
    num_units: int
    batch_size: int  # units per process per micro-batch
    world_size: int
    seed: int

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    @property
    def batches_per_epoch(self) -> int:
        return max(1, math.ceil(self.num_units / self.global_batch))

    def epoch_order(self, epoch: int) -> list[int]:
        return _epoch_order(self.num_units, self.seed, epoch)

    def units_for(self, micro_batch: int, rank: int) -> list[int]:
        """The units rank `rank` trains on in micro-batch `micro_batch` (0-based, counted over the run)."""
        epoch, index = divmod(micro_batch, self.batches_per_epoch)
        order = self.epoch_order(epoch)
        start = index * self.global_batch
        # The last global batch of an epoch wraps around to the epoch's start, so every rank gets a full
        # share (DDP needs every rank to run a forward pass) — as DistributedSampler pads.
        chosen = [order[(start + k) % len(order)] for k in range(self.global_batch)]
        return chosen[rank :: self.world_size]


@lru_cache(maxsize=4)
def _epoch_order(num_units: int, seed: int, epoch: int) -> list[int]:
    order = list(range(num_units))
    random.Random(f"{seed}:epoch:{epoch}").shuffle(order)
    return order


def collate(rows: Sequence[Sequence[TokenizedExample]], pad_id: int, packed: bool) -> dict[str, torch.Tensor]:
    """Right-padded tensors for a micro-batch of units.

    `targets` are the labels already shifted by one *within each example* (the last token of an example
    predicts nothing), so a packed row never learns to predict the next example's first token.
    Unpacked batches carry an `attention_mask`; packed rows carry `position_ids` that restart per example
    (and for the padding tail), which transformers turns into a block-diagonal causal mask.
    """
    width = max(sum(len(e) for e in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        offset = 0
        for example in row:
            n = len(example)
            input_ids[b, offset : offset + n] = torch.tensor(example.input_ids)
            targets[b, offset : offset + n - 1] = torch.tensor(example.labels[1:])
            position_ids[b, offset : offset + n] = torch.arange(n)
            attention_mask[b, offset : offset + n] = 1
            offset += n
        position_ids[b, offset:] = torch.arange(width - offset)
    batch = {"input_ids": input_ids, "targets": targets}
    if packed:
        batch["position_ids"] = position_ids
    else:
        batch["attention_mask"] = attention_mask
    batch["real_tokens"] = attention_mask.sum()
    batch["num_examples"] = torch.tensor(sum(len(row) for row in rows))
    return batch


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors the model's forward takes (the rest is bookkeeping)."""
    return {k: v for k, v in batch.items() if k not in NON_MODEL_KEYS}


def padding_ratio(batch: dict[str, torch.Tensor]) -> float:
    return 1.0 - float(batch["real_tokens"]) / batch["input_ids"].numel()
