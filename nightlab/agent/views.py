"""The front desk's read side: what a front-end shows, as plain values it can hold, compare and draw.

actions.py is where a front-end asks the agent to act; this module is where it asks what there is to see. The TUI,
the console and the CLI read a project only through here: a `Snapshot` (session, experiments as rows, their runs,
jobs, approvals, the best, the engine's state, its decisions) built from the store in one go, a running job's live
line, a run's log, the machine's GPUs, and a watch that wakes when something happens. What they get are frozen
dataclasses, the store's records (records.py) and the enums of states.py — never the store, a lock or a path of the
state folder: those stay the agent's business, so a front-end cannot read a half-written state or write one.

`DeskReads` holds the project (its root, config and this thread's store connection); the front desk
(`actions.FrontDesk`) is a `DeskReads` with the actions on top, so one desk object answers both. A desk belongs to
one thread (SQLite connections stay with the thread that opened them): the TUI keeps one per worker thread.

Importing this module is cheap on purpose: the TUI imports it for its types before its first frame, so the store
(sqlite_utils, which brings pandas where it is installed), the config's models, the ledger and the file watcher are
imported only when a desk first reads (in a worker thread, off the first frame's path).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from nightlab.agent.goal import Goal
from nightlab.agent.records import Approval, Experiment, Job, Session
from nightlab.agent.states import OPEN_JOB_STATES, ApprovalState, EngineState, Kind, SessionState, Status
from nightlab.errors import NightlabError
from nightlab.sandbox import safeio
from nightlab.sandbox.gpustats import GpuStat, format_gpu, holder_label, holders
from nightlab.sandbox.lease import SLOT_WAIT

if TYPE_CHECKING:
    from nightlab.agent import artifacts
    from nightlab.agent.config import ProjectConfig
    from nightlab.agent.store import Store
    from nightlab.sandbox.watch import Waker

EVENTS_KEPT = 500  # the newest decisions a snapshot holds (the store keeps them all)


@dataclass(frozen=True)
class Row:
    """One experiment as the tables show it: seed-averaged metric and its change vs baseline and vs parent."""

    id: int
    parent: int | None
    title: str
    status: Status
    kind: Kind
    metric: float | None
    runs: int
    delta_base: float | None
    delta_parent: float | None
    seconds: float | None
    seed: int
    stage: str | None
    failure_class: str | None
    unconfirmed: bool = False  # kept on one seed: the budget ran out before its confirming re-run
    refused: bool = False  # rejected by the engine (a repeat, an invalid edit), not by a person


@dataclass(frozen=True)
class RunRef:
    """One run of a row: the experiment's own, or one of its seed re-runs, with its newest job."""

    exp_id: int
    seed: int
    job: Job
    metric: float | None = None

    @property
    def running(self) -> bool:
        return self.job.state in OPEN_JOB_STATES


@dataclass(frozen=True)
class EventLine:
    """One engine decision as the events pane shows it (from the store's events, which the engine writes)."""

    id: int
    t: float
    kind: str
    message: str
    experiment_id: int | None


@dataclass(frozen=True)
class Snapshot:
    """Everything a screen shows of one project at one moment; two snapshots compare equal when nothing changed."""

    project: str
    metric: str
    goal: Goal
    session: Session | None = None
    engine: EngineState = EngineState.NO_SESSION
    rows: list[Row] = field(default_factory=list)
    experiments: dict[int, Experiment] = field(default_factory=dict)
    approvals: list[Approval] = field(default_factory=list)  # the pending ones, oldest first
    open_jobs: list[Job] = field(default_factory=list)
    latest_job: dict[int, Job] = field(default_factory=dict)  # per row: its newest job, or its seed re-run's
    baseline: float | None = None
    best_id: int | None = None
    slots_total: int = 1
    running_rows: list[int] = field(default_factory=list)
    artifacts: dict[int, artifacts.Artifacts] = field(default_factory=dict)  # what kept runs wrote (checkpoints), by id
    runs: dict[int, list[RunRef]] = field(default_factory=dict)  # per row: its own run and its seed re-runs, in order
    events: list[EventLine] = field(default_factory=list)  # the session's engine decisions, oldest first

    @property
    def budget(self) -> int:
        return self.session.budget if self.session else 0

    @property
    def runs_started(self) -> int:
        return self.session.runs_started if self.session else 0

    @property
    def budget_left(self) -> int:
        return max(0, self.budget - self.runs_started)

    @property
    def waiting_for_slot(self) -> bool:
        """The session sleeps until a machine slot frees (another project's jobs hold them all)."""
        return self.session is not None and any(c.startswith(SLOT_WAIT) for c in self.session.wake_conditions)

    def row(self, exp_id: int | None) -> Row | None:
        return next((r for r in self.rows if r.id == exp_id), None)

    def events_of(self, exp_id: int) -> list[EventLine]:
        """The decisions about one row: its own events and those of its seed re-runs."""
        mine = {exp_id, *(r.exp_id for r in self.runs.get(exp_id, []))}
        return [ev for ev in self.events if ev.experiment_id in mine]

    @property
    def running_ids(self) -> list[int]:
        """Rows with a job running: a seed re-run counts for the experiment it re-runs."""
        return list(self.running_rows)


@dataclass(frozen=True)
class LiveJob:
    """A running job as the console's live line shows it: how long it has run, its loss so far, its last line."""

    experiment_id: int
    seconds: float
    loss: list[float]
    last_line: str


def build_rows(summary_rows: list[dict[str, Any]], refused: frozenset[int] = frozenset()) -> list[Row]:
    """Rows from the ledger's summary, with each one's change against its parent's (seed-averaged) metric."""
    metric_of = {r["id"]: r["metric"] for r in summary_rows}
    rows = []
    for r in summary_rows:
        parent_metric = metric_of.get(r["parent"]) if r["parent"] is not None else None
        dp = r["metric"] - parent_metric if r["metric"] is not None and parent_metric is not None else None
        rows.append(Row(
            id=r["id"], parent=r["parent"], title=r["title"] or "", status=r["status"], kind=r["kind"],
            metric=r["metric"], runs=r["runs"], delta_base=r["delta"], delta_parent=dp, seconds=r["seconds"],
            seed=r["seed"] or 0, stage=r["stage"], failure_class=r["failure_class"],
            unconfirmed=bool(r.get("unconfirmed")), refused=r["id"] in refused,
        ))
    return rows


class RunLog:
    """The log of an experiment's newest run, read the way the wrapper wrote it (never through a link or a FIFO
    someone put in its place)."""

    def __init__(self, exp_id: int, job: Job) -> None:
        self.exp_id = exp_id
        self.job = job
        self.path = Path(job.log_path)

    def open(self) -> IO[bytes]:
        """The log file for reading from its start; a clear error when it is missing or not a regular file."""
        try:
            fd = safeio.open_regular(self.path)
        except FileNotFoundError:
            raise NightlabError(f"no log for experiment #{self.exp_id} at {self.path}") from None
        except OSError as err:
            raise NightlabError(f"the log of experiment #{self.exp_id} is not readable: {err}") from None
        return os.fdopen(fd, "rb")

    def last_lines(self, n: int) -> list[str]:
        """Its last `n` lines (a bounded read from the end)."""
        from nightlab.sandbox import runner

        return runner.read_log(self.job.run_dir).splitlines()[-n:] if n > 0 else []

    def ended(self) -> bool:
        """Whether the run has ended (its wrapper wrote its status), so nothing more will be written."""
        from nightlab.sandbox import runner

        return runner.read_status(self.job.run_dir, self.job.wrapper) is not None


# how each front-end's signature reads in a sentence; anything else (a test's, "wake") reads as it is
_FRONT_END_NAMES = {"tui": "TUI", "cli": "CLI", "console": "console"}


def signer_name(who: str) -> str:
    """A decision's signer as a person reads it: 'tui' → 'TUI', 'cli:4242' (the CLI signs with its pid) → 'CLI'."""
    return _FRONT_END_NAMES.get(who.split(":", 1)[0], who)


class DeskReads:
    """One project as the front-ends read it. `store`: the caller's connection (one per thread); `cfg`: the
    project's config when the caller has it loaded; `who` signs what the desk records for this caller."""

    def __init__(self, root: Path, *, store: Store | None = None, cfg: ProjectConfig | None = None,
                 who: str = "cli") -> None:
        from nightlab.agent.paths import StatePaths

        self.root = Path(root).resolve()
        self.paths = StatePaths.of(self.root)
        self.who = who
        self._store = store
        self._own_store = False
        self._cfg = cfg
        self._slots: int | None = None

    @property
    def cfg(self) -> ProjectConfig:
        if self._cfg is None:
            from nightlab.agent.config import load_config

            self._cfg = load_config(self.root)
        return self._cfg

    @property
    def store(self) -> Store:
        if self._store is None:
            if not self.paths.has_store():
                raise NightlabError(f"{self.root}: no experiments yet (run `nightlab run` first)")
            from nightlab.agent.store import Store

            self._store = Store(self.paths.db)
            self._own_store = True
        return self._store

    def close(self) -> None:
        """Close the store connection this desk opened itself (one it was given stays open)."""
        if self._store is not None and self._own_store:
            self._store.close()
            self._store, self._own_store = None, False

    def has_experiments(self) -> bool:
        """Whether the project has a store yet (a first `nightlab run` makes it)."""
        return self.paths.has_store()

    def experiment(self, exp_id: int) -> Experiment:
        e = self.store.find_experiment(exp_id)
        if e is None:
            raise NightlabError(f"no experiment #{exp_id} (see `nightlab status`)")
        return e

    def baseline(self) -> Experiment | None:
        """The project's baseline experiment (None before the first run)."""
        return self.store.baseline_experiment() if self.paths.has_store() else None

    def engine_state(self, session: Session | None) -> EngineState:
        from nightlab.agent.lock import ProjectLock

        if ProjectLock(self.paths.dir).is_held():
            return EngineState.AWAKE
        if session is None:
            return EngineState.NO_SESSION
        if session.state in (SessionState.HIBERNATING, SessionState.DONE):
            return EngineState(session.state)
        return EngineState.STOPPED

    def slots_total(self) -> int:
        """How many jobs this machine runs at once for the project (its slots), counted once per desk."""
        if self._slots is None:
            from nightlab.sandbox import slots

            self._slots = len(slots.discover(self.cfg.slots.cpus, self.cfg.slots.threads_per_job,
                                             self.cfg.slots.gpus)) or 1
        return self._slots

    def snapshot(self) -> Snapshot:
        """What the screen shows, read in one go (an empty project has no session and no rows)."""
        from nightlab.agent import artifacts
        from nightlab.agent.ledger import summarize

        cfg = self.cfg
        base = Snapshot(project=self.root.name, metric=cfg.metric.name, goal=cfg.metric.goal)
        if not self.paths.has_store():
            return Snapshot(project=base.project, metric=base.metric, goal=base.goal,
                            engine=self.engine_state(None), slots_total=self.slots_total())
        store = self.store
        session = store.latest_session()
        summary = summarize(store, cfg, session)
        exps = {e.id: e for e in store.experiments()}

        def owner(exp_id: int) -> int:
            e = exps.get(exp_id)
            return e.rerun_of if e is not None and e.kind == Kind.RERUN and e.rerun_of is not None else exp_id

        latest: dict[int, Job] = {}  # per row: the newest job of the experiment or of its seed re-runs
        newest: dict[int, Job] = {}  # per experiment: its newest job (a retried run has several)
        for j in store.jobs():
            latest[owner(j.experiment_id)] = j
            newest[j.experiment_id] = j
        runs: dict[int, list[RunRef]] = {}
        for exp_id in sorted(newest):
            e = exps.get(exp_id)
            runs.setdefault(owner(exp_id), []).append(
                RunRef(exp_id, e.seed if e is not None else 0, newest[exp_id], e.metric if e is not None else None))
        open_jobs = store.open_jobs()
        running = list(dict.fromkeys(owner(j.experiment_id) for j in open_jobs))
        # a proposal a person rejected has a rejected approval; any other rejection is the engine's refusal
        by_person = {a.experiment_id for a in store.approvals(ApprovalState.REJECTED)}
        refused = frozenset(i for i, e in exps.items() if e.status == Status.REJECTED and i not in by_person)
        events = [EventLine(int(ev["id"]), float(ev["t"]), str(ev["kind"]), str(ev["message"]), ev["experiment_id"])
                  for ev in store.events(limit=-1, session_id=session.id)] if session is not None else []
        return Snapshot(
            project=base.project, metric=base.metric, goal=base.goal, session=session,
            engine=self.engine_state(session), rows=build_rows(summary.rows, refused), experiments=exps,
            approvals=store.approvals(ApprovalState.PENDING), open_jobs=open_jobs, latest_job=latest,
            baseline=summary.baseline, best_id=summary.best_id, slots_total=self.slots_total(), running_rows=running,
            artifacts=artifacts.read_all(self.paths.dir), runs=runs, events=events[-EVENTS_KEPT:],
        )

    def watch(self) -> Waker:
        """Something that wakes when the project changes (a job's run folder, a front-end's or the engine's signal):
        `wait(timeout)` says whether it did, `poke()` wakes it from another thread, `close()` ends it."""
        from nightlab.sandbox.watch import Waker

        return Waker(self.paths.runs, self.paths.signal)

    def live_jobs(self, limit: int = 2) -> list[LiveJob]:
        """The running jobs (the first `limit`) as the console's live line shows them; [] before any run."""
        if not self.paths.has_store():
            return []
        from nightlab.agent import metrics

        out = []
        for j in self.store.open_jobs()[:limit]:
            text = _tail(Path(j.log_path), 64 * 1024)
            last = text.strip().splitlines()[-1] if text.strip() else ""
            out.append(LiveJob(j.experiment_id, time.time() - (j.started or time.time()),
                               [v for _, v in metrics.parse_loss_curve(text)], last))
        return out

    def run_log(self, exp_id: int) -> RunLog:
        """The log of the experiment's newest run; a clear error when it has not run."""
        e = self.experiment(exp_id)
        job = self.store.latest_job(e.id)
        if job is None:
            raise NightlabError(f"experiment #{e.id} has not run yet ({e.status})")
        return RunLog(e.id, job)

    def plan_view(self) -> dict[str, Any] | None:
        """The newest plan against what ran (plan.py), None before one is drafted: its phases in order, each with
        runs used / budget, the estimate and its state (current, done, next, nothing left, dropped)."""
        if not self.paths.has_store():
            return None
        return self._plan_data()

    def _plan_data(self, approved: bool = False) -> dict[str, Any] | None:
        from nightlab.agent import plan

        p = plan.load(self.store, approved)
        if p is None:
            return None
        prog = plan.progress(self.store, p)
        budget_s, budget_key = self._run_seconds_allowed()
        deadline = self.plan_deadline(p.deadline)
        available_s, available_key = self.time_available(deadline)
        return {"approved": p.approved, "diagnosis": list(p.diagnosis), "phases": prog.rows(),
                "current": str(prog.current) if prog.current is not None else None, "offered": p.offered(),
                "budget_s": budget_s, "budget_key": budget_key, "deadline": deadline,
                "available_s": available_s, "available_key": available_key, "at_once": self.runs_at_once(),
                "overhead_s": self.run_overhead()}

    def plan_deadline(self, given: float | None) -> float | None:
        """The deadline a plan is weighed against: the one it was drafted for (`plan --hours` / `--until`), else
        the open session's (`run --hours` / `--until`, kept while it hibernates); None when neither is ahead."""
        from nightlab.agent import sessions

        if given is not None and given > time.time():
            return given
        s = self.store.latest_session() if self.paths.has_store() else None
        if s is None or s.state == SessionState.DONE:
            return None
        mine = sessions.recorded_deadline(self.store, s.id)
        return mine if mine is not None and mine > time.time() else None

    def runs_at_once(self) -> int:
        """How many runs go at once: `[search] parallel` capped by this machine's slots, or on a scheduler the jobs
        handed to it at once (as the engine's dispatch counts them)."""
        from nightlab.sandbox import slots

        if self.cfg.backend.kind != "local":
            return self.cfg.backend.max_jobs or self.cfg.search.parallel or 4
        n = len(slots.discover(self.cfg.slots.cpus, self.cfg.slots.threads_per_job, self.cfg.slots.gpus))
        return max(1, min(n, self.cfg.search.parallel) if self.cfg.search.parallel else n)

    def run_overhead(self) -> float:
        """Seconds a run takes here beyond its own (launch, sandbox start-up, a scheduler's queue), as measured on
        the project's runs (time_budget.py); 0 before any."""
        from nightlab.agent.time_budget import TimeBudget

        return TimeBudget(self.store, None, None, None).overhead() if self.paths.has_store() else 0.0

    def time_available(self, deadline: float | None) -> tuple[float | None, str | None]:
        """The run-seconds a session has, and what limits them: the deadline (its hours times the runs that go at
        once) or the compute budget (`_run_seconds_allowed`), the smaller; (None, None) without either."""
        allowed: list[tuple[float, str]] = []
        budget_s, key = self._run_seconds_allowed()
        if budget_s is not None and key is not None:
            allowed.append((budget_s, key))
        if deadline is not None:
            allowed.append((max(0.0, deadline - time.time()) * self.runs_at_once(), "deadline"))
        return min(allowed) if allowed else (None, None)

    def _run_seconds_allowed(self) -> tuple[float | None, str | None]:
        """The run seconds a session's compute budget allows, and the key that sets them: max_cpu_hours over the
        threads of a job, max_gpu_hours over the GPUs a job gets (the scheduler's share on a cluster), the smaller."""
        auto = self.cfg.autonomy
        allowed: list[tuple[float, str]] = []
        if auto.max_cpu_hours:
            threads = self.cfg.backend.cpus_per_job if self.cfg.backend.kind != "local" else \
                self.cfg.slots.threads_per_job
            allowed.append((auto.max_cpu_hours * 3600 / max(1, threads), "max_cpu_hours"))
        if auto.max_gpu_hours:
            if self.cfg.backend.kind != "local":
                gpus = self.cfg.backend.gpus_per_job
            elif self.cfg.slots.gpus_per_job == "auto":
                gpus = 1 if (_machine_gpus() if self.cfg.slots.gpus == "auto" else self.cfg.slots.gpus) else 0
            else:
                gpus = int(self.cfg.slots.gpus_per_job)
            if gpus:
                allowed.append((auto.max_gpu_hours * 3600 / gpus, "max_gpu_hours"))
        return min(allowed) if allowed else (None, None)

    def status(self) -> dict[str, Any]:
        """What `nightlab status` reports (and prints as JSON with --json), also before the first run."""
        from nightlab.agent.status import gpu_state, mlflow_state, status_data

        if self.paths.has_store():
            return {**status_data(self.root, self.cfg, self.store), "plan": self._plan_data(approved=True)}
        cfg = self.cfg
        return {"project": str(self.root), "metric": cfg.metric.name, "goal": cfg.metric.goal, "session": None,
                "baseline": None, "best": None, "experiments": [], "jobs": [], "approvals": [],
                "gpus": gpu_state(self.root, []), "mlflow": mlflow_state(self.root, cfg), "report": None,
                "plan": None}


def minutes(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def plan_lines(plan: dict[str, Any]) -> list[str]:
    """A plan's phases, one line each: order, state, runs used / budget, the estimate, what the policy would try."""
    out = []
    for i, p in enumerate(plan["phases"], 1):
        if p["state"] == "dropped":
            out.append(f"   -  {p['title']:<28} dropped ({p['moves']} moves foreseen)")
            continue
        if p["state"] == "does not fit":
            out.append(f"   -  {p['title']:<28} does not fit the time: 0 of {p['wanted']} runs "
                       f"({minutes(p['run_s'])} a run)")
            continue
        est = f"~{minutes(p['est_s'])}" + (f" ({minutes(p['run_s'])} a run)" if p["run_s"] else "")
        mark = ">" if p["state"] == "current" else " "
        cut = f" (cut from {p['wanted']} to fit the time)" if p.get("wanted") else ""
        out.append(f" {mark}{i:>2}. {p['title']:<28} {p['used']}/{p['runs']} runs  {est:<24} {p['state']}{cut}")
        if p["examples"]:
            out.append(f"       e.g. {'; '.join(p['examples'][:2])}")
    return out


def plan_time_lines(plan: dict[str, Any]) -> list[str]:
    """The plan's total against the time available (the deadline's, or the compute budget's: `time_available`),
    and which phases were trimmed to fit it."""
    out = []
    total = [p["est_s"] for p in plan["phases"] if p["state"] not in ("dropped", "does not fit")]
    avail = plan.get("available_s", plan.get("budget_s"))
    key = plan.get("available_key") or plan.get("budget_key") or "max_cpu_hours"
    if key == "deadline" and plan.get("deadline"):
        by = time.strftime("%H:%M", time.localtime(plan["deadline"]))
        away = minutes(max(0.0, plan["deadline"] - time.time()))
        at_once = plan.get("at_once") or 1
        what, allows = "the deadline", (f"{by}, {away} from now, {at_once} run{'s' if at_once > 1 else ''} "
                                        f"at a time: about {minutes(avail)} of runs")
    else:
        what, allows = "the compute budget", f"{key} allows about {minutes(avail)} of runs"
    if total and all(t is not None for t in total):
        out.append(f"total: {sum(p['runs'] for p in plan['phases'])} runs, about {minutes(sum(total))} of compute")
        if avail is not None:
            out.append(f"  within {what} ({allows})" if sum(total) <= avail + 1e-6 else
                       f"  over {what} ({allows}): a session ends before a run that would pass it" +
                       (", or asks with [autonomy] ask_over_budget" if what == "the compute budget" else ""))
    elif avail is not None:
        out.append(f"time available: {what} ({allows}); phases without an estimate cannot be weighed against it "
                   "(`nightlab plan --redraft` after the baseline has run)")
    if avail is not None and (plan.get("overhead_s") or 0) >= 0.5:
        out.append(f"  each run also takes about {minutes(plan['overhead_s'])} to start and be read here (measured)")
    cut = [p for p in plan["phases"] if p.get("wanted")]
    if cut:
        out.append("  trimmed to fit the time: " + "; ".join(f"{p['title']} {p['wanted']} → {p['runs']} runs"
                                                             for p in cut))
    return out


def _tail(path: Path, n: int) -> str:
    """The last `n` bytes of a log as text ("" when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def loss_curve(text: str) -> list[tuple[int, float]]:
    """(step, loss) points of a log's text, as the engine reads them (the TUI's loss chart of a running job)."""
    from nightlab.agent import metrics

    return metrics.parse_loss_curve(text)


def open_log(path: Path | str) -> int:
    """A file descriptor of a run's log for reading, refusing a link or a FIFO in its place (OSError)."""
    return safeio.open_regular(Path(path))


def read_gpus() -> list[GpuStat]:
    """This machine's GPUs (utilisation, memory) from NVML; [] without an NVIDIA driver."""
    from nightlab.sandbox import gpustats

    return gpustats.read_gpus()


def gpus_leased_elsewhere(root: Path) -> dict[int, str]:
    """GPU index -> the folder name of another project whose job holds it (the machine-wide slot leases)."""
    from nightlab.sandbox import gpustats

    return gpustats.leased_elsewhere(root)


def projects_overview() -> list[dict[str, Any]]:
    """Every project nightlab has run in, most recently used first (`nightlab projects`, the TUI's overview)."""
    from nightlab.agent.projects import overview_all

    return overview_all()


__all__ = ["EVENTS_KEPT", "DeskReads", "EventLine", "GpuStat", "LiveJob", "Row", "RunLog", "RunRef", "Snapshot",
           "build_rows", "format_gpu", "gpus_leased_elsewhere", "holder_label", "holders",
           "loss_curve", "open_log", "projects_overview", "read_gpus", "signer_name"]


@functools.cache
def _machine_gpus() -> tuple[int, ...]:
    """This machine's GPUs, asked once per process (nvidia-smi is not cheap and they do not come and go)."""
    from nightlab.sandbox import slots

    return tuple(slots.gpu_list())
