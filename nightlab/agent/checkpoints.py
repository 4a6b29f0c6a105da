"""Strategic checkpoints: the few decisions an autonomous session asks a person about, while it keeps working.

In autonomous mode the engine decides alone, except where `[autonomy]` names a checkpoint:

- `ask_runs_over_min = N`: a run predicted to take longer than N minutes (the policy's own prediction from its cost
  model when it gives one, else the measured duration of the run it changes);
- `ask_structural = true`: a change to the code's structure (a transformation such as a scheduler or an extra layer,
  or a language model's edit that changes more than numbers), not a setting's value;
- `ask_phase_change = true` (the default): with an approved plan (plan.py), a move in a phase the plan does not hold
  (dropped, never foreseen, or its budget spent).

Such a proposal is recorded and committed as usual, then waits in the approval queue with the reason (`nightlab
approve`, the TUI's approvals); the engine goes on with everything that does not wait on it — other proposals,
queued runs, confirmations — within its slots. A rejection's feedback reaches the policy as in step mode.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from nightlab.agent.config import AutonomyConfig
from nightlab.agent.states import ENGINE_KINDS, Kind


class Checkpoint(StrEnum):
    LONG_RUN = "long_run"
    STRUCTURAL = "structural"
    PHASE_CHANGE = "phase_change"


# a number as code writes one (1, 0.5, 3e-4, 1_000): what a setting's edit changes and a structural one does more than
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def numbers_only(edits: Iterable[dict[str, Any]]) -> bool:
    """Whether every edit changes numbers and nothing else (a setting's value, however the policy wrote it)."""
    return all(NUMBER.sub("#", str(x.get("search", ""))) == NUMBER.sub("#", str(x.get("replace", "")))
               for x in edits)


def reason(cfg: AutonomyConfig, kind: Kind, edits: list[dict[str, Any]],
           predicted_s: float | None, unforeseen_phase: str | None = None) -> tuple[Checkpoint, str] | None:
    """The checkpoint this proposal stops at, with the reason shown to the person; None: it goes ahead.
    `unforeseen_phase`: why its phase is a change the approved plan did not foresee (plan.PlanFollower)."""
    if kind in ENGINE_KINDS or kind == Kind.FIX:
        return None  # the engine's own runs, and repairs that make a broken run work again
    if cfg.ask_phase_change and unforeseen_phase:
        return Checkpoint.PHASE_CHANGE, unforeseen_phase
    if cfg.ask_structural and (kind == Kind.TRANSFORM or (kind == Kind.LLM and not numbers_only(edits))):
        return Checkpoint.STRUCTURAL, "a change to the code's structure, not a setting ([autonomy] ask_structural)"
    limit = cfg.ask_runs_over_min
    if limit is not None and predicted_s is not None and predicted_s > limit * 60:
        return Checkpoint.LONG_RUN, (f"predicted to run {predicted_s / 60:.1f} min, over the {limit:g} min "
                                     "checkpoint ([autonomy] ask_runs_over_min)")
    return None
