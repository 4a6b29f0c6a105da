"""Messages workers post to the UI. Workers never touch widgets; they post one of these (thread-safe) instead."""

from __future__ import annotations

from typing import Any

from textual.message import Message
from textual.notifications import SeverityLevel
from textual.worker import Worker, WorkerState

from nightlab.agent.views import Snapshot


class SnapshotReady(Message):
    """The store changed: here is everything the screen shows."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class GpuStatsReady(Message):
    """The GPUs' utilisation and memory changed (read from NVML by a worker thread)."""

    def __init__(self, gpus: list[Any], elsewhere: dict[int, str]) -> None:
        super().__init__()
        self.gpus = gpus
        self.elsewhere = elsewhere  # GPU index -> another project holding it (machine-wide leases)


class ProjectOpened(Message):
    """The project's config loaded and the store opened; the poller starts."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg


class NeedsInit(Message):
    """No nightlab.toml: offer `init` before anything else."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class EngineEvent(Message):
    """Something the engine did (it publishes; we subscribe)."""

    def __init__(self, kind: str, text: str, data: dict[str, Any]) -> None:
        super().__init__()
        self.kind = kind
        self.text = text
        self.data = data


class EngineStopped(Message):
    def __init__(self, state: str, note: str = "") -> None:
        super().__init__()
        self.state = state
        self.note = note


class ActionDone(Message):
    """A blocking action finished in a worker; `text` is what to tell the user."""

    def __init__(self, text: str, severity: SeverityLevel = "information") -> None:
        super().__init__()
        self.text = text
        self.severity: SeverityLevel = severity


class InitProgress(Message):
    """The baseline run of `init` printed a line (elapsed time and the line)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class InitDone(Message):
    """`init` wrote the config; the project opens."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ReportsWorkerErrors:
    """Mixin: Worker.StateChanged does not bubble, so every node running workers forwards failures to the app,
    where one handler turns them into an error dialog (harlequin's pattern)."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            app = getattr(self, "app", None)
            report = getattr(app, "report_worker_error", None)
            if report is not None:
                report(event.worker)
