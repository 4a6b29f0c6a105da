"""Launch shapes of MLOps repositories.

`mlflow run . -P alpha=0.3`: an MLflow Project's entry point runs the `command:` of its MLproject file with each
`{param}` filled in from `-P`, else from the parameter's `default:`. Before this was read, the command had no entry,
MLproject was not editable and the argparse defaults the command overrides were searched (dead settings). And
rl-zoo's config named by a formatted path (`f"hyperparams/{args.algo}.yml"`) was never editable: nothing was
searched. A gin-config file (`--gin_file=configs/base.gin`) was not read: the `@gin.configurable` defaults it binds
were searched instead."""

from __future__ import annotations

from pathlib import Path

from nightlab.agent import code_reach, measuring, project_init
from nightlab.agent.policy import effective as eff
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.builtin import BuiltinPolicy

from helpers import analysed as _program
from helpers import tracked_repo as _repo

MLPROJECT = """\
name: wine-quality

python_env: python_env.yaml

entry_points:
  main:
    parameters:
      alpha: {type: float, default: 0.5}
      l1_ratio: {type: float, default: 0.1}
      test_size: {type: float, default: 0.25}
    command: "python train.py --alpha {alpha} --l1-ratio {l1_ratio} --test-size {test_size}"
  validate:
    command: "python check.py"
"""
TRAIN = """\
import argparse

import numpy as np
import pandas as pd
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

p = argparse.ArgumentParser()
p.add_argument("--alpha", type=float, default=0.5)
p.add_argument("--l1-ratio", type=float, default=0.5)
p.add_argument("--test-size", type=float, default=0.25)
args = p.parse_args()
data = pd.read_csv("data/wine.csv", sep=";")
train, test = train_test_split(data, test_size=args.test_size, random_state=42)
model = ElasticNet(alpha=args.alpha, l1_ratio=args.l1_ratio, random_state=42)
model.fit(train.drop(columns=["quality"]), train["quality"])
rmse = np.sqrt(mean_squared_error(test["quality"], model.predict(test.drop(columns=["quality"]))))
print(f"rmse={rmse:.4f}")
"""
REPO = {"MLproject": MLPROJECT, "python_env.yaml": "python: '3.10'\n", "train.py": TRAIN,
        "check.py": "print('ok')\n", "data/wine.csv": "a;quality\n1;3\n"}
COMMAND = "mlflow run . -P alpha=0.3 --env-manager local"


def test_mlflow_run_trains_with_the_entry_points_command_and_makes_mlproject_editable(tmp_path: Path) -> None:
    tracked = _repo(tmp_path, REPO)
    reached = code_reach.reach(tmp_path, tracked, COMMAND)
    assert reached.entry == "train.py"
    protected = measuring.protected_files(str(tmp_path), tracked, reached, "rmse")
    editable = project_init.editable_files(tmp_path, tracked, reached, list(protected))
    assert {"train.py", "MLproject"} <= set(editable)
    assert code_reach.reach(tmp_path, tracked, "mlflow run . -e validate").entry == "check.py"


def test_parameters_come_from_p_then_the_defaults_and_shadow_the_scripts_own() -> None:
    knobs = BuiltinPolicy().knobs_in(REPO, command=COMMAND, metric="rmse")
    got = {k: (v.value, v.searchable, v.why_not) for k, v in knobs.items()}
    assert got["--alpha"][1] is False and "command line" in got["--alpha"][2], got
    assert got["--l1-ratio"][1] is False and "MLproject" in got["--l1-ratio"][2], got
    assert got["command:--alpha"][:2] == (0.3, True)
    assert got["MLproject:--l1-ratio"][:2] == (0.1, True)
    program = _program(REPO, COMMAND)
    knob = knobs["MLproject:--l1-ratio"].knob
    assert "l1_ratio: {type: float, default: 0.5}" in eff.rewrite_cli(MLPROJECT, knob, 0.5, program)


def test_the_measurement_parameters_of_mlproject_are_held_in_the_file_and_on_the_command() -> None:
    def guard(old: str, new: str) -> list[str]:
        return measuring.measurement_edits(REPO.get, sorted(REPO), {"MLproject": MLPROJECT.replace(old, new)}, "rmse")

    assert guard("default: 0.25", "default: 0.05") == \
        ["MLproject: entry_points.main.parameters.test_size.default (a setting of the measurement)"]
    assert guard("default: 0.1}", "default: 0.5}") == []
    assert measuring.command_measurement_changes(COMMAND, COMMAND + " -P test_size=0.05") == ["test_size"]


def test_a_project_elsewhere_is_not_read() -> None:
    assert _program(REPO, "mlflow run https://github.com/mlflow/mlflow-example -P alpha=0.3").invocation is None
    assert _program(REPO, "mlflow ui").invocation is None


ZOO = {
    "train.py": '''\
import argparse

import yaml
from stable_baselines3 import A2C, PPO

ALGOS = {"ppo": PPO, "a2c": A2C}
p = argparse.ArgumentParser()
p.add_argument("--algo", default="ppo", choices=list(ALGOS))
p.add_argument("--env", default="CartPole-v1")
args = p.parse_args()
with open(f"hyperparams/{args.algo}.yml") as f:
    hyperparams = yaml.safe_load(f)[args.env]
model = ALGOS[args.algo]("MlpPolicy", args.env, **hyperparams)
model.learn(total_timesteps=10_000)
print(f"mean_reward={evaluate(model):.2f}")
''',
    "hyperparams/ppo.yml": "CartPole-v1:\n  n_steps: 32\n  learning_rate: 0.001\n  n_epochs: 20\n",
    "hyperparams/a2c.yml": "CartPole-v1:\n  n_steps: 8\n  learning_rate: 0.0007\n",
}


def test_a_config_named_by_a_formatted_path_is_reached_and_editable(tmp_path: Path) -> None:
    """rl-zoo's `open(f"hyperparams/{args.algo}.yml")`: every tracked file the pattern may name is reached (so
    init makes it editable); the command's `--algo ppo` picks the one whose knobs are searched."""
    tracked = _repo(tmp_path, ZOO)
    reached = code_reach.reach(tmp_path, tracked, "python train.py --algo ppo")
    assert {"hyperparams/ppo.yml", "hyperparams/a2c.yml"} <= set(reached.files)
    editable = project_init.editable_files(tmp_path, tracked, reached, [])
    assert "hyperparams/ppo.yml" in editable
    knobs = BuiltinPolicy().knobs_in(ZOO, command="python train.py --algo ppo", metric="mean_reward")
    ppo, a2c = knobs["hyperparams/ppo.yml:CartPole-v1.learning_rate"], knobs["hyperparams/a2c.yml:CartPole-v1.n_steps"]
    assert ppo.searchable and ppo.value == 0.001
    assert not a2c.searchable and "not read" in a2c.why_not


GIN_TRAIN = '''\
import gin
import torch
from absl import app, flags
from torch import nn

flags.DEFINE_multi_string("gin_file", None, "Gin files.")
flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings.")
FLAGS = flags.FLAGS


@gin.configurable
def make_model(hidden=128, dropout=0.1):
    return nn.Sequential(nn.Linear(32, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))


@gin.configurable
def train(learning_rate=1e-3, num_epochs=10, val_fraction=0.1):
    model = make_model()
    print(f"val_loss={fit(model, learning_rate, num_epochs, val_fraction):.4f}")


def main(argv):
    gin.parse_config_files_and_bindings(FLAGS.gin_file, FLAGS.gin_bindings)
    train()


if __name__ == "__main__":
    app.run(main)
'''
GIN = {"train.py": GIN_TRAIN, "configs/base.gin": "train.learning_rate = 3e-4  # Adam\ntrain.num_epochs = 20\n"
       "train.val_fraction = 0.2\nmake_model.hidden = 256\n"}
GIN_COMMAND = "python train.py --gin_file=configs/base.gin --gin_bindings='train.num_epochs=3'"


def test_only_the_section_the_command_picks_is_searched() -> None:
    """rl-zoo's `yaml.safe_load(f)[args.env]`: a hyperparameter file holds a section per environment and the run
    reads one, the `--env` of the command or the option's default; the others are shown, never searched."""
    files = {**ZOO, "hyperparams/ppo.yml": ZOO["hyperparams/ppo.yml"]
             + "Pendulum-v1:\n  n_steps: 1024\n  learning_rate: 0.0003\n  gamma: 0.9\n"}
    # (a key the two files share is named with its file's path: `hyperparams/ppo.yml:CartPole-v1.learning_rate`)
    cart, pend = "hyperparams/ppo.yml:CartPole-v1.learning_rate", "Pendulum-v1.learning_rate"
    for command, picked, other in (("python train.py --algo ppo --env Pendulum-v1", pend, cart),
                                   ("python train.py --algo ppo", cart, pend)):
        knobs = BuiltinPolicy().knobs_in(files, command=command, metric="mean_reward")
        assert knobs[picked].searchable, command
        section = picked.rsplit(":", 1)[-1].split(".")[0]
        assert not knobs[other].searchable and f"read under {section} only" in knobs[other].why_not, command
    # a file read whole, or by a constant key beside the picked one, keeps every section
    whole = {**files, "train.py": files["train.py"].replace(
        "hyperparams = yaml.safe_load(f)[args.env]",
        "every = yaml.safe_load(f)\n    hyperparams = {**every.get(\"defaults\", {}), **every[args.env]}")}
    knobs = BuiltinPolicy().knobs_in(whole, command="python train.py --algo ppo", metric="mean_reward")
    assert knobs["Pendulum-v1.learning_rate"].searchable
    assert _program(files, "python train.py --algo ppo --env MountainCar-v0").config("hyperparams/ppo.yml") \
        .section == ""  # a value no section is named for picks none


def test_a_gin_file_binds_over_the_configurable_defaults_and_the_command_s_bindings_over_both(tmp_path: Path) -> None:
    tracked = _repo(tmp_path, GIN)
    reached = code_reach.reach(tmp_path, tracked, GIN_COMMAND)
    assert "configs/base.gin" in project_init.editable_files(tmp_path, tracked, reached, [])
    knobs = BuiltinPolicy().knobs_in(GIN, command=GIN_COMMAND, metric="val_loss")
    got = {k: (v.value, v.searchable, v.why_not) for k, v in knobs.items()}
    assert got["configs/base.gin:train.learning_rate"][:2] == (3e-4, True), got
    assert got["configs/base.gin:make_model.hidden"][:2] == (256, True)
    assert "gin binds it" in got["train.py:train.learning_rate"][2]
    assert "--gin_bindings" in got["configs/base.gin:train.num_epochs"][2]
    assert "--gin_bindings" in got["train.py:train.num_epochs"][2]
    knob = knobs["configs/base.gin:train.learning_rate"].knob
    assert "train.learning_rate = 1e-3  # Adam" in knobmod.rewrite(GIN["configs/base.gin"], knob, 1e-3)


def test_a_gin_file_s_measurement_bindings_are_held() -> None:
    def guard(old: str, new: str) -> list[str]:
        gin = GIN["configs/base.gin"]
        return measuring.measurement_edits(GIN.get, sorted(GIN), {"configs/base.gin": gin.replace(old, new)},
                                           "val_loss")

    assert guard("train.val_fraction = 0.2", "train.val_fraction = 0.02") == \
        ["configs/base.gin: train.val_fraction (a setting of the measurement)"]
    assert guard("make_model.hidden = 256", "make_model.hidden = 512") == []


def test_a_gin_file_the_code_parses_by_name_is_read_too() -> None:
    code = GIN_TRAIN.replace("gin.parse_config_files_and_bindings(FLAGS.gin_file, FLAGS.gin_bindings)",
                             'gin.parse_config_file("configs/base.gin")')
    knobs = BuiltinPolicy().knobs_in(dict(GIN, **{"train.py": code}), command="python train.py", metric="val_loss")
    assert knobs["configs/base.gin:train.num_epochs"].searchable
    assert "gin binds it" in knobs["train.py:train.num_epochs"].why_not
    assert knobs["make_model.dropout"].searchable  # a default no binding sets
