"""Shared building blocks of the kubetune.io/v1alpha1 API models.

The pydantic models are the single source of truth: the CRDs in crds/ and docs/api.md are
generated from them, and the operator, trainer and evaluator parse manifests with them.
Importing this package imports neither kopf nor torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

GROUP = "kubetune.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Strings are bounded so that the API server can estimate the cost of the CEL rules (immutability
# checks compare whole sub-objects); unbounded strings make it reject the CRD.
SHORT_STRING = 253
URI_LENGTH = 2048
TEMPLATE_LENGTH = 16384

URI_PATTERN = r"^(s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?|/.*|\./.*|[A-Za-z0-9_\-][A-Za-z0-9_.\-/]*)$"
"""`s3://bucket/key`, an absolute path or a relative local path (local runs only)."""

# The regular expression Kubernetes uses for resource.Quantity (apimachinery/pkg/api/resource), without
# the minus sign: a negative cpu or memory is a quantity the API server refuses in a pod.
QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
FLOAT_PATTERN = r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))([eE][+-]?[0-9]+)?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Label values and the name part of label/annotation keys (apimachinery/pkg/util/validation).
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
QUALIFIED_NAME_PART_PATTERN = r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
"""A content digest as kubetune_operator.data.digest writes it (and a FineTuneJob's status.output.digest)."""


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        protected_namespaces=(),
        validate_assignment=True,
    )


def _quantity_to_str(value: Any) -> Any:
    # `cpu: 4` arrives as an int from YAML; Kubernetes accepts ints and strings alike.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _float_from_str(value: Any) -> Any:
    # `learningRate: "2e-5"` is a string on the wire (kubectl's YAML would otherwise turn 2e-5 into a
    # float and PyYAML would keep it a string: one wire type avoids that ambiguity).
    if isinstance(value, str) and re.fullmatch(FLOAT_PATTERN, value.strip()):
        return float(value)
    return value


def _matches(pattern: str, expectation: str) -> Callable[[str], str]:
    """A pattern check whose error says what was expected instead of printing the regex."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not {expectation}")
        return value

    return check


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_to_str),
    StringConstraints(max_length=64),
    AfterValidator(
        _matches(QUANTITY_PATTERN, "a non-negative Kubernetes quantity such as 16, 500m or 128Gi")
    ),
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            # The pattern checks the string form only; an integer needs its own rule.
            "x-kubernetes-validations": [
                {"rule": "type(self) == string || self >= 0", "message": "must not be negative"}
            ],
        }
    ),
]
"""A non-negative Kubernetes resource quantity such as `16`, `500m` or `128Gi`."""

FloatString = Annotated[
    float,
    BeforeValidator(_float_from_str),
    Field(json_schema_extra={"kubetune-float-string": True}),
]
"""A float written as a string on the wire, e.g. `"2e-5"`; plain numbers are accepted by the models."""

Uri = Annotated[
    str,
    StringConstraints(max_length=URI_LENGTH),
    AfterValidator(_matches(URI_PATTERN, "an s3://bucket/key URI or a local path")),
    Field(json_schema_extra={"pattern": URI_PATTERN}),
]
Name = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, max_length=SHORT_STRING)]
Digest = Annotated[
    str,
    StringConstraints(max_length=71),
    AfterValidator(_matches(DIGEST_PATTERN, "a digest sha256:<64 lowercase hex digits>")),
    Field(json_schema_extra={"pattern": DIGEST_PATTERN}),
]
"""`sha256:<64 hex>`: the digest a model's files must have."""


def qualified_name_problem(key: str) -> str | None:
    """Why `key` is no label or annotation key (Kubernetes' IsQualifiedName), None when it is one."""
    prefix, slash, name = key.rpartition("/")
    if slash and (
        not prefix or len(prefix) > SHORT_STRING or not re.fullmatch(DNS_SUBDOMAIN_PATTERN, prefix)
    ):
        return f"{key!r}: the prefix before '/' must be a DNS subdomain such as example.com"
    if len(name) > 63 or not re.fullmatch(QUALIFIED_NAME_PART_PATTERN, name):
        return (
            f"{key!r}: the name must be at most 63 alphanumeric characters, '-', '_' or '.', "
            "beginning and ending with an alphanumeric one, optionally prefixed by a DNS subdomain and '/'"
        )
    return None


def _qualified_keys(mapping: dict[str, str]) -> dict[str, str]:
    problems = [problem for key in mapping if (problem := qualified_name_problem(key)) is not None]
    if problems:
        raise ValueError("; ".join(problems))
    return mapping


# The same check for the API server: Kubernetes' CEL format library implements IsQualifiedName.
_QUALIFIED_KEYS_RULE = {
    "rule": "self.all(k, !format.qualifiedName().validate(k).hasValue())",
    "message": "keys must be label keys: [prefix/]name, name at most 63 alphanumeric characters, '-', '_' "
    "or '.', beginning and ending with an alphanumeric one",
}
LabelValue = Annotated[
    str,
    StringConstraints(max_length=63),
    AfterValidator(
        _matches(LABEL_VALUE_PATTERN, "a label value: alphanumeric characters, '-', '_' or '.', no spaces")
    ),
    Field(json_schema_extra={"pattern": LABEL_VALUE_PATTERN}),
]
LabelMap = Annotated[
    dict[str, LabelValue],
    AfterValidator(_qualified_keys),
    Field(json_schema_extra={"x-kubernetes-validations": [_QUALIFIED_KEYS_RULE]}),
]
"""Labels (or a node selector): keys and values as Kubernetes validates them on the pods."""
AnnotationMap = Annotated[
    dict[str, str],
    AfterValidator(_qualified_keys),
    Field(json_schema_extra={"x-kubernetes-validations": [_QUALIFIED_KEYS_RULE]}),
]
"""Annotations: label-style keys, free values."""
ShortText = Annotated[str, StringConstraints(max_length=SHORT_STRING)]


# An extended resource is domain/name (Kubernetes' IsExtendedResourceName): never cpu, memory or another
# native resource, which have no domain or kubernetes.io's.
EXTENDED_RESOURCE_PATTERN = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def _outside_kubernetes_io(value: str) -> str:
    if value.split("/", maxsplit=1)[0].endswith("kubernetes.io"):
        raise ValueError(f"{value!r} is in the kubernetes.io domain, whose resources are native, not GPUs")
    return value


ExtendedResourceName = Annotated[
    str,
    StringConstraints(max_length=SHORT_STRING),
    AfterValidator(_matches(EXTENDED_RESOURCE_PATTERN, "an extended resource name such as nvidia.com/gpu")),
    AfterValidator(_outside_kubernetes_io),
    Field(
        json_schema_extra={
            "pattern": EXTENDED_RESOURCE_PATTERN,
            "x-kubernetes-validations": [
                {
                    "rule": "!self.split('/')[0].endsWith('kubernetes.io')",
                    "message": "must be an extended resource outside the kubernetes.io domain, such as "
                    "nvidia.com/gpu",
                }
            ],
        }
    ),
]
"""A pod's extended resource, such as `nvidia.com/gpu`."""
