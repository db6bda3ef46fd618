"""The chart's image values, the Dockerfile targets, the API's default images and the project version
move together."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from kubetune_operator.api.evaljob import DEFAULT_EVALUATOR_IMAGE
from kubetune_operator.api.finetunejob import DEFAULT_TRAINER_IMAGE

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "kubetune"


def _project_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert isinstance(version, str)
    return version


def _dockerfile_targets() -> set[str]:
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", (ROOT / "Dockerfile").read_text(), re.MULTILINE))


def test_dockerfile_builds_the_three_images() -> None:
    assert {"operator", "trainer", "evaluator"} <= _dockerfile_targets()


def test_chart_version_and_app_version_are_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == _project_version()
    assert chart["version"] == _project_version()


def test_operator_image_is_the_operator_target_tagged_with_the_app_version() -> None:
    image = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    repository, target = image["repository"].rsplit("/", 1)
    assert (repository, target) == ("kubetune", "operator")
    assert target in _dockerfile_targets()
    # An empty tag means the chart's appVersion (templates/_helpers.tpl), i.e. the project version.
    assert image["tag"] == ""


def test_default_workload_images_are_dockerfile_targets_of_this_version() -> None:
    for image, target in ((DEFAULT_TRAINER_IMAGE, "trainer"), (DEFAULT_EVALUATOR_IMAGE, "evaluator")):
        assert image == f"kubetune/{target}:{_project_version()}"
        assert target in _dockerfile_targets()
