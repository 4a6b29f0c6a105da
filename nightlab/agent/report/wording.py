"""The report's sentences and table cells, shared by the HTML and the Markdown so both say the same thing."""

from __future__ import annotations

import time
from dataclasses import dataclass

from nightlab.agent.goal import Goal
from nightlab.agent.metric_text import fmt_change, fmt_metric, fmt_noise
from nightlab.agent.report.facts import Facts
from nightlab.agent.report.outcomes import RERUN_KIND, Outcome


def num(v: float | None) -> str:
    """A metric value, written as every front-end writes it (agent/metric_text.py)."""
    return fmt_metric(v)


def spread(v: float | None) -> str:
    """A noise floor, in the metric's units."""
    return fmt_noise(v)


def signed(v: float | None) -> str:
    """A change of the metric, with a typographic minus."""
    return fmt_change(v, "—").replace("-", "−")


def goal_words(goal: Goal) -> str:
    return "higher is better" if goal is Goal.MAXIMIZE else "lower is better"


def duration(seconds: float) -> str:
    s = max(0.0, seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


@dataclass
class Headline:
    big: str  # "val_acc 0.577 → 0.660"
    change: str  # "+0.083 (+14.4 %), 8.3× the noise floor 0.010 — #9 LR = 0.3"
    runs: str
    compute: str
    state: str


def headline(f: Facts) -> Headline:
    st = f.standing
    if f.improved:
        assert st.best is not None and st.baseline is not None
        delta = st.best - st.baseline
        rel = f" ({100 * delta / abs(st.baseline):+.3g} %)".replace("-", "−") if st.baseline else ""
        best_row = st.row(st.best_id) if st.best_id is not None else None
        best_title = best_row["title"] if best_row else ""
        big = f"{f.metric} {num(st.baseline)} → {num(st.best)}"
        change = f"{signed(delta)}{rel}, {_beyond_noise(delta, st.noise_floor)}; best: #{st.best_id} {best_title}"
    elif st.baseline is not None:
        big = f"{f.metric} {num(st.baseline)} (baseline)"
        change = "no change beat the baseline" + (f" beyond the noise floor ({spread(st.noise_floor)})"
                                                  if st.noise_floor else "")
    else:
        big = f"{f.metric}: no result yet"
        change = "the baseline has not produced a metric" if f.runs else "nothing has run yet"
    return Headline(big=big, change=change, runs=_runs_sentence(f), compute=_compute_sentence(f),
                    state=f"session {f.session.id} ({f.session.mode}, policy {f.session.policy}): {f.state_note}")


def _beyond_noise(delta: float, noise: float | None) -> str:
    if not noise:
        return "noise not measured (the command takes no {seed}, or a single seed ran)"
    return f"{abs(delta) / noise:.1f}× the measured noise floor ({spread(noise)})"


def _runs_sentence(f: Facts) -> str:
    runs = f.session_runs
    if not runs:
        return "no run finished in this session" + (f"; {len(f.running)} still running" if f.running else "")
    reruns = sum(1 for r in runs if r.exp.kind == RERUN_KIND)
    counts: dict[Outcome, int] = {}
    for r in runs:
        if r.exp.kind != RERUN_KIND:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
    parts = [f"{n} {o.value}" for o, n in counts.items() if n]
    text = f"{len(runs)} run(s): {len(runs) - reruns} experiment(s) ({', '.join(parts)}) and {reruns} seed re-run(s)"
    if f.running:
        text += f"; {len(f.running)} still running"
    return text


def _compute_sentence(f: Facts) -> str:
    text = f"{duration(f.compute_s)} of training over {len(f.session_runs)} run(s), {duration(f.wall_s)} wall clock"
    if f.session.cost:
        text += f", model cost ${f.session.cost:.2f}"
    return text


def progress_caption(f: Facts) -> str:
    """What the progress plot shows, saying only what this session's plot has."""
    base_id = f.baseline_exp.id if f.baseline_exp else None
    confirmed = any(r.exp.kind == RERUN_KIND and r.target_id != base_id for r in f.runs)
    parts = ["Every run in the order it started; shapes and colours mark the outcome. The line is the best kept "
             "score so far" + (" (a change enters it once confirmed on a second seed)." if confirmed else ".")]
    if f.standing.noise_floor:
        parts.append("The grey band is the baseline ± the noise floor a change had to beat.")
    else:
        parts.append("Seed noise was not measured, so there is no band: every difference counted.")
    if any(r.metric is None for r in f.runs):
        parts.append("Runs without a metric sit in the strip under the axis.")
    return " ".join(parts)
