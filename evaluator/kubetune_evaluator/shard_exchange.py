"""How the pods of a sharded EvalJob hand their results to rank 0: files under `output.uri`.

Each rank above 0 writes `<output.uri>/shards/<job uid>-attempt-<n>/shard-<rank>-of-<count>.json` (its
`SystemRequests`, by request index) through the same storage code as the results; rank 0 computes its own
share, waits for every other file, merges and publishes, then deletes the folder. The folder is keyed by
the EvalJob's UID and attempt, and every file records them with the spec's digest and its rank: a retried
attempt, a job deleted and created again under the same name, or a changed spec never reads another run's
shards. A shard that fails fails its pod, and with it the Job (backoffLimit 0) and the attempt, with the
pod's own reason; rank 0 gives up waiting after KUBETUNE_SHARD_WAIT_SECONDS (default 3600) all the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from kubetune_evaluator.runner import SystemRequests, merge_requests
from kubetune_evaluator.shard import Shard
from kubetune_operator.data.storage import delete_prefix, exists, join_uri, read_text, write_text

if TYPE_CHECKING:
    from kubetune_operator.api import EvalJobSpec
    from kubetune_operator.data.storage import StorageOptions

log = logging.getLogger("kubetune.evaluator")
WAIT_SECONDS_ENV = "KUBETUNE_SHARD_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 3600.0
FORMAT = 1


class ShardMismatchError(ValueError):
    """A shard file that belongs to another job, attempt, spec or rank."""


@dataclass(frozen=True)
class ShardIdentity:
    """Which run a shard belongs to: the EvalJob's UID, the operator's attempt and the spec's digest."""

    job_uid: str
    attempt: int
    spec_digest: str

    @classmethod
    def of(cls, spec: EvalJobSpec, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        digest = hashlib.sha256(spec.model_dump_json(by_alias=True).encode()).hexdigest()
        uid = env.get("KUBETUNE_JOB_UID") or env.get("KUBETUNE_JOB_NAME") or "local"
        return cls(job_uid=uid, attempt=int(env.get("KUBETUNE_RESTART") or 0), spec_digest=f"sha256:{digest}")


def shards_prefix(output_uri: str, identity: ShardIdentity) -> str:
    return join_uri(output_uri, "shards", f"{identity.job_uid}-attempt-{identity.attempt}") + "/"


def shard_uri(output_uri: str, identity: ShardIdentity, shard: Shard) -> str:
    return join_uri(shards_prefix(output_uri, identity), f"shard-{shard.rank}-of-{shard.count}.json")


def _header(identity: ShardIdentity, shard: Shard) -> dict[str, Any]:
    """What names a shard file's run and rank: written by `encode_shard`, checked by `decode_shard`."""
    return {
        "format": FORMAT,
        "jobUid": identity.job_uid,
        "attempt": identity.attempt,
        "specDigest": identity.spec_digest,
        "rank": shard.rank,
        "count": shard.count,
    }


def encode_shard(identity: ShardIdentity, shard: Shard, systems: Sequence[SystemRequests]) -> str:
    """JSON of one shard's requests (floats as Python's repr: they read back bit for bit)."""
    document = {**_header(identity, shard), "systems": [dataclasses.asdict(system) for system in systems]}
    return json.dumps(document, ensure_ascii=False)


def _by_index(values: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[int, Any]]:
    return {task: {int(index): value for index, value in items.items()} for task, items in values.items()}


def decode_shard(text: str, identity: ShardIdentity, shard: Shard) -> list[SystemRequests]:
    """The requests of `shard`, refusing a file written by another run or rank."""
    document = json.loads(text)
    expected = _header(identity, shard)
    found = {key: document.get(key) for key in expected}
    if found != expected:
        raise ShardMismatchError(f"shard file of another run: expected {expected}, found {found}")
    return [
        SystemRequests(
            role=system["role"],
            uri=system["uri"],
            digest=system["digest"],
            adapter=system["adapter"],
            prompts=_by_index(system["prompts"]),
            generations=_by_index(system["generations"]),
            loglikelihoods=_by_index(system["loglikelihoods"]),
            window_documents={task: list(owners) for task, owners in system["window_documents"].items()},
            chat=dict(system["chat"]),
        )
        for system in document["systems"]
    ]


def write_shard(
    output_uri: str,
    identity: ShardIdentity,
    shard: Shard,
    systems: Sequence[SystemRequests],
    storage: StorageOptions | None = None,
) -> str:
    uri = shard_uri(output_uri, identity, shard)
    write_text(uri, encode_shard(identity, shard, systems), storage)
    return uri


def wait_seconds(environ: Mapping[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    return float(env.get(WAIT_SECONDS_ENV) or DEFAULT_WAIT_SECONDS)


def gather_shards(
    output_uri: str,
    identity: ShardIdentity,
    shard: Shard,
    own: Sequence[SystemRequests],
    storage: StorageOptions | None = None,
    *,
    timeout_s: float = DEFAULT_WAIT_SECONDS,
    poll_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[SystemRequests]:
    """Rank 0: wait for every other rank's file, then each system's requests merged over all shards."""
    others = [Shard(rank, shard.count) for rank in range(shard.count) if rank != shard.rank]
    found: dict[int, list[SystemRequests]] = {shard.rank: list(own)}
    deadline = clock() + timeout_s
    while True:
        for other in others:
            uri = shard_uri(output_uri, identity, other)
            if other.rank not in found and exists(uri, storage):
                found[other.rank] = decode_shard(read_text(uri, storage), identity, other)
                log.info("shard %d of %d: results read from %s", other.rank, other.count, uri)
        missing = [other.rank for other in others if other.rank not in found]
        if not missing:
            break
        if clock() >= deadline:
            raise TimeoutError(
                f"shards {', '.join(map(str, missing))} of {shard.count} wrote no results under "
                f"{shards_prefix(output_uri, identity)} within {timeout_s:.0f}s"
            )
        sleep(poll_s)
    parts = [found[rank] for rank in range(shard.count)]
    if len({len(systems) for systems in parts}) != 1:
        raise ShardMismatchError("shards scored different numbers of systems (model, baseline)")
    return [merge_requests([systems[i] for systems in parts]) for i in range(len(own))]


def remove_shards(output_uri: str, identity: ShardIdentity, storage: StorageOptions | None = None) -> None:
    """Best effort once results are published: leftovers cost space, never correctness (keyed by run)."""
    try:
        delete_prefix(shards_prefix(output_uri, identity), storage)
    except Exception as error:  # the results are out: a leftover folder is no failure
        log.warning(
            "could not remove the shard files under %s: %s", shards_prefix(output_uri, identity), error
        )
