"""The launcher really isolates a container: bind mounts, hosts file, hostname, uid, exit status.

No Kubernetes here: this starts real processes the way the agent does (needs root and `unshare`).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubetune_devtools.devstack.node_agent.pod_files import write_in_place
from kubetune_devtools.devstack.node_agent.process import (
    PodPaths,
    build_launch_spec,
    signal_group,
    start_process,
    termination_message,
)
from kubetune_devtools.devstack.node_agent.volumes import BindMount

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare (mount namespaces)"
)

SCRIPT = """
import os, socket
print(open('/etc/hosts').read().split()[-1])
print(socket.gethostname())
print(open('/mnt/kt-test-config/greeting').read())
print(os.getuid(), os.getgid(), os.getcwd())
open('/dev/termination-log', 'w').write('bye')
raise SystemExit(3)
"""


def launch(
    tmp_path: Path, argv: list[str], uid: int | None = None
) -> tuple[PodPaths, subprocess.Popen[bytes]]:
    paths = PodPaths.for_pod(tmp_path / "pods", "ns", "pod", "uid1")
    config = paths.volumes / "config"
    config.mkdir(parents=True)
    (config / "greeting").write_text("hello from configmap")
    paths.root.chmod(0o755)
    write_in_place(paths.hosts, "127.64.0.9 peer-0.workers\n")
    paths.container_dir("main").mkdir(parents=True)
    paths.termination_log("main").write_bytes(b"")
    if uid is not None:
        os.chown(paths.termination_log("main"), uid, uid)
    spec = build_launch_spec(
        argv=argv,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
        mounts=[
            BindMount(str(config), "/mnt/kt-test-config", read_only=True),
            BindMount(str(paths.hosts), "/etc/hosts", read_only=False),
            BindMount(str(paths.termination_log("main")), "/dev/termination-log", read_only=False),
        ],
        hostname="job-0",
        working_dir="/tmp",
        user=(uid, uid, []),
        start_error_path=paths.start_error("main"),
    )
    process = start_process(spec, paths.launch_spec("main"), paths.log("main"))
    return paths, process


def test_container_sees_its_mounts_hostname_and_user(tmp_path: Path) -> None:
    paths, process = launch(tmp_path, ["python3", "-c", SCRIPT], uid=1000)
    assert process.wait(timeout=30) == 3
    lines = paths.log("main").read_text().splitlines()
    assert lines[:4] == ["peer-0.workers", "job-0", "hello from configmap", "1000 1000 /tmp"]
    assert termination_message(paths, {"name": "main"}, 3) == "bye"
    assert not paths.launch_spec("main").exists()  # resolved secrets do not linger
    assert Path("/etc/hosts").read_text() != "127.64.0.9 peer-0.workers\n"  # the host's file is untouched


def test_missing_command_is_a_start_error(tmp_path: Path) -> None:
    paths, process = launch(tmp_path, ["no-such-command-kt"])
    assert process.wait(timeout=30) == 128
    assert "no-such-command-kt" in termination_message(paths, {"name": "main"}, 128)


def test_sigterm_reaches_the_process_group(tmp_path: Path) -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('got SIGTERM', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    paths, process = launch(tmp_path, ["python3", "-c", script])
    deadline = time.monotonic() + 20
    while "ready" not in paths.log("main").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    signal_group(process.pid, signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert "got SIGTERM" in paths.log("main").read_text()
