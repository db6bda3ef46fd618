"""Pods run the project's Python as non-root users: every directory above it must be searchable.

On a developer machine the interpreter often lives under the 0700 home of root (pyenv, uv), so a
pod with `runAsUser` would fail with "Permission denied" at exec. The agent grants others the
search bit (`o+x`: traverse, never list or read) on exactly those directories, and says so.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def unsearchable_ancestors(paths: Iterable[Path]) -> list[Path]:
    """Directories above `paths` (after resolving links) that others cannot traverse."""
    found: list[Path] = []
    for path in paths:
        for ancestor in reversed(path.resolve().parents):
            if not ancestor.stat().st_mode & stat.S_IXOTH and ancestor not in found:
                found.append(ancestor)
    return found


def grant_search_access(paths: Iterable[Path]) -> list[Path]:
    """Add `o+x` where missing above `paths`; returns the directories changed."""
    changed = unsearchable_ancestors(paths)
    for directory in changed:
        directory.chmod(directory.stat().st_mode | stat.S_IXOTH)
        log.warning(
            "granted others search access (o+x) on %s so non-root pods can run the project's Python",
            directory,
        )
    return changed
