"""Learning benchmark: the learned policy against the untrained builtin on tasks it never saw, leave one task out.

    python bench/learn.py --tasks DIR [DIR ...] [--budget 12] [--seeds 3] [--explore-budget 12]
        [--explore-seeds 1] [--workers N] [--timeout 90 [NAME=SECONDS ...]] [--work DIR]

1. Explore: on every task, --explore-seeds `nightlab explore` sessions (ExplorePolicy: the builtin's candidates
   drawn at temperature 1.0, no model) of --explore-budget runs at training seeds 100, 101, ..., each session's steps
   recorded into an experience store of its own (XDG_DATA_HOME is pointed at a folder of this benchmark's; the
   user's store is never read or written); a task's steps are those of all its sessions.
2. For each held-out task T: `nightlab learn`'s trainer (agent/learn.py, default options: duration-aware policy
   gradient, exploration bonus) on the explored steps of every task but T; then T is run with the builtin policy
   and with the learned policy (that model, `[learned]` defaults: temperature 0.3, online updates) for --seeds
   seeds × --budget runs: paired seeds (seed s is the search seed and the training seed of both), the same engine,
   sandbox, timeout, slot and run cache as bench/search.py (whose harness this reuses; its docstring says how the
   cache replays runs faithfully). These sessions share nothing into any store.
   With --own, each task is run a third time, by the learned policy with one model trained on every task's explored
   steps, its own included (explored at seeds 100+, run at 0..S-1): what a user gets who explored their own
   project before — not held out, so it is shown beside the goal's figure, never in it.
3. It prints, per held-out task and overall: gap closed (mean ± sd over seeds, as in bench/search.py), runs to
   half the gap, the per-seed paired difference learned − builtin, and the goal line (learned ahead by ≥ 0.05
   mean gap closed); then how long `nightlab learn` takes on 1,000 steps (the real command on a store of 1,000
   steps resampled from the explored ones) and how long the model file takes to load.

Tasks are task folders (task.toml) and real repositories (repo.toml, e.g. ../shared/repos/nanogpt). A repository
has no reference: its "gap closed" is the improvement over its own baseline run (as in bench/search.py), another
unit, so its row is shown but left out of the mean. A slow task gets its own run timeout: `--timeout 90
nanogpt-shakespeare-char=400` (by the task's name or its folder's).

A leave-one-task-out over every task takes hours on a small machine. With `--work DIR` the benchmark keeps its
working folder (each task's explore store, the models, every finished session's result) and an invocation with the
same DIR and settings picks up where an earlier one was cut off: finished sessions are taken as they are, a model
already trained is used again, and only the rest runs (an explore session cut off halfway is run again from the
start). More --seeds than before adds sessions; other settings that differ are refused, naming the setting.

Results go to bench/results/learn-<timestamp>.json and .md (--results DIR elsewhere; and --json FILE). The machine
is usually shared: the figures come with the load average seen while they were taken.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import search  # noqa: E402

EXPLORE_SEED = 100  # exploration trains at seeds no evaluation uses
METHODS = ("builtin", "learned")
OWN = "learned-own"  # --own: the learned policy with a model whose data include the task's own explore sessions


def _work_combo(combo: search.Combo, data_dir: str, model: str) -> search.ComboResult:
    """One session of `combo.method` ("explore", "builtin" or "learned") on its task, in a pool worker."""
    os.environ["XDG_DATA_HOME"] = data_dir  # explore: the task's own experience store; else a throwaway one
    from nightlab.agent.config import LearnedConfig
    from nightlab.agent.policy.builtin import BuiltinPolicy
    from nightlab.agent.policy.learned import ExplorePolicy, LearnedPolicy
    from nightlab.agent.policy.scorer import Scorer

    def method(task: search.Task, repo: Path, layout: search.Layout, command: str, slot: Any,
               res: search.ComboResult, ledger: Path) -> None:
        policy: Any
        if combo.method == "explore":
            policy = ExplorePolicy(None, temperature=1.0)
        elif combo.method in ("learned", OWN):
            d = LearnedConfig()
            policy = LearnedPolicy(Scorer.load(Path(model)), temperature=d.temperature, online_lr=d.online_lr,
                                   min_support=d.min_support)
        else:
            policy = BuiltinPolicy()
        search._run_nightlab(combo, task, repo, layout, command, slot, res, ledger, policy=policy,
                             share=combo.method == "explore")

    return search.run_in_task_repo(combo, method)


def _run_all(jobs: list[tuple[search.Combo, str, str]], workers: list[Any],
             done: Callable[[search.ComboResult], None]) -> None:
    if len(workers) <= 1:
        search._SLOT = workers[0] if workers else None
        for job in jobs:
            done(_work_combo(*job))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for s in workers:
        queue.put(s)
    with ProcessPoolExecutor(max_workers=len(workers), mp_context=ctx, initializer=search._init_worker,
                             initargs=(queue,)) as ex:
        for f in as_completed([ex.submit(_work_combo, *job) for job in jobs]):
            done(f.result())


def _steps_of(data_dir: Path) -> list[dict[str, Any]]:
    from nightlab.agent import experience

    return experience.user_steps(data_dir / "nightlab" / experience.USER_DB)


def learn_speed(steps: list[dict[str, Any]], n: int, work: Path) -> dict[str, Any]:
    """`nightlab learn` (the real command, torch import included) on a store of n steps resampled from `steps`,
    and the resulting model file's size and load time."""
    from nightlab.agent import experience
    from nightlab.agent.policy.scorer import Scorer

    rng = random.Random(0)
    db = work / "speed" / "experience.db"
    shutil.rmtree(db.parent, ignore_errors=True)  # a kept work folder's from an earlier invocation
    db.parent.mkdir(parents=True, exist_ok=True)
    with experience._user_db(db) as conn:
        cols = ("project", "format", "t", "kind", "policy", "state", "candidates", "chosen", "reward",
                "reward_parts", "stage", "seconds", "outcome", "failure_class")
        for i in range(n):
            s = rng.choice(steps)
            row = [s.get(c) for c in cols]
            row = [json.dumps(v) if isinstance(v, dict | list) else v for v in row]
            conn.execute(f"INSERT INTO steps (uid, {', '.join(cols)}) VALUES (?{', ?' * len(cols)})",
                         [f"speed:{i}", *row])
    model = work / "speed" / "policy.json"
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "nightlab", "learn", "--store", str(db), "-o", str(model)],
                       capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        return {"error": p.stderr.strip()}
    loads = []
    for _ in range(5):
        t1 = time.perf_counter()
        Scorer.load(model)
        loads.append(time.perf_counter() - t1)
    return {"steps": n, "learn_wall_s": round(wall, 2), "learn_said": p.stdout.strip().splitlines()[0],
            "model_kb": round(model.stat().st_size / 1024, 1),
            "load_ms_median": round(statistics.median(loads) * 1e3, 2)}


def _row(task: search.Task, rs: list[search.ComboResult]) -> dict[str, Any]:
    rs = sorted(rs, key=lambda r: r.seed)
    gaps = [r.gap for r in rs]
    halves = [r.runs_to_half for r in rs if r.runs_to_half is not None]
    return {"gap_mean": statistics.fmean(gaps) if gaps else None,
            "gap_sd": statistics.stdev(gaps) if len(gaps) > 1 else 0.0, "gaps": gaps,
            "half_mean": statistics.fmean(halves) if halves else None, "half_reached": len(halves),
            "seeds": len(rs), "failed": sum(r.failed for r in rs), "runs": sum(len(r.runs) for r in rs),
            "errors": [r.error for r in rs if r.error]}


def summarise(tasks: dict[str, Any], results: list[search.ComboResult],
              repos: Collection[str] = ()) -> dict[str, Any]:
    """Per held-out task the two policies' rows and the paired differences; the mean and the paired tests over the
    tasks with a reference only (`repos`: real repositories, whose gap is an improvement over their baseline)."""
    rows: dict[str, dict[str, Any]] = {}
    for name, task in tasks.items():
        by = {m: [r for r in results if r.task == name and r.method == m] for m in METHODS}
        if not all(by.values()):
            continue
        row: dict[str, Any] = {m: _row(task, by[m]) for m in METHODS}
        seeds = sorted({r.seed for r in by["builtin"]} & {r.seed for r in by["learned"]})
        gap = {m: {r.seed: r.gap for r in by[m]} for m in METHODS}
        row["paired"] = [round(gap["learned"][s] - gap["builtin"][s], 4) for s in seeds]
        own = {r.seed: r.gap for r in results if r.task == name and r.method == OWN}
        if own:
            row[OWN] = _row(task, [r for r in results if r.task == name and r.method == OWN])
            row["paired_own"] = [round(own[s] - gap["builtin"][s], 4) for s in seeds if s in own]
        rows[name] = row
    scored = {n: r for n, r in rows.items() if n not in repos}
    mean = {m: statistics.fmean(r[m]["gap_mean"] for r in scored.values()) for m in METHODS} if scored else {}
    diffs = [d for r in scored.values() for d in r["paired"]]
    owns = [r[OWN]["gap_mean"] for r in scored.values() if OWN in r]
    own = {"mean_gap": statistics.fmean(owns), "tasks": len(owns),
           "paired_mean": statistics.fmean(d for r in scored.values() for d in r.get("paired_own", []))} \
        if owns and len(owns) == len(scored) else None
    return {"own": own, "rows": rows, "repos": sorted(set(repos) & set(rows)),
            "mean_gap": {m: mean.get(m) for m in METHODS},
            "advantage": (mean["learned"] - mean["builtin"]) if scored else None,
            "paired_mean": statistics.fmean(diffs) if diffs else None,
            "paired_wins": sum(d > search.paired().TIE for d in diffs),
            "paired_losses": sum(d < -search.paired().TIE for d in diffs), "paired_n": len(diffs),
            "sign_p": search.paired().sign_test_p(sum(d > search.paired().TIE for d in diffs),
                                                  sum(d < -search.paired().TIE for d in diffs)),
            "wilcoxon_p": search.paired().wilcoxon_p(diffs)}


def ceiling(results: Sequence[search.ComboResult], others: Sequence[search.ComboResult] = (),
            repos: Collection[str] = ()) -> dict[str, Any] | None:
    """How much any order of the builtin's candidates could win here: for each task (with a reference), the best gap
    closed any session reached — this benchmark's explore, builtin and learned sessions, and `others` (sessions of the
    same tasks from other reports, bench/search.py's peers included) — less the builtin's, per held-out task-seed; the
    mean is what an oracle matching the best session ever seen would gain. The learned policy reorders the builtin's
    candidates, so a goal above this ceiling cannot be met by ordering on these tasks (the best session is a bound
    that could still be passed: it is the best seen, not the best possible)."""
    builtin = [r for r in results if r.method == "builtin" and r.task not in repos and not r.error]
    if not builtin:
        return None
    best: dict[str, tuple[float, str]] = {}
    seen: set[tuple[Any, ...]] = set()  # a session merged into several reports counts once
    for r in (*results, *others):
        key = (r.task, r.method, r.seed, r.gap, r.best, len(r.runs))
        if r.error or r.task in repos or key in seen:
            continue
        seen.add(key)
        if r.task not in best or r.gap > best[r.task][0]:
            best[r.task] = (r.gap, f"{r.method} seed {r.seed}")
    room = sorted(((max(0.0, best[r.task][0] - r.gap), r.task, r.seed) for r in builtin), reverse=True)
    return {"gain": statistics.fmean(d for d, _, _ in room), "n": len(room), "sessions": len(seen),
            "best": {t: {"gap": round(g, 4), "by": by} for t, (g, by) in sorted(best.items())},
            "most": [{"task": t, "seed": s, "room": round(d, 4)} for d, t, s in room[:4] if d > 0]}


def markdown(meta: dict[str, Any], summary: dict[str, Any]) -> str:
    f = search._fmt
    lines = [f"# Learning benchmark ({meta['created']})", "", f"`{meta['command']}`", "",
             f"leave one task out; explore {meta.get('explore_seeds', 1)} × {meta['explore_budget']} runs per task "
             f"(seed {EXPLORE_SEED}+); held-out "
             f"task: builtin vs learned, {meta['budget']} runs × {meta['seeds']} paired seed(s); {meta['workers']} "
             f"worker(s) on {meta['cpus']} core(s), load average {meta['load']} (a shared machine).", "",
             "| held-out task | trained on (steps; classes of move it may reorder) | builtin gap closed |"
             " learned gap closed | learned − builtin per "
             "seed | runs to half gap (builtin / learned) |", "|---|---|---|---|---|---|"]
    owns: list[str] = []
    for name, r in summary["rows"].items():
        b, le = r["builtin"], r["learned"]
        if OWN in r:
            owns.append(f"| {name} | {r[OWN]['gap_mean']:.2f} ± {r[OWN]['gap_sd']:.2f} | "
                        f"{', '.join(f'{d:+.2f}' for d in r.get('paired_own', []))} |")

        def half(x: dict[str, Any]) -> str:
            return "—" if x["half_mean"] is None else f"{x['half_mean']:.1f} ({x['half_reached']}/{x['seeds']})"

        backed = meta.get("may_reorder", {}).get(name)
        repo = " (a repository: improvement over its baseline, not in the mean)" if name in summary.get("repos",
                                                                                                       ()) else ""
        lines.append(f"| {name}{repo} | {meta['trained_on'].get(name, '?')}"
                     f"{'' if backed is None else f'; {len(backed)}'} | {b['gap_mean']:.2f} ± {b['gap_sd']:.2f} | "
                     f"{le['gap_mean']:.2f} ± {le['gap_sd']:.2f} | {', '.join(f'{d:+.2f}' for d in r['paired'])} | "
                     f"{half(b)} / {half(le)} |")
    m = summary["mean_gap"]
    lines += ["", f"Mean gap closed on held-out tasks (with a reference): builtin {f(m['builtin'], 3)}, "
              f"learned {f(m['learned'], 3)}; "
              f"learned − builtin {f(summary['advantage'], 3)} (paired over {summary['paired_n']} task-seeds: "
              f"{summary['paired_wins']} ahead, {summary['paired_losses']} behind; sign test p = "
              f"{f(summary['sign_p'], 3)}, Wilcoxon p = {f(summary['wilcoxon_p'], 3)}). Goal ≥ +0.05: "
              f"{'met' if (summary['advantage'] or 0) >= 0.05 else 'not met'}."]
    own = summary.get("own")
    if owns:
        lines += ["", "Not held out (--own): the learned policy with one model trained on every task's explored steps, "
                  "the task's own included (explored at other seeds), against the same builtin sessions:", "",
                  "| task | learned, own experience included | − builtin per seed |", "|---|---|---|", *owns]
        if own:
            lines += ["", f"Mean gap closed: {f(own['mean_gap'], 3)} (builtin {f(m['builtin'], 3)}; paired "
                      f"{f(own['paired_mean'], 3)} over the task-seeds)."]
        lines.append("")
    c = summary.get("ceiling")
    if c:
        most = "; ".join(f"{x['task']} seed {x['seed']} {x['room']:+.2f}" for x in c["most"]) or "nowhere"
        lines.append(f"The ceiling any order of the builtin's candidates has here: an oracle matching, per task, the "
                     f"best gap closed any of {c['sessions']} sessions reached gains {c['gain']:+.3f} over the "
                     f"builtin (mean over {c['n']} task-seeds; most room: {most}). "
                     + ("The +0.05 goal lies above it: ordering alone cannot reach it on these tasks."
                        if c["gain"] < 0.05 else "The +0.05 goal lies within it."))
    sp = meta.get("speed") or {}
    if sp.get("learn_wall_s") is not None:
        lines.append(f"`nightlab learn` on {sp['steps']} steps: {sp['learn_wall_s']:.1f} s wall (the command, torch "
                     f"import included; it said: {sp['learn_said']}); model file {sp['model_kb']} kB, loads in "
                     f"{sp['load_ms_median']} ms (median of 5).")
    elif sp:
        lines.append(f"`nightlab learn` speed: {sp.get('error')}")
    return "\n".join(lines) + "\n"


def _sessions(path: Path) -> list[search.ComboResult]:
    """Every session a saved report (learn-*.json or search-*.json) holds."""
    data = json.loads(path.read_text())
    return [search.ComboResult(**{k: v for k, v in r.items() if k in search.ComboResult.__dataclass_fields__})
            for r in data.get("results", [])]


def report(path: Path, also: Sequence[Path] = ()) -> int:
    """The tables of a saved run, summarised with this file's code (the per-seed results are all in the JSON);
    `also`: other reports whose sessions of the same tasks count for the ceiling."""
    data = json.loads(path.read_text())
    every = _sessions(path)
    results = [r for r in every if r.method in (*METHODS, OWN)]
    tasks = {r.task: None for r in results}
    repos = {n for n, k in data["meta"].get("kinds", {}).items() if k == "repo"}
    summary = summarise(tasks, results, repos)
    others = [r for p in also for r in _sessions(p) if r.task in tasks]
    summary["ceiling"] = ceiling(every, others, repos)
    print(markdown(data["meta"], summary), end="")
    return 0


def parse_timeouts(items: Sequence[str], names: dict[str, str]) -> tuple[float, dict[str, float]]:
    """`--timeout 90 nanogpt-shakespeare-char=400` (bench/search.py's parser, with 90 s when no bare number is
    given)."""
    return search.parse_timeouts(items, names, 90.0)


class WorkFolder:
    """The benchmark's working folder, kept with --work so a cut-off invocation can be picked up (module docstring):
    settings.json (what must match), data/<task>-<seed>/ (explore stores), models/, done/ (finished sessions)."""

    def __init__(self, root: Path, settings: dict[str, Any]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        saved = root / "settings.json"
        if saved.is_file():
            before = json.loads(saved.read_text())
            for key, value in settings.items():
                if before.get(key) != value:
                    raise ValueError(f"--work {root}: its sessions ran with {key} = {before.get(key)!r}, not "
                                     f"{value!r}; use another folder, or the same settings")
        else:
            saved.write_text(json.dumps(settings, indent=1))

    def _done(self, method: str, task: str, seed: int) -> Path:
        return self.root / "done" / f"{method}-{task}-{seed}.json"

    def finished(self, method: str, task: str, seed: int) -> search.ComboResult | None:
        path = self._done(method, task, seed)
        if not path.is_file():
            return None
        saved = json.loads(path.read_text())
        return search.ComboResult(**{k: v for k, v in saved.items() if k in search.ComboResult.__dataclass_fields__})

    def finish(self, r: search.ComboResult) -> None:
        path = self._done(r.method, r.task, r.seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(r.__dict__, indent=1, default=str))
        tmp.replace(path)  # a session is finished once its whole result is written


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--tasks", nargs="+", type=Path, default=[], help="task folders (with task.toml); required "
                                                                       "unless --report")
    ap.add_argument("--budget", type=int, default=12, help="training runs per held-out session")
    ap.add_argument("--seeds", type=int, default=3, help="paired seeds 0..S-1")
    ap.add_argument("--explore-budget", type=int, default=12, help="training runs of each task's explore session")
    ap.add_argument("--explore-seeds", type=int, default=1,
                    help="explore sessions per task, at training seeds 100, 101, ... (more steps to learn from)")
    ap.add_argument("--workers", type=int, default=0, help="parallel sessions; 0 = one per CPU slot")
    ap.add_argument("--timeout", nargs="+", default=["90"], metavar="SECONDS|NAME=SECONDS",
                    help="seconds per training run, and per task where one needs more (NAME=SECONDS)")
    ap.add_argument("--work", type=Path, default=None,
                    help="keep the working folder here; the same folder again picks up a cut-off invocation")
    ap.add_argument("--isolation", choices=["auto", "bwrap", "landlock", "none"], default="auto")
    ap.add_argument("--cache", type=Path, default=search.CACHE, help="the run cache (shared with bench/search.py)")
    ap.add_argument("--speed-steps", type=int, default=1000, help="steps for the `nightlab learn` timing")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--results", type=Path, default=search.RESULTS, help="where learn-<timestamp>.json/.md go")
    ap.add_argument("--report", type=Path, default=None, help="only print the tables of a saved learn-*.json again")
    ap.add_argument("--own", action="store_true",
                    help="also run each task with a model whose data include its own explore sessions (not held out)")
    ap.add_argument("--also", nargs="+", type=Path, default=[], metavar="JSON",
                    help="other reports (search-*.json, learn-*.json) whose sessions of these tasks count for the "
                         "ceiling any reorder has")
    args = ap.parse_args(argv)
    if args.report is not None:  # --tasks is not needed to re-read a result
        return report(args.report, args.also)
    if not args.tasks:
        ap.error("the following arguments are required: --tasks")
    folders = [d for d in args.tasks if (d / search.ANSWER_SHEET).is_file() or (d / search.REPO_SHEET).is_file()]
    if len(folders) < 2:
        ap.error("leave-one-task-out needs at least two task folders (with task.toml or repo.toml)")
    tasks = {t.name: t for t in (search.load_task(d) for d in folders)}
    names = search.task_names(tasks)
    try:
        default_timeout, task_timeouts = parse_timeouts(args.timeout, names)
    except ValueError as err:
        ap.error(str(err))
    cache = args.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    work = args.work.resolve() if args.work else Path(tempfile.mkdtemp(prefix="bench-learn-"))
    keep: WorkFolder | None = None
    if args.work:
        settings = {"tasks": sorted(tasks), "budget": args.budget, "explore_budget": args.explore_budget,
                    "explore_seeds": max(1, args.explore_seeds), "isolation": args.isolation,
                    "timeouts": {n: task_timeouts.get(n, default_timeout) for n in sorted(tasks)}}
        try:
            keep = WorkFolder(work, settings)
        except ValueError as err:
            ap.error(str(err))
    workers = search.worker_slots(args.workers)
    base = search.Combo(task=Path(), method="", seed=0, budget=args.budget, cache=cache, timeout=default_timeout,
                        isolation=args.isolation, tpe_startup=0)

    def combo(name: str, method: str, seed: int, budget: int | None = None) -> search.Combo:
        return replace(base, task=tasks[name].folder, method=method, seed=seed, budget=budget or args.budget,
                       timeout=task_timeouts.get(name, default_timeout))

    def to_run(jobs: list[tuple[search.Combo, str, str]], names_of: list[str],
               into: list[search.ComboResult]) -> list[tuple[search.Combo, str, str]]:
        """The jobs whose sessions a kept work folder has not finished; the finished ones' results go `into`."""
        if keep is None:
            return jobs
        left = []
        for (c, data, model), name in zip(jobs, names_of, strict=True):
            r = keep.finished(c.method, name, c.seed)
            if r is None:
                left.append((c, data, model))
                if c.method == "explore":  # cut off halfway: its store starts again from nothing
                    shutil.rmtree(data, ignore_errors=True)
            else:
                into.append(r)
        if len(left) < len(jobs):
            log(f"  {len(jobs) - len(left)} session(s) taken from {work}, {len(left)} to run")
        return left
    command = "python bench/learn.py " + " ".join(shlex.quote(a) for a in argv)
    t0 = time.monotonic()
    log = print

    def said(into: list[search.ComboResult]) -> Callable[[search.ComboResult], None]:
        def done(r: search.ComboResult) -> None:
            into.append(r)
            if keep is not None and not r.error:
                keep.finish(r)
            note = f"  ERROR {r.error}" if r.error else ""
            log(f"  {r.task} {r.method} seed {r.seed}: gap {r.gap:.2f}, {len(r.runs)} runs, {r.failed} failed, "
                f"trained {r.trained}, cached {r.cached} ({r.wall_s:.0f} s; {time.monotonic() - t0:.0f} s in)"
                f"{note}")
        return done

    try:
        # 1. explore every task into its own store
        log(f"exploring {len(tasks)} task(s), {args.explore_seeds} session(s) of {args.explore_budget} runs each ...")
        explored: list[search.ComboResult] = []
        seeds = range(EXPLORE_SEED, EXPLORE_SEED + max(1, args.explore_seeds))
        pairs = [(n, s) for s in seeds for n in tasks]
        jobs = [(combo(n, "explore", s, args.explore_budget), str(work / "data" / f"{n}-{s}"), "") for n, s in pairs]
        _run_all(to_run(jobs, [n for n, _ in pairs], explored), workers, said(explored))
        steps = {n: [st for s in seeds for st in _steps_of(work / "data" / f"{n}-{s}")] for n in tasks}
        # 2. a model per held-out task, from the others' steps
        from nightlab.agent.config import LearnedConfig
        from nightlab.agent.learn import LearnOptions, train

        models, trained_on, backed = {}, {}, {}
        from nightlab.agent.policy.scorer import Scorer

        floor = LearnedConfig().min_support
        for n in tasks:
            path, about = work / "models" / f"{n}.json", work / "models" / f"{n}.about.json"
            if keep is not None and path.is_file() and about.is_file():  # trained before the cut: the same model
                models[n], trained_on[n] = path, json.loads(about.read_text())["steps"]
                support = Scorer.load(path).support
                backed[n] = sorted(k for k, c in support.items() if c >= floor)
                log(f"  model for held-out {n}: taken from {path}")
                continue
            others = [s for m, ss in steps.items() if m != n for s in ss]
            try:
                res = train(others, LearnOptions())
            except ValueError as err:
                log(f"  {n}: no model ({err}); skipped")
                continue
            models[n] = path
            res.scorer.save(path)
            about.write_text(json.dumps({"steps": res.steps, "projects": res.projects}))
            trained_on[n] = res.steps
            backed[n] = sorted(k for k, c in res.scorer.support.items() if c >= floor)
            log(f"  model for held-out {n}: {res.steps} steps of {res.projects} task(s), {res.seconds:.1f} s; "
                f"may reorder {len(backed[n])} of {len(res.scorer.support)} classes of move: {', '.join(backed[n])}")
        # 3. builtin vs learned on each held-out task, paired seeds
        results: list[search.ComboResult] = []
        own_model = work / "models" / "all.json"
        if args.own and not (keep is not None and own_model.is_file()):  # one model on every task's steps
            res = train([s for ss in steps.values() for s in ss], LearnOptions())
            res.scorer.save(own_model)
            log(f"  model with every task's own steps (--own): {res.steps} steps of {res.projects} task(s)")
        methods = (*METHODS, OWN) if args.own else METHODS
        triples = [(n, m, s) for s in range(args.seeds) for n in models for m in methods]
        jobs = [(combo(n, m, s), str(work / "throwaway"), str(own_model if m == OWN else models[n]))
                for n, m, s in triples]
        log(f"held-out sessions: {len(jobs)} ...")
        _run_all(to_run(jobs, [n for n, _, _ in triples], results), workers, said(results))
        all_steps = [s for ss in steps.values() for s in ss]
        speed = learn_speed(all_steps, args.speed_steps, work) if all_steps else {"error": "no explored step"}
        repos = {n for n, t in tasks.items() if t.kind == "repo"}
        summary = summarise(tasks, results, repos)
        others = [r for p in args.also for r in _sessions(p) if r.task in tasks]
        summary["ceiling"] = ceiling(explored + results, others, repos)
        meta = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command, "budget": args.budget,
                "timeout": default_timeout, "timeouts": task_timeouts,
                "kinds": {n: t.kind for n, t in tasks.items()},
                "seeds": args.seeds, "explore_budget": args.explore_budget, "explore_seeds": len(seeds),
                "workers": len(workers),
                "cpus": os.cpu_count(), "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
                "trained_on": trained_on, "may_reorder": backed,
                "explored_steps": {n: len(s) for n, s in steps.items()}, "speed": speed,
                "wall_s": round(time.monotonic() - t0, 1)}
        text = markdown(meta, summary)
        data = {"meta": meta, "summary": summary,
                "results": [r.__dict__ for r in sorted(explored + results, key=lambda r: (r.task, r.method, r.seed))]}
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.results.mkdir(parents=True, exist_ok=True)
        paths = [args.results / f"learn-{stamp}.json", args.results / f"learn-{stamp}.md"]
        paths[0].write_text(json.dumps(data, indent=1, default=str))
        paths[1].write_text(text)
        if args.json:
            args.json.write_text(json.dumps(data, indent=1, default=str))
        print()
        print(text, end="")
        print(f"\nwritten: {', '.join(map(str, paths))}")
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
