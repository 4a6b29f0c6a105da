"""bench/search.py on a tiny synthetic task: the report's fields, the run cache, and one pass through the engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from helpers import bench_task, load_bench

REPO_ROOT = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    return load_bench("search")


@pytest.fixture(scope="module")
def search() -> ModuleType:
    return _load()


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    return bench_task(tmp_path / "tasks" / "synthetic")


def test_default_first_peers_report_and_cache(search: ModuleType, task_dir: Path, tmp_path: Path) -> None:
    cache, results = tmp_path / "cache", tmp_path / "results"
    out = tmp_path / "report.json"
    kw = {"cache": cache, "results": results, "workers": 1, "progress": lambda s: None}
    data = search.run_benchmark([task_dir], ["random-default", "tpe-default"], 3, 1, json_out=out, **kw)
    saved = json.loads(out.read_text())
    assert saved["meta"]["budget"] == 3 and saved["meta"]["finished"] == 2
    assert saved["tasks"]["synthetic"]["reference"] == 0.9
    rows = {r["method"]: r for r in saved["rows"]}
    assert set(rows) == {"random-default", "tpe-default"}
    for r in rows.values():
        for key in ("best_mean", "best_sd", "gap_mean", "half_mean", "failed", "wall_s", "runs"):
            assert key in r
        assert r["runs"] == 3 and r["failed"] == 0 and not r["errors"]
        assert r["best_mean"] is not None and r["best_mean"] >= 0.6
    res = {r["method"]: r for r in saved["results"]}
    # the searched knobs are the builtin policy's: CONFIG.lr / epochs / hidden
    assert {"CONFIG.lr", "CONFIG.epochs"} <= set(res["random-default"]["dims"])
    assert res["random-default"]["runs"][0]["values"] == {}  # trial 1 is the unmodified baseline
    assert all(r["values"] for r in res["tpe-default"]["runs"][1:])
    # the baseline run is shared through the cache: the second method replays it
    trained_first = sum(r["trained"] for r in saved["results"])
    assert trained_first <= 5 and sum(r["cached"] for r in saved["results"]) >= 1
    assert "| synthetic | random-default |" in data["markdown"] and "Mean gap closed" in data["markdown"]
    md = [p for p in results.iterdir() if p.suffix == ".md"]
    assert md and "| task | method |" in md[0].read_text()
    # a second run with the same seeds trains nothing
    again = search.run_benchmark([task_dir], ["random-default", "tpe-default"], 3, 1, **kw)
    assert sum(r["trained"] for r in again["results"]) == 0
    assert sum(r["cached"] for r in again["results"]) == 6
    assert [r["best_mean"] for r in again["rows"]] == [r["best_mean"] for r in saved["rows"]]


def test_cache_key_follows_files_and_seed(search: ModuleType) -> None:
    k = search.cache_key("t", {"a.py": "x = 1", "b.yaml": "y: 2"}, "python a.py --seed 0")
    assert k == search.cache_key("t", {"b.yaml": "y: 2", "a.py": "x = 1"}, "python a.py --seed 0")
    assert k != search.cache_key("t", {"a.py": "x = 2", "b.yaml": "y: 2"}, "python a.py --seed 0")
    assert k != search.cache_key("t", {"a.py": "x = 1", "b.yaml": "y: 2"}, "python a.py --seed 1")


def test_gap_is_sign_correct_and_crash_baseline(search: ModuleType, tmp_path: Path) -> None:
    t = search.Task(name="m", folder=tmp_path, command="c", metric="loss", goal="minimize", regex="(x)",
                    baseline=3.0, reference=2.0, seconds=1.0)
    assert t.gap(2.5) == pytest.approx(0.5) and t.gap(3.5) == pytest.approx(-0.5) and t.gap(None) == 0.0
    crash = search.Task(name="c", folder=tmp_path, command="c", metric="acc", goal="maximize", regex="(x)",
                        baseline=None, reference=0.8, seconds=1.0)
    assert crash.gap(0.4) == pytest.approx(0.5)


def test_nightlab_through_the_engine(search: ModuleType, task_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    kw = {"cache": cache, "results": tmp_path / "results", "workers": 1, "progress": lambda s: None}
    data = search.run_benchmark([task_dir], ["nightlab"], 3, 1, **kw)
    (res,) = data["results"]
    assert res["error"] is None, res["error"]
    assert len(res["runs"]) == 3  # baseline, its noise re-run (seed 1), one experiment: the budget, no more
    assert res["runs"][0]["kind"] == "baseline" and res["runs"][1]["seed"] == 1
    assert res["trained"] == 3 and res["best"] is not None and res["best"] >= 0.6
    # the experiment the policy proposed carries its run-time prediction, and the report sets it against the run
    third = res["runs"][2]
    assert third["predicted_s"] and third["priced"] in ("knobs", "code", "parent"), third
    (q,) = data["summary"]["predictions"]
    assert q["runs"] == 1 and q["median"] == pytest.approx(third["predicted_s"] / third["seconds"])
    assert "run-time predictions" in data["markdown"] and f"| {q['priced']} | 1 |" in data["markdown"]
    again = search.run_benchmark([task_dir], ["nightlab"], 3, 1, **kw)
    (res2,) = again["results"]
    assert res2["trained"] == 0 and res2["cached"] == 3  # the engine's jobs replayed from the cache
    assert res2["best"] == res["best"]
    # the replay is faithful: same experiments, verdicts and (recorded, not replayed) seconds
    fields = ("title", "seed", "metric", "status", "seconds")
    assert [[r[f] for f in fields] for r in res2["runs"]] == [[r[f] for f in fields] for r in res["runs"]]


def test_nightlab_s_best_counts_what_the_session_ends_with(search: ModuleType) -> None:
    """A best kept on one seed because the budget ran out (`unconfirmed`) is the best the session hands over."""
    assert search.stands("kept", "hyperparameter") and search.stands("promoted", "code")
    assert search.stands("unconfirmed", "hyperparameter")  # left out before 2026-12-04
    assert not search.stands("discarded", "hyperparameter") and not search.stands("kept", "rerun")


def test_merge_makes_one_table_of_several_invocations_rescored(
        search: ModuleType, task_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Invocations split over time (or machines) share the cache; `--merge` tables their saved results with this
    file's scoring, so a rule changed since applies to runs saved before it."""
    kw = {"cache": tmp_path / "cache", "results": tmp_path / "results", "workers": 1, "progress": lambda s: None}
    both = search.run_benchmark([task_dir], ["random-default", "tpe-default"], 3, 1, **kw)
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    search.run_benchmark([task_dir], ["random-default"], 3, 1, json_out=one, **kw)
    search.run_benchmark([task_dir], ["tpe-default"], 3, 1, json_out=two, **kw)
    # a nightlab result saved when an unconfirmed best did not count (its run marked kept: False)
    saved = json.loads(two.read_text())
    runs = [{"kind": "baseline", "title": "baseline", "seed": 0, "metric": 0.5, "ok": True, "status": "kept",
             "kept": True},
            {"kind": "rerun", "title": "re-run", "seed": 1, "metric": 0.52, "ok": True, "status": "kept",
             "kept": False},
            {"kind": "hyperparameter", "title": "lr", "seed": 0, "metric": 0.8, "ok": True, "status": "unconfirmed",
             "kept": False}]
    saved["results"].append({"task": "synthetic", "method": "nightlab", "seed": 0, "runs": runs, "best": 0.5})
    two.write_text(json.dumps(saved))
    out = tmp_path / "merged.json"
    assert search.main(["--tasks", str(task_dir), "--merge", str(one), str(two), "--json", str(out),
                        "--results", str(tmp_path / "results")]) == 0
    merged = json.loads(out.read_text())
    rows = {r["method"]: r for r in merged["rows"]}
    for r in both["rows"]:
        assert rows[r["method"]]["best_mean"] == r["best_mean"] and rows[r["method"]]["gap_mean"] == r["gap_mean"]
    assert rows["nightlab"]["best_mean"] == 0.8  # the unconfirmed best counts now
    assert "| synthetic | nightlab |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no results"):
        search.main(["--tasks", str(task_dir), "--merge", str(one), "--methods", "cmaes"])
    # before and after a change: an older version's nightlab results, labelled, pair with the current ones
    older = json.loads(two.read_text())
    older["results"] = [{**r, "runs": [{**run, "metric": 0.6 if run["kind"] != "baseline" else 0.5}
                                       for run in r["runs"]]} for r in older["results"] if r["method"] == "nightlab"]
    old_file = tmp_path / "older.json"
    old_file.write_text(json.dumps(older))
    assert search.main(["--tasks", str(task_dir), "--merge", str(two), f"before={old_file}", "--methods", "nightlab",
                        "--json", str(out), "--results", str(tmp_path / "results")]) == 0
    merged = json.loads(out.read_text())
    rows = {r["method"]: r for r in merged["rows"]}
    assert set(rows) == {"nightlab", "before"} and rows["before"]["best_mean"] == 0.6  # rescored: unconfirmed counts
    (pair,) = merged["summary"]["paired"]["rows"]
    assert pair["peer"] == "before" and pair["ahead"] == 1 and pair["mean_diff"] > 0
    shown = capsys.readouterr().out
    assert "nightlab ahead of before on 1 of 1 task-seeds (100 %; tied 0, behind 0)." in shown  # no peers' goal


def test_resume_runs_only_what_a_cut_off_invocation_did_not_finish(
        search: ModuleType, task_dir: Path, tmp_path: Path) -> None:
    """A benchmark cut off (its machine went away) is resumed from its saved report: the combinations it finished are
    taken as saved (not trained again, even with the run cache gone), the rest run, and the table is the same."""
    kw = {"results": tmp_path / "results", "workers": 1, "progress": lambda s: None}
    cut = tmp_path / "cut.json"
    first = search.run_benchmark([task_dir], ["random-default"], 3, 1, cache=tmp_path / "c1", json_out=cut, **kw)
    lines: list[str] = []
    kw["progress"] = lines.append
    whole = search.run_benchmark([task_dir], ["random-default"], 3, 2, cache=tmp_path / "c2", resume=[cut], **kw)
    assert any("resuming: 1 combination(s)" in x and "1 to run" in x for x in lines)
    by_seed = {r["seed"]: r for r in whole["results"]}
    assert sorted(by_seed) == [0, 1] and whole["meta"]["total"] == 2 and whole["meta"]["resumed"]
    assert by_seed[0]["best"] == first["results"][0]["best"] and by_seed[1]["trained"] == 3
    assert sum(r["trained"] for r in whole["results"]) == first["results"][0]["trained"] + 3  # seed 0 not re-run
    with pytest.raises(SystemExit, match="budget of 3 runs"):
        search.run_benchmark([task_dir], ["random-default"], 4, 2, cache=tmp_path / "c3", resume=[cut], **kw)
    # a task's own timeout (one invocation: the small tasks at 90 s, nanoGPT at 400 s) must match what it ran under
    with pytest.raises(SystemExit, match="ran synthetic with a 120 s timeout, not 60 s"):
        search.run_benchmark([task_dir], ["random-default"], 3, 2, cache=tmp_path / "c3", resume=[cut],
                             timeouts=["synthetic=60"], **kw)
    with pytest.raises(SystemExit, match="no task called 'nano'"):
        search.run_benchmark([task_dir], ["random-default"], 3, 1, cache=tmp_path / "c3", timeouts=["nano=400"], **kw)


def test_a_task_gets_its_own_timeout(search: ModuleType, task_dir: Path, tmp_path: Path) -> None:
    """`--timeout 120 synthetic=0.2`: the task named runs under its own limit (here too short for any run to
    finish: every run times out), and the report says which limit each task had."""
    kw = {"results": tmp_path / "results", "workers": 1, "progress": lambda s: None}
    data = search.run_benchmark([task_dir], ["random-default"], 2, 1, cache=tmp_path / "c", timeouts=["synthetic=0.2"],
                                **kw)
    assert data["meta"]["timeout"] == 120.0 and data["meta"]["timeouts"] == {"synthetic": 0.2}
    (res,) = data["results"]
    assert res["timeouts"] == 2 and res["failed"] == 2
    by_folder = search.run_benchmark([task_dir], ["random-default"], 2, 1, cache=tmp_path / "c", timeout=0.2,
                                     timeouts=[f"{task_dir.name}=120"], **kw)
    assert by_folder["meta"]["timeouts"] == {"synthetic": 120.0} and by_folder["meta"]["timeout"] == 0.2


def test_timeouts_are_recorded_and_replayed(search: ModuleType, tmp_path: Path) -> None:
    cache, ledger = tmp_path / "cache", tmp_path / "ledger.jsonl"
    (tmp_path / "train.py").write_text("import time\nprint('epoch 0 loss 1.0', flush=True)\ntime.sleep(1.6)\n"
                                       "print('score=0.5')\n")

    def run(timeout: float) -> tuple[int, dict[str, object]]:
        argv = ["cache-run", "--cache", str(cache), "--task", "t", "--files", "train.py", "--metric", "score",
                "--regex", "score=([0-9.]+)", "--timeout", str(timeout), "--ledger", str(ledger), "--",
                sys.executable, "train.py", "--seed", "0"]
        proc = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "search.py"), *argv], cwd=tmp_path,
                              capture_output=True, text=True)
        return proc.returncode, json.loads(ledger.read_text().splitlines()[-1])

    rc, line = run(2)  # limit 1 s: stopped, recorded as a timeout
    assert rc == search.TIMEOUT_RC and line["timed_out"] and not line["hit"]
    rc, line = run(2)  # replayed, not run again
    assert rc == search.TIMEOUT_RC and line["timed_out"] and line["hit"]
    rc, line = run(5)  # a longer limit: the run must go again, and now completes
    assert rc == 0 and line["ok"] and not line["hit"] and line["metric"] == 0.5
    rc, line = run(2)  # the completed run does not fit in 1 s: still the recorded timeout
    assert rc == search.TIMEOUT_RC and line["hit"] and line["timed_out"]
    rc, line = run(5)
    assert rc == 0 and line["hit"] and line["metric"] == 0.5
