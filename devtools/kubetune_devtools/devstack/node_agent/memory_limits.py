"""Container memory limits through the cgroup v1 memory controller, and OOM-kill detection.

Each container with `resources.limits.memory` gets its own memory cgroup under the agent's; the
launcher joins it before exec. The kernel's OOM killer then acts as on a real node, and the
cgroup's `oom_kill` counter tells an OOM kill apart from any other SIGKILL. Where the controller is
not writable, limits are not enforced (logged once) and the agent falls back to a heuristic.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)

MEMORY_ROOT = Path("/sys/fs/cgroup/memory")
AGENT_GROUP = "kubetune-node-agent"


def _own_memory_group(proc_cgroup: str) -> str:
    """The agent's memory cgroup path from /proc/self/cgroup text ("4:memory:/some/path")."""
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path.lstrip("/")
    return ""


class MemoryCgroups:
    def __init__(self, root: Path = MEMORY_ROOT) -> None:
        self._base: Path | None = None
        try:
            own = _own_memory_group(Path("/proc/self/cgroup").read_text())
            base = root / own / AGENT_GROUP
            base.mkdir(parents=True, exist_ok=True)
            self._base = base
        except OSError as error:
            log.warning("memory limits will not be enforced: no writable memory cgroup (%s)", error)

    def create(self, name: str, limit_bytes: int) -> Path | None:
        """A cgroup limited to `limit_bytes`, or None where cgroups are unavailable."""
        if self._base is None:
            return None
        group = self._base / name
        try:
            group.mkdir(exist_ok=True)
            (group / "memory.limit_in_bytes").write_text(str(limit_bytes))
        except OSError as error:
            log.warning("memory limit of %s not enforced: %s", name, error)
            return None
        return group

    @staticmethod
    def oom_killed(group: Path) -> bool:
        try:
            control = (group / "memory.oom_control").read_text()
        except OSError:
            return False
        counters = dict(line.split() for line in control.splitlines() if len(line.split()) == 2)
        return int(counters.get("oom_kill", "0")) > 0

    @staticmethod
    def remove(group: Path) -> None:
        with contextlib.suppress(OSError):  # still busy (a leftover process): left for the next agent
            group.rmdir()
