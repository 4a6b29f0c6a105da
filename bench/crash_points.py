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
    [--broken] [--detach] [--step]
(--broken: the committed code fails, so the crash points cover the fix path too; --detach: the session hibernates
while its jobs run, and the wakes their wrappers start are killed too; --step: step mode, each proposal approved
with `nightlab approve`, which is killed too.)
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

from bench.torture import TRAIN, make_project, nl, wait_done

__all__ = ["compare", "hook_dir", "outcome", "project", "reference", "run_killed", "trial", "wait_done", "writes_of"]

# A sitecustomize on the PYTHONPATH of every process the session starts (`nightlab run`, the wakes its job wrappers
# start, cron's wakes): when `nightlab.agent.store` is imported, its two write primitives are wrapped. Each write is
# appended, named ("update experiments (status, error)"), to NIGHTLAB_WRITES_FILE under a lock, so the processes
# share one numbering; the process that makes write NIGHTLAB_KILL_AT_WRITE (0: none) kills itself (SIGKILL) right
# after it. Training jobs get nightlab's own hook first on their path and never import the store.
HOOK = """
import os
if os.environ.get("NIGHTLAB_KILL_AT_WRITE") is not None:
    import importlib.machinery, sys

    def _patch(store):
        import fcntl, signal
        k = int(os.environ["NIGHTLAB_KILL_AT_WRITE"])
        log = os.environ["NIGHTLAB_WRITES_FILE"]

        def count(name):
            with open(log, "a+") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                f.seek(0)
                n = len(f.read().splitlines()) + 1
                f.write(name + chr(10))
                f.flush()
            if n == k:
                os.kill(os.getpid(), signal.SIGKILL)

        def counted(orig, verb):
            def write(self, table, *args, **kwargs):
                out = orig(self, table, *args, **kwargs)
                fields = args[-1] if args and isinstance(args[-1], dict) else {}
                count(f"{verb} {table}" + (f" ({', '.join(fields)})" if verb == "update" else ""))
                return out
            return write

        def deciding(orig):  # an approval's answer: its own UPDATE, first decision wins
            def decide(self, *args, **kwargs):
                out = orig(self, *args, **kwargs)
                count("update approvals (decided)")
                return out
            return decide
        store.Store._insert = counted(store.Store._insert, "insert")
        store.Store._update = counted(store.Store._update, "update")
        store.Store.decide = deciding(store.Store.decide)

    class _Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name != "nightlab.agent.store":
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None:
                return spec
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                _patch(module)
            spec.loader.exec_module = exec_module
            return spec
    sys.meta_path.insert(0, _Finder())
"""

CONFIG_EXTRA = "\n[search]\nparallel = 1\n"

# --broken: the committed learning rate sends the loss to NaN, so the baseline fails and the session begins on the
# fix path (diagnosis, the catalogue's repair, the repaired run measured as the baseline's stand-in) before it searches
BROKEN_TRAIN = TRAIN.replace("LR = 0.05", "LR = 3.0").replace("for i in range(EPOCHS):", """\
if LR > 1:
    print("epoch 1 loss nan", flush=True)
    raise SystemExit(1)
for i in range(EPOCHS):""")


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


def project(root: Path, delay: float, broken: bool = False) -> Path:
    make_project(root, delay=delay, train=BROKEN_TRAIN if broken else TRAIN)
    with (root / "nightlab.toml").open("a") as f:
        f.write(CONFIG_EXTRA)
    return root


def hook_dir(work: Path) -> Path:
    d = work / "crash-hook"
    d.mkdir(parents=True, exist_ok=True)
    (d / "sitecustomize.py").write_text(HOOK)
    return d


def approve_pending(root: Path) -> None:
    """Say yes to every proposal waiting for it, as a person at `nightlab approve` would (the approving process
    counts its writes too, and may be the one killed: the proposal is then still pending and asked about again)."""
    con = sqlite3.connect(root / ".nightlab" / "nightlab.db", timeout=30)
    try:
        pending = [int(eid) for (eid,) in con.execute(
            "SELECT experiment_id FROM approvals WHERE state = 'pending' AND kind = 'hypothesis'")]
    except sqlite3.OperationalError:  # no approvals table yet
        pending = []
    finally:
        con.close()
    for eid in pending:
        nl(root, "approve", str(eid))


def run_killed(root: Path, budget: int, k: int, *, detach: bool = False, step: bool = False, wake: bool = True,
               timeout: float = 120) -> tuple[int, bool]:
    """A session of `budget` runs in which the process that makes write k (0: none) to the store kills itself,
    woken as cron would until it is done (`wake`); the `nightlab run` exit code and whether the kill happened. The
    writes, named in order, are left in `<root>.writes` (see `writes_of`). `step`: step mode, detached (the
    questions are answered with `nightlab approve`, each as soon as it is asked)."""
    detach = detach or step
    log = writes_file(root)
    log.unlink(missing_ok=True)
    log.touch()
    path = os.pathsep.join([str(hook_dir(root.parent)), *filter(None, [os.environ.get("PYTHONPATH")])])
    # the machine-wide slot leases in a folder of the trial's own: a wrapper that gives a slot back wakes the projects
    # waiting for one, and a wake of another nightlab project on this machine must neither count nor be killed here
    state = root.parent / f"{root.name}.state"
    hooked = {"NIGHTLAB_KILL_AT_WRITE": str(k), "NIGHTLAB_WRITES_FILE": str(log), "PYTHONPATH": path,
              "XDG_STATE_HOME": str(state)}
    saved = {name: os.environ.get(name) for name in hooked}
    os.environ.update(hooked)  # cron's wakes below (bench.torture.nl) count their writes too
    try:
        p = subprocess.run([sys.executable, "-m", "nightlab", "-C", str(root), "run", "--mode",
                            "step" if step else "autonomous", "--budget", str(budget),
                            *(["--detach"] if detach else [])], capture_output=True, text=True, timeout=timeout)
        if p.returncode not in (0, -9):
            raise RuntimeError(f"nightlab run ended {p.returncode}: {p.stderr.strip()[-2000:]}")
        if wake and (p.returncode == -9 or detach):
            # as cron would (a detached session also goes on in its wrappers' wakes and its approvals' wakes)
            wait_done(root, timeout, (lambda: approve_pending(root)) if step else None)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return p.returncode, k > 0 and len(writes_of(root)) >= k


def writes_file(root: Path) -> Path:
    return root.parent / f"{root.name}.writes"


def writes_of(root: Path) -> list[str]:
    """The writes the session's processes made to the store, named, in order."""
    f = writes_file(root)
    return f.read_text().splitlines() if f.exists() else []


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


def trial(work: Path, budget: int, k: int, ref: Outcome, delay: float, broken: bool = False,
          detach: bool = False, step: bool = False) -> Trial:
    t0 = time.monotonic()
    root = project(work / f"k{k}", delay, broken)
    _, killed = run_killed(root, budget, k, detach=detach, step=step)
    got = outcome(root)
    return Trial(k, killed, got, compare(got, ref, budget), time.monotonic() - t0)


def reference(work: Path, budget: int, delay: float, broken: bool = False,
              detach: bool = False, step: bool = False) -> tuple[Outcome, list[str]]:
    """An uninterrupted session and the writes it made, in order."""
    root = project(work / "reference", delay, broken)
    run_killed(root, budget, 0, detach=detach, step=step)
    return outcome(root), writes_of(root)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--budget", type=int, default=4)
    ap.add_argument("--first", type=int, default=1, help="the first write to kill after")
    ap.add_argument("--last", type=int, default=0, help="the last (0: every write the uninterrupted session made)")
    ap.add_argument("--every", type=int, default=1, help="kill after every n-th write only")
    ap.add_argument("--delay", type=float, default=0.05, help="seconds per epoch of the tiny training job")
    ap.add_argument("--broken", action="store_true",
                    help="the committed code fails (NaN loss): the session starts by fixing it")
    ap.add_argument("--detach", action="store_true",
                    help="the session hibernates while its jobs run; the wakes their wrappers start are killed too")
    ap.add_argument("--step", action="store_true",
                    help="step mode (detached): each proposal approved with `nightlab approve`, which may be killed")
    ap.add_argument("--dir", help="work folder (default: a temp folder)")
    args = ap.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="nightlab-crash-points-"))
    t0 = time.monotonic()
    ref, writes = reference(work, args.budget, args.delay, args.broken, args.detach, args.step)
    last = args.last or len(writes)
    print(f"uninterrupted: {len(ref.experiments)} experiments, best {ref.best}, {len(writes)} writes to the store")
    bad = 0
    trials = 0
    for k in range(args.first, last + 1, args.every):
        t = trial(work, args.budget, k, ref, args.delay, args.broken, args.detach, args.step)
        trials += 1
        if t.problems:
            bad += 1
        what = writes[k - 1] if k <= len(writes) else "?"
        print(f"kill after write {k:3d} ({what}): {'killed' if t.killed else 'ended before it'}, {t.seconds:4.1f} s: "
              f"{'; '.join(t.problems) or 'same as uninterrupted'}", flush=True)
    print(f"{trials} crash points, {bad} with a difference, {time.monotonic() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
