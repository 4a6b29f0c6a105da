"""The verdict on a finished run: kept, confirmed, discarded — decided from plain numbers, with no store and no git.

The engine reads what the judging needs from the ledger (the run's score, the best's, the noise floor, both runs'
scores by seed) and what confirming it would take (is it wanted, can re-runs vary the seed, is there budget for one),
calls `judge`, and acts on the `Verdict` it gets back: the store writes and the events stay the engine's. Keeping the
statistics here, apart from the loop, lets them be tested number by number (tests/test_verdict.py).

A first run is compared seed with seed where the best ran at its seed (agent/paired.py: the seed's own share of the
noise cancels) and earns its confirming re-run by beating the best there by half the noise floor; a confirmed
experiment is kept when its mean beats the best's by more than the noise floor, or when it beat the best at every
common seed consistently (a t-test on the per-seed gains). Judging same-seed gains by the spread across seeds alone
kept a real one-sd gain of seed-coupled code about half the time (bench/confirm.py; independent runs are judged as
before).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from nightlab.agent import paired
from nightlab.agent.goal import Goal
from nightlab.agent.metric_text import fmt_change, fmt_metric, fmt_noise

__all__ = ["ONE_SEED_NOTE", "Call", "Confirming", "Evidence", "Verdict", "judge", "no_confirm_reason", "noise_note"]

# why a best is `unconfirmed` (said in its "kept" event; the status carries it, nothing matches this text)
ONE_SEED_NOTE = "unconfirmed: no run left to re-run it with another seed (the next `nightlab run` does that first)"


class Call(StrEnum):
    """What becomes of a finished run."""
    KEEP = "keep"  # the new best
    KEEP_UNCONFIRMED = "keep_unconfirmed"  # the new best on one seed: no budget left to confirm it
    CONFIRM = "confirm"  # it beats the best: re-run it with another seed before keeping it
    WAIT = "wait"  # it beats the best and its confirmation is already queued or running
    DISCARD = "discard"  # within the noise of the best, or worse


@dataclass(frozen=True)
class Evidence:
    """The numbers a finished run is judged on (read from the ledger)."""
    mine: float  # the run's score (its mean over seeds once re-run)
    best_id: int | None  # the best so far, this run left out; None: nothing works yet
    best: float | None
    floor: float  # the noise floor: the spread of the baseline across seeds
    seed: int | None  # the seed this run ran with
    mine_by_seed: Mapping[int, float] = field(default_factory=dict)
    best_by_seed: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Confirming:
    """What confirming a first run that beats the best would take."""
    wanted: bool  # [search] confirm
    seeded: bool  # re-runs vary the seed (or the program draws its own randomness)
    already: bool  # a confirmation of it is already queued or running
    room: bool  # the budget has a run left for it after the runs already queued
    why_not: str = ""  # why it is not re-run when it cannot be (said with the keep)


@dataclass(frozen=True)
class Verdict:
    call: Call
    note: str  # why, in words: a discard's reason, a keep's comparison, a confirmation's "beats #n (a vs b)"


def judge(ev: Evidence, goal: Goal, min_improvement: float, *, confirmed: bool,
          confirming: Confirming | None = None) -> Verdict:
    """Keep, confirm or discard a finished run against the best. `confirmed`: judging it after its confirming
    re-run (its mean and every common seed); otherwise a first run, and `confirming` says what a re-run would take
    (None: no confirmation wanted)."""
    if ev.best is None or ev.best_id is None:
        return Verdict(Call.KEEP, "first working version")
    mine, best_val, floor = ev.mine, ev.best, ev.floor
    per_seed = paired.gains(ev.mine_by_seed, ev.best_by_seed, goal.sign)
    delta = goal.gain(mine, best_val)
    threshold = floor
    if not confirmed and per_seed:
        delta = per_seed[-1]
        threshold = max(floor / 2, min_improvement)
    agree = confirmed and paired.consistent(per_seed, min_improvement)
    m, b = fmt_metric(mine), fmt_metric(best_val)
    if delta <= threshold and not agree:
        vs = f" at seed {ev.seed}" if not confirmed and per_seed else ""
        note = f"{'mean ' if confirmed else ''}{m} vs best {b}{vs}: within noise " \
               f"({fmt_noise(threshold)})" if delta > 0 else f"{m} vs best {b}: no improvement"
        if confirmed and len(per_seed) >= 2:
            note += f"; per seed {', '.join(fmt_change(g) for g in per_seed)}"
        return Verdict(Call.DISCARD, note)
    c = confirming if not confirmed else None
    if c is not None and c.already:
        return Verdict(Call.WAIT, "its confirmation is already queued or running")
    why = f"{m} vs {b} ({fmt_change(delta)} beyond noise {fmt_noise(threshold)})"
    if agree and delta <= threshold:
        why = f"{m} vs {b}: better at each of {len(per_seed)} seeds " \
              f"({', '.join(fmt_change(g) for g in per_seed)}), consistently beyond their spread"
    if c is not None and c.wanted and not c.seeded:
        why += f"; not re-run to confirm: {c.why_not}"
    if c is not None and c.wanted and c.seeded:
        if c.room:
            return Verdict(Call.CONFIRM, f"beats #{ev.best_id} ({m} vs {b})")
        # the budget is spent: the best so far, but on one seed; the next `nightlab run` confirms it first
        return Verdict(Call.KEEP_UNCONFIRMED, f"{why}; {ONE_SEED_NOTE}")
    return Verdict(Call.KEEP, why)


def noise_note(deterministic: bool | None, varies: bool, how: str) -> str:
    """What the noise floor measured, said after it: `deterministic` is whether a re-run of the baseline gave the
    identical output (None: not known yet), `varies` whether re-runs change the seed, `how` how they do."""
    if deterministic and not varies:
        return " (a plain re-run gave the identical output: the runs are deterministic; improvements are kept " \
               "without a confirming re-run)"
    if deterministic:
        return f" (another seed gave the identical output: the seed changes nothing in the baseline; {how})"
    if deterministic is False and not varies:
        return " (a plain re-run differed: the program draws its own randomness; re-runs measure the noise)"
    return f" ({how})"


def no_confirm_reason(deterministic: bool | None, how: str) -> str:
    """Why a run that beats the best is kept without a confirming re-run."""
    if deterministic:
        return "the runs are deterministic (a re-run of the baseline gave the identical output)"
    if deterministic is None:
        return "the baseline's noise run has not finished"
    return how
