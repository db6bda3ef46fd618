"""Volume contents and mounts: ConfigMap/Secret items, downward API, projected, errors."""

from typing import Any

import pytest

from kubetune_devtools.devstack.node_agent.env import ContainerConfigError
from kubetune_devtools.devstack.node_agent.volumes import BindMount, container_mounts, plan_volume

POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "team-a", "uid": "u", "labels": {"a": "b"}},
    "spec": {"containers": [{"name": "main"}], "serviceAccountName": "runner"},
    "status": {"podIP": "127.64.0.3"},
}


class Objects:
    def config_map(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return {"job.yaml": b"kind: X\n", "other": b"1"} if name == "cfg" else None

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return {"token": b"t0k"} if name == "sec" else None

    def service_account_token(self, pod: Any, audience: str | None, expiration_seconds: int) -> str | None:
        return f"jwt-for-{pod['spec']['serviceAccountName']}"


def plan(volume: dict[str, Any]) -> Any:
    return plan_volume(POD, volume, Objects(), {"cpu": "8"})


def test_config_map_volume_holds_every_key() -> None:
    files = plan({"name": "v", "configMap": {"name": "cfg"}}).files
    assert files == {"job.yaml": (b"kind: X\n", 0o644), "other": (b"1", 0o644)}


def test_items_select_keys_paths_and_modes() -> None:
    volume = {
        "name": "v",
        "secret": {"secretName": "sec", "defaultMode": 0o400, "items": [{"key": "token", "path": "a/t"}]},
    }
    assert plan(volume).files == {"a/t": (b"t0k", 0o400)}


def test_missing_config_map_names_it_and_optional_is_empty() -> None:
    with pytest.raises(ContainerConfigError, match='configmap "nope" not found'):
        plan({"name": "v", "configMap": {"name": "nope"}})
    assert plan({"name": "v", "configMap": {"name": "nope", "optional": True}}).files == {}


def test_item_paths_cannot_escape_the_volume() -> None:
    with pytest.raises(ContainerConfigError, match="invalid item path"):
        plan({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "other", "path": "../x"}]}})


def test_projected_service_account_volume() -> None:
    volume = {
        "name": "kube-api-access",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "cfg", "items": [{"key": "other", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                    }
                },
            ]
        },
    }
    files = plan(volume).files
    assert files["token"][0] == b"jwt-for-runner"
    assert files["ca.crt"][0] == b"1"
    assert files["namespace"][0] == b"team-a"


def test_empty_dir_and_unsupported_types() -> None:
    assert plan({"name": "scratch", "emptyDir": {}}).empty_dir
    with pytest.raises(ContainerConfigError, match=r"unsupported volume type.*persistentVolumeClaim"):
        plan({"name": "data", "persistentVolumeClaim": {"claimName": "c"}})


def test_mounts_map_volumes_to_paths_with_sub_paths() -> None:
    container = {
        "name": "main",
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/job", "readOnly": True},
            {"name": "cfg", "mountPath": "/etc/job.yaml", "subPath": "job.yaml"},
        ],
    }
    assert container_mounts(container, {"cfg": "/state/v/cfg"}) == [
        BindMount("/state/v/cfg", "/etc/job", True),
        BindMount("/state/v/cfg/job.yaml", "/etc/job.yaml", False),
    ]
    with pytest.raises(ContainerConfigError, match="names no volume"):
        container_mounts({"name": "main", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}, {})
