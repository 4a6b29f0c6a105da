"""Everything about one experiment: hypothesis, rationale, result against baseline and parent, where it stopped."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from nightlab.agent.goal import Goal
from nightlab.agent.states import Kind
from nightlab.agent.views import Snapshot
from nightlab.tui.data import elapsed, fmt_delta, fmt_metric, fmt_progress, fmt_seconds, live_run, patch_stat
from nightlab.tui.widgets.events import DECISION_KINDS


class DetailsPane(VerticalScroll):
    COMPONENT_CLASSES = {"details--label", "details--better", "details--worse", "details--dim", "details--title"}
    DEFAULT_CSS = """
    DetailsPane { height: auto; }
    DetailsPane > Static { width: 1fr; height: auto; }
    """

    ALLOW_MAXIMIZE = True

    def allow_focus(self) -> bool:
        return True  # focusable (with a visible border) even when it does not scroll, so z can zoom it

    def compose(self) -> ComposeResult:
        yield Static(id="details-body")

    def show(self, snapshot: Snapshot | None, exp_id: int | None) -> None:
        self.query_one("#details-body", Static).update(self._body(snapshot, exp_id))

    def _body(self, s: Snapshot | None, exp_id: int | None) -> RenderableType:
        dim = self.get_component_rich_style("details--dim", partial=True)
        if s is None:
            return Text("loading…", dim)
        e = s.experiments.get(exp_id) if exp_id is not None else None
        if e is None:
            return Text("No experiments yet: start the engine and it measures the baseline first.", dim)
        row = s.row(e.id)
        label = self.get_component_rich_style("details--label", partial=True)
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(style=label, no_wrap=True, width=8)
        grid.add_column(ratio=1)
        title = Text(f"#{e.id} ", dim)
        title.append(e.title or "(untitled)", self.get_component_rich_style("details--title", partial=True))
        title.append(f"   {'refused by the engine' if row is not None and row.refused else e.status}", dim)
        if e.rationale:
            grid.add_row("why", Text(e.rationale))
        if e.expected_effect:
            grid.add_row("expects", Text(e.expected_effect))
        result = Text()
        metric = row.metric if row else e.metric
        result.append(f"{s.metric} {fmt_metric(metric)}")
        if row and row.runs > 1:
            result.append(f" (mean of {row.runs} runs)", dim)
        base_delta = row.delta_base if row and e.kind != Kind.BASELINE else None
        deltas = (("vs baseline", base_delta), ("vs parent", row.delta_parent if row else None))
        for name, v in deltas:
            if v is not None:
                better = Goal(s.goal).better_than(v, 0.0)
                name_ = "details--better" if better else "details--worse" if v else "details--dim"
                style = self.get_component_rich_style(name_, partial=True)
                result.append(f"   {name} ", dim)
                result.append(fmt_delta(v), style)
        grid.add_row("result", result)
        runs = s.runs.get(e.id, [])
        live = live_run(s, e.id)
        run = Text()
        run.append(f"stage {e.stage or '—'}")
        run.append(f"   failure {e.failure_class or '—'}")
        if live is not None:
            took = elapsed(live)
            parent = s.row(e.parent_id) if e.parent_id is not None else None
            ref_id, ref_s = (e.id, e.seconds) if live.exp_id != e.id else \
                (e.parent_id, parent.seconds if parent is not None else None)
            run.append(f"   time {fmt_seconds(took) if took is not None else 'starting'} "
                       f"(running{fmt_progress(took, ref_s, ref_id)})")
        else:
            run.append(f"   time {fmt_seconds(e.seconds)}")
        run.append(f"   seed {e.seed}")
        if e.reward is not None:
            run.append(f"   reward {e.reward:+.3f}")
        grid.add_row("run", run)
        if len(runs) > 1:
            seeds = Text()
            for i, r in enumerate(runs):
                if i:
                    seeds.append(" · ", dim)
                who = f"#{r.exp_id} " if r.exp_id != e.id else ""
                state = "running" if r.running else fmt_metric(r.metric)
                seeds.append(f"{who}seed {r.seed} {state}")
            seeds.append("   ([ ] in the log)", dim)
            grid.add_row("runs", seeds)
        if e.isolation:
            grid.add_row("sandbox", Text(" + ".join(e.isolation), dim))
        files, added, removed = patch_stat(e.patch)
        if e.patch:
            names = sorted({ln[len('diff --git a/'):].split(' b/')[0] for ln in e.patch.splitlines()
                            if ln.startswith("diff --git ")})
            plural = "s" if files != 1 else ""
            grid.add_row("diff", Text(f"{', '.join(names)}  +{added} −{removed}  ({files} file{plural})"))
        elif e.kind == Kind.BASELINE:
            grid.add_row("diff", Text("none: the code as committed", dim))
        kept = s.artifacts.get(e.id)
        if kept is not None:
            grid.add_row("files", Text(kept.describe(), "" if kept.on_disk else dim))
        note = e.diagnosis or e.error
        if note:
            grid.add_row("note", Text(note))
        decided = [ev for ev in s.events_of(e.id) if ev.kind in DECISION_KINDS]
        if decided and not (note and note in decided[-1].message):  # "#3 cancelled: <the note>" says it twice
            grid.add_row("decided", Text(decided[-1].message))
        if e.branch:
            grid.add_row("branch", Text(e.branch, dim))
        return Group(title, grid)
