"""`nightlab projects`: every project this user has run, read from each project's own store; deleted ones tolerated."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from nightlab.agent import projects
from nightlab.agent.engine import open_store
from nightlab.agent.lock import ProjectLock

from helpers import TINY_TRAIN, git, make_repo, write_config


def nl(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def _project(path: Path) -> Path:
    root = make_repo(path, {"train.py": TINY_TRAIN})
    write_config(root)
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    return root


def test_projects_lists_every_project_run_with_its_state(tmp_path: Path) -> None:
    done, waiting, gone, broken = (_project(tmp_path / n) for n in ("done", "waiting", "gone", "broken"))
    for root in (done, gone, broken):
        assert nl(root, "run", "--mode", "autonomous", "--budget", "1", "--unsafe-no-sandbox").returncode == 0
    p = nl(waiting, "run", "--mode", "step", "--budget", "3", "--detach", "--unsafe-no-sandbox")
    assert p.returncode == 0, p.stderr
    store = open_store(waiting)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (store.approvals("pending")
                                               and not ProjectLock(waiting / ".nightlab").is_held()):
        time.sleep(0.1)
    shutil.rmtree(gone)
    (broken / "nightlab.toml").write_text("command = 'python train.py'\n[metric]\nname = 'acc'\ngoal = 'upward'\n")

    out = nl(tmp_path, "projects", "--json")
    assert out.returncode == 0, out.stderr
    rows = {Path(r["path"]).name: r for r in json.loads(out.stdout)}
    assert set(rows) == {"done", "waiting", "gone", "broken"}
    assert rows["done"]["engine"] == "done" and rows["done"]["mode"] == "autonomous"
    assert rows["done"]["baseline"] is not None and rows["done"]["best"] == rows["done"]["baseline"]
    assert rows["waiting"]["engine"] == "hibernating" and rows["waiting"]["mode"] == "step"
    assert rows["waiting"]["approvals"] == 1 and rows["waiting"]["running"] == []
    assert rows["gone"]["problem"].startswith("missing")
    assert "metric.goal" in rows["broken"]["problem"] and "nightlab.toml" in rows["broken"]["problem"]

    text = nl(tmp_path, "projects")
    assert text.returncode == 0 and "Traceback" not in text.stderr
    assert str(gone) in text.stdout and "missing" in text.stdout
    assert "1 approval(s) waiting for you" in text.stdout


def test_a_running_job_is_listed_with_where_it_runs(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "slow", {"train.py": "import os, time\nwhile not os.path.exists('go'):\n"
                                                     "    time.sleep(0.05)\nprint('acc=0.5')\n"})
    write_config(root, command="python train.py")
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    assert nl(root, "run", "--mode", "autonomous", "--budget", "1", "--detach", "--unsafe-no-sandbox").returncode == 0
    rows = projects.overview_all()
    assert [Path(r["path"]).name for r in rows] == ["slow"]
    (job,) = rows[0]["running"]
    assert job["experiment"] == 1 and job["where"].startswith("cpu")
    assert rows[0]["engine"] == "hibernating"
    (root / ".nightlab" / "worktrees" / "1" / "go").touch()
    store = open_store(root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (store.open_jobs() or ProjectLock(root / ".nightlab").is_held()):
        time.sleep(0.1)
    assert projects.overview(root)["running"] == []


def test_no_projects_yet(tmp_path: Path) -> None:
    out = nl(tmp_path, "projects")
    assert out.returncode == 0 and "no projects yet" in out.stdout
    assert json.loads(nl(tmp_path, "projects", "--json").stdout) == []
