"""Braille charts drawn in-widget (no plotting dependency): the metric per run with the best so far, and the
selected run's learning curve."""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from nightlab.agent.goal import Goal
from nightlab.agent.states import WINNERS
from nightlab.agent.views import Snapshot
from nightlab.tui import braille
from nightlab.tui.data import fmt_metric

GUTTER = 8


def _fmt_value(v: float) -> str:
    """A y-axis label: the value as every table and event writes a metric (0.6000, 2.2397) where it fits the gutter,
    else as short as `_fmt`."""
    text = fmt_metric(v)
    return text if len(text) <= GUTTER - 1 else _fmt(v)


def _fmt(v: float) -> str:
    """An x-axis label (a run number, a step) or a value too long for the gutter: four significant digits at most."""
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.1e}"
    return f"{v:.4g}"


class BrailleChart(Widget, can_focus=True):
    """A chart area with a y-axis gutter: subclasses supply the series, this draws them."""

    COMPONENT_CLASSES = {"chart--s0", "chart--s1", "chart--s2", "chart--axis", "chart--empty"}
    DEFAULT_CSS = "BrailleChart { height: 1fr; width: 1fr; }"

    empty_text = "no data yet"
    ALLOW_MAXIMIZE = True

    def series(self) -> list[tuple[Sequence[float], Sequence[float], bool]]:
        """(xs, ys, connect) per series; series i is drawn in style chart--s{i}."""
        return []

    def x_label(self) -> str:
        return ""

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        series = [s for s in self.series() if len(s[0])]
        axis = self.get_component_rich_style("chart--axis", partial=True)
        if not series or width < GUTTER + 4 or height < 3:
            return Text(self.empty_text, self.get_component_rich_style("chart--empty", partial=True))
        xs_all = [x for s in series for x in s[0]]
        ys_all = [y for s in series for y in s[1]]
        x_range = (min(xs_all), max(xs_all)) if max(xs_all) > min(xs_all) else (min(xs_all) - 1, max(xs_all) + 1)
        y_range = braille.value_range(ys_all)
        plot_h = height - 1
        canvas = braille.Canvas(width - GUTTER, plot_h)
        for i, (xs, ys, connect) in enumerate(series):
            braille.plot(canvas, xs, ys, i, x_range=x_range, y_range=y_range, connect=connect)
        styles = [self.get_component_rich_style(f"chart--s{i}", partial=True) for i in range(3)]
        out = Text(no_wrap=True)
        cells = canvas.cells()
        for r, row in enumerate(cells):
            if r == 0:
                label = _fmt_value(y_range[1])
            elif r == len(cells) - 1:
                label = _fmt_value(y_range[0])
            else:
                label = ""
            out.append(f"{label:>{GUTTER - 1}}┤" if label else " " * (GUTTER - 1) + "│", axis)
            for ch, s in row:
                out.append(ch, styles[s % 3] if s >= 0 else Style())
            out.append("\n")
        lo, hi = _fmt(x_range[0]), _fmt(x_range[1])
        span = width - GUTTER
        xl = self.x_label()
        mid = f" {xl} " if xl else ""
        fill = max(0, span - len(lo) - len(hi) - len(mid))
        out.append(" " * (GUTTER - 1) + "└", axis)
        out.append(lo + "─" * (fill // 2) + mid + "─" * (fill - fill // 2) + hi, axis)
        return out


class MetricChart(BrailleChart):
    """Each run's metric as points (in run order) and the best so far as a step line (it changes at a run, it
    does not slope between two).

    The best so far climbs only on results that stand (kept, unconfirmed or promoted), the ones `nightlab status`
    and the engine call best: a discarded run that happened to score higher on one seed is a point, not the line."""

    empty_text = "no finished runs yet"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.snapshot: Snapshot | None = None
        self.selected: int | None = None

    def show(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self._legend()
        self.refresh()

    def mark(self, exp_id: int | None) -> None:
        """Mark the selected run (in the third colour) so the chart says where it stands."""
        if exp_id != self.selected:
            self.selected = exp_id
            self._legend()
            self.refresh()

    def _legend(self) -> None:
        row = self.snapshot.row(self.selected) if self.snapshot is not None else None
        mark = f" · ● #{row.id}" if row is not None and row.metric is not None else ""
        self.border_subtitle = f"━ best so far · ⠂ runs{mark}"

    def x_label(self) -> str:
        return "#"

    def series(self) -> list[tuple[Sequence[float], Sequence[float], bool]]:
        s = self.snapshot
        if s is None:
            return []
        pts = [(float(r.id), r.metric) for r in sorted(s.rows, key=lambda r: r.id) if r.metric is not None]
        if not pts:
            return []
        goal = Goal(s.goal)
        best_x: list[float] = []
        best_y: list[float] = []
        best: float | None = None
        stands = {r.id for r in s.rows if r.status in WINNERS}
        for x, y in pts:
            assert y is not None
            if int(x) in stands and (best is None or goal.better_than(y, best)):
                if best is not None:  # the old best holds up to this run, then the line rises: a step
                    best_x.append(x)
                    best_y.append(best)
                best = y
            if best is not None:
                best_x.append(x)
                best_y.append(best)
        xs = [p[0] for p in pts]
        ys = [float(p[1]) for p in pts if p[1] is not None]
        chosen = [(x, float(y)) for x, y in pts if y is not None and int(x) == self.selected]
        return [(best_x, best_y, True), (xs, ys, False), ([x for x, _ in chosen], [y for _, y in chosen], False)]


class CurveChart(BrailleChart):
    """The selected run's learning curve: its training loss if the log had one, else the metric over steps."""

    empty_text = "no curve for this run"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: list[tuple[float, float]] = []
        self.label = ""

    def show_curve(self, points: list[tuple[float, float]], label: str) -> None:
        self.points = braille.downsample(points, 2000)
        self.label = label
        self.refresh()

    def x_label(self) -> str:
        return "step"

    def series(self) -> list[tuple[Sequence[float], Sequence[float], bool]]:
        if len(self.points) < 2:
            return []
        return [([p[0] for p in self.points], [p[1] for p in self.points], True)]
