"""crds/ and docs/api.md are generated from the models; these tests fail when they drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from kubetune_operator.api.crd import crd_file_name, dump_yaml, generate_crds
from kubetune_operator.api.reference import render_api_reference
from kubetune_operator.cli import app

ROOT = Path(__file__).resolve().parents[3]
REGENERATE = "run `make crds` to regenerate"


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(walk(value, f"{path}[{index}]"))
    return found


def test_crds_directory_matches_the_models() -> None:
    for crd in generate_crds():
        path = ROOT / "crds" / crd_file_name(crd)
        assert path.exists(), f"{path} missing: {REGENERATE}"
        assert path.read_text() == dump_yaml(crd), f"{path} differs from the models: {REGENERATE}"


def test_api_reference_matches_the_models() -> None:
    assert (ROOT / "docs" / "api.md").read_text() == render_api_reference(), f"docs/api.md: {REGENERATE}"


def test_schemas_are_structural() -> None:
    for crd in generate_crds():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in walk(schema):
            assert "$ref" not in node, path
            assert "anyOf" not in node or node.get("x-kubernetes-int-or-string"), path
            assert "title" not in node, path
            assert node.get("additionalProperties") is not False, path
            is_free_form = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
                "x-kubernetes-int-or-string"
            )
            if path.endswith(".properties") or path.endswith("x-kubernetes-validations"):
                continue
            if "description" in node or "properties" in node:
                assert "type" in node or is_free_form, f"{path} has no type"


def test_names_columns_and_status_subresource() -> None:
    finetunejob, evaljob = generate_crds()
    assert finetunejob["spec"]["names"]["shortNames"] == ["ftj"]
    assert evaljob["spec"]["names"]["shortNames"] == ["evj"]
    for crd in (finetunejob, evaljob):
        assert crd["spec"]["names"]["categories"] == ["kubetune"]
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    columns = {
        crd["spec"]["names"]["kind"]: [
            c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"] if "priority" not in c
        ]
        for crd in (finetunejob, evaljob)
    }
    assert columns == {
        "FineTuneJob": ["Phase", "Progress", "Loss", "Restarts", "Age"],
        "EvalJob": ["Phase", "Progress", "Verdict", "ROUGE-L", "Age"],
    }


def test_cel_rules_cover_cross_field_constraints_and_immutability() -> None:
    finetunejob, evaljob = generate_crds()
    spec = finetunejob["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    messages = [rule["message"] for rule in spec["x-kubernetes-validations"]]
    assert "lora is only allowed with method: lora or qlora" in messages
    assert "qlora needs GPUs: set resources.gpusPerNode to 1 or more" in messages
    assert "spec.model is immutable" in messages
    assert "spec.runPolicy.maxRestarts is immutable" in messages
    for mutable in ("suspend", "activeDeadlineSeconds", "pendingTimeoutSeconds", "ttlSecondsAfterFinished"):
        assert f"spec.runPolicy.{mutable} is immutable" not in messages
    model = evaljob["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "model"
    ]
    assert model["x-kubernetes-validations"][0]["rule"] == "has(self.uri) != has(self.fineTuneJobRef)"


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    for crd in generate_crds():
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for path, node in walk(spec):
            if path.endswith(".properties"):
                for name, child in node.items():
                    assert child.get("description"), f"{path}.{name} has no description"


def test_cli_prints_the_same_crds() -> None:
    result = CliRunner().invoke(app, ["crds"])
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.output))
    assert [doc["metadata"]["name"] for doc in documents] == [
        "finetunejobs.kubetune.io",
        "evaljobs.kubetune.io",
    ]
