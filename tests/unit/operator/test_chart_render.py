"""`helm lint` and `helm template` of charts/kubetune: what each mode renders, least privilege, schema.

The pinned Helm (hack/tools/helm) is built by hack/build-go-tool.sh when missing (cached by version).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune_devtools.devstack.binaries import client_tool
from kubetune_operator.api.evaljob import DEFAULT_EVALUATOR_IMAGE
from kubetune_operator.api.finetunejob import DEFAULT_TRAINER_IMAGE
from kubetune_operator.controller.policies.platform import PlatformPolicy

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "kubetune"
NAMESPACED = ["--set", "watchNamespaces={team-a,team-b}"]


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    """The project's pinned Helm (hack/tools/helm), built on first use; never the one on PATH."""
    return subprocess.run(
        [client_tool("helm"), *args], check=False, capture_output=True, text=True, timeout=120
    )


class StrictLoader(yaml.SafeLoader):
    """Fails on a duplicate mapping key, which PyYAML would silently resolve to the last value but the API
    server's strict decoding (kubectl, server-side apply) rejects."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        duplicates = sorted({str(key) for key in keys if keys.count(key) > 1})
        assert not duplicates, f"duplicate keys {duplicates} at {node.start_mark}"
        return super().construct_mapping(node, deep=deep)


def render(*args: str) -> list[dict[str, Any]]:
    result = run_helm("template", "kt", str(CHART), "--namespace", "kubetune-system", *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.load_all(result.stdout, Loader=StrictLoader) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs."""
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def test_helm_lint_is_clean_in_every_mode() -> None:
    for extra in ([], NAMESPACED, ["--set", "monitoring.serviceMonitor.enabled=true"]):
        result = run_helm("lint", "--strict", str(CHART), *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 chart(s) failed" in result.stdout


def test_default_deployment_is_ha_restricted_and_probed() -> None:
    (deployment,) = by_kind(render(), "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert container["image"] == "kubetune/operator:0.1.0"
    assert container["command"] == ["kubetune", "operator"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["KUBETUNE_PEERING"] == "kubetune"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == {
        "metrics": 8080,
        "health": 8081,
    }
    # Pod Security Standard "restricted".
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"] and container["resources"]["requests"]


def test_pod_storage_retry_window_reaches_the_operator() -> None:
    """The operator passes it on to every workload container (test_controller_pod_lifecycle_settings.py)."""
    (default,) = by_kind(render(), "Deployment")
    (custom,) = by_kind(render("--set", "operator.podStorageRetrySeconds=120"), "Deployment")
    for deployment, value in ((default, "60"), (custom, "120")):
        env = {
            e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["KUBETUNE_POD_STORAGE_RETRY_SECONDS"] == value


def test_cluster_wide_mode_grants_only_what_the_operator_uses() -> None:
    docs = render()
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert not by_kind(docs, "Role")
    granted = rules_of(cluster_role)
    assert granted[("kubetune.io", "finetunejobs")] == {"get", "list", "watch", "patch", "delete"}
    assert granted[("kubetune.io", "evaljobs/status")] == {"get", "patch"}
    assert granted[("batch", "jobs")] == {"get", "list", "create", "patch", "delete"}
    assert granted[("", "pods")] == {"get", "list"}
    assert granted[("", "events")] == {"create", "list"}
    # No Secret access cluster-wide by default (rbac.secretExistenceCheck: namespaced).
    assert ("", "secrets") not in granted
    assert granted[("kopf.dev", "clusterkopfpeerings")] == {"get", "list", "watch", "patch"}
    for verbs in granted.values():
        assert "*" not in verbs and "escalate" not in verbs and "bind" not in verbs
    assert all("*" not in rule["resources"] for rule in cluster_role["rules"])
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kt-kubetune", "namespace": "kubetune-system"}
    ]
    (peering,) = by_kind(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "kubetune"


def test_secret_existence_check_is_namespaced_by_default_and_cluster_wide_only_on_request() -> None:
    # Existence check by name only: no list/watch of Secrets, no writes; in the watched namespaces only.
    for role in by_kind(render(*NAMESPACED), "Role"):
        assert rules_of(role)[("", "secrets")] == {"get"}
    for role in by_kind(render(*NAMESPACED, "--set", "rbac.secretExistenceCheck=false"), "Role"):
        assert ("", "secrets") not in rules_of(role)
    (cluster_role,) = by_kind(render("--set", "rbac.secretExistenceCheck=true"), "ClusterRole")
    assert rules_of(cluster_role)[("", "secrets")] == {"get"}


def test_namespaced_mode_creates_nothing_cluster_scoped_but_crds_and_the_admission_policy() -> None:
    docs = render(*NAMESPACED)
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    # The admission policy grants nothing; its binding matches only the watched namespaces.
    (binding,) = by_kind(docs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}
    ]
    assert not by_kind(docs, "ClusterKopfPeering")
    roles = by_kind(docs, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    assert ("kopf.dev", "kopfpeerings") in rules_of(roles[0])
    assert ("apiextensions.k8s.io", "customresourcedefinitions") not in rules_of(roles[0])
    bindings = by_kind(docs, "RoleBinding")
    assert {binding["subjects"][0]["namespace"] for binding in bindings} == {"kubetune-system"}
    assert sorted(p["metadata"]["namespace"] for p in by_kind(docs, "KopfPeering")) == ["team-a", "team-b"]
    (deployment,) = by_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["--namespace=team-a", "--namespace=team-b"]
    workload_accounts = [
        sa for sa in by_kind(docs, "ServiceAccount") if sa["metadata"]["name"] == "kubetune-workload"
    ]
    assert sorted(sa["metadata"]["namespace"] for sa in workload_accounts) == ["team-a", "team-b"]
    assert all(sa["automountServiceAccountToken"] is False for sa in workload_accounts)


def test_roles_and_cluster_role_share_the_same_namespaced_rules() -> None:
    (cluster_role,) = by_kind(render(), "ClusterRole")
    role = by_kind(render(*NAMESPACED), "Role")[0]
    cluster_only = {
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("kopf.dev", "clusterkopfpeerings"),
    }
    # The Secret existence check is granted per watched namespace by default, never cluster-wide.
    namespaced_only = {("kopf.dev", "kopfpeerings"), ("", "secrets")}
    cluster_rules = {k: v for k, v in rules_of(cluster_role).items() if k not in cluster_only}
    assert cluster_rules == {k: v for k, v in rules_of(role).items() if k not in namespaced_only}


def test_monitoring_objects_render_only_when_enabled() -> None:
    kinds = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert not kinds & {doc["kind"] for doc in render()}
    docs = render(
        "--set", "monitoring.serviceMonitor.enabled=true",
        "--set", "monitoring.podMonitor.enabled=true",
        "--set", "monitoring.prometheusRule.enabled=true",
        "--set", "monitoring.grafanaDashboard.enabled=true",
    )  # fmt: skip
    assert kinds <= {doc["kind"] for doc in docs}
    (pod_monitor,) = by_kind(docs, "PodMonitor")
    assert pod_monitor["spec"]["sampleLimit"] == 5000  # one workload pod cannot flood Prometheus
    (dashboard,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["kubetune.json"])["uid"] == "kubetune-overview"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--set", "operator.replicas=2", "--set", "operator.peering.enabled=false"], "peering"),
        (["--set", "watchNamespaces={Team_A}"], "watchNamespaces"),
        (["--set", "operator.metricsPort=0"], "metricsPort"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "operator.typo=1"], "typo"),
        (["--set", "policy.allowedImages={a}"], "allowedImages"),
        (["--set", "policy.maxGpusPerJob=-1"], "maxGpusPerJob"),
        (["--set", "operator.podStorageRetrySeconds=-1"], "podStorageRetrySeconds"),
    ],
)
def test_schema_rejects_bad_values_naming_the_field(args: list[str], field: str) -> None:
    result = run_helm("template", "kt", str(CHART), *args)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr


def test_namespaces_that_yaml_reads_as_booleans_stay_strings() -> None:
    # `on`, `y`, `no` are valid namespace names but YAML 1.1 booleans when unquoted.
    result = run_helm(
        "template", "kt", str(CHART), "--namespace", "y", "--set", "watchNamespaces={on,no}",
        "--set", "monitoring.podMonitor.enabled=true", "--set", "monitoring.serviceMonitor.enabled=true",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.load_all(result.stdout, Loader=StrictLoader) if doc]
    namespaces = {doc["metadata"]["namespace"] for doc in docs if "namespace" in doc["metadata"]}
    assert namespaces == {"y", "on", "no"}
    (monitor,) = by_kind(docs, "PodMonitor")
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["on", "no"]
    (service_monitor,) = by_kind(docs, "ServiceMonitor")
    assert service_monitor["spec"]["namespaceSelector"]["matchNames"] == ["y"]


def _policy_env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(docs, "Deployment")
    env = {
        item["name"]: item.get("value")
        for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    policy: dict[str, Any] = json.loads(env["KUBETUNE_POLICY"])
    return policy


def test_policy_defaults_reach_the_operator_and_the_admission_policy() -> None:
    docs = render()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    policy = _policy_env(docs)
    # The operator parses exactly what the chart passes (a misspelt key would stop it at startup).
    parsed = PlatformPolicy.model_validate(policy)
    repositories = {image.rsplit(":", 1)[0] for image in (DEFAULT_TRAINER_IMAGE, DEFAULT_EVALUATOR_IMAGE)}
    assert set(parsed.allowed_image_repositories or ()) == repositories
    assert parsed.allowed_service_accounts == ("", values["workloadServiceAccount"]["name"])
    assert parsed.allowed_priority_classes == ("",)
    assert parsed.allowed_annotation_keys == ("kubetune.io/",)
    (vap,) = by_kind(docs, "ValidatingAdmissionPolicy")
    (binding,) = by_kind(docs, "ValidatingAdmissionPolicyBinding")
    assert vap["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert binding["spec"]["policyName"] == vap["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"]  # cluster-wide mode: every namespace
    assert vap["spec"]["matchConstraints"]["resourceRules"][0]["operations"] == ["CREATE"]
    rules = " ".join(v["expression"] for v in vap["spec"]["validations"])
    assert '["kubetune/trainer","kubetune/evaluator"]' in rules and '["","kubetune-workload"]' in rules
    assert "variables.gpus" not in rules  # maxGpusPerJob 0: no limit


def test_policy_values_change_both_checks_and_admission_can_be_turned_off() -> None:
    docs = render(
        "--set", "policy.allowedImageRepositories=null", "--set", "policy.maxGpusPerJob=16",
        "--set", "policy.allowedPriorityClasses={,batch-low}",
    )  # fmt: skip
    policy = _policy_env(docs)
    assert "allowedImageRepositories" not in policy  # null: any image
    assert policy["maxGpusPerJob"] == 16 and policy["allowedPriorityClasses"] == ["", "batch-low"]
    (vap,) = by_kind(docs, "ValidatingAdmissionPolicy")
    rules = " ".join(v["expression"] for v in vap["spec"]["validations"])
    assert "variables.image" not in rules and "variables.gpus <= 16" in rules
    assert '["","batch-low"]' in rules
    off = render("--set", "policy.admission.enabled=false")
    assert not by_kind(off, "ValidatingAdmissionPolicy") and not by_kind(
        off, "ValidatingAdmissionPolicyBinding"
    )
    assert _policy_env(off)["allowedImageRepositories"]  # the operator still checks


def _operator_env(docs: list[dict[str, Any]]) -> dict[str, str | None]:
    (deployment,) = by_kind(docs, "Deployment")
    return {i["name"]: i.get("value") for i in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_network_policy_admits_the_operators_pods_and_prometheus_and_rbac_follows() -> None:
    docs = render()
    env = _operator_env(docs)
    assert env["KUBETUNE_NETWORK_POLICY"] == "true"
    operator, prometheus = json.loads(env["KUBETUNE_NETWORK_POLICY_METRICS_FROM"] or "")
    (deployment,) = by_kind(docs, "Deployment")
    # The operator's peer selects exactly the Deployment's pods, in the release's namespace.
    assert operator["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert operator["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "kubetune-system"}
    }
    assert prometheus == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert rules_of(cluster_role)[("networking.k8s.io", "networkpolicies")] == {"get", "create"}
    for role in by_kind(render(*NAMESPACED), "Role"):
        assert rules_of(role)[("networking.k8s.io", "networkpolicies")] == {"get", "create"}


def test_network_policy_off_removes_the_grant_and_metrics_from_is_replaceable() -> None:
    off = render("--set", "networkPolicy.enabled=false")
    assert _operator_env(off)["KUBETUNE_NETWORK_POLICY"] == "false"
    (cluster_role,) = by_kind(off, "ClusterRole")
    assert ("networking.k8s.io", "networkpolicies") not in rules_of(cluster_role)
    custom = render(
        "--set-json", 'networkPolicy.metricsFrom=[{"podSelector":{"matchLabels":{"app":"prom"}}}]'
    )
    peers = json.loads(_operator_env(custom)["KUBETUNE_NETWORK_POLICY_METRICS_FROM"] or "")
    assert [peer.get("podSelector") for peer in peers][1:] == [{"matchLabels": {"app": "prom"}}]
    empty = render("--set-json", "networkPolicy.metricsFrom=[]")
    assert len(json.loads(_operator_env(empty)["KUBETUNE_NETWORK_POLICY_METRICS_FROM"] or "")) == 1
