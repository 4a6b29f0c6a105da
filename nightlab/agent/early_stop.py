"""Early stopping: a run whose learning curve is, at the same step, clearly worse than its parent's is stopped, so
its slot goes to the next run instead of to a result already lost.

The rule (`judge`, a pure function of the curves, so `bench/early_stop.py` replays exactly what the engine does):

    reference   the parent's curve: its held-out metric curve when the parent printed one (>= 4 points), else its
                training loss (lower is better)
    run length  L = the parent's last step; nothing is judged before `min_fraction` of it nor past `until` of it
                (`[autonomy] early_stop_until`, 0.8: the last part of a run saves little and is where a schedule's
                end — a decay, a warm restart — can still turn a run around)
    level       the median of a curve's points in the window [s - 0.1 L, s] (minibatch jitter is not evidence)
    noise       the seed noise measured on curves: at each step of the later part of a run, the spread (standard
                deviation relative to the mean) between the curves of the same code run with different seeds (the
                baseline and its noise re-runs, confirmations); at a point of a run, the larger of their median and
                of the spreads measured within 0.1 of that fraction of their runs (`Noise.at`: where seeds disagree
                more, more evidence is needed); at least 1 % of the level
    behind      (child level - parent level) at step s, signed so that positive is worse, in noise units
    lasting     the same gap 0.2 L earlier, in the noise units of that point, is past the margin too (one bad
                reading is not evidence)
    closing     the gap at L projected along the line through both gaps, counting the projection's uncertainty
    stop        behind >= margin AND lasting >= margin AND projected behind at L >= margin

The projection is what spares a late bloomer: a run that starts slower but catches up shows a closing gap, and a
straight line through a gap that closes ever more slowly (the usual shape) under-estimates where it ends, so the
rule errs on the side of letting a run finish. Without seed curves (two finished runs of the same code at different
seeds, e.g. before the baseline's noise re-run has ended) there is no measured noise and nothing is stopped.

The engine calls `EarlyStopper.check` on each running job (at most every `check_s` seconds), writes the evidence
into the run's folder (`analysis.EVIDENCE_FILE`) and stops the job with the reason `stopped_early`; analysis reads
the run as `RunResult.STOPPED_EARLY` with that evidence, the verdict is `Status.STOPPED_EARLY`, and the reward
module scores it as a regression of the size measured (reward.py), never as a failure.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nightlab.agent import analysis, run_metrics
from nightlab.agent.config import ProjectConfig
from nightlab.agent.goal import Goal
from nightlab.agent.metric_text import fmt_metric, fmt_noise
from nightlab.agent.states import ENGINE_KINDS, Kind, RunResult
from nightlab.agent.store import Experiment, Job, Store
from nightlab.sandbox import safeio
from nightlab.sandbox.spec import LOG_FILE

Curve = Sequence[Sequence[float]]  # (step, value) points

STOP_REASON = RunResult.STOPPED_EARLY.value  # the reason the job wrapper records for the stop
MIN_POINTS = 4  # a curve with fewer points is not judged (nor used as a reference)
WINDOW = 0.1  # the level at a step: the median over this fraction of the run before it
LOOKBACK = 0.2  # the gap this fraction of the run earlier gives the trend
REL_FLOOR = 0.01  # the noise is at least this fraction of the level
UNTIL = 0.8  # nothing is stopped past this fraction of the parent's run (`[autonomy] early_stop_until`)


@dataclass(frozen=True)
class Verdict:
    """A judgement of a run against its parent at one step; `stop` when it is clearly and lastingly worse."""

    stop: bool
    step: float
    fraction: float  # of the parent's run
    curve: str  # what was compared: "train loss" or the metric's name
    mine: float
    parent: float
    noise: float  # in the curve's units, at this level
    behind: float  # noise units, positive = worse
    projected: float  # noise units behind at the end of the parent's run, on the current trend
    parent_id: int = 0

    @property
    def evidence(self) -> str:
        return (f"at step {self.step:g} ({100 * self.fraction:.0f}% of parent #{self.parent_id}'s run) {self.curve} "
                f"{fmt_metric(self.mine)} vs the parent's {fmt_metric(self.parent)}: {self.behind:.1f}x the seed "
                f"noise ({fmt_noise(self.noise)}) worse, and on its trend still {self.projected:.1f}x worse at the "
                "parent's end")

    def data(self) -> dict[str, Any]:
        return {**asdict(self), "evidence": self.evidence}


def _finite(curve: Curve) -> list[tuple[float, float]]:
    return [(float(p[0]), float(p[1])) for p in curve if len(p) >= 2 and math.isfinite(float(p[1]))]


def level(curve: Sequence[tuple[float, float]], step: float, window: float) -> float | None:
    """A curve's level at `step`: the median of its points in [step - window, step] (None without one)."""
    vals = [v for s, v in curve if step - window <= s <= step]
    return statistics.median(vals) if vals else None


def seed_noise(groups: Sequence[Sequence[Curve]], min_fraction: float) -> float | None:
    """The relative spread between curves of the same code run with different seeds: for each group of two or more
    curves, at each step of the later part of its first curve, the standard deviation of the curves' levels over
    their mean; the median of all of them. None when no group has two usable curves."""
    noise = seed_noise_profile(groups, min_fraction)
    return noise.typical if noise is not None else None


@dataclass(frozen=True)
class Noise:
    """The seed noise on curves: `typical`, the median relative spread over the later part of runs, and `profile`,
    each spread measured with where in its run it was (fraction of the run, relative spread)."""

    typical: float
    profile: tuple[tuple[float, float], ...] = ()

    def at(self, fraction: float) -> float:
        """The relative noise at this point of a run: the larger of the typical spread and the median of the
        spreads measured near it (within a tenth of the run), so a part of the run where seeds disagree more (a
        schedule's turn, a noisy stretch) asks for more evidence; at least `REL_FLOOR`."""
        near = [v for f, v in self.profile if abs(f - fraction) <= WINDOW]
        return max(self.typical, statistics.median(near) if near else 0.0, REL_FLOOR)


def seed_noise_profile(groups: Sequence[Sequence[Curve]], min_fraction: float) -> Noise | None:
    """`seed_noise`, with each spread kept beside the fraction of the run it was measured at (None: nothing
    measured)."""
    spreads: list[tuple[float, float]] = []
    for group in groups:
        curves = [c for c in (_finite(g) for g in group) if len(c) >= MIN_POINTS]
        if len(curves) < 2:
            continue
        end = min(c[-1][0] for c in curves)
        if end <= 0:
            continue
        w = WINDOW * end
        for s, _ in curves[0]:
            if s < min_fraction * end or s > end:
                continue
            vals = [level(c, s, w) for c in curves]
            got = [v for v in vals if v is not None]
            if len(got) < 2:
                continue
            mean = abs(statistics.fmean(got))
            if mean > 0:
                spreads.append((s / end, statistics.stdev(got) / mean))
    if not spreads:
        return None
    return Noise(statistics.median(v for _, v in spreads), tuple(spreads))


def judge(child: Curve, parent: Curve, noise_rel: Noise | float | None, *, goal: Goal = Goal.MINIMIZE,
          min_fraction: float = 0.3, until: float = UNTIL, margin: float = 3.0, curve: str = "train loss",
          parent_id: int = 0) -> Verdict | None:
    """Judge a run's curve so far against its parent's (see the module docstring); None when there is nothing to
    judge (too early, too late, past the parent's end, too few points, no measured noise)."""
    mine, ref = _finite(child), _finite(parent)
    if noise_rel is None or len(ref) < MIN_POINTS or len(mine) < MIN_POINTS:
        return None
    noise = noise_rel if isinstance(noise_rel, Noise) else Noise(float(noise_rel))
    length = ref[-1][0]
    step = mine[-1][0]
    if length <= 0 or step > until * length or step < min_fraction * length:
        return None
    w = WINDOW * length
    earlier = step - LOOKBACK * length
    if earlier < mine[0][0]:
        return None
    c, p = level(mine, step, w), level(ref, step, w)
    c0, p0 = level(mine, earlier, w), level(ref, earlier, w)
    if c is None or p is None or c0 is None or p0 is None:
        return None
    sign = -Goal(goal).sign  # how far the child is behind: positive when it is worse
    scale, scale0 = (noise.at(f) * max(abs(x), 1e-12) for f, x in ((step / length, p), (earlier / length, p0)))
    gap, gap0 = sign * (c - p), sign * (c0 - p0)
    # the trend of the gap: a run catching up shows it close; projected to the parent's end along a straight line
    # (each reading uncertain by about one noise unit, which the projection's own uncertainty counts)
    rate = (gap - gap0) / (step - earlier)
    projected = gap + rate * (length - step)
    k = (length - step) / (step - earlier)
    behind, behind0 = gap / scale, gap0 / scale0
    ahead_end = projected / (scale * math.sqrt((1 + k) ** 2 + k ** 2))
    stop = behind >= margin and behind0 >= margin and ahead_end >= margin
    return Verdict(stop, step, step / length, curve, c, p, scale, behind, ahead_end, parent_id)


@dataclass
class Reference:
    """What a run of a child of `parent` is compared with: the parent's curve and the seed noise on curves."""

    parent_id: int
    curve: list[list[float]]
    metric_curve: bool  # the held-out metric's curve (its goal's direction), else the training loss
    noise_rel: float | None  # the typical seed noise (relative); `noise` has it step by step
    noise: Noise | None = None


def seed_groups(store: Store, use_metric: bool) -> list[list[Curve]]:
    """The curves of every experiment run with more than one seed (it and its seed re-runs), one group each."""
    groups: dict[int, list[Curve]] = {}
    for e in store.experiments():
        if e.run_result != RunResult.SUCCEEDED:
            continue
        key = e.rerun_of if e.kind == Kind.RERUN and e.rerun_of is not None else e.id
        groups.setdefault(key, []).append(e.curve if use_metric else e.loss_curve)
    return [g for g in groups.values() if len(g) >= 2]


def reference(store: Store, parent: Experiment) -> Reference:
    """The parent's curve (its metric curve when it has one, else its training loss) and the seed noise measured
    on the curves of every experiment run with more than one seed."""
    use_metric = len(_finite(parent.curve)) >= MIN_POINTS
    return reference_of(parent.id, parent.curve if use_metric else parent.loss_curve, use_metric,
                        seed_groups(store, use_metric))


def reference_of(parent_id: int, curve: Curve, metric_curve: bool, groups: Sequence[Sequence[Curve]]) -> Reference:
    """A reference from the parent's curve and the seed groups' curves (bench/early_stop.py replays saved ones)."""
    noise = seed_noise_profile(groups, 0.3)
    return Reference(parent_id, [list(p) for p in curve], metric_curve, noise.typical if noise else None, noise)


def first_stop(curve: Curve, ref: Reference, *, goal: Goal, min_fraction: float, margin: float,
               until: float = UNTIL) -> Verdict | None:
    """Replay the rule on a finished run's curve, point by point, as the engine would have read it while it ran:
    the first verdict that stops it, or None (bench/early_stop.py, and the tests of late bloomers)."""
    pts = _finite(curve)
    for k in range(MIN_POINTS, len(pts) + 1):
        got = judge(pts[:k], ref.curve, ref.noise if ref.noise is not None else ref.noise_rel,
                    goal=goal if ref.metric_curve else Goal.MINIMIZE, min_fraction=min_fraction, until=until,
                    margin=margin, parent_id=ref.parent_id)
        if got is not None and got.stop:
            return got
    return None


class EarlyStopper:
    """The engine's early-stopping room: which running jobs to stop, with the evidence (see the module doc)."""

    def __init__(self, store: Store, cfg: ProjectConfig) -> None:
        self.store = store
        self.cfg = cfg
        self._checked: dict[int, float] = {}  # job id -> when it was last read
        self._stopped: set[int] = set()  # jobs asked to stop: never judged again while they wind down

    @property
    def enabled(self) -> bool:
        return self.cfg.autonomy.early_stop

    def check(self, job: Job, worktree: Path, now: float | None = None) -> Verdict | None:
        """Read a running job's curve so far and judge it against its parent's; at most every `check_s`."""
        now = time.monotonic() if now is None else now
        last = self._checked.get(job.id, -math.inf)
        if not self.enabled or job.id in self._stopped or \
                now - last < self.cfg.autonomy.early_stop_check_s:
            return None
        self._checked[job.id] = now
        e = self.store.experiment(job.experiment_id)
        if e.kind in ENGINE_KINDS or e.parent_id is None:
            return None
        parent = self.store.experiment(e.parent_id)
        if parent.run_result != RunResult.SUCCEEDED:
            return None
        ref = reference(self.store, parent)
        run_dir = Path(job.run_dir)
        log = analysis.read_log(run_dir / LOG_FILE, analysis.LOG_READ_BYTES)
        cwd = run_dir / "src" if (run_dir / "src").is_dir() else worktree
        got = run_metrics.read_run(self.cfg.metric, log, cwd, since=job.started)
        mine = got.reading.curve if ref.metric_curve else got.loss_curve
        return judge(mine, ref.curve, ref.noise if ref.noise is not None else ref.noise_rel,
                     goal=self.cfg.metric.goal if ref.metric_curve else Goal.MINIMIZE,
                     min_fraction=self.cfg.autonomy.early_stop_after, until=self.cfg.autonomy.early_stop_until,
                     margin=self.cfg.autonomy.early_stop_margin,
                     curve=self.cfg.metric.name if ref.metric_curve else "train loss", parent_id=parent.id)

    def stopping(self, job_id: int) -> None:
        """The job was asked to stop: it is not judged again."""
        self._stopped.add(job_id)
        self._checked.pop(job_id, None)


def behind(store: Store, exp_id: int) -> float | None:
    """How many seed-noise units behind its parent a run stopped early was (from the evidence in its run dir)."""
    job = store.latest_job(exp_id)
    evidence = analysis.read_evidence(Path(job.run_dir)) if job is not None else None
    value = evidence.get("behind") if evidence else None
    return float(value) if isinstance(value, int | float) else None


def write_evidence(run_dir: Path, verdict: Verdict) -> None:
    """The evidence, in the run's folder before the job is stopped: analysis reads it with the run (crash-safe)."""
    path = Path(run_dir) / analysis.EVIDENCE_FILE
    safeio.atomic_write_bytes(path, json.dumps(verdict.data()).encode())  # by rename: a planted link is replaced


__all__ = [
    "STOP_REASON",
    "EarlyStopper",
    "Noise",
    "Reference",
    "Verdict",
    "behind",
    "first_stop",
    "judge",
    "level",
    "reference",
    "reference_of",
    "seed_groups",
    "seed_noise",
    "seed_noise_profile",
    "write_evidence",
]
