"""Overhead of the progress hook on a training step, and on start-up of a Python process that never imports torch.

    .venv/bin/python bench/instrument_overhead.py [--repeats 9] [--steps 2000] [--clip]

The workload is a small MLP training loop (128-256-256-10, Adam, batch 64, one torch thread) timed by the child
itself after a warm-up, so interpreter and torch start-up are excluded. Two measurements:

1. In one process (the precise one): the hook is wired exactly as the runner wires it (PYTHONPATH +
   NIGHTLAB_JOB_PROGRESS); after the warm-up, chunks of steps alternate between the hook's patches in and taken
   out (the hook's own install / undo), so both sides share the process, the memory layout and the machine's load
   at that moment; chunks are short (20 steps) so that most pairs escape other processes. Overhead = median over
   pairs of (hooked chunk / plain chunk − 1).
2. Across processes (the whole job as a user sees it): each repeat runs the loop in a fresh process with the hook
   and in one without, alternating which goes first; each child reports its least disturbed tenth. Overhead of the
   medians and of the minima. Noisier on a shared machine: other load only ever adds time, to either side.

Target: < 2 %. `--clip` adds `clip_grad_norm_` to every step (no_grad on every step: the worst case for the
evaluation watch). Then the start-up cost of `python -c pass` with the hook's bytecode cached, and compiled at every
start (PYTHONDONTWRITEBYTECODE, a read-only install, another Python version).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import py_compile
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nightlab.sandbox.instrument import ENV_PROGRESS, ENV_ROOT, hook_dir, job_env  # noqa: E402

CHILD = """
import sys, time
import torch

torch.set_num_threads(1)
torch.manual_seed(0)
steps, clip, mode, n = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3], int(sys.argv[4])
model = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                            torch.nn.Linear(256, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
X, y = torch.randn(64 * 50, 128), torch.randint(0, 10, (64 * 50,))

def step(i):
    j = (i % 50) * 64
    loss = torch.nn.functional.cross_entropy(model(X[j:j + 64]), y[j:j + 64])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss

def chunk(n):
    t0 = time.perf_counter()
    for i in range(n):
        step(i)
    return (time.perf_counter() - t0) / n

for i in range(200):
    step(i)
if mode == "cross":
    print(min(chunk(n) for _ in range(steps // n)))  # the least disturbed tenth
else:
    hook, core = sys.modules["_nightlab_torch_hook"], sys.modules["_nightlab_sitecustomize"]
    steady = sorted(hook._T.undo)
    def set_hook(on):
        if on:
            hook.install(core)
            step(0)  # the one-shot watchers (a new forward hook) take themselves out again
            assert sorted(hook._T.undo) == steady, (sorted(hook._T.undo), steady)
        else:
            hook._undo_all()
    print("steady-state patches:", " ".join(steady))
    for k in range(steps // n):
        order = (True, False) if k % 2 == 0 else (False, True)
        got = {}
        for on in order:
            set_hook(on)
            got[on] = chunk(n)
        print(got[True], got[False])
    set_hook(True)
"""


def _env(hooked: bool, progress: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_PROGRESS, ENV_ROOT, "PYTHONPATH")}
    env["OMP_NUM_THREADS"] = "1"
    return job_env(env, str(progress)) if hooked else env


def _child(hooked: bool, steps: int, clip: bool, mode: str, chunk: int, work: Path) -> str:
    progress = work / "progress.jsonl"
    progress.unlink(missing_ok=True)
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps), "1" if clip else "0", mode, str(chunk)],
                         env=_env(hooked, progress), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    if hooked and "first_step" not in progress.read_text():
        raise SystemExit("the hook did not run in the hooked child: the comparison would be meaningless")
    return out.stdout


def in_process(steps: int, clip: bool, repeats: int, chunk: int, work: Path) -> None:
    pairs: list[tuple[float, float]] = []
    for r in range(repeats):
        lines = _child(True, steps, clip, "toggle", chunk, work).splitlines()
        if r == 0:
            print(f"  {lines[0]}")
        pairs += [(float(a), float(b)) for a, b in (ln.split() for ln in lines[1:])]
    ratios = [h / p - 1 for h, p in pairs]
    hooked, plain = [h for h, _ in pairs], [p for _, p in pairs]
    q = statistics.quantiles(ratios, n=4)
    mid = statistics.median
    print(f"  {len(pairs)} pairs of {chunk}-step chunks; plain median {mid(plain) * 1e6:.1f} us/step, "
          f"hooked median {mid(hooked) * 1e6:.1f} us/step")
    print(f"  overhead: median of pairs {100 * mid(ratios):+.2f} %  (quartiles {100 * q[0]:+.2f} % .. "
          f"{100 * q[2]:+.2f} %)   minima {100 * (min(hooked) / min(plain) - 1):+.2f} %   "
          f"absolute {mid(h - p for h, p in pairs) * 1e6:+.2f} us/step")


def across_processes(steps: int, clip: bool, repeats: int, work: Path) -> None:
    plain: list[float] = []
    hooked: list[float] = []
    for r in range(repeats):
        order = (False, True) if r % 2 == 0 else (True, False)
        got = {h: float(_child(h, steps, clip, "cross", max(steps // 10, 1), work).strip()) for h in order}
        plain.append(got[False])
        hooked.append(got[True])
    p, h = statistics.median(plain), statistics.median(hooked)
    print(f"  {repeats} process pairs; plain median {p * 1e6:.1f} min {min(plain) * 1e6:.1f} us/step, "
          f"hooked median {h * 1e6:.1f} min {min(hooked) * 1e6:.1f} us/step")
    print(f"  overhead: medians {100 * (h / p - 1):+.2f} %   minima {100 * (min(hooked) / min(plain) - 1):+.2f} %")


def startup(runs: int, work: Path) -> None:
    cached, uncached = work / "hook-cached", work / "hook-uncached"
    for folder in (cached, uncached):
        shutil.copytree(hook_dir(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("sitecustomize.py", "_nightlab_torch_hook.py"):
        py_compile.compile(str(cached / name), cfile=importlib.util.cache_from_source(str(cached / name)))
    base = _env(False, work / "unused")
    envs = {
        "plain": base,
        "hooked, bytecode cached": {**base, "PYTHONPATH": str(cached), ENV_PROGRESS: str(work / "s.jsonl")},
        "hooked, compiled each start": {**base, "PYTHONPATH": str(uncached), ENV_PROGRESS: str(work / "s.jsonl"),
                                        "PYTHONDONTWRITEBYTECODE": "1"},
    }
    times: dict[str, list[float]] = {k: [] for k in envs}
    for _ in range(runs):  # interleaved, so load on the machine hits all three alike
        for name, env in envs.items():
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
            times[name].append(time.perf_counter() - t0)
    base_min = min(times["plain"])
    for name, ts in times.items():
        extra = "" if name == "plain" else f"   (+{(min(ts) - base_min) * 1e3:.2f} ms)"
        print(f"  {name:28s} median {statistics.median(ts) * 1e3:6.2f} ms  min {min(ts) * 1e3:6.2f} ms{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9, help="processes (pairs of processes) per measurement")
    ap.add_argument("--steps", type=int, default=2000, help="timed steps per side and process")
    ap.add_argument("--chunk", type=int, default=20, help="steps per chunk when the hook goes in and out")
    ap.add_argument("--clip", action="store_true", help="clip gradients on every step (no_grad on every step)")
    ap.add_argument("--startup-runs", type=int, default=40)
    ap.add_argument("--skip", choices=["in-process", "across", "startup"], action="append", default=[])
    args = ap.parse_args()
    what = f"{args.steps} steps, batch 64, 1 thread{', clip_grad_norm_' if args.clip else ''}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "in-process" not in args.skip:
            print(f"training step, hook in / out within one process ({what}):", flush=True)
            in_process(args.steps, args.clip, max(args.repeats // 3, 1), args.chunk, work)
        if "across" not in args.skip:
            print(f"\ntraining step, hooked process vs plain process ({what}):", flush=True)
            across_processes(args.steps, args.clip, args.repeats, work)
        if "startup" not in args.skip:
            print(f"\nstart-up of `python -c pass`, a process that never imports torch ({args.startup_runs} runs):")
            startup(args.startup_runs, work)


if __name__ == "__main__":
    main()
