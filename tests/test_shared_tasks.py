"""Integration checks on the real training tasks in ../shared/tasks (skipped when that folder is absent).

Each task is copied into a fresh git repo WITHOUT its task.toml (the answer sheet), as a user's repo would be.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from helpers import SHARED_TASKS, git

pytestmark = pytest.mark.skipif(not SHARED_TASKS.is_dir(),
                                reason=f"{SHARED_TASKS} is absent (it ships beside the repo, not in it)")


def task_repo(name: str, dest: Path) -> tuple[Path, dict[str, object]]:
    src = SHARED_TASKS / name
    meta = tomllib.loads((src / "task.toml").read_text())
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("task.toml", "__pycache__"))
    for p in dest.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "task")
    return dest, meta


@pytest.mark.parametrize("name", ["digits-mlp", "breast-cancer", "mnist1d", "charlm"])
def test_init_detects_the_metric_of_real_tasks(tmp_path: Path, name: str) -> None:
    if name == "breast-cancer":
        pytest.importorskip("yaml")
    root, meta = task_repo(name, tmp_path / name)
    p = subprocess.run([sys.executable, "-m", "nightlab", "init", "--yes"], cwd=root, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "NO_COLOR": "1"})
    assert p.returncode == 0, p.stderr
    from nightlab.agent.config import load_config
    from nightlab.agent.metrics import parse_metric

    cfg = load_config(root)
    assert cfg.metric.name == meta["metric"]
    assert cfg.metric.goal == meta["goal"]
    assert cfg.command == "python train.py --seed {seed}"
    assert "train.py" in cfg.editable
    # the detected parsing reads the same value the task's own regex reads
    out = subprocess.run([sys.executable, "train.py", "--seed", "1"], cwd=root, capture_output=True, text=True,
                         timeout=120).stdout
    import re

    expected = float(re.findall(str(meta["metric_regex"]), out)[-1])
    assert parse_metric(out, cfg.metric.name, cfg.metric.regex).value == pytest.approx(expected)


def test_init_on_a_crashing_task_says_so_and_offers_no_run(tmp_path: Path) -> None:
    root, meta = task_repo("broken-digits", tmp_path / "bd")
    p = subprocess.run([sys.executable, "-m", "nightlab", "init", "--yes"], cwd=root, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode != 0 and "\nTraceback" not in p.stderr  # the job's own traceback is quoted as "  | ..."
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied" in p.stderr  # why, not just an exit code
    assert "pass --command, --metric and --goal" in p.stderr
    assert not (root / "nightlab.toml").exists()
    p = subprocess.run([sys.executable, "-m", "nightlab", "init", "--no-run", "--metric", "accuracy", "--goal",
                        "maximize", "--metric-regex", str(meta["metric_regex"])], cwd=root, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert (root / "nightlab.toml").exists()
