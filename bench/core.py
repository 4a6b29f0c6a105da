"""Core budgets from DESIGN.md, printed as figures (never a test).

- `nightlab --help` wall time (budget < 0.3 s)
- agent overhead between one job's end and the next job's start, builtin policy (budget < 0.5 s)
- agent process peak RSS during a session (budget < 250 MB)

Usage: .venv/bin/python bench/core.py [--runs 6]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
WAKES: list[float] = []
TRAIN = '''\
import argparse, math
LR = 0.05
EPOCHS = 3
p = argparse.ArgumentParser(); p.add_argument("--seed", type=int, default=0); s = p.parse_args().seed
acc = 0.9 - 0.25 * abs(math.log10(LR / 0.3)) - 0.3 / EPOCHS + 0.001 * s
for i in range(EPOCHS):
    print(f"epoch {i} loss {1 / (i + 1):.3f}")
print(f"acc={acc:.4f}")
'''


def help_time(n: int = 7) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nightlab", "--help"], capture_output=True, check=True)
        out.append(time.perf_counter() - t)
    return out


def overhead(runs: int) -> tuple[list[float], float]:
    from nightlab.agent.config import MetricConfig, ProjectConfig, dump_config
    from nightlab.agent.engine import Engine, EngineOptions

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "train.py").write_text(TRAIN)
        env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b",
               "GIT_COMMITTER_EMAIL": "b@x"}
        for c in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
            subprocess.run(c, cwd=root, check=True, env=env)
        cfg = ProjectConfig(command=f"{sys.executable} train.py --seed {{seed}}",
                            metric=MetricConfig(name="acc", goal="maximize"), editable=["train.py"])
        (root / "nightlab.toml").write_text(dump_config(cfg))
        eng = Engine(root, cfg, options=EngineOptions(mode="autonomous", budget=runs))
        eng.run()
        gaps = []
        jobs = sorted(eng.store.jobs(), key=lambda j: j.started or 0)
        for prev, nxt in itertools.pairwise(jobs):
            st = json.loads((Path(prev.run_dir) / "status.json").read_text())
            gaps.append((nxt.started or 0) - st["ended_at"])
        wakes = []
        finished = {ev["experiment_id"]: ev["t"] for ev in eng.store.events(limit=100000)
                    if ev["kind"] in ("finished", "failed")}
        for j in jobs:
            st = json.loads((Path(j.run_dir) / "status.json").read_text())
            if j.experiment_id in finished:
                wakes.append(finished[j.experiment_id] - st["ended_at"])
        WAKES.extend(wakes)
        return gaps, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=6)
    args = ap.parse_args()
    h = help_time()
    print(f"nightlab --help: median {statistics.median(h) * 1000:.0f} ms, max {max(h) * 1000:.0f} ms "
          f"(budget 300 ms)")
    gaps, rss = overhead(args.runs)
    if gaps:
        print(f"agent overhead job end -> next start ({len(gaps)} gaps, builtin policy): median "
              f"{statistics.median(gaps) * 1000:.0f} ms, max {max(gaps) * 1000:.0f} ms (budget 500 ms)")
    if WAKES:
        print(f"wake latency, awake engine (job status written -> engine has analysed it, n={len(WAKES)}): median "
              f"{statistics.median(WAKES) * 1000:.0f} ms, max {max(WAKES) * 1000:.0f} ms (budget 100 ms)")
    print(f"agent peak RSS: {rss:.0f} MB (budget 250 MB)")
    print("cold wake (hibernated engine started by the job wrapper) is measured by bench/torture.py")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
