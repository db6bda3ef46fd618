"""Env resolution: envFrom, env, valueFrom (Secret, ConfigMap, fieldRef, resourceFieldRef) and errors."""

from typing import Any

import pytest

from kubetune_devtools.devstack.node_agent.env import ContainerConfigError, container_argv, resolve_env


class Objects:
    def __init__(self) -> None:
        self.config_maps = {"settings": {"mode": b"fast", "level": b"3"}}
        self.secrets = {"creds": {"key": b"s3cr3t"}}

    def config_map(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.config_maps.get(name)

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.secrets.get(name)


ALLOCATABLE = {"cpu": "8", "memory": "32Gi"}


def make_pod(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "job-1-abc",
            "namespace": "team-a",
            "uid": "u-1",
            "annotations": {"batch.kubernetes.io/job-completion-index": "1"},
            "labels": {"app": "trainer"},
        },
        "spec": {"nodeName": "kt-node-0", "containers": [container]},
        "status": {"podIP": "127.64.0.7", "hostIP": "127.1.0.1"},
    }


def resolve(container: dict[str, Any], service_env: dict[str, str] | None = None) -> dict[str, str]:
    return resolve_env(make_pod(container), container, Objects(), service_env or {}, ALLOCATABLE)


def test_value_from_every_source() -> None:
    container = {
        "name": "main",
        "resources": {"limits": {"memory": "1Gi"}},
        "env": [
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "key"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {
                "name": "RANK",
                "valueFrom": {
                    "fieldRef": {
                        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                    }
                },
            },
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {
                "name": "MEM_MI",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        ],
    }
    env = resolve(container)
    assert env == {
        "SECRET": "s3cr3t",
        "MODE": "fast",
        "RANK": "1",
        "POD_IP": "127.64.0.7",
        "POD_NAME": "job-1-abc",
        "NS": "team-a",
        "NODE": "kt-node-0",
        "APP": "trainer",
        "MEM_MI": "1024",
        "CPUS": "8",  # no limit: the node's allocatable, as the kubelet reports it
    }


def test_env_from_then_env_overrides_and_expands_in_order() -> None:
    container = {
        "name": "main",
        "envFrom": [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "creds"}, "prefix": "S_"}],
        "env": [
            {"name": "mode", "value": "slow"},
            {"name": "URL", "value": "http://$(KUBERNETES_SERVICE_HOST):$(PORT)/$(level)"},
            {"name": "PORT", "value": "9000"},
            {"name": "ESCAPED", "value": "$$(level)"},
        ],
    }
    env = resolve(container, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert env["mode"] == "slow"
    assert env["S_key"] == "s3cr3t"
    # PORT is defined after URL, so it stays unexpanded, as in Kubernetes.
    assert env["URL"] == "http://10.0.0.1:$(PORT)/3"
    assert env["ESCAPED"] == "$(level)"


def test_command_and_args_expand_from_resolved_env() -> None:
    container = {
        "name": "main",
        "command": ["python3", "-c", "print('$(GREETING)')"],
        "args": ["$(MISSING)", "$$(GREETING)"],
        "env": [{"name": "GREETING", "value": "hi"}],
    }
    assert container_argv(container, resolve(container)) == [
        "python3",
        "-c",
        "print('hi')",
        "$(MISSING)",
        "$(GREETING)",
    ]


def test_missing_secret_is_a_config_error_naming_it() -> None:
    container = {
        "name": "main",
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}],
    }
    with pytest.raises(ContainerConfigError, match='secret "nope" not found'):
        resolve(container)


def test_missing_key_is_a_config_error_naming_object_and_key() -> None:
    container = {
        "name": "main",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}}],
    }
    with pytest.raises(ContainerConfigError, match="couldn't find key k in ConfigMap team-a/settings"):
        resolve(container)


def test_optional_missing_sources_are_skipped() -> None:
    container = {
        "name": "main",
        "envFrom": [{"secretRef": {"name": "nope", "optional": True}}],
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}}],
    }
    assert resolve(container) == {}


def test_container_without_command_is_refused() -> None:
    with pytest.raises(ContainerConfigError, match="no command"):
        container_argv({"name": "main", "args": ["x"]}, {})
