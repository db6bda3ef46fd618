"""Content digests of exported model folders: the trainer records one in `result.json` and the termination
message; the evaluator recomputes it to check that it scores the model the FineTuneJob produced.

The digest is `sha256:` over the sorted lines `<sha256 of file>  <relative path>` of the files (the way
`sha256sum` would list them), so anyone can recompute it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def directory_digest(root: Path, exclude: tuple[str, ...] = ("result.json",)) -> str:
    lines = [
        f"{file_sha256(p)}  {p.relative_to(root).as_posix()}\n"
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix() not in exclude
    ]
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()
