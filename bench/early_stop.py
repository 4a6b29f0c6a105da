"""Early-stopping benchmark: run-seconds saved and winners lost on sessions of the shared tasks.

    python bench/early_stop.py [--tasks DIR ...] [--budget N] [--seed S] [--save FILE]
    python bench/early_stop.py --replay FILE

For each task folder (default: every folder of ../shared/tasks and ../shared/repos; skipped with the reason when
absent; a real repository is a folder with repo.toml and make-repo.sh, see bench/search.py), one session of
the builtin policy runs through the real engine (autonomous, one slot, the real sandbox) with early stopping OFF,
so every run finishes. Then the early-stopping rule (`nightlab.agent.early_stop.first_stop`, the function the engine
calls on a running job) is replayed on each finished run's recorded curve, point by point, against its parent's
curve and the seed noise on curves of that session:

* stopped: runs the rule would have stopped, and at what fraction of their curve;
* run-seconds saved: for each of them, its duration times the share of its curve after the stopping point (steps
  taken as evenly spaced in time);
* winners lost: stopped runs that, let finish, became a best (kept, unconfirmed or promoted), and stopped runs whose
  final metric beat their parent's at all.

`--save FILE` writes every judged run's curve, its parent's and the seed noise (JSON); `--replay FILE` judges a saved
set again without training (the sessions do not depend on the rule, since it is off while they run), so a change to
the rule is measured on exactly the same curves.

The replay reads the session's finished store, so a run is judged against a noise estimate that includes re-runs
made after it; the engine, live, sees only those made before. Figures depend on the machine (the shared 2-core
machine is noisy); the command line and the date are printed with them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DEFAULT_TASKS = HERE.parent.parent / "shared" / "tasks"
DEFAULT_REPOS = HERE.parent.parent / "shared" / "repos"


def session(task_dir: Path, work: Path, budget: int, seed: int) -> list[dict[str, Any]]:
    """One engine session on a task with early stopping off: each policy run's record (its curve, its parent's
    curve, the seed noise on curves, whether it became a best), for `judged` to replay the rule on."""
    import search

    from nightlab.agent import early_stop
    from nightlab.agent.config import AutonomyConfig, MetricConfig, ProjectConfig, SearchConfig, SlotsConfig
    from nightlab.agent.engine import Engine, EngineOptions
    from nightlab.agent.policy.builtin import BuiltinPolicy
    from nightlab.agent.states import ENGINE_KINDS, WINNERS, RunResult

    task = search.load_task(task_dir)
    repo = search.make_repo(task, work / task.name)
    # a real repository (repo.toml) runs its command as its README gives it, its untracked data linked in; its seed
    # is fixed in the code (the engine varies it there for its noise runs)
    real = task.kind == "repo"
    layout = search.layout_of(repo, task if real else None)
    auto = AutonomyConfig(early_stop=False)
    cfg = ProjectConfig(
        command=task.command if real else f"{task.command} --seed {{seed}}",
        metric=MetricConfig(name=task.metric, goal=task.goal, regex=task.regex or None),  # type: ignore[arg-type]
        timeout=max(60.0, 10 * task.seconds), editable=layout.editable, protected=layout.protected,
        links=layout.links,
        search=SearchConfig(seed=seed, budget=budget, parallel=1), slots=SlotsConfig(cpus=1), autonomy=auto,
    )
    eng = Engine(repo, cfg, options=EngineOptions(mode="autonomous", budget=budget), policy=BuiltinPolicy())
    eng.run()
    records = []
    for e in eng.store.experiments():
        if e.kind in ENGINE_KINDS or e.parent_id is None or e.run_result != RunResult.SUCCEEDED:
            continue
        parent = eng.store.experiment(e.parent_id)
        if parent.run_result != RunResult.SUCCEEDED:
            continue
        ref = early_stop.reference(eng.store, parent)
        groups = early_stop.seed_groups(eng.store, ref.metric_curve)
        parent_metric = eng.ledger.score(parent.id)
        beat_parent = e.metric is not None and parent_metric is not None and \
            eng.ledger.goal.better_than(e.metric, parent_metric)
        records.append({"task": task.name, "goal": str(task.goal), "exp": e.id, "title": e.title,
                        "seconds": e.seconds or 0.0, "winner": e.status in WINNERS, "beat_parent": beat_parent,
                        "curve": e.curve if ref.metric_curve else e.loss_curve, "parent_id": ref.parent_id,
                        "parent_curve": ref.curve, "metric_curve": ref.metric_curve, "groups": groups,
                        "noise": ref.noise_rel})
    eng.store.close()
    return records


def judged(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rule, as the engine's defaults set it, replayed on each record: where it stops and what that saves."""
    from nightlab.agent import early_stop
    from nightlab.agent.config import AutonomyConfig
    from nightlab.agent.goal import Goal

    on = AutonomyConfig()
    rows = []
    for r in records:
        ref = early_stop.reference_of(r["parent_id"], r["parent_curve"], r["metric_curve"], r["groups"])
        got = early_stop.first_stop(r["curve"], ref, goal=Goal(r["goal"]), min_fraction=on.early_stop_after,
                                    margin=on.early_stop_margin, until=on.early_stop_until)
        last = max((p[0] for p in r["curve"]), default=0.0)
        share = (1 - got.step / last) if got is not None and last > 0 else 0.0
        rows.append({**r, "noise": ref.noise_rel, "stopped": got is not None, "at": got.fraction if got else None,
                     "saved": r["seconds"] * share})
    return rows


def report(name: str, rows: list[dict[str, Any]], extra: str = "") -> None:
    stopped = [r for r in rows if r["stopped"]]
    print(f"{name:14s} runs judged {len(rows):2d}  stopped {len(stopped):2d}  "
          f"run-s {sum(r['seconds'] for r in rows):7.1f}  saved {sum(r['saved'] for r in rows):6.1f}  "
          f"winners lost {sum(r['winner'] for r in stopped)}  "
          f"beat parent {sum(r['beat_parent'] for r in stopped)}{extra}", flush=True)
    for r in stopped:
        print(f"    #{r['exp']} {r['title'][:60]!r} stopped at {100 * r['at']:.0f}%, saved {r['saved']:.1f} s"
              f"{', A WINNER' if r['winner'] else ''}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="*", type=Path,
                    help="task folders or real repositories (default: all of ../shared/tasks and ../shared/repos)")
    ap.add_argument("--budget", type=int, default=10, help="training runs per session (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", type=Path, help="write the judged runs' curves here (JSON), for --replay")
    ap.add_argument("--replay", type=Path, help="judge the curves a --save wrote, without training")
    args = ap.parse_args()
    if args.replay is not None:
        try:
            saved = json.loads(args.replay.read_text())
            records, header = saved["records"], saved["header"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            print(f"error: cannot read {args.replay}: {err}", file=sys.stderr)
            return 2
        print(f"replay of {args.replay} ({header}) with the rule as of now", flush=True)
        all_rows = judged(records)
        for name in dict.fromkeys(r["task"] for r in all_rows):
            report(name, [r for r in all_rows if r["task"] == name])
        total_line(all_rows)
        return 0
    folders = args.tasks
    if not folders:
        if not DEFAULT_TASKS.is_dir():
            print(f"skipped: {DEFAULT_TASKS} is absent (the shared tasks are not part of a clone)")
            return 0
        folders = sorted(p for p in DEFAULT_TASKS.iterdir() if (p / "task.toml").is_file())
        if DEFAULT_REPOS.is_dir():
            folders += sorted(p for p in DEFAULT_REPOS.iterdir() if (p / "repo.toml").is_file())
    header = (f"bench/early_stop.py --budget {args.budget} --seed {args.seed} on {len(folders)} task(s), "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(header, flush=True)
    all_records: list[dict[str, Any]] = []
    all_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nightlab-early-stop-") as tmp:
        for folder in folders:
            started = time.monotonic()
            work = Path(tmp) / folder.name
            work.mkdir()
            try:
                records = session(folder, work, args.budget, args.seed)
            except Exception as err:  # one task's trouble is reported, the others still run
                print(f"{folder.name}: session failed: {type(err).__name__}: {err}", flush=True)
                continue
            finally:
                shutil.rmtree(work, ignore_errors=True)
            all_records += records
            rows = judged(records)
            all_rows += rows
            report(folder.name, rows, f"  ({time.monotonic() - started:.0f} s)")
            if args.save is not None:  # after each task: a bench cut short keeps what it measured
                args.save.write_text(json.dumps({"header": header, "records": all_records}))
    total_line(all_rows)
    return 0


def total_line(all_rows: list[dict[str, Any]]) -> None:
    total = sum(r["seconds"] for r in all_rows)
    saved = sum(r["saved"] for r in all_rows)
    stopped = [r for r in all_rows if r["stopped"]]
    print(f"TOTAL runs judged {len(all_rows)}, stopped {len(stopped)}, run-seconds {total:.1f}, saved {saved:.1f} "
          f"({100 * saved / total if total else 0:.0f}%), winners lost {sum(r['winner'] for r in stopped)}, "
          f"stopped runs that beat their parent {sum(r['beat_parent'] for r in stopped)}")


if __name__ == "__main__":
    raise SystemExit(main())
