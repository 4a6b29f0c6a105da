"""The search methods bench/search.py compares nightlab with: what each peer asks for, in which order.

A peer only chooses values for the knobs `bench/search.py` hands it (the builtin policy's knobs and ranges on the
unmodified files) and calls ``train(values)`` for each trial; the harness writes the values with the same editing
code, runs the same wrapped command under the same timeout and reads the same metric for every method. So a peer
here is nothing but a sampler and its bookkeeping, and every method spends exactly the same number of runs.

The peers
---------
* ``random``: a uniform sweep (log-uniform where the space is log-scaled) of all N trials; it never runs the
  committed configuration unless it happens to draw it.
* ``random-default``: trial 1 is the committed configuration (as nightlab's baseline is), then N − 1 uniform draws.
  Seeding random search with the repository's default is what made it tie or beat an LLM advisor at 12 runs
  (arXiv 2606.21641).
* ``optuna``: Optuna's TPE sampler as a user gets it, ``TPESampler(seed=s)``: its default of 10 random start-up
  trials, nothing enqueued.
* ``tpe-default``: TPE told the committed configuration's result as its first trial, with a short random start-up
  of ``clamp(N // 3, 3, 10)`` trials (``--tpe-startup`` overrides): in a 12-run budget Optuna's default of 10 would
  make it a random sweep with two model-based trials.
* ``cmaes``: Optuna's CMA-ES sampler (the ``cmaes`` package), started at the committed configuration (``x0``) with
  sigma0 = 0.2 of each normalised range (Optuna scales every dimension to [0, 1], log-scaled ones in log space, so
  one sd moves a learning rate searched over ×1/30 … ×30 by about ×4 either way; Optuna's own default, 1/6, is
  narrower) and a population of ``max(4, (N − 1) // 3)`` (4 for N = 12, i.e. three generations instead of the
  one-and-a-bit that the default population of 4 + 3 ln d gives 11 trials). Its first trial is the committed
  configuration, told to the study. Categorical knobs, which CMA-ES cannot model, are sampled independently.
  (Optuna deprecated ``x0`` and ``sigma0`` in 4.9 and removes them in 6: the bench extra pins Optuna 5.)
* ``smac``: SMAC3's black-box facade with its defaults (a Gaussian process with expected improvement; the
  ``bench-smac`` extra, whose ``pyrfr`` builds from source with ``swig``: scripts/bench-smac.sh), its initial
  design the committed configuration plus ``clamp(N // 4, 1, 5)`` Sobol points, one evaluation per
  configuration. Its model fitting and acquisition search take several CPU seconds per trial (about 8 s on this
  machine), outside the training budget.

A momentum, Adam β or EMA decay already at 0.5 or more has a space searched on log(1 − x) (`knobs.Space.log1m`:
0.99 → 0.997 is as large a move as 0.9 → 0.97); every sampler here draws it that way too: its coordinate is 1 − x on
a log scale over [1 − high, 1 − low], turned back into x before the builtin's rounding.

"The committed configuration" is the unmodified files (run as they are, not rewritten); where a committed value
lies outside a space the samplers can represent (weight decay 0 in a log-scaled range), the study records it as the
range's nearest bound.
"""

from __future__ import annotations

import importlib.util
import math
import random
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Values = dict[str, Any]
Train = Callable[[Values], dict[str, Any]]
Snap = Callable[[Any, float], Any]  # (dim, sampled number) → the value as the builtin policy writes it

CMA_SIGMA0 = 0.2


def tpe_startup(budget: int, override: int = 0) -> int:
    """tpe-default's random start-up trials: `override`, else a third of the budget within 3..10."""
    return override if override > 0 else min(10, max(3, budget // 3))


def cma_popsize(budget: int) -> int:
    """cmaes' population: about three generations in the budget, never fewer than 4 per generation."""
    return max(4, (budget - 1) // 3)


def smac_initial(budget: int) -> int:
    """smac's Sobol initial points besides the committed configuration."""
    return min(5, max(1, budget // 4))


@dataclass
class Search:
    """What a peer gets: the knobs (bench/search.py's `Dim`s), the seed, how many trials it may still run, the goal,
    and the harness's `train`. `base_run` is the committed configuration's run when the peer starts from it."""

    dims: list[Any]
    seed: int
    trials: int
    budget: int
    goal: str
    train: Train
    snap: Snap
    base_run: dict[str, Any] | None = None
    tpe_startup: int = 0


@dataclass(frozen=True)
class Peer:
    """One method: whether trial 1 is the committed configuration, the package it needs, its sampler."""

    name: str
    default_first: bool
    module: str | None  # importable module the peer needs (None: stdlib)
    run: Callable[[Search], None]

    def available(self) -> bool:
        return self.module is None or importlib.util.find_spec(self.module) is not None


# ============================================================================================== random search


def log1m(d: Any) -> bool:
    """Whether the knob is a momentum or β searched on log(1 − x): its sampler coordinate is 1 − x."""
    return bool(getattr(d.space, "log1m", False))


def coordinate(d: Any, x: float) -> float:
    """The number a sampler works with for the value `x` (1 − x for a log1m space; `x` itself otherwise)."""
    return 1.0 - x if log1m(d) else x


def value_of(d: Any, y: float) -> float:
    """The value a sampler's number `y` stands for (the inverse of `coordinate`)."""
    return 1.0 - y if log1m(d) else y


def random_value(d: Any, rng: random.Random, snap: Snap) -> Any:
    sp = d.space
    if sp.choices:
        return rng.choice(list(sp.choices))
    if log1m(d):
        lo, hi = 1.0 - float(sp.high), 1.0 - float(sp.low)
        return snap(d, value_of(d, math.exp(math.log(lo) + rng.random() * (math.log(hi) - math.log(lo)))))
    lo, hi = float(sp.low), float(sp.high)
    u = rng.random()
    x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if sp.log and lo > 0 else lo + u * (hi - lo)
    return snap(d, x)


def _random(s: Search) -> None:
    rng = random.Random(s.seed)
    for _ in range(s.trials):
        s.train({d.key: random_value(d, rng, s.snap) for d in s.dims})


# ============================================================================================== Optuna (TPE, CMA-ES)


def distribution(d: Any) -> Any:
    """The Optuna distribution of one knob's space."""
    import optuna

    sp = d.space
    if sp.choices:
        return optuna.distributions.CategoricalDistribution(list(sp.choices))
    if log1m(d):
        return optuna.distributions.FloatDistribution(1.0 - float(sp.high), 1.0 - float(sp.low), log=True)
    lo, hi = float(sp.low), float(sp.high)
    log = bool(sp.log) and lo > 0
    if sp.integer:
        return optuna.distributions.IntDistribution(max(math.ceil(lo), 1 if log else math.ceil(lo)),
                                                    max(math.floor(hi), math.ceil(lo)), log=log)
    return optuna.distributions.FloatDistribution(lo, hi, log=log)


def default_params(dims: list[Any], dists: dict[str, Any]) -> dict[str, Any]:
    """The committed values inside the distributions (clipped to the bounds); {} when a categorical one is not a
    choice (then the committed configuration cannot be told to the study)."""
    import optuna

    params: dict[str, Any] = {}
    for d in dims:
        dist, v = dists[d.key], d.baseline
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            if v not in dist.choices:
                return {}
            params[d.key] = v
        else:
            params[d.key] = type(dist.low)(min(max(coordinate(d, float(v)), dist.low), dist.high))
    return params


def _optuna(s: Search, sampler: Any) -> None:
    """Ask/tell through a real Optuna study; the committed configuration's run is told first when there is one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {d.key: distribution(d) for d in s.dims}
    study = optuna.create_study(direction="maximize" if s.goal == "maximize" else "minimize", sampler=sampler)
    params = default_params(s.dims, dists) if s.base_run is not None else {}
    if s.base_run is not None and params:
        ok = bool(s.base_run["ok"])
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=dists, value=float(s.base_run["metric"]) if ok else None,
            state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL))
    for _ in range(s.trials):
        trial = study.ask(dists)
        values = {d.key: trial.params[d.key] if d.space.choices
                  else s.snap(d, value_of(d, float(trial.params[d.key]))) for d in s.dims}
        run = s.train(values)
        if run["ok"]:
            study.tell(trial, float(run["metric"]))
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _tpe(s: Search) -> None:
    import optuna

    _optuna(s, optuna.samplers.TPESampler(seed=s.seed))


def _tpe_default(s: Search) -> None:
    import optuna

    _optuna(s, optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=tpe_startup(s.budget, s.tpe_startup)))


def _cmaes(s: Search) -> None:
    import optuna

    dists = {d.key: distribution(d) for d in s.dims}
    numeric = {k: v for k, v in default_params(s.dims, dists).items()
               if not isinstance(dists[k], optuna.distributions.CategoricalDistribution)}
    with warnings.catch_warnings():  # x0 and sigma0 are deprecated since Optuna 4.9, removed in 6 (pinned < 6)
        warnings.simplefilter("ignore", FutureWarning)
        sampler = optuna.samplers.CmaEsSampler(
            x0=numeric or None, sigma0=CMA_SIGMA0, seed=s.seed, popsize=cma_popsize(s.budget),
            independent_sampler=optuna.samplers.RandomSampler(seed=s.seed), warn_independent_sampling=False)
    _optuna(s, sampler)


# ============================================================================================== SMAC3


def _smac(s: Search) -> None:
    """SMAC3's BlackBoxFacade through ask/tell (it minimises a cost: the metric, negated when maximised)."""
    import logging

    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer
    from smac import BlackBoxFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    logging.getLogger("smac").setLevel(logging.ERROR)
    space = ConfigurationSpace(seed=s.seed)
    for d in s.dims:
        sp, v = d.space, d.baseline
        if sp.choices:
            space.add(Categorical(d.key, list(sp.choices), default=v if v in sp.choices else None))
            continue
        dist = distribution(d)
        lo, hi, log = dist.low, dist.high, dist.log
        dflt = min(max(coordinate(d, float(v)), lo), hi)
        if sp.integer:
            space.add(Integer(d.key, (int(lo), int(hi)), log=log, default=round(dflt)))
        else:
            space.add(Float(d.key, (float(lo), float(hi)), log=log, default=dflt))
    sign = -1.0 if s.goal == "maximize" else 1.0
    with tempfile.TemporaryDirectory(prefix="bench-smac-") as out:
        scenario = Scenario(space, deterministic=True, n_trials=s.trials + 1, seed=s.seed, output_directory=out)
        default = space.get_default_configuration()
        design = BlackBoxFacade.get_initial_design(scenario, n_configs=smac_initial(s.budget),
                                                   additional_configs=[default])
        smac = BlackBoxFacade(scenario, target_function=lambda config, seed=0: 0.0, initial_design=design,
                              intensifier=BlackBoxFacade.get_intensifier(scenario, max_config_calls=1),
                              overwrite=True, logging_level=logging.ERROR)
        told_default = s.base_run is None
        worst = math.inf
        spent = 0
        while spent < s.trials:
            info = smac.ask()
            if not told_default and info.config == default:
                told_default, run = True, s.base_run  # the committed configuration already ran as trial 1
            else:
                values = {d.key: info.config[d.key] if d.space.choices
                          else s.snap(d, value_of(d, float(info.config[d.key]))) for d in s.dims}
                run = s.train(values)
                spent += 1
            assert run is not None
            if run["ok"]:
                cost = sign * float(run["metric"])
                worst = cost if not math.isfinite(worst) else max(worst, cost)
                smac.tell(info, TrialValue(cost=cost))
            else:  # a crash or timeout: SMAC's convention, the worst cost seen (a finite number for its model)
                from smac.runhistory.enumerations import StatusType

                smac.tell(info, TrialValue(cost=worst if math.isfinite(worst) else 1e9, status=StatusType.CRASHED))


PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer("random", False, None, _random),
    Peer("random-default", True, None, _random),
    Peer("optuna", False, "optuna", _tpe),
    Peer("tpe-default", True, "optuna", _tpe_default),
    Peer("cmaes", True, "cmaes", _cmaes),
    Peer("smac", True, "smac", _smac),
)}
