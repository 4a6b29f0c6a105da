"""Experiments per hour and overhead per job: the local backend vs SLURM vs Ray, all on this one machine.

For each backend, one autonomous session (builtin policy, `--budget N`, one job at a time so the three are
comparable) runs a tiny training script that sleeps `--job-s` seconds, and we measure:
- experiments per hour: N / the session's wall time, as `nightlab run` experiences it;
- overhead per job: from the engine handing the job over (local launch, sbatch, Ray submit) to its analysis being
  possible (status.json written), less the job's own run time: the wrapper, the scheduler's queue and start-up,
  and the engine noticing. Median and max over the session's jobs.
The SLURM and Ray clusters are the test suite's (tests/clusters.py: a single-node SLURM and a Ray head on
127.0.0.1), started here and stopped at the end. The machine is shared with other work: read the figures as rough.

Usage: .venv/bin/python bench/backends.py [--budget 8] [--job-s 1.0] [--backends local,slurm,ray]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

TRAIN = '''\
import argparse, math, time
LR = 0.05
EPOCHS = 3
p = argparse.ArgumentParser(); p.add_argument("--seed", type=int, default=0); seed = p.parse_args().seed
time.sleep(DELAY)
score = 0.9 - 0.25 * abs(math.log10(LR / 0.3)) - 0.3 / EPOCHS + 0.001 * seed
for i in range(EPOCHS):
    print(f"step {i + 1} loss {1.0 / (i + 1) + (0.9 - score):.4f}")
print(f"acc={score:.4f}")
'''


def make_project(base: Path, kind: str, backend_toml: str, job_s: float) -> Path:
    from helpers import git, make_repo

    root = make_repo(base / kind, {"train.py": TRAIN.replace("DELAY", repr(job_s))})
    (root / "nightlab.toml").write_text(
        f'command = "{sys.executable} train.py --seed {{seed}}"\ntimeout = 120\neditable = ["train.py"]\n'
        '[metric]\nname = "acc"\ngoal = "maximize"\n[slots]\ncpus = 1\n[search]\nparallel = 1\n' + backend_toml)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "bench project")
    return root


def run_session(root: Path, budget: int, env: dict[str, str]) -> dict[str, float]:
    from nightlab.agent.engine import open_store

    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", str(budget)],
                       cwd=root, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"{root.name}: nightlab run failed: {p.stderr.strip()[-500:]}")
    store = open_store(root)
    from nightlab.sandbox import runner

    overheads, queued = [], []
    for j in store.jobs():
        status = runner.read_status(j.run_dir)
        if status is None or j.started is None:
            continue
        overheads.append(status.ended_at - j.started - status.seconds)
        if j.queued_s is not None:
            queued.append(j.queued_s)
    n = len(store.jobs())
    return {"jobs": n, "wall_s": wall, "per_hour": 3600 * n / wall, "overhead_median_s": statistics.median(overheads),
            "overhead_max_s": max(overheads), "queued_median_s": statistics.median(queued) if queued else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=8)
    ap.add_argument("--job-s", type=float, default=1.0, help="seconds each training job sleeps")
    ap.add_argument("--backends", default="local,slurm,ray")
    args = ap.parse_args()
    import clusters

    base = Path(tempfile.mkdtemp(prefix="nightlab-bench-backends-"))
    env = {**os.environ, "XDG_STATE_HOME": str(base / "state"), "XDG_DATA_HOME": str(base / "data"),
           "NIGHTLAB_NO_TUI": "1"}
    results: dict[str, dict[str, float]] = {}
    for kind in args.backends.split(","):
        toml, started = "", False
        if kind in ("slurm", "ray"):
            why = clusters.slurm_missing() if kind == "slurm" else clusters.ray_missing()
            if why:
                print(f"{kind}: skipped ({why})", flush=True)
                continue
            print(f"{kind}: starting the scheduler on 127.0.0.1 ...", flush=True)
            info = clusters.acquire(kind, base)
            if "error" in info:
                print(f"{kind}: could not start: {info['error']}", flush=True)
                continue
            started = True
            if kind == "slurm":
                env["SLURM_CONF"] = str(info["conf"])
                toml = '[backend]\nkind = "slurm"\n'
            else:
                toml = f'[backend]\nkind = "ray"\naddress = "{info["address"]}"\n'
        try:
            print(f"{kind}: a session of {args.budget} runs ({args.job_s:g} s each) ...", flush=True)
            results[kind] = run_session(make_project(base, kind, toml, args.job_s), args.budget, env)
        finally:
            if started:
                clusters.release(kind, base)
        r = results[kind]
        print(f"{kind}: {r['jobs']} jobs in {r['wall_s']:.1f} s = {r['per_hour']:.0f} experiments/hour; overhead "
              f"per job median {r['overhead_median_s']:.2f} s, max {r['overhead_max_s']:.2f} s; queued median "
              f"{r['queued_median_s']:.2f} s", flush=True)
    print("\n| backend | experiments/hour | overhead per job (median / max) | queued (median) |")
    print("|---|---|---|---|")
    for kind, r in results.items():
        print(f"| {kind} | {r['per_hour']:.0f} | {r['overhead_median_s']:.2f} s / {r['overhead_max_s']:.2f} s | "
              f"{r['queued_median_s']:.2f} s |")


if __name__ == "__main__":
    main()
