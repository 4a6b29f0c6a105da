"""bench/learn.py's driver: per-task timeouts, and a kept work folder that picks up a cut-off invocation (a
leave-one-task-out over every task takes hours; a session of this machine does not last that long)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from helpers import bench_task, load_bench

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def learn() -> ModuleType:
    return load_bench("learn")


def test_timeouts_default_and_per_task_by_name_or_folder(learn: ModuleType) -> None:
    names = {"nanogpt": "nanogpt-shakespeare-char", "nanogpt-shakespeare-char": "nanogpt-shakespeare-char",
             "mnist1d": "mnist1d"}
    assert learn.parse_timeouts(["90"], names) == (90.0, {})
    assert learn.parse_timeouts(["60", "nanogpt=400"], names) == (60.0, {"nanogpt-shakespeare-char": 400.0})
    assert learn.parse_timeouts(["nanogpt-shakespeare-char=400"], names)[1] == {"nanogpt-shakespeare-char": 400.0}
    with pytest.raises(ValueError, match="no task called 'nano'"):
        learn.parse_timeouts(["nano=400"], names)
    with pytest.raises(ValueError, match="not a number"):
        learn.parse_timeouts(["mnist1d=fast"], names)
    with pytest.raises(ValueError, match="positive"):
        learn.parse_timeouts(["0"], names)


def _bench(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    tasks = [bench_task(tmp_path / "tasks" / n, name=n) for n in ("alpha", "beta")]
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "learn.py"), "--tasks", *map(str, tasks), "--budget", "2",
         "--seeds", "1", "--explore-budget", "2", "--workers", "1", "--speed-steps", "20",
         "--cache", str(tmp_path / "cache"), "--json", str(tmp_path / "out.json"),
         "--results", str(tmp_path / "results"), *extra],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")})


def test_a_kept_work_folder_is_picked_up_and_its_settings_must_match(tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = _bench(tmp_path, "--work", str(work), "--timeout", "60", "beta=45")
    assert first.returncode == 0, first.stderr[-2000:]
    done = sorted(p.name for p in (work / "done").iterdir())
    assert done == ["builtin-alpha-0.json", "builtin-beta-0.json", "explore-alpha-100.json", "explore-beta-100.json",
                    "learned-alpha-0.json", "learned-beta-0.json"]
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["meta"]["timeouts"] == {"beta": 45.0} and data["meta"]["timeout"] == 60.0
    assert set(data["summary"]["rows"]) == {"alpha", "beta"}
    # cut off after its explore sessions and one held-out session: the rest runs, the finished ones are taken
    for name in ("builtin-beta-0.json", "learned-alpha-0.json", "learned-beta-0.json"):
        (work / "done" / name).unlink()
    kept = (work / "done" / "builtin-alpha-0.json").read_text()
    again = _bench(tmp_path, "--work", str(work), "--timeout", "60", "beta=45")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "2 session(s) taken from" in again.stdout and "1 session(s) taken from" in again.stdout
    assert "3 to run" in again.stdout and "model for held-out alpha: taken from" in again.stdout
    assert (work / "done" / "builtin-alpha-0.json").read_text() == kept
    assert (work / "done" / "learned-beta-0.json").is_file()
    redone = json.loads((tmp_path / "out.json").read_text())
    assert set(redone["summary"]["rows"]) == {"alpha", "beta"}
    # other settings in the same folder are refused in one line, naming the setting
    other = _bench(tmp_path, "--work", str(work), "--timeout", "60")
    assert other.returncode != 0 and "Traceback" not in other.stderr
    assert "timeouts" in other.stderr.strip().splitlines()[-1]


def test_a_repository_s_row_is_shown_but_not_in_the_mean(learn: ModuleType) -> None:
    """A real repository has no reference: its gap is an improvement over its baseline run, another unit."""
    results = []
    for task, gaps in (("alpha", (0.5, 0.7)), ("nanogpt", (0.30, 0.40))):
        for method, gap in zip(learn.METHODS, gaps, strict=True):
            results.append(learn.search.ComboResult(task=task, method=method, seed=0, gap=gap))
    summary = learn.summarise({"alpha": None, "nanogpt": None}, results, {"nanogpt"})
    assert summary["mean_gap"] == {"builtin": 0.5, "learned": 0.7} and summary["paired_n"] == 1
    assert summary["rows"]["nanogpt"]["paired"] == [0.1] and summary["repos"] == ["nanogpt"]
    meta = {"created": "now", "command": "c", "budget": 2, "seeds": 1, "explore_budget": 2, "workers": 1,
            "cpus": 2, "load": "0", "trained_on": {}}
    text = learn.markdown(meta, summary)
    assert "| nanogpt (a repository: improvement over its baseline, not in the mean) |" in text
    assert "builtin 0.500, learned 0.700" in text


def test_the_ceiling_any_reorder_has_is_the_best_session_seen_less_the_builtin(learn: ModuleType) -> None:
    """The learned policy only reorders the builtin's candidates: what an oracle matching the best session any method
    ever reached on a task would gain bounds what ordering can win. A repository's sessions (another unit) and a
    session merged into two reports (counted once) stay out of it."""
    R = learn.search.ComboResult
    results = [R(task="alpha", method="builtin", seed=0, gap=0.5), R(task="alpha", method="builtin", seed=1, gap=0.9),
               R(task="alpha", method="learned", seed=0, gap=0.6), R(task="alpha", method="explore", seed=100, gap=0.8),
               R(task="beta", method="builtin", seed=0, gap=1.0), R(task="beta", method="learned", seed=0, gap=0.9),
               R(task="repo", method="builtin", seed=0, gap=0.1), R(task="repo", method="explore", seed=100, gap=0.9)]
    peers = [R(task="alpha", method="tpe", seed=3, gap=0.95), R(task="alpha", method="tpe", seed=3, gap=0.95),
             R(task="beta", method="smac", seed=0, gap=0.2, error="crashed")]
    c = learn.ceiling(results, peers, {"repo"})
    # alpha's best is tpe's 0.95: room 0.45 at seed 0 and 0.05 at seed 1; beta's builtin is its best: 0
    assert c["n"] == 3 and round(c["gain"], 4) == round((0.45 + 0.05 + 0.0) / 3, 4)
    assert c["best"]["alpha"] == {"gap": 0.95, "by": "tpe seed 3"} and "repo" not in c["best"]
    assert c["most"] == [{"task": "alpha", "seed": 0, "room": 0.45}, {"task": "alpha", "seed": 1, "room": 0.05}]
    assert c["sessions"] == 7  # the repository's two and the crashed one out, the merged duplicate once
    summary = learn.summarise({"alpha": None, "beta": None}, results, {"repo"})
    summary["ceiling"] = c
    meta = {"created": "now", "command": "c", "budget": 2, "seeds": 1, "explore_budget": 2, "workers": 1,
            "cpus": 2, "load": "0", "trained_on": {}}
    text = learn.markdown(meta, summary)
    assert "gains +0.167 over the builtin (mean over 3 task-seeds; most room: alpha seed 0 +0.45; alpha seed 1 " \
           "+0.05)" in text and "The +0.05 goal lies within it." in text
    assert learn.ceiling([R(task="alpha", method="learned", seed=0, gap=0.6)]) is None  # no builtin session


def test_own_experience_sessions_are_shown_apart_from_the_held_out_figure(learn: ModuleType) -> None:
    """--own runs each task with a model whose data include that task's own explore sessions: a figure beside the
    goal's (held-out) one, never mixed into it."""
    results = [learn.search.ComboResult(task=t, method=m, seed=s, gap=g)
               for t, m, s, g in (("alpha", "builtin", 0, 0.5), ("alpha", "learned", 0, 0.5),
                                  ("alpha", learn.OWN, 0, 0.8), ("beta", "builtin", 0, 0.9),
                                  ("beta", "learned", 0, 0.9), ("beta", learn.OWN, 0, 0.8))]
    summary = learn.summarise({"alpha": None, "beta": None}, results)
    assert summary["mean_gap"] == {"builtin": 0.7, "learned": 0.7} and summary["advantage"] == 0.0
    assert summary["own"]["mean_gap"] == pytest.approx(0.8) and summary["own"]["paired_mean"] == pytest.approx(0.1)
    assert summary["rows"]["alpha"]["paired_own"] == [0.3] and summary["rows"]["beta"]["paired_own"] == [-0.1]
    meta = {"created": "now", "command": "c", "budget": 2, "seeds": 1, "explore_budget": 2, "workers": 1,
            "cpus": 2, "load": "0", "trained_on": {}}
    text = learn.markdown(meta, summary)
    assert "| alpha | 0.80 ± 0.00 | +0.30 |" in text and "Mean gap closed: 0.800 (builtin 0.700" in text
    assert "learned − builtin 0.000" in text and "Goal ≥ +0.05: not met" in text
    # without --own sessions the report is as before
    plain = learn.markdown(meta, learn.summarise({"alpha": None}, [r for r in results if r.method != learn.OWN]))
    assert "own experience" not in plain
