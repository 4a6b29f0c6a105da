"""The report's pictures, drawn with matplotlib's Agg canvas into PNG bytes.

matplotlib is imported only here and only when a report is written (it costs about half a second), and through
its object API (`Figure` + `FigureCanvasAgg`), never pyplot: no global figure state, so a report can be drawn from
the TUI's worker thread. Outcomes differ in marker shape as well as colour (see `outcomes.LOOKS`), lines in dash
style as well as colour, so every plot reads in a grey-scale print and for colour-blind readers.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from nightlab.agent.metric_text import fmt_metric, fmt_noise
from nightlab.agent.report.facts import Curve, Facts, SeedGroup
from nightlab.agent.report.outcomes import BLACK, BLUE, GREEN, GREY, LOOKS, ORANGE, PURPLE, SKY, VERMILLION, Outcome
from nightlab.agent.report.wording import goal_words
from nightlab.agent.states import WINNERS, Kind

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
TEXT = 9
# the order outcomes are drawn and listed in the legend: the reference first, the verdicts, then what did not run
LEGEND_ORDER = (Outcome.BASELINE, Outcome.KEPT, Outcome.UNCONFIRMED, Outcome.DISCARDED, Outcome.NO_EFFECT,
                Outcome.STOPPED_EARLY, Outcome.WAITING, Outcome.FAILED)
SEED_MARKERS = ("o", "^", "s", "D", "v", "P")
SEED_COLORS = (BLUE, ORANGE, GREEN, PURPLE, SKY, VERMILLION)
MAX_ID_LABELS = 40  # runs up to which each point is labelled with its experiment's id
CURVE_STYLE = {"best": (BLUE, "-", 2.2, "o"), "parent": (ORANGE, "--", 1.8, "s"), "baseline": (BLACK, ":", 1.8, "^")}
SPARSE_CURVE = 25  # curves with this few points show their measurements as markers


def draw_all(facts: Facts) -> dict[str, bytes]:
    """File name -> PNG bytes of every picture the session has material for (none for an empty session)."""
    if facts.short:
        return {}
    out = {"progress.png": progress(facts)}
    curves = learning_curves(facts)
    if curves is not None:
        out["curves.png"] = curves
    if facts.seeds:
        out["seeds.png"] = seeds(facts)
    return out


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return buf.getvalue()


def _style(ax: Axes) -> None:
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=TEXT)


def _fmt(v: float | None) -> str:
    return fmt_metric(v)


def _scatter(ax: Axes, outcome: Outcome, xs: list[float], ys: list[float], *, faded: bool, label: str | None,
             size_scale: float = 1.0) -> None:
    look = LOOKS[outcome]
    filled = look.filled
    ax.scatter(xs, ys, marker=look.marker, s=look.size * size_scale,
               facecolors=look.color if filled else "white",
               edgecolors=BLACK if filled and look.marker not in ("X", "_") else look.color,
               linewidths=0.7 if filled else 1.6, alpha=0.35 if faded else 1.0, zorder=4, label=label)


def progress(facts: Facts) -> bytes:
    return _png(progress_figure(facts))


def progress_figure(facts: Facts) -> Figure:
    """Every run's metric in launch order, marked by outcome; the best-so-far line over kept experiments only (each
    at its last run, with the seed-averaged score the engine kept it for); the noise band around the baseline.
    Runs without a metric (failed) sit in a strip of their own under the axis, never at a made-up value."""
    runs = facts.runs
    st = facts.standing
    failed = [r for r in runs if r.metric is None]
    fig = _figure(9.0, 4.8)
    if failed:
        ax, strip = fig.subplots(2, 1, sharex=True, height_ratios=[9, 1])
    else:
        ax, strip = fig.add_subplot(), None
    _style(ax)
    values = [r.metric for r in runs if r.metric is not None]
    better_up = facts.goal.sign > 0
    band = (st.baseline - st.noise_floor, st.baseline + st.noise_floor) \
        if st.baseline is not None and st.noise_floor else None
    lo, hi = _range(values + ([st.baseline] if st.baseline is not None else []) + list(band or ()))
    earlier = [r.index for r in runs if not r.in_session]
    if earlier and len(earlier) < len(runs):  # runs of earlier sessions stay for context, faded, on a grey span
        for a in (ax, strip) if strip is not None else (ax,):
            a.axvspan(0.5, max(earlier) + 0.5, color="#f0f0f0", zorder=0)
        ax.text(0.7, hi, "earlier sessions", fontsize=TEXT - 1, color=GREY, va="top")
    if band is not None:
        ax.axhspan(band[0], band[1], color="#cccccc", alpha=0.45, zorder=1, linewidth=0,
                   label=f"baseline ± noise floor ({fmt_noise(st.noise_floor)})")
    if st.baseline is not None:
        ax.axhline(st.baseline, color=BLACK, linewidth=0.9, linestyle=(0, (5, 3)), zorder=2,
                   label="baseline" + ("" if band else " (no noise band: seed noise was not measured)"))
    xs, ys = _best_so_far(facts)
    if xs:
        ax.step(xs, ys, where="post", color=BLUE, linewidth=2.0, zorder=3, label="best so far (kept only)")
        # on the better side of the line (the y range leaves it room): the runs that did not beat the best sit on
        # the other side, and the label above a minimised metric's line ran into the last discarded run's marker
        ax.annotate(f"best #{st.best_id}: {_fmt(st.best)}", (xs[-1], ys[-1]), textcoords="offset points",
                    xytext=(-4, 15 if better_up else -15), ha="right", va="bottom" if better_up else "top",
                    fontsize=TEXT, color=BLUE, fontweight="bold")
    for outcome in LEGEND_ORDER:
        mine = [r for r in runs if r.outcome == outcome]
        if not mine:
            continue
        label = f"{outcome.value} ({sum(1 for r in mine if r.in_session)})"
        for faded in (True, False):
            pts = [r for r in mine if (not r.in_session) == faded]
            if pts:
                target = strip if outcome == Outcome.FAILED and strip is not None else ax
                _scatter(target, outcome, [float(r.index) for r in pts],
                         [r.metric if r.metric is not None else 0.0 for r in pts], faded=faded,
                         label=None if faded else label)
    if len(runs) <= MAX_ID_LABELS:
        for r in runs:
            target = strip if r.metric is None and strip is not None else ax
            tag = f"#{r.exp.id}" if r.target_id == r.exp.id else f"#{r.target_id}/s{r.exp.seed}"  # a seed re-run
            target.annotate(tag, (r.index, r.metric if r.metric is not None else 0.0),
                            textcoords="offset points", xytext=(6, 3), fontsize=TEXT - 2, color=GREY, zorder=5,
                            bbox={"boxstyle": "square,pad=0.05", "facecolor": "white", "edgecolor": "none",
                                  "alpha": 0.8})
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.4, len(runs) + 0.6)
    ax.set_ylim(lo - (0.06 if better_up else 0.12) * (hi - lo), hi + 0.1 * (hi - lo))
    ax.set_ylabel(f"{facts.metric} ({goal_words(facts.goal)})", fontsize=TEXT)
    ax.set_title(_progress_title(facts), fontsize=TEXT + 2, loc="left")
    bottom = ax
    if strip is not None:
        strip.set_yticks([])
        strip.set_ylim(-1, 1)
        strip.set_ylabel("failed", fontsize=TEXT - 1, rotation=0, ha="right", va="center")
        for side in ("top", "right", "left"):
            strip.spines[side].set_visible(False)
        strip.tick_params(labelsize=TEXT)
        strip.grid(True, axis="x", color="#dddddd", linewidth=0.6)
        bottom = strip
    bottom.set_xlabel("run, in launch order", fontsize=TEXT)
    fig.legend(loc="outside lower center", ncols=4, fontsize=TEXT - 0.5, frameon=False, scatterpoints=1)
    return fig


def _progress_title(facts: Facts) -> str:
    st = facts.standing
    n = len(facts.session_runs)
    if facts.improved:
        return f"{facts.metric}: {_fmt(st.baseline)} → {_fmt(st.best)} over {n} run(s)"
    return f"{facts.metric}: baseline {_fmt(st.baseline)}, {n} run(s)"


def _range(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.05 or 0.5
        return lo - pad, hi + pad
    return lo, hi


def _best_so_far(facts: Facts) -> tuple[list[float], list[float]]:
    """The step line: a kept experiment's score enters at the index of its last run (a confirmation, if any)."""
    st = facts.standing
    sign = facts.goal.sign
    last_run: dict[int, int] = {}
    for r in facts.runs:
        last_run[r.target_id] = r.index
    entries = []
    for exp_id, index in last_run.items():
        row = st.row(exp_id)
        if row is None or row["metric"] is None or row["status"] not in WINNERS:
            continue
        entries.append((index, row["metric"]))
    xs: list[float] = []
    ys: list[float] = []
    best: float | None = None
    for index, value in sorted(entries):
        if best is None or sign * (value - best) > 0:
            best = value
            xs.append(float(index))
            ys.append(best)
    if xs:
        xs.append(len(facts.runs) + 0.5)
        ys.append(ys[-1])
    return xs, ys


def learning_curves(facts: Facts) -> bytes | None:
    """The best run, its parent and the baseline on one axis: the metric's curve where the runs printed it more
    than once, the training loss beside it where they logged one. None when no run logged a curve."""
    panels = [(kind, [c for c in facts.curves if len(_points(c, kind)) >= 2]) for kind in ("metric", "loss")]
    panels = [(kind, cs) for kind, cs in panels if cs]
    if not panels:
        return None
    fig = _figure(4.6 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (kind, curves) in zip(axes, panels, strict=True):
        _style(ax)
        for c in curves:
            color, dash, width, marker = CURVE_STYLE[c.role]
            pts = _points(c, kind)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, linestyle=dash, linewidth=width,
                    marker=marker if len(pts) <= SPARSE_CURVE else None, markersize=5, label=_curve_label(c))
        ax.set_xlabel("step", fontsize=TEXT)
        ax.set_ylabel(facts.metric if kind == "metric" else "training loss", fontsize=TEXT)
        ax.set_title(f"{facts.metric} during training" if kind == "metric" else "training loss",
                     fontsize=TEXT + 1, loc="left")
        ax.legend(fontsize=TEXT - 1, frameon=False)
    return _png(fig)


def _points(c: Curve, kind: str) -> list[tuple[float, float]]:
    pts = c.metric if kind == "metric" else c.loss
    return [p for p in pts if math.isfinite(p[1])]


def _curve_label(c: Curve) -> str:
    names = {"best": "best", "parent": "its parent", "baseline": "baseline"}
    name = "its parent, the baseline" if c.role == "parent" and c.exp.kind == Kind.BASELINE else names[c.role]
    return f"{name} #{c.exp.id} (seed {c.exp.seed})"


def seeds(facts: Facts) -> bytes:
    """Each experiment that ran on several seeds: every seed's metric as its distance from the experiment's mean
    (the score the engine judged it by), over the ± noise-floor band: how far apart seeds land, next to how much a
    change had to gain. Seeds keep one marker and colour across experiments, so a seed that always lands low shows."""
    groups: list[SeedGroup] = facts.seeds
    st = facts.standing
    fig = _figure(max(5.0, 1.6 + 1.0 * len(groups)), 3.8)
    ax = fig.add_subplot()
    _style(ax)
    if st.noise_floor:
        ax.axhspan(-st.noise_floor, st.noise_floor, color="#cccccc", alpha=0.45, linewidth=0,
                   label=f"± noise floor ({fmt_noise(st.noise_floor)})")
    ax.axhline(0.0, color=BLACK, linewidth=0.9)
    all_seeds = sorted({seed for g in groups for seed, _ in g.values})
    labelled: set[int] = set()
    for i, g in enumerate(groups):
        mean = g.mean if g.mean is not None else sum(v for _, v in g.values) / len(g.values)
        for k, (seed, v) in enumerate(g.values):
            x = i + (k - (len(g.values) - 1) / 2) * 0.14
            n = all_seeds.index(seed)
            ax.scatter([x], [v - mean], marker=SEED_MARKERS[n % len(SEED_MARKERS)],
                       color=SEED_COLORS[n % len(SEED_COLORS)], edgecolors=BLACK, linewidths=0.6, s=55, zorder=4,
                       label=None if seed in labelled else f"seed {seed}")
            labelled.add(seed)
    ax.set_xticks(range(len(groups)), [_short(g) for g in groups], fontsize=TEXT - 1)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel(f"{facts.metric} − its mean", fontsize=TEXT)
    ax.set_title("seed spread of the experiments run on several seeds", fontsize=TEXT + 1, loc="left")
    fig.legend(loc="outside lower center", ncols=min(6, len(all_seeds) + 1), fontsize=TEXT - 1, frameon=False)
    return _png(fig)


def _short(g: SeedGroup) -> str:
    title = g.exp.title if len(g.exp.title) <= 18 else g.exp.title[:17] + "…"
    return f"#{g.exp.id} {g.outcome.value}\n{title}"
