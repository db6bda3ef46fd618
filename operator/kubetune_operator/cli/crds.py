"""`kubetune crds`: print (or write) the CustomResourceDefinitions generated from the API models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubetune_operator.api.crd import crd_file_name, dump_yaml, generate_crds


def crds_command(
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir", "-o", help="Write one file per CRD into this directory instead of stdout."
        ),
    ] = None,
) -> None:
    """Print the CRDs of kubetune.io/v1alpha1 as YAML (generated from the pydantic models)."""
    documents = generate_crds()
    if output_dir is None:
        typer.echo("---\n".join(dump_yaml(doc) for doc in documents), nl=False)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for doc in documents:
        path = output_dir / crd_file_name(doc)
        path.write_text(dump_yaml(doc))
        typer.echo(f"wrote {path}")
