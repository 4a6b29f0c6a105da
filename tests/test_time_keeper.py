"""The time keeper (agent/time_keeper.py) against a real store: a queued run that cannot end in time is held back and
its reason said once; at the deadline each job still going is asked to stop once; three unfit proposals in a row make
the cheapest of them the session's next run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nightlab.agent.states import JobState, Kind, Mode, Status
from nightlab.agent.store import Job, Store
from nightlab.agent.time_budget import STOP_REASON, TimeBudget
from nightlab.agent.time_keeper import TimeKeeper


def keeper(tmp_path: Path, deadline: float) -> tuple[TimeKeeper, list[tuple[str, str]], list[tuple[int, str]], int]:
    store = Store(tmp_path / "state.db")
    sid = store.create_session("p", Mode.AUTONOMOUS, "builtin", 5, None, None).id
    said: list[tuple[str, str]] = []
    stopped: list[tuple[int, str]] = []

    def emit(kind: str, message: str, exp_id: int | None = None, **data: Any) -> None:
        said.append((kind, message))

    def stop(job: Job, reason: str) -> bool:
        stopped.append((job.id, reason))
        return True

    clock = TimeBudget(store, deadline, None, None)
    return TimeKeeper(store, clock, lambda: sid, emit, lambda m: None, stop), said, stopped, sid


def test_a_run_that_cannot_end_in_time_is_held_back_and_said_once(tmp_path: Path) -> None:
    tk, said, _, sid = keeper(tmp_path, time.time() + 60)
    long = tk.store.add_experiment(session_id=sid, title="long", kind=Kind.HYPERPARAMETER, status=Status.QUEUED,
                                   predicted_s=3600.0)
    short = tk.store.add_experiment(session_id=sid, title="short", kind=Kind.HYPERPARAMETER, status=Status.QUEUED,
                                    predicted_s=1.0)
    for _ in range(2):
        tk.new_launch_pass()
        assert not tk.fits(long) and tk.fits(short)
    assert [k for k, _ in said] == ["out_of_time"] and "#1 not started" in said[0][1]
    assert [x.id for x in tk.holding_slots(tk.store.active_experiments())] == [short.id]


def test_at_the_deadline_each_job_still_going_is_asked_to_stop_once(tmp_path: Path) -> None:
    tk, said, stopped, sid = keeper(tmp_path, time.time() - 1)
    e = tk.store.add_experiment(session_id=sid, title="late", kind=Kind.HYPERPARAMETER, status=Status.RUNNING)
    job = tk.store.add_job(e.id, str(tmp_path / "run"), str(tmp_path / "log"), "cpu0")
    tk.stop_at_deadline()  # still starting: nothing to stop yet
    tk.store.update_job(job.id, state=JobState.RUNNING)
    tk.stop_at_deadline()
    tk.stop_at_deadline()
    assert stopped == [(job.id, STOP_REASON)] and [k for k, _ in said] == ["deadline"]
    assert tk.no_time_left() and tk.no_time_left()
    assert [k for k, _ in said] == ["deadline", "out_of_time"]


def test_three_unfit_proposals_in_a_row_make_the_cheapest_the_next_run(tmp_path: Path) -> None:
    tk, _, _, sid = keeper(tmp_path, time.time() + 60)
    for secs in (500.0, 300.0, 400.0):
        tk.count_unfit(tk.store.add_experiment(session_id=sid, title=f"{secs}", kind=Kind.HYPERPARAMETER,
                                               predicted_s=secs))
    assert tk.clock.floor == 300.0 and tk.unfit_streak == []
