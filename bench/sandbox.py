"""Sandbox costs, printed as figures (never a test).

    .venv/bin/python bench/sandbox.py [--runs 15] [--jobs 4] [--burn 2.0]
    .venv/bin/python bench/sandbox.py --against REV [--rounds 12] [--runs 3]   # start-up, this tree vs REV

1. Start-up overhead per run: a trivial `python -c pass` job through `runner.launch` (detached wrapper, probe cache,
   cgroup, confinement layer, status.json) until its status is readable, against the same command as a bare
   `subprocess.run`; median of N, for each layer this machine offers (none = layer 0 only).
2. Throughput: K short CPU-burning jobs (a pure-Python loop of about --burn seconds), run through `runner.launch`
   with 1 CPU slot (one after another) and with 2 CPU slots (two at a time, pinned to different cores by the slot
   variables), reported as wall time and experiments per hour. On a 2-core machine 2 slots compete with the agent
   for the cores, which is why the default is cores - 1; the figure shows what a second slot buys or costs here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nightlab.sandbox import isolate, runner, slots  # noqa: E402
from nightlab.sandbox.spec import JobSpec  # noqa: E402

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}:\n    sum(range(1000))\n"


def spec_for(base: Path, name: str, code: str, isolation: str, env: dict[str, str]) -> JobSpec:
    wt = base / "wt"
    wt.mkdir(exist_ok=True)
    return JobSpec(job_id=name, argv=[sys.executable, "-c", code], cwd=str(wt), run_dir=str(base / "runs" / name),
                   env=env, timeout_s=120, isolation=isolation)


def wait(run_dir: str) -> None:
    while runner.read_status(run_dir) is None:
        time.sleep(0.002)


def startup(base: Path, runs: int, layers: list[str]) -> None:
    env = isolate.job_environment(dict(os.environ), {}, [])
    bare: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        bare.append(time.perf_counter() - t)
    b = statistics.median(bare)
    print(f"start-up, median of {runs} (python -c pass):")
    print(f"  bare subprocess.run        {b * 1000:7.1f} ms")
    for layer in layers:
        times: list[float] = []
        for i in range(runs):
            spec = spec_for(base, f"start-{layer}-{i}", "pass", layer, env)
            t = time.perf_counter()
            runner.launch(spec)
            wait(spec.run_dir)
            times.append(time.perf_counter() - t)
            st = runner.read_status(spec.run_dir)
            assert st is not None and st.state == "succeeded", st
        m = statistics.median(times)
        print(f"  runner.launch, {layer:<10}  {m * 1000:7.1f} ms   (+{(m - b) * 1000:.1f} ms per run)")


def throughput(base: Path, jobs: int, burn: float, layer: str) -> None:
    print(f"throughput: {jobs} jobs of ~{burn:g} s CPU each, isolation={layer}, {os.cpu_count()} cores "
          f"(load average before: {os.getloadavg()[0]:.2f}; other load on the machine skews this):")
    results: dict[int, float] = {}
    for n_slots in (1, 2):
        pool = slots.SlotPool(slots.discover(cfg_cpus=n_slots))
        pending = list(range(jobs))
        running: dict[str, str] = {}  # run_dir -> slot id
        t = time.perf_counter()
        while pending or running:
            for run_dir, sid in list(running.items()):
                if runner.read_status(run_dir) is not None:
                    pool.release(sid)
                    del running[run_dir]
            while pending:
                slot = pool.acquire()
                if slot is None:
                    break
                i = pending.pop(0)
                env = isolate.job_environment(dict(os.environ), slots.slot_env(slot, 1), [])
                spec = spec_for(base, f"tp{n_slots}-{i}", BURN.format(s=burn), layer, env)
                runner.launch(spec)
                running[spec.run_dir] = slot.id
            time.sleep(0.01)
        wall = time.perf_counter() - t
        results[n_slots] = wall
        print(f"  {n_slots} slot(s): {wall:6.2f} s wall  ->  {jobs / wall * 3600:7.0f} experiments/hour"
              f"  (ideal {jobs * burn / n_slots:.1f} s; load average now {os.getloadavg()[0]:.2f})")
    print(f"  speed-up with 2 slots: x{results[1] / results[2]:.2f}")


# One batch of start-ups in a fresh interpreter that imports nightlab from the tree given: the A/B comparison runs
# both trees the same way, batch after batch, so a load that comes and goes on the machine falls on both alike.
BATCH = r"""
import json, os, sys, time
import nightlab
assert nightlab.__file__.startswith(sys.argv[1]), nightlab.__file__  # this venv's tree (the wrapper's too)
from nightlab.sandbox import isolate, runner
from nightlab.sandbox.spec import JobSpec
base, layer, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
env = isolate.job_environment(dict(os.environ), {}, [])
os.makedirs(os.path.join(base, "wt"), exist_ok=True)
out = []
for i in range(n):
    run_dir = os.path.join(base, "runs", f"{layer}-{time.time_ns()}")
    spec = JobSpec(job_id="ab", argv=[sys.executable, "-c", "pass"], cwd=os.path.join(base, "wt"),
                   run_dir=run_dir, env=env, timeout_s=120, isolation=layer)
    t = time.perf_counter()
    runner.launch(spec)
    while runner.read_status(run_dir) is None:
        time.sleep(0.002)
    out.append(time.perf_counter() - t)
    assert runner.read_status(run_dir).state == "succeeded"
print(json.dumps(out))
"""


def against(base: Path, rev: str, rounds: int, runs: int, layers: list[str]) -> None:
    """Start-up of this tree against `rev` (checked out in a temporary worktree), interleaved: for each layer,
    `rounds` alternations of a batch of `runs` launches in each tree; medians and the ratio this/rev."""
    other = base / "tree-rev"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(other), rev], check=True)
    # one light venv per tree (this interpreter's packages, the tree's nightlab first): the job wrapper is started
    # as `sys.executable -m ...`, so it imports the same tree's code as the batch that launched it
    import site
    import sysconfig

    pythons = {}
    for name, tree in (("this", ROOT), ("rev", other)):
        venv = base / f"venv-{name}"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
        purelib.mkdir(parents=True, exist_ok=True)
        (purelib / "_tree.pth").write_text("\n".join([str(tree), *site.getsitepackages()]) + "\n")
        pythons[name] = str(venv / "bin" / "python")
    try:
        print(f"start-up, this tree ({ROOT.name}) against {rev}: {rounds} alternating rounds of {runs} launches "
              f"(python -c pass), load average before {os.getloadavg()[0]:.2f}")
        for layer in layers:
            times: dict[str, list[float]] = {"this": [], "rev": []}
            for r in range(rounds):
                order = [("this", ROOT), ("rev", other)] if r % 2 == 0 else [("rev", other), ("this", ROOT)]
                for name, tree in order:
                    p = subprocess.run([pythons[name], "-c", BATCH, str(tree), str(base / name), layer, str(runs)],
                                       capture_output=True, text=True, cwd=base)  # not a tree: -c imports from cwd
                    if p.returncode != 0:
                        raise SystemExit(f"a start-up batch in {tree} failed:\n{p.stderr[-2000:]}")
                    out = p.stdout
                    times[name] += json.loads(out.strip().splitlines()[-1])
            a, b = statistics.median(times["this"]), statistics.median(times["rev"])
            print(f"  {layer:<10} this {a * 1000:7.1f} ms   {rev} {b * 1000:7.1f} ms   ratio {a / b:5.3f}   "
                  f"(n={len(times['this'])} each; load average now {os.getloadavg()[0]:.2f})")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--burn", type=float, default=2.0)
    ap.add_argument("--against", metavar="REV", help="compare start-up with this git revision, interleaved")
    ap.add_argument("--rounds", type=int, default=12, help="with --against: alternations per layer")
    ap.add_argument("--layers", help="comma-separated layers to measure (default: every layer this machine offers)")
    args = ap.parse_args()
    caps = isolate.probe()
    print(caps.describe())
    print()
    layers = ["none"] + [layer for layer in ("bwrap", "landlock") if not caps.unavailable(layer)]
    if args.layers:
        layers = [x for x in args.layers.split(",") if x in layers]
    with tempfile.TemporaryDirectory(prefix="nightlab-bench-") as d:
        if args.against:
            against(Path(d), args.against, args.rounds, args.runs, layers)
            return
        startup(Path(d), args.runs, layers)
        print()
        throughput(Path(d), args.jobs, args.burn, caps.best() or "none")


if __name__ == "__main__":
    main()
