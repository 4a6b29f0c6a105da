"""Kill -9 after every write to the store, one write per trial: the exhaustive companion of bench/torture.py.

The torture bench kills at random moments, so a window between two writes that belong together is hit only by
chance (the CI hit one once: a launch's attempt recorded, the budget it spends not). Here trial k runs a session
whose engine kills itself (SIGKILL) right after its k-th write to the store — inside a transaction that write is
never committed, which is the point — then wakes it as cron would, until the session is done. Each trial is compared
with an uninterrupted session of the same project: every experiment ran once (or was lost and re-run once), the
budget was spent exactly, the experiments and their results are the same ones in the same order, the final best is
the same, `PRAGMA integrity_check` is ok and no worktree is left behind.

The project runs one job at a time (`[search] parallel = 1`), so an uninterrupted session is deterministic and any
difference is the crash's doing.

Usage: .venv/bin/python bench/crash_points.py [--budget 4] [--first 1] [--last 0 (= every write)] [--every 1]
The fast version runs in the test suite (tests/test_crash_points.py samples a few points).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.torture import make_project, wait_done

# Runs `nightlab ARGS...` in a process that counts the store's writes and kills itself right after the k-th one
# (k from NIGHTLAB_KILL_AT_WRITE; 0 counts only). The count goes to NIGHTLAB_WRITES_FILE at exit.
KILLER = """
import atexit, os, signal, sys
from nightlab.agent import store
k = int(os.environ["NIGHTLAB_KILL_AT_WRITE"])
n = [0]
def counted(orig):
    def write(self, *args, **kwargs):
        out = orig(self, *args, **kwargs)
        n[0] += 1
        if n[0] == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return write
store.Store._insert = counted(store.Store._insert)
store.Store._update = counted(store.Store._update)
atexit.register(lambda: open(os.environ["NIGHTLAB_WRITES_FILE"], "w").write(str(n[0])))
from nightlab.cli import main
sys.exit(main())
"""

CONFIG_EXTRA = "\n[search]\nparallel = 1\n"


@dataclass
class Outcome:
    """What a finished session left: its experiments in order, the budget spent, the store's health."""

    experiments: list[tuple[str, float | None, str]] = field(default_factory=list)  # title, metric, status
    runs_started: int = 0
    best: float | None = None
    ran_twice: list[int] = field(default_factory=list)
    integrity: str = ""
    worktrees: list[str] = field(default_factory=list)


@dataclass
class Trial:
    k: int
    killed: bool
    outcome: Outcome
    problems: list[str]
    seconds: float


def project(root: Path, delay: float) -> Path:
    make_project(root, delay=delay)
    with (root / "nightlab.toml").open("a") as f:
        f.write(CONFIG_EXTRA)
    return root


def run_killed(root: Path, budget: int, k: int, timeout: float = 120) -> tuple[int, int]:
    """`nightlab run` killing itself after write k (0: never); its exit code and the writes it counted (-1 when it
    was killed before it could say)."""
    count = root.parent / f"{root.name}.writes"
    env = {**os.environ, "NIGHTLAB_KILL_AT_WRITE": str(k), "NIGHTLAB_WRITES_FILE": str(count)}
    p = subprocess.run([sys.executable, "-c", KILLER, "-C", str(root), "run", "--mode", "autonomous", "--budget",
                        str(budget)], env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, int(count.read_text()) if count.exists() else -1


def outcome(root: Path) -> Outcome:
    out = Outcome()
    con = sqlite3.connect(root / ".nightlab" / "nightlab.db", timeout=30)
    try:
        out.integrity = str(con.execute("PRAGMA integrity_check").fetchone()[0])
        out.runs_started = int(con.execute("SELECT runs_started FROM sessions ORDER BY id DESC LIMIT 1").fetchone()[0])
        for eid, title, metric, status in con.execute(
                "SELECT id, title, metric, status FROM experiments "
                "WHERE commit_sha IS NOT NULL AND status != 'rejected' ORDER BY id"):
            out.experiments.append((str(title), metric, str(status)))
            states = [s for (s,) in con.execute("SELECT state FROM jobs WHERE experiment_id = ?", (eid,))]
            if states.count("ended") > 1 or states.count("lost") > 1:
                out.ran_twice.append(int(eid))
        metrics = [m for _, m, s in out.experiments if m is not None and s == "kept"]
        out.best = max(metrics) if metrics else None
    finally:
        con.close()
    wt = root / ".nightlab" / "worktrees"
    out.worktrees = sorted(p.name for p in wt.iterdir()) if wt.exists() else []
    return out


def compare(got: Outcome, ref: Outcome, budget: int) -> list[str]:
    problems = []
    if got.integrity != "ok":
        problems.append(f"integrity_check: {got.integrity}")
    if got.runs_started != budget:
        problems.append(f"budget {budget}, runs counted {got.runs_started}")
    if len(got.experiments) != len(ref.experiments):
        problems.append(f"{len(got.experiments)} experiments, uninterrupted {len(ref.experiments)}")
    elif got.experiments != ref.experiments:
        first = next(i for i, (a, b) in enumerate(zip(got.experiments, ref.experiments, strict=True)) if a != b)
        problems.append(f"experiment {first + 1} differs: {got.experiments[first]} vs {ref.experiments[first]}")
    if got.best != ref.best:
        problems.append(f"best {got.best} vs uninterrupted {ref.best}")
    if got.ran_twice:
        problems.append(f"ran twice: {got.ran_twice}")
    if got.worktrees:
        problems.append(f"worktrees left: {got.worktrees}")
    return problems


def trial(work: Path, budget: int, k: int, ref: Outcome, delay: float) -> Trial:
    t0 = time.monotonic()
    root = project(work / f"k{k}", delay)
    code, _ = run_killed(root, budget, k)
    killed = code == -9
    if killed:
        wait_done(root, 120)
    got = outcome(root)
    return Trial(k, killed, got, compare(got, ref, budget), time.monotonic() - t0)


def reference(work: Path, budget: int, delay: float) -> tuple[Outcome, int]:
    """An uninterrupted session and the number of writes it made."""
    root = project(work / "reference", delay)
    code, writes = run_killed(root, budget, 0)
    assert code == 0, f"the uninterrupted session failed ({code})"
    return outcome(root), writes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--budget", type=int, default=4)
    ap.add_argument("--first", type=int, default=1, help="the first write to kill after")
    ap.add_argument("--last", type=int, default=0, help="the last (0: every write the uninterrupted session made)")
    ap.add_argument("--every", type=int, default=1, help="kill after every n-th write only")
    ap.add_argument("--delay", type=float, default=0.05, help="seconds per epoch of the tiny training job")
    ap.add_argument("--dir", help="work folder (default: a temp folder)")
    args = ap.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="nightlab-crash-points-"))
    t0 = time.monotonic()
    ref, writes = reference(work, args.budget, args.delay)
    last = args.last or writes
    print(f"uninterrupted: {len(ref.experiments)} experiments, best {ref.best}, {writes} writes to the store")
    bad = 0
    trials = 0
    for k in range(args.first, last + 1, args.every):
        t = trial(work, args.budget, k, ref, args.delay)
        trials += 1
        if t.problems:
            bad += 1
        print(f"kill after write {k:3d}: {'killed' if t.killed else 'ended before it'}, {t.seconds:4.1f} s: "
              f"{'; '.join(t.problems) or 'same as uninterrupted'}", flush=True)
    print(f"{trials} crash points, {bad} with a difference, {time.monotonic() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
