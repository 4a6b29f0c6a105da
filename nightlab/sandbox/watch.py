"""Waking up when something happens: a job's status file appears, or another process signals (an approval).

Subscribe first, then scan: the watcher starts before the caller looks at the state, so an event that lands between
the look and the wait still wakes the wait. Falls back to polling when inotify is unavailable.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from pathlib import Path

from nightlab.sandbox.spec import STATUS_FILE

SIGNAL_FILE = "signal"
# watchdog logs a harmless error when its inotify thread is stopped while an event is in flight
logging.getLogger("watchdog.observers.inotify").setLevel(logging.CRITICAL)
# watchdog 7.1 warns, with a whole page of its internal state, when a folder it watches recursively is seen again
# (a run folder's `out/` made anew); the watch still holds, and the warning would land on the user's console
warnings.filterwarnings("ignore", message=r"Callback with id .* already exists", category=RuntimeWarning,
                        module=r"watchdog\.")


class Waker:
    """Wait until a status.json appears under `runs_dir` or `signal_path` is touched (or a timeout)."""

    def __init__(self, runs_dir: Path, signal_path: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self.signal_path = Path(signal_path)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._event = threading.Event()
        self._observer: object | None = None
        self._start()

    def _start(self) -> None:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            return
        waker = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                path = str(getattr(event, "dest_path", "") or event.src_path)
                name = os.path.basename(path)
                if name == STATUS_FILE or path == str(waker.signal_path) or name == waker.signal_path.name:
                    waker._event.set()

        obs = Observer()
        try:
            obs.schedule(Handler(), str(self.runs_dir), recursive=True)
            obs.schedule(Handler(), str(self.signal_path.parent), recursive=False)
            obs.daemon = True
            obs.start()
        except OSError:
            return
        self._observer = obs

    def wait(self, timeout: float) -> bool:
        """True if woken by an event, False on timeout. Clears the flag."""
        hit = self._event.wait(timeout)
        self._event.clear()
        return hit

    def poke(self) -> None:
        self._event.set()

    def close(self) -> None:
        obs = self._observer
        if obs is not None:
            obs.stop()  # type: ignore[attr-defined]
            obs.join(timeout=2)  # type: ignore[attr-defined]
            self._observer = None


def signal_project(state_dir: Path) -> None:
    """Tell any engine watching this project to look again (after an approval, say)."""
    p = Path(state_dir) / SIGNAL_FILE
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as f:
        f.write(f"{time.time()}\n")
