"""The verdict on a finished run (agent/verdict.py), number by number: no store, no git, no process.

The engine's own tests (test_state_machine.py, test_engine.py) show the verdicts acted on; these pin the decision.
"""

from __future__ import annotations

from nightlab.agent.goal import Goal
from nightlab.agent.verdict import ONE_SEED_NOTE, Call, Confirming, Evidence, judge, no_confirm_reason, noise_note

CAN_CONFIRM = Confirming(wanted=True, seeded=True, already=False, room=True)


def ev(mine: float, best: float | None = 1.0, floor: float = 0.02, seed: int = 1,
       mine_by_seed: dict[int, float] | None = None, best_by_seed: dict[int, float] | None = None) -> Evidence:
    return Evidence(mine=mine, best_id=None if best is None else 3, best=best, floor=floor, seed=seed,
                    mine_by_seed=mine_by_seed or {}, best_by_seed=best_by_seed or {})


def test_the_first_working_version_is_kept() -> None:
    v = judge(ev(5.0, best=None), Goal.MINIMIZE, 0.0, confirmed=False, confirming=CAN_CONFIRM)
    assert (v.call, v.note) == (Call.KEEP, "first working version")


def test_a_worse_run_and_one_within_the_noise_are_discarded_in_the_goals_direction() -> None:
    worse = judge(ev(1.1), Goal.MINIMIZE, 0.0, confirmed=False, confirming=CAN_CONFIRM)
    assert worse.call is Call.DISCARD and worse.note == "1.1 vs best 1: no improvement"
    near = judge(ev(0.99), Goal.MINIMIZE, 0.0, confirmed=False, confirming=CAN_CONFIRM)
    assert near.call is Call.DISCARD and near.note == "0.99 vs best 1: within noise (0.02)"
    # the same numbers under `maximize`: 1.1 is the better one
    assert judge(ev(1.1), Goal.MAXIMIZE, 0.0, confirmed=False, confirming=CAN_CONFIRM).call is Call.CONFIRM


def test_a_first_run_is_judged_at_its_seed_against_half_the_noise_floor() -> None:
    # mean gain 0.015 is within the floor 0.02, but at the common seed 7 it gains 0.015 > floor / 2
    e = ev(0.985, floor=0.02, seed=7, mine_by_seed={7: 0.985}, best_by_seed={6: 1.0, 7: 1.0})
    v = judge(e, Goal.MINIMIZE, 0.0, confirmed=False, confirming=CAN_CONFIRM)
    assert (v.call, v.note) == (Call.CONFIRM, "beats #3 (0.985 vs 1)")
    # at its seed it gains only 0.005 (< 0.01): within noise, said at that seed
    e = ev(0.985, floor=0.02, seed=7, mine_by_seed={7: 0.995}, best_by_seed={7: 1.0})
    v = judge(e, Goal.MINIMIZE, 0.0, confirmed=False, confirming=CAN_CONFIRM)
    assert v.call is Call.DISCARD and v.note == "0.985 vs best 1 at seed 7: within noise (0.01)"
    # min_improvement raises the bar above half the floor
    e = ev(0.985, floor=0.02, seed=7, mine_by_seed={7: 0.985}, best_by_seed={7: 1.0})
    assert judge(e, Goal.MINIMIZE, 0.05, confirmed=False, confirming=CAN_CONFIRM).call is Call.DISCARD


def test_confirming_needs_seeds_budget_and_no_confirmation_in_flight() -> None:
    e = ev(0.9)
    assert judge(e, Goal.MINIMIZE, 0.0, confirmed=False,
                 confirming=Confirming(True, True, already=True, room=True)).call is Call.WAIT
    spent = judge(e, Goal.MINIMIZE, 0.0, confirmed=False, confirming=Confirming(True, True, already=False, room=False))
    assert spent.call is Call.KEEP_UNCONFIRMED and spent.note.endswith(ONE_SEED_NOTE)
    fixed = judge(e, Goal.MINIMIZE, 0.0, confirmed=False,
                  confirming=Confirming(True, seeded=False, already=False, room=True, why_not="deterministic"))
    assert fixed.call is Call.KEEP
    assert fixed.note == "0.9 vs 1 (+0.1 beyond noise 0.02); not re-run to confirm: deterministic"
    off = judge(e, Goal.MINIMIZE, 0.0, confirmed=False, confirming=Confirming(False, True, already=False, room=True))
    assert (off.call, off.note) == (Call.KEEP, "0.9 vs 1 (+0.1 beyond noise 0.02)")


def test_a_confirmed_run_is_kept_on_its_mean_or_on_consistent_per_seed_gains() -> None:
    # the mean beats the best by more than the floor
    v = judge(ev(0.95, floor=0.02), Goal.MINIMIZE, 0.0, confirmed=True)
    assert v.call is Call.KEEP
    # the mean is within the floor, but it beat the best at each of three seeds by about the same amount
    e = ev(0.99, floor=0.02, mine_by_seed={1: 0.99, 2: 0.989, 3: 0.991}, best_by_seed={1: 1.0, 2: 1.0, 3: 1.0})
    v = judge(e, Goal.MINIMIZE, 0.0, confirmed=True)
    assert v.call is Call.KEEP and "better at each of 3 seeds (+0.01, +0.011, +0.009)" in v.note
    # the same mean with gains that disagree (one seed worse) is discarded, the per-seed gains said
    e = ev(0.99, floor=0.02, mine_by_seed={1: 0.97, 2: 1.01}, best_by_seed={1: 1.0, 2: 1.0})
    v = judge(e, Goal.MINIMIZE, 0.0, confirmed=True)
    assert v.call is Call.DISCARD
    assert v.note == "mean 0.99 vs best 1: within noise (0.02); per seed +0.03, -0.01"


def test_the_notes_on_noise_and_on_not_confirming() -> None:
    assert "deterministic" in noise_note(True, False, "seed flag")
    assert noise_note(True, True, "seed flag").endswith("; seed flag)")
    assert "draws its own randomness" in noise_note(False, False, "x")
    assert noise_note(None, True, "the --seed flag") == " (the --seed flag)"
    assert no_confirm_reason(None, "x") == "the baseline's noise run has not finished"
    assert no_confirm_reason(False, "via --seed") == "via --seed"
    assert no_confirm_reason(True, "x").startswith("the runs are deterministic")
