"""`nightlab learn`: train the learned policy's scorer on the experience store, by step-wise, duration-aware
policy gradient.

The data: decision steps (experience.py), each with the candidate moves the policy could make (their features:
policy/features.py), the move it took, that move's reward (reward.py) and the run's duration. Every step is its own
decision with its own reward — the step-wise view: no return is summed over a session, a move is credited with what
its own run earned (partial credit for the stage it reached included).

The objective. For step i with candidates C_i (those not known not to apply), the move taken a_i, reward r_i and
duration d_i = max(seconds_i, 1 s):

    π_θ(a | s_i)  = softmax over a ∈ C_i of f_θ(s_i, a)                       (f: policy/scorer.py)
    w_i           = d_i / Σ_j d_j                                             duration-aware weight
    b_p           = Σ_{i∈p} d_i r_i / Σ_{i∈p} d_i                             project p's duration-weighted mean reward
    A_i           = r_i − b_{p(i)}                                            advantage (projects' rewards differ in
                                                                              scale: each is its own baseline)
    ρ_i           = π_θ(a_i | s_i) / π_θ0(a_i | s_i)                          how far the step's move has moved
    L(θ)          = − Σ_i w_i min(ρ_i A_i, clip(ρ_i, 1−ε, 1+ε) A_i)          clipped policy gradient (PPO's surrogate)
                    − β Σ_i w_i H(π_θ(· | s_i))                               exploration bonus (entropy)
                    + λ ‖θ − θ_0‖²                                            stay near the builtin's order θ_0

Why clipped: the data are a fixed set of steps, gone over for hundreds of epochs. The plain policy gradient
− Σ w A log π has no floor there: a move whose step had a negative advantage is pushed towards probability 0 without
end, and on 1,000 resampled steps the loss ran from −0.2 to −64.8 (bench/learn.py, 2026-12-04) — the model
memorised which moves once did badly. The clipped surrogate's gradient for a step stops once its move's probability
has moved by a factor outside [1−ε, 1+ε] of the builtin-ordered start θ_0 (about the order the explored steps were
drawn from), so the loss is bounded and the learned order can swap moves the data separate, not leap across the
list on a few steps (`--clip`, ε = 0.5 by default).

Why weight by duration: experience is collected asynchronously — several jobs at once, a slot taking the next move
as soon as one ends — so a move that takes d seconds is recorded about 1/d as often per hour as it would be chosen.
Counted once per record, fast moves would dominate the gradient and a fast, weak move would be learned ahead of a
slow one that pays more. Weighting each step by its duration gives every move the weight of the time it held a
slot, which undoes that bias (the duration-aware update of RL for ML-engineering agents). `--no-duration` weights
every step alike (w_i = 1/N, plain means), for comparison.

The exploration bonus keeps the softmax from collapsing on a few moves while data are thin, so the temperature at
run time still has alternatives to draw; the pull towards θ_0 (a model that ranks exactly as the builtin policy
does) keeps a model trained on little experience close to the builtin. The pull alone was not enough: on a
held-out task a model trained on about 20 steps of three others reordered moves it had seen taken once or twice and
lost most of the builtin's gain (bench/learn.py, 2026-12-02: −0.47 and −0.92 gap closed on two seeds). So the model
also records how often each class of move was taken in its data (`Scorer.support`), and the policy lets only moves
with enough of it overtake the builtin's order (policy/learned.py). With it go the advantages A_i of those steps
(`Scorer.outcomes`: count, sum, sum of squares per class of move and regime of the best run): a move the builtin
never makes has no place in θ_0's order to start from, and the policy takes one only where its class's mean
advantage in the step's regime is confidently above zero.

Training is full-batch Adam on a padded tensor of all steps (a few hundred parameters): 1,000 steps train in
seconds on a CPU (bench/learn.py prints the figure).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightlab.agent import experience
from nightlab.agent.policy.scorer import Scorer
from nightlab.errors import NightlabError

MIN_SECONDS = 1.0


@dataclass
class LearnOptions:
    epochs: int = 300
    lr: float = 0.03
    hidden: int = 16
    entropy: float = 0.01  # β, the exploration bonus
    clip: float = 0.5  # ε, how far a step's move may move from the start's probability before its gradient stops
    l2: float = 1e-3  # λ, the pull towards the builtin's order
    duration_aware: bool = True
    seed: int = 0
    # a few hundred parameters: one thread is fastest, and on a machine busy with training jobs torch's default of a
    # thread per core made 1,000 steps take 75 s instead of 3.5 s (bench/learn.py)
    threads: int = 1


@dataclass
class LearnResult:
    scorer: Scorer
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    projects: int = 0
    seconds: float = 0.0


@dataclass
class _Example:
    state: dict[str, float]
    candidates: list[dict[str, float]]
    chosen: int
    reward: float
    duration: float
    project: str


def examples(steps: Sequence[dict[str, Any]]) -> list[_Example]:
    """The steps a policy gradient can use: a reward, a move taken among at least two candidates that applied (or
    were not tried). Candidates found not to apply were never options, so they are left out of the softmax."""
    out = []
    for s in steps:
        cands, chosen, reward = s.get("candidates") or [], s.get("chosen"), s.get("reward")
        if reward is None or chosen is None or not 0 <= int(chosen) < len(cands):
            continue
        if cands[int(chosen)].get("valid") is False:
            continue
        keep = [i for i, c in enumerate(cands) if c.get("valid") is not False]
        if len(keep) < 2 or not math.isfinite(float(reward)):
            continue
        out.append(_Example(state=dict(s.get("state") or {}), candidates=[dict(cands[i].get("features") or {})
                                                                          for i in keep],
                            chosen=keep.index(int(chosen)), reward=float(reward),
                            duration=max(MIN_SECONDS, float(s.get("seconds") or 0.0)),
                            project=str(s.get("project") or "")))
    return out


def vocabulary(data: Sequence[_Example]) -> list[str]:
    names: set[str] = set()
    for ex in data:
        names |= set(ex.state)
        for c in ex.candidates:
            names |= set(c)
    names.add("m.rank")
    return sorted(names)


def weights_and_advantages(data: Sequence[_Example], duration_aware: bool) -> tuple[list[float], list[float]]:
    """w_i and A_i of the objective above (the module docstring)."""
    d = [ex.duration if duration_aware else 1.0 for ex in data]
    total = sum(d)
    by_project: dict[str, tuple[float, float]] = {}
    for ex, di in zip(data, d, strict=True):
        num, den = by_project.get(ex.project, (0.0, 0.0))
        by_project[ex.project] = (num + di * ex.reward, den + di)
    base = {p: num / den for p, (num, den) in by_project.items()}
    return [di / total for di in d], [ex.reward - base[ex.project] for ex in data]


def train(steps: Sequence[dict[str, Any]], opts: LearnOptions | None = None,
          progress: Callable[[int, float], None] | None = None) -> LearnResult:
    """Fit a scorer to the steps (see the module docstring); raises ValueError when no step can be used."""
    import torch

    opts = opts or LearnOptions()
    threads = torch.get_num_threads()
    torch.set_num_threads(opts.threads)
    try:
        return _train(torch, steps, opts, progress)
    finally:
        torch.set_num_threads(threads)


def _train(torch: Any, steps: Sequence[dict[str, Any]], opts: LearnOptions,
           progress: Callable[[int, float], None] | None) -> LearnResult:
    t0 = time.monotonic()
    data = examples(steps)
    if not data:
        raise ValueError("no usable step: none has a reward and a choice among two or more moves")
    feats = vocabulary(data)
    init = Scorer.fresh(feats, hidden=opts.hidden, seed=opts.seed)
    n, c_max = len(data), max(len(ex.candidates) for ex in data)
    x = torch.zeros(n, c_max, len(feats))
    mask = torch.zeros(n, c_max, dtype=torch.bool)
    for i, ex in enumerate(data):
        rows = init.matrix(ex.state, ex.candidates)
        x[i, :len(ex.candidates)] = torch.from_numpy(rows).float()
        mask[i, :len(ex.candidates)] = True
    chosen = torch.tensor([ex.chosen for ex in data])
    w_list, a_list = weights_and_advantages(data, opts.duration_aware)
    w, adv = torch.tensor(w_list), torch.tensor(a_list)

    torch.manual_seed(opts.seed)
    params = {k: torch.tensor(getattr(init, k), dtype=torch.float32, requires_grad=True) for k in ("u", "w", "b", "v")}
    start = {k: p.detach().clone() for k, p in params.items()}
    optim = torch.optim.Adam(params.values(), lr=opts.lr)

    def log_policy(ps: dict[str, Any]) -> Any:
        h = torch.tanh(x @ ps["w"].T + ps["b"])
        return torch.log_softmax((x @ ps["u"] + h @ ps["v"]).masked_fill(~mask, -1e9), dim=1)

    with torch.no_grad():
        taken0 = log_policy(start).gather(1, chosen[:, None]).squeeze(1)
    losses: list[float] = []
    for epoch in range(opts.epochs):
        logp = log_policy(params)
        p = logp.exp()
        entropy = -(p * logp.masked_fill(~mask, 0.0)).sum(dim=1)
        ratio = (logp.gather(1, chosen[:, None]).squeeze(1) - taken0).exp()
        surrogate = torch.minimum(ratio * adv, ratio.clamp(1.0 - opts.clip, 1.0 + opts.clip) * adv)
        loss = -(w * surrogate).sum() - opts.entropy * (w * entropy).sum()
        loss = loss + opts.l2 * sum(((params[k] - start[k]) ** 2).sum() for k in params)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(epoch + 1, losses[-1])
    got = {k: params[k].detach().double().numpy() for k in ("u", "w", "b", "v")}
    scorer = Scorer(features=feats, u=got["u"], w=got["w"], b=got["b"], v=got["v"])
    for ex, a in zip(data, a_list, strict=True):  # what the experience can vouch for: each class of move, as
        scorer.add_support(ex.candidates[ex.chosen])  # often as it was taken, and how those steps fared
        scorer.add_outcome(ex.state, ex.candidates[ex.chosen], a)
    scorer.meta = {"trained_on": n, "projects": len({ex.project for ex in data}), "created": time.time(),
                   "duration_aware": opts.duration_aware, "epochs": opts.epochs, "entropy": opts.entropy,
                   "clip": opts.clip,
                   "final_loss": losses[-1]}
    return LearnResult(scorer=scorer, losses=losses, steps=n, projects=scorer.meta["projects"],
                       seconds=time.monotonic() - t0)


__all__ = ["LearnOptions", "LearnResult", "examples", "train", "weights_and_advantages"]


def train_on_store(store: Path | None = None, opts: LearnOptions | None = None,
                   progress: Callable[[int, float], None] | None = None) -> tuple[LearnResult, Path]:
    """`nightlab learn`: train on the settled steps of an experience store (the user's, unless `store` names one).
    Returns the result and the store read; a missing or empty store, or steps no model can be fitted to, raise
    NightlabError naming the store."""
    path = store or experience.user_store_path()
    if store is not None and not path.is_file():
        raise NightlabError(f"{path}: no such experience store")
    steps = experience.user_steps(path)
    if not steps:
        raise NightlabError(f"{path}: no settled decision steps yet; run sessions (or `nightlab explore`) in "
                            "projects that share their experience ([experience] share = true, the default)")
    try:
        return train(steps, opts, progress), path
    except ValueError as err:
        raise NightlabError(f"{path}: {err}") from None
