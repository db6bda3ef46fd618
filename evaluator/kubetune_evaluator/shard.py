"""Which batches of an evaluation one pod computes when an EvalJob runs on `resources.nodes` pods (pure).

Every pod builds the same plan a single pod would (the same requests, sorted longest first, cut into the
same batches of `generation.batchSize`) and computes the batches dealt to it, round after round as cards
are dealt, every other round in reverse (ranks 0, 1, 2, then 2, 1, 0, ...): batches run longest first, so
every pod gets long and short batches alike and none is always dealt the longer. Each batch therefore holds
exactly the rows it holds on one pod, and the model sees the same tensors: per-request log-likelihoods and
generations are bit-for-bit those of one pod (on the same hardware and kernels), and everything computed
from them is computed once, by rank 0, over all samples in index order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

LOCAL_RANK_ENV = "KUBETUNE_LOCAL_RANK"


@dataclass(frozen=True)
class Shard:
    """Rank `rank` of `count` pods; `Shard()` is the whole evaluation in one pod."""

    rank: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.rank < self.count:
            raise ValueError(f"shard {self.rank} of {self.count}: needs 0 <= rank < count")

    def owns(self, batch_number: int) -> bool:
        """Whether this pod computes batch `batch_number` of the one-pod plan (dealt back and forth)."""
        round_number, seat = divmod(batch_number, self.count)
        return (seat if round_number % 2 == 0 else self.count - 1 - seat) == self.rank

    @property
    def merges(self) -> bool:
        """Rank 0 waits for the others, merges and publishes."""
        return self.rank == 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Shard `node rank x processes per node + local rank` of `nodes x processes per node`:
        KUBETUNE_NODE_RANK (the Indexed Job's completion index), KUBETUNE_NUM_NODES and
        KUBETUNE_PROCESSES_PER_NODE come from the operator, KUBETUNE_LOCAL_RANK from the pod's launcher
        (local_processes.py); one whole shard when they are absent (`kubetune eval`)."""
        env = os.environ if environ is None else environ
        per_node = int(env.get("KUBETUNE_PROCESSES_PER_NODE") or 1)
        count = int(env.get("KUBETUNE_NUM_NODES") or 1) * per_node
        rank = int(env.get("KUBETUNE_NODE_RANK") or 0) * per_node + int(env.get(LOCAL_RANK_ENV) or 0)
        return cls(rank=rank, count=count)


WHOLE = Shard()
