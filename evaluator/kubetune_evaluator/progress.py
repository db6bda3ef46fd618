"""Where progress goes: a rich bar for `kubetune eval`, log lines (and gauges) in the pod."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("kubetune.evaluator")


class ProgressSink(Protocol):
    def stage(self, description: str, total: int) -> None: ...

    def advance(self, amount: int) -> None: ...


class LogProgress:
    """Logs each stage and every ~10% of it (pod logs stay short)."""

    def __init__(self) -> None:
        self._description = ""
        self._total = 0
        self._done = 0
        self._next_report = 0

    def stage(self, description: str, total: int) -> None:
        self._description, self._total, self._done = description, total, 0
        self._next_report = max(total // 10, 1)
        log.info("%s: %d items", description, total)

    def advance(self, amount: int) -> None:
        self._done += amount
        if self._done >= self._next_report or self._done == self._total:
            log.info("%s: %d/%d", self._description, self._done, self._total)
            self._next_report = self._done + max(self._total // 10, 1)
