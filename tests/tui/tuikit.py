"""Tiny projects for the TUI tests: a git repo whose `train.py` prints `acc=...` from a constant (plain Python,
well under 0.2 s), a nightlab.toml written through nightlab.agent.config, and a store populated directly so that
pilot and snapshot tests never wait for real training."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRAIN = '''\
"""Tiny training stand-in: the metric follows LR (peak at 0.3); prints a loss curve, then the metric."""
import sys

LR = 0.1
EPOCHS = 3

score = 0.9 - abs(LR - 0.3)
for step in range(1, EPOCHS + 1):
    print(f"step {step} loss {1.0 / step + (0.9 - score):.4f}")
print(f"acc={score:.4f}")
'''

LOG_TEXT = "".join(f"step {i} loss {1.0 / i:.4f}\n" for i in range(1, 4)) + "acc={acc:.4f}\n"


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "user", "GIT_AUTHOR_EMAIL": "user@example.com",
           "GIT_COMMITTER_NAME": "user", "GIT_COMMITTER_EMAIL": "user@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def make_project(path: Path, *, python: str = "python", budget: int = 6, noise_seeds: int = 1,
                 confirm: bool = False, configured: bool = True) -> Path:
    """A committed git repo with train.py and a nightlab.toml (one CPU slot, so snapshots do not depend on cores);
    without the nightlab.toml when not `configured` (a repository nightlab has not been set up in)."""
    from nightlab.agent.config import MetricConfig, ProjectConfig, SearchConfig, SlotsConfig, dump_config

    path.mkdir(parents=True, exist_ok=True)
    (path / "train.py").write_text(TRAIN)
    cfg = ProjectConfig(command=f"{python} train.py --seed {{seed}}", metric=MetricConfig(name="acc", goal="maximize"),
                        editable=["train.py"], timeout=60,
                        search=SearchConfig(budget=budget, noise_seeds=noise_seeds, confirm=confirm),
                        slots=SlotsConfig(cpus=1))
    if configured:
        (path / "nightlab.toml").write_text(dump_config(cfg))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def with_lr(value: str) -> dict[str, str]:
    return {"train.py": TRAIN.replace("LR = 0.1", f"LR = {value}")}


@dataclass
class Populated:
    session: int
    baseline: int
    best: int
    worse: int
    failed: int
    proposed: int
    hypothesis_approval: int
    promote_approval: int


def _log(root: Path, exp_id: int, text: str) -> Path:
    run = root / ".nightlab" / "runs" / str(exp_id)
    run.mkdir(parents=True, exist_ok=True)
    log = run / "output.log"
    log.write_text(text)
    return run


def populate(root: Path) -> Populated:
    """A morning after: a baseline, a kept improvement, a worse run, a crash, a proposal waiting, a promote waiting."""
    from nightlab.agent.store import Store
    from nightlab.agent.workspace import Workspace

    ws = Workspace(root)
    ws.ensure_state_dir()
    store = Store(root / ".nightlab" / "nightlab.db")
    head = ws.head_commit()
    s = store.create_session(str(root), "step", "builtin", 6, head, "main")
    store.update_session(s.id, runs_started=4, state="waiting", noise_floor=0.001)

    def add(title: str, parent: int | None, status: str, kind: str = "hyperparameter", **kw: object) -> int:
        e = store.add_experiment(session_id=s.id, parent_id=parent, title=title, kind=kind, status=status, seed=0,
                                 policy="builtin", **kw)
        return e.id

    def commit(exp_id: int, parent_sha: str, files: dict[str, str], message: str, prune: bool = True) -> None:
        branch, sha = ws.materialise(exp_id, s.id, parent_sha, files, message)
        store.update_experiment(exp_id, branch=branch, commit_sha=sha, patch=ws.diff(parent_sha, sha))
        if prune:
            ws.prune(exp_id)

    curve = [[1, 0.62], [2, 0.66], [3, 0.7]]
    base = add("baseline: the code as committed", None, "kept", kind="baseline", run_result="succeeded", metric=0.7,
               seconds=0.41, stage="metric_reported", curve=curve, loss_curve=[[1, 1.2], [2, 0.7], [3, 0.53]],
               rationale="measure the starting point (and, with other seeds, the noise)")
    branch, _ = ws.materialise(base, s.id, head, {}, "baseline")
    store.update_experiment(base, branch=branch, commit_sha=head, patch="")
    ws.prune(base)
    best = add("LR = 0.3", base, "kept", run_result="succeeded", metric=0.9, seconds=0.43, stage="metric_reported",
               rationale="the loss falls slowly and steadily: a larger learning rate should converge further",
               expected_effect="acc +0.1", loss_curve=[[1, 1.0], [2, 0.5], [3, 0.33]], knobs={"LR": 0.3},
               reward=0.62, isolation=["layer0", "bwrap"])
    commit(best, head, with_lr("0.3"), "LR = 0.3")
    worse = add("LR = 0.01", base, "discarded", run_result="succeeded", metric=0.61, seconds=0.40,
                stage="metric_reported", rationale="a smaller learning rate may be more stable",
                error="0.6100 vs best 0.7000: no improvement", loss_curve=[[1, 1.3], [2, 0.9], [3, 0.8]])
    commit(worse, head, with_lr("0.01"), "LR = 0.01")
    best_sha = store.experiment(best).commit_sha or head
    failed = add("EPOCHS = 0", best, "failed", run_result="failed", seconds=0.2, stage="started",
                 failure_class="crash", diagnosis="ZeroDivisionError: division by zero (train.py line 9)",
                 rationale="fewer epochs make runs faster")
    commit(failed, best_sha, {"train.py": with_lr("0.3")["train.py"].replace("EPOCHS = 3", "EPOCHS = 0")},
           "EPOCHS = 0")
    proposed = add("LR = 0.4", best, "proposed", rationale="the best run is still improving at the end: go further")
    commit(proposed, best_sha, with_lr("0.4"), "LR = 0.4")
    for exp_id, text in ((base, LOG_TEXT.format(acc=0.7)), (best, LOG_TEXT.format(acc=0.9)),
                         (worse, LOG_TEXT.format(acc=0.61)),
                         (failed, "Traceback (most recent call last):\nZeroDivisionError: division by zero\n")):
        run = _log(root, exp_id, text)
        job = store.add_job(exp_id, str(run), str(run / "output.log"), "cpu0")
        store.update_job(job.id, state="ended", exit_code=0 if exp_id != failed else 1, started=1.0, ended=2.0)
    hyp = store.add_approval("hypothesis", {"title": "LR = 0.4"}, s.id, proposed)
    prom = store.add_approval("promote", {"metric": 0.9, "baseline": 0.7}, s.id, best)
    store.close()
    return Populated(s.id, base, best, worse, failed, proposed, hyp.id, prom.id)


EVENTS_T0 = 1_767_258_000.0  # 2026-01-01 09:00 UTC


def clone(template: Path, dest: Path) -> Path:
    """A copy of a populated project (much faster than building one): the store's absolute paths are rewritten,
    and the waiting proposal gets its worktree back, on its branch, as the engine leaves it."""
    import shutil
    import sqlite3

    shutil.copytree(template, dest, symlinks=True)
    db = sqlite3.connect(dest / ".nightlab" / "nightlab.db")
    old, new = str(template), str(dest)
    with db:
        db.execute("UPDATE jobs SET run_dir = replace(run_dir, ?, ?), log_path = replace(log_path, ?, ?)",
                   (old, new, old, new))
        db.execute("UPDATE sessions SET project = replace(project, ?, ?)", (old, new))
        # events at fixed times (the events pane shows them: snapshots must not depend on when the test ran)
        db.execute("UPDATE events SET t = ? + 60 * id", (EVENTS_T0,))
        rows = db.execute("SELECT id, branch FROM experiments WHERE status = 'proposed'").fetchall()
    db.close()
    for exp_id, branch in rows:
        git(dest, "worktree", "add", "--quiet", str(dest / ".nightlab" / "worktrees" / str(exp_id)), branch)
    return dest


def python_exe() -> str:
    return sys.executable


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


async def wait_until(pilot: object, cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Let the app run until `cond()` holds (workers answer asynchronously). On a timeout the message says what the
    app was doing: its workers' states and errors, and what it told the user."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            app = getattr(pilot, "app", None)
            workers = [(w.name, w.state.name, repr(w.error)) for w in getattr(app, "workers", [])]
            told = [str(n.message) for n in getattr(app, "_notifications", [])]
            scr = getattr(app, "screen", None)
            screen = type(scr).__name__ + (f" {getattr(scr, 'message', '')!r} {getattr(scr, 'details', '')[-1500:]}"
                                           if hasattr(scr, "message") else "")
            raise AssertionError(f"timed out waiting for {what or cond}; screen {screen}; workers {workers}; "
                                 f"notifications {told}")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------ Pilot helpers
def store_of(root: Path) -> Any:
    from nightlab.agent.store import Store

    return Store(root / ".nightlab" / "nightlab.db")


def make_app(root: Path, **kw: Any) -> Any:
    """The app as the Pilot tests drive it: no engine of its own, no grace period, a quick poller."""
    from nightlab.tui.app import NightlabApp

    kw.setdefault("start", "never")
    kw.setdefault("grace_s", 0.0)
    kw.setdefault("poll_s", 0.1)
    return NightlabApp(root, **kw)


async def loaded(pilot: Any) -> None:
    await wait_until(pilot, lambda: pilot.app.snapshot is not None, what="first snapshot")
    await pilot.pause()


async def select(pilot: Any, exp_id: int) -> None:
    from nightlab.tui.widgets.experiments import ExperimentTable

    table = pilot.app.main.query_one(ExperimentTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(str(exp_id)))
    # a hang detector, not a speed test: twice in a day's full runs the highlight took over 10 s to be handled while
    # the other xdist worker ran its heaviest tests (alone, the whole test takes 3 s)
    await wait_until(pilot, lambda: pilot.app.main.selected == exp_id, timeout=30.0, what=f"#{exp_id} selected")
