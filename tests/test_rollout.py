"""Rollouts: a completion for a recorded step, applied and run for real in a scratch copy of the project (sandbox,
job wrapper, reward module), the way GRPO scores the completions it samples. The user's repository, branches and
stores are never written."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nightlab.agent import experience
from nightlab.agent.config import load_config
from nightlab.agent.rollout import INVALID, RolloutReward, Rollouts, Task, completion_args, duration_weighted

from helpers import git, snapshot_repo


def _untouchable(root: Path) -> dict[str, str]:
    """The user's repository (every ref, nightlab's branches included), its store and the user's store."""
    out = snapshot_repo(root)
    out["all refs"] = git(root, "for-each-ref", "--format=%(refname) %(objectname)")
    out["worktrees"] = git(root, "worktree", "list", "--porcelain")
    for p in [*sorted((root / ".nightlab").rglob("*")), *sorted(experience.data_dir().rglob("*"))]:
        if p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _records(root: Path, tmp: Path) -> list[dict[str, Any]]:
    run = [sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "4"]
    assert subprocess.run(run, cwd=root, capture_output=True).returncode == 0
    out = tmp / "rewards.jsonl"
    p = subprocess.run([sys.executable, "-m", "nightlab", "export", "trajectories", "--format", "rewards", "-o",
                        str(out)], cwd=root, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def _task(rec: dict[str, Any], completion: Any) -> Task:
    return Task(parent_commit=rec["parent_commit"], completion=completion, baseline=rec["baseline"],
                best_before=rec["best_before"], noise_floor=rec["noise_floor"], seed=rec["seed"])


def _call(args: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "propose_experiment", "arguments": json.dumps(args)}}]}]


def _edit(search: str, replace: str) -> dict[str, Any]:
    return {"title": f"{search} -> {replace}", "rationale": "r", "expected_effect": "e",
            "edits": [{"path": "train.py", "search": search, "replace": replace}]}


def test_completions_run_for_real_and_score_like_the_engine(tiny_project: Path, tmp_path: Path) -> None:
    recs = _records(tiny_project, tmp_path)
    rec = next(r for r in recs if r["stage"] == "clean_exit")
    assert {"baseline", "best_before", "noise_floor", "seed", "parent_commit"} <= set(rec)
    assert set(rec["reward_parts"]) == set(experience.PARTS)
    before = _untouchable(tiny_project)
    cfg = load_config(tiny_project)
    work = tmp_path / "rollouts"
    with Rollouts(tiny_project, cfg, work) as ro:
        assert ro.layer != "none", "rollouts run in the sandbox the project asks for"
        text_call = ('I will raise the learning rate.\n<tool_call>{"name": "propose_experiment", "arguments": '
                     + json.dumps(_edit("LR = 0.05", "LR = 0.3")) + "}</tool_call>")
        got = ro.run_many([
            _task(rec, rec["completion"]),  # the recorded move, replayed
            _task(rec, text_call),  # another move, written as a chat template prints a tool call
            _task(rec, "The learning rate looks too small; I would try a larger one."),  # no call at all
            _task(rec, _call(_edit("LR = 0.123456", "LR = 0.3"))),  # a search text the file does not hold
            _task(rec, _call(_edit("LR = 0.05", "LR = 0.05\nraise RuntimeError('boom')"))),  # runs, then crashes
        ])
        replay, other, prose, missing, crash = got
        exp = ro.store.experiments()
        assert len(exp) == 3, "the two completions that cannot be applied never ran"
    # the recorded move reproduces the recorded outcome: same stage, and the reward up to its duration part
    assert replay.stage == rec["stage"] and replay.failure_class is None
    assert replay.reward == pytest.approx(rec["reward"], abs=0.01)
    assert replay.parts["reference"] == (rec["best_before"] if rec["best_before"] is not None else rec["baseline"])
    # LR 0.3 is the tiny script's optimum: a real run that beats its references
    assert other.stage == "clean_exit" and other.metric is not None and other.metric > rec["baseline"]
    assert other.parts["improvement"] > 0 and replay.metric is not None and other.metric > replay.metric
    for bad in (prose, missing):
        assert bad.failure_class == INVALID and bad.stage == "not_started" and bad.seconds == 0.0 and bad.error
        assert bad.experiment_id is None
    assert "search" in missing.error or "not found" in missing.error, missing.error
    assert crash.failure_class == "runtime_error" and crash.stage and crash.metric is None
    assert prose.reward < crash.reward < replay.reward, "partial credit: a crash that ran beats no edit at all"
    # nothing of the user's was written; the scratch copy is gone
    assert _untouchable(tiny_project) == before
    assert not work.exists()


def test_the_grpo_reward_function_groups_by_prompt_and_weights_by_duration(tiny_project: Path,
                                                                            tmp_path: Path) -> None:
    rec = next(r for r in _records(tiny_project, tmp_path) if r["stage"] == "clean_exit")
    cfg = load_config(tiny_project)
    with Rollouts(tiny_project, cfg, tmp_path / "ro") as ro:
        fn = RolloutReward(ro)
        a, b = [{"role": "user", "content": "step A"}], [{"role": "user", "content": "step B"}]
        comps = [_call(_edit("LR = 0.05", "LR = 0.3")), "no call", _call(_edit("LR = 0.05", "LR = 0.1")),
                 _call(_edit("EPOCHS = 3", "EPOCHS = 6"))]
        cols = {k: [rec[k]] * 4 for k in ("parent_commit", "baseline", "best_before", "noise_floor", "seed")}
        adv = fn(prompts=[a, a, b, b], completions=comps, completion_ids=[[1]] * 4, **cols)
        assert fn.__name__ == "nightlab_rollout" and len(fn.last) == 4
        assert adv[0] + adv[1] == pytest.approx(0.0, abs=1e-9) and adv[2] + adv[3] == pytest.approx(0.0, abs=1e-9)
        assert adv[0] > 0 > adv[1], "the move that ran and improved beats the one that did not parse"
        plain = RolloutReward(ro, duration_aware=False)(prompts=[a], completions=["no call"], **{
            k: v[:1] for k, v in cols.items()})
        assert plain == [fn.last[1].reward]
        with pytest.raises(Exception, match="parent_commit"):
            fn(prompts=[a], completions=["x"], parent_commit=[None])


def test_duration_weighted_advantages() -> None:
    # equal durations: plain group-centred rewards
    assert duration_weighted([1.0, 0.0], [5.0, 5.0]) == pytest.approx([0.5, -0.5])
    # a slow move that pays more, three fast fair ones, a fast poor one: counted once each, the fast fair moves are
    # above the group's mean and get pushed up; counted for their durations they are below the baseline of what the
    # group's slot time earned, and only the slow move is pushed up. The advantages sum to 0 (GRPO keeps them).
    rewards, seconds = [0.7, 0.5, 0.5, 0.5, 0.1], [10.0, 1.0, 1.0, 1.0, 1.0]
    plain = duration_weighted(rewards, [1.0] * 5)
    timed = duration_weighted(rewards, seconds)
    assert plain[1] > 0 and timed[1] < 0 < timed[0]
    assert sum(timed) == pytest.approx(0.0, abs=1e-12)
    assert duration_weighted([], []) == []


def test_completion_shapes() -> None:
    args = _edit("a", "b")
    assert completion_args(_call(args)) == ("propose_experiment", args)
    assert completion_args(json.dumps({"name": "fix_failure", "arguments": json.dumps(args)})) == ("fix_failure",
                                                                                                  args)
    assert completion_args([{"role": "assistant", "content": "```json\n" + json.dumps(args) + "\n```"}])[1] == args
    fix = {"diagnosis": "d", "edits": []}
    assert completion_args(json.dumps(fix))[0] == "fix_failure"
    for bad in ("", "no json here", [{"role": "assistant", "content": "{\"name\": \"x\", \"arguments\": 3}"}]):
        with pytest.raises(ValueError):
            completion_args(bad)
