"""What a job is and how it ended: the two files that pass between the agent and the detached job wrapper.

`spec.json` is written by the agent before launch; `status.json` is written by the wrapper, atomically (temp file,
fsync, rename), when the job ends. Both live in the job's run dir `.nightlab/runs/<id>/`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SPEC_FILE = "spec.json"
STATUS_FILE = "status.json"
LOG_FILE = "output.log"
PID_FILE = "pid.json"
PROGRESS_FILE = "progress.jsonl"


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

    def write(self, path: Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> JobStatus | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return cls(**data)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the whole new one, never a torn write, even after a crash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
