"""`nightlab learn` and the learned policy: the step-wise, duration-aware policy gradient, the model file, the
policy that orders the builtin's moves by it (and is exactly the builtin without one), its online updates."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_builtin_policy import KNOB_ONLY, MLP_ADAMW, Tree, _changed, _rejected, _score, applied, view

from nightlab.agent import experience
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.policy.decision import Decision
from nightlab.agent.policy.features import state_features
from nightlab.agent.policy.learned import LearnedPolicy, paying_outcomes
from nightlab.agent.policy.scorer import ModelError, Scorer, move_class, outcome_class
from nightlab.agent.proposal import Proposal

torch = pytest.importorskip("torch", reason="`nightlab learn` needs the learn extra (torch)")
from nightlab.agent.learn import LearnOptions, train  # noqa: E402


def _step(chosen: str, reward: float, seconds: float, arms: tuple[str, ...], project: str = "p") -> dict[str, Any]:
    """A synthetic step: one candidate per arm (told apart by one feature each), `chosen` taken."""
    return {"state": {"s.bias": 1.0}, "candidates": [{"features": {f"m.kind.{a}": 1.0}, "valid": None} for a in arms],
            "chosen": arms.index(chosen), "reward": reward, "seconds": seconds, "project": project}


def _prefers(scorer: Scorer, arms: tuple[str, ...]) -> list[str]:
    s = scorer.scores({"s.bias": 1.0}, [{f"m.kind.{a}": 1.0} for a in arms])
    return [arms[i] for i in sorted(range(len(arms)), key=lambda i: -s[i])]


def test_the_loss_falls_when_one_move_is_always_better() -> None:
    arms = ("lr", "epochs", "width")
    steps = [_step(a, {"lr": 0.8, "epochs": 0.1, "width": -0.2}[a], 5.0, arms) for a in arms * 20]
    res = train(steps, LearnOptions(epochs=150))
    assert res.steps == 60 and len(res.losses) == 150
    assert res.losses[-1] < res.losses[0] - 0.05
    assert min(res.losses[:40]) < res.losses[0] - 0.05  # it falls at once, then holds within the clipped region
    assert _prefers(res.scorer, arms)[0] == "lr"


def test_the_loss_is_bounded_however_often_the_same_steps_are_gone_over() -> None:
    """A fixed set of steps gone over for hundreds of epochs, rewards pure noise, every step's state its own: the
    plain policy gradient memorises which moves once did badly and pushes them towards probability 0 without end
    (on 1,000 resampled real steps its loss ran from −0.2 to −64.8); the clipped surrogate's gradient stops once a
    move's probability has moved by a factor 1 ± ε, so the loss keeps above the floor the clipping sets."""
    import random

    from nightlab.agent.learn import examples, weights_and_advantages

    rng = random.Random(0)
    arms = ("lr", "epochs", "width", "batch_size")
    steps = [{"state": {"s.bias": 1.0, "s.a": rng.random(), "s.b": rng.random()},
              "candidates": [{"features": {f"m.kind.{x}": 1.0, "m.rank": j / 3}, "valid": None}
                             for j, x in enumerate(arms)],
              "chosen": rng.randrange(4), "reward": rng.gauss(0, 1), "seconds": 5.0, "project": f"p{i % 3}"}
             for i in range(200)] * 5
    opts = LearnOptions(epochs=300)
    w, adv = weights_and_advantages(examples(steps), True)
    floor = -sum(wi * (1 + opts.clip if a > 0 else 1 - opts.clip) * a for wi, a in zip(w, adv, strict=True)) \
        - opts.entropy * math.log(len(arms))
    clipped = train(steps, opts)
    assert min(clipped.losses) >= floor - 1e-3, (min(clipped.losses), floor)
    plain = train(steps, LearnOptions(epochs=300, clip=1e9))
    assert min(plain.losses) < 2 * floor, (min(plain.losses), floor)  # it runs away from what the data say


def test_duration_weighting_learns_the_slow_move_that_pays_more() -> None:
    """Collected asynchronously over the same hours, a fast move shows up ten times as often as a slow one. The
    slow move pays more; counted once per record the fast (weaker) move wins, counted for its duration the slow."""
    arms = ("lr", "epochs", "width")  # lr: fast and fair; epochs: slow and best; width: fast and poor
    steps = ([_step("lr", 0.5, 1.0, arms)] * 10 + [_step("epochs", 0.7, 10.0, arms)]
             + [_step("width", 0.1, 1.0, arms)] * 10)
    plain = train(steps, LearnOptions(duration_aware=False, epochs=200))
    timed = train(steps, LearnOptions(duration_aware=True, epochs=200))
    assert _prefers(plain.scorer, arms)[0] == "lr"
    assert _prefers(timed.scorer, arms)[0] == "epochs"


def test_the_model_file_is_small_versioned_and_loads_fast(tmp_path: Path) -> None:
    arms = ("lr", "epochs")
    res = train([_step("lr", 0.5, 2.0, arms), _step("epochs", -0.2, 2.0, arms)] * 5, LearnOptions(epochs=20))
    path = tmp_path / "policy.json"
    res.scorer.save(path)
    assert path.stat().st_size < 50_000
    back = Scorer.load(path)  # bench/learn.py prints how long loading takes
    assert back.features == res.scorer.features and back.meta["trained_on"] == 10
    # what the data vouch for travels with the model: each class of move as often as it was taken
    assert back.support == {"kind.lr": 5, "kind.epochs": 5} == res.scorer.support
    x = [{"m.kind.lr": 1.0}, {"m.kind.epochs": 1.0}]
    assert list(back.scores({}, x)) == pytest.approx(list(res.scorer.scores({}, x)))
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "version": 99}))
    with pytest.raises(ModelError, match="version 99"):
        Scorer.load(path)
    path.write_text(json.dumps({**data, "support": {"kind.lr": -1}}))
    with pytest.raises(ModelError, match="support counts"):
        Scorer.load(path)
    # and how those steps fared: their advantages over the project's mean reward (here +0.35 and -0.35 each)
    assert back.outcomes == res.scorer.outcomes
    lr = back.advantage_bound({}, {"m.kind.lr": 1.0}, 1.0)
    assert lr is not None and lr.n == 5
    assert lr.mean == pytest.approx(0.35) and lr.low == pytest.approx(0.35)  # no spread: the bound is the mean
    assert (back.advantage_bound({}, {"m.kind.epochs": 1.0}, 1.0) or (0, 0.0))[1] == pytest.approx(-0.35)
    assert back.advantage_bound({}, {"m.kind.width": 1.0}, 1.0) is None
    # counted per regime of the best run: these steps were taken with no pathology diagnosed
    assert back.advantage_bound({"s.path.underfitting": 1.0}, {"m.kind.lr": 1.0}, 1.0) is None
    path.write_text(json.dumps({**data, "outcomes": {"kind.lr": [1, "x"]}}))
    with pytest.raises(ModelError, match="outcomes"):
        Scorer.load(path)
    path.write_text(json.dumps({**data, "outcome_classes": "move"}))  # counted otherwise (an older nightlab)
    assert Scorer.load(path).outcomes == {} and Scorer.load(path).support == back.support
    del data["support"], data["outcomes"]  # a model written before support counts existed: read, vouching for nothing
    path.write_text(json.dumps(data))
    assert Scorer.load(path).support == {} and Scorer.load(path).outcomes == {}
    path.write_text("{not json")
    with pytest.raises(ModelError, match="not a readable model file"):
        Scorer.load(path)


def _lockstep(files: dict[str, str], score: Any, rounds: int, loss: list[float] | None = None) -> list[str]:
    """Builtin and model-less learned policy on the same tree, step after step: the same proposals."""
    tree = Tree(files)
    tree.add(view(1, kind="baseline", metric=score(files), loss=loss))
    builtin, learned = BuiltinPolicy(), LearnedPolicy(None)
    titles = []
    for _ in range(rounds):
        a, b = builtin.propose(tree.ctx()), learned.propose(tree.ctx())
        assert (a is None) == (b is None)
        if a is None or b is None:
            break
        assert (a.title, a.edits, a.knobs, a.parent_id, a.kind) == (b.title, b.edits, b.knobs, b.parent_id, b.kind)
        tree.record(a, score(applied(a.edits, tree.files[a.parent_id or 1])), loss=loss)
        titles.append(a.title)
    return titles


def test_without_a_model_the_learned_policy_is_the_builtin() -> None:
    assert len(_lockstep({"train.py": KNOB_ONLY}, _score, 10)) == 10
    loss = [2.0 * 0.8**i for i in range(16)]  # still improving: the diagnosis moves and transforms come first
    titles = _lockstep({"train.py": MLP_ADAMW}, lambda f: 0.5 + 0.01 * len(f["train.py"]) % 0.3, 6, loss)
    assert len(titles) == 6


def test_the_learned_order_and_online_updates() -> None:
    tree = Tree({"train.py": KNOB_ONLY})
    tree.add(view(1, kind="baseline", metric=_score({"train.py": KNOB_ONLY})))
    first = BuiltinPolicy()
    assert first.propose(tree.ctx()) is not None
    decision = first.last_decision
    assert decision is not None and decision.chosen is not None
    c = decision.chosen
    # the moves before the one taken did not apply; the ones after are the alternatives it did not take
    assert [x.valid for x in decision.candidates[:c + 1]] == [False] * c + [True]
    kinds = [next((k for k in x.features if k.startswith("m.kind.")), "") for x in decision.candidates]
    alt = next(j for j in range(c + 1, len(kinds)) if kinds[j] and kinds[j] != kinds[c])
    # a model that prefers the alternative's knob kind proposes that move first
    feats = sorted({*decision.state, *(k for x in decision.candidates for k in x.features)})
    scorer = Scorer.fresh(feats)
    scorer.u[feats.index(kinds[alt])] = 10.0
    policy = LearnedPolicy(scorer, temperature=0.0, min_support=0)
    prop = policy.propose(tree.ctx())
    got = policy.last_decision
    assert prop is not None and got is not None
    assert got.chosen == alt and prop.title == decision.candidates[alt].label
    # online: a bad reward for that move lowers its score against the builtin's choice within the session
    before = scorer.scores(got.state, [x.features for x in got.candidates])
    step = {"id": 1, **got.as_dict(), "reward": -1.0, "seconds": 5.0}
    policy.observe({"id": 0, **got.as_dict(), "reward": 0.5, "seconds": 5.0})
    policy.observe(step)
    policy.observe(step)  # the same step again (a resumed session replays): learned from once
    after = scorer.scores(got.state, [x.features for x in got.candidates])
    assert after[alt] - after[c] < before[alt] - before[c]


def test_the_order_departs_from_the_builtin_only_on_supported_moves() -> None:
    """SPIBB's rule with a deterministic baseline: an unsupported candidate keeps its builtin place, the supported
    ones are drawn into the places left."""
    policy = LearnedPolicy(Scorer.fresh(["m.rank"]), temperature=0.0)
    scores = np.array([0.0, 1.0, 3.0, 2.0])  # the model's favourite is the builtin's third move
    assert policy.order(scores, random.Random(0)) == [2, 3, 1, 0]
    assert policy.order(scores, random.Random(0), [False, True, True, False]) == [0, 2, 1, 3]
    assert policy.order(scores, random.Random(0), [False] * 4) == [0, 1, 2, 3]  # thin data: the builtin's order
    assert policy.order(scores, random.Random(0), [True] * 4) == [2, 3, 1, 0]
    for seed in range(20):  # drawn at a temperature, the unsupported places still never move
        got = LearnedPolicy(Scorer.fresh(["m.rank"]), temperature=1.0).order(
            scores, random.Random(seed), [False, True, True, False])
        assert got[0] == 0 and got[3] == 3 and sorted(got[1:3]) == [1, 2]


def test_a_model_reorders_the_builtin_s_moves_only_where_its_data_took_them_often_enough() -> None:
    """The held-out failure this guards against (bench/learn.py, 2026-12-02): a model trained on ~20 steps of other
    tasks preferred moves it had seen taken once or twice over the builtin's first, and lost most of the gap."""
    tree = Tree({"train.py": KNOB_ONLY})
    tree.add(view(1, kind="baseline", metric=_score({"train.py": KNOB_ONLY})))
    first = BuiltinPolicy()
    assert first.propose(tree.ctx()) is not None and first.last_decision is not None
    decision = first.last_decision
    assert decision.chosen is not None
    c = decision.chosen
    kinds = [next((k for k in x.features if k.startswith("m.kind.")), "") for x in decision.candidates]
    alt = next(j for j in range(c + 1, len(kinds)) if kinds[j] and kinds[j] != kinds[c])
    feats = sorted({*decision.state, *(k for x in decision.candidates for k in x.features)})
    scorer = Scorer.fresh(feats)
    scorer.u[feats.index(kinds[alt])] = 10.0
    builtin_first = decision.candidates[c].features
    alt_features = decision.candidates[alt].features
    assert move_class(builtin_first) != move_class(alt_features)

    def chosen(support: dict[str, int], min_support: int = 5) -> int | None:
        scorer.support = dict(support)
        policy = LearnedPolicy(scorer, temperature=0.0, min_support=min_support)
        assert policy.propose(tree.ctx()) is not None and policy.last_decision is not None
        return policy.last_decision.chosen

    assert chosen({}) == c  # nothing vouched for: the builtin's move
    assert chosen({move_class(alt_features): 9}) == c  # the builtin's first move was never seen: it stays first
    assert chosen({move_class(alt_features): 9, move_class(builtin_first): 4}) == c
    assert chosen({move_class(alt_features): 5, move_class(builtin_first): 5}) == alt
    assert chosen({}, min_support=0) == alt
    # a session's own settled steps count as support as they arrive
    scorer.support = {move_class(alt_features): 4, move_class(builtin_first): 5}
    policy = LearnedPolicy(scorer, temperature=0.0, online_lr=0.0)
    assert policy.propose(tree.ctx()) is not None and policy.last_decision is not None
    assert policy.last_decision.chosen == c
    step = policy.last_decision.as_dict()
    step["chosen"] = alt
    policy.observe({"id": 7, **step, "reward": 0.2, "seconds": 3.0})
    assert scorer.support[move_class(alt_features)] == 5
    assert policy.propose(tree.ctx()) is not None and policy.last_decision is not None
    assert policy.last_decision.chosen == alt


def _scorer_preferring(tree: Tree, prop_title: str | None = None) -> Scorer:
    """A model that scores every move of the first decision's knob kinds, the given proposal's kind far above all."""
    probe = BuiltinPolicy()
    assert probe.propose(tree.ctx()) is not None and probe.last_decision is not None
    d = probe.last_decision
    feats = sorted({*d.state, *(k for x in d.candidates for k in x.features)})
    scorer = Scorer.fresh(feats)
    for x in d.candidates:
        if prop_title is not None and x.label == prop_title:
            for k in x.features:
                scorer.u[feats.index(k)] = 10.0
    return scorer


def test_people_s_rejections_and_feedback_hold_under_the_learned_policy() -> None:
    """The learned policy proposes from the builtin's stream with people's word applied: a rejected change never
    comes back however much the model likes it, and a move the feedback asks for is not overruled by the model."""
    import dataclasses

    improving = [2.0 * 0.8**i for i in range(16)]
    tree = Tree({"train.py": MLP_ADAMW.replace('"hidden": 32', '"hidden": 256')})
    tree.add(view(1, kind="baseline", metric=0.7, loss=improving))
    first = BuiltinPolicy().propose(tree.ctx())
    assert first is not None
    scorer = _scorer_preferring(tree, first.title)
    liked = LearnedPolicy(scorer, temperature=0.0, min_support=0).propose(tree.ctx())
    assert liked is not None and liked.title == first.title  # the model's favourite, before anyone said no
    no = _rejected(tree, first)
    said_no = dataclasses.replace(tree.ctx(), rejected_by_user={no.id: ""})
    again = LearnedPolicy(scorer, temperature=0.0, min_support=0).propose(said_no)
    assert again is not None and _changed(tree, again) != _changed(tree, first), again.title
    guided = LearnedPolicy(scorer, temperature=0.0, min_support=0).propose(dataclasses.replace(
        tree.ctx(), rejected_by_user={no.id: "no: add some weight decay first"}))
    assert guided is not None and _changed(tree, guided) == {"CONFIG.weight_decay"}, guided.title


def _fill_user_store(n: int) -> None:
    arms = ("lr", "epochs", "width", "batch_size")
    with experience._user_db() as db:
        for i in range(n):
            s = _step(arms[i % 4], [0.6, 0.2, -0.1, 0.0][i % 4], 1.0 + i % 7, arms, project=f"p{i % 5}")
            db.execute("INSERT INTO steps (uid, project, format, t, kind, policy, state, candidates, chosen, reward, "
                       "reward_parts, stage, seconds, outcome) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (f"x:{i}", s["project"], experience.FORMAT, float(i), "propose", "builtin",
                        json.dumps(s["state"]), json.dumps(s["candidates"]), s["chosen"], s["reward"], "{}",
                        "clean_exit", s["seconds"], "kept"))


def test_nightlab_learn_trains_from_the_user_store(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "nightlab", "learn", "-o", str(tmp_path / "m.json")]
    p = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode != 0 and p.stderr.count("\n") == 1 and "no settled decision steps yet" in p.stderr
    _fill_user_store(200)
    p = subprocess.run([*run, "--epochs", "50"], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ})
    assert p.returncode == 0, p.stderr
    assert "trained on 200 step(s) from 5 project(s)" in p.stdout
    # 50 steps of each arm: every class of move is vouched for, the most taken first
    assert "it may reorder 4 of 4 classes of move, each taken at least 5 times ([learned] min_support): " in p.stdout
    assert p.stdout.rstrip().splitlines()[-3].endswith("; the others keep the builtin's order"), p.stdout
    scorer = Scorer.load(tmp_path / "m.json")
    assert scorer.support == {"kind.lr": 50, "kind.epochs": 50, "kind.width": 50, "kind.batch_size": 50}
    assert scorer.meta["trained_on"] == 200 and math.isfinite(scorer.meta["final_loss"])
    assert _prefers(scorer, ("lr", "epochs", "width", "batch_size"))[0] == "lr"
    # explored pattern moves (a width step once more) that paid: the user is told the policy may now take them
    with experience._user_db() as db:
        for i in range(6):
            cands = [{"features": {"m.kind.lr": 1.0}}, {"features": {"m.src.pattern": 1.0, "m.kind.width": 1.0,
                                                                     "m.up": 1.0}}]
            db.execute("INSERT INTO steps (uid, project, format, t, kind, policy, state, candidates, chosen, reward, "
                       "reward_parts, stage, seconds, outcome) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (f"pattern:{i}", f"p{i % 5}", experience.FORMAT, 1e6 + i, "propose", "explore", "{}",
                        json.dumps(cands), 1, 0.9 + 0.01 * i, "{}", "clean_exit", 3.0, "kept"))
    p = subprocess.run([*run, "--epochs", "20"], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith("moves that paid confidently"))
    assert "kind.width|up|neither (+0." in line and "takes a winning step once more" in line, line


def test_explore_then_learn_then_run_the_learned_policy(tiny_project: Path) -> None:
    def nl(*args: str) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=tiny_project, capture_output=True,
                           text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        return p

    out = nl("explore", "--budget", "6").stdout
    assert "decision step(s) recorded" in out
    from nightlab.agent.engine import open_store

    store = open_store(tiny_project)
    explored = store.steps()
    assert explored and {s["policy"] for s in explored} == {"explore"}
    assert len(experience.user_steps()) == len([s for s in explored if s["settled_t"]])
    nl("learn", "--epochs", "30")
    nl("run", "--mode", "autonomous", "--budget", "4", "--policy", "learned")
    learned = [s for s in store.steps() if s["policy"] == "learned"]
    assert learned and all(s["candidates"] and s["chosen"] is not None for s in learned)
    events = [e["kind"] for e in store.events(limit=-1)]
    assert "policy_error" not in events and "experience_error" not in events


def test_the_learned_policy_weighs_the_pattern_move_the_builtin_never_makes() -> None:
    """A best reached by one knob alone (a learning rate raised 0.01 → 0.02 that won) has a pattern move: the same
    step once more (0.02 → 0.04). The builtin never proposes it; the learned policy does where its data took such
    moves often enough and scored them above the builtin's, and otherwise keeps the builtin's choice."""
    tree = Tree({"train.py": KNOB_ONLY})
    tree.add(view(1, kind="baseline", metric=_score({"train.py": KNOB_ONLY})))
    raised = KNOB_ONLY.replace("LEARNING_RATE = 0.01", "LEARNING_RATE = 0.02")
    knobs = {k: v.value for k, v in BuiltinPolicy().knobs_in({"train.py": raised}).items()}
    tree.add(view(2, 1, metric=_score({"train.py": raised}), knobs=knobs, title="raise LEARNING_RATE"),
             {"train.py": raised})
    assert tree.best_id == 2
    builtin = BuiltinPolicy()
    plain = builtin.propose(tree.ctx())
    assert plain is not None and builtin.last_decision is not None
    assert not any("m.src.pattern" in c.features for c in builtin.last_decision.candidates)

    def learned(support: int, min_support: int = 5, liked: float = 10.0,
                outcomes: tuple[float, ...] = ()) -> tuple[Proposal, Decision]:
        probe = LearnedPolicy(Scorer.fresh(["m.rank"]), temperature=0.0, min_support=10**6)
        assert probe.propose(tree.ctx()) is not None and probe.last_decision is not None
        d = probe.last_decision
        feats = sorted({*d.state, *(k for x in d.candidates for k in x.features)})
        scorer = Scorer.fresh(feats)
        scorer.u[feats.index("m.src.pattern")] = liked
        scorer.support = {move_class(x.features): support for x in d.candidates}
        for a in outcomes:
            scorer.add_outcome(d.state, d.candidates[-1].features, a)
        policy = LearnedPolicy(scorer, temperature=0.0, min_support=min_support)
        prop = policy.propose(tree.ctx())
        assert prop is not None and policy.last_decision is not None
        return prop, policy.last_decision

    prop, decision = learned(support=5)
    pattern = decision.candidates[decision.chosen or 0]
    assert "m.src.pattern" in pattern.features and pattern.features["m.up"] == 1.0
    assert applied(prop.edits, tree.files[2])["train.py"] == KNOB_ONLY.replace("LEARNING_RATE = 0.01",
                                                                                 "LEARNING_RATE = 0.04")
    assert "#2" in prop.rationale and "0.01 → 0.02" in prop.rationale
    # the builtin's candidates come first, the pattern move after them
    assert decision.chosen == len(decision.candidates) - 1
    # thin data: the builtin's own choice, though the model likes the pattern move best
    thin, _ = learned(support=4)
    assert (thin.title, thin.edits) == (plain.title, plain.edits)
    # a model anchored to the builtin's order scores it last; its outcomes decide then: confidently above the
    # project's mean reward, it goes first; within the noise, or below, it keeps its place after the builtin's
    pays, decision = learned(support=5, liked=-10.0, outcomes=(0.5, 0.6, 0.4, 0.5, 0.7))
    assert decision.chosen == len(decision.candidates) - 1 and "once more" in pays.title
    for outcomes in [(0.5, -0.6, 0.4, -0.5, 0.1), (-0.5, -0.4, -0.6, -0.5, -0.3), (0.5,)]:
        kept, _ = learned(support=5, liked=-10.0, outcomes=outcomes)
        assert (kept.title, kept.edits) == (plain.title, plain.edits), outcomes
    # where the builtin's own candidates hold the same change (its search steps 0.03 → 0.09 too) it is not doubled
    tripled = KNOB_ONLY.replace("LEARNING_RATE = 0.01", "LEARNING_RATE = 0.03")
    tree.add(view(3, 1, metric=_score({"train.py": tripled}), title="raise LEARNING_RATE",
                  knobs={**knobs, "LEARNING_RATE": 0.03}), {"train.py": tripled})
    assert tree.best_id == 3
    probe = LearnedPolicy(Scorer.fresh(["m.rank", "m.src.pattern"]), temperature=0.0, min_support=0)
    assert probe.propose(tree.ctx()) is not None and probe.last_decision is not None
    labels = [c.label for c in probe.last_decision.candidates]
    assert sum("0.09" in t for t in labels) == 1, labels
    # a best not reached by one knob alone (the baseline) has no pattern move
    base_only = Tree({"train.py": KNOB_ONLY})
    base_only.add(view(1, kind="baseline", metric=0.5))
    probe = LearnedPolicy(Scorer.fresh(["m.rank", "m.src.pattern"]), temperature=0.0, min_support=0)
    assert probe.propose(base_only.ctx()) is not None and probe.last_decision is not None
    assert not any("m.src.pattern" in c.features for c in probe.last_decision.candidates)


def test_the_state_says_how_far_the_best_beat_what_it_was_made_from() -> None:
    """In the reward's scale (the noise floor, or 1 % of the baseline where larger), whichever way the metric goes:
    a step that won by far more than the noise is a different state from one that won by a hair."""
    for goal, base, best in (("maximize", 0.50, 0.60), ("minimize", 2.0, 1.9)):
        tree = Tree({"train.py": KNOB_ONLY}, goal=goal)
        tree.add(view(1, kind="baseline", metric=base))
        assert "s.best_won_by" not in state_features(dataclasses.replace(tree.ctx(), noise_floor=0.02))
        tree.add(view(2, 1, metric=best))
        assert tree.best_id == 2
        got = state_features(dataclasses.replace(tree.ctx(), noise_floor=0.02))["s.best_won_by"]
        assert got == pytest.approx(math.log1p(abs(best - base) / max(0.02, 0.01 * base))), goal
        plain = state_features(tree.ctx())["s.best_won_by"]  # no noise floor yet: 1 % of the baseline
        assert plain == pytest.approx(math.log1p(abs(best - base) / (0.01 * base)))


def test_a_move_s_outcomes_are_weighed_in_the_best_run_s_regime() -> None:
    """Widening paid where the best run was underfitting and lost where it fit its data: the pattern move's class
    goes first in the first regime only, whichever policy's moves the outcomes came from (the source is not part
    of the class), and not where the builtin's own first move's class did better still."""
    widen = {"m.src.pattern": 1.0, "m.kind.width": 1.0, "m.up": 1.0}
    first = {"m.src.search": 1.0, "m.kind.lr": 1.0, "m.down": 1.0}
    under, fits = {"s.bias": 1.0, "s.path.underfitting": 1.0}, {"s.bias": 1.0}
    scorer = Scorer.fresh(["m.rank"])
    for a in (0.5, 0.4, 0.6, 0.3, 0.5):
        scorer.add_outcome(under, {"m.src.widen": 1.0, "m.kind.width": 1.0, "m.up": 1.0}, a)
        scorer.add_outcome(fits, {"m.src.search": 1.0, "m.kind.width": 1.0, "m.up": 1.0}, -a)
    assert outcome_class(under, widen) == "kind.width|up|underfitting"
    assert outcome_class({"s.path.overfitting": 1.0}, {"m.src.transform": 1.0, "m.tf.dropout": 1.0}) == \
        "tf.dropout|overfitting"
    policy = LearnedPolicy(scorer, temperature=0.0, min_support=5)
    assert policy._pays(under, widen, first) and not policy._pays(fits, widen, first)
    assert not LearnedPolicy(scorer, temperature=0.0, min_support=6)._pays(under, widen, first)  # 5 outcomes
    for a in (0.9, 0.8, 0.9):  # the builtin's first move fared better still in that regime: it keeps its place
        scorer.add_outcome(under, first, a)
    assert not policy._pays(under, widen, first)
    assert [k for k, _ in paying_outcomes(scorer, 5)] == ["kind.width|up|underfitting"]


def test_exploring_draws_the_move_beyond_the_builtin_s_first_most_of_the_time() -> None:
    from nightlab.agent.policy.learned import ExplorePolicy
    from nightlab.agent.policy.scorer import PRIOR

    policy = ExplorePolicy(None)
    weighed = policy._weigh(np.array([0.0, -1.0, -2.0, -3.0]), builtin=3)
    assert list(weighed) == [0.0, -1.0, -2.0, PRIOR]
    rng = random.Random(0)
    firsts = [policy.order(weighed, rng)[0] for _ in range(400)]
    assert 0.75 < firsts.count(3) / 400 < 0.98
    assert list(LearnedPolicy(Scorer.fresh(["m.rank"]))._weigh(np.array([0.0, -3.0]), builtin=1)) == [0.0, -3.0]
