"""The machine-wide slot pool: projects on one machine share its CPU and GPU slots through leases.

Each project's engine discovers the machine's slots (`slots.discover`); a slot id names the same share of the machine
in every project (`cpu0` the same cores, `gpu1` the same GPU). Before a job starts, its engine takes a *lease* on
the slot: a small JSON file `<state home>/nightlab/slots/<slot id>.json` naming the project, the run and the processes
that hold it — first the engine, then the job's wrapper, which adopts the lease when it starts and gives it back
when the job ends. A lease whose holders are all dead (pid + start time, so a reused pid does not count) is free:
a crashed engine or a killed wrapper never holds a slot for ever. Every read-modify-write happens under one flock
on `pool.lock`, so two engines never take the same slot.

A project that finds every slot leased by other projects registers as a *waiter* (`waiters/<hash>.json`); whoever
gives a slot back touches the waiters' signal files (an awake engine looks again at once) and starts `nightlab
wake` for those whose engine is not running (a hibernating session resumes).

The state home is `$XDG_STATE_HOME` (default `~/.local/state`), read on every call so tests can point it elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightlab.sandbox import procs
from nightlab.sandbox.slots import Slot, SlotPool

# how a session's wake conditions and the TUI name a wait for another project's job to give a slot back
SLOT_WAIT = "a machine slot frees"


def state_home() -> Path:
    """`$XDG_STATE_HOME/nightlab` (default `~/.local/state/nightlab`): the user's machine-wide nightlab state."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "nightlab"


def pool_dir() -> Path:
    return state_home() / "slots"


@dataclass
class Lease:
    """Who holds a slot: the project, the run (its folder), and the processes whose life keeps the lease."""

    slot: str
    project: str
    run: str = ""
    holders: list[tuple[int, float | None]] = field(default_factory=list)
    since: float = 0.0

    def live(self) -> bool:
        return any(procs.alive(pid, start) for pid, start in self.holders)


def me() -> tuple[int, float | None]:
    return os.getpid(), procs.start_time(os.getpid())


@contextlib.contextmanager
def _locked(d: Path) -> Iterator[None]:
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / "pool.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock


def lease_path(slot_id: str, d: Path | None = None) -> Path:
    return (d or pool_dir()) / f"{slot_id}.json"


def read_lease(path: Path) -> Lease | None:
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        return Lease(slot=str(raw["slot"]), project=str(raw["project"]), run=str(raw.get("run", "")),
                     holders=[(int(p), None if s is None else float(s)) for p, s in raw.get("holders", [])],
                     since=float(raw.get("since", 0.0)))
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _write_lease(path: Path, lease: Lease) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"slot": lease.slot, "project": lease.project, "run": lease.run,
                               "holders": [list(h) for h in lease.holders], "since": lease.since}))
    os.replace(tmp, path)


def leases(d: Path | None = None) -> list[Lease]:
    """Every live lease on this machine (stale ones, whose holders are all dead, are left out)."""
    d = d or pool_dir()
    out = []
    for p in sorted(d.glob("*.json")) if d.is_dir() else []:
        lease = read_lease(p)
        if lease is not None and lease.live():
            out.append(lease)
    return out


# ----------------------------------------------------------------------------------------------- wrapper side
def adopt(paths: list[str], run: str) -> None:
    """The job wrapper takes over the leases its engine took for it (its own pid joins the holders), so the slot
    stays leased after the engine exits or dies, for exactly as long as the job runs."""
    if not paths:
        return
    with _locked(Path(paths[0]).parent):
        for p in paths:
            lease = read_lease(Path(p))
            if lease is None or lease.run != run:
                continue  # given back already (the engine gave up on this run): nothing of ours to adopt
            lease.holders = [me()]
            _write_lease(Path(p), lease)


def give_back(paths: list[str], run: str) -> None:
    """Free the leases that still name this run, then tell waiting projects (the job wrapper calls this at its end,
    the engine when it closes a job)."""
    if not paths:
        return
    d = Path(paths[0]).parent
    with _locked(d):
        for p in paths:
            lease = read_lease(Path(p))
            if lease is not None and lease.run == run:
                Path(p).unlink(missing_ok=True)
    wake_waiters(d)


def wake_waiters(d: Path | None = None, except_project: str = "") -> None:
    """Touch every waiting project's signal file, and start `nightlab wake` where no engine holds its lock."""
    d = d or pool_dir()
    for w in sorted((d / "waiters").glob("*.json")) if (d / "waiters").is_dir() else []:
        try:
            info: dict[str, Any] = json.loads(w.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if info.get("project") == except_project:
            continue
        if not Path(str(info.get("project", ""))).is_dir():
            w.unlink(missing_ok=True)  # the project is gone
            continue
        signal = Path(str(info.get("signal", "")))
        with contextlib.suppress(OSError), open(signal, "a") as f:
            f.write(f"{time.time()} slot\n")
        lock = str(info.get("lock", ""))
        argv = [str(a) for a in info.get("wake_argv", [])]
        if argv and lock and lock_free(lock):
            with contextlib.suppress(OSError):
                subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def lock_free(lock_path: str) -> bool:
    """Whether no engine holds this project lock (an flock: it dies with its holder)."""
    if not lock_path:
        return False
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------- engine side
class MachinePool(SlotPool):
    """A SlotPool whose slots are leased machine-wide: `acquire` also skips slots other projects hold.

    The engine's own bookkeeping (`_busy`) is kept as in SlotPool; the leases add what other processes hold. After
    `acquire` the engine passes `lease_paths(slot)` and `run_of(slot)` to the job (its wrapper adopts the leases),
    and `release` gives back what still names this project's run.
    """

    def __init__(self, slots: list[Slot], project: str, *, wake_argv: list[str] | None = None,
                 signal_path: str = "", lock_path: str = "", directory: Path | None = None) -> None:
        super().__init__(slots)
        self.project = str(project)
        self.dir = directory or pool_dir()
        self.wake_argv = list(wake_argv or [])
        self.signal_path = signal_path
        self.lock_path = lock_path
        self._runs: dict[str, str] = {}  # slot part -> the run it is leased for
        self._pending_run = ""
        self.held_elsewhere: list[Lease] = []  # after an acquire that found nothing: the other projects' leases

    def lease_paths(self, slot_id: str) -> list[str]:
        return [str(lease_path(part, self.dir)) for part in slot_id.split("+")]

    def acquire(self, gpus_needed: int = 0, run: str = "") -> Slot | None:
        with self._lock, _locked(self.dir):
            taken = {}
            for s in self.slots:
                lease = read_lease(lease_path(s, self.dir))
                if lease is not None and lease.live() and s not in self._busy:
                    taken[s] = lease
            self._pending_run = run or f"{self.project}#{time.time()}"
            slot = self._pick(gpus_needed, set(self._busy) | set(taken))
            others = [x for x in taken.values() if x.project != self.project]
            self.held_elsewhere = others if slot is None else []
            if slot is None and others:
                self._register_waiter()
            elif slot is not None:
                self._unregister_waiter()
            return slot

    def _claim(self, parts: list[Slot]) -> None:
        super()._claim(parts)
        now = time.time()
        for s in parts:
            self._runs[s.id] = self._pending_run
            _write_lease(lease_path(s.id, self.dir), Lease(slot=s.id, project=self.project, run=self._pending_run,
                                                          holders=[me()], since=now))

    def run_of(self, slot_id: str) -> str:
        return self._runs.get(slot_id.split("+")[0], "")

    def release(self, slot_id: str) -> None:
        with self._lock:
            parts = slot_id.split("+")
            runs = {p: self._runs.pop(p, "") for p in parts}
            for part in parts:
                self._busy.discard(part)
        with _locked(self.dir):
            for part in parts:
                p = lease_path(part, self.dir)
                lease = read_lease(p)
                if lease is not None and lease.project == self.project and (not runs[part] or lease.run == runs[part]):
                    p.unlink(missing_ok=True)
        wake_waiters(self.dir, except_project=self.project)

    def mark_busy(self, slot_id: str, run: str = "", holder: tuple[int, float | None] | None = None) -> None:
        """A job found still running after a restart: ours again, and its lease renewed if it had lapsed."""
        super().mark_busy(slot_id)
        with self._lock, _locked(self.dir):
            for part in slot_id.split("+"):
                if part not in self.slots:
                    continue
                p = lease_path(part, self.dir)
                lease = read_lease(p)
                self._runs[part] = run or (lease.run if lease is not None and lease.project == self.project else "")
                if lease is None or not lease.live():
                    _write_lease(p, Lease(slot=part, project=self.project, run=self._runs[part],
                                          holders=[holder] if holder else [me()], since=time.time()))

    def _waiter_path(self) -> Path:
        return self.dir / "waiters" / (hashlib.sha1(self.project.encode()).hexdigest()[:16] + ".json")

    def _register_waiter(self) -> None:
        p = self._waiter_path()
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"project": self.project, "signal": self.signal_path, "lock": self.lock_path,
                                   "wake_argv": self.wake_argv, "since": time.time()}))
        os.replace(tmp, p)

    def _unregister_waiter(self) -> None:
        self._waiter_path().unlink(missing_ok=True)

    def stop_waiting(self) -> None:
        """This session ended: it no longer wants to be woken for a slot."""
        with _locked(self.dir):
            self._unregister_waiter()

    def waiting_text(self) -> str:
        """'2 of 2 slots held by other projects: /a (1), /b (1)', or '' when not waiting on other projects."""
        if not self.held_elsewhere:
            return ""
        by: dict[str, int] = {}
        for lease in self.held_elsewhere:
            by[lease.project] = by.get(lease.project, 0) + 1
        who = ", ".join(f"{p} ({n})" for p, n in by.items())
        return f"{len(self.held_elsewhere)} of {self.total} slots held by other projects: {who}"
