"""Reading manifests (YAML files or dicts) into the API models, with errors that name the field."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kubetune_operator.api.base import API_VERSION
from kubetune_operator.api.evaljob import EvalJob
from kubetune_operator.api.finetunejob import FineTuneJob
from kubetune_operator.api.naming import name_problem

Manifest = FineTuneJob | EvalJob
KINDS: dict[str, type[FineTuneJob] | type[EvalJob]] = {"FineTuneJob": FineTuneJob, "EvalJob": EvalJob}


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names every offending field path."""


def field_path(location: tuple[int | str, ...]) -> str:
    """`("spec", "tasks", 0, "templates")` -> `spec.tasks[0].templates`, as kubectl prints paths."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def format_validation_error(error: ValidationError) -> str:
    """One line per problem: `spec.hyperparameters.learningRate: Input should be greater than 0`."""
    lines = []
    for item in error.errors():
        path = field_path(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        # Cross-field validators already start their message with the field they are about.
        lines.append(message if message.startswith(("spec.", "metadata.")) else f"{path}: {message}")
    return "\n".join(lines)


def parse_manifest(document: Mapping[str, Any]) -> Manifest:
    """Validate one manifest dict as a FineTuneJob or EvalJob."""
    if not isinstance(document, Mapping):
        raise ManifestError("manifest: expected a mapping with apiVersion, kind, metadata and spec")
    if document.get("apiVersion") != API_VERSION:
        raise ManifestError(f"apiVersion: expected {API_VERSION}, got {document.get('apiVersion')!r}")
    kind = document.get("kind")
    model = KINDS.get(str(kind))
    if model is None:
        raise ManifestError(f"kind: expected one of {sorted(KINDS)}, got {kind!r}")
    try:
        manifest = model.model_validate(dict(document))
    except ValidationError as error:
        raise ManifestError(format_validation_error(error)) from None
    name = manifest.metadata.get("name")
    if isinstance(name, str) and (problem := name_problem(manifest.kind, name)) is not None:
        raise ManifestError(f"metadata.name: {problem}")
    return manifest


def load_manifest(path: str | Path) -> Manifest:
    """Read the first FineTuneJob/EvalJob document of a YAML file."""
    text = Path(path).read_text()
    documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    if not documents:
        raise ManifestError(f"{path}: no YAML document")
    return parse_manifest(documents[0])
