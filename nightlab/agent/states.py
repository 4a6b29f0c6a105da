"""The named states of the store: what an experiment, a run, a job, a session and an approval can be.

`StrEnum`s whose values are exactly the strings written to SQLite, so a member is stored as its value, compares
equal to it (`Status.KEPT == "kept"`), and a database written before the enums existed reads back unchanged. The
store converts values back into members when it loads a row (see `store.py`); everything above it speaks members.

Lifecycle of an experiment (DESIGN.md, Data):

    proposed → approved → queued → running → succeeded | failed | timed_out | cancelled | lost | stopped_early
                                              └─ succeeded → kept | unconfirmed | discarded | no_effect;
                                                             kept → promoted
    proposed → rejected (by a human, or refused: invalid edit, a repeat)

`stopped_early` is a run stopped while it ran because its learning curve was clearly worse than its parent's at the
same step (early_stop.py): a regression measured early, not a failure; nothing more happens to it.

`unconfirmed` is a best kept on one seed because the budget ran out before its confirming re-run; the next
`nightlab run` re-runs it first, which turns it into `kept` or `discarded`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """Where an experiment is in its lifecycle (the `experiments.status` column)."""

    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # ran and produced a metric; its verdict (a confirmation) is still to come
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"
    KEPT = "kept"
    UNCONFIRMED = "unconfirmed"  # kept on one seed: the budget ran out before its confirming re-run
    DISCARDED = "discarded"
    PROMOTED = "promoted"
    STOPPED_EARLY = "stopped_early"  # stopped while running: clearly worse than its parent at the same step
    # the run's metric, curves and log were identical to its parent's: the change never reached the program (a
    # default overridden elsewhere); an outcome of its own, never evidence for or against the change
    NO_EFFECT = "no_effect"


# on their way to a run: the engine still owes them a step
ACTIVE = frozenset({Status.PROPOSED, Status.APPROVED, Status.QUEUED, Status.RUNNING})
# nothing more will happen to them
SETTLED = frozenset({Status.KEPT, Status.DISCARDED, Status.PROMOTED, Status.REJECTED, Status.FAILED,
                     Status.TIMED_OUT, Status.CANCELLED, Status.STOPPED_EARLY, Status.NO_EFFECT})
# results that stand as a best: candidates for the best experiment, the parent of new proposals
WINNERS = frozenset({Status.KEPT, Status.UNCONFIRMED, Status.PROMOTED})
# the label tables (console and TUI) show for an unconfirmed best
UNCONFIRMED_LABEL = "kept?"


class RunResult(StrEnum):
    """How a finished run ended (the `experiments.run_result` column); `Status` says what was made of it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"
    STOPPED_EARLY = "stopped_early"  # stopped by early stopping (early_stop.py): its curve lost to its parent's


class Kind(StrEnum):
    """What an experiment is: the engine's own runs (baseline, seed re-runs) or a policy's hypothesis."""

    BASELINE = "baseline"
    RERUN = "rerun"  # the same commit with another seed: noise floor or confirmation
    HYPERPARAMETER = "hyperparameter"
    TRANSFORM = "transform"
    FIX = "fix"
    LLM = "llm"


class Pricing(StrEnum):
    """How a proposal's run time was predicted (the deadline and the compute budget judge each run by it)."""

    KNOBS = "knobs"  # a knob move: the cost model's factor for the knob's kind, from the code and measured runs
    CODE = "code"  # a change of the code: the model's cost read from the code after the edit over before it
    PARENT = "parent"  # the edit's cost could not be read from the code: costed at its parent's measured time


# kinds that are not a hypothesis of the policy's
ENGINE_KINDS = frozenset({Kind.BASELINE, Kind.RERUN})


class FailureClass(StrEnum):
    """Why a run failed, as the policies read it (`nightlab.agent.diagnose` classifies a log into one)."""

    SYNTAX_ERROR = "syntax_error"
    IMPORT_ERROR = "import_error"
    SHAPE_MISMATCH = "shape_mismatch"
    DTYPE_ERROR = "dtype_error"
    DEVICE_ERROR = "device_error"
    OOM = "oom"
    WORKER_ERROR = "worker_error"  # DataLoader workers without shared memory (/dev/shm): not an out-of-memory
    NAN_LOSS = "nan_loss"
    NAN_METRIC = "nan_metric"
    NO_METRIC = "no_metric"
    TIMEOUT = "timeout"
    KILLED = "killed"
    FILE_NOT_FOUND = "file_not_found"
    ARGUMENT_ERROR = "argument_error"
    KEY_ERROR = "key_error"
    ATTRIBUTE_ERROR = "attribute_error"
    NAME_ERROR = "name_error"
    VALUE_ERROR = "value_error"
    ASSERTION_ERROR = "assertion_error"
    RUNTIME_ERROR = "runtime_error"
    PROTECTED_MODIFIED = "protected_modified"
    LOG_FLOOD = "log_flood"
    DISK_FULL = "disk_full"
    NETWORK = "network"  # the job could not reach a host: jobs run without network unless sandbox.network is on
    COMPILE_ERROR = "compile_error"  # torch.compile could not build the model here (no C++ compiler, no triton)
    INTERRUPTED = "interrupted"
    LOST = "lost"
    FORK_STORM = "fork_storm"  # the job hit the wrapper's process cap
    LAUNCH_ERROR = "launch_error"  # the job could not be started at all (the sandbox refused, a bad worktree)
    UNKNOWN = "unknown"


class JobState(StrEnum):
    """A training job's process as the store knows it (the `jobs.state` column)."""

    STARTING = "starting"
    RUNNING = "running"
    ENDED = "ended"
    LOST = "lost"


OPEN_JOB_STATES = frozenset({JobState.STARTING, JobState.RUNNING})


class SessionState(StrEnum):
    """What the engine of a session is doing (the `sessions.state` column)."""

    ACTIVE = "active"
    WAITING = "waiting"  # awake, but only a human's decision can move it on
    HIBERNATING = "hibernating"  # no engine runs; a job's end or an approval wakes one
    DONE = "done"


class EngineState(StrEnum):
    """Whether an engine works on the project now, as a front-end shows it: awake (one holds the project's lock), or
    else what its last session says (hibernating, done), stopped (it ended without finishing), or no session yet."""

    AWAKE = "awake"
    HIBERNATING = "hibernating"
    DONE = "done"
    STOPPED = "stopped"
    NO_SESSION = "no session"


class Mode(StrEnum):
    """Step asks before every run; autonomous runs within the budget and asks only at strategic points."""

    STEP = "step"
    AUTONOMOUS = "autonomous"


class ApprovalKind(StrEnum):
    HYPOTHESIS = "hypothesis"  # run this proposal?
    LAUNCH = "launch"
    PROMOTE = "promote"  # commit this result onto the user's branch?
    BUDGET = "budget"  # extend the model-cost budget?
    COMPUTE = "compute"  # go over the session's compute budget ([autonomy] ask_over_budget)?


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


QUIT = "quit"  # the answer that stops asking (and the engine's loop), beside the approval states


@dataclass(frozen=True)
class Decision:
    """A human's answer to an approval, as a front-end's approver gives it to the engine: approved, rejected (with
    feedback) or QUIT (stop asking, stop the loop)."""

    state: str  # an ApprovalState, or QUIT
    feedback: str | None = None


class StepKind(StrEnum):
    """What a decision step decided (the `steps.kind` column of the experience store): a new hypothesis to test, or
    a fix for a failed run."""

    PROPOSE = "propose"
    FIX = "fix"


class EventKind(StrEnum):
    """What an event of the session's log says happened (the `events.kind` column, stored as its value: a database
    written before this enum reads the same). Front-ends route on it: which events notify, which read as errors."""

    ABANDON = "abandon"
    APPROVAL = "approval"
    APPROVED = "approved"
    ARTIFACTS = "artifacts"
    BACKEND_ERROR = "backend_error"
    BACKEND_WAIT = "backend_wait"
    BASELINE = "baseline"
    BUDGET = "budget"
    CHECKPOINT = "checkpoint"
    CONFIRM = "confirm"
    DEADLINE = "deadline"
    DISCARDED = "discarded"
    DONE = "done"
    DUPLICATE = "duplicate"
    EDITED = "edited"
    EXHAUSTED = "exhausted"
    EXPERIENCE_ERROR = "experience_error"
    FAILED = "failed"
    FINISHED = "finished"
    HIBERNATE = "hibernate"
    INTERRUPTED = "interrupted"
    KEPT = "kept"
    LOST = "lost"
    MLFLOW_ERROR = "mlflow_error"
    NO_EFFECT = "no_effect"
    NOISE = "noise"
    NOTE = "note"
    NOTIFY_ERROR = "notify_error"
    OUT_OF_TIME = "out_of_time"
    PLAN = "plan"
    POLICY_ERROR = "policy_error"
    PROMOTED = "promoted"
    PROPOSED = "proposed"
    REJECTED = "rejected"
    REPORT = "report"
    REPORT_ERROR = "report_error"
    SEEDING = "seeding"
    SESSION = "session"
    SKIPPED = "skipped"
    SLOT_WAIT = "slot_wait"
    STARTED = "started"
    STOP = "stop"
    STOPPED_EARLY = "stopped_early"
    SUPERSEDED = "superseded"


__all__ = [
    "ACTIVE", "ENGINE_KINDS", "OPEN_JOB_STATES", "QUIT", "SETTLED", "UNCONFIRMED_LABEL", "WINNERS", "ApprovalKind",
    "ApprovalState", "Decision", "EngineState", "EventKind", "FailureClass", "JobState", "Kind", "Mode", "RunResult",
    "SessionState", "Status", "StepKind",
]
