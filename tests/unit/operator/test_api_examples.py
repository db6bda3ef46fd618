"""Every example parses; every invalid example is rejected naming the field its comment promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kubetune_operator.api import EvalJob, FineTuneJob, ManifestError, load_manifest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))


def expected_path(manifest: Path) -> str:
    """The field path in parentheses on the manifest's first comment line."""
    comment = manifest.read_text().splitlines()[0]
    match = re.search(r"\(((?:spec|metadata)[^ )]*)", comment)
    assert match, (
        f"{manifest.name}: first comment line must name the rejected field as (spec....) or (metadata....)"
    )
    return match.group(1)


def test_there_are_examples_of_each_kind() -> None:
    kinds = {load_manifest(path).kind for path in EXAMPLES}
    assert kinds == {"FineTuneJob", "EvalJob"}
    assert len(INVALID) >= 10


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses(path: Path) -> None:
    manifest = load_manifest(path)
    assert isinstance(manifest, FineTuneJob | EvalJob)
    assert manifest.metadata["name"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_example_is_rejected_with_its_field_path(path: Path) -> None:
    with pytest.raises(ManifestError) as raised:
        load_manifest(path)
    assert expected_path(path) in str(raised.value)


def test_multitask_example_keeps_both_template_syntaxes() -> None:
    manifest = load_manifest(ROOT / "examples" / "finetunejob-multitask.yaml")
    assert isinstance(manifest, FineTuneJob)
    templates = [template.prompt for task in manifest.spec.tasks for template in task.templates]
    assert any("{{ review_body }}" in prompt for prompt in templates)
    assert any("{review_body}" in prompt and "{{" not in prompt for prompt in templates)
    assert [task.max_examples for task in manifest.spec.tasks] == [30000, 10000, None]
