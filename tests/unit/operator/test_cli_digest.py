"""`kubetune digest`: the digest to pin, as the pods compute it (a FineTuneJob's output folder gives its
status.output.digest: result.json, split/ and checkpoints/ are left out)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from typer.testing import CliRunner

from kubetune_operator.cli import app
from kubetune_operator.data.digest import listing_digest


def test_digest_of_a_local_output_folder_leaves_out_what_lies_beside_the_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    for beside in ("result.json", "split/manifest.json", "checkpoints/step-2/manifest.json"):
        (tmp_path / beside).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / beside).write_text("{}")
    expected = listing_digest(
        {
            "config.json": hashlib.sha256(b"{}").hexdigest(),
            "model.safetensors": hashlib.sha256(b"weights").hexdigest(),
        }
    )

    printed = CliRunner().invoke(app, ["digest", str(tmp_path)])
    assert printed.exit_code == 0, printed.output
    assert printed.output == f"{expected}\n"


def test_digest_of_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    printed = CliRunner().invoke(app, ["digest", str(tmp_path / "nothing")])
    assert printed.exit_code == 2 and "not a directory" in printed.output
