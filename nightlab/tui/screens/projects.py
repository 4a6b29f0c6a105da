"""`o`: every project this user has run, the same rows as `nightlab projects`; enter opens the highlighted one.

The rows are read in a thread (each project's store is opened read-only for its overview), so a slow disk or a
project on a network file system never blocks the UI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from nightlab.tui import keymap
from nightlab.tui.data import fmt_metric
from nightlab.tui.widgets.listkeys import ListTable


def _engine_text(row: dict[str, Any]) -> Text:
    if row["problem"]:
        return Text(row["problem"][:60], style="yellow")
    engine = str(row["engine"] or "")
    return Text(engine, style="bold green" if engine in ("awake", "waiting") else "")


def _jobs_text(row: dict[str, Any]) -> str:
    bits = []
    running = [j for j in row["running"] if not j.get("queued")]
    queued_there = [j for j in row["running"] if j.get("queued")]
    if running:
        bits.append(f"{len(running)} running ({', '.join(j['where'] for j in running)})")
    if queued_there:
        bits.append(f"{len(queued_there)} in the scheduler's queue")
    if row["queued"]:
        bits.append(f"{row['queued']} queued")
    return "; ".join(bits) or "—"


class ProjectsScreen(ModalScreen[Path | None]):
    """An overview of every project; dismissed with the project to open (None: stay)."""

    BINDINGS = [*keymap.bindings("dialog", only=("cancel",)), *keymap.bindings("app", only=("projects",))]

    class Loaded(Message):
        def __init__(self, rows: list[dict[str, Any]]) -> None:
            super().__init__()
            self.rows = rows

    def __init__(self, current: Path) -> None:
        super().__init__()
        self.current = Path(current)
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help-dialog projects-dialog"):
            yield Static(Text("Projects", style="bold"), classes="dialog-title")
            yield ListTable(id="projects-table", cursor_type="row", zebra_stripes=True)
            yield Static(Text("enter: open the highlighted project · esc: back", style="dim"), id="projects-keys")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label in ("project", "mode", "engine", "best vs baseline", "jobs", "approvals"):
            table.add_column(label)
        table.loading = True
        self._load()

    @work(thread=True, exit_on_error=False, name="projects overview")
    def _load(self) -> None:
        from nightlab.agent.views import projects_overview

        self.post_message(self.Loaded(projects_overview()))

    def on_projects_screen_loaded(self, message: Loaded) -> None:
        table = self.query_one(DataTable)
        table.loading = False
        table.clear()
        self.rows = message.rows
        for row in self.rows:
            here = Path(row["path"]) == self.current
            name = Text(("▸ " if here else "  ") + row["path"], style="bold" if here else "")
            best = "—" if row["best"] is None else f"{fmt_metric(row['best'])} vs {fmt_metric(row['baseline'])}"
            approvals = Text(str(row["approvals"]), style="bold yellow") if row["approvals"] else Text("—")
            table.add_row(name, (row["mode"] or "—").upper(), _engine_text(row), best, _jobs_text(row), approvals,
                          key=row["path"])
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        path = Path(str(event.row_key.value))
        row = next((r for r in self.rows if r["path"] == str(path)), None)
        if row is not None and row["problem"]:
            self.app.notify(f"{path}: {row['problem']}", severity="warning")
            return
        self.dismiss(None if path == self.current else path)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_projects(self) -> None:
        self.dismiss(None)
