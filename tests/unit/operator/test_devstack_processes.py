"""Pid-file process handling and the wait loop, with real processes (no cluster needed)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from kubetune_devtools.devstack.probes import WaitTimeoutError, wait_for
from kubetune_devtools.devstack.processes import running_process, start_process, stop_process


def test_start_find_and_stop_a_detached_process(tmp_path: Path) -> None:
    pid_file, log = tmp_path / "sleeper.json", tmp_path / "sleeper.log"
    pid = start_process(
        [sys.executable, "-c", "print('hi', flush=True); import time; time.sleep(60)"], log, pid_file
    )
    process = running_process(pid_file)
    assert process is not None and process.pid == pid
    wait_for(lambda: "hi" in log.read_text(), 10, "the child's output in its log")
    assert stop_process(pid_file, grace_seconds=5)
    assert running_process(pid_file) is None
    assert not pid_file.exists()
    assert not stop_process(pid_file), "stopping twice must be a no-op"


def test_a_recycled_pid_is_not_mistaken_for_our_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "stale.json"
    # Our own pid, but with another start time: as if the recorded process died and the pid was reused.
    pid_file.write_text(json.dumps({"pid": os.getpid(), "create_time": 1.0, "argv": ["etcd"]}))
    assert running_process(pid_file) is None
    assert not stop_process(pid_file)


def test_corrupt_pid_file_means_not_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "bad.json"
    pid_file.write_text("not json")
    assert running_process(pid_file) is None


def test_wait_for_returns_the_first_truthy_value() -> None:
    calls = iter([None, 0, {"phase": "Running"}])
    assert wait_for(lambda: next(calls), 5, "a value", interval=0.01) == {"phase": "Running"}


def test_wait_for_timeout_names_what_it_waited_for_and_the_last_error() -> None:
    def refuses() -> bool:
        raise ConnectionRefusedError("port 16443")

    started = time.monotonic()
    with pytest.raises(WaitTimeoutError, match=r"the API server .*ConnectionRefusedError.*16443"):
        wait_for(refuses, 0.3, "the API server", interval=0.05)
    assert time.monotonic() - started < 2
