"""The layer contracts of `make lint` (import-linter, [tool.importlinter] in pyproject.toml) hold on the
checkout and catch a forbidden import planted in a copy of it, also one hidden inside a function."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = {
    "operator": "kubetune_operator",
    "trainer": "kubetune_trainer",
    "evaluator": "kubetune_evaluator",
    "devtools": "kubetune_devtools",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for folder in PACKAGES:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # The copy's packages come first on sys.path, ahead of the editable install of the checkout.
    path = os.pathsep.join(str(tree / folder) for folder in PACKAGES)
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "lint-imports"),
            "--config",
            str(tree / "pyproject.toml"),
            "--no-cache",
        ],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_checkout_keeps_every_contract(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_function_level_import_of_kopf_in_the_trainer_breaks_its_contract(tree: Path) -> None:
    planted = tree / "trainer" / "kubetune_trainer" / "planted.py"
    planted.write_text("def sneak() -> None:\n    import kopf  # noqa: F401\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "The trainer never imports kopf" in result.stdout
    assert "BROKEN" in result.stdout
    assert "kubetune_trainer.planted -> kopf" in result.stdout


def test_torch_in_the_api_models_breaks_their_contract(tree: Path) -> None:
    common = tree / "operator" / "kubetune_operator" / "api" / "planted.py"
    common.write_text("import torch  # noqa: F401\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "kubetune_operator.api.planted -> torch" in result.stdout


def test_shipped_code_importing_the_dev_tools_breaks_its_contract(tree: Path) -> None:
    planted = tree / "operator" / "kubetune_operator" / "controller" / "planted.py"
    planted.write_text("from kubetune_devtools.devstack import binaries  # noqa: F401\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert (
        "Nothing shipped imports the development tools (the CLI finds them through an entry point) BROKEN"
        in " ".join(result.stdout.split())
    )
    assert "kubetune_operator.controller.planted -> kubetune_devtools.devstack" in result.stdout


@pytest.mark.parametrize(
    ("folder", "module", "line", "edge"),
    [
        # The evaluator reads data through the shared data layer, never through the trainer.
        (
            "evaluator/kubetune_evaluator",
            "kubetune_evaluator",
            "from kubetune_trainer import recipe",
            "kubetune_trainer.recipe",
        ),
        # The data layer stays torch-free: the operator image and the CLI import it.
        ("operator/kubetune_operator/data", "kubetune_operator.data", "import torch", "torch"),
    ],
)
def test_the_shared_data_layer_keeps_the_evaluator_off_the_trainer_and_torch_off_itself(
    tree: Path, folder: str, module: str, line: str, edge: str
) -> None:
    (tree / folder / "planted.py").write_text(f"{line}  # noqa: F401\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert f"{module}.planted -> {edge}" in result.stdout
