"""Content digests of model folders and checkpoints: the trainer records one in `result.json` and the
termination message (a FineTuneJob's status.output.digest); a `digest` in a job's model reference pins
the files the trainer or evaluator may load, and every checkpoint manifest records its files' digests.

The digest is `sha256:` over the sorted lines `<sha256 of file>  <relative path>` of the files (the way
`sha256sum` would list them; sorted by path components), so anyone can recompute it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from kubetune_operator.api.contract import DigestMismatchError

BESIDE_MODEL = ("result.json", "split", "checkpoints")
"""What a FineTuneJob writes into its output prefix beside the model (top-level names): not model files."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def listing_digest(files: Mapping[str, str]) -> str:
    """The digest of {relative path: sha256 hex} (the `sha256sum` listing, sorted by path)."""
    # Sorted by path components, as pathlib sorts paths (`a/b` before `a-c`): digests recorded before
    # this function existed stay valid.
    lines = [f"{files[path]}  {path}\n" for path in sorted(files, key=lambda path: path.split("/"))]
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def file_digests(root: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """{relative path: sha256 hex} of the files under `root`, minus the relative paths in `exclude`."""
    return {
        relative: file_sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and (relative := p.relative_to(root).as_posix()) not in exclude
    }


def directory_digest(root: Path, exclude: tuple[str, ...] = ("result.json",)) -> str:
    return listing_digest(file_digests(root, exclude))


def model_digest(directory: Path) -> str:
    """The digest of a downloaded model folder, equal to the FineTuneJob's status.output.digest when it is
    a FineTuneJob's output: the trainer digests its export staging folder, and the output prefix also holds
    what it writes beside the model (result.json, the split manifest, checkpoints), left out here."""
    beside_model = tuple(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.relative_to(directory).parts[0] in BESIDE_MODEL
    )
    return directory_digest(directory, exclude=beside_model)


def check_model_digest(directory: Path, expected: str | None, what: str) -> str:
    """The folder's model digest; DigestMismatchError when `expected` is set and differs. `what` names the
    model and the field that pinned it (e.g. `spec.model (s3://models/base/)`)."""
    found = model_digest(directory)
    if expected and found != expected:
        raise DigestMismatchError(
            f"{what}: the downloaded files have digest {found}, not the pinned {expected}; "
            "the model changed since it was pinned, so no weights were loaded"
        )
    return found
