"""Pod files: hosts files rewritten in place (bind mounts see the change), volumes with modes."""

import stat
from pathlib import Path

from kubetune_devtools.devstack.node_agent.pod_files import write_in_place, write_volume
from kubetune_devtools.devstack.node_agent.volumes import VolumePlan


def test_rewrite_keeps_the_inode_and_shrinks_the_file(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    assert write_in_place(hosts, "127.64.0.1 a.b\n127.64.0.2 c.d\n")
    inode = hosts.stat().st_ino
    assert write_in_place(hosts, "127.64.0.3 e.f\n")
    assert hosts.stat().st_ino == inode  # a running pod's bind mount keeps seeing this file
    assert hosts.read_text() == "127.64.0.3 e.f\n"
    assert not write_in_place(hosts, "127.64.0.3 e.f\n")  # unchanged: not rewritten


def test_volume_files_get_their_modes_and_empty_dirs_are_world_writable(tmp_path: Path) -> None:
    plan = VolumePlan(files={"a/token": (b"t", 0o400), "ca.crt": (b"c", 0o644)})
    root = Path(write_volume(plan, tmp_path / "creds", fs_group=None))
    assert (root / "a" / "token").read_bytes() == b"t"
    assert stat.S_IMODE((root / "a" / "token").stat().st_mode) == 0o400
    scratch = Path(write_volume(VolumePlan(empty_dir=True), tmp_path / "scratch", fs_group=None))
    assert stat.S_IMODE(scratch.stat().st_mode) == 0o777
    assert write_volume(VolumePlan(host_path="/data"), tmp_path / "host", fs_group=None) == "/data"
