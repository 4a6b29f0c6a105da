"""Rollouts: a model's completion run for real, as online RL of a language model needs (examples/finetune/).

A stored reward scores only the completion that was recorded; GRPO and RLOO sample new completions and need each
scored. `Rollouts` does what the engine would do with a proposal, on a scratch copy of the project: it parses the
completion's tool call (`propose_experiment` / `fix_failure`, or the same JSON in text), applies its edits to the
files at the step's parent commit with the engine's own validation (editable, protected, exact search/replace),
commits them in a fresh worktree, runs the training command through the detached job wrapper, in the sandbox the
project's config asks for, on a slot leased machine-wide like every engine's job, reads the run as the engine does
(metric, stage reached, failure class) and scores it with the reward module against the references the step's own
reward was judged against (baseline, best before, noise floor: the `rewards` export carries them).

The scratch copy is a `git clone --shared` of the project in a folder of its own: the user's repository, its
branches and its `.nightlab/` store are only read (the clone borrows their objects), never written. The copy holds
its own store and, while jobs run, its own project lock, so no job's wrapper ever starts an engine there. A
completion that cannot be applied never runs: it scores as the model's own fault (stage not started, failure class
`syntax_error`, the penalty of an edit that does not parse) without costing a run.

`duration_weighted` turns a group's rewards into duration-aware advantages, the weighting of agent/learn.py:

    A_i = (r_i − b) · d_i / mean(d),   b = Σ d_i r_i / Σ d_i,   d_i = max(seconds_i, 1 s)

so each completion's gradient counts for the time its run held a slot (asynchronous collection does not favour fast,
weak moves). The A_i of a group sum to 0, so GRPO's own group-mean subtraction leaves them as they are; with
`scale_rewards = "none"` TRL uses them unchanged. `RolloutReward` is the reward function to hand to TRL's
GRPOTrainer: it groups completions by their prompt, runs each group's completions in parallel on the free slots,
and returns those advantages (or the plain rewards with `duration_aware=False`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightlab.agent import reward
from nightlab.agent.analysis import read_run
from nightlab.agent.config import ProjectConfig
from nightlab.agent.edits import apply_edits
from nightlab.agent.launcher import Launcher, python_for
from nightlab.agent.lock import ProjectLock
from nightlab.agent.paths import StatePaths
from nightlab.agent.proposal import Edit
from nightlab.agent.states import FailureClass, Kind, Mode, Status
from nightlab.agent.store import Experiment, Store
from nightlab.agent.workspace import Workspace
from nightlab.errors import NightlabError
from nightlab.sandbox import lease, runner, slots

MIN_SECONDS = 1.0  # as in learn.py: a run's duration counts as at least this
INVALID = FailureClass.SYNTAX_ERROR  # a completion whose edits cannot be applied: the model's own fault
GRACE_S = 120.0  # past the training timeout, how long to wait for a job wrapper's status before stopping it


@dataclass(frozen=True)
class Task:
    """One completion to run: the step it answers (its parent commit, seed, and what its reward is judged
    against) and the model's completion (chat messages or text)."""

    parent_commit: str
    completion: Any
    baseline: float | None = None
    best_before: float | None = None
    noise_floor: float = 0.0
    seed: int | None = None


@dataclass
class Rollout:
    reward: float
    parts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    stage: str = "not_started"
    metric: float | None = None
    failure_class: str | None = None
    error: str = ""
    experiment_id: int | None = None  # in the scratch copy's store


def completion_args(completion: Any) -> tuple[str, dict[str, Any]]:
    """(tool name, arguments) of a completion: a list of chat messages or text, holding an OpenAI-style tool call,
    a `{"name", "arguments"}` object (as chat templates print tool calls), or the arguments object itself. Raises
    ValueError (or a subclass) when none of these is there."""
    from nightlab.agent.policy.llm import FIX_TOOL, PROPOSE_TOOL, json_from_text

    text = completion
    if isinstance(completion, list):
        last = completion[-1] if completion else {}
        calls = last.get("tool_calls") if isinstance(last, dict) else None
        if calls:
            fn = calls[0]["function"]
            return str(fn.get("name", "")), _object(fn.get("arguments"))
        text = last.get("content", "") if isinstance(last, dict) else str(last)
    try:
        obj = json_from_text(str(text))
    except Exception as err:  # the LLM policy's own "unusable answer", said as the ValueError it is here
        raise ValueError(str(err)) from None
    if isinstance(obj.get("name"), str) and "arguments" in obj:
        return obj["name"], _object(obj["arguments"])
    return (FIX_TOOL if "diagnosis" in obj and "title" not in obj else PROPOSE_TOOL), obj


def _object(args: Any) -> dict[str, Any]:
    value = json.loads(args, strict=False) if isinstance(args, str) else args
    if not isinstance(value, dict):
        raise ValueError("the tool call's arguments are not an object")
    return dict(value)


class Rollouts:
    """A scratch copy of a project in which completions run as experiments (see the module docstring)."""

    def __init__(self, root: Path, cfg: ProjectConfig, work: Path | None = None, *,
                 unsafe_no_sandbox: bool = False, poll_s: float = 0.1) -> None:
        self.root = Path(root).resolve()
        self.work = Path(work) if work else Path(tempfile.mkdtemp(prefix="nightlab-rollouts-"))
        self.repo = self.work / "repo"
        self.poll_s = poll_s
        # jobs run from the copy, with the project's interpreter and its linked data read where they really are
        links = [str(self.root / p) for p in cfg.links]
        sandbox = cfg.sandbox.model_copy(update={"readable": [*cfg.sandbox.readable, *links]})
        self.cfg = cfg.model_copy(update={"python": python_for(self.root, cfg), "sandbox": sandbox})
        if not (self.repo / ".git").exists():
            self.work.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(self.root), str(self.repo)],
                           check=True, capture_output=True)
            for rel in cfg.links:  # the project's untracked data, where the worktrees' links expect it
                src, dest = self.root / rel, self.repo / rel
                if src.exists() and not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.symlink_to(src)
        self.ws = Workspace(self.repo)
        self.ws.ensure_state_dir()
        self.store = Store(StatePaths.of(self.repo).db)
        self.sid = self.store.create_session(str(self.repo), Mode.AUTONOMOUS, "rollout", 0, None, None).id
        self.launcher = Launcher(self.repo, self.cfg, self.ws, unsafe_no_sandbox=unsafe_no_sandbox)
        self.layer = self.launcher.check_sandbox()  # one clear error before anything runs
        self.pool = lease.MachinePool(slots.discover(cfg.slots.cpus, cfg.slots.threads_per_job, cfg.slots.gpus),
                                      str(self.repo))
        self.gpus = self.pool.gpus_per_job(cfg.slots.gpus_per_job)
        self.lock = ProjectLock(StatePaths.of(self.repo).dir)

    def __enter__(self) -> Rollouts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, remove: bool = True) -> None:
        self.store.close()
        if remove:
            shutil.rmtree(self.work, ignore_errors=True)

    # --------------------------------------------------------------------------------------------- running
    def run(self, task: Task) -> Rollout:
        """Apply, run and score one completion."""
        return self.run_many([task])[0]

    def run_many(self, tasks: Sequence[Task], progress: Callable[[int, int], None] | None = None) -> list[Rollout]:
        """Apply, run and score completions, as many at once as slots are free; results in the order given."""
        results: list[Rollout | None] = [None] * len(tasks)
        ready: list[tuple[int, Experiment]] = []
        for i, task in enumerate(tasks):
            made = self._materialise(task)
            if isinstance(made, Rollout):
                results[i] = made
            else:
                ready.append((i, made))
        if ready:
            self.lock.acquire("rollout")
            try:
                self._run_jobs(ready, tasks, results, progress)
            finally:
                self.lock.release()
        return [r if r is not None else self._invalid("not run") for r in results]

    def _materialise(self, task: Task) -> Experiment | Rollout:
        """The completion's edits committed on its parent in a worktree, as an experiment of the copy's store; or,
        when it cannot be applied, its (invalid) rollout."""
        from nightlab.agent.policy.llm import parse_edits

        try:
            tool, args = completion_args(task.completion)
            edits: list[Edit] = parse_edits(args)
            if not edits:
                raise ValueError("the call holds no edit")
            changes = apply_edits(edits, lambda p: self.ws.read_file(task.parent_commit, p),
                                  list(self.cfg.editable), self.cfg.protected)
            if not changes:
                raise ValueError("the edits change nothing")
        except Exception as err:  # whatever the model wrote that cannot be applied is its own fault, scored so
            return self._invalid(f"{type(err).__name__}: {err}")
        title = " ".join(str(args.get("title") or args.get("diagnosis") or tool).split())[:120] or tool
        e = self.store.add_experiment(session_id=self.sid, parent_id=None, title=title, rationale="",
                                      kind=Kind.LLM, seed=self.cfg.search.seed if task.seed is None else task.seed,
                                      status=Status.PROPOSED, edits=[x.__dict__ for x in edits], knobs={})
        try:
            branch, sha = self.ws.materialise(e.id, self.sid, task.parent_commit, changes, title, self.cfg.links)
        except Exception as err:  # a parent commit the project does not have: the caller's data, said plainly
            raise NightlabError(f"cannot check out {task.parent_commit!r} in {self.root}: {err}") from err
        self.store.update_experiment(e.id, branch=branch, commit_sha=sha)
        return self.store.experiment(e.id)

    def _run_jobs(self, ready: list[tuple[int, Experiment]], tasks: Sequence[Task],
                  results: list[Rollout | None], progress: Callable[[int, int], None] | None) -> None:
        queue = list(ready)
        # task index -> (e, run dir, slot, deadline, the wrapper as launched: never read back from the job's reach)
        running: dict[int, tuple[Experiment, Path, str, float, runner.Wrapper]] = {}
        done = 0
        try:
            while queue or running:
                while queue:
                    slot = self.pool.acquire(self.gpus, run=f"rollout#{queue[0][1].id}")
                    if slot is None:
                        break
                    i, e = queue.pop(0)
                    spec = self.launcher.prepare(e, slot, 1, leases=self.pool.lease_paths(slot.id),
                                                 lease_run=self.pool.run_of(slot.id))
                    self.store.update_experiment(e.id, status=Status.RUNNING, attempts=1)
                    ident = self.launcher.start(spec)
                    running[i] = (e, Path(spec.run_dir), slot.id, time.monotonic() + self.cfg.timeout + GRACE_S,
                                  (int(ident["wrapper_pid"]), float(ident["wrapper_start"])))
                for i, (e, run_dir, slot_id, deadline, wrapper) in list(running.items()):
                    status = runner.read_status(run_dir, wrapper)
                    if status is None and time.monotonic() > deadline:
                        runner.stop(str(run_dir), "rollout gave up waiting", wrapper)
                        raise NightlabError(f"{run_dir}: the job never ended")
                    if status is None:
                        continue
                    del running[i]
                    self.pool.release(slot_id)
                    results[i] = self._score(e, run_dir, status, tasks[i])
                    done += 1
                    if progress is not None:
                        progress(done, len(ready))
                time.sleep(self.poll_s)
        finally:
            for _i, (_e, run_dir, slot_id, _d, wrapper) in running.items():  # an error or Ctrl+C: stop what still runs
                runner.stop(str(run_dir), "rollout stopped", wrapper)
                self.pool.release(slot_id)

    def _score(self, e: Experiment, run_dir: Path, status: runner.JobStatus, task: Task) -> Rollout:
        reading = read_run(self.cfg, self.ws.worktree_path(e.id), run_dir, status)
        self.ws.prune(e.id)
        ch = reading.changes
        seconds = float(ch.get("seconds") or 0.0)
        parts = reward.explain(reward.RewardInput(
            stage=ch.get("stage") or "", metric=reading.metric, baseline=task.baseline,
            best_before=task.best_before, goal=self.cfg.metric.goal, noise_floor=task.noise_floor or 0.0,
            failure_class=ch.get("failure_class"), seconds=seconds, timeout_s=self.cfg.timeout))
        self.store.update_experiment(e.id, status=reading.result, reward=round(float(parts["reward"]), 4), **ch)
        return Rollout(reward=float(parts["reward"]), parts=parts, seconds=seconds,
                       stage=str(ch.get("stage") or ""), metric=reading.metric, failure_class=ch.get("failure_class"),
                       error="" if reading.ok else str(reading.diagnosis or ""), experiment_id=e.id)

    def _invalid(self, why: str) -> Rollout:
        parts = reward.explain(reward.RewardInput(stage="", metric=None, baseline=None, best_before=None,
                                                  goal=self.cfg.metric.goal, noise_floor=0.0, failure_class=INVALID,
                                                  seconds=0.0, timeout_s=self.cfg.timeout))
        return Rollout(reward=float(parts["reward"]), parts=parts, failure_class=INVALID, error=why)


def duration_weighted(rewards: Sequence[float], seconds: Sequence[float]) -> list[float]:
    """A group's rewards as duration-aware advantages: (r_i − b) · d_i / mean(d), b = Σ d_i r_i / Σ d_i."""
    d = [max(MIN_SECONDS, float(s)) for s in seconds]
    if not d:
        return []
    total = sum(d)
    b = sum(di * r for di, r in zip(d, rewards, strict=True)) / total
    mean = total / len(d)
    return [(r - b) * di / mean for r, di in zip(rewards, d, strict=True)]


class RolloutReward:
    """A reward function for TRL's GRPOTrainer (and RLOO): each completion run by `rollouts` and scored.

    The dataset is nightlab's `rewards` export; TRL hands its columns to the function, and `parent_commit`,
    `seed`, `baseline`, `best_before` and `noise_floor` say which step each prompt is and what its reward is judged
    against. Completions of one prompt form a group; with `duration_aware` (the default) the function returns the
    group's duration-weighted advantages (`duration_weighted`; use GRPOConfig(scale_rewards="none")), otherwise
    the plain rewards. Every rollout of the last call is kept in `last`.
    """

    def __init__(self, rollouts: Rollouts, duration_aware: bool = True,
                 on_rollout: Callable[[Task, Rollout], None] | None = None) -> None:
        self.rollouts = rollouts
        self.duration_aware = duration_aware
        self.on_rollout = on_rollout
        self.last: list[Rollout] = []
        self.__name__ = "nightlab_rollout"  # TRL names a reward function's logged column by it

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
        n = len(completions)

        def col(name: str) -> list[Any]:
            values = columns.get(name)
            return list(values) if values is not None else [None] * n

        parents = col("parent_commit")
        if any(not p for p in parents):
            raise NightlabError("every prompt needs its step's parent_commit: train on `nightlab export "
                                "trajectories --format rewards`")
        tasks = [Task(parent_commit=str(p), completion=c, baseline=b, best_before=bb, noise_floor=float(nf or 0.0),
                      seed=None if s is None else int(s))
                 for p, c, b, bb, nf, s in zip(parents, completions, col("baseline"), col("best_before"),
                                               col("noise_floor"), col("seed"), strict=True)]
        self.last = self.rollouts.run_many(tasks)
        if self.on_rollout is not None:
            for t, r in zip(tasks, self.last, strict=True):
                self.on_rollout(t, r)
        rewards = [r.reward for r in self.last]
        if not self.duration_aware:
            return rewards
        groups: dict[str, list[int]] = {}
        for i, (p, parent) in enumerate(zip(prompts, parents, strict=True)):
            groups.setdefault(json.dumps([p, parent], sort_keys=True, default=str), []).append(i)
        out = [0.0] * n
        for idx in groups.values():
            adv = duration_weighted([rewards[i] for i in idx], [self.last[i].seconds for i in idx])
            for i, a in zip(idx, adv, strict=True):
                out[i] = a
        return out


__all__ = ["Rollout", "RolloutReward", "Rollouts", "Task", "completion_args", "duration_weighted"]
