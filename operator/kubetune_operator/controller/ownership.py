"""Identity by UID (pure): which children are ours, and what to do when a child's name is taken.

Names and labels only say which FineTuneJob/EvalJob a child was made for; the ownerReference's UID says
which incarnation. A job deleted and re-created under the same name has a new UID, so the old one's Job,
pods and termination messages are never taken for the new one's.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from kubetune_operator.controller.builders import Owner


class Claim(Enum):
    OURS = "ours"
    """Owned by this incarnation: a handler that ran twice."""
    PREVIOUS = "previous"
    """Owned by an earlier object of the same kind and name, deleted since: its garbage, to be removed."""
    FOREIGN = "foreign"
    """Anything else (another kind, a user's own object, no owner): never adopted."""


def owner_uids(obj: dict[str, Any]) -> set[str]:
    return {str(ref.get("uid")) for ref in obj.get("metadata", {}).get("ownerReferences") or []}


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return uid in owner_uids(obj)


def claim(obj: dict[str, Any], owner: Owner) -> Claim:
    references = obj.get("metadata", {}).get("ownerReferences") or []
    if any(ref.get("uid") == owner.uid for ref in references):
        return Claim.OURS
    # Only one object of a kind can hold a name in a namespace: one with our kind and name but another
    # UID no longer exists (the garbage collector has not removed its children yet).
    if references and all(
        ref.get("kind") == owner.kind and ref.get("name") == owner.name and ref.get("uid") != owner.uid
        for ref in references
    ):
        return Claim.PREVIOUS
    return Claim.FOREIGN


def describe_owners(obj: dict[str, Any]) -> str:
    references = obj.get("metadata", {}).get("ownerReferences") or []
    if not references:
        return "no owner"
    return ", ".join(f"{ref.get('kind')} {ref.get('name')} (uid {ref.get('uid')})" for ref in references)
