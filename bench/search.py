"""Search benchmark: nightlab's builtin policy against random search, TPE, CMA-ES and SMAC on the training tasks.

    python bench/search.py --tasks DIR [DIR ...] [--methods nightlab,tpe-default,...] --budget N --seeds S

For each task folder (format: ../shared/tasks/README.md) or real repository (format: ../shared/repos/README.md), each
method and each seed s in 0..S-1 (8 by default), the method spends a budget of N training runs; one table is printed
and saved (bench/results/search-<timestamp>.json and .md, plus --json FILE): best metric reached (mean ± sd over
seeds), normalised gap closed, runs needed to close half the gap, failed runs, wall time; then nightlab against each
peer seed by seed (bench/paired.py: mean difference in gap closed, ahead / tied / behind, sign test and Wilcoxon p,
the share of task-seeds nightlab is ahead).

The methods
-----------
* ``nightlab``: the builtin policy through the real engine (`Engine(..., mode="autonomous", budget=N)`), real git
  worktrees, the real sandbox (``--isolation``, default auto), one slot per engine. The task is copied into a fresh
  git repository WITHOUT task.toml (the answer sheet is read by this harness only; the policy never sees it).
  editable / protected files come from `nightlab.agent.project_init`, exactly as `nightlab init` would choose them.
* the peers (bench/peers.py says exactly how each is set up): ``random`` (a uniform sweep), ``random-default``
  (trial 1 the committed configuration, then uniform), ``optuna`` (TPE with Optuna's defaults), ``tpe-default``
  (TPE told the committed configuration first, short start-up; ``--tpe-startup``), ``cmaes`` (Optuna's CMA-ES
  started at the committed configuration) and ``smac`` (SMAC3's black-box facade, the committed configuration in
  its initial design). ``random`` and ``optuna`` were called the same before the peers were added but then ran the
  committed configuration first and, for optuna, a short start-up: that is now ``random-default`` and
  ``tpe-default``. cmaes needs the ``cmaes`` package (``pip install -e '.[bench]'``) and smac the ``smac`` package
  (``bash scripts/bench-smac.sh``).
* every peer searches exactly the knobs and ranges the builtin policy discovers on the unmodified files
  (`BuiltinPolicy.search_knobs`: the searchable knobs where they take effect for the command, with their
  `knobs.search_space`), write values through the same rounding (`policy.search.snap`) and the same editing code
  (`BuiltinPolicy.write_values`: literals in files, values on the command line; validated by `edits.apply_edits`),
  and run through the same cache wrapper and metric parser as the engine, so the only difference is the search.
  Two consequences to know: the builtin policy may also apply code transformations (SGD → AdamW, schedules,
  input standardisation, fixes for crashes), which the peers cannot — that is part of what is compared.
  And a log-scaled space with ``allow_zero`` (weight decay 0 = off) cannot hold 0: the peers sample
  ``[low, high]``; a study told the committed configuration records a value of 0 as ``low``.

Real repositories
-----------------
A folder with ``repo.toml`` (name, command, metric, goal, data) and ``make-repo.sh`` is a real repository: its
``make-repo.sh`` lays out the checkout (code committed, data prepared and untracked), and ``nightlab init``'s own
choice of files (`layout_of`: the files that decide the configuration, the untracked data the code reads as links)
is used for every method. Its command runs as given (no ``--seed``). There is no reference, so "gap closed" is the
improvement over the seed's own baseline run, (best − baseline) / |baseline| signed by the goal, and "runs to half
gap" the runs to a 2.5 % improvement. nanoGPT fixes its training seed in the code: "seed s" is then only the
search seed (random's and optuna's samplers, the engine's ``search.seed`` for the policy's rng); every method's
runs train with the code's own seed, 1337, except nightlab's noise and confirmation re-runs, which change it in
the code (1338, 1339, …) as the engine does for any repository with a fixed seed.

Seeds and budget
----------------
"Seed s" of a method is both its search seed (engine ``search.seed`` = s, which seeds the policy's rng; random's
``random.Random(s)``; the Optuna and SMAC samplers' seed) and the training seed of its runs (``--seed s`` in the
command), so the methods are compared on the same training seeds, pair by pair. Every method spends exactly N
training runs per seed (fewer only if it stops on its own; the runs actually used are reported). For nightlab the
engine's baseline, its noise re-run (seed s+1, ``search.noise_seeds = 2``) and its confirmation re-runs (seed s+1,
…) count inside N. For the peers that start from the committed configuration (all but ``random`` and ``optuna``)
the first trial is the unmodified baseline (seed s), so they and nightlab pay for the baseline equally; ``random``
and ``optuna`` spend all N runs on draws.

What is measured
----------------
* best: a peer's best single run. nightlab: the best single-run metric of a *kept* experiment (the run
  at seed s that made it kept, not the mean with its confirmation runs; re-runs at other seeds are not counted), so
  the numbers are single runs at the same training seed for every method. An improvement the engine discarded as
  within noise does not count for nightlab, since it is not what nightlab hands the user. A best kept on one seed
  because the budget ran out before its confirmation (`unconfirmed`, "kept?" in the table) counts: it is the best
  the session ends with (`nightlab status` calls it best; until 2026-12-04 this script left it out). The JSON also holds
  `engine_best` (the engine's own seed-averaged best) and `best_any` (nightlab's best single run of any status).
* gap closed = (best − baseline) / (reference − baseline), with baseline and reference from task.toml. The formula is
  sign-correct for minimised metrics as is (numerator and denominator flip together): 1 = reached the reference,
  0 = no better than the baseline, negative = worse. A seed where no run produced a metric closes 0.
  A task whose baseline is "crash" (broken-digits) uses baseline = 0 (`CRASH_BASELINE`), i.e. the gap closed is the
  fraction of the reference reached; a method that never gets the program to run scores no metric and closes 0.
* runs to half gap: the first run (1-based, in launch order) after which the best-so-far (as defined for "best")
  has closed at least half the gap; the mean over the seeds that got there, with how many did.
* failed: runs that produced no metric (crash, timeout, NaN) out of all runs, summed over seeds; timeouts are also
  counted on their own.
* wall s: wall-clock seconds per seed in this invocation (small when the cache answers); train s: the recorded
  training seconds of the runs (what they cost uncached), per seed.

Splitting the work
------------------
Invocations that share the cache can split a long benchmark (methods, tasks or machines apart); ``--merge A.json
B.json ... --tasks ...`` then prints and saves one table of their saved results, trains nothing, and scores them
with this file's current rules (nightlab's runs by their recorded status and kind); ``before=OLD.json`` tables
the nightlab results of OLD.json (another version of nightlab) as the method ``before``, paired with the current
nightlab like a peer, which is how a change is measured before and after. An invocation cut off (the
machine went away; the report is written after every combination) is picked up with ``--resume ITS.json`` and the
same arguments: what it finished is taken from the report, re-scored, and only the rest runs — even when the cache
went with the machine.

The cache
---------
Every training run — the engine's jobs included — goes through this script's own ``cache-run`` mode, put in front
of the task's command: ``python bench/search.py cache-run --cache DIR --timeout T ... -- python train.py --seed
{seed}``. It hashes sha256(task name, sorted (path, content) of the editable files, the command with the seed),
replays the recorded stdout/stderr/exit code on a hit, and otherwise runs the command and records {metric, ok, rc,
seconds, stdout, stderr} under bench/results/cache/ (gitignored) with an atomic rename; a per-key flock makes a
concurrent second miss wait and replay. The engine path stays real (worktrees, sandbox, job wrapper, log parsing)
while a rerun only trains what changed — e.g. after the builtin policy improved, only its new variants.

Replays are faithful, so a rerun with the same policy code reproduces the same decisions:
* Time. The builtin policy reads run time against the timeout (what a change would cost, "too slow"). While the
  engine runs, `faithful_status` wraps `runner.read_status` in this process so every finished job reports the
  recorded training seconds (hit or miss alike), not the 0.3 s a replay lasts.
* Timeouts. The wrapper stops the training itself a little before the timeout (`run_limit`), records the partial
  output as ``<key>.timeout.json`` and exits 124; the engine is told ``timed_out`` (as its job wrapper would have
  said). A recorded timeout is replayed for any timeout up to the one it was recorded under; a completed run is
  replayed only if it fits in the current limit. So reruns do not pay for timeouts again.
* The timeout (``--timeout``, default 120 s, about 8× the slowest baseline run of the suite; ``NAME=SECONDS`` gives
  one task its own, ``--timeout 90 nanogpt=400``, so one invocation covers tasks of very different sizes) is the same
  for every method; the builtin policy sees it (it avoids changes predicted to take more than 70% of it) as it would
  for a user, the peers do not. The baseline run of a seed is shared by all methods through the cache.

Parallelism
-----------
(task, method, seed) combinations run concurrently in a process pool with one worker per CPU slot of this machine
(`nightlab.sandbox.slots.discover`: cores − 1, at least 1; the tasks are CPU-only so GPU slots are not used;
``--workers`` overrides). Each worker owns one slot: its training runs are pinned to that slot's core with one
thread, and an engine gets only that slot (so nightlab, like every peer, runs one job at a time).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
RESULTS = REPO / "bench" / "results"
CACHE = RESULTS / "cache"


def _sibling(name: str) -> ModuleType:
    """bench/<name>.py, loaded by path: this file runs as a script, as a test module and in spawned workers, not
    always with the repository on sys.path."""
    mod = sys.modules.get(f"bench_{name}")
    if mod is None:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE.parent / f"{name}.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[f"bench_{name}"] = mod
        spec.loader.exec_module(mod)
    return mod


def peers() -> ModuleType:
    """bench/peers.py: the methods nightlab is compared with."""
    return _sibling("peers")


def paired() -> ModuleType:
    """bench/paired.py: nightlab against each peer, seed by seed."""
    return _sibling("paired")


METHODS = ("nightlab", *peers().PEERS)
CRASH_BASELINE = 0.0  # the baseline value of a task that crashes as delivered (see the docstring)
ANSWER_SHEET = "task.toml"
_IGNORE = shutil.ignore_patterns(ANSWER_SHEET, "__pycache__", "*.pyc", ".git", ".nightlab")
_GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost", "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@localhost"}


# ============================================================================================== the cache wrapper
# This part runs inside every training job (under the sandbox): stdlib only until a miss needs the metric parser.


def cache_key(task: str, files: dict[str, str], command: str) -> str:
    """sha256 of the task name, the editable files (sorted by path) and the command with its seed filled in."""
    h = hashlib.sha256()
    for part in (task, command, *[f"{p}\0{files[p]}" for p in sorted(files)]):
        h.update(part.encode("utf-8", "replace"))
        h.update(b"\0\1\0")
    return h.hexdigest()


def cache_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.json"


def read_record(path: Path) -> dict[str, Any] | None:
    """A cache record, or None when absent or unreadable (a torn file from a killed writer cannot exist: writes are
    renames, but a foreign file is treated as a miss rather than an error)."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and "stdout" in rec else None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created if needed), released when the block ends or the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def parse_value(text: str, name: str, regex: str) -> float | None:
    """The metric as the engine reads it (nightlab.agent.metrics), None when missing or non-finite."""
    from nightlab.agent import metrics

    value = metrics.parse_metric(text, name, regex).value
    return value if value is not None and math.isfinite(value) else None


TIMEOUT_RC = 124  # the wrapper's exit code for a run it stopped at the timeout


def timeout_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.timeout.json"


def run_limit(timeout: float) -> float:
    """How long the wrapper lets the training run: a little under `timeout`, so that it stops the run itself and
    records the timeout before the engine's job wrapper would kill the whole process group (wrapper included)."""
    return timeout - min(5.0, max(1.0, 0.02 * timeout)) if timeout > 0 else math.inf


def lookup(cache_dir: Path, key: str, timeout: float) -> dict[str, Any] | None:
    """The recorded outcome of this run under this timeout: a completed run that fits in the time limit, else a
    timeout recorded under at least this limit; None when the run must (re)train."""
    limit = run_limit(timeout)
    done = read_record(cache_path(cache_dir, key))
    if done is not None and float(done.get("seconds") or 0.0) <= limit:
        return done
    stopped = read_record(timeout_path(cache_dir, key))
    if stopped is not None and float(stopped.get("limit") or 0.0) >= limit:
        return stopped
    return None


def cache_run(argv: Sequence[str]) -> int:
    """``cache-run`` mode: replay a recorded run or run (and record) the command after ``--``; exit with its code."""
    if "--" not in argv:
        print("cache-run: missing `-- COMMAND ...`", file=sys.stderr)
        return 2
    cut = list(argv).index("--")
    if str(REPO) not in sys.path:  # the metric parser, on a miss
        sys.path.insert(0, str(REPO))
    ap = argparse.ArgumentParser(prog="search.py cache-run")
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--files", required=True, help="comma-separated editable files, relative to the cwd")
    ap.add_argument("--metric", required=True)
    ap.add_argument("--regex", required=True)
    ap.add_argument("--timeout", type=float, default=0.0, help="the run's timeout in seconds (0 = none)")
    ap.add_argument("--ledger", type=Path, default=None, help="append {key, hit, ...} here (JSON lines)")
    args = ap.parse_args(list(argv[:cut]))
    cmd = list(argv[cut + 1:])
    files: dict[str, str] = {}
    for rel in filter(None, args.files.split(",")):
        with contextlib.suppress(OSError):
            files[rel] = Path(rel).read_text(errors="replace")
    key = cache_key(args.task, files, shlex.join(cmd))
    path = cache_path(args.cache, key)
    with _locked(path.with_suffix(".lock")):
        rec = lookup(args.cache, key, args.timeout)
        hit = rec is not None
        if rec is None:
            limit = run_limit(args.timeout)
            t0 = time.monotonic()
            try:  # the child stays in our process group: if the engine kills the group, it goes too
                proc = subprocess.run(cmd, capture_output=True, timeout=None if math.isinf(limit) else limit)
                rc, raw_out, raw_err, timed_out = proc.returncode, proc.stdout, proc.stderr, False
            except subprocess.TimeoutExpired as e:
                rc, raw_out, raw_err, timed_out = TIMEOUT_RC, e.stdout or b"", e.stderr or b"", True
            seconds = round(time.monotonic() - t0, 3)
            out = raw_out.decode("utf-8", "replace") if isinstance(raw_out, bytes) else str(raw_out)
            err = raw_err.decode("utf-8", "replace") if isinstance(raw_err, bytes) else str(raw_err)
            metric = None if timed_out else parse_value(out, args.metric, args.regex)
            rec = {"task": args.task, "command": shlex.join(cmd), "rc": rc, "seconds": seconds, "metric": metric,
                   "ok": rc == 0 and metric is not None, "timed_out": timed_out, "stdout": out, "stderr": err,
                   "files": sorted(files), "created": time.time()}
            if timed_out:
                rec.update(limit=limit, timeout=args.timeout)
                old = read_record(timeout_path(args.cache, key))
                if old is None or float(old.get("limit") or 0.0) < limit:
                    _write_atomic(timeout_path(args.cache, key), json.dumps(rec))
            else:
                _write_atomic(path, json.dumps(rec))
    sys.stdout.write(rec["stdout"])
    sys.stdout.flush()
    sys.stderr.write(rec["stderr"])
    sys.stderr.flush()
    if args.ledger is not None:
        line = {"key": key, "hit": hit, "seconds": rec["seconds"], "metric": rec["metric"], "ok": rec["ok"],
                "timed_out": bool(rec.get("timed_out")), "job": os.environ.get("NIGHTLAB_JOB_ID")}
        args.ledger.parent.mkdir(parents=True, exist_ok=True)
        with open(args.ledger, "a") as f:
            f.write(json.dumps(line) + "\n")
    rc = rec["rc"]
    return rc if isinstance(rc, int) and 0 <= rc < 256 else 1


# ============================================================================================== tasks and projects


@dataclass
class Task:
    """One task folder and its answer sheet (task.toml: read by this harness, never shown to a method), or a real
    repository (repo.toml, see ../shared/repos/README.md): laid out by its make-repo.sh, its data untracked."""

    name: str
    folder: Path
    command: str
    metric: str
    goal: str
    regex: str
    baseline: float | None  # None: the unchanged script crashes (tasks) / measured by the first run (repositories)
    reference: float | None  # None for a repository: nobody here knows its best
    seconds: float
    kind: str = "task"  # "task" (task.toml) | "repo" (repo.toml)
    data: list[str] = field(default_factory=list)  # a repository's untracked data files, linked into worktrees

    @property
    def gap_baseline(self) -> float:
        return self.baseline if self.baseline is not None else CRASH_BASELINE

    @property
    def sign(self) -> float:
        return 1.0 if self.goal == "maximize" else -1.0

    def gap(self, value: float | None, baseline: float | None = None) -> float:
        """Normalised gap closed by `value` (0 when there is no value). A repository has no reference: there it is
        the relative improvement over the seed's own baseline run, (best − baseline) / |baseline| signed by goal."""
        if value is None:
            return 0.0
        if self.reference is None:
            base = baseline if baseline is not None else self.baseline
            return self.sign * (value - base) / abs(base) if base else 0.0
        span = self.reference - self.gap_baseline
        return (value - self.gap_baseline) / span if span else 0.0


REPO_SHEET = "repo.toml"


def load_task(folder: Path) -> Task:
    folder = Path(folder).resolve()
    if (folder / REPO_SHEET).is_file():
        meta = tomllib.loads((folder / REPO_SHEET).read_text())
        return Task(name=str(meta.get("name") or folder.name), folder=folder, command=str(meta["command"]),
                    metric=str(meta["metric"]), goal=str(meta["goal"]), regex=str(meta.get("metric_regex", "")),
                    baseline=None, reference=None, seconds=0.0, kind="repo",
                    data=[str(x) for x in meta.get("data", [])])
    meta = tomllib.loads((folder / ANSWER_SHEET).read_text())
    base = meta.get("baseline")
    return Task(name=str(meta.get("name") or folder.name), folder=folder, command=str(meta["command"]),
                metric=str(meta["metric"]), goal=str(meta["goal"]), regex=str(meta["metric_regex"]),
                baseline=float(base) if isinstance(base, int | float) else None,
                reference=float(meta["reference"]), seconds=float(meta.get("seconds") or 0.0))


def parse_timeouts(items: Sequence[str], names: Mapping[str, str],
                   default: float = 120.0) -> tuple[float, dict[str, float]]:
    """`--timeout 90 nanogpt=400`: the default run timeout and per-task ones, keyed by task name. `names` maps every
    name a task may be called by (its own, its folder's) to its task name. A bad item raises ValueError naming it."""
    per: dict[str, float] = {}
    for item in items:
        name, eq, value = item.rpartition("=")
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"--timeout {item!r}: not a number of seconds (SECONDS or NAME=SECONDS)") from None
        if not seconds > 0:
            raise ValueError(f"--timeout {item!r}: the timeout must be positive")
        if not eq:
            default = seconds
        elif name in names:
            per[names[name]] = seconds
        else:
            raise ValueError(f"--timeout {item!r}: no task called {name!r} (tasks: {', '.join(sorted(set(names)))})")
    return default, per


def task_names(tasks: Mapping[str, Task]) -> dict[str, str]:
    """Every name a task may be called by on the command line (its own, its folder's) → its task name."""
    return {**{t.folder.name: n for n, t in tasks.items()}, **{n: n for n in tasks}}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **_GIT_ENV}, check=True, capture_output=True,
                          text=True).stdout


def make_repo(task: Task, dest: Path) -> Path:
    """The task copied into a fresh git repository without its answer sheet: what a user would point nightlab at.
    A real repository is laid out by its own make-repo.sh (code committed, data prepared and untracked)."""
    if task.kind == "repo":
        env = {**os.environ, **_GIT_ENV, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]}
        subprocess.run([str(task.folder / "make-repo.sh"), str(dest)], env=env, check=True, capture_output=True,
                       text=True)
        return dest
    shutil.copytree(task.folder, dest, ignore=_IGNORE)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "task as delivered")
    return dest


@dataclass
class Layout:
    """What `nightlab init` would choose: the entry script, editable and protected files; links (untracked data)."""

    entry: str
    editable: list[str]
    protected: list[str]
    links: list[str] = field(default_factory=list)
    tracked: list[str] = field(default_factory=list)


def layout_of(repo: Path, task: Task | None = None) -> Layout:
    """What `nightlab init` chooses for this checkout and the task's command: the files that decide the run's
    configuration (editable), evaluation and data files (protected), and the untracked data the code reads
    (links: a repository's prepared data)."""
    from nightlab.agent import code_reach, data_links, measuring
    from nightlab.agent import project_init as pi
    from nightlab.agent.workspace import Workspace

    tracked = [p for p in git(repo, "ls-files").splitlines() if p]
    command = task.command if task is not None else ""
    entry = pi.find_entry(repo, tracked) if not command else None
    reached = code_reach.reach(repo, tracked, command or pi.guess_command(repo, entry or "train.py"))
    entry = reached.entry or entry
    if entry is None:
        raise SystemExit(f"{repo}: no training script found")
    protected = list(measuring.protected_files(str(repo), tracked, reached, task.metric if task is not None else None))
    editable = list(pi.editable_files(repo, tracked, reached, protected))
    links = data_links.plan(data_links.candidates(Workspace(repo)), reached.refs).paths
    return Layout(entry=entry, editable=editable, protected=protected, links=links, tracked=tracked)


def wrapped_command(task: Task, layout: Layout, cache_dir: Path, ledger: Path, timeout: float) -> str:
    """The training command behind the cache wrapper; ``{seed}`` is left for the engine / caller to fill in. A
    task's script takes ``--seed``; a repository's command is run as its README gives it (nanoGPT fixes its seed
    in the code: the engine varies it there for its noise and confirmation runs)."""
    inner = f"{task.command} --seed {{seed}}" if task.kind == "task" else task.command
    return " ".join([
        shlex.quote(sys.executable), shlex.quote(str(HERE)), "cache-run", "--cache", shlex.quote(str(cache_dir)),
        "--task", shlex.quote(task.name), "--files", shlex.quote(",".join(layout.editable)),
        "--metric", shlex.quote(task.metric), "--regex", shlex.quote(task.regex),
        "--timeout", f"{timeout:g}", "--ledger", shlex.quote(str(ledger)), "--", inner,
    ])


def read_ledger(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []


# ============================================================================================== the search space


@dataclass
class Dim:
    """One knob the peers search over: the builtin policy's knob and its space."""

    key: str
    knob: Any  # knobs.Knob
    space: Any  # knobs.Space
    kind: str

    @property
    def baseline(self) -> Any:
        return self.knob.value


def search_dims(files: dict[str, str], command: str = "", metric: str = "", layout: Layout | None = None) -> list[Dim]:
    """The knobs the builtin policy would search in this checkout for `command`, with its ranges, in its priority
    order: each setting once, where it takes effect (a config file the command names, the command line itself)."""
    from nightlab.agent.policy import builtin

    policy = builtin.BuiltinPolicy()
    found = policy.search_knobs(files, command=command, metric=metric,
                                editable=layout.editable if layout else None,
                                tracked=(layout.tracked if layout else None) or sorted(files))
    return [Dim(key=k.key, knob=k.knob, space=k.space, kind=k.kind) for k in found]


def snap(dim: Dim, x: float) -> Any:
    """A sampled number written the way the builtin policy writes its own values."""
    from nightlab.agent.policy import search as searchmod

    return searchmod.snap(x, dim.space, dim.kind)


def apply_values(files: dict[str, str], dims: list[Dim], values: dict[str, Any], layout: Layout,
                 command: str = "", metric: str = "") -> tuple[dict[str, str], str]:
    """`files` and `command` with the knobs set to `values`, written by the builtin policy's own editing code (a
    literal in its file, a value on the command line) and validated by edits.apply_edits."""
    from nightlab.agent.edits import apply_edits
    from nightlab.agent.policy import builtin
    from nightlab.agent.policy.base import Edit

    policy = builtin.BuiltinPolicy()
    knobs = policy.search_knobs(files, command=command, metric=metric, editable=layout.editable,
                                tracked=layout.tracked or sorted(files))
    texts, new_command = policy.write_values(files, command, knobs, values)
    edits = [Edit(p, files[p], t) for p, t in texts.items() if t != files[p]]
    changed = apply_edits(edits, files.get, layout.editable, layout.protected)
    return {**files, **changed}, new_command


def _checkout(repo: Path, layout: Layout) -> dict[str, str]:
    """The tracked source and config files of a checkout (editable or not: a default in one may be overridden by
    another), as the policy reads them."""
    exts = (".py", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini")
    out = {}
    for p in layout.tracked or layout.editable:
        f = repo / p
        if p.endswith(exts) and f.is_file() and f.stat().st_size <= 400_000:
            out[p] = f.read_text(errors="replace")
    return out


# ============================================================================================== running one combination


@dataclass
class Combo:
    """One (task, method, seed) to run, and where to put things."""

    task: Path
    method: str
    seed: int
    budget: int
    cache: Path
    timeout: float
    isolation: str
    tpe_startup: int
    keep: bool = False


@dataclass
class ComboResult:
    task: str
    method: str
    seed: int
    runs: list[dict[str, Any]] = field(default_factory=list)  # in launch order
    best: float | None = None
    best_any: float | None = None
    engine_best: float | None = None
    baseline: float | None = None  # the seed's first run: the unmodified code
    gap: float = 0.0
    trajectory: list[float | None] = field(default_factory=list)
    runs_to_half: int | None = None
    failed: int = 0
    timeouts: int = 0
    trained: int = 0
    cached: int = 0
    wall_s: float = 0.0
    train_s: float = 0.0
    dims: list[str] = field(default_factory=list)
    error: str | None = None


_SLOT: Any = None  # this worker's slot (nightlab.sandbox.slots.Slot)


def _init_worker(queue: Any) -> None:
    """Pool initializer: take one slot for the life of this worker process."""
    global _SLOT
    _SLOT = queue.get()
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if _SLOT.cpus:
            os.sched_setaffinity(0, set(_SLOT.cpus))


def run_combo(combo: Combo) -> ComboResult:
    """Run one combination (in whatever process holds a slot) and score it."""

    def method(task: Task, repo: Path, layout: Layout, command: str, slot: Any, res: ComboResult,
               ledger: Path) -> None:
        if combo.method == "nightlab":
            _run_nightlab(combo, task, repo, layout, command, slot, res, ledger)
        elif combo.method in peers().PEERS:
            _run_sweep(combo, task, repo, layout, command, slot, res, ledger)
        else:
            raise ValueError(f"unknown method {combo.method!r}")

    return run_in_task_repo(combo, method)


Method = Callable[["Task", Path, "Layout", str, Any, "ComboResult", Path], None]


def run_in_task_repo(combo: Combo, method: Method) -> ComboResult:
    """The task copied into a fresh repository, `method` run on it with this worker's slot, the cache's ledger
    read back (what trained, what replayed), the repository removed, the result scored."""
    from nightlab.sandbox import slots

    slot = _SLOT or slots.Slot(id="cpu0", cpus=[])
    task = load_task(combo.task)
    res = ComboResult(task=task.name, method=combo.method, seed=combo.seed)
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"bench-{task.name}-{combo.method}-{combo.seed}-"))
    ledger = combo.cache / "ledger" / f"{work.name}.jsonl"
    try:
        repo = make_repo(task, work / "repo")
        layout = layout_of(repo, task)
        command = wrapped_command(task, layout, combo.cache, ledger, combo.timeout)
        method(task, repo, layout, command, slot, res, ledger)
    except Exception as err:  # one broken combination is a row in the table, not a lost benchmark
        res.error = f"{type(err).__name__}: {err}"
    finally:
        entries = read_ledger(ledger)
        res.trained = sum(1 for x in entries if not x.get("hit"))
        res.cached = sum(1 for x in entries if x.get("hit"))
        res.train_s = round(sum(float(x.get("seconds") or 0.0) for x in entries), 2)
        with contextlib.suppress(OSError):
            ledger.unlink()
        if not combo.keep:
            shutil.rmtree(work, ignore_errors=True)
        res.wall_s = round(time.monotonic() - t0, 2)
    score(task, res)
    return res


@contextlib.contextmanager
def faithful_status(ledger: Path, timeout: float) -> Iterator[None]:
    """Make a replayed job look to the engine exactly like the run it replays.

    The engine reads how a job ended through `runner.read_status`; while this is active (in this process only), a
    finished job whose ledger line is found reports the *recorded* training seconds (hit or miss alike, so a replay
    lasting 0.3 s reads as the original 15 s), and a recorded timeout reports state ``timed_out`` as the job
    wrapper would have. The log, the metric and everything else stay the engine's own.
    """
    from nightlab.sandbox import runner

    real = runner.read_status

    def read_status(run_dir: Path | str, *args: Any, **kw: Any) -> Any:
        st = real(run_dir, *args, **kw)
        if st is None:
            return st
        mine = [x for x in read_ledger(ledger) if x.get("job") == str(st.job_id)]
        if not mine:
            return st
        line = mine[-1]
        st.seconds = float(line.get("seconds") or st.seconds)
        if line.get("timed_out") and st.state != "timed_out":
            st.state, st.exit_code, st.signal = "timed_out", None, None
            st.reason = f"exceeded the {timeout:g} s timeout"
            st.seconds = timeout
        return st

    runner.read_status = read_status
    try:
        yield
    finally:
        runner.read_status = real


def stands(status: str, kind: str) -> bool:
    """Whether an experiment's own run counts for nightlab's best: kept, kept on one seed because the budget ran out
    before its confirmation (what the session ends with), or promoted; never a seed re-run."""
    from nightlab.agent.engine import RERUN
    from nightlab.agent.states import WINNERS

    return status in WINNERS and kind != RERUN


def _run_nightlab(combo: Combo, task: Task, repo: Path, layout: Layout, command: str, slot: Any,
                  res: ComboResult, ledger: Path, policy: Any = None, share: bool = True) -> None:
    """The engine with `policy` (default: the builtin) on the task; `share`: its steps go to the user's experience
    store ($XDG_DATA_HOME; bench/learn.py points it at a folder of its own)."""
    from nightlab.agent.config import (
        ExperienceConfig,
        MetricConfig,
        ProjectConfig,
        SandboxConfig,
        SearchConfig,
        SlotsConfig,
    )
    from nightlab.agent.engine import Engine, EngineOptions
    from nightlab.agent.policy.builtin import BuiltinPolicy
    from nightlab.agent.states import Mode
    from nightlab.sandbox import lease

    cfg = ProjectConfig(
        command=command, metric=MetricConfig(name=task.metric, goal=task.goal, regex=task.regex or None),  # type: ignore[arg-type]
        timeout=combo.timeout, editable=layout.editable, protected=layout.protected, links=layout.links,
        search=SearchConfig(seed=combo.seed, budget=combo.budget, parallel=1),
        # the cache wrapper (this file) and nightlab itself live outside the worktree; under bubblewrap a checkout
        # in /tmp would be hidden behind the private /tmp, so both are made readable explicitly
        sandbox=SandboxConfig(isolation=combo.isolation, writable=[str(combo.cache)],  # type: ignore[arg-type]
                              readable=[str(Path(__file__).resolve().parent.parent)]),
        slots=SlotsConfig(cpus=1), experience=ExperienceConfig(share=share),
    )
    opts = EngineOptions(mode=Mode.AUTONOMOUS, budget=combo.budget, unsafe_no_sandbox=combo.isolation == "none")
    eng = Engine(repo, cfg, options=opts, policy=policy if policy is not None else BuiltinPolicy())
    # this worker's slot only (one job at a time, on its own core), leased in the benchmark's own folder: the
    # benchmark pins its workers to cores itself, other nightlab projects on the machine do not hold these
    eng.pool = lease.MachinePool([slot], str(repo), wake_argv=eng.launcher.wake_argv(),
                                 signal_path=str(eng.paths.signal), lock_path=str(eng.lock.path),
                                 directory=combo.cache / "slots" / slot.id)
    with faithful_status(ledger, combo.timeout):
        summary = eng.run()
    res.engine_best = summary.best
    res.dims = [d.key for d in search_dims(_checkout(repo, layout), command, task.metric, layout)]
    exps = {e.id: e for e in eng.store.experiments()}
    seen: set[int] = set()
    for job in eng.store.jobs():
        e = exps.get(job.experiment_id)
        if e is None or e.id in seen:
            continue
        seen.add(e.id)
        kept = stands(e.status, e.kind)
        res.runs.append({
            "exp": e.id, "kind": e.kind, "title": e.title, "seed": e.seed, "metric": e.metric,
            "ok": e.run_result == "succeeded" and e.metric is not None, "status": e.status, "kept": kept,
            "timed_out": e.run_result == "timed_out", "seconds": e.seconds,
            "rerun_of": e.rerun_of, "failure": e.failure_class, "knobs": e.knobs,
            "predicted_s": e.predicted_s, "priced": e.priced,
        })
    eng.store.close()


def _run_sweep(combo: Combo, task: Task, repo: Path, layout: Layout, command: str, slot: Any,
               res: ComboResult, ledger: Path) -> None:
    from nightlab.sandbox import slots

    base_files = _checkout(repo, layout)
    dims = search_dims(base_files, command, task.metric, layout)
    res.dims = [d.key for d in dims]
    env = {**os.environ, **slots.slot_env(slot, 1), "PYTHONUNBUFFERED": "1"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", os.defpath)
    env.pop("NIGHTLAB_JOB_ID", None)

    def train(values: dict[str, Any]) -> dict[str, Any]:
        files, cmd = apply_values(base_files, dims, values, layout, command, task.metric) if values \
            else (base_files, command)
        for p, t in files.items():
            if (repo / p).read_text() != t:
                (repo / p).write_text(t)
        before = len(read_ledger(ledger))
        # the wrapper stops the run at the timeout; the shell's own limit is only a backstop
        out, rc = _run_shell(cmd.replace("{seed}", str(combo.seed)), repo, env, combo.timeout + 30, slot)
        lines = read_ledger(ledger)[before:]
        timed_out = rc is None or any(x.get("timed_out") for x in lines)
        value = parse_value(out, task.metric, task.regex) if rc == 0 else None
        run = {"seed": combo.seed, "values": values, "metric": value, "ok": value is not None, "rc": rc,
               "timed_out": timed_out, "seconds": lines[-1].get("seconds") if lines else None}
        res.runs.append(run)
        return run

    peer = peers().PEERS[combo.method]
    base_run = train({}) if peer.default_first else None  # trial 1: the committed configuration, like nightlab's
    trials = combo.budget - (1 if base_run is not None else 0)
    if trials <= 0:
        return
    if not dims:  # nothing to search: the committed configuration is all a sampler could run
        if base_run is None:
            train({})
        return
    peer.run(peers().Search(dims=dims, seed=combo.seed, trials=trials, budget=combo.budget, goal=task.goal,
                            train=train, snap=snap, base_run=base_run, tpe_startup=combo.tpe_startup))


def _run_shell(command: str, cwd: Path, env: dict[str, str], timeout: float, slot: Any) -> tuple[str, int | None]:
    """Run through /bin/sh like the engine does (stderr merged into the log, as the engine's job wrapper does); kill
    the whole process group on timeout. Returns (output, exit code or None on timeout)."""
    cpus = set(slot.cpus) if slot is not None and slot.cpus else None

    def pin() -> None:
        if cpus:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, cpus)

    proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=pin)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return out.decode("utf-8", "replace"), None
    return out.decode("utf-8", "replace"), proc.returncode


# ============================================================================================== scoring


def _better(task: Task, a: float | None, b: float | None) -> bool:
    """Whether `a` is strictly better than `b` (None is worse than anything)."""
    if a is None:
        return False
    return b is None or task.sign * (a - b) > 0


def score(task: Task, res: ComboResult) -> None:
    """best, trajectory, gap closed, runs to half gap and failures of one combination."""
    best: float | None = None
    best_any: float | None = None
    traj: list[float | None] = []
    for run in res.runs:
        value = run["metric"] if run["ok"] else None
        if _better(task, value, best_any):
            best_any = value
        counts = run.get("kept", True) and run["seed"] == res.seed
        if counts and _better(task, value, best):
            best = value
        traj.append(best)
    res.best, res.best_any, res.trajectory = best, best_any, traj
    first = res.runs[0] if res.runs else None
    res.baseline = first["metric"] if first is not None and first["ok"] else task.baseline
    res.gap = task.gap(best, res.baseline)
    res.failed = sum(1 for r in res.runs if not r["ok"])
    res.timeouts = sum(1 for r in res.runs if r.get("timed_out"))
    # a repository has no reference: "half the gap" is half of a 5 % improvement there
    half = 0.5 if task.reference is not None else 0.025
    res.runs_to_half = next((i + 1 for i, v in enumerate(traj) if v is not None and task.gap(v, res.baseline) >= half),
                            None)


def _mean_sd(xs: list[float]) -> tuple[float | None, float | None]:
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def aggregate(tasks: dict[str, Task], results: list[ComboResult], methods: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (task, method): the per-seed numbers reduced to mean ± sd."""
    rows = []
    for name, task in tasks.items():
        for m in methods:
            rs = sorted((r for r in results if r.task == name and r.method == m), key=lambda r: r.seed)
            if not rs:
                continue
            bests = [r.best for r in rs if r.best is not None]
            mean, sd = _mean_sd(bests)
            gmean, gsd = _mean_sd([r.gap for r in rs])
            halves = [r.runs_to_half for r in rs if r.runs_to_half is not None]
            bases = [r.baseline for r in rs if r.baseline is not None]
            rows.append({
                "task": name, "method": m, "goal": task.goal, "seeds": len(rs), "scored": len(bests),
                "kind": task.kind, "baseline": statistics.fmean(bases) if bases else task.baseline,
                "best_mean": mean, "best_sd": sd, "gap_mean": gmean, "gap_sd": gsd,
                "half_mean": statistics.fmean(halves) if halves else None, "half_reached": len(halves),
                "failed": sum(r.failed for r in rs), "timeouts": sum(r.timeouts for r in rs),
                "runs": sum(len(r.runs) for r in rs),
                "wall_s": statistics.fmean(r.wall_s for r in rs), "train_s": statistics.fmean(r.train_s for r in rs),
                "trained": sum(r.trained for r in rs), "cached": sum(r.cached for r in rs),
                "errors": [r.error for r in rs if r.error],
            })
    return rows


def summarise(tasks: dict[str, Task], rows: list[dict[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    """Mean gap closed per method, and on how many tasks nightlab beats each other method by mean best."""
    out: dict[str, Any] = {"mean_gap": {}, "nightlab_beats": {}}
    for m in methods:  # over tasks with a reference only: a repository's improvement is another unit
        gaps = [r["gap_mean"] for r in rows if r["method"] == m and r["gap_mean"] is not None
                and r.get("kind") != "repo"]
        out["mean_gap"][m] = statistics.fmean(gaps) if gaps else None
    if "nightlab" in methods:
        for other in methods:
            if other == "nightlab":
                continue
            wins, compared, ties = 0, 0, 0
            for name, task in tasks.items():
                a = next((r for r in rows if r["task"] == name and r["method"] == "nightlab"), None)
                b = next((r for r in rows if r["task"] == name and r["method"] == other), None)
                if a is None or b is None:
                    continue
                compared += 1
                if _better(task, a["best_mean"], b["best_mean"]):
                    wins += 1
                elif a["best_mean"] == b["best_mean"]:
                    ties += 1
            out["nightlab_beats"][other] = {"wins": wins, "ties": ties, "tasks": compared}
    return out


def predictions(results: Sequence[ComboResult]) -> list[dict[str, Any]]:
    """How well nightlab's run-time predictions held, per task and pricing (a knob move's factor, a code edit's cost
    read from the code): the runs its policy proposed that ran to their end, the median of predicted / measured
    seconds and the share within 30 %; runs priced at their parent's time (their cost could not be read) are
    counted, with no ratio. A run that timed out counts as measured at its timeout (an under-prediction at least
    that large). Re-runs and the baseline are left out: they are priced at a measured run of the same code."""
    groups: dict[tuple[str, str], list[float | None]] = {}
    for r in results:
        if r.method != "nightlab":
            continue
        for run in r.runs:
            pred, secs = run.get("predicted_s"), run.get("seconds")
            if run.get("kind") in ("baseline", "rerun") or not run.get("priced") or not secs:
                continue
            if not (run.get("ok") or run.get("timed_out")):
                continue
            # priced at its parent's time: no prediction of its own, counted so the table says how many
            ratio = float(pred) / float(secs) if pred else None
            groups.setdefault((r.task, str(run["priced"])), []).append(ratio)
    out = []
    for (task, priced), got in sorted(groups.items()):
        ratios = [x for x in got if x is not None]
        out.append({"task": task, "priced": priced, "runs": len(got),
                    "median": statistics.median(ratios) if ratios else None,
                    "within_30": sum(1 for x in ratios if abs(x - 1) <= 0.3) / len(ratios) if ratios else None,
                    "low": min(ratios, default=None), "high": max(ratios, default=None)})
    return out


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}" if abs(x) >= 1000 else f"{x:.{digits}f}"


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The results table, its summary line and the exact command."""
    lines = [
        f"# Search benchmark ({meta['created']})", "",
        f"`{meta['command']}`", "",
        *([f"(resumed from {'; '.join(meta['resumed'])})", ""] if meta.get("resumed") else []),
        f"budget {meta['budget']} runs, {meta['seeds']} seed(s), {meta['workers']} worker(s) on {meta['cpus']} "
        f"core(s); best = best single run at the method's seed (nightlab: of a kept experiment); gap closed = "
        f"(best − baseline) / (reference − baseline) from task.toml (crash baseline = {CRASH_BASELINE}); for a "
        "real repository (repo.toml, no reference) the improvement over its baseline run, and runs to half gap "
        "= runs to a 2.5 % improvement.", "",
        "| task | method | best (mean ± sd) | gap closed | runs to half gap | failed | wall s | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        best = "no score" if r["best_mean"] is None else f"{_fmt(r['best_mean'])} ± {_fmt(r['best_sd'])}"
        if r["best_mean"] is not None and r["scored"] < r["seeds"]:
            best += f" ({r['scored']}/{r['seeds']} scored)"
        gap = f"{r['gap_mean']:.2f} ± {r['gap_sd']:.2f}" if r["gap_mean"] is not None else "—"
        if r.get("kind") == "repo" and r["gap_mean"] is not None:  # no reference: the improvement over baseline
            gap = f"{100 * r['gap_mean']:+.1f} % ± {100 * r['gap_sd']:.1f} vs baseline {_fmt(r.get('baseline'))}"
        half = "—" if r["half_mean"] is None else f"{r['half_mean']:.1f} ({r['half_reached']}/{r['seeds']})"
        err = f" ⚠ {len(r['errors'])} error(s)" if r["errors"] else ""
        failed = f"{r['failed']}/{r['runs']}" + (f" ({r['timeouts']} timed out)" if r["timeouts"] else "")
        lines.append(f"| {r['task']} | {r['method']} | {best} | {gap} | {half} | {failed} | "
                     f"{r['wall_s']:.0f} | {r['train_s']:.0f}{err} |")
    lines.append("")
    gaps = ", ".join(f"{m} {g:.2f}" if g is not None else f"{m} —" for m, g in summary["mean_gap"].items())
    lines.append(f"Mean gap closed: {gaps}.")
    for other, w in summary.get("nightlab_beats", {}).items():
        tie = f" ({w['ties']} tie(s))" if w["ties"] else ""
        lines.append(f"nightlab beats {other} on {w['wins']} of {w['tasks']} task(s) by mean best{tie}.")
    if summary.get("paired"):
        lines += ["", *paired().markdown(summary["paired"], goal_for=lambda peer: peer in METHODS)]
    if summary.get("predictions"):
        lines += ["", "nightlab's run-time predictions against the measured runs (predicted / measured seconds; "
                      "a timed-out run measured at its timeout):", "",
                  "| task | priced by | runs | median | within 30 % | range |", "|---|---|---|---|---|---|"]
        for q in summary["predictions"]:
            if q["median"] is None:  # its parent's time stood: nothing of its own to set against the run
                lines.append(f"| {q['task']} | {q['priced']} (no prediction) | {q['runs']} | — | — | — |")
                continue
            lines.append(f"| {q['task']} | {q['priced']} | {q['runs']} | {q['median']:.2f} | "
                         f"{100 * q['within_30']:.0f} % | {q['low']:.2f}–{q['high']:.2f} |")
    return "\n".join(lines) + "\n"


# ============================================================================================== the driver


def worker_slots(workers: int = 0) -> list[Any]:
    """One CPU slot per worker: the machine's CPU slots (cores − 1), or `workers` of them when given."""
    from nightlab.sandbox import slots

    found = slots.discover(0, 1, [])
    if workers > 0:
        cpus = slots.cpu_list()
        found = [slots.Slot(id=f"cpu{i}", cpus=[cpus[i % len(cpus)]] if cpus else []) for i in range(workers)]
    return found


def run_benchmark(task_dirs: Sequence[Path], methods: Sequence[str], budget: int, seeds: int, *,
                  cache: Path = CACHE, results: Path = RESULTS, json_out: Path | None = None, workers: int = 0,
                  timeout: float = 120.0, timeouts: Sequence[str] = (), isolation: str = "auto",
                  tpe_startup: int = 0, keep: bool = False, command: str = "",
                  progress: Callable[[str], None] = print, resume: Sequence[Path] = ()) -> dict[str, Any]:
    """Run every (task, method, seed), write the JSON and Markdown after each one finishes, return the report.

    `timeout` is every run's limit; `timeouts` (``NAME=SECONDS``, by task or folder name) sets a slower task's own,
    so one invocation covers the shared tasks at 90 s and nanoGPT at 400 s. `resume`: saved reports of an
    invocation that was cut off (the machine went away) with the same budget and timeouts; the combinations they
    finished (without an error) are taken from them, re-scored, and only the rest run."""
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m!r} (choose from {', '.join(METHODS)})")
        peer = peers().PEERS.get(m)
        if peer is not None and not peer.available():
            how = "bash scripts/bench-smac.sh" if m == "smac" else "pip install -e '.[bench]'"
            raise SystemExit(f"method {m!r} needs the {peer.module!r} package: {how}")
    folders = [Path(d) for d in task_dirs if (Path(d) / ANSWER_SHEET).is_file() or (Path(d) / REPO_SHEET).is_file()]
    for d in task_dirs:  # a shell glob over the suite also matches its README.md
        if Path(d) not in folders:
            progress(f"skipping {d}: not a task folder (no {ANSWER_SHEET}) nor a repository (no {REPO_SHEET})")
    if not folders:
        raise SystemExit("no task folders given")
    tasks = {t.name: t for t in (load_task(d) for d in folders)}
    try:
        timeout, per_task = parse_timeouts([f"{timeout:g}", *timeouts], task_names(tasks), timeout)
    except ValueError as err:
        raise SystemExit(str(err)) from None

    def limit(name: str) -> float:
        return per_task.get(name, timeout)

    cache = Path(cache).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prior: dict[tuple[str, str, int], ComboResult] = {}
    metas: list[dict[str, Any]] = []
    if resume:
        saved, metas = load_saved(resume, tasks, methods, "--resume")
        for f, sm in zip(resume, metas, strict=True):
            if sm.get("budget") != budget:
                raise SystemExit(f"--resume: {f} ran a budget of {sm.get('budget')} runs, not {budget}: its results "
                                 "are not comparable")
            for name in sm.get("tasks_found", []):
                was = float((sm.get("timeouts") or {}).get(name, sm.get("timeout") or 0.0))
                if name in tasks and was != limit(name):
                    raise SystemExit(f"--resume: {f} ran {name} with a {was:g} s timeout, not {limit(name):g} s: its "
                                     "results are not comparable")
        prior = {k: r for k, r in saved.items() if r.error is None and r.seed < seeds}
    combos = [Combo(task=t.folder, method=m, seed=s, budget=budget, cache=cache, timeout=limit(t.name),
                    isolation=isolation, tpe_startup=tpe_startup, keep=keep)
              for s in range(seeds) for t in tasks.values() for m in methods
              if (t.name, m, s) not in prior]  # seed 0 of every task first
    if prior:
        progress(f"resuming: {len(prior)} combination(s) taken from {', '.join(map(str, resume))}, "
                 f"{len(combos)} to run")
    pool_slots = worker_slots(workers)[:max(1, len(combos))]
    meta = {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command or "run_benchmark(...)",
            "budget": budget, "seeds": seeds, "methods": list(methods), "workers": len(pool_slots),
            "cpus": os.cpu_count(), "cache": str(cache), "timeout": timeout,
            "timeouts": {n: limit(n) for n in sorted(tasks) if n in per_task}, "isolation": isolation,
            "tpe_startup": peers().tpe_startup(budget, tpe_startup), "cma_sigma0": peers().CMA_SIGMA0,
            "cma_popsize": peers().cma_popsize(budget), "smac_initial": peers().smac_initial(budget),
            "crash_baseline": CRASH_BASELINE}
    if prior:
        meta["resumed"] = [f"{f}: {m.get('command', '?')}" for f, m in zip(resume, metas, strict=True)]
    done: list[ComboResult] = list(prior.values())
    total = len(done) + len(combos)
    paths = [results / f"search-{stamp}.json", results / f"search-{stamp}.md"]
    t0 = time.monotonic()

    def report() -> dict[str, Any]:
        rows = aggregate(tasks, done, methods)
        summary = summarise(tasks, rows, methods)
        summary["paired"] = paired().compare(done, methods)
        summary["predictions"] = predictions(done)
        now: dict[str, Any] = {**meta, "wall_s": round(time.monotonic() - t0, 1), "finished": len(done),
                               "total": total}
        data: dict[str, Any] = {
            "meta": now,
            "tasks": {n: {"goal": t.goal, "metric": t.metric, "baseline": t.baseline, "reference": t.reference,
                          "gap_baseline": t.gap_baseline, "seconds": t.seconds, "kind": t.kind}
                      for n, t in tasks.items()},
            "rows": rows, "summary": summary,
            "results": [r.__dict__ for r in sorted(done, key=lambda r: (r.task, r.method, r.seed))],
        }
        text = json.dumps(data, indent=1, default=str)
        paths[0].write_text(text)
        paths[1].write_text(markdown(now, rows, summary))
        if json_out is not None:
            Path(json_out).parent.mkdir(parents=True, exist_ok=True)
            Path(json_out).write_text(text)
        data["markdown"] = markdown(now, rows, summary)
        data["paths"] = [str(p) for p in paths]
        return data

    def finished(r: ComboResult) -> None:
        done.append(r)
        best = _fmt(r.best)
        note = f"  ERROR {r.error}" if r.error else ""
        progress(f"[{len(done)}/{total}] {r.task} {r.method} seed {r.seed}: best {best} gap {r.gap:.2f} "
                 f"runs {len(r.runs)} failed {r.failed} (timed out {r.timeouts}) trained {r.trained} "
                 f"cached {r.cached} "
                 f"({r.wall_s:.0f} s){note}")
        report()

    if len(pool_slots) <= 1:
        global _SLOT
        _SLOT = pool_slots[0] if pool_slots else None
        for c in combos:
            finished(run_combo(c))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        for s in pool_slots:
            queue.put(s)
        with ProcessPoolExecutor(max_workers=len(pool_slots), mp_context=ctx, initializer=_init_worker,
                                 initargs=(queue,)) as ex:
            futs = [ex.submit(run_combo, c) for c in combos]
            for fut in as_completed(futs):
                finished(fut.result())
    return report()


def saved_label(given: Path) -> tuple[str | None, Path]:
    """`LABEL=FILE` (a saved report of another version of nightlab, tabled as the method LABEL beside the current
    one, paired like a peer) or a plain FILE."""
    head, sep, tail = str(given).partition("=")
    if sep and head and "/" not in head and head not in METHODS:
        return head, Path(tail)
    return None, Path(given)


def load_saved(files: Sequence[Path], tasks: Mapping[str, Task], methods: Sequence[str],
               flag: str) -> tuple[dict[tuple[str, str, int], ComboResult], list[dict[str, Any]]]:
    """The results earlier invocations saved (search-*.json or --json files) for these tasks and methods, a later
    file's task, method and seed replacing an earlier one's, re-scored with this file's rules — nightlab's runs by
    their recorded status and kind, so a scoring rule changed since (an `unconfirmed` best now counts) applies to
    runs saved before it. Also each file's meta (budget, timeout, command)."""
    found: dict[tuple[str, str, int], ComboResult] = {}
    metas: list[dict[str, Any]] = []
    for given in files:
        label, f = saved_label(given)
        try:
            data = json.loads(Path(f).read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"{flag}: {f}: not a saved benchmark ({err})") from None
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise SystemExit(f"{flag}: {f}: not a saved benchmark (no results list)")
        ran = sorted({str(raw.get("task")) for raw in data["results"] if isinstance(raw, dict)})
        metas.append({**(data.get("meta") or {}), "tasks_found": ran})
        for raw in data["results"]:
            r = ComboResult(**{k: v for k, v in raw.items() if k in ComboResult.__dataclass_fields__})
            if label and r.method == "nightlab":
                r.method = label
            if r.task in tasks and (not methods or r.method in methods or r.method == label):
                found[(r.task, r.method, r.seed)] = r
    for r in found.values():
        if r.method == "nightlab" or r.method not in METHODS:  # nightlab, or a labelled version of it
            for run in r.runs:
                run["kept"] = stands(str(run.get("status")), str(run.get("kind")))
        score(tasks[r.task], r)
    return found, metas


def merge(files: Sequence[Path], task_dirs: Sequence[Path], methods: Sequence[str], json_out: Path | None,
          results: Path, command: str) -> int:
    """`--merge`: the table of results several invocations saved (split over time or machines; every run is in
    the cache they shared), re-scored with this file's rules — nightlab's runs by their recorded status and kind, so
    a scoring rule changed since (an `unconfirmed` best now counts) applies to runs saved before it."""
    tasks = {t.name: t for t in (load_task(d) for d in task_dirs
                                 if (Path(d) / ANSWER_SHEET).is_file() or (Path(d) / REPO_SHEET).is_file())}
    found, metas = load_saved(files, tasks, methods, "--merge")
    if not found:
        raise SystemExit("--merge: no results for the tasks and methods given")
    done = sorted(found.values(), key=lambda r: (r.task, r.method, r.seed))
    sources = [f"{f}: {m.get('command', '?')}" for f, m in zip(files, metas, strict=True)]
    used = list(methods) or list(dict.fromkeys(r.method for r in sorted(done, key=lambda r: METHODS.index(r.method)
                                                                        if r.method in METHODS else 99)))
    used += [m for m in dict.fromkeys(r.method for r in done) if m not in METHODS and m not in used]  # LABEL=FILE
    first = metas[0]
    meta = {**first, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command, "merged": sources,
            "seeds": max(r.seed for r in done) + 1, "methods": used,
            "wall_s": round(sum(float(m.get("wall_s") or 0.0) for m in metas), 1),
            "finished": len(done), "total": len(done)}
    rows = aggregate(tasks, done, used)
    summary = summarise(tasks, rows, used)
    summary["paired"] = paired().compare(done, used)
    summary["predictions"] = predictions(done)
    text = markdown(meta, rows, summary)
    data = {"meta": meta,
            "tasks": {n: {"goal": t.goal, "metric": t.metric, "baseline": t.baseline, "reference": t.reference,
                          "gap_baseline": t.gap_baseline, "seconds": t.seconds, "kind": t.kind}
                      for n, t in tasks.items()},
            "rows": rows, "summary": summary, "results": [r.__dict__ for r in done]}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    Path(results).mkdir(parents=True, exist_ok=True)
    paths = [Path(results) / f"search-{stamp}.json", Path(results) / f"search-{stamp}.md"]
    paths[0].write_text(json.dumps(data, indent=1, default=str))
    paths[1].write_text(text)
    if json_out is not None:
        Path(json_out).write_text(json.dumps(data, indent=1, default=str))
    print(text, end="")
    print("\nmerged from:\n" + "\n".join(f"  {x}" for x in sources))
    print(f"written: {', '.join(map(str, paths))}" + (f", {json_out}" if json_out else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["cache-run"]:
        return cache_run(argv[1:])
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--tasks", nargs="+", type=Path, required=True,
                    help="task folders (with task.toml) or real repositories (with repo.toml and make-repo.sh)")
    ap.add_argument("--methods", default="",
                    help=f"comma-separated, from {','.join(METHODS)}; default: all whose package is installed")
    ap.add_argument("--budget", type=int, default=12, help="training runs per method and seed")
    ap.add_argument("--seeds", type=int, default=8, help="seeds 0..S-1 (paired across methods)")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON report here")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where search-<timestamp>.json/.md go")
    ap.add_argument("--cache", type=Path, default=CACHE, help="run cache folder")
    ap.add_argument("--workers", type=int, default=0, help="parallel combinations; 0 = one per CPU slot")
    ap.add_argument("--timeout", nargs="+", default=["120"], metavar="SECONDS|NAME=SECONDS",
                    help="seconds per training run, every method; NAME=SECONDS sets one task's own (by its name or "
                         "folder's): --timeout 90 nanogpt=400")
    ap.add_argument("--isolation", choices=["auto", "bwrap", "landlock", "none"], default="auto",
                    help="the engine's sandbox for nightlab's jobs")
    ap.add_argument("--tpe-startup", type=int, default=0,
                    help="tpe-default's n_startup_trials; 0 = clamp(N // 3, 3, 10)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary repositories")
    ap.add_argument("--resume", nargs="+", type=Path, default=(), metavar="JSON",
                    help="take the combinations these saved reports finished (same budget and timeout; an invocation "
                         "cut off) and run only the rest")
    ap.add_argument("--merge", nargs="+", type=Path, default=None, metavar="JSON",
                    help="train nothing: one table from the results saved by earlier invocations (search-*.json or "
                         "--json files; a later file's task, method and seed replace an earlier one's), scored with "
                         "this file's rules, for the tasks given and the methods given (default: all found); "
                         "LABEL=FILE tables that file's nightlab as LABEL, paired with the current one like a peer "
                         "(another version of nightlab: before and after a change)")
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.tasks, [m.strip() for m in args.methods.split(",") if m.strip()],
                     args.json, args.results, "python bench/search.py " + " ".join(shlex.quote(a) for a in argv))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        methods = [m for m in METHODS if m not in peers().PEERS or peers().PEERS[m].available()]
        missing = sorted(set(METHODS) - set(methods))
        if missing:
            print(f"not compared (package not installed: pip install -e '.[bench]'): {', '.join(missing)}")
    if args.budget < 1 or args.seeds < 1:
        ap.error("--budget and --seeds must be at least 1")
    command = "python bench/search.py " + " ".join(shlex.quote(a) for a in argv)
    bare = [t for t in args.timeout if "=" not in t]
    try:
        default_timeout = float(bare[-1]) if bare else 120.0
    except ValueError:
        ap.error(f"--timeout {bare[-1]!r}: not a number of seconds (SECONDS or NAME=SECONDS)")
    data = run_benchmark(args.tasks, methods, args.budget, args.seeds, cache=args.cache, results=args.results,
                         json_out=args.json, workers=args.workers, timeout=default_timeout,
                         timeouts=[t for t in args.timeout if "=" in t], isolation=args.isolation,
                         tpe_startup=args.tpe_startup, keep=args.keep, command=command, resume=args.resume)
    print()
    print(data["markdown"], end="")
    print(f"\nwritten: {', '.join(data['paths'])}" + (f", {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
