"""A container's environment, resolved as the kubelet does (envFrom, env, valueFrom, `$(VAR)`).

Secrets and ConfigMaps come through `ObjectSource`, so this module stays pure and unit-testable; a
missing object or key raises `ContainerConfigError`, which the agent reports as the kubelet's
`CreateContainerConfigError` waiting reason and retries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol

from kubernetes.utils.quantity import parse_quantity as _untyped_parse_quantity

from kubetune_devtools.devstack.node_agent import images
from kubetune_devtools.devstack.node_agent.expansion import expand
from kubetune_devtools.devstack.node_agent.images import ImageConfig


def parse_quantity(text: str) -> Decimal:
    value: Decimal = _untyped_parse_quantity(text)  # type: ignore[no-untyped-call]
    return value


class ContainerConfigError(Exception):
    """The pod's configuration cannot be turned into a runnable container (yet)."""


class ObjectSource(Protocol):
    """Reads the data of ConfigMaps and (decoded) Secrets; None when the object does not exist."""

    def config_map(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...


def _load(source: ObjectSource, kind: str, namespace: str, name: str) -> dict[str, bytes] | None:
    return source.config_map(namespace, name) if kind == "ConfigMap" else source.secret(namespace, name)


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def field_value(pod: Mapping[str, Any], field_path: str) -> str:
    """The downward-API value of `field_path` (the kubelet's subset: metadata, spec, status fields)."""
    metadata = pod.get("metadata", {})
    spec = pod.get("spec", {})
    status = pod.get("status", {})
    for prefix, mapping in (("metadata.annotations", "annotations"), ("metadata.labels", "labels")):
        if field_path.startswith(prefix + "["):
            key = field_path[len(prefix) + 1 : -1].strip("'\"")
            return str((metadata.get(mapping) or {}).get(key, ""))
    simple: dict[str, Any] = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(ip["ip"] for ip in status.get("hostIPs") or []),
        "status.podIPs": ",".join(ip["ip"] for ip in status.get("podIPs") or []),
    }
    if field_path not in simple:
        raise ContainerConfigError(f"unsupported fieldRef.fieldPath {field_path!r}")
    return str(simple[field_path] or "")


def resource_value(
    pod: Mapping[str, Any],
    container_name: str,
    ref: Mapping[str, Any],
    node_allocatable: Mapping[str, str],
) -> str:
    """A resourceFieldRef value: the container's limit/request divided by `divisor`, rounded up.

    An unset limit falls back to the node's allocatable, as the kubelet does.
    """
    name = ref.get("containerName") or container_name
    containers = [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]
    container = next((c for c in containers if c["name"] == name), None)
    if container is None:
        raise ContainerConfigError(f"resourceFieldRef: no container named {name!r}")
    kind, _, resource = str(ref["resource"]).partition(".")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(resource)
    if raw is None:
        raw = node_allocatable.get(resource, "0") if kind == "limits" else "0"
    divisor = parse_quantity(str(ref.get("divisor") or "1"))
    if divisor == 0:
        raise ContainerConfigError(f"resourceFieldRef {ref['resource']}: divisor must not be 0")
    return str(math.ceil(parse_quantity(str(raw)) / divisor))


def _value_from(
    pod: Mapping[str, Any],
    container_name: str,
    value_from: Mapping[str, Any],
    source: ObjectSource,
    node_allocatable: Mapping[str, str],
) -> str | None:
    """The value of one `valueFrom`; None when an optional source is absent (the variable is skipped)."""
    namespace = pod["metadata"]["namespace"]
    for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
        ref = value_from.get(key)
        if ref is None:
            continue
        data = _load(source, kind, namespace, ref["name"])
        optional = bool(ref.get("optional"))
        if data is None:
            if optional:
                return None
            raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
        if ref["key"] not in data:
            if optional:
                return None
            raise ContainerConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
        return _text(data[ref["key"]])
    if "fieldRef" in value_from:
        return field_value(pod, value_from["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in value_from:
        return resource_value(pod, container_name, value_from["resourceFieldRef"], node_allocatable)
    raise ContainerConfigError(f"unsupported valueFrom {sorted(value_from)}")


def resolve_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    source: ObjectSource,
    service_env: Mapping[str, str],
    node_allocatable: Mapping[str, str],
) -> dict[str, str]:
    """The container's variables: service variables, then envFrom in order, then env (later wins).

    `$(VAR)` in env values sees the service variables and every variable defined before it.
    """
    namespace = pod["metadata"]["namespace"]
    resolved: dict[str, str] = dict(service_env)
    for entry in container.get("envFrom") or []:
        kind, ref = (
            ("ConfigMap", entry["configMapRef"])
            if "configMapRef" in entry
            else ("Secret", entry["secretRef"])
        )
        data = _load(source, kind, namespace, ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
        prefix = entry.get("prefix") or ""
        resolved.update({prefix + key: _text(value) for key, value in data.items()})
    for var in container.get("env") or []:
        if var.get("valueFrom"):
            value = _value_from(pod, container["name"], var["valueFrom"], source, node_allocatable)
            if value is None:
                continue
        else:
            value = expand(var.get("value") or "", resolved)
        resolved[var["name"]] = value
    return resolved


def container_argv(
    container: Mapping[str, Any], env: Mapping[str, str], image: ImageConfig | None = None
) -> list[str]:
    """command + args with `$(VAR)` expanded from the container's resolved environment, over the
    image's ENTRYPOINT and CMD (Kubernetes' rule); without an image (the checkout's environment) the
    container must state its command."""
    command = [expand(part, env) for part in container.get("command") or []]
    args = [expand(part, env) for part in container.get("args") or []]
    if image is not None:
        argv = images.container_argv(image, command, args)
        if not argv:
            raise ContainerConfigError(f"container {container['name']!r}: no command specified")
        return argv
    if not command:
        raise ContainerConfigError(
            f"container {container['name']!r} has no command; the image {images.CHECKOUT_IMAGE} (the "
            "checkout's environment) has no ENTRYPOINT to fall back to"
        )
    return [*command, *args]
