"""The kubetune wheel ships only the product: no local stack, node agent, demo, fakes or tiny-model builders.

The wheel is built with the locked setuptools' PEP 517 hook (no build isolation, so nothing is downloaded and
nothing floats), from a copy of the files it is built from.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEV_ONLY = ("kubetune_devtools", "devstack", "node_agent", "/demo/", "/testing/", "fake_", "tiny_models")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for folder in ("operator", "trainer", "evaluator", "devtools"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    out = source / "dist"
    subprocess.run(
        [sys.executable, "-c", f"import setuptools.build_meta as b; b.build_wheel({str(out)!r})"],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("kubetune-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_the_three_packages(wheel_files: list[str]) -> None:
    for module in (
        "kubetune_operator/controller/handlers.py",
        "kubetune_operator/api/contract.py",
        "kubetune_operator/cli/__init__.py",
        "kubetune_trainer/recipe.py",
        "kubetune_evaluator/runner.py",
    ):
        assert module in wheel_files


def test_the_wheel_holds_no_development_tools(wheel_files: list[str]) -> None:
    leaked = [name for name in wheel_files if any(marker in f"/{name}" for marker in DEV_ONLY)]
    assert leaked == []


def test_the_wheel_does_not_register_the_dev_commands(wheel: Path, wheel_files: list[str]) -> None:
    # `kubetune dev`/`kubetune demo` come from kubetune-devtools' entry point, not from kubetune's metadata.
    (entry_points,) = [name for name in wheel_files if name.endswith(".dist-info/entry_points.txt")]
    with zipfile.ZipFile(wheel) as archive:
        declared = archive.read(entry_points).decode()
    assert "kubetune = kubetune_operator.cli:main" in declared
    assert "kubetune.cli" not in declared
