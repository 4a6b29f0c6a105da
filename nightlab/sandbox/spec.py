"""What a job is and how it ended: the files that pass between the agent and the detached job wrapper.

The run dir `.nightlab/runs/<id>/` is the wrapper's: `spec.json` (written by the agent before launch), `pid.json`,
`output.log`, `stop.reason` and `status.json` (written by the wrapper, atomically: temp file, fsync, rename, when the
job ends). The job has no write access to it under a confinement layer; what the job may write goes to the run
dir's `out/` folder (`JobSpec.out_dir`: the progress file, artefacts, under Landlock its TMPDIR) and its worktree.
Everything read back from the run dir is read without following links, as a regular file, size-bounded
(`safeio`), and validated: a damaged or forged file reads as absent, never as a crash.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

SPEC_FILE = "spec.json"
STATUS_FILE = "status.json"
LOG_FILE = "output.log"
PID_FILE = "pid.json"
PROGRESS_FILE = "progress.jsonl"  # in OUT_DIR: the job's import hook writes it
STOP_FILE = "stop.reason"
OUT_DIR = "out"  # the one part of the run dir the job may write


@dataclass
class JobSpec:
    """A training job: run `argv` in `cwd` with `env`, log to `run_dir/output.log`, stop after `timeout_s`."""

    job_id: str
    argv: list[str]
    cwd: str
    run_dir: str
    env: dict[str, str]
    timeout_s: float
    grace_s: float = 5.0
    isolation: str = "auto"  # auto | bwrap | landlock | none
    writable: list[str] = field(default_factory=list)  # extra writable paths (the worktree and run dir always are)
    readable: list[str] = field(default_factory=list)  # extra paths visible read-only under bwrap
    hidden: list[str] = field(default_factory=list)  # paths to hide (e.g. the user's home)
    allow_network: bool = False
    memory_mb: int | None = None
    cpu_seconds: int | None = None
    max_log_bytes: int = 64 * 1024 * 1024
    protected: dict[str, str] = field(default_factory=dict)  # path -> sha256 before the run
    wake_argv: list[str] = field(default_factory=list)  # run when the job ends and no engine holds the lock
    lock_path: str = ""
    instrument: bool = True
    leases: list[str] = field(default_factory=list)  # machine-wide slot leases the wrapper adopts and gives back
    lease_run: str = ""  # the token those leases name (a lease re-taken by someone else is not ours to free)
    inherit: list[str] = field(default_factory=list)  # variables the job takes from the wrapper's node (a
    # scheduler's CUDA_VISIBLE_DEVICES, SLURM_JOB_ID), where the node, not the engine's machine, decides

    @property
    def out_dir(self) -> str:
        """Where the job may write besides its worktree (inside the run dir, which it may not write)."""
        return os.path.join(self.run_dir, OUT_DIR)

    def write(self, path: Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> JobSpec:
        return cls(**json.loads(path.read_text()))


@dataclass
class JobStatus:
    """How a job ended. `state` is succeeded (exit 0), failed, timed_out, killed or lost."""

    job_id: str
    state: str
    exit_code: int | None
    signal: int | None
    started_at: float
    ended_at: float
    seconds: float
    pid: int
    pid_start_time: float | None
    isolation: list[str]
    log_truncated: bool = False
    reason: str = ""
    protected_changed: list[str] = field(default_factory=list)
    peak_rss_mb: float | None = None
    wrapper_pid: int = 0  # the wrapper that wrote this status (it exits right after)
    wrapper_start: float = 0.0

    def write(self, path: Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> JobStatus | None:
        """The status in `path`, or None when it is missing, not a regular file, or not a well-formed status."""
        from nightlab.sandbox import safeio

        data = safeio.read_json(path)
        if not isinstance(data, dict):
            return None
        known = {f.name: f for f in fields(cls)}
        if not {"job_id", "state"} <= data.keys() or data["state"] not in STATES:
            return None
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue
            if not _type_ok(name, value):
                return None
            values[name] = value
        try:
            return cls(**values)
        except TypeError:  # a required field missing
            return None


class JobEnd(StrEnum):
    """How a job ended, as its wrapper writes it in status.json (`JobStatus.state`)."""

    SUCCEEDED = "succeeded"  # exit 0
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    KILLED = "killed"  # stopped: by nightlab (Ctrl+C, early stopping, the deadline) or from outside
    LOST = "lost"  # its process disappeared without a status


STATES = tuple(JobEnd)
_NUMBER = (int, float)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "job_id": (str,), "state": (str,), "exit_code": (int, type(None)), "signal": (int, type(None)),
    "started_at": _NUMBER, "ended_at": _NUMBER, "seconds": _NUMBER, "pid": (int,),
    "pid_start_time": (*_NUMBER, type(None)), "isolation": (list,), "log_truncated": (bool,), "reason": (str,),
    "protected_changed": (list,), "peak_rss_mb": (*_NUMBER, type(None)), "wrapper_pid": (int,),
    "wrapper_start": _NUMBER,
}


def _type_ok(name: str, value: Any) -> bool:
    types = _FIELD_TYPES.get(name)
    if types is None:
        return True
    if isinstance(value, bool) and bool not in types:
        return False
    if isinstance(value, list):
        return list in types and all(isinstance(x, str) for x in value)
    return isinstance(value, types)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the whole new one, never a torn write, even after a crash."""
    from nightlab.sandbox import safeio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    safeio.atomic_write_bytes(path, json.dumps(data, indent=1).encode(), mode=0o600, sync_dir=True)
