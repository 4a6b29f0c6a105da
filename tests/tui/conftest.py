"""Fixtures for the TUI tests: tiny projects in temp dirs, a populated store, and no user config leaking in."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tuikit import Populated, clone, make_project, populate


@pytest.fixture(autouse=True)
def _own_xdg_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point XDG_CONFIG_HOME at an empty temp dir so a developer's tui.toml (keys, theme) never changes a test."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    yield home / "config"


@pytest.fixture(autouse=True)
def _no_real_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own GPUs never show in a test's screen (snapshots stay the same on a GPU box); tests that
    want GPU state hand the app a reader of their own."""
    from nightlab.sandbox import gpustats

    monkeypatch.setattr(gpustats, "read_gpus", lambda: [])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Populated]:
    """One populated project per test run; tests get clones of it."""
    root = make_project(tmp_path_factory.mktemp("template") / "proj")
    return root, populate(root)


@pytest.fixture
def populated(template: tuple[Path, Populated], tmp_path: Path) -> tuple[Path, Populated]:
    return clone(template[0], tmp_path / "proj"), template[1]


@pytest.fixture
def engine_lock(populated: tuple[Path, Populated]) -> Iterator[None]:
    """Hold the project lock as an engine would: approvals then wake it (via the signal) instead of spawning one."""
    from nightlab.agent.lock import ProjectLock

    lock = ProjectLock(populated[0] / ".nightlab")
    lock.acquire("test engine")
    yield
    lock.release()
