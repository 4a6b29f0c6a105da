"""A damaged store is never mistaken for a new one, and `nightlab doctor` repairs what it safely can.

The story of issue 14: a zero-length `.nightlab/nightlab.db` was taken for a new project and the next `run` deleted
the old session's branches, the best experiment's included. Here a real session runs first, then its store is
emptied, filled with garbage, or cut in half; every command answers with one line saying what is wrong and how to
recover, the branches stay, and after `nightlab doctor` a new session starts beside them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import git


def nl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=root, capture_output=True, text=True,
                          timeout=180, env={**os.environ, "NO_COLOR": "1"})


def one_line(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode != 0 and "Traceback" not in p.stderr + p.stdout, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("nightlab: "), p.stderr
    return lines[0]


def branches(root: Path) -> dict[str, str]:
    out = git(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/nightlab/")
    return dict(line.split() for line in out.splitlines())


@pytest.fixture
def ran(tiny_project: Path) -> Path:
    """A project after one real session (baseline, noise run, a few experiments: branches nightlab/1/*)."""
    p = nl(tiny_project, "run", "--mode", "autonomous", "--budget", "3")
    assert p.returncode == 0, p.stderr
    assert branches(tiny_project)
    return tiny_project


def _empty(db: Path) -> None:
    db.write_bytes(b"")
    old = 1_000_000_000.0  # not "being created right now"
    os.utime(db, (old, old))


def _garbage(db: Path) -> None:
    db.write_bytes(b"this is not a database\n" * 100)


def _half(db: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [_empty, _garbage, _half], ids=["empty", "garbage", "half-written"])
def test_damaged_store_is_refused_and_branches_stay(ran: Path, damage: object) -> None:
    before = branches(ran)
    db = ran / ".nightlab" / "nightlab.db"
    subprocess.run([sys.executable, "-c", "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("
                    "'PRAGMA wal_checkpoint(TRUNCATE)')", str(db)], check=True)
    damage(db)  # type: ignore[operator]
    for cmd in (["run", "--mode", "autonomous", "--budget", "2"], ["status"], ["log", "1"]):
        line = one_line(nl(ran, *cmd))
        assert "damaged" in line and "nightlab doctor" in line, line
    assert branches(ran) == before


def test_doctor_moves_a_damaged_store_aside_and_a_new_session_starts_after_the_old(ran: Path) -> None:
    before = branches(ran)
    db = ran / ".nightlab" / "nightlab.db"
    _empty(db)
    p = nl(ran, "doctor", "--no-sandbox-probe")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "repaired:" in p.stdout and "it is empty" in p.stdout and "kept" in p.stdout
    aside = [f for f in db.parent.iterdir() if f.name.startswith("nightlab.db.damaged-")]
    assert aside and aside[0].stat().st_size == 0  # kept, as it was
    p = nl(ran, "run", "--mode", "autonomous", "--budget", "2")
    assert p.returncode == 0, p.stderr
    after = branches(ran)
    assert all(after.get(b) == sha for b, sha in before.items())  # every old branch, at its commit
    new = set(after) - set(before)
    assert new and all(b.startswith("refs/heads/nightlab/2/") for b in new)  # numbered after the old session


def test_doctor_on_a_healthy_project(ran: Path) -> None:
    wt = ran / ".nightlab" / "worktrees"
    git(ran, "worktree", "add", "--detach", "-q", str(wt / "1"), "HEAD")  # a settled experiment's, left behind
    p = nl(ran, "doctor")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "integrity ok" in p.stdout and "pruned the worktrees of settled experiment(s) 1" in p.stdout
    assert "sandbox, probed afresh" in p.stdout and "auto picks" in p.stdout
    assert not (wt / "1").exists()
