"""Reading a finished run: from its log, metrics file, progress markers and the wrapper's status to what the store
records — the result, the metric (never NaN or inf), the curves, the failure class, the stage reached, a diagnosis.

A pure reading of files: nothing here writes the store or decides a verdict (that is the engine's), so a run can be
read again after a crash with the same outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nightlab.agent import diagnose, download_caches, outcome, run_metrics, time_budget
from nightlab.agent.config import ProjectConfig
from nightlab.agent.states import FailureClass, RunResult
from nightlab.sandbox import runner, safeio, stages
from nightlab.sandbox.runner import JobStatus
from nightlab.sandbox.spec import LOG_FILE, OUT_DIR, JobEnd

LOG_TAIL_CHARS = 16_000  # what the store keeps of a log for the policy (and the TUI's details): a traceback
# followed by a long key list (a state dict's, ~9 kB for a ResNet) or by shutdown noise still has its exception in it
LOG_READ_BYTES = 8 * 1024 * 1024  # the most of a log that is parsed (head and tail of a larger one)
# written into the run dir by early stopping before it stops the job (early_stop.py): what the curve showed
EVIDENCE_FILE = "early_stop.json"


@dataclass
class RunReading:
    """What a finished run showed. `changes` are the experiment's columns to record."""

    result: RunResult
    metric: float | None
    failure: diagnose.Failure | None
    diagnosis: str
    interrupted: bool  # stopped by Ctrl+C: not a result, the run goes back to the queue
    changes: dict[str, Any]
    note: str | None = None  # something the user should know that is not a failure (unreadable event files, ...)

    @property
    def ok(self) -> bool:
        return self.result == RunResult.SUCCEEDED


def read_run(cfg: ProjectConfig, worktree: Path, run_dir: Path, status: JobStatus) -> RunReading:
    """Read a finished run's folder (and what it wrote where it ran: a metrics file, TensorBoard event files)."""
    log = read_log(run_dir / LOG_FILE, LOG_READ_BYTES)
    download_caches.drop_datasets_mirror(run_dir / OUT_DIR)
    # the job ran in its worktree, or in the instrumented copy of it (instrument = "static")
    cwd = run_dir / "src" if (run_dir / "src").is_dir() else worktree
    got = run_metrics.read_run(cfg.metric, log, cwd, since=status.started_at, run_dir=run_dir)
    reading, loss_curve = got.reading, got.loss_curve
    # stopped by Ctrl+C, or at the session's deadline (time_budget.py): not a result, the run goes back to the queue
    interrupted = status.state == JobEnd.KILLED and status.reason in ("interrupted", time_budget.STOP_REASON)
    # stopped by early stopping: the job's stop reason is the run result's name, its evidence in the run dir
    stopped = status.state == JobEnd.KILLED and status.reason == RunResult.STOPPED_EARLY
    evidence = read_evidence(run_dir) if stopped else None
    ok = status.state == JobEnd.SUCCEEDED and reading.value is not None and not status.protected_changed
    if ok:
        result = RunResult.SUCCEEDED
    elif stopped:
        result = RunResult.STOPPED_EARLY
    elif status.state == JobEnd.TIMED_OUT:
        result = RunResult.TIMED_OUT
    elif status.state == JobEnd.KILLED:
        result = RunResult.CANCELLED
    else:
        result = RunResult.FAILED
    failure = None
    if not ok and not stopped:  # a run stopped early is a regression seen early, not a failure
        failure = diagnose.classify_failure(log, status.exit_code, status.state, status.reason, reading.error)
        if status.protected_changed:
            failure.cls = FailureClass.PROTECTED_MODIFIED
            failure.summary = f"the run changed protected file(s): {', '.join(status.protected_changed)}; " \
                              "the result is invalid"
    pathologies = diagnose.curve_pathologies(loss_curve, reading.curve, goal=cfg.metric.goal,
                                             seconds=status.seconds, timeout_s=cfg.timeout)
    diagnosis = failure.summary if failure else "; ".join(f"{p.kind}: {p.evidence}" for p in pathologies[:2])
    if stopped:
        diagnosis = f"stopped early: {evidence.get('evidence', '') if evidence else 'its curve lost to its parent'}"
    progress = stages.read_progress(run_dir / OUT_DIR)
    stage = stage_reached(run_dir, log, reading.value is not None, status.state == JobEnd.SUCCEEDED, progress)
    changes: dict[str, Any] = {
        "run_result": result, "metric": reading.value if ok else None,
        "curve": [list(p) for p in reading.curve], "loss_curve": [list(p) for p in loss_curve[-500:]],
        "failure_class": failure.cls if failure else None, "diagnosis": diagnosis or None,
        "seconds": status.seconds, "log_tail": log[-LOG_TAIL_CHARS:], "isolation": status.isolation,
        "protected_changed": status.protected_changed, "stage": stage,
        "fixed_s": fixed_seconds(status.seconds, progress) if ok else None,
        "digest": outcome.digest(log) if ok else None,  # to recognise a run identical to its parent's
    }
    return RunReading(result=result, metric=reading.value if ok else None, failure=failure, diagnosis=diagnosis,
                      interrupted=interrupted, changes=changes, note=got.note)


def fixed_seconds(seconds: float | None, progress: stages.Progress) -> float | None:
    """The seconds of a run that do not grow with its training length — before its first optimizer step (start-up:
    imports, data, model) and after its last (a final evaluation, saving) — as the progress hook timed them; None
    when the hook saw no step (not a torch job, instrumentation off, a replayed run). The cost model scales only
    the rest when the training is made longer (policy/cost_model.py): on a 5 s run that is 4 s of start-up, twice
    the epochs is 6 s, not 10."""
    span = progress.training_s
    if not seconds or seconds <= 0 or span is None:
        return None
    return round(max(0.0, seconds - span), 3)


def read_evidence(run_dir: Path) -> dict[str, Any] | None:
    """What early stopping saw when it stopped the run (EVIDENCE_FILE), or None."""
    data = safeio.read_json(Path(run_dir) / EVIDENCE_FILE)  # in the run dir: a regular file only, bounded
    return data if isinstance(data, dict) else None


def read_log(path: Path, limit: int) -> str:
    """A log's text; of a log larger than `limit` bytes, its first quarter-limit and the rest from its end. Never
    through a link, never anything but a regular file (runner.read_tail)."""
    return runner.read_tail(path, limit)


def stage_reached(run_dir: Path, log: str, metric_found: bool, exit_ok: bool,
                  progress: stages.Progress | None = None) -> str:
    """The furthest stage the run reached: the import hook's markers (`progress`, read from the run dir when not
    given), else what its log shows."""
    if progress is None:
        progress = stages.read_progress(run_dir / OUT_DIR)
    return stages.best_stage(progress, stages.stage_from_log(log, metric_found, exit_ok), exit_ok=exit_ok) \
        or "not_started"


__all__ = ["EVIDENCE_FILE", "LOG_TAIL_CHARS", "RunReading", "fixed_seconds", "read_evidence", "read_log", "read_run",
           "stage_reached"]
