"""Object keys from S3 never become paths outside the download folder (pure path check, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetune_operator.data.errors import KubetuneError, UnsafeObjectKeyError
from kubetune_operator.data.storage import safe_local_target


@pytest.mark.parametrize(
    "relative",
    [
        "../escape",
        "../../escape",
        "a/../../escape",
        "a/..",
        "/abs/path",
        "/etc/passwd",
        "a//b",
        "./config.json",
        "a/./b",
        "",
        "..",
        "a\\..\\..\\b",
        "a\x00b",
    ],
)
def test_keys_that_leave_the_folder_are_refused_by_name(tmp_path: Path, relative: str) -> None:
    key = f"models/base/{relative}"
    with pytest.raises(UnsafeObjectKeyError) as caught:
        safe_local_target(tmp_path / "download", relative, key=key)
    assert repr(key) in str(caught.value)
    # A KubetuneError: the trainer's entry point reports it as bad input (exit 2), not a traceback.
    assert isinstance(caught.value, KubetuneError)


@pytest.mark.parametrize(
    "relative", ["config.json", "sub/dir/model.safetensors", "a..b/c", "..hidden", "name with spaces.txt"]
)
def test_plain_relative_keys_land_inside(tmp_path: Path, relative: str) -> None:
    folder = tmp_path / "download"
    target = safe_local_target(folder, relative)
    assert target == (folder / relative).resolve()
    assert target.is_relative_to(folder.resolve())


def test_a_symlink_in_the_folder_cannot_lead_outside(tmp_path: Path) -> None:
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UnsafeObjectKeyError, match="resolves outside"):
        safe_local_target(folder, "link/file.txt", key="p/link/file.txt")
