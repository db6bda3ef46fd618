"""Containers left running by an agent that died without stopping them (SIGKILL, crash).

Each container's pid and start time are recorded next to it; a fresh agent has no children, so any
recorded process still alive (same pid *and* start time: pids are recycled) is an orphan to stop.
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import psutil

from kubetune_devtools.devstack.node_agent.process import signal_group

log = logging.getLogger(__name__)

PID_FILE = "pid.json"


def record_process(container_dir: Path, pid: int) -> None:
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return  # already gone: nothing can be orphaned
    (container_dir / PID_FILE).write_text(json.dumps({"pid": pid, "create_time": started}))


def stop_orphans(pods_dir: Path) -> int:
    """SIGKILL the process group of every recorded container still running; returns how many."""
    stopped = 0
    for pid_file in pods_dir.glob(f"*/containers/*/{PID_FILE}"):
        try:
            record = json.loads(pid_file.read_text())
            process = psutil.Process(int(record["pid"]))
            same = abs(process.create_time() - float(record["create_time"])) < 1.0
        except (OSError, ValueError, KeyError, psutil.Error):
            same = False
        if same:
            log.warning("stopping orphaned container process %s (%s)", record["pid"], pid_file.parent)
            signal_group(int(record["pid"]), signal.SIGKILL)
            stopped += 1
        pid_file.unlink(missing_ok=True)
    return stopped
