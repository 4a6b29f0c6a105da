"""Hibernate and wake: a detached session sleeps while jobs run, wakes when they end or a human answers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from nightlab.agent.config import NotifyConfig
from nightlab.agent.engine import open_store
from nightlab.agent.lock import ProjectLock

from helpers import write_config


def nl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=root, capture_output=True, text=True,
                          timeout=120)


def wait_for(cond, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_detached_step_session_notifies_and_wakes_on_approval(tiny_project: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox.txt"
    notifier = tmp_path / "notify.sh"
    notifier.write_text(f'#!/bin/sh\necho "$1" >> {inbox}\n')
    notifier.chmod(0o755)
    write_config(tiny_project, notify=NotifyConfig(command=str(notifier)))
    # step mode, detached: the baseline runs, then the first proposal waits for a human
    p = nl(tiny_project, "run", "--mode", "step", "--budget", "4", "--detach")
    assert p.returncode == 0 and "hibernating" in p.stdout, p.stderr
    store = open_store(tiny_project)
    lock = ProjectLock(tiny_project / ".nightlab")
    wait_for(lambda: any(a.kind == "hypothesis" for a in store.approvals("pending")) and not lock.is_held())
    status = json.loads(nl(tiny_project, "status", "--json").stdout)
    assert status["session"]["state"] == "hibernating"
    assert any(c.startswith("approval") for c in status["session"]["wake_conditions"])
    wait_for(lambda: inbox.exists() and "waits for your approval" in inbox.read_text())
    exp_id = next(a.experiment_id for a in store.approvals("pending") if a.kind == "hypothesis")
    # approving from another shell starts the engine again, which runs the approved experiment
    assert nl(tiny_project, "approve", str(exp_id)).returncode == 0
    wait_for(lambda: store.experiment(exp_id).status in ("kept", "discarded", "failed"))
    assert store.experiment(exp_id).run_result is not None


def test_wake_is_idempotent_and_safe_any_time(tiny_project: Path) -> None:
    assert nl(tiny_project, "wake").returncode == 0  # nothing to wake yet
    assert nl(tiny_project, "run", "--mode", "autonomous", "--budget", "3", "--detach").returncode == 0
    for _ in range(3):
        assert nl(tiny_project, "wake", "--quiet").returncode == 0
    store = open_store(tiny_project)
    lock = ProjectLock(tiny_project / ".nightlab")
    wait_for(lambda: getattr(store.latest_session(), "state", "") == "done" and not lock.is_held())
    jobs = store.jobs()
    assert len(jobs) == 3 and len({j.experiment_id for j in jobs}) == 3  # nothing ran twice
    assert nl(tiny_project, "wake").returncode == 0
    assert len(store.jobs()) == 3
