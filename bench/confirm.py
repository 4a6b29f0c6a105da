"""How often the engine keeps a real gain, and a non-gain, under the seed noise of a real repository.

    python bench/confirm.py [--trials 200] [--json FILE]

No training runs: the engine's own verdict code (`Engine._verdict`: the noise floor, the first-run test, the
confirming re-run and its test) judges simulated runs, one fresh store per trial. A run's metric is

    y(config, seed) = mu(config) + a(seed) + e(config, seed)

where a(seed) is what configurations run with the same seed share (initialisation, batch order) — a share rho of the
seed noise — and e is the rest. How much is shared depends on the change: measured on nanoGPT (shakespeare_char,
CPU config) along the acceptance run's path at seeds 1337–1339 (`NANO_GRID`; train.py's `torch.manual_seed(1337 +
…)` changed by hand, one thread), a learning-rate change shares most of it and a change of width or of the schedule's
length almost none. The simulation is run for rho 0 (independent runs: the case the old floor was made for), 0.8
and 0.98; gains are in units of the between-seed sd.

Each trial: the baseline at seeds 0 and 1 (the noise run), then a candidate whose true effect is `gain` × the
between-seed sd, judged at seed 0 and, if it passes, confirmed at seed 1 — right after the baseline, or after two
confirmed improvements (when the engine has measured same-seed spreads). Printed per gain: P(kept) and, in
parentheses, the runs spent. Run it with another checkout of nightlab first on PYTHONPATH to compare engines.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()

# val loss at seeds 1337, 1338, 1339 (nanoGPT shakespeare_char CPU config, 300 iterations), measured 2026-12-03 on
# the shared development machine with `python train.py config/train_shakespeare_char_cpu.py <overrides>`
NANO_GRID = {
    "baseline": (2.5246, 2.5233, 2.5090),
    "--n_embd=128": (2.4012, 2.3994, 2.4102),
    "+ --learning_rate=0.003": (2.2584, 2.2576, 2.2779),
    "+ --min_lr=0.0003": (2.2465, 2.2439, 2.2637),
    "+ --lr_decay_iters=900": (2.2390, 2.2260, 2.2255),
}
GAINS = (0.0, 0.5, 1.0, 1.5, 2.0)


def fit(grid: dict[str, tuple[float, ...]]) -> tuple[float, list[tuple[str, float, float]]]:
    """The pooled between-seed sd of one configuration, and for each change along the path (a configuration and the
    next) the sd of its same-seed differences and the share of the seed noise the two configurations share:
    rho = 1 − var(difference) / (2 var(seed)), clipped to [0, 1]."""
    rows = list(grid.items())
    sd = math.sqrt(statistics.fmean(statistics.variance(v) for _, v in rows))
    out = []
    for (_, a), (name, b) in itertools.pairwise(rows):
        d = [y - x for x, y in zip(a, b, strict=True)]
        sd_d = statistics.stdev(d)
        out.append((name, sd_d, min(1.0, max(0.0, 1 - sd_d ** 2 / (2 * sd ** 2)))))
    return sd, out


def _repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text("print('loss 1.0')\n")
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x",
           "PATH": "/usr/bin:/bin"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)
    return root


def trial(repo: Path, store_path: Path, run: Any, gain: float, later: bool) -> tuple[bool, int]:
    """One candidate judged by a fresh engine: (kept, runs it cost)."""
    from nightlab.agent.config import MetricConfig, ProjectConfig
    from nightlab.agent.engine import Engine, EngineOptions
    from nightlab.agent.store import Store

    cfg = ProjectConfig(command="python train.py --seed {seed}", metric=MetricConfig(name="loss", goal="minimize"))
    eng = Engine(repo, cfg, options=EngineOptions(mode="autonomous", budget=100), store=Store(store_path))
    eng.session = eng._open_session()

    takes_failure = len(inspect.signature(eng._verdict).parameters) > 1  # engines before the rooms took one more

    def finish(e: Any, metric: float) -> Any:
        eng.store.update_experiment(e.id, status="succeeded", run_result="succeeded", metric=metric, settled=1)
        e = eng.store.experiment(e.id)
        if takes_failure:
            eng._verdict(e, None)  # type: ignore[call-arg]
        else:
            eng._verdict(e)
        return eng.store.experiment(e.id)

    def queued(of: int) -> list[Any]:
        return [x for x in eng.store.experiments("status = 'queued'") if x.rerun_of == of]

    def experiment(parent: int | None, mu: float, kind: str = "hyperparameter") -> Any:
        e = eng.store.add_experiment(session_id=eng.sid, parent_id=parent, kind=kind, status="running", seed=0,
                                     title=kind, commit_sha=None)
        e = finish(e, run(mu, 0))
        for r in queued(e.id):
            finish(r, run(mu, r.seed))
        return eng.store.experiment(e.id)

    base = experiment(None, 0.0, "baseline")
    parent, mu = base.id, 0.0
    if later:  # two clear improvements first: the engine has confirmed, same-seed comparisons to learn from
        for _ in range(2):
            mu -= 5.0
            parent = experiment(parent, mu).id
    e = experiment(parent, mu - gain)
    spent = 1 + len([x for x in eng.store.experiments() if x.rerun_of == e.id])
    eng.store.close()
    return e.status == "kept", spent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    sd, changes = fit(NANO_GRID)
    print(f"nanoGPT: one configuration's runs spread by sd {sd:.4f} across seeds; same-seed differences of a change:")
    for name, sd_d, rho in changes:
        print(f"  {name:28s} sd {sd_d:.4f}  (shared share of the seed noise rho = {rho:.2f})")
    import nightlab

    print(f"engine: {Path(nightlab.__file__).resolve().parent}")
    models = {"rho 0 (independent runs)": 0.0, "rho 0.8 (like the lr change)": 0.8,
              "rho 0.98 (like the min_lr change)": 0.98}
    out: dict[str, Any] = {"sd": sd, "changes": changes, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        repo = _repo(Path(tmp) / "repo")
        for name, rho in models.items():
            a, e_sd = math.sqrt(rho), math.sqrt(1 - rho)
            for later in (False, True):
                cells = []
                for g in GAINS:
                    rng = random.Random(f"{name}:{later}:{g}")
                    kept = spent = 0
                    for i in range(args.trials):
                        seed_effect = [rng.gauss(0, a) for _ in range(8)]

                        def run(mu: float, seed: int, se: list[float] = seed_effect, r: random.Random = rng,
                                own: float = e_sd) -> float:
                            return round(10 + mu + se[seed] + r.gauss(0, own), 6)

                        db = Path(tmp) / f"trial-{len(out['rows'])}-{i}.db"
                        k, n = trial(repo, db, run, g, later)
                        for f in Path(tmp).glob(f"{db.name}*"):
                            f.unlink()
                        kept += k
                        spent += n
                    cells.append((g, kept / args.trials, spent / args.trials))
                    out["rows"].append({"model": name, "later": later, "gain": g, "kept": kept / args.trials,
                                        "runs": spent / args.trials})
                label = f"{name}, {'after two confirmed gains' if later else 'right after the baseline'}"
                print(f"{label:62s} " + "  ".join(f"{g:.1f}: {p:.2f} ({r:.1f})" for g, p, r in cells))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
