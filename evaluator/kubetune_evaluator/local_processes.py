"""`resources.processesPerNode` > 1: the evaluator pod runs one evaluator process per shard it holds.

The pod's command (`python -m kubetune_evaluator`) finds KUBETUNE_PROCESSES_PER_NODE > 1 and no
KUBETUNE_LOCAL_RANK: it becomes the launcher, starts the same command once per local rank (each a shard
of its own, `Shard.from_env`; on a GPU node each on GPU `local rank mod GPUs`, on CPU each with an equal
share of the pod's cores as its threads) and waits. The first process that fails takes the others down
and its exit code becomes the pod's, its termination message (written by that process) the pod's; when
all succeed the pod succeeds, with the result message of global rank 0 if this pod holds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from kubetune_evaluator.shard import LOCAL_RANK_ENV

PROCESSES_ENV = "KUBETUNE_PROCESSES_PER_NODE"


def launcher_processes(environ: Mapping[str, str] | None = None) -> int:
    """How many processes this process should start (0: it is an evaluator process itself)."""
    env = os.environ if environ is None else environ
    per_node = int(env.get(PROCESSES_ENV) or 1)
    return per_node if per_node > 1 and LOCAL_RANK_ENV not in env else 0


def child_environment(environ: Mapping[str, str], local_rank: int, processes: int) -> dict[str, str]:
    env = dict(environ)
    env[LOCAL_RANK_ENV] = str(local_rank)
    if "OMP_NUM_THREADS" not in env:
        # Each process would otherwise start a thread per core of the node: N times oversubscribed.
        env["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // processes))
    return env


def supervise(processes: Sequence[subprocess.Popen[bytes]], poll_s: float = 0.2) -> int:
    """Wait for all; the first non-zero exit stops the others and is returned, else 0."""
    running = list(processes)
    while running:
        for process in list(running):
            code = process.poll()
            if code is None:
                continue
            running.remove(process)
            if code != 0:
                for other in running:
                    other.terminate()
                for other in running:
                    other.wait()
                return code
        time.sleep(poll_s)
    return 0


def launch(argv: Sequence[str], processes: int, environ: Mapping[str, str] | None = None) -> int:
    """Start `python -m kubetune_evaluator <argv>` once per local rank and supervise them."""
    env = os.environ if environ is None else environ
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "kubetune_evaluator", *argv], env=child_environment(env, rank, processes)
        )
        for rank in range(processes)
    ]
    return supervise(children)
