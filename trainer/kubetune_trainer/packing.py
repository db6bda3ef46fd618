"""Best-fit packing of tokenized examples into rows of at most `capacity` tokens (pure Python).

Best-fit decreasing: examples sorted by length (longest first) each go into the open row with the *least*
room that still fits them, else into a new row. It wastes less space than first-fit or greedy
concatenation and never splits an example. Within a packed row, position ids restart at 0 for each
example; transformers (>= 4.5x, masking_utils.find_packed_sequence_indices) turns those resets into a
block-diagonal causal mask for sdpa/eager, and flash-attention uses them as varlen boundaries, so no token
attends across examples.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def best_fit_pack(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Group indices of `lengths` into bins whose total length is <= capacity; deterministic."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    # Sorted (room_left, bin_id) pairs: bisect finds the tightest bin that still fits in O(log n).
    rooms: list[tuple[int, int]] = []
    for index in order:
        length = lengths[index]
        if length > capacity:
            raise ValueError(f"example {index} has {length} tokens, more than the row capacity {capacity}")
        pos = bisect.bisect_left(rooms, (length, -1))
        if pos < len(rooms):
            room, bin_id = rooms.pop(pos)
            bins[bin_id].append(index)
            bisect.insort(rooms, (room - length, bin_id))
        else:
            bins.append([index])
            bisect.insort(rooms, (capacity - length, len(bins) - 1))
    return bins
