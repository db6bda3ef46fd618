"""Whose output lies under `output.uri`: the job identity recorded in result.json and in every checkpoint.

The rule (docs/trainer.md):
- the same job (same UID: a restarted attempt) resumes from its checkpoints and reuses its result;
- a job re-created under the same namespace and name is what its user intends: with the same training spec
  (spec hash) it reuses the result and checkpoints as they are the same work; with a changed spec it trains
  again from scratch, replacing them;
- any other job fails with `OutputInUse` before it writes anything: it never resumes from, skips over or
  overwrites another job's model;
- without identities (a local `kubetune train`, or an output written before identities were recorded) the
  output is used as it is.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal

from kubetune_operator.api.contract import OutputInUseError

if TYPE_CHECKING:
    from kubetune_operator.api import FineTuneJob

# The fields that decide what is trained; runPolicy, resources, podTemplate and the like do not.
TRAINING_FIELDS = ("model", "dataset", "tasks", "method", "lora", "hyperparameters")

Claim = Literal["ours", "redo"]


def job_identity(job: FineTuneJob) -> dict[str, Any]:
    spec = job.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    training = {key: spec.get(key) for key in TRAINING_FIELDS}
    digest = hashlib.sha256(json.dumps(training, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return {
        "namespace": job.metadata.get("namespace"),
        "name": job.metadata.get("name"),
        "uid": job.metadata.get("uid"),
        "specHash": f"sha256:{digest}",
    }


def claim_output(recorded: Any, mine: dict[str, Any], where: str) -> Claim:
    """`ours` (use what is there), `redo` (train again, replacing it); OutputInUseError for another job's."""
    if not isinstance(recorded, dict) or not recorded.get("uid") or not mine.get("uid"):
        return "ours"
    if recorded["uid"] == mine["uid"]:
        return "ours"
    if (recorded.get("namespace"), recorded.get("name")) == (mine.get("namespace"), mine.get("name")):
        return "ours" if recorded.get("specHash") == mine.get("specHash") else "redo"
    raise OutputInUseError(
        f"{where} holds the output of FineTuneJob {recorded.get('namespace')}/{recorded.get('name')} "
        f"(uid {recorded['uid']}); give this job its own output.uri"
    )
