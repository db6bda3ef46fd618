"""What of a pod's directory goes with the pod (everything it wrote or was given) and what stays (logs)."""

from __future__ import annotations

from pathlib import Path

from kubetune_devtools.devstack.node_agent.process import PodPaths


def test_a_deleted_pod_leaves_only_its_logs(tmp_path: Path) -> None:
    paths = PodPaths.for_pod(tmp_path, "ns", "pod", "uid1")
    for path in (
        paths.volumes / "scratch" / "model.bin",
        paths.home / ".cache" / "x",
        paths.container_dir("main") / "tmp" / "marker",
        paths.termination_log("main"),
        paths.hosts,
        paths.log("main"),
        paths.previous_log("main"),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    paths.remove_pod_files()
    assert sorted(p.name for p in paths.root.iterdir()) == ["main.log", "main.previous.log"]
