"""The session's plan: ordered phases, each with a budget in runs and an estimate of its compute time, that a person
approves or edits before a night's work and the engine then follows.

Drafting (`draft`): the builtin policy foresees the moves it could propose on top of the best run (`foresee`: only
moves that materialise into a proposal), each tagged with its phase by policy/phases.py's table; a phase is offered
only when the policy has moves in it for this repository (no capacity phase without a width or depth knob or a
model whose depth can be changed), plus "make it run" when the baseline failed. The baseline's learning-curve
diagnosis puts its remedy's phase first; the session's run budget is shared among the phases by how many moves each
has; each run's time is the policy's cost-model prediction where it gives one, else the baseline's measured
duration.

Fitting the time (`fit`): with a deadline (`nightlab plan --hours H` / `--until HH:MM`, kept with the plan, or the
running session's own) or a compute budget, the phases' estimates are weighed against the run-seconds available (the
deadline's hours times the runs that go at once, and what `max_cpu_hours` / `max_gpu_hours` allow), in the order
the phases run: a phase that does not fit whole keeps the runs that do, and one with none left gets none; each says
how many runs it wanted, so the plan shown is one that can finish in time. A phase without an estimate (nothing
measured yet) cannot be weighed and is left as it is.

Following (`PlanFollower`): with an approved plan the engine asks the policy for moves of the current phase only
(the first phase, in the plan's order, whose run budget is not spent and where the policy still had something to
try); when the policy has nothing there, the phase is marked exhausted and the next one starts. Once every phase is
done the policy proposes freely, and a proposal whose phase the plan does not hold (dropped, not foreseen, or whose
budget is spent) is a checkpoint (`[autonomy] ask_phase_change`), waiting in the approval queue while other work goes
on. Progress is counted from the experiments' recorded phase, so it survives crashes and spans sessions.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nightlab.agent.policy.phases import TITLES, Phase, order_for
from nightlab.agent.policy.state import Foreseen
from nightlab.agent.states import EventKind
from nightlab.agent.store import Store
from nightlab.errors import NightlabError

FLOOR = 2  # runs every phase with moves gets first (fewer when it has fewer moves)
PLAN_FILE = "plan.toml"  # the name the TOML rendering is shown under when it is edited (and named in its errors)


class PlanError(NightlabError):
    """A plan edit that cannot be applied: the message names the phase or line at fault."""


@dataclass(frozen=True)
class PlannedPhase:
    """One phase of a plan: its budget in runs (0: dropped), the predicted seconds of one of its runs (None: no
    measured run to predict from), how many moves the policy foresaw in it and the first few of them."""

    phase: Phase
    runs: int
    run_s: float | None = None
    moves: int = 0
    examples: tuple[str, ...] = ()
    wanted: int | None = None  # the runs it had before `fit` trimmed them to the time available (None: not trimmed)

    @property
    def title(self) -> str:
        return TITLES[self.phase]

    @property
    def est_s(self) -> float | None:
        return None if self.run_s is None else self.run_s * self.runs

    def data(self) -> dict[str, Any]:
        return {"phase": str(self.phase), "runs": self.runs, "run_s": self.run_s, "moves": self.moves,
                "examples": list(self.examples), "wanted": self.wanted}


@dataclass(frozen=True)
class Plan:
    """Phases in the order they run (dropped ones, runs = 0, kept at the end so they can be taken back)."""

    phases: tuple[PlannedPhase, ...]
    diagnosis: tuple[str, ...] = ()
    approved: float | None = None
    exhausted: frozenset[Phase] = frozenset()
    since_exp: int = 0  # experiments after this id count towards the budgets
    id: int | None = None
    deadline: float | None = None  # epoch seconds it was fitted to (`plan --hours` / `--until`); None: none given

    @property
    def planned(self) -> list[PlannedPhase]:
        return [p for p in self.phases if p.runs > 0]

    def get(self, phase: Phase) -> PlannedPhase | None:
        return next((p for p in self.phases if p.phase == phase), None)

    def offered(self) -> list[str]:
        return [str(p.phase) for p in self.phases]


# ----------------------------------------------------------------------------------------------- drafting
def draft(foreseen: Sequence[Foreseen], *, diagnosis: Sequence[str], baseline_failed: bool,
          baseline_s: float | None, run_budget: int, fix_attempts: int) -> Plan:
    """The plan the policy would follow: phases with moves, ordered by the diagnosis, the run budget shared among
    them by how many moves each has (at least one run each, never more runs than moves)."""
    by_phase: dict[Phase, list[Foreseen]] = {}
    for f in foreseen:
        if f.phase:
            by_phase.setdefault(Phase(f.phase), []).append(f)
    fixes = max(1, fix_attempts) if baseline_failed else 0  # the repairs' runs come out of the budget first
    runs_of = _share(run_budget - fixes, {ph: len(v) for ph, v in by_phase.items()})
    phases: list[PlannedPhase] = []
    for ph in order_for(diagnosis):
        if ph == Phase.MAKE_IT_RUN:
            if baseline_failed:
                phases.append(PlannedPhase(ph, fixes, baseline_s, 0, ("repairs from the fix catalogue",)))
            continue
        moves = by_phase.get(ph, [])
        if not moves:
            continue
        runs = runs_of[ph]
        times = [f.predicted_s if f.predicted_s else baseline_s for f in moves[:runs]]
        known = [t for t in times if t]
        run_s = sum(known) / len(known) if known else None
        phases.append(PlannedPhase(ph, runs, run_s, len(moves), tuple(f.title for f in moves[:3])))
    return Plan(tuple(phases), tuple(diagnosis))


def fit(plan: Plan, available_s: float | None, overhead_s: float = 0.0) -> Plan:
    """The plan with its budgets trimmed to `available_s` run-seconds, phase by phase in the order they run (each
    from the runs it wanted before an earlier trim, so a longer time gives them back), each run taking its estimate
    plus `overhead_s` (what runs take here beyond their own seconds, measured); None: as it is."""
    if available_s is None:
        return plan
    left = max(0.0, available_s)
    out: list[PlannedPhase] = []
    for p in plan.phases:
        want = p.wanted if p.wanted is not None else p.runs
        if want <= 0 or not p.run_s or p.run_s <= 0:  # dropped, or no estimate to weigh
            out.append(replace(p, runs=want, wanted=None))
            continue
        each = p.run_s + max(0.0, overhead_s)
        n = min(want, int((left + 1e-9) // each))
        left -= n * each
        out.append(replace(p, runs=n, wanted=want if n < want else None))
    return replace(plan, phases=tuple(out))


def _share(budget: int, moves: dict[Phase, int]) -> dict[Phase, int]:
    """Runs per phase: up to `FLOOR` each, the rest of the budget by how many moves are left in each (the knob
    search makes many moves of a phase with many knobs; the floor keeps a phase with few from being starved), never
    more runs than moves."""
    runs = {ph: min(n, FLOOR) for ph, n in moves.items()}
    left = budget - sum(runs.values())
    spare = {ph: n - runs[ph] for ph, n in moves.items()}
    total = sum(spare.values())
    if left > 0 and total > 0:
        for ph, n in spare.items():
            runs[ph] += min(n, round(left * n / total))
    return runs


# ----------------------------------------------------------------------------------------------- storing
def load(store: Store, approved: bool = False) -> Plan | None:
    """The newest plan of the project (a draft or an approved one; `approved`: the one being followed, which a
    newer draft does not replace until it is approved), None when there is none."""
    row = store.latest_plan(approved)
    if row is None:
        return None
    phases = tuple(PlannedPhase(Phase(p["phase"]), int(p["runs"]), p.get("run_s"), int(p.get("moves", 0)),
                                tuple(p.get("examples", ())), p.get("wanted"))
                   for p in row["phases"] if p["phase"] in set(Phase))
    diag = tuple(x for x in (row.get("diagnosis") or "").split(",") if x)
    return Plan(phases, diag, row.get("approved"), frozenset(Phase(x) for x in row["exhausted"] if x in set(Phase)),
                int(row.get("since_exp") or 0), int(row["id"]), row.get("deadline"))


def save(store: Store, plan: Plan) -> Plan:
    """Write the plan (a new row for a new draft, else an update of its row); returns it with its id."""
    values = {"phases": [p.data() for p in plan.phases], "diagnosis": ",".join(plan.diagnosis),
              "approved": plan.approved, "exhausted": sorted(str(x) for x in plan.exhausted),
              "since_exp": plan.since_exp, "deadline": plan.deadline}
    if plan.id is None:
        return replace(plan, id=store.add_plan(**values))
    store.update_plan(plan.id, **values)
    return plan


# ----------------------------------------------------------------------------------------------- editing
def _phase_named(plan: Plan, name: str, where: str) -> Phase:
    name = name.strip().lower().replace(" ", "_").replace("-", "_")
    if name not in set(Phase) or Phase(name) not in {p.phase for p in plan.phases}:
        raise PlanError(f"{where}: {name!r} is not a phase of this plan (one of: {', '.join(plan.offered())})")
    return Phase(name)


def _runs(text: Any, where: str) -> int:
    if isinstance(text, bool) or not isinstance(text, int | str) or not str(text).strip().isdigit():
        raise PlanError(f"{where}: runs must be a whole number >= 0 (0 drops the phase), not {text!r}")
    return int(text)


def _with(plan: Plan, phase: Phase, runs: int) -> Plan:
    phases = [replace(p, runs=runs, wanted=None) if p.phase == phase else p for p in plan.phases]
    return _dropped_last(replace(plan, phases=tuple(phases)))


def _dropped_last(plan: Plan) -> Plan:
    return replace(plan, phases=tuple([p for p in plan.phases if p.runs > 0] + [p for p in plan.phases if p.runs == 0]))


def drop(plan: Plan, name: str) -> Plan:
    """`--drop PHASE`: the phase gets no runs (`--budget PHASE=N` takes it back)."""
    return _with(plan, _phase_named(plan, name, f"--drop {name}"), 0)


def set_budget(plan: Plan, spec: str) -> Plan:
    """`--budget PHASE=N`."""
    where = f"--budget {spec}"
    name, sep, n = spec.partition("=")
    if not sep:
        raise PlanError(f"{where}: expected PHASE=RUNS, e.g. capacity=3")
    return _with(plan, _phase_named(plan, name, where), _runs(n.strip(), where))


def reorder(plan: Plan, spec: str) -> Plan:
    """`--order a,b,c`: the phases named first, in that order; the others after them as they were."""
    where = f"--order {spec}"
    names = [_phase_named(plan, n, where) for n in spec.split(",") if n.strip()]
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise PlanError(f"{where}: {str(dup)!r} is named twice")
    if not names:
        raise PlanError(f"{where}: name the phases in the order they should run, e.g. capacity,optimizer")
    first = [plan.get(n) for n in names]
    rest = [p for p in plan.phases if p.phase not in names]
    return _dropped_last(replace(plan, phases=tuple([p for p in first if p is not None] + rest)))


def to_toml(plan: Plan) -> str:
    """The plan as the person edits it: one [[phase]] table per phase, in the order they run."""
    out = ["# The session's plan: phases run top to bottom. Change the order, a phase's runs, or delete a phase",
           "# (or set runs = 0) to drop it. Phases the policy can work in for this repository:",
           f"#   {', '.join(plan.offered())}", ""]
    for p in plan.planned:
        est = f", about {p.est_s / 60:.1f} min" if p.est_s is not None else ""
        out += ["[[phase]]", f'name = "{p.phase}"  # {p.title}{est}', f"runs = {p.runs}", ""]
    return "\n".join(out)


def from_toml(plan: Plan, text: str, source: str = PLAN_FILE) -> Plan:
    """The plan as edited in `text`; a PlanError naming the line or phase at fault when it is not a valid plan."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise PlanError(f"{source}: {err}") from None
    unknown = sorted(set(data) - {"phase"})
    if unknown:
        raise PlanError(f"{source}: unknown key {unknown[0]!r} (only [[phase]] tables with name and runs)")
    tables = data.get("phase", [])
    if not isinstance(tables, list):
        raise PlanError(f"{source}: `phase` must be [[phase]] tables")
    order: list[PlannedPhase] = []
    for i, t in enumerate(tables, 1):
        where = f"{source}: phase {i}"
        extra = sorted(set(t) - {"name", "runs"})
        if extra:
            raise PlanError(f"{where}: unknown key {extra[0]!r} (a phase has a name and runs)")
        if "name" not in t or not isinstance(t["name"], str):
            raise PlanError(f"{where}: name is missing (one of: {', '.join(plan.offered())})")
        ph = _phase_named(plan, t["name"], where)
        if any(p.phase == ph for p in order):
            raise PlanError(f"{where}: {str(ph)!r} appears twice")
        if "runs" not in t:
            raise PlanError(f"{where} ({ph}): runs is missing")
        old = plan.get(ph)
        assert old is not None
        order.append(replace(old, runs=_runs(t["runs"], f"{where} ({ph})"), wanted=None))
    rest = [replace(p, runs=0, wanted=None) for p in plan.phases if p.phase not in {o.phase for o in order}]
    return _dropped_last(replace(plan, phases=tuple(order + rest)))


# ----------------------------------------------------------------------------------------------- following
@dataclass
class Progress:
    """A plan against what ran: runs proposed in each phase, and the phase the policy works in now."""

    plan: Plan
    used: dict[Phase, int] = field(default_factory=dict)

    def done(self, p: PlannedPhase) -> bool:
        return p.runs <= 0 or self.used.get(p.phase, 0) >= p.runs or p.phase in self.plan.exhausted

    @property
    def current(self) -> Phase | None:
        if self.plan.approved is None:
            return None
        return next((p.phase for p in self.plan.planned if not self.done(p)), None)

    def unforeseen(self, phase: Phase) -> str | None:
        """Why a proposal in `phase` is a change of phase the plan did not foresee (None: it is the plan's)."""
        p = self.plan.get(phase)
        if phase == self.current:
            return None
        if p is None or p.runs <= 0:
            what = "dropped from" if p is not None else "not in"
            return f"a move in phase {TITLES[phase]!r}, {what} the approved plan ([autonomy] ask_phase_change)"
        if self.used.get(phase, 0) >= p.runs:
            return (f"a move in phase {TITLES[phase]!r}, whose budget of {p.runs} runs is spent "
                    "([autonomy] ask_phase_change)")
        return None  # a phase of the plan the policy had given up on: finding a move there again is no surprise

    def rows(self) -> list[dict[str, Any]]:
        cur = self.current
        out = []
        for p in self.plan.phases:
            used = self.used.get(p.phase, 0)
            if p.runs <= 0 and p.wanted:
                state = "does not fit"
            elif p.runs <= 0:
                state = "dropped"
            elif p.phase == cur:
                state = "current"
            elif used >= p.runs:
                state = "done"
            elif p.phase in self.plan.exhausted:
                state = "nothing left"
            else:
                state = "next" if self.plan.approved is not None else "planned"
            out.append({**p.data(), "title": p.title, "used": used, "est_s": p.est_s, "state": state})
        return out


def progress(store: Store, plan: Plan) -> Progress:
    used = {Phase(k): v for k, v in store.runs_by_phase(plan.since_exp).items() if k in set(Phase)}
    return Progress(plan, used)


class PlanFollower:
    """What the engine asks about the approved plan while it plans experiments (everything read from the store each
    time: a plan approved or edited while the session runs is followed from the next proposal on)."""

    def __init__(self, store: Store, emit: Callable[[EventKind, str], None]) -> None:
        self.store = store
        self.emit = emit
        self._announced: Phase | None = None
        self._unfit: set[Phase] = set()  # phases where nothing fits the time left: passed over this session only

    def _progress(self) -> Progress | None:
        plan = load(self.store, approved=True)
        if plan is None:
            return None
        return progress(self.store, replace(plan, exhausted=plan.exhausted | self._unfit))

    def phases(self) -> tuple[str, ...]:
        """The phases the policy may propose in now: the current one; () = any (no approved plan, or it is done)."""
        prog = self._progress()
        cur = prog.current if prog is not None else None
        if prog is not None and cur != self._announced:
            self._announced = cur
            if cur is not None:
                p = prog.plan.get(cur)
                self.emit(EventKind.PLAN,
                          f"plan: phase {TITLES[cur]!r} ({prog.used.get(cur, 0)}/{p.runs if p else 0} runs)")
            else:
                self.emit(EventKind.PLAN, "plan: every phase is done; moves outside it wait for your approval")
        return (str(cur),) if cur is not None else ()

    def nothing_in(self, phase: str) -> None:
        """The policy had nothing left to try in `phase`: the plan moves on to its next phase."""
        plan = load(self.store, approved=True)
        if plan is None:
            return
        save(self.store, replace(plan, exhausted=plan.exhausted | {Phase(phase)}))
        self.emit(EventKind.PLAN, f"plan: nothing left to try in phase {TITLES[Phase(phase)]!r}; moving on")

    def nothing_fits(self, phase: str) -> None:
        """The policy's moves in `phase` cannot end in the time left: the plan goes on with its next phase for the
        rest of this session (unlike `nothing_in`, not recorded: a session with more time tries it again)."""
        self._unfit.add(Phase(phase))
        self.emit(EventKind.PLAN, f"plan: nothing in phase {TITLES[Phase(phase)]!r} fits the time left; moving on")

    def phase_of(self, proposed: str) -> str | None:
        """The phase recorded with a proposal: the policy's, else (a policy that does not say) the current one."""
        prog = self._progress()
        if prog is None:
            return None
        if proposed:
            return proposed
        cur = prog.current
        return str(cur) if cur is not None else None

    def unforeseen(self, phase: str | None) -> str | None:
        """The checkpoint reason when a proposal's phase is a change the approved plan did not foresee."""
        prog = self._progress()
        if prog is None or not phase or phase not in set(Phase):
            return None
        return prog.unforeseen(Phase(phase))
