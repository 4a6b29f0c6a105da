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
    assert worse.call is Call.DISCARD and worse.note == "1.1000 vs best 1.0000: no improvement"
    near = judge(ev(0.99), Goal.MINIMIZE, 0.0, confirmed=False, confirming=CAN_CONFIRM)
    assert near.call is Call.DISCARD and near.note == "0.9900 vs best 1.0000: within noise (0.0200)"
    # the same numbers under `maximize`: 1.1 is the better one
    assert judge(ev(1.1), Goal.MAXIMIZE, 0.0, confirmed=False, confirming=CAN_CONFIRM).call is Call.CONFIRM


def test_a_first_run_is_judged_at_its_seed_against_half_the_noise_floor() -> None:
    # mean gain 0.015 is within the floor 0.02, but at the common seed 7 it gains 0.015 > floor / 2
    e = ev(0.985, floor=0.02, seed=7, mine_by_seed={7: 0.985}, best_by_seed={6: 1.0, 7: 1.0})
    v = judge(e, Goal.MINIMIZE, 0.0, confirmed=False, confirming=CAN_CONFIRM)
    assert (v.call, v.note) == (Call.CONFIRM, "beats #3 (0.9850 vs 1.0000)")
    # at its seed it gains only 0.005 (< 0.01): within noise, said at that seed
    e = ev(0.985, floor=0.02, seed=7, mine_by_seed={7: 0.995}, best_by_seed={7: 1.0})
    v = judge(e, Goal.MINIMIZE, 0.0, confirmed=False, confirming=CAN_CONFIRM)
    assert v.call is Call.DISCARD and v.note == "0.9850 vs best 1.0000 at seed 7: within noise (0.0100)"
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
    assert fixed.note == "0.9000 vs 1.0000 (+0.1000 beyond noise 0.0200); not re-run to confirm: deterministic"
    off = judge(e, Goal.MINIMIZE, 0.0, confirmed=False, confirming=Confirming(False, True, already=False, room=True))
    assert (off.call, off.note) == (Call.KEEP, "0.9000 vs 1.0000 (+0.1000 beyond noise 0.0200)")


def test_a_confirmed_run_is_kept_on_its_mean_or_on_consistent_per_seed_gains() -> None:
    # the mean beats the best by more than the floor
    v = judge(ev(0.95, floor=0.02), Goal.MINIMIZE, 0.0, confirmed=True)
    assert v.call is Call.KEEP
    # the mean is within the floor, but it beat the best at each of three seeds by about the same amount
    e = ev(0.99, floor=0.02, mine_by_seed={1: 0.99, 2: 0.989, 3: 0.991}, best_by_seed={1: 1.0, 2: 1.0, 3: 1.0})
    v = judge(e, Goal.MINIMIZE, 0.0, confirmed=True)
    assert v.call is Call.KEEP
    assert v.note == "0.9900 vs 1.0000: better at each of 3 seeds (+0.0100, +0.0110, +0.0090), consistently beyond " \
                     "their spread"
    # the same mean with gains that disagree (one seed worse) is discarded, the per-seed gains said
    e = ev(0.99, floor=0.02, mine_by_seed={1: 0.97, 2: 1.01}, best_by_seed={1: 1.0, 2: 1.0})
    v = judge(e, Goal.MINIMIZE, 0.0, confirmed=True)
    assert v.call is Call.DISCARD
    assert v.note == "mean 0.9900 vs best 1.0000: within noise (0.0200); per seed +0.0300, -0.0100"


def test_the_notes_write_each_figure_as_the_experiment_table_does() -> None:
    # a loss, an accuracy, a metric around 1e-4 and one in the thousands: none collapses or loses its digits
    loss = judge(ev(2.2397, best=2.3001, floor=0.01), Goal.MINIMIZE, 0.0, confirmed=True)
    assert loss.note == "2.2397 vs 2.3001 (+0.0604 beyond noise 0.0100)"
    acc = judge(ev(0.6, best=0.61455), Goal.MAXIMIZE, 0.0, confirmed=True)
    assert acc.note == "0.6000 vs best 0.6146: no improvement"
    tiny = judge(ev(0.0001234, best=0.0001251, floor=0.0000004), Goal.MINIMIZE, 0.0, confirmed=True)
    assert tiny.note == "0.0001234 vs 0.0001251 (+1.7e-06 beyond noise 4.0e-07)"
    big = judge(ev(1234.5, best=1301.25, floor=2.5), Goal.MINIMIZE, 0.0, confirmed=True)
    assert big.note == "1234.5 vs 1301.2 (+66.7500 beyond noise 2.5000)"


def test_the_notes_on_noise_and_on_not_confirming() -> None:
    assert "deterministic" in noise_note(True, False, "seed flag")
    assert noise_note(True, True, "seed flag").endswith("; seed flag)")
    assert "draws its own randomness" in noise_note(False, False, "x")
    assert noise_note(None, True, "the --seed flag") == " (the --seed flag)"
    assert no_confirm_reason(None, "x") == "the baseline's noise run has not finished"
    assert no_confirm_reason(False, "via --seed") == "via --seed"
    assert no_confirm_reason(True, "x").startswith("the runs are deterministic")
