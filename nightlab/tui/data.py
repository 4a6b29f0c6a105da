"""How the TUI writes the figures of a snapshot: metrics, changes, durations, a diff's size, a session's end.

The snapshot itself (what there is to show) is the front desk's read model, agent/views.py; this module only turns
its values into the words and numbers on screen. Nothing here imports textual or reads anything.
"""

from __future__ import annotations

import time

from nightlab.agent import metric_text
from nightlab.agent.states import EventKind, Kind
from nightlab.agent.views import RunRef, Snapshot


def patch_stat(patch: str | None) -> tuple[int, int, int]:
    """(files, added, removed) of a unified diff, counted from the text so no git call is needed."""
    if not patch:
        return 0, 0, 0
    files = added = removed = 0
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            files += 1
        elif line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return files, added, removed


def fmt_metric(v: float | None) -> str:
    return metric_text.fmt_metric(v)


def fmt_delta(v: float | None) -> str:
    return metric_text.fmt_change(v)


def live_run(s: Snapshot, exp_id: int) -> RunRef | None:
    """The run of row `exp_id` that is running now (its own or a seed re-run's), if any."""
    return next((r for r in s.runs.get(exp_id, []) if r.running), None)


def elapsed(run: RunRef) -> float | None:
    """How long a running run has run (from when its training started, else from its launch); None before that."""
    started = run.job.run_started or run.job.started
    return time.time() - started if started else None


def fmt_progress(elapsed: float | None, ref_s: float | None, ref_id: int | None) -> str:
    """How far a running run is against the time a comparable run took — its own first run for a seed re-run, else
    its parent's: the one progress nightlab knows for any training script. Empty with nothing to compare."""
    if elapsed is None or not ref_s or ref_id is None:
        return ""
    if elapsed > ref_s:
        return f", past the {fmt_seconds(ref_s)} #{ref_id} took"
    return f", ~{elapsed / ref_s:.0%} of the {fmt_seconds(ref_s)} #{ref_id} took"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f}s"  # no space: a wrapped line never splits a figure from its unit
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def session_end_text(s: Snapshot) -> str:
    """What the TUI says when a session ends: the best if something beat the baseline (and how to promote it),
    else that nothing did; and why it ended, in the engine's own words where it said."""
    why = next((ev.message for ev in reversed(s.events) if ev.kind == EventKind.EXHAUSTED), None)
    if why is None and s.session is not None and s.budget_left == 0:
        why = f"all {s.budget} runs of the budget were used"
    ended = f" It ended because {why}." if why else ""
    baseline = next((r for r in s.rows if r.kind == Kind.BASELINE), None)
    best = s.row(s.best_id)
    if baseline is None or baseline.metric is None:
        return (f"The session is done: the baseline has no result, so no change could be measured against it; "
                f"nothing to promote. The events pane says what happened.{ended}")
    if best is None or best.metric is None or best.id == baseline.id:
        base = f" ({s.metric} {fmt_metric(s.baseline)})" if s.baseline is not None else ""
        return (f"The session is done: no change beat the baseline{base}; nothing to promote. The events pane says "
                f"why each change was set aside.{ended}")
    delta = f", {fmt_delta(best.delta_base)} vs baseline" if best.delta_base is not None else ""
    return (f"The session is done: the best is #{best.id} {best.title} ({s.metric} {fmt_metric(best.metric)}"
            f"{delta}); select it and press p to review and promote it.{ended}")
