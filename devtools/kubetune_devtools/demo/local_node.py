"""A local-stack quirk the demo works around: pods share this machine's /tmp.

The node agent runs pods as local processes (uid 1000 under the chart's restricted security context) without
a private /tmp, and the trainer's default work directory is `<tmp>/kubetune`. When a local run as another
user (e.g. `kubetune train` as root) created that directory first, the pods cannot write there and the
FineTuneJob fails with PermissionError. Making it world-writable with the sticky bit, like /tmp itself,
fixes that without touching anyone's files.
"""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

STICKY_WORLD_WRITABLE = 0o1777


def shared_work_dir() -> Path:
    return Path(tempfile.gettempdir()) / "kubetune"


def ensure_pods_can_write(path: Path | None = None) -> bool:
    """Create or open up the shared work directory; True when its mode was changed."""
    path = path or shared_work_dir()
    path.mkdir(exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) == STICKY_WORLD_WRITABLE:
        return False
    path.chmod(STICKY_WORLD_WRITABLE)
    return True
