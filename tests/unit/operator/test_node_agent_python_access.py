"""Directories above the project's Python get o+x (search) when missing, and nothing more."""

import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetune_devtools.devstack.node_agent.python_access import grant_search_access, unsearchable_ancestors


@pytest.fixture
def searchable_tmp() -> Iterator[Path]:
    """A temporary directory whose ancestors are all searchable (pytest's own tmp_path is under 0700)."""
    path = Path(tempfile.mkdtemp(dir="/tmp"))
    yield path
    shutil.rmtree(path)


def test_only_missing_search_bits_are_added(searchable_tmp: Path) -> None:
    tmp_path = searchable_tmp
    home = tmp_path / "home"
    interpreter = home / "pyenv" / "bin" / "python3"
    interpreter.parent.mkdir(parents=True)
    interpreter.write_text("")
    tmp_path.chmod(0o755)
    home.chmod(0o700)
    (home / "pyenv").chmod(0o750)
    link = tmp_path / "venv-python"
    link.symlink_to(interpreter)  # a venv's python is a link into the interpreter's home
    assert unsearchable_ancestors([link]) == [home, home / "pyenv"]
    assert grant_search_access([link]) == [home, home / "pyenv"]
    assert stat.S_IMODE(home.stat().st_mode) == 0o701  # search only: still not listable by others
    assert stat.S_IMODE((home / "pyenv").stat().st_mode) == 0o751
    assert grant_search_access([link]) == []
