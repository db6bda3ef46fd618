"""Background processes tracked by pid files, so `dev down` stops exactly what `dev up` started."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

STOP_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class PidRecord:
    """A pid alone can be recycled by an unrelated process; pid + start time cannot."""

    pid: int
    create_time: float
    argv: list[str]


def read_pid_record(pid_file: Path) -> PidRecord | None:
    try:
        data = json.loads(pid_file.read_text())
        return PidRecord(
            pid=int(data["pid"]), create_time=float(data["create_time"]), argv=list(data["argv"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_process(pid_file: Path) -> psutil.Process | None:
    """The process the pid file names, if it is still that same process and alive."""
    record = read_pid_record(pid_file)
    if record is None:
        return None
    try:
        process = psutil.Process(record.pid)
        if abs(process.create_time() - record.create_time) > 1.0:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


def start_process(argv: list[str], log_file: Path, pid_file: Path, env: dict[str, str] | None = None) -> int:
    """Start `argv` detached (own session, no inherited stdio) so it outlives the caller, e.g. a
    pytest session, and never holds a CI job's output pipe open."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    create_time = psutil.Process(process.pid).create_time()
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(json.dumps({"pid": process.pid, "create_time": create_time, "argv": argv}))
    return process.pid


def stop_process(pid_file: Path, grace_seconds: float = STOP_GRACE_SECONDS) -> bool:
    """SIGTERM, then SIGKILL after the grace period. Returns whether a process was stopped."""
    process = running_process(pid_file)
    stopped = False
    if process is not None:
        try:
            process.terminate()
            _, alive = psutil.wait_procs([process], timeout=grace_seconds)
            for leftover in alive:
                leftover.kill()
            stopped = True
        except psutil.NoSuchProcess:
            stopped = True
    pid_file.unlink(missing_ok=True)
    return stopped


def tree_rss_bytes(process: psutil.Process) -> int:
    """Resident memory of a process and all its descendants (the node agent's pods included)."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total
