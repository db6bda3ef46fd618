"""Identity by UID and names disjoint between kinds (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune_operator.controller.builders import Owner
from kubetune_operator.controller.names import (
    KIND_EVAL,
    KIND_FINETUNE,
    attempt_of,
    child_job_name,
    config_map_name,
)
from kubetune_operator.controller.ownership import Claim, claim, describe_owners, owned_by

OWNER = Owner(kind=KIND_FINETUNE, name="review-rating", namespace="team-a", uid="uid-new")


def child(*references: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "review-rating-config", "ownerReferences": list(references)}}


def ref(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": "kubetune.io/v1alpha1", "kind": kind, "name": name, "uid": uid}


def test_claims() -> None:
    assert claim(child(ref(KIND_FINETUNE, "review-rating", "uid-new")), OWNER) is Claim.OURS
    # A deleted FineTuneJob of the same name: its leftovers are replaced, never adopted.
    assert claim(child(ref(KIND_FINETUNE, "review-rating", "uid-old")), OWNER) is Claim.PREVIOUS
    # Another kind of the same name, another name, or nobody: a conflict.
    assert claim(child(ref(KIND_EVAL, "review-rating", "uid-x")), OWNER) is Claim.FOREIGN
    assert claim(child(ref(KIND_FINETUNE, "other", "uid-x")), OWNER) is Claim.FOREIGN
    assert claim(child(), OWNER) is Claim.FOREIGN
    assert owned_by(child(ref(KIND_FINETUNE, "x", "uid-new")), "uid-new")
    assert describe_owners(child()) == "no owner"
    assert "EvalJob review-rating (uid uid-x)" in describe_owners(
        child(ref(KIND_EVAL, "review-rating", "uid-x"))
    )


@pytest.mark.parametrize("name", ["pair", "pair-eval", "pair-r0", "a-config", "x-eval-0"])
def test_names_of_the_two_kinds_never_meet(name: str) -> None:
    """Every FineTuneJob child name differs from every EvalJob child name, whatever the two job names."""
    others = ["pair", "pair-eval", "pair-r0", "a", "a-config", "x", "x-eval", "x-eval-0", "pair-eval-eval"]
    for other in others:
        for attempt in range(3):
            assert child_job_name(name, attempt, KIND_FINETUNE) != child_job_name(other, attempt, KIND_EVAL)
            assert child_job_name(name, attempt, KIND_FINETUNE) != child_job_name(
                other, attempt + 1, KIND_EVAL
            )
        assert config_map_name(name, KIND_FINETUNE) != config_map_name(other, KIND_EVAL)


def test_attempts_are_read_back_per_kind() -> None:
    assert child_job_name("pair", 2) == "pair-r2" and config_map_name("pair") == "pair-config"
    assert (
        child_job_name("pair", 2, KIND_EVAL) == "pair-eval-2"
        and config_map_name("pair", KIND_EVAL) == "pair-eval"
    )
    assert attempt_of("pair-eval-2", "pair", KIND_EVAL) == 2
    assert attempt_of("pair-eval-2", "pair", KIND_FINETUNE) is None
    assert attempt_of("pair-r2", "pair", KIND_EVAL) is None
    assert attempt_of("pair-eval-r2", "pair-eval", KIND_FINETUNE) == 2
    assert attempt_of("pair-eval-r2", "pair", KIND_EVAL) is None
