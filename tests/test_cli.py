"""The real `nightlab` executable on bad input: one line, non-zero exit, no traceback, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import TINY_TRAIN, git, make_repo, snapshot_repo, write_config


def nl(*args: str, cwd: Path, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=cwd, capture_output=True, text=True,
                          input=input, timeout=timeout, env={**os.environ, "NO_COLOR": "1"})


def one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode != 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("nightlab: ")
    return lines[0]


def test_help_is_fast_and_lists_commands(tmp_path: Path) -> None:
    p = nl("--help", cwd=tmp_path)
    assert p.returncode == 0
    for cmd in ("init", "run", "status", "diff", "log", "promote", "approve", "wake", "demo", "export"):
        assert cmd in p.stdout


def test_not_a_git_repo(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('acc=1')\n")
    msg = one_line_error(nl("init", "--yes", cwd=tmp_path))
    assert "not a git repository" in msg
    assert not (tmp_path / "nightlab.toml").exists() and not (tmp_path / ".nightlab").exists()


def test_missing_and_invalid_config(tiny_repo: Path) -> None:
    assert "nightlab init" in one_line_error(nl("run", "--mode", "autonomous", cwd=tiny_repo))
    (tiny_repo / "nightlab.toml").write_text('command = "x"\n[metric]\nname = "acc"\ngoal = "sideways"\n')
    msg = one_line_error(nl("status", cwd=tiny_repo))
    assert "nightlab.toml" in msg and "metric.goal" in msg


def test_init_detects_command_and_metric(tiny_repo: Path) -> None:
    before = snapshot_repo(tiny_repo)
    p = nl("init", "--yes", cwd=tiny_repo)
    assert p.returncode == 0, p.stderr
    text = (tiny_repo / "nightlab.toml").read_text()
    assert 'command = "python train.py --seed {seed}"' in text
    assert 'name = "acc"' in text and 'goal = "maximize"' in text
    assert '"train.py"' in text
    assert snapshot_repo(tiny_repo) == before  # only nightlab.toml (excluded from the snapshot) was written


def test_init_refuses_dirty_editable_file(tiny_repo: Path) -> None:
    (tiny_repo / "train.py").write_text(TINY_TRAIN.replace("LR = 0.05", "LR = 0.5"))
    msg = one_line_error(nl("init", "--yes", cwd=tiny_repo))
    assert "uncommitted changes in train.py" in msg
    assert not (tiny_repo / "nightlab.toml").exists()


def test_init_command_not_found(tiny_repo: Path) -> None:
    msg = one_line_error(nl("init", "--yes", "--command", "no-such-trainer --fast", cwd=tiny_repo))
    assert "command not found: 'no-such-trainer'" in msg
    assert not (tiny_repo / "nightlab.toml").exists()


def test_init_metric_never_printed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", {"train.py": "print('training done')\n"})
    msg = one_line_error(nl("init", "--yes", cwd=repo))
    assert "could not detect a metric" in msg
    msg = one_line_error(nl("init", "--yes", "--metric", "acc", cwd=repo))
    assert "metric 'acc' was not found" in msg
    assert not (repo / "nightlab.toml").exists()


@pytest.mark.parametrize(
    ("script", "failure"),
    [
        ("raise SystemExit('boom')\n", "failed"),
        ("import time\ntime.sleep(60)\n", "timed_out"),
        ("print('acc=nan')\n", "failed"),
        ("print('loss 1.0')\n", "failed"),
    ],
    ids=["crash", "hang", "nan", "no-metric"],
)
def test_bad_training_runs_are_recorded_not_fatal(tmp_path: Path, script: str, failure: str) -> None:
    repo = make_repo(tmp_path / "p", {"train.py": script})
    write_config(repo, timeout=2.0)
    p = nl("run", "--mode", "autonomous", "--budget", "1", cwd=repo)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    data = json.loads(nl("status", "--json", cwd=repo).stdout)
    base = data["experiments"][0]
    assert base["status"] == failure, base
    assert base["metric"] is None and base["failure_class"]


def test_status_json_after_a_run(tiny_project: Path) -> None:
    p = nl("run", "--mode", "autonomous", "--budget", "3", cwd=tiny_project)
    assert p.returncode == 0, p.stderr
    data = json.loads(nl("status", "--json", cwd=tiny_project).stdout)
    assert data["baseline"] is not None and data["best"] is not None
    for e in data["experiments"]:
        assert {"id", "parent", "status", "metric", "hypothesis", "stage", "reward"} <= set(e)
    assert nl("diff", "99", cwd=tiny_project).returncode != 0
    assert "acc=" in nl("log", str(data["experiments"][0]["id"]), cwd=tiny_project).stdout
    mem = nl("memory", cwd=tiny_project)
    assert mem.returncode == 0 and (mem.stdout.startswith("- #") or "nothing tried" in mem.stdout)


def test_second_engine_is_refused_while_one_runs(tiny_project: Path) -> None:
    from nightlab.agent.lock import ProjectLock

    lock = ProjectLock(tiny_project / ".nightlab")
    lock.acquire()
    try:
        msg = one_line_error(nl("run", "--mode", "autonomous", "--budget", "1", cwd=tiny_project))
        assert f"pid {os.getpid()}" in msg
    finally:
        lock.release()


def test_promote_needs_confirmation_without_terminal(tiny_project: Path) -> None:
    p = nl("run", "--mode", "autonomous", "--budget", "1", cwd=tiny_project)
    assert p.returncode == 0
    git(tiny_project, "status")
    msg = one_line_error(nl("promote", "1", cwd=tiny_project))
    assert "no commit" in msg or "changes nothing" in msg or "--yes" in msg


@pytest.mark.parametrize("argv", [("demo", "--headless", "--budget", "0"), ("demo", "--budget", "-1"),
                                  ("run", "--budget", "0", "--detach"), ("explore", "--budget", "0"),
                                  ("run", "--budget", "many")])
def test_a_budget_below_one_run_is_refused_before_anything_runs(tiny_project: Path, argv: tuple[str, ...]) -> None:
    msg = one_line_error(nl(*argv, cwd=tiny_project))
    assert "--budget" in msg and ("at least 1" in msg or "whole number" in msg)
    assert not (tiny_project / ".nightlab").exists()  # no session, no baseline run


def test_commands_find_the_project_from_a_subfolder(tiny_project: Path) -> None:
    sub = tiny_project / "src" / "models"
    sub.mkdir(parents=True)
    p = nl("status", "--json", cwd=sub)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["project"] == str(tiny_project)
    p = nl("-C", str(sub), "status", "--json", cwd=tiny_project.parent)
    assert p.returncode == 0 and json.loads(p.stdout)["project"] == str(tiny_project)
    # after the subcommand too, as people type it; one given before the subcommand is not overridden
    p = nl("status", "--json", "-C", str(sub), cwd=tiny_project.parent)
    assert p.returncode == 0 and json.loads(p.stdout)["project"] == str(tiny_project), p.stderr
    p = nl("-C", str(sub), "status", "--json", cwd=tiny_project.parent / "..")
    assert p.returncode == 0 and json.loads(p.stdout)["project"] == str(tiny_project), p.stderr


def test_init_from_a_subfolder_sets_up_the_repository_root(tiny_repo: Path) -> None:
    sub = tiny_repo / "notebooks"
    sub.mkdir()
    p = nl("init", "--yes", "--no-run", "--metric", "acc", "--goal", "maximize", "--command",
           "python train.py --seed {seed}", cwd=sub)
    assert p.returncode == 0, p.stderr
    assert (tiny_repo / "nightlab.toml").exists() and not (sub / "nightlab.toml").exists()


@pytest.mark.parametrize("argv", [("-C", "{missing}", "status"), ("-C", "{missing}", "init"), ("init", "{missing}"),
                                  ("-C", "{missing}", "log", "1"), ("log", "1", "-C", "{missing}"),
                                  ("export", "trajectories", "-C", "{missing}")])
def test_a_project_folder_that_does_not_exist_is_named(tmp_path: Path, argv: tuple[str, ...]) -> None:
    missing = tmp_path / "nonexistent"
    msg = one_line_error(nl(*(a.format(missing=missing) for a in argv), cwd=tmp_path))
    assert msg == f"nightlab: {missing}: no such folder"


def test_the_demo_runs_where_no_sandbox_layer_works_when_told_to(tmp_path: Path) -> None:
    """`make run` on a machine (a container) where neither bubblewrap nor Landlock works: the refusal names
    --unsafe-no-sandbox, which `demo` takes like `init` and `run`, and the session records the choice."""
    from nightlab.agent.store import Store

    demo = tmp_path / "demo"
    p = subprocess.run([sys.executable, "-m", "nightlab", "demo", "--headless", "--budget", "1", "--dir", str(demo),
                        "--unsafe-no-sandbox"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "NO_COLOR": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    session = Store(demo / ".nightlab" / "nightlab.db").latest_session()
    assert session is not None and session.unsafe
