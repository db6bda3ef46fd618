"""The operator image as a cluster runs it: built from the Dockerfile, started by runc as the user its config
names on a read-only root filesystem, listed file by file, and kept within its committed size."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from image_harness import ROOT, Image, assert_within_size_limit, run_in_image

pytestmark = pytest.mark.e2e


def _site_packages(image: Image) -> Path:
    return image.rootfs / "opt" / "venv" / "lib" / "python3.11" / "site-packages"


def test_operator_image_declares_uid_1000_and_the_charts_command(operator_image: Image) -> None:
    # The chart's pod spec says runAsUser 1000 and spells out the same command as the ENTRYPOINT.
    assert operator_image.config["User"] == "1000:1000"
    assert operator_image.config["Entrypoint"] == ["kubetune", "operator"]
    chart = (ROOT / "charts" / "kubetune" / "templates" / "deployment.yaml").read_text()
    assert 'command: ["kubetune", "operator"]' in chart


def test_operator_image_answers_help_as_uid_1000_on_a_read_only_root(
    operator_image: Image, tmp_path: Path
) -> None:
    result = run_in_image(operator_image, ["kubetune", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for verb in ("operator", "crds"):
        assert verb in result.stdout

    probe = (
        "import errno, os\n"
        "try:\n"
        "    open('/opt/kubetune/written', 'w')\n"
        "except OSError as error:\n"
        "    print(os.getuid(), os.getgid(), errno.errorcode[error.errno])\n"
    )
    result = run_in_image(operator_image, ["python", "-c", probe], tmp_path)
    assert result.returncode == 0, result.stderr
    # EROFS, not EACCES: the root filesystem itself is read-only (as readOnlyRootFilesystem makes it).
    assert result.stdout.split() == ["1000", "1000", "EROFS"]


def test_operator_image_prints_the_committed_crds(operator_image: Image, tmp_path: Path) -> None:
    result = run_in_image(operator_image, ["kubetune", "crds"], tmp_path)
    assert result.returncode == 0, result.stderr
    printed = sorted(yaml.safe_load_all(result.stdout), key=lambda crd: crd["metadata"]["name"])
    committed = [yaml.safe_load(path.read_text()) for path in sorted((ROOT / "crds").glob("*.yaml"))]
    names = [crd["metadata"]["name"] for crd in printed]
    assert names == ["evaljobs.kubetune.io", "finetunejobs.kubetune.io"]
    assert printed == committed


def test_operator_image_holds_only_the_operator(operator_image: Image) -> None:
    rootfs = operator_image.rootfs
    site_packages = _site_packages(operator_image)
    # What it must hold: the operator's code and its locked dependencies.
    assert sorted(path.name for path in (rootfs / "opt" / "kubetune").iterdir()) == ["kubetune_operator"]
    package = rootfs / "opt" / "kubetune" / "kubetune_operator"
    assert {"api", "cli", "controller"} <= {path.name for path in package.iterdir()}
    assert (site_packages / "kopf").is_dir()
    assert (site_packages / "kubetune.pth").read_text().strip() == "/opt/kubetune"
    # What it must not: dev-only parts of the package (the local stack, the demo, the fakes), the
    # workloads' code and dependencies, dev and build tools.
    assert not {"devstack", "demo", "testing"} & {path.name for path in package.iterdir()}
    for absent in (
        "torch",
        "transformers",
        "pytest",
        "_pytest",
        "ruff",
        "mypy",
        "pip",
        "uv",
        "kubetune_devtools",
        "cryptography",
        "psutil",  # the dev tools and their own dependencies
    ):
        assert not (site_packages / absent).exists(), absent
    for tool in ("gcc", "cc", "c++", "make", "git", "pip", "pip3", "uv", "pytest"):
        for bin_dir in ("usr/bin", "usr/local/bin", "opt/venv/bin"):
            assert not (rootfs / bin_dir / tool).exists(), f"/{bin_dir}/{tool}"
    names = {path.name for path in rootfs.rglob("*") if "site-packages" not in path.parts}
    leaks = ("fake_workload.py", "fake_trainer.py", "conftest.py", "pyproject.toml", "uv.lock", ".venv")
    for leaked in leaks:
        assert leaked not in names, leaked
    # The build secret (a proxy's CA bundle) is mounted for the RUN steps only, never stored.
    for cache in ("root/.cache", "home/kubetune/.cache", "run/secrets/ca"):
        assert not (rootfs / cache).exists(), cache


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_operator_image_installs_exactly_the_locked_operator_extra(operator_image: Image) -> None:
    # /opt/requirements.txt is `uv export --extra operator` of uv.lock; the venv must hold those and no more.
    requirements = (operator_image.rootfs / "opt" / "requirements.txt").read_text()
    locked = {_normalized(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", requirements, re.M)}
    installed = {
        _normalized(path.name.split("-")[0]) for path in _site_packages(operator_image).glob("*.dist-info")
    }
    assert "kopf" in locked
    assert installed == locked


def test_operator_image_stays_within_its_committed_size(operator_image: Image) -> None:
    assert_within_size_limit("operator", operator_image)


def test_operator_image_still_serves_the_operator_after_its_trim(
    operator_image: Image, tmp_path: Path
) -> None:
    # The Dockerfile deletes kubernetes.aio and botocore's models of every service but S3: the operator's
    # handlers, the sync Kubernetes client and an S3 client (the memory preflight's) must still load.
    probe = (
        "import importlib.util\n"
        "import boto3, kubernetes.client, kubernetes.watch\n"
        "import kubetune_operator.controller.handlers, kubetune_operator.controller.memory_preflight\n"
        "s3 = boto3.client('s3', region_name='us-east-1', endpoint_url='http://127.0.0.1:9',\n"
        "                  aws_access_key_id='a', aws_secret_access_key='b')\n"
        "print(s3.meta.service_model.service_name, 'GetObject' in s3.meta.service_model.operation_names)\n"
        "print(importlib.util.find_spec('kubernetes.aio'))\n"
    )
    result = run_in_image(operator_image, ["python", "-c", probe], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["s3", "True", "None"]
    data = _site_packages(operator_image) / "botocore" / "data"
    assert sorted(path.name for path in data.iterdir() if path.is_dir()) == ["s3"]
