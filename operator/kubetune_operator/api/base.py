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

# The regular expression Kubernetes uses for resource.Quantity (apimachinery/pkg/api/resource).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
FLOAT_PATTERN = r"^[+-]?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))([eE][+-]?[0-9]+)?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


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
    AfterValidator(_matches(QUANTITY_PATTERN, "a Kubernetes quantity such as 16, 500m or 128Gi")),
    Field(json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}),
]
"""A Kubernetes resource quantity such as `16`, `500m` or `128Gi`."""

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
ShortText = Annotated[str, StringConstraints(max_length=SHORT_STRING)]
