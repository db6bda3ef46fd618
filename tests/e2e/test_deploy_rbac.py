"""The chart's RBAC on a real API server, checked with impersonation (`kubectl auth can-i --as
system:serviceaccount:...`, i.e. SubjectAccessReviews the authorizer answers): what the operator and the
workload ServiceAccounts may and may not do, cluster-wide and in namespaced mode.

Both releases run 0 operator replicas: only their RBAC objects matter here, and no second operator may
reconcile other tests' jobs."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubetune_devtools.devstack.binaries import client_tool
from kubetune_devtools.devstack.kube_clients import KubeClients
from kubetune_devtools.devstack.stack import LocalStack

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubetune"


@dataclass(frozen=True)
class Releases:
    cluster_ns: str  # cluster-wide release
    namespaced_ns: str  # namespaced release's own namespace
    watched: str  # the one namespace it watches
    other: str  # a namespace nobody watches explicitly
    cluster_sa: str
    namespaced_sa: str
    workload_sa: str


def helm(stack: LocalStack, *args: str) -> None:
    result = subprocess.run(
        [str(client_tool("helm")), "--kubeconfig", str(stack.kubeconfig), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def releases(stack: LocalStack, k8s: KubeClients) -> Iterator[Releases]:
    suffix = secrets.token_hex(3)
    names = {role: f"t-deploy-rbac-{role}-{suffix}" for role in ("cluster", "nsmode", "watched", "other")}
    for name in names.values():
        k8s.core.create_namespace({"metadata": {"name": name, "labels": {"kubetune.io/e2e": "true"}}})
    # No admission policy: the cluster-wide release's binding would hold for every namespace of the shared
    # stack while this module runs (test_deploy_install.py checks the policy; it grants no permission).
    common = ["--set", "operator.replicas=0", "--set", "operator.peering.name=rbac-" + suffix,
              "--set", "policy.admission.enabled=false"]  # fmt: skip
    helm(stack, "install", "rbac-c", str(CHART), "-n", names["cluster"], *common)
    helm(stack, "install", "rbac-n", str(CHART), "-n", names["nsmode"], *common,
         "--set", f"watchNamespaces={{{names['watched']}}}")  # fmt: skip
    yield Releases(
        cluster_ns=names["cluster"],
        namespaced_ns=names["nsmode"],
        watched=names["watched"],
        other=names["other"],
        cluster_sa=f"system:serviceaccount:{names['cluster']}:rbac-c-kubetune",
        namespaced_sa=f"system:serviceaccount:{names['nsmode']}:rbac-n-kubetune",
        workload_sa=f"system:serviceaccount:{names['watched']}:kubetune-workload",
    )
    helm(stack, "uninstall", "rbac-c", "-n", names["cluster"])
    helm(stack, "uninstall", "rbac-n", "-n", names["nsmode"])
    for name in names.values():
        k8s.core.delete_namespace(name, propagation_policy="Background")


def can_i(stack: LocalStack, subject: str, verb: str, resource: str, namespace: str | None) -> bool:
    """`kubectl auth can-i`: exit 0 and "yes" when allowed, exit 1 and "no" when denied."""
    scope = ["--all-namespaces"] if namespace is None else ["--namespace", namespace]
    args = [
        str(client_tool("kubectl")),  # the project's pinned kubectl, never the one on PATH
        "--kubeconfig",
        str(stack.kubeconfig),
        "auth",
        "can-i",
        verb,
        *resource.split(),
        *scope,
    ]
    result = subprocess.run([*args, "--as", subject], check=False, capture_output=True, text=True, timeout=60)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


# (verb, resource, allowed): resource may carry `--subresource=...`.
OPERATOR_MATRIX = [
    ("watch", "finetunejobs.kubetune.io", True),
    ("patch", "evaljobs.kubetune.io", True),
    ("delete", "finetunejobs.kubetune.io", True),
    ("patch", "finetunejobs.kubetune.io --subresource=status", True),
    ("update", "evaljobs.kubetune.io --subresource=finalizers", True),
    ("create", "jobs.batch", True),
    ("delete", "jobs.batch", True),
    ("create", "configmaps", True),
    ("create", "services", True),
    ("create", "networkpolicies.networking.k8s.io", True),
    ("get", "networkpolicies.networking.k8s.io", True),
    ("list", "pods", True),
    ("create", "events", True),
    ("list", "events", True),
    # Denied:
    ("create", "finetunejobs.kubetune.io", False),
    ("update", "finetunejobs.kubetune.io", False),
    ("list", "secrets", False),
    ("watch", "secrets", False),
    ("create", "secrets", False),
    ("create", "pods", False),
    ("delete", "pods", False),
    ("create", "pods --subresource=exec", False),
    ("delete", "configmaps", False),
    ("update", "services", False),
    ("delete", "networkpolicies.networking.k8s.io", False),
    ("update", "networkpolicies.networking.k8s.io", False),
    ("create", "deployments.apps", False),
    ("create", "leases.coordination.k8s.io", False),
    ("create", "rolebindings.rbac.authorization.k8s.io", False),
    ("impersonate", "serviceaccounts", False),
]


@pytest.mark.parametrize(("verb", "resource", "allowed"), OPERATOR_MATRIX)
def test_cluster_wide_operator_matrix(
    stack: LocalStack, releases: Releases, verb: str, resource: str, allowed: bool
) -> None:
    for namespace in (releases.other, None):
        assert can_i(stack, releases.cluster_sa, verb, resource, namespace) is allowed, (
            verb,
            resource,
            namespace,
        )


@pytest.mark.parametrize(("verb", "resource", "allowed"), OPERATOR_MATRIX)
def test_namespaced_operator_matrix_inside_its_namespace(
    stack: LocalStack, releases: Releases, verb: str, resource: str, allowed: bool
) -> None:
    assert can_i(stack, releases.namespaced_sa, verb, resource, releases.watched) is allowed


@pytest.mark.parametrize(("verb", "resource", "_"), [row for row in OPERATOR_MATRIX if row[2]])
def test_namespaced_operator_may_do_nothing_outside_its_namespaces(
    stack: LocalStack, releases: Releases, verb: str, resource: str, _: bool
) -> None:
    for namespace in (releases.other, releases.namespaced_ns, "default", None):
        assert not can_i(stack, releases.namespaced_sa, verb, resource, namespace), (
            verb,
            resource,
            namespace,
        )


@pytest.mark.parametrize(
    ("subject_of", "verb", "resource", "allowed"),
    [
        ("cluster_sa", "watch", "customresourcedefinitions.apiextensions.k8s.io", True),
        ("cluster_sa", "patch", "clusterkopfpeerings.kopf.dev", True),
        ("cluster_sa", "list", "namespaces", False),
        # No Secret read anywhere by default in cluster-wide mode (rbac.secretExistenceCheck: namespaced).
        ("cluster_sa", "get", "secrets", False),
        ("cluster_sa", "get", "nodes", False),
        ("cluster_sa", "update", "customresourcedefinitions.apiextensions.k8s.io", False),
        ("namespaced_sa", "watch", "customresourcedefinitions.apiextensions.k8s.io", False),
        ("namespaced_sa", "patch", "clusterkopfpeerings.kopf.dev", False),
        ("namespaced_sa", "list", "namespaces", False),
    ],
)
def test_cluster_scoped_permissions(
    stack: LocalStack, releases: Releases, *, subject_of: str, verb: str, resource: str, allowed: bool
) -> None:
    subject = getattr(releases, subject_of)
    # Cluster-scoped resources: can-i without a namespace argument asks at cluster scope.
    result = can_i(stack, subject, verb, resource, None)
    assert result is allowed


def test_namespaced_operator_may_use_its_peering_only_where_it_watches(
    stack: LocalStack, releases: Releases
) -> None:
    assert can_i(stack, releases.namespaced_sa, "patch", "kopfpeerings.kopf.dev", releases.watched)
    assert not can_i(stack, releases.namespaced_sa, "patch", "kopfpeerings.kopf.dev", releases.other)


@pytest.mark.parametrize(
    ("verb", "resource"),
    [("get", "pods"), ("list", "configmaps"), ("get", "secrets"), ("get", "finetunejobs.kubetune.io"),
     ("patch", "finetunejobs.kubetune.io --subresource=status"), ("create", "events")],
)  # fmt: skip
def test_workload_service_account_may_do_nothing(
    stack: LocalStack, releases: Releases, k8s: KubeClients, verb: str, resource: str
) -> None:
    account = k8s.core.read_namespaced_service_account("kubetune-workload", releases.watched)
    assert account.automount_service_account_token is False
    assert not can_i(stack, releases.workload_sa, verb, resource, releases.watched)


def test_namespaced_operator_may_check_secrets_by_name_only_where_it_watches(
    stack: LocalStack, releases: Releases
) -> None:
    # The documented fail-fast existence check (MissingSecret): get by name, in the watched namespace only.
    assert can_i(stack, releases.namespaced_sa, "get", "secrets", releases.watched)
    assert not can_i(stack, releases.namespaced_sa, "get", "secrets", releases.other)
    assert not can_i(stack, releases.cluster_sa, "get", "secrets", releases.other)


def test_secret_access_is_gone_when_switched_off(stack: LocalStack, releases: Releases) -> None:
    helm(stack, "upgrade", "rbac-n", str(CHART), "-n", releases.namespaced_ns, "--reuse-values",
         "--set", "rbac.secretExistenceCheck=false")  # fmt: skip
    try:
        assert not can_i(stack, releases.namespaced_sa, "get", "secrets", releases.watched)
        assert can_i(stack, releases.namespaced_sa, "create", "jobs.batch", releases.watched)
    finally:
        helm(stack, "upgrade", "rbac-n", str(CHART), "-n", releases.namespaced_ns, "--reuse-values",
             "--set", "rbac.secretExistenceCheck=namespaced")  # fmt: skip


# What enforces the platform policy (docs/deploy.md "Trust model"): the chart's ValidatingAdmissionPolicy and
# its binding, and the operator's Deployment whose environment carries KUBETUNE_POLICY.
POLICY_HOLDERS = [
    ("update", "validatingadmissionpolicies.admissionregistration.k8s.io"),
    ("delete", "validatingadmissionpolicies.admissionregistration.k8s.io"),
    ("patch", "validatingadmissionpolicybindings.admissionregistration.k8s.io"),
    ("create", "validatingadmissionpolicybindings.admissionregistration.k8s.io"),
    ("patch", "deployments.apps"),
    ("update", "deployments.apps"),
]


@pytest.mark.parametrize(("verb", "resource"), POLICY_HOLDERS)
def test_no_identity_the_chart_creates_may_change_the_platform_policy(
    stack: LocalStack, releases: Releases, verb: str, resource: str
) -> None:
    # Neither operator (cluster-wide or namespaced) nor a job's pods can loosen the policy that binds them:
    # not in their own namespace, not where the jobs run, not cluster-wide.
    for subject in (releases.cluster_sa, releases.namespaced_sa, releases.workload_sa):
        for namespace in (releases.cluster_ns, releases.namespaced_ns, releases.watched, None):
            assert not can_i(stack, subject, verb, resource, namespace), (subject, verb, resource, namespace)
