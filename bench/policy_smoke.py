"""Run the builtin policy in a loop on a task folder, without the engine, and print what each move reached.

    python bench/policy_smoke.py TASK_DIR --command "python train.py" --regex 'acc=([0-9.]+)' \
        --goal maximize --runs 6 [--timeout 120] [--seed 0] [--seed-arg "--seed {seed}"]

The folder is copied to a temporary directory (one copy per experiment); the command runs there with subprocess;
the metric is the last match of the regex's group 1 in stdout. The policy sees a PolicyContext built from these
runs (files by experiment, loss curves, failure classes) exactly as the engine would build it, minus git.
Files named task.toml are never copied: they are a benchmark's answer sheet, not part of the project.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nightlab.agent import diagnose
from nightlab.agent.edits import apply_edits
from nightlab.agent.metrics import parse_loss_curve
from nightlab.agent.policy.base import ExperimentView, PolicyContext, Proposal
from nightlab.agent.policy.builtin import BuiltinPolicy

_TEXT_EXTS = (".py", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".txt", ".md")
_SKIP = {"task.toml"}


def snapshot(folder: Path) -> dict[str, str]:
    """The editable text files of the task: code and configs (data files stay where they are)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and p.suffix in _TEXT_EXTS and p.name not in _SKIP and p.stat().st_size < 400_000 \
                and not rel.startswith(".") and "__pycache__" not in rel:
            out[rel] = p.read_text(errors="replace")
    return out


def run_one(src: Path, files: dict[str, str], command: str, seed_arg: str, seed: int, timeout: float,
            regex: str, workdir: Path) -> dict[str, Any]:
    """Materialise the experiment's files over a copy of the task folder and run it."""
    if workdir.exists():
        shutil.rmtree(workdir)
    shutil.copytree(src, workdir, ignore=shutil.ignore_patterns(*_SKIP, "__pycache__"))
    for rel, text in files.items():
        (workdir / rel).write_text(text)
    cmd = f"{command} {seed_arg.format(seed=seed)}".strip()
    env = {**os.environ, "TASK_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.time()
    state = "succeeded"
    try:
        proc = subprocess.run(cmd, shell=True, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
        out, err, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = (e.stderr or b"").decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        code, state = None, "timed_out"
    secs = time.time() - t0
    hits = [m.group(1) for m in re.finditer(regex, out)]
    vals = []
    for h in hits:
        try:
            vals.append(float(h))
        except ValueError:
            vals.append(math.nan)
    metric = vals[-1] if vals else None
    if metric is not None and not math.isfinite(metric):
        metric = None
    log = out + ("\n" + err if err else "")
    failure = None
    if state != "succeeded" or code != 0 or metric is None:
        state = state if state == "timed_out" else "failed"
        failure = diagnose.classify_failure(log, code, state,
                                            metric_error=None if metric is not None else "no metric in the output")
    return {
        "metric": metric, "seconds": secs, "state": state, "log": log,
        "curve": [(i, v) for i, v in enumerate(vals) if math.isfinite(v)],
        "loss_curve": parse_loss_curve(log), "failure": failure,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("task", type=Path)
    ap.add_argument("--command", default="python train.py")
    ap.add_argument("--regex", required=True, help="group 1 is the metric; last match wins")
    ap.add_argument("--goal", choices=["maximize", "minimize"], required=True)
    ap.add_argument("--runs", type=int, default=6, help="experiments after the baseline")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seed-arg", default="--seed {seed}")
    ap.add_argument("--noise", type=float, default=0.0, help="improvements at most this large do not count")
    args = ap.parse_args()
    src = args.task.resolve()
    if args.command.startswith("python "):
        args.command = f"{sys.executable} {args.command[len('python '):]}"
    base_files = snapshot(src)
    sign = 1.0 if args.goal == "maximize" else -1.0
    policy = BuiltinPolicy()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="policy_smoke_"))
    views: list[ExperimentView] = []
    files_of: dict[int, dict[str, str]] = {}
    best_id: int | None = None
    best_val: float | None = None

    def ctx(runs_left: int) -> PolicyContext:
        return PolicyContext(
            root=str(src), metric="metric", goal=args.goal, editable=sorted(base_files), protected=[],
            experiments=list(views), best_id=best_id, baseline_id=1, noise_floor=args.noise, brief="",
            timeout_s=args.timeout, runs_left=runs_left,
            read_file=lambda i, p: files_of.get(i if i is not None else 1, base_files).get(p, ""), rng=rng,
        )

    def record(prop: Proposal | None, parent: int | None) -> tuple[int, dict[str, str]] | None:
        eid = len(views) + 1
        if prop is None:
            return eid, dict(base_files)
        parent_files = files_of[parent] if parent is not None else base_files
        changed = apply_edits(prop.edits, lambda p: parent_files.get(p), sorted(base_files), [])
        return eid, {**parent_files, **changed}

    queue: list[tuple[Proposal | None, int | None]] = [(None, None)]
    total = args.runs + 1
    print(f"{'id':>3} {'par':>3}  {'metric':>8}  {'secs':>5}  {'status':<10} title")
    while len(views) < total:
        if not queue:
            prop = policy.propose(ctx(total - len(views)))
            if prop is None:
                print("policy: nothing left to try")
                break
            queue.append((prop, prop.parent_id if prop.parent_id is not None else best_id))
        prop, parent = queue.pop(0)
        got = record(prop, parent)
        assert got is not None
        eid, files = got
        files_of[eid] = files
        res = run_one(src, files, args.command, args.seed_arg, args.seed, args.timeout, args.regex, tmp / f"e{eid}")
        metric = res["metric"]
        status = "failed" if metric is None else "discarded"
        if metric is not None and (best_val is None or sign * (metric - best_val) > args.noise):
            best_id, best_val, status = eid, metric, "kept"
        f = res["failure"]
        view = ExperimentView(
            id=eid, parent_id=parent if prop is not None else None, title=prop.title if prop else "baseline",
            kind=prop.kind if prop else "baseline", status=status,
            run_result="succeeded" if metric is not None else
            ("timed_out" if res["state"] == "timed_out" else "failed"),
            metric=metric, curve=res["curve"], loss_curve=res["loss_curve"], knobs=dict(prop.knobs) if prop else {},
            failure_class=f.cls if f else None, diagnosis=f.summary if f else None, log_tail=res["log"][-4000:],
            seed=args.seed, seconds=res["seconds"],
        )
        views.append(view)
        shown = f"{metric:.4f}" if metric is not None else "-"
        print(f"{eid:>3} {view.parent_id or '-':>3}  {shown:>8}  {res['seconds']:5.1f}  {status:<10} {view.title}"
              + (f"  [{f.cls}: {f.summary[:80]}]" if f else ""))
        if prop is not None and prop.diagnosis:
            print(f"{'':>28}diagnosis: {prop.diagnosis[:150]}")
        if metric is None and len(views) < total:
            fix = policy.fix(ctx(total - len(views)), view)
            if fix is not None:
                queue.append((fix, eid))
            else:
                print(f"{'':>28}no fix proposed for #{eid}")
    shutil.rmtree(tmp, ignore_errors=True)
    base = views[0].metric if views else None
    print(f"baseline {base}  best {best_val} (#{best_id})  after {len(views)} runs")


if __name__ == "__main__":
    main()
