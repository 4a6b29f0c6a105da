"""Shared fixtures for the top-level tests (helpers live in helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import TINY_TRAIN, git, make_repo, write_config


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj", {"train.py": TINY_TRAIN, "README.md": "# tiny\n"})


@pytest.fixture
def tiny_project(tiny_repo: Path) -> Path:
    write_config(tiny_repo)
    git(tiny_repo, "add", "nightlab.toml")
    git(tiny_repo, "commit", "-q", "-m", "nightlab config")
    return tiny_repo


@pytest.fixture(autouse=True)
def _isolate_user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep a developer's own config and caches out of the tests."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("NIGHTLAB_NO_TUI", "1")
    yield
