"""`kubetune digest URI`: the digest to pin a model with (`spec.model.digest`, `spec.baseline.digest`),
computed over the files as the trainer and evaluator pods compute it (kubetune_operator.data.digest)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from kubetune_operator.data.digest import model_digest
from kubetune_operator.data.errors import UnsafeObjectKeyError
from kubetune_operator.data.storage import StorageOptions, download_prefix, is_s3


def digest_command(
    uri: Annotated[str, typer.Argument(help="s3://bucket/prefix/ or a local model folder.")],
    endpoint: Annotated[
        str | None, typer.Option(help="S3 endpoint URL (else AWS_ENDPOINT_URL; unset: AWS S3).")
    ] = None,
    region: Annotated[str | None, typer.Option(help="S3 region (else AWS_REGION).")] = None,
) -> None:
    """Print the sha256 digest of the model files under URI (result.json, split/ and checkpoints/ left
    out): for a FineTuneJob's output, its status.output.digest."""
    options = StorageOptions(endpoint=endpoint, region=region)
    try:
        if not is_s3(uri):
            typer.echo(model_digest(download_prefix(uri, Path("."), options)))
            return
        # The files are downloaded once, to a folder removed afterwards (models are large).
        with tempfile.TemporaryDirectory(prefix="kubetune-digest-") as scratch:
            typer.echo(model_digest(download_prefix(uri, Path(scratch), options)))
    except (FileNotFoundError, UnsafeObjectKeyError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
