"""One engine per project: an flock on `.nightlab/engine.lock` that dies with its holder (kill -9 included)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from nightlab.errors import NightlabError

LOCK_FILE = "engine.lock"


class LockHeld(NightlabError):
    exit_code = 3


class ProjectLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self, what: str = "engine") -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LockHeld(f"another nightlab engine holds this project ({self.holder_text()})") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": time.time(), "what": what}).encode())
        self.fd = fd

    def try_acquire(self, what: str = "engine") -> bool:
        try:
            self.acquire(what)
            return True
        except LockHeld:
            return False

    def holder(self) -> dict[str, object] | None:
        try:
            data: dict[str, object] = json.loads(self.path.read_text() or "{}")
            return data or None
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def holder_text(self) -> str:
        h = self.holder()
        if not h:
            return "unknown process"
        since = time.strftime("%H:%M:%S", time.localtime(float(str(h.get("since", 0)))))
        return f"pid {h.get('pid')}, {h.get('what', 'engine')} since {since}"

    def is_held(self) -> bool:
        if self.fd is not None:
            return True
        if not self.path.exists():
            return False
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except OSError:
            return True
        finally:
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None
