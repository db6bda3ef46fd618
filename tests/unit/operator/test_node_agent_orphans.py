"""A container left running by a dead agent is stopped by the next one; unrelated pids are not."""

import json
import subprocess
from pathlib import Path

from kubetune_devtools.devstack.node_agent.orphans import PID_FILE, record_process, stop_orphans


def test_recorded_live_container_is_stopped_and_stale_records_are_dropped(tmp_path: Path) -> None:
    live = tmp_path / "ns_pod_uid" / "containers" / "main"
    stale = tmp_path / "ns_old_uid" / "containers" / "main"
    live.mkdir(parents=True)
    stale.mkdir(parents=True)
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        record_process(live, orphan.pid)
        # Same pid as a running process but another start time: a recycled pid, not ours to kill.
        (stale / PID_FILE).write_text(json.dumps({"pid": bystander.pid, "create_time": 1.0}))
        assert stop_orphans(tmp_path) == 1
        assert orphan.wait(timeout=10) == -9
        assert bystander.poll() is None
        assert not (live / PID_FILE).exists()
        assert not (stale / PID_FILE).exists()
    finally:
        for process in (orphan, bystander):
            process.kill()
            process.wait()
