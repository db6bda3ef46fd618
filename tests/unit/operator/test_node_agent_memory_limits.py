"""Memory cgroups: the agent's own group is found, limits are written, OOM kills are read back."""

from pathlib import Path

from kubetune_devtools.devstack.node_agent.memory_limits import AGENT_GROUP, MemoryCgroups, _own_memory_group


def test_own_group_is_read_from_proc_self_cgroup() -> None:
    text = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n"
    assert _own_memory_group(text) == "process_api/abc"
    assert _own_memory_group("1:cpu:/x\n") == ""


def test_limit_written_and_oom_kill_counter_read(tmp_path: Path) -> None:
    groups = MemoryCgroups(root=tmp_path)
    group = groups.create("uid_main", 64 * 1024 * 1024)
    assert group is not None
    assert group.parent.name == AGENT_GROUP
    assert (group / "memory.limit_in_bytes").read_text() == str(64 * 1024 * 1024)
    (group / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert not MemoryCgroups.oom_killed(group)
    (group / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert MemoryCgroups.oom_killed(group)
