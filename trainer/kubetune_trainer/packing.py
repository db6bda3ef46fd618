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
import heapq
from collections.abc import Sequence


def best_fit_pack(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Group indices of `lengths` into bins whose total length is <= capacity; deterministic.

    Among the bins with the least room that still fits, the oldest (lowest id) wins. Open bins are kept per
    room value (at most `capacity + 1` distinct values), so a million examples pack in seconds: the sorted
    list that bisect searches holds room values, not bins.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    rooms: list[int] = []  # sorted distinct room values that some open bin has
    bins_with_room: dict[int, list[int]] = {}  # room -> heap of bin ids
    for index in order:
        length = lengths[index]
        if length > capacity:
            raise ValueError(f"example {index} has {length} tokens, more than the row capacity {capacity}")
        pos = bisect.bisect_left(rooms, length)
        if pos < len(rooms):
            room = rooms[pos]
            heap = bins_with_room[room]
            bin_id = heapq.heappop(heap)
            if not heap:
                del bins_with_room[room]
                rooms.pop(pos)
            bins[bin_id].append(index)
            room -= length
        else:
            bins.append([index])
            bin_id, room = len(bins) - 1, capacity - length
        if room not in bins_with_room:
            bins_with_room[room] = []
            bisect.insort(rooms, room)
        heapq.heappush(bins_with_room[room], bin_id)
    return bins
