"""The per-job NetworkPolicy builder (pure): selectors, ports, owner."""

from __future__ import annotations

from kubetune_operator.api import FineTuneJobSpec
from kubetune_operator.controller.builders import Owner, build_network_policy, build_worker_job
from kubetune_operator.controller.settings import OperatorSettings

OWNER = Owner(kind="FineTuneJob", name="review-rating", namespace="team-a", uid="uid-1")
OPERATOR = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubetune-system"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}},
}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def test_own_pods_on_any_port_and_scrapers_only_on_the_progress_port() -> None:
    settings = OperatorSettings(progress_port=9400, network_policy_metrics_from=(OPERATOR, PROMETHEUS))
    policy = build_network_policy(OWNER, settings)
    job_pods = {"matchLabels": {"kubetune.io/job-name": "review-rating", "kubetune.io/kind": "FineTuneJob"}}
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["metadata"]["name"] == "review-rating-config"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert policy["spec"]["podSelector"] == job_pods
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    own, scrapers = policy["spec"]["ingress"]
    assert own == {"from": [{"podSelector": job_pods}]}
    assert scrapers == {"from": [OPERATOR, PROMETHEUS], "ports": [{"protocol": "TCP", "port": 9400}]}


def test_the_policy_selects_exactly_the_workers_pods() -> None:
    settings = OperatorSettings(network_policy_metrics_from=(PROMETHEUS,))
    spec = FineTuneJobSpec.model_validate(
        {
            "model": {"uri": "s3://models/base/"},
            "dataset": {"uri": "s3://data/reviews.jsonl"},
            "output": {"uri": "s3://models/tuned/review-rating/"},
            "podTemplate": {"labels": {"kubetune.io/job-name": "spoofed"}},
        }
    )
    pod_labels = build_worker_job(OWNER, spec, 0, settings)["spec"]["template"]["metadata"]["labels"]
    selector = build_network_policy(OWNER, settings)["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    # The user's labels cannot widen or move it: ours win over a spoofed job-name label.
    assert pod_labels["kubetune.io/job-name"] == "review-rating"


def test_no_scrapers_configured_admits_only_the_jobs_own_pods() -> None:
    policy = build_network_policy(OWNER, OperatorSettings(network_policy_metrics_from=()))
    assert len(policy["spec"]["ingress"]) == 1


def test_eval_and_finetune_policies_of_the_same_name_do_not_collide() -> None:
    settings = OperatorSettings(network_policy_metrics_from=())
    evaluation = Owner(kind="EvalJob", name="review-rating", namespace="team-a", uid="uid-2")
    names = {build_network_policy(owner, settings)["metadata"]["name"] for owner in (OWNER, evaluation)}
    assert len(names) == 2
