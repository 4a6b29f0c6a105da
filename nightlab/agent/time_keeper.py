"""What the engine does with the session's time: the deadline and the compute budget (time_budget.py) turned into
its steps' answers, each said once.

`TimeBudget` (time_budget.py) computes: how long a run will take, whether it can still end in time or within the
compute budget, how much is left. The keeper holds what the engine has done with those answers during a session:
which queued runs cannot end in time (they hold no slot and wait for the next session), what it has already said
about it (a reason is said once, not on every tick), which jobs it stopped at the deadline (each asked once), the
proposals in a row that could not fit (after a few, the cheapest of them is the session's next run), and the compute
approval it asked for with `[autonomy] ask_over_budget`.

It is the engine's: it takes the store, the clock, the session's id, the engine's event and notification sinks and
dispatch's stop as collaborators, and imports nothing above its own floor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nightlab.agent.admission import REFUSALS_THAT_END_PLANNING
from nightlab.agent.states import ApprovalState, EventKind, JobState
from nightlab.agent.store import Experiment, Job, Store
from nightlab.agent.time_budget import STOP_REASON, TimeBudget


class TimeKeeper:
    """The session's deadline and compute budget as the engine keeps them, for the session `sid()` names."""

    def __init__(self, store: Store, clock: TimeBudget, sid: Callable[[], int], emit: Callable[..., Any],
                 notify: Callable[[str], None], stop: Callable[[Job, str], bool]) -> None:
        self.store, self.clock, self.sid = store, clock, sid
        self.emit, self.notify, self.stop = emit, notify, stop
        self.out_of_time = ""  # why no run can start any more (the deadline, the compute budget), once said
        self.stopped_at_deadline: set[int] = set()  # jobs asked to stop at the deadline (asked once)
        self.unfit: set[int] = set()  # queued experiments that cannot end in time (the latest launch pass)
        self.told_unfit: set[int] = set()  # ... whose reason was said
        self.unfit_streak: list[float] = []  # predicted seconds of the proposals in a row that could not fit
        self.skipped = ""  # the candidates the policy last skipped as too long, as said

    # ------------------------------------------------------------------------------------------- launch
    def new_launch_pass(self) -> None:
        """A launch pass begins: which queued runs cannot end in time is judged afresh."""
        self.unfit = set()

    def fits(self, e: Experiment) -> bool:
        """Whether a queued experiment can end before the deadline and within the compute budget, judged by its own
        predicted duration; one that cannot waits for the next session, with the reason said once."""
        why = self.clock.blocks(e, self.sid())
        if not why:
            return True
        self.unfit.add(e.id)
        if e.id not in self.told_unfit:
            self.told_unfit.add(e.id)
            self.out_of_time = why
            self.emit(EventKind.OUT_OF_TIME, f"#{e.id} not started: {why}; it waits for the next session", e.id,
                      reason=why)
        return False

    def holding_slots(self, experiments: Iterable[Experiment]) -> list[Experiment]:
        """The experiments that hold a slot or will: all but the queued ones that cannot end in time (the latest
        launch pass), which wait for the next session."""
        return [x for x in experiments if x.id not in self.unfit]

    # ------------------------------------------------------------------------------------------- plan
    def no_time_left(self) -> bool:
        """True once no run can start before the deadline or within the compute budget: the deadline has passed,
        the budget is spent, or the cheapest candidate the policy found does not fit (said once, with why)."""
        why = self.clock.blocks(None, self.sid())
        if why and not self.out_of_time:
            self.out_of_time = why
            self.emit(EventKind.OUT_OF_TIME, f"no run can start any more: {why}", reason=why)
        return bool(why)

    def say_skipped(self, unfit: Iterable[tuple[str, float]], time_left_s: float | None) -> list[float]:
        """The candidates the policy skipped because they could not end in time (`Policy.unfit`: title, predicted
        run seconds): said in a `skipped` event when they change; their predicted seconds, overhead included."""
        skipped = list(unfit)
        if not skipped:
            return []
        skipped.sort(key=lambda x: x[1])
        shown = "; ".join(f"{title} (about {secs:.0f} s)" for title, secs in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        left = time_left_s or 0.0
        said = f"skipped {len(skipped)} candidate{'s' if len(skipped) > 1 else ''} that cannot end in time " \
               f"(about {left:.0f} s of run time left before the deadline or the compute budget): {shown}{more}"
        if said.split(":", 1)[1] != self.skipped:
            self.skipped = said.split(":", 1)[1]
            self.emit(EventKind.SKIPPED, said, reason=said)
        return [secs + self.clock.overhead() for _, secs in skipped]

    def count_unfit(self, e: Experiment) -> None:
        """A policy that does not weigh the time left (a language model, a script) may go on proposing runs that
        cannot end in time: after three in a row the cheapest of them is the session's next run (`floor`), and the
        session ends once nothing runs."""
        if not self.clock.active:
            return
        if not self.clock.blocks(e, self.sid()):
            self.unfit_streak = []
            return
        self.unfit_streak.append(self.clock.predict(e) or 0.0)
        if len(self.unfit_streak) >= REFUSALS_THAT_END_PLANNING:
            self.clock.floor = min(self.unfit_streak)
            self.unfit_streak = []

    # ------------------------------------------------------------------------------------------- watch, finish
    def stop_at_deadline(self) -> None:
        """The deadline has come: jobs still going (their predicted end was wrong) are stopped wherever they are —
        here through their wrapper; on a scheduler by the stop file its wrapper polls on the node, and with the
        scheduler's cancel while still in its queue. Their ends read as interrupted: they go back to the queue, as
        after Ctrl+C, for the next session. Each is asked once."""
        for job in self.store.open_jobs():
            if job.id in self.stopped_at_deadline or (not job.remote and job.state != JobState.RUNNING):
                continue
            if self.stop(job, STOP_REASON):
                self.stopped_at_deadline.add(job.id)
                self.emit(EventKind.DEADLINE, f"#{job.experiment_id} stopped: the session's deadline has come; "
                                              "re-queued for the next session", job.experiment_id)

    def ask_over_budget(self) -> str | None:
        """With `[autonomy] ask_over_budget`, when the compute budget stops the next run: ask a person once (a
        `compute` approval, said and notified when added) and return why; None when the session is not waiting on
        them (no checkpoint, the deadline stops it anyway, or they said no)."""
        asked = len(self.store.approvals(ApprovalState.PENDING))
        why = self.clock.asking(self.sid())
        if why is not None and len(self.store.approvals(ApprovalState.PENDING)) > asked:
            self.emit(EventKind.CHECKPOINT, f"the compute budget is spent: {why}; waiting for your approval to go on "
                                            "(nightlab approve compute)", reason=why)
            self.notify(f"nightlab: the compute budget is spent ({why}); approve to go on")
        return why


__all__ = ["TimeKeeper"]
