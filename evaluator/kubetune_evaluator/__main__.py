"""Pod entry point: `python -m kubetune_evaluator --config /etc/kubetune/job.yaml`.

Exit codes and the termination message follow the workload contract (`kubetune_operator.api.contract`):
0 evaluated (whatever the verdict: the verdict is a result, not a failure; for a rank above 0 of a sharded
EvalJob, its share written for rank 0), 2 a reported failure
(InvalidSpec for bad input, StorageUnreachable when S3 does not answer, OutOfMemory; message on stderr and
in the termination log), 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from kubetune_evaluator.entrypoint import contribute_shard, evaluate_manifest
from kubetune_evaluator.local_processes import launch, launcher_processes
from kubetune_evaluator.shard import Shard
from kubetune_operator.api.contract import EXIT_SUCCEEDED, run_workload
from kubetune_operator.api.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubetune_evaluator", description=__doc__)
    parser.add_argument(
        "--config", type=Path, default=Path("/etc/kubetune/job.yaml"), help="EvalJob manifest"
    )
    args = parser.parse_args(argv)
    configure_logging(json_lines=True)  # like the trainer's pods: one JSON object per line
    processes = launcher_processes()
    if processes:  # processesPerNode > 1: one evaluator process per shard of this pod
        return launch(["--config", str(args.config)], processes)

    # A shard of a sharded EvalJob (nodes x processesPerNode > 1): ranks above 0 hand their share to rank 0.
    shard = Shard.from_env()
    if not shard.merges:
        return run_workload(lambda: contribute_shard(args.config, shard))
    runs = []
    # Bad input -> InvalidSpec, an S3 outage -> StorageUnreachable: reported through the contract's writer.
    code = run_workload(lambda: runs.append(evaluate_manifest(args.config, serve_metrics=True, shard=shard)))
    if code != EXIT_SUCCEEDED:
        return code
    run = runs[0]
    logging.getLogger("kubetune.evaluator").info(
        "verdict %s; report %s", run.outcome.verdict, run.uris["report.html"]
    )
    # Give Prometheus a chance to scrape the final scores before the pod exits.
    time.sleep(float(os.environ.get("KUBETUNE_METRICS_LINGER_SECONDS", "0")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
