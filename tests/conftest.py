"""Shared fixtures for the top-level tests (helpers live in helpers.py)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import TINY_TRAIN, git, make_repo, write_config

# The machine-wide slot leases and the registry of projects live in the user's state and data folders. Session-scoped
# fixtures run engines before any per-test fixture can point those elsewhere, so the whole test process gets folders
# of its own here: a test run never waits for (or registers into) the slots and projects of the user or of another
# test run on the same machine.
_RUN_HOME = tempfile.mkdtemp(prefix="nightlab-test-home-")
os.environ["XDG_STATE_HOME"] = os.path.join(_RUN_HOME, "state")
os.environ["XDG_DATA_HOME"] = os.path.join(_RUN_HOME, "data")
atexit.register(shutil.rmtree, _RUN_HOME, True)
# The suite sees a machine without GPUs, also where it runs on one that has them (a user's GPU box, the GPU check):
# with GPUs nightlab gives each job one and shows them, so slots, screens and the catalogue's CPU failures would
# differ by machine. Tests of the GPU paths show GPUs of their own (a fake nvidia-smi or NVML, `[slots] gpus`) and
# drop this; the one that needs the real device (test_instrument) shows it again.
os.environ["CUDA_VISIBLE_DEVICES"] = ""


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj", {"train.py": TINY_TRAIN, "README.md": "# tiny\n"})


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder an unprivileged user may enter (pytest's own is root's alone): for tests run as another user too."""
    d = Path(tempfile.mkdtemp(prefix="nightlab-as-user-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


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
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))  # machine-wide slot leases
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))  # the registry of projects
    monkeypatch.setenv("NIGHTLAB_NO_TUI", "1")
    yield


def _shared_scheduler(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    import clusters

    why = clusters.slurm_missing() if kind == "slurm" else clusters.ray_missing()
    if why:
        pytest.skip(why)
    # the parent of the per-worker base temp is shared by every pytest-xdist worker of this run
    base = tmp_path_factory.getbasetemp().parent if os.environ.get("PYTEST_XDIST_WORKER") else \
        tmp_path_factory.getbasetemp()
    info = clusters.acquire(kind, base)
    try:
        if "error" in info:
            pytest.fail(f"the {kind} test cluster did not start: {info['error']}")
        yield info
    finally:
        clusters.release(kind, base)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A single-node SLURM on 127.0.0.1, started once per test run (shared by the xdist workers)."""
    yield from _shared_scheduler("slurm", tmp_path_factory)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A Ray head on 127.0.0.1 (every listener on loopback), started once per test run."""
    yield from _shared_scheduler("ray", tmp_path_factory)


def _kill_watches(under: str) -> None:
    """SIGKILL every hibernating session's watch (agent/sentinel.py) whose project lies under `under`."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = Path(entry.path, "cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if "nightlab.agent.sentinel" in cmd and under in cmd:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(autouse=True)
def _no_watch_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """A session left hibernating keeps its watch (agent/sentinel.py: early stopping, a cluster's lost jobs) for as
    long as it waits, and a test's folder outlives the test: the watch goes with the test that started it."""
    tmp = str(request.getfixturevalue("tmp_path")) if "tmp_path" in request.fixturenames else None
    yield
    if tmp is not None:
        _kill_watches(tmp)


@pytest.fixture(autouse=True, scope="session")
def _no_watch_outlives_the_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same for projects of session-scoped fixtures, at the end of the run."""
    yield
    _kill_watches(str(tmp_path_factory.getbasetemp()))
