"""DVC pipelines as the launch command: `dvc repro [STAGE]` and `dvc exp run [STAGE] [-S key=value]`.

nightlab reads dvc.yaml the way it reads a Makefile: the `cmd:` of the stages DVC runs are the recipe's lines, in
the order DVC runs them (a stage whose outputs another depends on runs first), so `init` finds the training script
among them, protects the data preparation and evaluation scripts around it, and lets params.yaml be edited; a
`-S train.n_est=100` on the command sets params.yaml's key for that run, so it shadows the file's value. Each test
writes a small repository of the DVC "example-get-started" shape itself (a git repository where `init` reads one).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from nightlab.agent import code_reach, measuring, project_init
from nightlab.agent.policy import effective as eff
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.task_runners import recipes_for

from helpers import analysed as _program
from helpers import tracked_repo as _repo

DVC_YAML = '''\
stages:
  prepare:
    cmd: python src/prepare.py data/data.csv
    deps:
      - data/data.csv
      - src/prepare.py
    params:
      - prepare.split
      - prepare.seed
    outs:
      - data/prepared
  train:
    cmd: python src/train.py data/prepared model.pkl
    deps:
      - data/prepared
      - src/train.py
    params:
      - train.seed
      - train.n_est
      - train.max_depth
    outs:
      - model.pkl
  evaluate:
    cmd: python src/evaluate.py model.pkl data/prepared
    deps:
      - model.pkl
      - src/evaluate.py
    metrics:
      - eval/metrics.json:
          cache: false
'''

PARAMS = '''\
prepare:
  split: 0.20
  seed: 20170428

train:
  seed: 20170428
  n_est: 50
  max_depth: 12
'''

PREPARE = '''\
import os
import random
import sys

import pandas as pd
import yaml

params = yaml.safe_load(open("params.yaml"))["prepare"]
split = params["split"]
random.seed(params["seed"])

df = pd.read_csv(sys.argv[1])
output = "data/prepared"
os.makedirs(output, exist_ok=True)
mask = [random.random() > split for _ in range(len(df))]
df[mask].to_csv(os.path.join(output, "train.csv"), index=False)
df[[not m for m in mask]].to_csv(os.path.join(output, "test.csv"), index=False)
'''

TRAIN = '''\
import os
import pickle
import sys

import pandas as pd
import yaml
from sklearn.ensemble import RandomForestClassifier

params = yaml.safe_load(open("params.yaml"))["train"]
input_dir, output = sys.argv[1], sys.argv[2]
train = pd.read_csv(os.path.join(input_dir, "train.csv"))
X, y = train.drop(columns=["label"]).values, train["label"].values
clf = RandomForestClassifier(n_estimators=params["n_est"], max_depth=params["max_depth"],
                             random_state=params["seed"])
clf.fit(X, y)
with open(output, "wb") as fd:
    pickle.dump(clf, fd)
'''

EVALUATE = '''\
import json
import os
import pickle
import sys

import pandas as pd
from sklearn import metrics

model_file, input_dir = sys.argv[1], sys.argv[2]
with open(model_file, "rb") as fd:
    model = pickle.load(fd)
test = pd.read_csv(os.path.join(input_dir, "test.csv"))
X, y = test.drop(columns=["label"]).values, test["label"].values
roc_auc = metrics.roc_auc_score(y, model.predict_proba(X)[:, 1])
os.makedirs("eval", exist_ok=True)
with open("eval/metrics.json", "w") as fd:
    json.dump({"roc_auc": roc_auc}, fd)
print(f"roc_auc={roc_auc:.4f}")
'''

REPO = {"dvc.yaml": DVC_YAML, "params.yaml": PARAMS, "src/prepare.py": PREPARE, "src/train.py": TRAIN,
        "src/evaluate.py": EVALUATE, "data/data.csv": "a,b,label\n1,2,0\n"}


def _stage_lines(files: Mapping[str, str], command: str) -> list[str]:
    """The command lines `command`'s recipe runs, in order, with the folder each starts in."""
    recipes = recipes_for(command.split(), lambda p: files.get(p, ""), lambda p: p in files)
    assert len(recipes) <= 1
    return [f"{r.line_cwd(k) or '.'}: {r.expand(*span)[0]}" for r in recipes for k, span in enumerate(r.lines)]


@pytest.mark.parametrize("command", ["dvc repro", "dvc repro train", "dvc exp run", "dvc exp run -S train.n_est=100",
                                     "dvc repro dvc.yaml:train", "dvc experiments run evaluate",
                                     "dvc repro -f 2>&1 | tee repro.log"])
def test_dvc_repro_trains_with_the_train_stage_and_protects_the_stages_around_it(tmp_path: Path,
                                                                                  command: str) -> None:
    """`dvc repro` ran no Python nightlab could see: no entry, so prepare.py and evaluate.py were editable with no
    guard and params.yaml, which holds every hyperparameter, was not editable. The stages' commands are read like
    the chain `python src/prepare.py && python src/train.py && python src/evaluate.py`."""
    tracked = _repo(tmp_path, REPO)
    reached = code_reach.reach(tmp_path, tracked, command)
    assert reached.entry == "src/train.py"
    protected = measuring.protected_files(str(tmp_path), tracked, reached, "roc_auc")
    runs_evaluate = command not in ("dvc repro train", "dvc repro dvc.yaml:train")  # (the stage after train)
    assert ("src/evaluate.py" in protected) == runs_evaluate
    assert "src/prepare.py" in protected
    editable = project_init.editable_files(tmp_path, tracked, reached, list(protected))
    assert {"src/train.py", "params.yaml", "dvc.yaml"} <= set(editable)
    assert not {"src/prepare.py", "src/evaluate.py"} & set(editable)
    knobs = BuiltinPolicy().knobs_in(REPO, command=command)
    assert knobs["train.max_depth"].searchable and knobs["train.max_depth"].value == 12


def test_stages_run_upstream_first_whatever_the_file_s_order() -> None:
    """DVC runs a stage after the stages whose outputs it depends on; a named stage brings its upstream stages,
    `-s` runs it alone and `--downstream` runs it and the stages after it."""
    body = DVC_YAML.removeprefix("stages:\n")
    at_train, at_evaluate = body.index("  train:\n"), body.index("  evaluate:\n")
    prepare_s, train_s, evaluate_s = body[:at_train], body[at_train:at_evaluate], body[at_evaluate:]
    files = {**REPO, "dvc.yaml": "stages:\n" + evaluate_s + train_s + prepare_s}
    assert files["dvc.yaml"].index("evaluate:") < files["dvc.yaml"].index("prepare:")
    prepare = ".: python src/prepare.py data/data.csv"
    train = ".: python src/train.py data/prepared model.pkl"
    evaluate = ".: python src/evaluate.py model.pkl data/prepared"
    assert _stage_lines(files, "dvc repro") == [prepare, train, evaluate]
    assert _stage_lines(files, "dvc repro train") == [prepare, train]
    assert _stage_lines(files, "dvc repro -s train") == [train]
    assert _stage_lines(files, "dvc repro --downstream train") == [train, evaluate]
    assert _program(files, "dvc repro").invocation.entry == "src/train.py"  # type: ignore[union-attr]


@pytest.mark.parametrize("command", ["dvc push", "dvc pull data", "dvc repro other", "dvc exp show"])
def test_dvc_commands_that_run_no_stage_find_nothing(command: str) -> None:
    assert _stage_lines(REPO, command) == []
    assert _program(REPO, command).invocation is None


@pytest.mark.parametrize(("command", "knob", "edited"), [
    ("dvc exp run -S train.n_est=100", "command:train.n_est", "dvc exp run -S train.n_est=200"),
    ("dvc exp run --set-param train.n_est=100 train", "command:train.n_est",
     "dvc exp run --set-param train.n_est=200 train"),
    ("dvc exp run --set-param='train.n_est=100'", "command:train.n_est", "dvc exp run --set-param='train.n_est=200'"),
    ("dvc exp run -S 'train.n_est=100' -S prepare.split=0.2", "command:train.n_est",
     "dvc exp run -S 'train.n_est=200' -S prepare.split=0.2"),
    ("dvc exp run -S params.yaml:train.n_est=100", "command:train.n_est",
     "dvc exp run -S params.yaml:train.n_est=200"),
])
def test_a_set_param_on_the_command_is_the_setting_and_shadows_params_yaml(command: str, knob: str,
                                                                          edited: str) -> None:
    """`-S train.n_est=100` was ignored: params.yaml's `n_est: 50`, which the run never uses, was searched. It is a
    setting on the command line now, edited there, and the file's key is overridden by it."""
    knobs = BuiltinPolicy().knobs_in(REPO, command=command)
    assert knobs[knob].value == 100 and knobs[knob].searchable
    assert knobs["train.n_est"].why_not == "overridden by train.n_est on the command line"
    assert knobs["train.max_depth"].searchable
    program = _program(REPO, command)
    cli = {k.name: k for k in eff.cli_knobs(program)}
    assert cli[knob].path == eff.COMMAND_PATH
    assert eff.rewrite_cli(command, cli[knob], 200, program) == edited


def test_a_set_param_of_another_params_file_shadows_nothing() -> None:
    """`-S conf.yaml:n_est=100` sets conf.yaml's key, not params.yaml's: params.yaml's `train.n_est` still holds."""
    knobs = BuiltinPolicy().knobs_in(REPO, command="dvc exp run -S conf.yaml:train.n_est=100")
    assert knobs["train.n_est"].searchable and knobs["train.n_est"].why_not == ""
    assert not any(name.startswith("command:") for name in knobs)


WDIR_YAML = '''\
stages:
  featurize:
    cmd:
      - python featurize.py ../data/data.csv
      - "python featurize.py --check"
    wdir: src
    deps: [../data/data.csv]
    outs: [../data/features]
  train:
    cmd: >-
      python train.py ../data/features
      --epochs 5 --lr 0.01
    wdir: src
    deps: [../data/features, train.py]
    outs: [../model.pt]
'''

ARGPARSE_TRAIN = '''\
import argparse
import sys

p = argparse.ArgumentParser()
p.add_argument("features")
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--lr", type=float, default=1e-3)
args = p.parse_args()
for epoch in range(args.epochs):
    loss = 1.0 / (epoch + 1) * args.lr
print(f"val_loss {loss:.4f}")
'''


def test_a_stage_s_wdir_list_and_folded_command_are_read_as_dvc_runs_them(tmp_path: Path) -> None:
    """`wdir: src` runs the stage's commands in src (so `python train.py` is src/train.py), a list `cmd:` is one
    command per item, and a folded `>-` command is one line: its `--epochs 5` beats the argparse default and is
    edited in dvc.yaml."""
    files = {"dvc.yaml": WDIR_YAML, "src/train.py": ARGPARSE_TRAIN, "src/featurize.py": "import sys\nprint(1)\n",
             "data/data.csv": "a\n1\n"}
    assert _stage_lines(files, "dvc repro") == [
        "src: python featurize.py ../data/data.csv", "src: python featurize.py --check",
        "src: python train.py ../data/features --epochs 5 --lr 0.01"]
    tracked = _repo(tmp_path, files)
    assert code_reach.reach(tmp_path, tracked, "dvc repro").entry == "src/train.py"
    knobs = BuiltinPolicy().knobs_in(files, command="dvc repro")
    assert knobs["dvc.yaml:--epochs"].value == 5 and knobs["dvc.yaml:--epochs"].searchable
    assert knobs["--epochs"].why_not == "overridden by --epochs on dvc.yaml"
    program = _program(files, "dvc repro")
    cli = {k.name: k for k in eff.cli_knobs(program)}
    assert "      --epochs 8 --lr 0.01\n" in eff.rewrite_cli(WDIR_YAML, cli["dvc.yaml:--epochs"], 8, program)
