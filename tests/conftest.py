"""Session-wide rules for every test run.

In CI (CI=true, as .ci/run runs) a skipped test fails the run: every tool and package a test needs is
provided by the project (uv.lock, hack/tools), so a skip there means a missing install step, which must
fail loudly instead of hiding behind a green run.
"""

from __future__ import annotations

import os

import pytest

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true") and _skipped and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["CI forbids skipped tests (a skip here is a missing install step):", *_skipped]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
