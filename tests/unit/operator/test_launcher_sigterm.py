"""Why the operator sets TORCH_ELASTIC_SHUTDOWN_TIMEOUT on trainer pods: the real `accelerate launch
--multi_gpu` (torch elastic) passes SIGTERM on to its processes and SIGKILLs them after that many seconds,
whatever the pod's grace period. Two CPU processes whose SIGTERM handler takes 3 s (a checkpoint) finish it
only when the timeout is longer."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

WORKER = """
import os, signal, sys, time
from pathlib import Path
out = Path(sys.argv[1])
rank = os.environ["RANK"]
def checkpoint(*_):
    time.sleep(3)
    (out / f"saved-{rank}").write_text("ok")
    sys.exit(143)
signal.signal(signal.SIGTERM, checkpoint)
(out / f"started-{rank}").write_text("ok")
while True:
    time.sleep(0.1)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop_launcher_after_start(tmp_path: Path, shutdown_timeout: int) -> int:
    """Saved checkpoints after SIGTERM to the launcher alone (as Kubernetes signals a container's PID 1)."""
    out = tmp_path / f"timeout-{shutdown_timeout}"
    out.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate is not None
    env = {**os.environ, "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(shutdown_timeout), "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(
        [accelerate, "launch", "--num_machines", "1", "--num_processes", "2", "--multi_gpu",
         "--main_process_port", str(_free_port()), str(script), str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("started-*"))) < 2:
            assert time.monotonic() < deadline, "the processes never started"
            assert launcher.poll() is None, "the launcher exited early"
            time.sleep(0.1)
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    return len(list(out.glob("saved-*")))


def test_torch_elastic_kills_a_checkpoint_longer_than_its_shutdown_timeout(tmp_path: Path) -> None:
    assert _stop_launcher_after_start(tmp_path, shutdown_timeout=1) == 0
    assert _stop_launcher_after_start(tmp_path, shutdown_timeout=20) == 2
