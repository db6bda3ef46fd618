"""Tokenized examples on disk, memory-mapped: what the token cache holds and what ranks train from.

A store is a directory of `.npy` arrays written in one streaming pass (`StoreWriter`):
`tokens` (int32, every example's input ids back to back), `offsets` (int64, n + 1), `prompt_lens` (int32:
the first `prompt_len` tokens carry label -100, the rest — completion and EOS — are supervised), `rows`
(int64: the example's row in its dataset) and `tasks` (int16: index into the task names).

`ExampleStore` opens those arrays with `mmap_mode="r"`: a process touches only the pages of the examples it
batches, so memory per rank stays bounded whatever the dataset's size, and the ranks of a node share one copy
in the page cache. It is a `Sequence[TokenizedExample]` over an index array (a part of the split or the
training mixture); slicing gives another view. No torch import.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np
import numpy.typing as npt

from kubetune_trainer.tokenization import IGNORE_INDEX, TokenizedExample

ARRAYS = ("tokens", "offsets", "prompt_lens", "rows", "tasks")
# Examples buffered in memory before they are appended to the files.
FLUSH_EVERY = 8192


class StoreWriter:
    """Appends tokenized examples to the store's files; `close()` writes the `.npy` arrays."""

    def __init__(self, directory: Path, task_names: Sequence[str]) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.task_ids = {name: i for i, name in enumerate(task_names)}
        self._raw = {name: (directory / f"{name}.raw").open("wb") for name in ARRAYS}
        self._buffer: list[TokenizedExample] = []
        self.count = 0
        self.token_count = 0
        self._raw["offsets"].write(np.zeros(1, dtype=np.int64).tobytes())

    def add(self, example: TokenizedExample) -> int:
        """Append one example; returns its index in the store."""
        self._buffer.append(example)
        if len(self._buffer) >= FLUSH_EVERY:
            self._flush()
        self.count += 1
        return self.count - 1

    def _flush(self) -> None:
        examples, self._buffer = self._buffer, []
        if not examples:
            return
        lengths = np.fromiter((len(e) for e in examples), dtype=np.int64, count=len(examples))
        tokens = np.fromiter(
            (t for e in examples for t in e.input_ids), dtype=np.int32, count=int(lengths.sum())
        )
        prompt_lens = np.fromiter(
            (len(e) - e.completion_tokens for e in examples), dtype=np.int32, count=len(examples)
        )
        self._raw["tokens"].write(tokens.tobytes())
        self._raw["offsets"].write((self.token_count + np.cumsum(lengths)).tobytes())
        self._raw["prompt_lens"].write(prompt_lens.tobytes())
        self._raw["rows"].write(np.array([e.row for e in examples], dtype=np.int64).tobytes())
        self._raw["tasks"].write(
            np.array([self.task_ids[e.task] for e in examples], dtype=np.int16).tobytes()
        )
        self.token_count += int(lengths.sum())

    def close(self) -> None:
        """Flush and turn each raw file into an `.npy` file (header + the same bytes, streamed)."""
        self._flush()
        dtypes = {"tokens": np.int32, "offsets": np.int64, "prompt_lens": np.int32, "rows": np.int64}
        for name, handle in self._raw.items():
            handle.close()
            raw = self.directory / f"{name}.raw"
            dtype = np.dtype(dtypes.get(name, np.int16))
            count = raw.stat().st_size // dtype.itemsize
            with (self.directory / f"{name}.npy").open("wb") as out, raw.open("rb") as source:
                np.lib.format.write_array_header_1_0(
                    out,
                    {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count,)},
                )
                while chunk := source.read(1 << 24):
                    out.write(chunk)
            raw.unlink()


def _load(directory: Path, name: str) -> npt.NDArray[np.integer]:
    array: npt.NDArray[np.integer] = np.load(directory / f"{name}.npy", mmap_mode="r")
    return array


class ExampleStore(Sequence[TokenizedExample]):
    """Examples `indices` of the store in `directory`, memory-mapped (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        task_names: Sequence[str],
        indices: npt.NDArray[np.int64] | None = None,
        _arrays: dict[str, npt.NDArray[np.integer]] | None = None,
    ) -> None:
        self.directory = directory
        self.task_names = list(task_names)
        self._arrays = _arrays if _arrays is not None else {name: _load(directory, name) for name in ARRAYS}
        total = len(self._arrays["rows"])
        self.indices = np.arange(total, dtype=np.int64) if indices is None else np.asarray(indices, np.int64)

    def view(self, indices: npt.NDArray[np.int64]) -> ExampleStore:
        """The examples at store positions `indices` (the same memory maps)."""
        return ExampleStore(self.directory, self.task_names, indices, self._arrays)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        """Token count of every example of this view, without building the examples."""
        offsets = self._arrays["offsets"]
        return np.asarray(offsets[self.indices + 1] - offsets[self.indices], dtype=np.int64)

    @overload
    def __getitem__(self, item: int) -> TokenizedExample: ...

    @overload
    def __getitem__(self, item: slice) -> ExampleStore: ...

    def __getitem__(self, item: int | slice) -> TokenizedExample | ExampleStore:
        if isinstance(item, slice):
            return self.view(self.indices[item])
        position = int(self.indices[item])
        offsets = self._arrays["offsets"]
        start, end = int(offsets[position]), int(offsets[position + 1])
        input_ids = [int(t) for t in self._arrays["tokens"][start:end]]
        prompt_len = int(self._arrays["prompt_lens"][position])
        labels = [IGNORE_INDEX] * prompt_len + input_ids[prompt_len:]
        task = self.task_names[int(self._arrays["tasks"][position])]
        return TokenizedExample(input_ids, labels, task, int(self._arrays["rows"][position]))

    def __iter__(self) -> Iterator[TokenizedExample]:
        for i in range(len(self)):
            yield self[i]
