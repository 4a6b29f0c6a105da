"""Kill -9 torture test for hibernate-and-wake: nothing lost, nothing run twice, same result as uninterrupted.

An autonomous, detached session runs on a tiny deterministic task. At random moments we SIGKILL the engine (whoever
holds the project lock: `nightlab run`, or a `nightlab wake` started by a job wrapper) or a job wrapper (its job dies
with it), then resume with `nightlab wake`, as cron would. At the end we check: every experiment ran exactly once,
or was recorded lost and re-run once; no orphan processes; no orphan worktrees; `PRAGMA integrity_check` is ok; and
the final best equals that of an uninterrupted session with the same seeds. It also measures wake latency.

Usage: .venv/bin/python bench/torture.py [--kills 20] [--budget 12] [--seed 0]
The fast version runs in the test suite (tests/test_torture.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

TRAIN = '''\
import argparse, math, time
LR = 0.05
EPOCHS = 3
WIDTH = 16
p = argparse.ArgumentParser(); p.add_argument("--seed", type=int, default=0); seed = p.parse_args().seed
score = 0.9 - 0.2 * abs(math.log10(LR / 0.3)) - 0.3 / EPOCHS - 0.05 * abs(math.log2(WIDTH / 64)) + 0.001 * seed
for i in range(EPOCHS):
    print(f"epoch {i + 1} loss {1.0 / (i + 1) + (0.9 - score):.4f}", flush=True)
    time.sleep(DELAY)
print(f"acc={score:.4f}")
'''

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}


def make_project(root: Path, delay: float = 0.15, train: str = TRAIN) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(train.replace("DELAY", repr(delay)))
    env = {**os.environ, **GIT_ENV}
    for c in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "task"]):
        subprocess.run(c, cwd=root, check=True, env=env, capture_output=True)
    cfg = (f'command = "{sys.executable} train.py --seed {{seed}}"\ntimeout = 60\neditable = ["train.py"]\n'
           '[metric]\nname = "acc"\ngoal = "maximize"\n')
    (root / "nightlab.toml").write_text(cfg)
    return root


def nl(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nightlab", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=timeout)


def session_state(root: Path) -> str:
    db = root / ".nightlab" / "nightlab.db"
    if not db.exists():
        return "none"
    con = sqlite3.connect(db, timeout=30)
    try:
        row = con.execute("SELECT state FROM sessions ORDER BY id DESC LIMIT 1").fetchone()
        return str(row[0]) if row else "none"
    finally:
        con.close()


def engine_pid(root: Path) -> int | None:
    from nightlab.agent.lock import ProjectLock

    lock = ProjectLock(root / ".nightlab")
    if not lock.is_held():
        return None
    h = lock.holder()
    pid = h.get("pid") if h else None
    return int(str(pid)) if pid else None


def wrapper_pids(root: Path, first_attempts_only: bool = False) -> list[int]:
    """Live job wrappers. With first_attempts_only, skip re-runs of lost jobs: the engine re-runs a lost job once,
    so killing the re-run too would lose the experiment by design, and no uninterrupted session could match."""
    from nightlab.sandbox import runner

    out = []
    runs = root / ".nightlab" / "runs"
    if runs.exists():
        for d in runs.iterdir():
            if first_attempts_only and "." in d.name:
                continue
            pids = runner.read_pids(d)
            if pids and runner.read_status(d) is None and runner.wrapper_alive(d):
                out.append(int(pids["wrapper_pid"]))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "(gone)"


def project_processes(root: Path) -> list[int]:
    """Processes whose command line or working directory is inside the project (wrappers, jobs, engines)."""
    out = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            cwd = os.readlink(Path(entry.path, "cwd"))
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2:].startswith("Z"):
            continue
        if str(root) in cmd or cwd.startswith(str(root)):
            out.append(int(entry.name))
    return out


def wait_done(root: Path, timeout: float, each: Callable[[], object] | None = None) -> None:
    """Wait for the session to finish, waking it as cron would whenever nothing holds the lock for a while; `each`
    is called every round (a person answering the session's questions, say)."""
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    while time.monotonic() < deadline:
        if each is not None:
            each()
        if session_state(root) == "done" and engine_pid(root) is None and not wrapper_pids(root):
            return
        if engine_pid(root) is None and not wrapper_pids(root):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 0.5:
                nl(root, "wake", "--quiet")
                idle_since = None
        else:
            idle_since = None
        time.sleep(0.1)
    raise TimeoutError(f"session in {root} did not finish within {timeout:g} s (state {session_state(root)})")


@dataclass
class Report:
    kills_engine: int = 0
    kills_wrapper: int = 0
    experiments: int = 0
    ran_once: int = 0
    lost_rerun_once: int = 0
    lost_given_up: int = 0
    ran_twice: list[int] = field(default_factory=list)
    orphan_processes: list[int] = field(default_factory=list)
    orphan_worktrees: list[str] = field(default_factory=list)
    orphan_commands: list[str] = field(default_factory=list)
    integrity: str = ""
    best: float | None = None
    reference_best: float | None = None
    wake_latencies: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.ran_twice and not self.orphan_processes and not self.orphan_worktrees
                and self.integrity == "ok" and self.best == self.reference_best and self.best is not None)


def best_of(root: Path) -> float | None:
    data = json.loads(nl(root, "status", "--json").stdout)
    return data["best"]["metric"] if data.get("best") else None


def check(root: Path, rep: Report) -> Report:
    con = sqlite3.connect(root / ".nightlab" / "nightlab.db", timeout=30)
    try:
        rep.integrity = str(con.execute("PRAGMA integrity_check").fetchone()[0])
        exps = con.execute("SELECT id, status, attempts FROM experiments WHERE commit_sha IS NOT NULL "
                           "AND status != 'rejected'").fetchall()
        for eid, status, _attempts in exps:
            jobs = con.execute("SELECT state FROM jobs WHERE experiment_id = ?", (eid,)).fetchall()
            states = [j[0] for j in jobs]
            ended = states.count("ended")
            lost = states.count("lost")
            rep.experiments += 1
            if ended == 1 and lost == 0:
                rep.ran_once += 1
            elif ended == 1 and lost == 1:
                rep.lost_rerun_once += 1
            elif ended == 0 and lost == 2:  # lost, re-run once, lost again: recorded and given up on
                rep.lost_given_up += 1
            elif ended > 1 or lost > 1 or (ended == 0 and status not in ("proposed", "queued")):
                rep.ran_twice.append(eid)
        # wake latency: job end (status file) -> the engine's "finished"/"failed" event for it
        rows = con.execute("SELECT j.run_dir, e.t FROM jobs j JOIN events e ON e.experiment_id = j.experiment_id "
                           "WHERE j.state = 'ended' AND e.kind IN ('finished', 'failed')").fetchall()
        seen = set()
        for run_dir, t in rows:
            st = Path(run_dir) / "status.json"
            if st.exists() and run_dir not in seen:
                seen.add(run_dir)
                lat = float(t) - json.loads(st.read_text())["ended_at"]
                if 0 <= lat < 30:
                    rep.wake_latencies.append(lat)
    finally:
        con.close()
    wt = root / ".nightlab" / "worktrees"
    rep.orphan_worktrees = sorted(p.name for p in wt.iterdir()) if wt.exists() else []
    # An orphan is a process that stays: one still on its way out (the detached engine's last git call, a wrapper
    # writing its status) gets a few seconds to go before it counts.
    settle = time.monotonic() + 5
    while (left := project_processes(root)) and time.monotonic() < settle:
        time.sleep(0.2)
    rep.orphan_processes = left
    rep.orphan_commands = [_cmdline(pid) for pid in left]
    rep.best = best_of(root)
    return rep


def torture(workdir: Path, kills: int, budget: int, seed: int = 0, timeout: float = 600) -> Report:
    rng = random.Random(seed)
    ref = make_project(workdir / "reference", delay=0.05)
    assert nl(ref, "run", "--mode", "autonomous", "--budget", str(budget)).returncode == 0
    rep = Report(reference_best=best_of(ref))

    root = make_project(workdir / "tortured")
    p = nl(root, "run", "--mode", "autonomous", "--budget", str(budget), "--detach")
    assert p.returncode == 0, p.stderr
    deadline = time.monotonic() + timeout
    done = 0
    wakes: list[subprocess.Popen[bytes]] = []
    while done < kills and time.monotonic() < deadline and session_state(root) != "done":
        time.sleep(rng.uniform(0.05, 0.6))
        if rng.random() < 0.5:
            # a detached engine is awake only briefly (a wake between two jobs): catch one, at a random point
            t_end = time.monotonic() + 3
            while engine_pid(root) is None and time.monotonic() < t_end:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.25))
            pid = engine_pid(root)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                    rep.kills_engine += 1
                    done += 1
                except ProcessLookupError:
                    pass
        else:
            pids = wrapper_pids(root, first_attempts_only=True)
            if pids:
                try:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    rep.kills_wrapper += 1
                    done += 1
                except ProcessLookupError:
                    pass
        if engine_pid(root) is None and rng.random() < 0.5:
            # as cron would: in the background, so the woken engine can be killed too (waiting for it here would let
            # a woken engine run the rest of the session untouched)
            wakes.append(subprocess.Popen([sys.executable, "-m", "nightlab", "-C", str(root), "wake", "--quiet"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wakes = [w for w in wakes if w.poll() is None]
    for w in wakes:
        w.wait(timeout=max(30.0, deadline - time.monotonic()))
    wait_done(root, max(30.0, deadline - time.monotonic()))
    return check(root, rep)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--budget", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", help="work folder (default: a temp folder)")
    args = ap.parse_args()
    import tempfile

    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="nightlab-torture-"))
    t0 = time.monotonic()
    rep = torture(work, args.kills, args.budget, args.seed)
    lat = rep.wake_latencies
    print(f"kills: {rep.kills_engine} engine + {rep.kills_wrapper} job wrapper = "
          f"{rep.kills_engine + rep.kills_wrapper} (asked {args.kills}), budget {args.budget}, "
          f"{time.monotonic() - t0:.0f} s")
    print(f"experiments: {rep.experiments}: ran once {rep.ran_once}, lost and re-run once {rep.lost_rerun_once}, "
          f"lost twice and given up {rep.lost_given_up}, ran twice {len(rep.ran_twice)} {rep.ran_twice or ''}")
    print(f"orphan processes: {len(rep.orphan_processes)}, orphan worktrees: {len(rep.orphan_worktrees)}, "
          f"integrity_check: {rep.integrity}")
    print(f"final best {rep.best} vs uninterrupted {rep.reference_best}: "
          f"{'equal' if rep.best == rep.reference_best else 'DIFFERENT'}")
    if lat:
        print(f"wake latency (job exit -> engine reacts, n={len(lat)}): median {statistics.median(lat) * 1000:.0f} ms,"
              f" max {max(lat) * 1000:.0f} ms")
    print("OK" if rep.ok else "FAILED")
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
