"""The fresh-machine check (hack/verify-pins.sh) passes on the committed pins and fails, naming the file,
as soon as one line of a go.sum or of uv.lock is missing. Runs against the real `go` and the project's
pinned `uv` with warm caches (`make test` builds the tools and the environment first)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def project_uv() -> Path:
    """The uv that `make setup` installs (version from hack/uv-requirements.txt, under the cache)."""
    version = re.search(r"^uv==([0-9.]+) ", (ROOT / "hack" / "uv-requirements.txt").read_text(), re.M)
    assert version is not None, "hack/uv-requirements.txt pins no uv version"
    cache = Path(os.environ.get("KUBETUNE_CACHE") or Path.home() / ".cache" / "kubetune")
    uv = cache / f"uv-{version.group(1)}" / "bin" / "uv"
    assert uv.is_file(), f"{uv} missing: run `make setup`"
    return uv


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what the check reads: hack/, pyproject.toml, uv.lock, the dev tools' workspace member."""
    shutil.copytree(ROOT / "hack", tmp_path / "hack", ignore=shutil.ignore_patterns("vendor"))
    shutil.copytree(ROOT / "devtools", tmp_path / "devtools", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def verify(checkout: Path) -> subprocess.CompletedProcess[str]:
    # helm's module is the quickest to walk; every tool goes through the same loop.
    env = {**os.environ, "UV": str(project_uv()), "VERIFY_GO_TOOLS": "helm"}
    return subprocess.run(
        ["bash", str(checkout / "hack" / "verify-pins.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def delete_line(path: Path, pattern: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines.pop(next(i for i, line in enumerate(lines) if re.search(pattern, line)))
    path.write_text("".join(lines))


def test_committed_pins_pass(checkout: Path) -> None:
    result = verify(checkout)
    assert result.returncode == 0, result.stderr


def test_a_missing_go_sum_line_fails_naming_the_file(checkout: Path) -> None:
    # The checksum of a module whose packages helm is built from.
    delete_line(checkout / "hack" / "tools" / "helm" / "go.sum", r"^github\.com/spf13/cobra \S+ h1:")
    result = verify(checkout)
    assert result.returncode != 0
    assert "hack/tools/helm/go.sum" in result.stderr
    assert "missing go.sum entry" in result.stderr


def test_a_missing_uv_lock_line_fails_naming_the_file(checkout: Path) -> None:
    # A dependency edge that `uv lock --check` alone would accept.
    lock = checkout / "uv.lock"
    start = lock.read_text().index('name = "accelerate"\n')
    text = lock.read_text()
    edge = text.index('    { name = "packaging" },\n', start)
    lock.write_text(text[:edge] + text[edge + len('    { name = "packaging" },\n') :])
    result = verify(checkout)
    assert result.returncode != 0
    assert "uv.lock differs" in result.stderr
