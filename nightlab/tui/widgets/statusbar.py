"""The status line: mode first and unmistakable (colour and word), then budget, slots and whether anyone is awake;
and, right below it where NVIDIA GPUs are, the GPU line: each GPU's utilisation, memory and the experiment holding
it. Without GPUs the GPU line is not displayed at all."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from nightlab.agent.goal import Goal
from nightlab.agent.states import EngineState, Mode, SessionState
from nightlab.agent.views import GpuStat, Snapshot, format_gpu, holder_label, holders


class StatusBar(Widget):
    COMPONENT_CLASSES = {"statusbar--step", "statusbar--autonomous", "statusbar--dim", "statusbar--alert",
                         "statusbar--ok"}
    DEFAULT_CSS = """
    StatusBar { height: 1; width: 1fr; }
    """

    mode: reactive[str] = reactive(Mode.STEP)
    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True)
    engine_here: reactive[bool] = reactive(False)

    def render(self) -> Text:
        s = self.snapshot
        step = self.mode != Mode.AUTONOMOUS
        mode_style = self.get_component_rich_style("statusbar--step" if step else "statusbar--autonomous", partial=True)
        dim = self.get_component_rich_style("statusbar--dim", partial=True)
        alert = self.get_component_rich_style("statusbar--alert", partial=True)
        ok = self.get_component_rich_style("statusbar--ok", partial=True)
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" STEP " if step else " AUTONOMOUS ", mode_style)
        if self.size.width >= 140:
            t.append(" asks before each run" if step else " runs without asking", dim)
        if s is None:
            t.append(" · loading…", dim)
            return t
        sep = (" · ", dim)
        if s.approvals:
            n = len(s.approvals)
            t.append(f" ⚑ {n} waiting for you", alert)
        # what matters most first, so a narrow terminal cuts the least useful end: the engine, the budget
        t.append(*sep)
        engine = s.engine
        label = "not started" if engine == EngineState.NO_SESSION else str(engine)
        if engine == EngineState.AWAKE and s.session is not None and s.session.state == SessionState.WAITING:
            label = "waiting for you"
        t.append(f"engine {label}", ok if engine == EngineState.AWAKE else dim)
        t.append(*sep)
        if s.session is not None:
            t.append(f"runs {s.runs_started}/{s.budget}")
            t.append(f" ({s.budget_left} left)", alert if s.budget_left == 0 else dim)
        else:
            t.append("no session yet", dim)
        t.append(*sep)
        t.append(f"slots {len(s.open_jobs)}/{s.slots_total} busy")
        t.append(*sep)
        t.append(f"{s.metric} {'↑' if s.goal is Goal.MAXIMIZE else '↓'}")
        t.append(*sep)
        t.append(s.project, "bold")
        if s.waiting_for_slot:
            t.append(" · waiting for a slot another project holds", alert)
        if s.session is not None and s.session.cost:
            t.append(*sep)
            t.append(f"LLM ${s.session.cost:.2f}")
        return t


class GpuLine(Widget):
    """`gpu0 87% 40/140G #7 · gpu1 3% 1/140G other-proj`: a GPU held by one of our running jobs names its experiment
    (the jobs' slots, in the snapshot), one leased by another project names that project. Hidden while `gpus` is
    empty."""

    COMPONENT_CLASSES = {"statusbar--dim", "statusbar--ok"}
    DEFAULT_CSS = """
    GpuLine { height: 1; width: 1fr; display: none; }
    """

    gpus: reactive[list[GpuStat]] = reactive(list)
    elsewhere: reactive[dict[int, str]] = reactive(dict)  # GPU index -> another project holding it
    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True)

    def watch_gpus(self, gpus: list[GpuStat]) -> None:
        self.display = bool(gpus)

    def render(self) -> Text:
        dim = self.get_component_rich_style("statusbar--dim", partial=True)
        held = self.get_component_rich_style("statusbar--ok", partial=True)
        s = self.snapshot
        owner = holders((j.slot, j.experiment_id) for j in s.open_jobs) if s is not None else {}
        t = Text(" ", no_wrap=True, overflow="ellipsis")
        for i, g in enumerate(self.gpus):
            if i:
                t.append(" · ", dim)
            who = holder_label(g.index, owner, self.elsewhere)
            t.append(format_gpu(g, who, compact=True), held if g.index in owner else dim)
        return t
