"""How far a job got: the stage it reached, from the hook's progress file or, failing that, from its log.

Stages are ordered (`STAGES`): started < imports_done < data_ready < first_step < training < evaluating <
metric_reported < clean_exit. The reward gives partial credit by stage, so a job that crashed in its first optimiser
step is told apart from one that never got past its imports.

Three sources, merged by `best_stage`:
- `read_progress`: the markers the sitecustomize hook appended to `progress.jsonl` (Python jobs that import torch
  get all the torch-observed stages; any other Python process gets started / clean_exit);
- `stage_from_log`: a coarse fallback for commands the hook cannot see (shell scripts, other languages, Python with
  -I/-E): any output, a loss/step/epoch line, the metric found by the metric parser, exit status 0;
- static markers (`[nightlab-stage] <stage>` lines printed by code instrumented by `nightlab.agent.instrument_static`),
  which `stage_from_log` also reads.
The exit status from the wrapper is authoritative for `clean_exit`: `best_stage(..., exit_ok=False)` never says
clean_exit, whatever a helper process wrote.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightlab.sandbox import safeio
from nightlab.sandbox.instrument import STAGES
from nightlab.sandbox.spec import PROGRESS_FILE

__all__ = [
    "MARKER_PREFIX",
    "NO_STAGE",
    "STAGES",
    "Progress",
    "best_stage",
    "read_progress",
    "stage_from_log",
    "stage_index",
    "stages_from_markers",
]

NO_STAGE = ""  # not even started: no output, no marker
PROGRESS_LIMIT = 32 << 20  # bytes of progress.jsonl read at most
MARKER_PREFIX = "[nightlab-stage]"

_MARKER_RE = re.compile(r"^\[nightlab-stage\][ \t]+([a-z_]+)[ \t]*$", re.MULTILINE)
# a number after loss / step / epoch / iter: "loss 1", "train_loss=0.3", "Epoch [1/10]", "step: 20", "iter 5"
_TRAINING_RE = re.compile(r"(?i)(?:loss|epoch|step|iter)\w*[ \t]*[:=#\[(]?[ \t]*[-+]?(?:\d|\.\d|nan\b|inf\b)")
# lines the wrapper itself writes into the log; they are no sign that the job started
_WRAPPER_LINE_RE = re.compile(r"^(?:\[nightlab: .*\]|nightlab: could not start .*)$")
_STEP_MARK = b'"stage": "step"'  # how the hook writes step reports (cheap to find without parsing)


def stage_index(stage: str | None) -> int:
    """Position of a stage in STAGES; -1 for no stage (or an unknown name)."""
    try:
        return STAGES.index(stage) if stage else -1
    except ValueError:
        return -1


def _highest(stages: list[str]) -> str:
    best = NO_STAGE
    for s in stages:
        if stage_index(s) > stage_index(best):
            best = s
    return best


@dataclass
class Progress:
    """What the hook recorded for one job. `stage` is the highest stage reached; `seen` lists the stages in the order
    they were first recorded; `events` keeps the parsed lines in file order (every stage and error event, the last
    step reports); `last_step`, `steps_per_s` and `loss` are the latest values any process reported."""

    stage: str = NO_STAGE
    seen: list[str] = field(default_factory=list)
    last_step: int | None = None
    steps_per_s: float | None = None
    loss: float | None = None
    error: str | None = None  # type name of an uncaught exception, if a process died of one
    events: list[dict[str, Any]] = field(default_factory=list)
    first_step_t: float | None = None  # when the first optimizer step was taken (time.time(), any process)
    last_step_t: float | None = None  # when the last optimizer step was taken, as far as the reports tell

    @property
    def training_s(self) -> float | None:
        """Seconds from the first optimizer step to the last one: the part of a run that grows with its training
        length (the last step's time from the report at exit, which says how long before it the step was; from
        the last periodic report where the job died without one); None when no step was seen."""
        if self.first_step_t is None or self.last_step_t is None:
            return None
        return max(0.0, self.last_step_t - self.first_step_t)


def read_progress(run_dir: Path | str, max_step_events: int = 1000) -> Progress:
    """Parse `progress.jsonl` in `run_dir` (for a job: its run dir's `out/` folder, where the job may write). A
    missing file gives an empty Progress; a torn last line (the job is still writing, or was killed mid-write) and
    any other unparsable line are skipped.

    Step reports arrive once per second per process, so a long multi-process job writes hundreds of thousands:
    only the last `max_step_events` of them are parsed and kept (stage events are few and all kept), which keeps
    the agent's memory and the read time small whatever the job's length."""
    path = Path(run_dir) / PROGRESS_FILE
    try:  # the job's own file: never through a link, never unbounded (stage events come first, steps last)
        raw = safeio.read_head_tail(path, PROGRESS_LIMIT)
    except OSError:
        return Progress()
    progress = Progress()
    lines = raw.split(b"\n")
    step_lines = [i for i, line in enumerate(lines) if _STEP_MARK in line]
    skip = set(step_lines[: max(len(step_lines) - max_step_events, 0)])
    for i, line in enumerate(lines):
        if i in skip or not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or not isinstance(event.get("stage"), str):
            continue
        progress.events.append(event)
        stage = event["stage"]
        if stage in STAGES and stage not in progress.seen:
            progress.seen.append(stage)
        if stage == "error" and progress.error is None:
            progress.error = str(event.get("exc") or "Exception")
        step = event.get("step")
        if isinstance(step, int) and not isinstance(step, bool):
            progress.last_step = step if progress.last_step is None else max(progress.last_step, step)
        rate = event.get("steps_per_s")
        if isinstance(rate, (int, float)) and not isinstance(rate, bool):
            progress.steps_per_s = float(rate)
        loss = event.get("loss")
        if isinstance(loss, (int, float)) and not isinstance(loss, bool):
            progress.loss = float(loss)
        t = event.get("t")
        if stage in ("first_step", "training", "step") and isinstance(t, (int, float)) and not isinstance(t, bool):
            idle = event.get("idle_s")  # a report written at exit: its last step was this long before it
            if isinstance(idle, (int, float)) and not isinstance(idle, bool) and idle >= 0:
                t -= idle
            if stage == "first_step":
                progress.first_step_t = float(t) if progress.first_step_t is None else min(progress.first_step_t, t)
            progress.last_step_t = float(t) if progress.last_step_t is None else max(progress.last_step_t, t)
    progress.stage = _highest(progress.seen)
    return progress


def stages_from_markers(log_text: str) -> list[str]:
    """The stages announced by `[nightlab-stage] <stage>` lines, in order of first appearance, unknown names ignored."""
    out: list[str] = []
    for match in _MARKER_RE.finditer(log_text):
        stage = match.group(1)
        if stage in STAGES and stage not in out:
            out.append(stage)
    return out


def stage_from_log(log_text: str, metric_found: bool, exit_ok: bool) -> str:
    """The stage a job reached, judged from its log alone (the fallback for anything the hook cannot see).

    Any output of the job → started; a loss / step / epoch / iter line with a number → training; the metric found by
    the metric parser → metric_reported; exit status 0 → clean_exit. Static markers count too. Returns NO_STAGE ("")
    when there is no sign of life at all.
    """
    found: list[str] = []
    if any(line.strip() and not _WRAPPER_LINE_RE.match(line.strip()) for line in log_text.splitlines()):
        found.append("started")
    if _TRAINING_RE.search(log_text):
        found.append("training")
    found.extend(stages_from_markers(log_text))
    if metric_found:
        found.append("metric_reported")
    if exit_ok:
        found.append("clean_exit")
    return _highest(found)


def best_stage(progress: Progress, log_stage: str, exit_ok: bool | None = None) -> str:
    """The furthest stage any source vouches for. With `exit_ok=False` (the wrapper saw a failure) clean_exit is not
    believed from any source: a sibling helper process may have exited cleanly while the training died."""
    candidates = [*progress.seen, log_stage]
    if exit_ok is False:
        candidates = [s for s in candidates if s != "clean_exit"]
    return _highest(candidates)
