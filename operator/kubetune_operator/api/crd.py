"""Generate the CustomResourceDefinitions from the pydantic models.

pydantic's JSON schema is not a Kubernetes *structural* schema: it uses `$ref`, `anyOf` with
`null`, `title`, `additionalProperties: false` and `default`. `to_structural` rewrites it:
references inlined, optional fields `nullable`, defaults moved into the description (defaults are
applied by the models, so GitOps diffs stay clean), and the cross-field rules added as CEL.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from pydantic import BaseModel

from kubetune_operator.api.base import FLOAT_PATTERN, GROUP, VERSION
from kubetune_operator.api.evaljob import EvalJobSpec, EvalJobStatus
from kubetune_operator.api.finetunejob import FineTuneJobSpec, FineTuneJobStatus
from kubetune_operator.api.naming import name_rules

Schema = dict[str, Any]

# Fields of the spec that may change while a job exists: everything else is fixed once created,
# as in Kubernetes Jobs (a changed model or dataset would make checkpoints and results meaningless).
MUTABLE_RUN_POLICY_FIELDS = (
    "suspend",
    "activeDeadlineSeconds",
    "pendingTimeoutSeconds",
    "ttlSecondsAfterFinished",
)

DROPPED_KEYWORDS = ("title", "additionalProperties", "default", "examples")


def _resolve(node: Any, defs: dict[str, Schema]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        siblings = {key: value for key, value in node.items() if key != "$ref"}
        return _resolve({**target, **siblings}, defs)
    return {key: _resolve(value, defs) for key, value in node.items()}


def _describe_default(schema: Schema) -> None:
    if "default" not in schema:
        return
    default = schema["default"]
    if default in (None, {}, [], ""):
        return
    text = json.dumps(default) if not isinstance(default, str) else default
    description = schema.get("description", "").rstrip()
    schema["description"] = f"{description} Defaults to {text}.".strip()


_BOUND_OPERATORS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def _float_string(schema: Schema) -> Schema:
    """A float written as a string on the wire (learningRate: "2e-5"); its bounds become CEL rules."""
    bounds = [
        f"double(self) {operator} {float(schema[keyword])!r}"
        for keyword, operator in _BOUND_OPERATORS.items()
        if keyword in schema
    ]
    result = {key: value for key, value in schema.items() if key not in _BOUND_OPERATORS}
    result.update(type="string", pattern=FLOAT_PATTERN, maxLength=32)
    if bounds:
        rule = " && ".join(bounds)
        result["x-kubernetes-validations"] = [
            {"rule": rule, "message": f"must satisfy {rule.replace('double(self)', 'value')}"}
        ]
    return result


def _structural(node: Schema) -> Schema:
    schema = dict(node)
    _describe_default(schema)
    any_of = schema.pop("anyOf", None)
    if any_of is not None:
        non_null = [option for option in any_of if option.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(f"cannot express anyOf {any_of} in a structural schema")
        inner = _structural(non_null[0])
        outer = {key: value for key, value in schema.items() if key not in DROPPED_KEYWORDS}
        merged = {**inner, **outer}
        if len(non_null) != len(any_of):
            merged["nullable"] = True
        return merged
    if schema.pop("kubetune-float-string", False):
        schema = _float_string(schema)
    if schema.get("x-kubernetes-int-or-string"):
        # The pattern and length apply to the string form only; integers need no check.
        schema.pop("type", None)
    additional = schema.get("additionalProperties")
    result: Schema = {key: value for key, value in schema.items() if key not in DROPPED_KEYWORDS}
    if "exclusiveMinimum" in result:
        result["minimum"] = result.pop("exclusiveMinimum")
        result["exclusiveMinimum"] = True
    if "exclusiveMaximum" in result:
        result["maximum"] = result.pop("exclusiveMaximum")
        result["exclusiveMaximum"] = True
    if "properties" in result:
        result["properties"] = {name: _structural(value) for name, value in result["properties"].items()}
    elif result.get("type") == "object":
        if isinstance(additional, dict) and additional:
            result["additionalProperties"] = _structural(additional)
        else:
            # Free-form Kubernetes objects (affinity, tolerations) are passed through unchanged.
            result["x-kubernetes-preserve-unknown-fields"] = True
        if "maxProperties" not in result and "maxLength" in node:
            result["maxProperties"] = node["maxLength"]
    if "items" in result:
        result["items"] = _structural(result["items"])
    if result.get("type") == "object" and "maxLength" in result:
        result["maxProperties"] = result.pop("maxLength")
    if result.get("type") == "object" and "minLength" in result:
        result["minProperties"] = result.pop("minLength")
    return result


def to_structural(model: type[BaseModel]) -> Schema:
    """The structural OpenAPI v3 schema of a model, as the API server wants it."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(_resolve(raw, defs))


def _add_rule(schema: Schema, rule: str, message: str, field_path: str | None = None) -> None:
    entry: dict[str, str] = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    schema.setdefault("x-kubernetes-validations", []).append(entry)


def _immutable_fields(spec: Schema, exempt: tuple[str, ...] = ("runPolicy",)) -> None:
    for field in spec["properties"]:
        if field in exempt:
            continue
        _add_rule(
            spec,
            f"has(self.{field}) == has(oldSelf.{field}) && "
            f"(!has(self.{field}) || self.{field} == oldSelf.{field})",
            f"spec.{field} is immutable",
            f".{field}",
        )
    run_policy = spec["properties"]["runPolicy"]
    for field in run_policy["properties"]:
        if field in MUTABLE_RUN_POLICY_FIELDS:
            continue
        # runPolicy itself may be added later (e.g. to suspend a job created without it); only the
        # immutable fields inside it must keep their presence and value.
        now = f"(has(self.runPolicy) && has(self.runPolicy.{field}))"
        before = f"(has(oldSelf.runPolicy) && has(oldSelf.runPolicy.{field}))"
        _add_rule(
            spec,
            f"{now} == {before} && (!{now} || self.runPolicy.{field} == oldSelf.runPolicy.{field})",
            f"spec.runPolicy.{field} is immutable",
            f".runPolicy.{field}",
        )


def _split_rule(split: Schema) -> None:
    _add_rule(
        split,
        "(has(self.validation) ? self.validation : 0.1) + (has(self.test) ? self.test : 0.1) < 1.0",
        "validation + test must be below 1.0 so that rows remain for training",
    )


def finetunejob_spec_schema() -> Schema:
    spec = to_structural(FineTuneJobSpec)
    _add_rule(
        spec,
        "!has(self.lora) || !has(self.method) || self.method != 'full'",
        "lora is only allowed with method: lora or qlora",
        ".lora",
    )
    _add_rule(
        spec,
        "!has(self.method) || self.method != 'qlora' || "
        "(has(self.resources) && has(self.resources.gpusPerNode) && self.resources.gpusPerNode >= 1)",
        "qlora needs GPUs: set resources.gpusPerNode to 1 or more",
        ".method",
    )
    _add_rule(
        spec,
        "!(has(self.hyperparameters) && has(self.hyperparameters.attention) && "
        "self.hyperparameters.attention == 'flex') || "
        "(has(self.resources) && has(self.resources.gpusPerNode) && self.resources.gpusPerNode >= 1)",
        "attention: flex needs GPUs: set resources.gpusPerNode to 1 or more",
        ".hyperparameters.attention",
    )
    _add_rule(
        spec,
        "!has(self.method) || self.method != 'qlora' || "
        "!(has(self.hyperparameters) && has(self.hyperparameters.compile) && self.hyperparameters.compile)",
        "compile is not supported with method: qlora",
        ".hyperparameters.compile",
    )
    _add_rule(
        spec,
        "!has(self.tasks) || self.tasks.all(t, self.tasks.exists_one(u, u.name == t.name))",
        "task names must be unique",
        ".tasks",
    )
    _split_rule(spec["properties"]["dataset"]["properties"]["split"])
    _immutable_fields(spec)
    return spec


def evaljob_spec_schema() -> Schema:
    spec = to_structural(EvalJobSpec)
    _add_rule(
        spec["properties"]["model"],
        "has(self.uri) != has(self.fineTuneJobRef)",
        "exactly one of uri or fineTuneJobRef must be set",
    )
    _add_rule(
        spec,
        "!has(self.metrics) || !self.metrics.exists(m, m == 'judge') || has(self.judge)",
        "judge is required when metrics contains judge",
        ".judge",
    )
    _add_rule(
        spec,
        "!has(self.metrics) || !self.metrics.exists(m, m == 'bertscore') || has(self.bertscoreModel)",
        "bertscoreModel is required when metrics contains bertscore",
        ".bertscoreModel",
    )
    _add_rule(
        spec,
        "!has(self.thresholds) || !has(self.thresholds.maxRegression) || has(self.baseline)",
        "thresholds.maxRegression needs a baseline",
        ".thresholds.maxRegression",
    )
    _add_rule(
        spec,
        "!has(self.metrics) || self.metrics.all(m, self.metrics.exists_one(n, n == m))",
        "metrics must be unique",
        ".metrics",
    )
    _split_rule(spec["properties"]["dataset"]["properties"]["splitSpec"])
    _immutable_fields(spec)
    return spec


def _crd(
    *,
    kind: str,
    plural: str,
    short_name: str,
    spec: Schema,
    status: Schema,
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short_name],
                "categories": ["kubetune"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": spec.get("description", ""),
                            "required": ["spec"],
                            # At the root, where CEL sees metadata.name: the children must carry it.
                            "x-kubernetes-validations": name_rules(kind),
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def _column(name: str, json_path: str, type_: str, description: str, priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": json_path, "description": description}
    if priority:
        column["priority"] = priority
    return column


AGE = _column("Age", ".metadata.creationTimestamp", "date", "Time since creation.")


def generate_crds() -> list[dict[str, Any]]:
    """The FineTuneJob and EvalJob CRDs, in that order."""
    finetunejob = _crd(
        kind="FineTuneJob",
        plural="finetunejobs",
        short_name="ftj",
        spec=finetunejob_spec_schema(),
        status=to_structural(FineTuneJobStatus),
        columns=[
            _column("Phase", ".status.phase", "string", "Lifecycle phase."),
            _column("Progress", ".status.progress.percent", "number", "Percent of training steps done."),
            _column("Loss", ".status.progress.trainLoss", "number", "Recent training loss."),
            _column("Restarts", ".status.restarts", "integer", "Gang restarts."),
            _column("ETA", ".status.progress.etaSeconds", "integer", "Seconds until training ends.", 1),
            _column("Eval-Loss", ".status.progress.evalLoss", "number", "Latest validation loss.", 1),
            AGE,
        ],
    )
    evaljob = _crd(
        kind="EvalJob",
        plural="evaljobs",
        short_name="evj",
        spec=evaljob_spec_schema(),
        status=to_structural(EvalJobStatus),
        columns=[
            _column("Phase", ".status.phase", "string", "Lifecycle phase."),
            _column("Progress", ".status.progress.percent", "number", "Percent of the samples done."),
            _column("Verdict", ".status.verdict", "string", "Passed or Failed against the thresholds."),
            _column("ROUGE-L", ".status.results.model.rougeL", "number", "ROUGE-L F1 of the model."),
            _column("Model", ".status.modelUri", "string", "The model scored.", 1),
            AGE,
        ],
    )
    return [finetunejob, evaljob]


def crd_file_name(crd: dict[str, Any]) -> str:
    return f"{crd['metadata']['name']}.yaml"


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, width=110)
