"""Real-shaped repositories through the whole loop: the builtin policy, the engine, git worktrees, the job wrapper.

Each repository is written in a shape real training code takes and ../shared/tasks does not: nanoGPT's exec'd
config (configurator.py) with a seed fixed in the code, an argparse script whose command passes the flags, a package
run with ``-m`` whose settings live in a dataclass, a Hydra app, a deterministic script that seeds nothing, a script
that overrides its own dataclass default. Every test asserts that the edits land where the setting takes effect
and that the metric moves. The "training" is a few lines of arithmetic with a seeded wobble: fast, no torch.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from nightlab.agent.config import MetricConfig, ProjectConfig, dump_config, load_config
from nightlab.agent.engine import Engine, EngineOptions
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.store import Experiment

from helpers import git, make_repo

# prints a loss curve and a final metric from `loss_at(t)` (t in 0..1 of training) the script defines
CURVE = '''
def report(final, steps, name, noise):
    for i in range(0, 6):
        t = i / 5
        print(f"iter {int(t * steps)}: loss {final + (1 - t) ** 2 * 2 + noise:.4f}, time {12.5 + i:.2f}ms")
    print(f"step {steps}: train loss {final - 0.05 + noise:.4f}, {name} {final + noise:.4f}")
'''


def _project(path: Path, files: dict[str, str], command: str, metric: str, goal: str, editable: list[str],
             commit_config: bool = True) -> Path:
    repo = make_repo(path, files)
    cfg = ProjectConfig(command=command, metric=MetricConfig(name=metric, goal=goal), editable=editable,
                        timeout=60)
    (repo / "nightlab.toml").write_text(dump_config(cfg))
    if commit_config:
        git(repo, "add", "nightlab.toml")
        git(repo, "commit", "-q", "-m", "nightlab config")
    return repo


def _run(repo: Path, budget: int) -> Engine:
    eng = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=budget),
                 policy=BuiltinPolicy())
    eng.run()
    return eng


def _hypotheses(eng: Engine) -> list[Experiment]:
    return [e for e in eng.store.experiments() if e.kind not in ("baseline", "rerun") and e.status != "rejected"]


def _baseline_metric(eng: Engine) -> float:
    base = eng.ledger.baseline()
    assert base is not None and base.metric is not None
    return base.metric


def _changed(e: Experiment) -> str:
    """The lines an experiment's patch removes or adds (not its context)."""
    return "\n".join(ln for ln in (e.patch or "").splitlines()
                     if ln[:1] in "+-" and not ln.startswith(("+++", "---")))


def _events(eng: Engine, kind: str) -> list[str]:
    return [ev["message"] for ev in eng.store.events() if ev["kind"] == kind]


# ----------------------------------------------------------------------------------------------- nanoGPT's shape

GPT_TRAIN = '''\
import math
import random
from model import Config
out_dir = 'out'
eval_interval = 2000
learning_rate = 6e-4 # max learning rate
max_iters = 600000
lr_decay_iters = 600000
batch_size = 12
weight_decay = 1e-1
config_keys = [k for k, v in globals().items() if not k.startswith('_')]
exec(open('configurator.py').read())
random.seed(1337)
cfg = Config(batch_size=batch_size)
''' + CURVE + '''
schedule = min(1.0, lr_decay_iters / max_iters)
progress = learning_rate * max_iters * math.sqrt(cfg.batch_size) / 4 * schedule
final = 1.0 + 2.0 * math.exp(-progress) + 0.3 * abs(math.log10(learning_rate / 3e-3))
report(final, max_iters, "val loss", random.uniform(-0.004, 0.004))
'''
GPT_MODEL = "from dataclasses import dataclass\n\n@dataclass\nclass Config:\n    batch_size: int = 64\n"
GPT_CONFIGURATOR = '''\
import sys
from ast import literal_eval
for arg in sys.argv[1:]:
    if '=' not in arg:
        exec(open(arg).read())
    else:
        key, val = arg.split('=')
        globals()[key[2:]] = literal_eval(val)
'''
GPT_CONFIG = "# a small run\nlearning_rate = 1e-3\nmax_iters = 300\nlr_decay_iters = 300\nbatch_size = 16\n"


def test_execd_config_edits_land_in_the_config_file_and_the_fixed_seed_is_varied_in_code(tmp_path: Path) -> None:
    repo = _project(tmp_path / "gpt", {"train.py": GPT_TRAIN, "model.py": GPT_MODEL,
                                       "configurator.py": GPT_CONFIGURATOR, "config/small.py": GPT_CONFIG,
                                       "config/large.py": GPT_CONFIG.replace("300", "5000")},
                    f"{sys.executable} train.py config/small.py", "val loss", "minimize",
                    ["train.py", "model.py", "config/*.py"])
    eng = _run(repo, budget=6)
    # seeds: the code fixes its own (random.seed(1337)); the noise run changes that literal on its own commit
    assert any("fixed in the code" in m and "random.seed(1337)" in m for m in _events(eng, "seeding"))
    base = eng.ledger.baseline()
    assert base is not None
    noise = next(e for e in eng.store.experiments() if e.rerun_of == base.id)
    assert noise.commit_sha != base.commit_sha and "+random.seed(1338)" in (noise.patch or "")
    hyps = _hypotheses(eng)
    assert hyps
    for e in hyps:
        assert "config/small.py" in (e.patch or "") or e.command, e.title
        # never a default that the config overrides, never the config the command does not name
        assert "learning_rate = 6e-4" not in _changed(e) and "config/large.py" not in (e.patch or "")
        assert e.status != "no_effect", e.title
    # more iterations move the schedule with them (lr_decay_iters had the same value as max_iters)
    for e in hyps:
        if "+max_iters" in (e.patch or ""):
            assert "+lr_decay_iters" in (e.patch or ""), e.patch
    _best_id, best = eng.ledger.best()
    assert best is not None and best < _baseline_metric(eng) - 0.1  # the metric moved


# ----------------------------------------------------------------------------------------------- argparse + flags

LSTM_MAIN = '''\
import argparse
import math
import random
parser = argparse.ArgumentParser(description='word-level language model')
parser.add_argument('--lr', type=float, default=20, help='initial learning rate')
parser.add_argument('--epochs', type=int, default=40, help='upper epoch limit')
parser.add_argument('--nhid', type=int, default=200, help='number of hidden units per layer')
parser.add_argument('--seed', type=int, default=1111, help='random seed')
args = parser.parse_args()
random.seed(args.seed)
''' + CURVE + '''
fit = 1.5 * math.exp(-0.6 * args.epochs) + 0.2 * abs(math.log10(args.lr / 5)) + 0.5 * math.exp(-args.nhid / 32)
report(4.0 + fit, args.epochs, "test loss", random.uniform(-0.003, 0.003))
'''


def test_flags_on_the_command_line_are_changed_in_the_experiments_command_and_promoted(tmp_path: Path) -> None:
    command = f"{sys.executable} main.py --epochs 1 --nhid 16 --lr 1 --seed {{seed}}"
    repo = _project(tmp_path / "lstm", {"main.py": LSTM_MAIN}, command, "test loss", "minimize", ["main.py"])
    eng = _run(repo, budget=6)
    hyps = _hypotheses(eng)
    assert hyps
    for e in hyps:
        # --epochs/--lr/--nhid are set on the command line: their argparse defaults are dead
        assert not e.patch or not any(w in e.patch for w in ("default=40", "default=20", "default=200")), e.patch
        assert e.command and e.command != command and "--seed {seed}" in e.command, e.title
        assert e.status != "no_effect", e.title
    best_id, best = eng.ledger.best()
    assert best_id is not None and best is not None and best < _baseline_metric(eng) - 0.1
    best_exp = eng.store.experiment(best_id)
    assert best_exp.command
    # the diff shows the command; promote carries it into the tracked nightlab.toml, in one commit
    diff = subprocess.run([sys.executable, "-m", "nightlab", "-C", str(repo), "diff", str(best_id), "--base"],
                          capture_output=True, text=True, timeout=60)
    assert diff.returncode == 0, diff.stderr
    assert f"- {command}" in diff.stdout and f"+ {best_exp.command}" in diff.stdout
    prom = subprocess.run([sys.executable, "-m", "nightlab", "-C", str(repo), "promote", str(best_id), "--yes"],
                          capture_output=True, text=True, timeout=60)
    assert prom.returncode == 0, prom.stderr
    assert tomllib.loads((repo / "nightlab.toml").read_text())["command"] == best_exp.command
    assert git(repo, "status", "--porcelain").strip() == ""
    assert "Run it with:" in git(repo, "log", "-1", "--format=%B")


# ----------------------------------------------------------------------------------------------- package, -m

PKG_FILES = {
    "src/fitlib/__init__.py": "",
    "src/fitlib/settings.py": "from dataclasses import dataclass\n\n\n@dataclass\nclass TrainSettings:\n"
                              "    learning_rate: float = 0.01\n    epochs: int = 2\n    hidden_units: int = 8\n",
    "src/fitlib/train.py": '''\
import math
import random

from fitlib.settings import TrainSettings
from fitlib.models.mlp import capacity
''' + CURVE + '''

def main():
    s = TrainSettings()
    random.seed(0)
    fit = math.exp(-s.epochs / 2) + 0.3 * abs(math.log10(s.learning_rate / 0.1)) + capacity(s.hidden_units)
    report(0.5 + fit, s.epochs, "val_loss", random.uniform(-0.002, 0.002))


if __name__ == "__main__":
    main()
''',
    "src/fitlib/models/__init__.py": "",
    "src/fitlib/models/mlp.py": "import math\n\n\ndef capacity(width, depth=2):\n"
                                "    return 0.4 * math.exp(-width * depth / 64)\n",
    "scripts/sweep.py": "LEARNING_RATE = 0.5\nEPOCHS = 100\n",
}


def test_a_package_run_with_dash_m_is_tuned_in_its_settings_dataclass(tmp_path: Path) -> None:
    repo = _project(tmp_path / "pkg", PKG_FILES, "PYTHONPATH=src python -m fitlib.train", "val_loss", "minimize",
                    ["src/**/*.py", "scripts/*.py"])
    eng = _run(repo, budget=6)
    hyps = _hypotheses(eng)
    assert hyps
    for e in hyps:
        assert "scripts/sweep.py" not in (e.patch or ""), e.title  # a script the command never runs
        assert e.status != "no_effect", e.title
    assert any("src/fitlib/settings.py" in (e.patch or "") for e in hyps)
    _, best = eng.ledger.best()
    assert best is not None and best < _baseline_metric(eng) - 0.05


# ----------------------------------------------------------------------------------------------- Hydra

HYDRA_TRAIN = '''\
import math
import random

import hydra
''' + CURVE + '''

@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg):
    random.seed(cfg.seed)
    fit = 1.2 * math.exp(-cfg.trainer.epochs / 3) + 0.3 * abs(math.log10(cfg.optim.lr / 0.2))
    report(1.0 + fit, cfg.trainer.epochs, "val_loss", random.uniform(-0.002, 0.002))


if __name__ == "__main__":
    main()
'''


@pytest.mark.skipif(importlib.util.find_spec("hydra") is None, reason="hydra-core is not installed")
def test_hydra_yaml_and_key_value_overrides_are_edited_where_they_take_effect(tmp_path: Path) -> None:
    files = {"train.py": HYDRA_TRAIN,
             "conf/config.yaml": "defaults:\n  - optim: sgd\n  - _self_\nseed: 0\ntrainer:\n  epochs: 5\n",
             "conf/optim/sgd.yaml": "lr: 0.01\nmomentum: 0.9\n", "conf/optim/adam.yaml": "lr: 0.001\n"}
    command = f"{sys.executable} train.py trainer.epochs=1 hydra.run.dir=. hydra.output_subdir=null"
    repo = _project(tmp_path / "hy", files, command, "val_loss", "minimize", ["train.py", "conf/**/*.yaml"])
    eng = _run(repo, budget=6)
    # seeds: a `seed` key of the composed config, set on the command line for re-runs
    assert any("seed=N" in m for m in _events(eng, "seeding"))
    hyps = _hypotheses(eng)
    assert hyps
    for e in hyps:
        patch = e.patch or ""
        assert "conf/optim/adam.yaml" not in patch  # the group option Hydra does not select
        assert "epochs: 5" not in patch  # the YAML value the command line overrides
        assert e.status != "no_effect", e.title
    _, best = eng.ledger.best()
    assert best is not None and best < _baseline_metric(eng) - 0.1


# ----------------------------------------------------------------------------------------------- config objects

FIELD_CONFIG = '''\
"""Default hyperparameters, set field by field as ml_collections' get_config() does."""
import types


def get_config():
    config = types.SimpleNamespace()
    config.learning_rate = 0.002
    config.num_epochs = 4
    config.log_every_steps = 50
    config.seed = 0
    return config
'''
FIELD_TRAIN = '''\
import argparse
import math
import random

from configs.default import get_config


def train(config, noise):
    fit = 1.2 * math.exp(-config.num_epochs / 3) + 0.3 * abs(math.log10(config.learning_rate / 0.05))
    for i in range(6):
        print(f"iter {i * 10}: loss {1.0 + fit + (1 - i / 5) ** 2 * 2 + noise:.4f}")
    return 1.0 + fit + noise


config = get_config()
ap = argparse.ArgumentParser()
ap.add_argument("--seed", type=int, default=config.seed)
random.seed(ap.parse_args().seed)
val_loss = train(config, random.uniform(-0.002, 0.002))
print(f"epoch {config.num_epochs}: val_loss {val_loss:.4f} lr {config.learning_rate}")
'''


def test_a_config_object_set_field_by_field_is_tuned_where_its_fields_are_set(tmp_path: Path) -> None:
    """ml_collections' `config.learning_rate = 0.1` inside get_config() (detectron2's `cfg.SOLVER.BASE_LR = ...`
    is the same shape): the fields are knobs, edited where they are set; logging and the seed are left alone. The
    learning rate printed beside the metric does not make get_config() evaluation code (it did: every setting in it
    was frozen as "defined in fixed code")."""
    files = {"train.py": FIELD_TRAIN, "configs/__init__.py": "", "configs/default.py": FIELD_CONFIG}
    repo = _project(tmp_path / "fields", files, f"{sys.executable} train.py --seed {{seed}}", "val_loss", "minimize",
                    ["train.py", "configs/*.py"])
    eng = _run(repo, budget=6)
    hyps = _hypotheses(eng)
    assert hyps
    for e in hyps:
        assert e.status != "no_effect", e.title
        assert "log_every_steps" not in _changed(e) and "config.seed" not in _changed(e)
    assert any("configs/default.py" in (e.patch or "") and "+    config.num_epochs = " in _changed(e) for e in hyps)
    _, best = eng.ledger.best()
    assert best is not None and best < _baseline_metric(eng) - 0.1


TOML_TRAIN = '''\
import argparse
import math
import random
import tomllib

ap = argparse.ArgumentParser()
ap.add_argument("--config", default="configs/base.toml")
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()
with open(args.config, "rb") as f:
    cfg = tomllib.load(f)
random.seed(args.seed)
lr, epochs = cfg["optimizer"]["lr"], cfg["training"]["epochs"]
fit = 1.2 * math.exp(-epochs / 3) + 0.3 * abs(math.log10(lr / 0.05))
for i in range(6):
    print(f"iter {i * 10}: loss {1.0 + fit + (1 - i / 5) ** 2 * 2:.4f}")
print(f"val_loss {1.0 + fit + random.uniform(-0.002, 0.002):.4f}")
'''


def test_a_toml_config_the_command_names_is_tuned_in_the_toml(tmp_path: Path) -> None:
    """A TOML config read with tomllib, named on the command line: its settings are knobs, edited in that file (not
    in the default the argparse option names, which the command overrides)."""
    files = {"train.py": TOML_TRAIN, "configs/base.toml": "[optimizer]\nlr = 0.002  # peak\n\n[training]\nepochs = 4\n",
             "configs/small.toml": "[optimizer]\nlr = 0.01\n\n[training]\nepochs = 1\n"}
    repo = _project(tmp_path / "toml", files, f"{sys.executable} train.py --config configs/small.toml --seed {{seed}}",
                    "val_loss", "minimize", ["train.py", "configs/*.toml"])
    eng = _run(repo, budget=4)
    hyps = _hypotheses(eng)
    assert hyps
    for e in hyps:
        assert e.status != "no_effect", e.title
        assert "configs/base.toml" not in (e.patch or "")  # the file the command does not read
        assert "configs/small.toml" in (e.patch or ""), e.title
    _, best = eng.ledger.best()
    assert best is not None and best < _baseline_metric(eng) - 0.1


ENV_TRAIN = '''\
import math
import os
import random
import sys

LR = float(os.environ.get("LR", "0.002"))
EPOCHS = int(os.getenv("EPOCHS", 4))
THREADS = int(os.getenv("TASK_THREADS", 1))
random.seed(int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0)
fit = 1.2 * math.exp(-EPOCHS / 3) + 0.3 * abs(math.log10(LR / 0.05))
for i in range(6):
    print(f"iter {i * 10}: loss {1.0 + fit + (1 - i / 5) ** 2 * 2:.4f}")
print(f"val_loss {1.0 + fit + random.uniform(-0.002, 0.002):.4f}")
'''


def test_settings_read_from_the_environment_are_tuned_at_their_default_unless_the_command_sets_them(
        tmp_path: Path) -> None:
    """`int(os.getenv("EPOCHS", 4))`: a training setting's default in the code is a knob (it was never searched);
    where the program runs (`TASK_THREADS`) is not, nor a variable the command itself sets (`EPOCHS=4 python ...`)."""
    repo = _project(tmp_path / "env", {"train.py": ENV_TRAIN}, f"{sys.executable} train.py --seed {{seed}}",
                    "val_loss", "minimize", ["train.py"])
    eng = _run(repo, budget=4)
    hyps = _hypotheses(eng)
    assert hyps and all(e.status != "no_effect" for e in hyps)
    assert any('os.getenv("EPOCHS", ' in _changed(e) or 'os.environ.get("LR", ' in _changed(e) for e in hyps)
    assert not any("TASK_THREADS" in _changed(e) for e in hyps)
    _, best = eng.ledger.best()
    assert best is not None and best < _baseline_metric(eng) - 0.1

    fixed = _project(tmp_path / "env2", {"train.py": ENV_TRAIN},
                     f"EPOCHS=4 {sys.executable} train.py --seed {{seed}}", "val_loss", "minimize", ["train.py"])
    eng = _run(fixed, budget=3)
    hyps = _hypotheses(eng)
    assert hyps and not any("EPOCHS" in _changed(e) for e in hyps)


# ----------------------------------------------------------------------------------------------- seeds

DETERMINISTIC = '''\
import math
''' + CURVE + '''
LR = 0.002
STEPS = 40
report(1.0 + math.exp(-LR * STEPS * 5) + 0.1 * abs(math.log10(LR / 0.05)), STEPS, "val_loss", 0.0)
'''


def test_a_deterministic_script_without_a_seed_is_measured_by_a_plain_rerun_and_not_confirmed(tmp_path: Path) -> None:
    repo = _project(tmp_path / "det", {"train.py": DETERMINISTIC}, f"{sys.executable} train.py", "val_loss",
                    "minimize", ["train.py"])
    eng = _run(repo, budget=4)
    assert any("takes no seed" in m for m in _events(eng, "seeding"))
    base = eng.ledger.baseline()
    assert base is not None
    noise = next(e for e in eng.store.experiments() if e.rerun_of == base.id)
    assert noise.commit_sha == base.commit_sha and "as it is" in noise.title
    assert any("deterministic" in m for m in _events(eng, "noise"))
    kept = [e for e in _hypotheses(eng) if e.status == "kept"]
    assert kept and all(e.error is None for e in kept)
    assert any("not re-run to confirm: the runs are deterministic" in m for m in _events(eng, "kept"))
    assert not [e for e in eng.store.experiments() if e.kind == "rerun" and e.rerun_of != base.id]
    _, best = eng.ledger.best()
    assert best is not None and best < _baseline_metric(eng) - 0.1


# ----------------------------------------------------------------------------------------------- no effect

OVERRIDDEN = '''\
import math
from dataclasses import dataclass
''' + CURVE + '''

@dataclass
class Config:
    lr: float = 0.5
    epochs: int = 2


def main():
    cfg = Config()
    vars(cfg).update(lr=0.05)  # the code sets its own value after the default, in a way no reading of it sees
    fit = math.exp(-cfg.epochs / 2) + 0.3 * abs(math.log10(cfg.lr / 0.05))
    report(1.0 + fit, cfg.epochs, "val_loss", 0.0)


main()
'''


def test_a_change_that_reaches_nothing_is_recorded_as_no_effect_and_not_tried_again(tmp_path: Path) -> None:
    repo = _project(tmp_path / "ovr", {"train.py": OVERRIDDEN}, f"{sys.executable} train.py", "val_loss", "minimize",
                    ["train.py"])
    eng = _run(repo, budget=7)
    hyps = _hypotheses(eng)
    lr_moves = [e for e in hyps if "lr: float" in _changed(e)]
    assert lr_moves, [e.title for e in hyps]  # the default looked tunable until a run showed otherwise
    dead = next((e for e in lr_moves if e.status == "no_effect"), None)
    assert dead is not None, [(e.title, e.status, e.error) for e in hyps]
    assert "ran exactly like" in (dead.error or "") and "epochs" not in _changed(dead)
    assert all(e.id < dead.id for e in lr_moves if e is not dead)  # never tried again after that run
    assert any(e.status == "kept" and "epochs" in _changed(e) for e in hyps)  # the search moved on
    _, best = eng.ledger.best()
    assert best is not None and best < _baseline_metric(eng) - 0.1


# ----------------------------------------------------------------------------------------------- the pattern move

class _PatternPays:
    """A trained model's view in which every move beyond the builtin's paid, well supported: the learned policy
    then takes the pattern move (policy/learned.py) wherever there is one."""

    @staticmethod
    def make() -> Any:
        from nightlab.agent.policy.scorer import Bound, Scorer

        class Scorer_(Scorer):
            def support_of(self, features: Mapping[str, float]) -> int:
                return 99

            def advantage_bound(self, state: Mapping[str, float], features: Mapping[str, float],
                                z: float) -> Bound | None:
                return Bound(99, 1.0, 0.9) if features.get("m.src.pattern") else None

        base = Scorer.fresh(["m.rank"])
        return Scorer_(features=base.features, u=base.u, w=base.w, b=base.b, v=base.v)


def test_the_learned_policy_s_pattern_move_lands_where_the_setting_takes_effect(tmp_path: Path) -> None:
    """A step that won, taken once more by the same factor, on nanoGPT's shape: the config the command names is
    edited, never the default it overrides. (On the argparse shape above the builtin's own moves already hold every
    pattern move: a flag's next step is the search's too, and the policy does not propose a move twice.)"""
    from nightlab.agent.policy.learned import LearnedPolicy

    repo = _project(tmp_path / "gpt", {"train.py": GPT_TRAIN, "model.py": GPT_MODEL,
                                       "configurator.py": GPT_CONFIGURATOR, "config/small.py": GPT_CONFIG},
                    f"{sys.executable} train.py config/small.py", "val loss", "minimize",
                    ["train.py", "model.py", "config/*.py"])
    eng = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=8),
                 policy=LearnedPolicy(_PatternPays.make(), temperature=0.0))
    eng.run()
    every = {e.id: e for e in eng.store.experiments()}
    patterns = [e for e in every.values() if "step once more" in e.title]
    assert patterns, [e.title for e in every.values()]
    for e in patterns:
        parent = every[e.parent_id] if e.parent_id is not None else None
        assert parent is not None and f"#{parent.id} changed" in e.rationale, e.rationale
        assert e.status != "no_effect", e.title
        assert "config/small.py" in (e.patch or "") and "learning_rate = 6e-4" not in _changed(e), e.patch
