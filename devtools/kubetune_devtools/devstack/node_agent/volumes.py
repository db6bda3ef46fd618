"""What each pod volume holds, and where each container mounts it (pure; `pod_files` writes it out).

Supported: configMap, secret, downwardAPI, projected (configMap/secret/downwardAPI/serviceAccountToken),
emptyDir and hostPath. Contents are written once when the pod starts; later edits of a ConfigMap or
Secret are not propagated (a kubelet would, within a minute).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Protocol

from kubetune_devtools.devstack.node_agent.env import (
    ContainerConfigError,
    ObjectSource,
    field_value,
    resource_value,
)

DEFAULT_MODE = 0o644


class VolumeSource(ObjectSource, Protocol):
    """ObjectSource plus the TokenRequest API that serviceAccountToken projections need."""

    def service_account_token(
        self, pod: Mapping[str, Any], audience: str | None, expiration_seconds: int
    ) -> str | None: ...


@dataclass
class VolumePlan:
    """One volume: files to write (relative path -> content, mode), an emptyDir, or a host path."""

    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    host_path: str | None = None
    empty_dir: bool = False


@dataclass(frozen=True)
class BindMount:
    """`source` (a path on this machine) seen by the container at `target`."""

    source: str
    target: str
    read_only: bool


def _safe_relative(path: str, volume: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts:
        raise ContainerConfigError(f"volume {volume!r}: invalid item path {path!r}")
    return path


def _key_files(
    volume: str,
    kind: str,
    ref_name: str,
    data: dict[str, bytes] | None,
    spec: Mapping[str, Any],
    *,
    default_mode: int,
) -> dict[str, tuple[bytes, int]]:
    """Files of a configMap/secret projection: every key, or only `items` (key -> path, mode)."""
    if data is None:
        if spec.get("optional"):
            return {}
        raise ContainerConfigError(f'{kind} "{ref_name}" not found (volume {volume!r})')
    items = spec.get("items")
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    files: dict[str, tuple[bytes, int]] = {}
    for item in items:
        if item["key"] not in data:
            if spec.get("optional"):
                continue
            raise ContainerConfigError(
                f"volume {volume!r}: couldn't find key {item['key']} in {kind} {ref_name}"
            )
        files[_safe_relative(item["path"], volume)] = (data[item["key"]], item.get("mode") or default_mode)
    return files


def _downward_files(
    volume: str,
    pod: Mapping[str, Any],
    items: list[dict[str, Any]],
    default_mode: int,
    node_allocatable: Mapping[str, str],
) -> dict[str, tuple[bytes, int]]:
    files: dict[str, tuple[bytes, int]] = {}
    for item in items:
        if "fieldRef" in item:
            value = field_value(pod, item["fieldRef"]["fieldPath"])
        else:
            container = pod["spec"]["containers"][0]["name"]
            value = resource_value(pod, container, item["resourceFieldRef"], node_allocatable)
        files[_safe_relative(item["path"], volume)] = (value.encode(), item.get("mode") or default_mode)
    return files


def plan_volume(
    pod: Mapping[str, Any],
    volume: Mapping[str, Any],
    source: VolumeSource,
    node_allocatable: Mapping[str, str],
) -> VolumePlan:
    """The content of one pod volume; ContainerConfigError for a missing object or unsupported type."""
    name = volume["name"]
    namespace = pod["metadata"]["namespace"]
    if "emptyDir" in volume:
        return VolumePlan(empty_dir=True)
    if "hostPath" in volume:
        return VolumePlan(host_path=volume["hostPath"]["path"])
    if "configMap" in volume:
        spec = volume["configMap"]
        data = source.config_map(namespace, spec["name"])
        mode = spec.get("defaultMode") or DEFAULT_MODE
        return VolumePlan(files=_key_files(name, "configmap", spec["name"], data, spec, default_mode=mode))
    if "secret" in volume:
        spec = volume["secret"]
        data = source.secret(namespace, spec["secretName"])
        mode = spec.get("defaultMode") or DEFAULT_MODE
        return VolumePlan(files=_key_files(name, "secret", spec["secretName"], data, spec, default_mode=mode))
    if "downwardAPI" in volume:
        spec = volume["downwardAPI"]
        mode = spec.get("defaultMode") or DEFAULT_MODE
        return VolumePlan(files=_downward_files(name, pod, spec.get("items") or [], mode, node_allocatable))
    if "projected" in volume:
        return VolumePlan(files=_projected_files(pod, volume, source, node_allocatable))
    kinds = sorted(set(volume) - {"name"})
    raise ContainerConfigError(f"volume {name!r}: unsupported volume type {kinds} on the local node agent")


def _projected_files(
    pod: Mapping[str, Any],
    volume: Mapping[str, Any],
    source: VolumeSource,
    node_allocatable: Mapping[str, str],
) -> dict[str, tuple[bytes, int]]:
    name = volume["name"]
    namespace = pod["metadata"]["namespace"]
    spec = volume["projected"]
    mode = spec.get("defaultMode") or DEFAULT_MODE
    files: dict[str, tuple[bytes, int]] = {}
    for projection in spec.get("sources") or []:
        if "configMap" in projection:
            ref = projection["configMap"]
            data = source.config_map(namespace, ref["name"])
            files.update(_key_files(name, "configmap", ref["name"], data, ref, default_mode=mode))
        elif "secret" in projection:
            ref = projection["secret"]
            data = source.secret(namespace, ref["name"])
            files.update(_key_files(name, "secret", ref["name"], data, ref, default_mode=mode))
        elif "downwardAPI" in projection:
            items = projection["downwardAPI"].get("items") or []
            files.update(_downward_files(name, pod, items, mode, node_allocatable))
        elif "serviceAccountToken" in projection:
            ref = projection["serviceAccountToken"]
            token = source.service_account_token(
                pod, ref.get("audience"), ref.get("expirationSeconds") or 3600
            )
            if token is None:
                raise ContainerConfigError(f"volume {name!r}: could not request a service account token")
            files[_safe_relative(ref["path"], name)] = (token.encode(), mode)
        else:
            raise ContainerConfigError(f"volume {name!r}: unsupported projection {sorted(projection)}")
    return files


def container_mounts(container: Mapping[str, Any], volume_dirs: Mapping[str, str]) -> list[BindMount]:
    """The container's volumeMounts as bind mounts from the volumes' directories on this machine."""
    mounts: list[BindMount] = []
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volume_dirs:
            raise ContainerConfigError(
                f"container {container['name']!r}: volumeMount {mount['name']!r} names no volume of the pod"
            )
        source = volume_dirs[mount["name"]]
        if mount.get("subPath"):
            source = str(PurePosixPath(source) / _safe_relative(mount["subPath"], mount["name"]))
        mounts.append(BindMount(source, mount["mountPath"], bool(mount.get("readOnly"))))
    return mounts
