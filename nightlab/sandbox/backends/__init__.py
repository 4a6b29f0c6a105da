"""Where jobs run: the local machine, a SLURM cluster or a Ray cluster — one runner contract everywhere.

Whatever the backend, a job is nightlab's runner wrapper (`python -m nightlab.sandbox.runner RUN_DIR`) running on
some node with the sandbox layers that node offers; it reads `spec.json` from the run dir and writes `status.json`
there when the job ends, then starts `nightlab wake` when no engine holds the project lock. So the run dir (the
project folder) must be on a file system the nodes share. A backend only adds what the scheduler knows and the run
dir cannot say: whether the job is still queued, running, or gone, and why it ended when the wrapper could not write
its status (a node that went down, a pre-emption, a cancel before it started, the scheduler's own time limit).

`Backend.submit` hands a prepared run dir to the scheduler under a name derived from the run (so a submission made
just before a crash is found again by `find`, never submitted twice); `query` asks the scheduler about many jobs in
one call; `cancel` removes a queued job or, for a running one, is the last resort after the stop file (the wrapper
polls for `stop.reason` in the run dir and stops its job cleanly, wherever it runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from nightlab.errors import NightlabError


class BackendKind(StrEnum):
    LOCAL = "local"
    SLURM = "slurm"
    RAY = "ray"


class SchedState(StrEnum):
    """Where a job stands according to its scheduler."""

    QUEUED = "queued"  # accepted, waiting for resources (or held)
    RUNNING = "running"
    ENDED = "ended"  # the scheduler is done with it (see `Ending` for how)
    UNKNOWN = "unknown"  # the scheduler has no record of it (never submitted, or forgotten long ago)


class Ending(StrEnum):
    """How a job ended in the scheduler's own words, mapped onto what nightlab records."""

    COMPLETED = "completed"  # the wrapper ran to its end (status.json says how the job did)
    FAILED = "failed"  # the wrapper itself failed (or the scheduler could not start it)
    CANCELLED = "cancelled"  # cancelled (by nightlab or by someone with scheduler rights)
    TIMED_OUT = "timed_out"  # the scheduler's time limit
    NODE_FAILURE = "node_failure"  # the node went down under it: safe to run again
    PREEMPTED = "preempted"  # pre-empted by a higher-priority job: safe to run again


RETRYABLE = {Ending.NODE_FAILURE, Ending.PREEMPTED}


@dataclass
class SchedInfo:
    """One job as its scheduler sees it. Times are epoch seconds (None where the scheduler has none yet)."""

    state: SchedState
    native: str = ""  # the scheduler's own state word: PENDING, RUNNING, NODE_FAIL, SUCCEEDED, STOPPED...
    reason: str = ""  # why it waits or how it ended (Priority, Resources, NodeDown; Ray's message)
    node: str = ""
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    ending: Ending | None = None

    @property
    def queued_s(self) -> float | None:
        if self.submitted_at is None:
            return None
        end = self.started_at if self.started_at is not None else self.ended_at
        return None if end is None else max(0.0, end - self.submitted_at)


@dataclass
class BackendSettings:
    """The `[backend]` section of a project's config, as the sandbox needs it."""

    kind: BackendKind = BackendKind.LOCAL
    # SLURM
    partition: str = ""
    account: str = ""
    time_limit: str = ""  # sbatch --time (e.g. "2:00:00"); "" = the run's timeout plus a margin
    cpus_per_job: int = 1
    memory: str = ""  # sbatch --mem (e.g. "8G"); "" = the partition's default
    gpus_per_job: int = 0
    sbatch_args: list[str] = field(default_factory=list)
    # Ray
    address: str = ""  # the Ray dashboard (Jobs API), e.g. http://head:8265; "" = $RAY_ADDRESS
    resources: dict[str, float] = field(default_factory=dict)
    runtime_env: dict[str, object] = field(default_factory=dict)
    # both: at most this many jobs submitted at once (0 = the search's parallel setting, else 4)
    max_jobs: int = 0
    python: str = ""  # the interpreter on the nodes that has nightlab installed ("" = this one's path)


class BackendError(NightlabError):
    """The scheduler refused or could not be reached; the message names the command and what it said.
    `transient`: it may well accept the same request in a moment (overloaded, unreachable for now)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


# what schedulers say when they are busy or unreachable rather than refusing the request itself
TRANSIENT_WORDS = ("try again", "timed out", "timeout", "unable to contact", "connection refused", "connection reset",
                   "temporarily", "status code 5", "cannot reach", "not responding", "socket")


def is_transient(text: str) -> bool:
    low = text.lower()
    return any(w in low for w in TRANSIENT_WORDS)


class Backend(Protocol):
    kind: BackendKind

    def submit(self, run_dir: str, name: str) -> str:
        """Hand the prepared run dir to the scheduler; the scheduler's job id."""
        ...

    def find(self, name: str) -> str | None:
        """The id of a job submitted under `name`, if the scheduler knows one (a submit a crash interrupted)."""
        ...

    def query(self, ids: list[str]) -> dict[str, SchedInfo]:
        """What the scheduler knows of these jobs (an id it does not know maps to UNKNOWN)."""
        ...

    def cancel(self, job_id: str) -> None:
        """Remove the job from the scheduler (queued or running)."""
        ...

    def where(self, job_id: str) -> str:
        """A short label for the status views: `slurm 1234`, `ray nightlab-...`."""
        ...


def make_backend(settings: BackendSettings) -> Backend:
    if settings.kind == BackendKind.SLURM:
        from nightlab.sandbox.backends.slurm import SlurmBackend

        return SlurmBackend(settings)
    if settings.kind == BackendKind.RAY:
        from nightlab.sandbox.backends.ray import RayBackend

        return RayBackend(settings)
    raise ValueError(f"no scheduler backend for {settings.kind!r}: local jobs use the runner directly")


def wrapper_argv(python: str, run_dir: str) -> list[str]:
    """The command a scheduler runs on the node: nightlab's job wrapper, in the foreground, for this run dir."""
    return [python, "-m", "nightlab.sandbox.runner", run_dir]


__all__ = [
    "RETRYABLE",
    "Backend",
    "BackendError",
    "BackendKind",
    "BackendSettings",
    "Ending",
    "SchedInfo",
    "SchedState",
    "is_transient",
    "make_backend",
    "wrapper_argv",
]
