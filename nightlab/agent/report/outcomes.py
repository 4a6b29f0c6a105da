"""What became of a run or an experiment, as the report draws and names it.

One vocabulary for the plots, the tables and the tree: each outcome has a label, a marker shape and a colour from
the Okabe-Ito palette, so kept / discarded / failed / no effect / stopped early differ in shape *and* colour and stay
apart for colour-blind readers and in a black-and-white print.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from nightlab.agent.states import Kind, RunResult, Status
from nightlab.agent.store import Experiment

BASELINE_KIND = Kind.BASELINE
RERUN_KIND = Kind.RERUN
# verdicts the report names before the state machine records them (issues: a run identical to its parent, a run
# stopped while losing): drawn with their own marker as soon as a store holds them
NO_EFFECT_STATUSES = ("no_effect", "no effect")
STOPPED_EARLY_STATUSES = ("stopped_early", "stopped early")


class Outcome(StrEnum):
    BASELINE = "baseline"
    KEPT = "kept"
    UNCONFIRMED = "kept?"
    DISCARDED = "discarded"
    NO_EFFECT = "no effect"
    STOPPED_EARLY = "stopped early"
    FAILED = "failed"
    REFUSED = "refused"
    WAITING = "waiting"


@dataclass(frozen=True)
class Look:
    """How an outcome is drawn: matplotlib marker, face and edge colours, size; `meaning` goes in the legend."""

    marker: str
    color: str
    filled: bool
    size: float
    meaning: str


# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency
BLACK, ORANGE, SKY, GREEN, YELLOW, BLUE, VERMILLION, PURPLE, GREY = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#8C8C8C")

LOOKS: dict[Outcome, Look] = {
    Outcome.BASELINE: Look("*", BLACK, True, 130, "baseline (and its seed runs)"),
    Outcome.KEPT: Look("o", BLUE, True, 60, "kept: beat the best beyond the noise"),
    Outcome.UNCONFIRMED: Look("o", BLUE, False, 60, "kept? on one seed, not yet confirmed"),
    Outcome.DISCARDED: Look("s", ORANGE, True, 40, "discarded: within noise or worse"),
    Outcome.NO_EFFECT: Look("D", PURPLE, False, 42, "no effect: same run as its parent"),
    Outcome.STOPPED_EARLY: Look("v", SKY, True, 50, "stopped early: losing to its parent"),
    Outcome.FAILED: Look("X", VERMILLION, True, 70, "failed: no metric (crash, timeout, lost)"),
    Outcome.REFUSED: Look("_", GREY, True, 40, "refused before running"),
    Outcome.WAITING: Look("o", GREY, False, 40, "awaiting its verdict"),
}


def unconfirmed(e: Experiment) -> bool:
    """A best kept on one seed (its own status; stores written before it existed are migrated to it)."""
    return e.status == Status.UNCONFIRMED


def experiment_outcome(e: Experiment) -> Outcome:
    """The verdict on an experiment (its own row: a seed re-run is judged through `run_outcome`)."""
    if e.kind == BASELINE_KIND:
        return Outcome.BASELINE if e.run_result in (None, RunResult.SUCCEEDED) else Outcome.FAILED
    if e.status in STOPPED_EARLY_STATUSES or e.run_result in STOPPED_EARLY_STATUSES:
        return Outcome.STOPPED_EARLY
    if e.status in NO_EFFECT_STATUSES or e.run_result in NO_EFFECT_STATUSES:
        return Outcome.NO_EFFECT
    if e.status == Status.REJECTED:
        return Outcome.REFUSED
    if e.run_result not in (None, RunResult.SUCCEEDED):
        return Outcome.FAILED
    if unconfirmed(e):
        return Outcome.UNCONFIRMED
    if e.status in (Status.KEPT, Status.PROMOTED):
        return Outcome.KEPT
    if e.status == Status.DISCARDED:
        return Outcome.DISCARDED
    return Outcome.WAITING


def run_outcome(run: Experiment, target: Experiment | None) -> Outcome:
    """How one training run is drawn: a failed run is a failure whatever its experiment became; a successful seed
    re-run carries the verdict of the experiment it re-ran (a confirmation of a discarded change is discarded)."""
    own = experiment_outcome(run)
    if run.kind != RERUN_KIND or target is None or own in (Outcome.FAILED, Outcome.STOPPED_EARLY):
        return own
    return experiment_outcome(target)
