"""Render docs/api.md from the models, so the reference can never drift from the CRDs."""

from __future__ import annotations

import json
from typing import Any

from kubetune_operator.api.crd import generate_crds


def _type_of(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    if "type" not in schema and "enum" in schema:  # an untyped field of a few values (chatTemplate.apply)
        names = {bool: "boolean", str: "string", int: "integer"}
        return " or ".join(dict.fromkeys(names[type(value)] for value in schema["enum"]))
    type_ = str(schema.get("type", "object"))
    if type_ == "array":
        return f"[]{_type_of(schema.get('items', {}))}"
    if type_ == "object" and "additionalProperties" in schema:
        return f"map[string]{_type_of(schema['additionalProperties'])}"
    return type_


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    if "enum" in schema:
        values = (value if isinstance(value, str) else json.dumps(value) for value in schema["enum"])
        parts.append("one of " + ", ".join(f"`{value}`" for value in values))
    for keyword, label in (("minimum", ">="), ("maximum", "<=")):
        if keyword in schema:
            exclusive = schema.get(f"exclusive{keyword.capitalize()}")
            parts.append(f"{label.replace('=', '') if exclusive else label} {schema[keyword]}")
    if "minItems" in schema:
        parts.append(f"at least {schema['minItems']} item(s)")
    if "maxItems" in schema:
        parts.append(f"at most {schema['maxItems']} items")
    return "; ".join(parts)


def _rows(schema: dict[str, Any], prefix: str, required: set[str]) -> list[str]:
    rows = []
    for name, child in schema.get("properties", {}).items():
        path = f"{prefix}.{name}"
        description = " ".join(child.get("description", "").split()).replace("|", "\\|")
        mark = "yes" if name in required else ""
        constraints = _constraints(child)
        rows.append(f"| `{path}` | {_type_of(child)} | {mark} | {description} | {constraints} |")
        nested = child.get("items", child) if child.get("type") == "array" else child
        if "properties" in nested:
            suffix = "[]" if child.get("type") == "array" else ""
            rows.extend(_rows(nested, f"{path}{suffix}", set(nested.get("required", []))))
    return rows


def _rule_line(rule: dict[str, str], path: str) -> str:
    message = rule["message"]
    if not message.startswith(("spec.", "metadata.")):
        # Rules of shared types (quantities, label maps) do not know where they sit: say it here.
        message = f"{path}{rule.get('fieldPath', '')}: {message}"
    return f"- {message} (`{rule['rule']}`)"


def _rules(schema: dict[str, Any], path: str) -> list[str]:
    found = [_rule_line(rule, path) for rule in schema.get("x-kubernetes-validations", [])]
    for name, child in schema.get("properties", {}).items():
        array = child.get("type") == "array"
        found.extend(
            _rules(child.get("items", child) if array else child, f"{path}.{name}{'[]' if array else ''}")
        )
    return found


def render_api_reference() -> str:
    lines = [
        "# API reference: kubetune.io/v1alpha1",
        "",
        "Generated from the pydantic models by `make crds` (`hack/gen_api_docs.py`); a unit test fails when",
        "this file and the models disagree. Every description is also what `kubectl explain` prints.",
        "",
    ]
    for crd in generate_crds():
        names = crd["spec"]["names"]
        version = crd["spec"]["versions"][0]
        root = version["schema"]["openAPIV3Schema"]
        lines += [
            f"## {names['kind']}",
            "",
            f"Short name `{names['shortNames'][0]}`, category `kubetune`. "
            f"`kubectl get {names['shortNames'][0]}` columns: "
            + ", ".join(column["name"] for column in version["additionalPrinterColumns"])
            + ".",
            "",
            "| Field | Type | Required | Description | Constraints |",
            "| --- | --- | --- | --- | --- |",
        ]
        for section in ("spec", "status"):
            schema = root["properties"][section]
            lines.extend(_rows(schema, section, set(schema.get("required", []))))
        lines += ["", "Rules checked by the API server (CEL):", ""]
        lines += [_rule_line(rule, "") for rule in root.get("x-kubernetes-validations", [])]
        lines += _rules(root["properties"]["spec"], "spec")
        lines.append("")
    return "\n".join(lines)
