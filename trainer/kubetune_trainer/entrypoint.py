"""The one entry point of trainer pods and of `kubetune train`: `run_job(config_path, dry_run=...)`.

Pods run `python -m kubetune_trainer --config /etc/kubetune/job.yaml` (one process) or `accelerate launch
<flags> -m kubetune_trainer ...` (several; docs/operator.md); `kubetune train
job.yaml` calls `run_job` directly in one process. Exit codes and the termination message follow the
workload contract (`kubetune_operator.api.contract`): 0 done (result with output digest and final
progress), 2 a reported failure (InvalidSpec for bad data, StorageUnreachable, OutOfMemory; message printed,
no traceback), 143 preempted by SIGTERM after a checkpoint, 1 anything unexpected (traceback).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from kubetune_operator.api import FineTuneJob, ManifestError, load_manifest
from kubetune_operator.api.contract import EXIT_FAILED, EXIT_PREEMPTED, run_workload
from kubetune_operator.api.logs import configure_logging
from kubetune_operator.data.errors import KubetuneError

EXIT_BAD_INPUT = EXIT_FAILED


def load_job(config_path: str | Path) -> Any:
    try:
        manifest = load_manifest(config_path)
    except (ManifestError, OSError) as err:
        raise KubetuneError(f"{config_path}: {err}") from err
    if not isinstance(manifest, FineTuneJob):
        raise KubetuneError(f"{config_path}: kind must be FineTuneJob, got {manifest.kind}")
    return manifest


def run_job(
    config_path: str | Path,
    *,
    dry_run: bool = False,
    progress_bar: bool = False,
    gpu_memory: str | None = None,
) -> dict[str, Any] | None:
    """Dry-run report, or train + export result (None on ranks > 0). Raises KubetuneError on bad input.
    `gpu_memory` (dry run only): the per-GPU memory the estimate is checked against."""
    job = load_job(config_path)
    # deferred, both: a dry run never imports the training stack, and the pod entry point imports torch
    # only after it has set OMP_NUM_THREADS (torch reads it once, at import)
    if dry_run:
        from kubetune_trainer.dryrun import dry_run_report  # noqa: PLC0415

        return dry_run_report(job, gpu_memory=gpu_memory)
    from kubetune_trainer.recipe import run_training  # noqa: PLC0415

    return run_training(job, progress_bar=progress_bar)


def _exit_preempted(signum: int, frame: FrameType | None) -> None:
    print("stopped by SIGTERM before training started", file=sys.stderr)
    sys.exit(EXIT_PREEMPTED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubetune_trainer", description=__doc__)
    parser.add_argument(
        "--config",
        default=os.environ.get("KUBETUNE_CONFIG", "/etc/kubetune/job.yaml"),
        help="FineTuneJob manifest (YAML)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # Until the recipe installs its checkpointing handler, SIGTERM (a suspend or delete while the pod
    # downloads or tokenizes) ends the process at once: as the container's PID 1 Python would otherwise
    # ignore it and the pod would wait out its whole grace period. Nothing is lost: no step has run.
    signal.signal(signal.SIGTERM, _exit_preempted)
    configure_logging(json_lines=True, rank=int(os.environ.get("RANK", "0")))
    # deferred: torch (through the recipe) only after OMP_NUM_THREADS is set
    from kubetune_trainer.recipe import PreemptedError  # noqa: PLC0415

    try:
        # Reported failures (bad data, S3 outage, out of memory) go through the contract's writer.
        return run_workload(lambda: run_job(args.config))
    except PreemptedError as err:
        print(str(err), file=sys.stderr)
        return EXIT_PREEMPTED
