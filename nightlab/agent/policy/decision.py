"""One decision step as a policy made it: the state it saw, the moves it could make, the one it took.

A policy leaves its latest step in `last_decision` (as it leaves its model spending in `last_usage`); the engine
records it in the experience store at the moment of the decision, before anything of its outcome exists, and fills
in the reward, its parts, the stage reached and the duration when the run settles.

For a language model's step `messages` holds exactly what the model was sent for the answer that was accepted (the
corrective turn included, when there was one) and `answer` the arguments of its tool call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nightlab.agent.states import StepKind

PROPOSE = StepKind.PROPOSE
FIX = StepKind.FIX


@dataclass
class Candidate:
    """A move the policy could make at this step. `label` (the move's title) may name the user's knobs: it stays in
    the project's own store; `valid` is False for a move tried and found not to apply, None when not tried."""

    features: dict[str, float]
    label: str = ""
    valid: bool | None = None


@dataclass
class Decision:
    kind: StepKind
    state: dict[str, float]
    candidates: list[Candidate] = field(default_factory=list)
    chosen: int | None = None  # index into candidates of the move taken (None: a model wrote the move itself)
    tool: str = ""  # propose_experiment | fix_failure (a language model's steps)
    messages: list[dict[str, Any]] | None = None
    answer: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["FIX", "PROPOSE", "Candidate", "Decision"]
