"""The one owner of the state folder's layout: `.nightlab/` at the project root and what lives in it.

    .nightlab/nightlab.db      the store (SQLite, WAL)
    .nightlab/engine.lock      one engine per project (see lock.py)
    .nightlab/signal           touched to wake an engine or a TUI watching the project
    .nightlab/runs/<id>[.<attempt>]/   a run's log, status, pid file, progress markers
    .nightlab/worktrees/<id>/  the git worktree of an active experiment
    .nightlab/artifacts/<id>/  what a kept experiment's run wrote in its worktree (checkpoints), after the worktree
                               went; `<id>.json` beside it says what, or why it is gone (see artifacts.py)
    .nightlab/reports/session-<n>/   a session's report: report.html, report.md and its PNGs (see report/)

The folder is excluded through `.git/info/exclude` (Workspace.ensure_state_dir); nothing in it is ever committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nightlab.agent.lock import LOCK_FILE
from nightlab.sandbox.watch import SIGNAL_FILE

STATE_DIR = ".nightlab"
DB_FILE = "nightlab.db"
ARTIFACTS_DIR = "artifacts"


@dataclass(frozen=True)
class StatePaths:
    """The paths of one project's state folder (nothing is created here; Workspace.ensure_state_dir does that)."""

    root: Path

    @classmethod
    def of(cls, root: Path | str) -> StatePaths:
        return cls(Path(root))

    @property
    def dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def db(self) -> Path:
        return self.dir / DB_FILE

    @property
    def lock(self) -> Path:
        return self.dir / LOCK_FILE

    @property
    def signal(self) -> Path:
        return self.dir / SIGNAL_FILE

    @property
    def runs(self) -> Path:
        return self.dir / "runs"

    @property
    def worktrees(self) -> Path:
        return self.dir / "worktrees"

    @property
    def artifacts(self) -> Path:
        return self.dir / ARTIFACTS_DIR

    def report(self, session_id: int) -> Path:
        """Where a session's report is written unless the user names another folder."""
        return self.dir / "reports" / f"session-{session_id}"

    def worktree(self, exp_id: int) -> Path:
        return self.worktrees / str(exp_id)

    def run_dir(self, exp_id: int, attempt: int = 1) -> Path:
        """A run's folder: `runs/<id>` for the first attempt, `runs/<id>.<n>` for a re-launch after a lost job."""
        return self.runs / (str(exp_id) if attempt == 1 else f"{exp_id}.{attempt}")

    def has_store(self) -> bool:
        """Whether anything has been recorded for this project yet."""
        return self.db.exists()


def state_dir(root: Path | str) -> Path:
    """`.nightlab/` of a project root."""
    return StatePaths.of(root).dir


__all__ = ["ARTIFACTS_DIR", "DB_FILE", "STATE_DIR", "StatePaths", "state_dir"]
