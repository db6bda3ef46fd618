"""Fixtures for the image tests (tests/image/image_harness.py builds, mounts and runs the images)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from image_harness import Image, build_and_mount


@pytest.fixture(scope="session")
def operator_image() -> Iterator[Image]:
    yield from build_and_mount("operator")


@pytest.fixture(scope="session")
def trainer_image() -> Iterator[Image]:
    yield from build_and_mount("trainer")


@pytest.fixture(scope="session")
def evaluator_image() -> Iterator[Image]:
    yield from build_and_mount("evaluator")
