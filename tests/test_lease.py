"""The machine-wide slot pool: projects on one machine share its slots through leases in the user's state folder."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from nightlab.agent.config import SearchConfig, SlotsConfig, load_config
from nightlab.agent.engine import Engine, EngineOptions, open_store
from nightlab.sandbox import lease, runner
from nightlab.sandbox.lease import MachinePool
from nightlab.sandbox.slots import Slot
from nightlab.sandbox.spec import JobSpec

from helpers import git, make_repo, write_config

TWO = [Slot("cpu0", [0]), Slot("cpu1", [1])]


def test_two_projects_share_the_slots_and_a_dead_holder_frees_its_lease(tmp_path: Path) -> None:
    a, b = MachinePool(TWO, "/projects/a"), MachinePool(TWO, "/projects/b")
    got_a = a.acquire()
    got_b = b.acquire()
    assert got_a is not None and got_b is not None and got_a.id != got_b.id
    assert a.acquire() is None and b.acquire() is None  # the machine is full: nobody takes a third
    assert "held by other projects: /projects/b (1)" in a.waiting_text()
    # a lease whose holder died (kill -9 of an engine, say) is free: another project takes it
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = Path(b.lease_paths(got_b.id)[0])
    data = json.loads(path.read_text())
    data["holders"] = [[dead.pid, None]]
    path.write_text(json.dumps(data))
    again = a.acquire()
    assert again is not None and again.id == got_b.id
    a.release(got_a.id)
    assert b.acquire() is not None  # given back: free for the other project


def test_release_never_frees_another_projects_lease() -> None:
    a, b = MachinePool(TWO[:1], "/projects/a"), MachinePool(TWO[:1], "/projects/b")
    s = a.acquire()
    assert s is not None
    b.release(s.id)  # b never held it: a's lease stays
    assert b.acquire() is None
    a.release(s.id)
    assert b.acquire() is not None


def test_a_waiting_project_is_signalled_when_a_slot_is_given_back(tmp_path: Path) -> None:
    sig = tmp_path / "b-signal"
    a = MachinePool(TWO[:1], str(tmp_path))
    b = MachinePool(TWO[:1], str(tmp_path / "b"), signal_path=str(sig))
    (tmp_path / "b").mkdir()
    s = a.acquire()
    assert s is not None and b.acquire() is None
    assert list((lease.pool_dir() / "waiters").glob("*.json"))
    a.release(s.id)
    assert sig.exists() and "slot" in sig.read_text()
    assert b.acquire() is not None
    assert not list((lease.pool_dir() / "waiters").glob("*.json"))  # no longer waiting


def test_the_job_wrapper_holds_the_lease_while_it_runs_and_gives_it_back(tmp_path: Path) -> None:
    pool = MachinePool(TWO[:1], str(tmp_path / "proj"))
    slot = pool.acquire()
    assert slot is not None
    gate = tmp_path / "go"
    spec = JobSpec(job_id="1", argv=[sys.executable, "-c", f"import os,time\nwhile not os.path.exists({str(gate)!r}):"
                                                          " time.sleep(0.05)"],
                   cwd=str(tmp_path), run_dir=str(tmp_path / "run"), env={"PATH": "/usr/bin:/bin"}, timeout_s=60,
                   isolation="none", leases=pool.lease_paths(slot.id), lease_run=pool.run_of(slot.id))
    pids = runner.launch(spec)
    held = lease.read_lease(Path(spec.leases[0]))
    assert held is not None and held.holders == [(pids["wrapper_pid"], pids["wrapper_start"])]
    # the engine goes away (hibernates): the job's wrapper alone keeps the slot leased
    other = MachinePool(TWO[:1], "/projects/other")
    assert other.acquire() is None
    gate.touch()
    deadline = time.monotonic() + 30
    while runner.read_status(spec.run_dir) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    while Path(spec.leases[0]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(spec.leases[0]).exists()
    assert other.acquire() is not None


def _project(path: Path, command: str, cpus: int, budget: int) -> Path:
    root = make_repo(path, {"train.py": "print('acc=0.5')\n"})
    write_config(root, command=command, slots=SlotsConfig(cpus=cpus), search=SearchConfig(budget=budget))
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    return root


def test_a_session_waiting_for_another_projects_slot_says_so(tmp_path: Path) -> None:
    root = _project(tmp_path / "b", f"{sys.executable} train.py", cpus=1, budget=1)
    holder = MachinePool([Slot("cpu0", [0])], "/projects/a")
    held = holder.acquire()
    assert held is not None
    engine = Engine(root, load_config(root), options=EngineOptions(mode="autonomous", budget=1, poll_s=0.1))
    done: list[object] = []
    t = threading.Thread(target=lambda: done.append(engine.run()), daemon=True)
    t.start()
    store = open_store(root)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not [e for e in store.events() if e["kind"] == "slot_wait"]:
        time.sleep(0.05)
    waits = [e for e in store.events() if e["kind"] == "slot_wait"]
    assert waits and "/projects/a" in waits[0]["message"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
            c.startswith(lease.SLOT_WAIT) for c in (store.latest_session().wake_conditions or [])):  # type: ignore[union-attr]
        time.sleep(0.05)
    conds = store.latest_session().wake_conditions  # type: ignore[union-attr]
    assert any(c.startswith(lease.SLOT_WAIT) and "/projects/a" in c for c in conds), conds
    holder.release(held.id)  # the other project's job ended: this one goes on and finishes
    t.join(60)
    assert done and store.latest_session().state == "done"  # type: ignore[union-attr]
    assert [j.slot for j in store.jobs()] == ["cpu0"]


COUNTING_TRAIN = '''\
"""Counts the jobs running at once across projects (a shared file under flock); accuracy peaks at LR = 0.3."""
import fcntl, json, math, sys, time
LR = 0.05
path = sys.argv[1]
def bump(d):
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        s = json.loads(f.read() or '{"now": 0, "max": 0, "runs": 0}')
        s["now"] += d
        s["max"] = max(s["max"], s["now"])
        s["runs"] += d > 0
        f.seek(0); f.truncate(); f.write(json.dumps(s))
bump(1)
time.sleep(0.4)
bump(-1)
print(f"acc={0.9 - 0.25 * abs(math.log10(LR / 0.3)):.4f}")
'''


def test_two_projects_at_once_never_run_more_jobs_than_the_machine_has_slots(tmp_path: Path) -> None:
    """Two sessions on a machine with two CPU slots: never more than two jobs at a time, and both finish."""
    counter = tmp_path / "concurrency.json"
    roots = []
    for name in ("p1", "p2"):
        root = make_repo(tmp_path / name, {"train.py": COUNTING_TRAIN})
        write_config(root, command=f"{sys.executable} train.py {counter} --seed {{seed}}",
                     slots=SlotsConfig(cpus=2), search=SearchConfig(budget=4))
        git(root, "add", "nightlab.toml")
        git(root, "commit", "-q", "-m", "config")
        roots.append(root)
    runs = [subprocess.Popen([sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "4",
                              "--unsafe-no-sandbox"], cwd=r, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for r in roots]
    outs = [p.communicate(timeout=240)[0] for p in runs]
    assert all(p.returncode == 0 for p in runs), outs
    seen = json.loads(counter.read_text())
    assert seen["max"] <= 2, seen
    assert seen["now"] == 0
    for r in roots:
        store = open_store(r)
        assert store.latest_session().state == "done"  # type: ignore[union-attr]
        jobs = store.jobs()
        assert len(jobs) == 4 and len({j.experiment_id for j in jobs}) == 4  # nothing lost, nothing twice
    assert seen["runs"] == 8
    assert not list(lease.pool_dir().glob("*.json"))  # every lease given back
