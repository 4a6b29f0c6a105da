"""INI-style configs: Python's configparser files and spaCy's config.cfg.

Before this, a `.cfg` / `.ini` file gave no knob at all: a training script that reads `config.ini` through
configparser (`cfg.getfloat("optim", "lr")`) had nothing to search, and the edit guard did not read such a file, so an
edit that pointed spaCy's `[paths] dev` at the test corpus went through. A spaCy project runs no script of its own
(`python -m spacy train config.cfg --training.max_epochs 5`): the command had no entry, so nothing said which config
the run reads or that the command's dotted flags override its keys, and spaCy's training table (`E  #  LOSS TEXTCAT
CATS_SCORE  SCORE` over a rule of dashes) gave no metric."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nightlab.agent import measuring, metrics
from nightlab.agent.config import MetricConfig, ProjectConfig, dump_config, load_config
from nightlab.agent.engine import Engine, EngineOptions
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.seeding import SeedRoute, plan_seeding

from helpers import git, make_repo

CP_TRAIN = """\
import argparse
import configparser
import random

p = argparse.ArgumentParser()
p.add_argument("--config", default="config.ini")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
cfg = configparser.ConfigParser()
cfg.read(args.config)
lr = cfg.getfloat("optim", "lr")
epochs = cfg.getint("train", "epochs")
hidden = cfg["model"].getint("hidden")
opt_name = cfg.get("optim", "name")
random.seed(args.seed)
# a quadratic bowl: the loss falls faster with a larger step
w = 5.0
for epoch in range(epochs):
    w -= lr * 2 * w
    print(f"epoch {epoch} val_loss: {w * w + 0.001 * hidden / 128:.6f}")
"""
CP_INI = """\
; training settings
[DEFAULT]
seed = 0

[train]
epochs = 20
batch_size = 64
val_fraction = 0.1

[optim]
name = sgd
lr = 0.01
weight_decay = 1e-4
momentum: 0.9

[model]
hidden = 128
batch_norm = yes
layers = 2  ; configparser keeps this comment in the value
notes = a note that goes on
    over a second line
"""

SPACY_CFG = """\
[paths]
train = null
dev = "corpus/dev.spacy"

[system]
seed = 0

[nlp]
lang = "en"
pipeline = ["tok2vec","textcat"]
batch_size = 1000

[components.textcat.model]
@architectures = "spacy.TextCatBOW.v3"
exclusive_classes = true
ngram_size = 1

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${paths.dev}

[training]
dev_corpus = "corpora.dev"
seed = ${system.seed}
dropout = 0.1
max_epochs = 0
max_steps = 20000

[training.optimizer]
@optimizers = "Adam.v1"
L2 = 0.01
learn_rate = 0.001

[training.score_weights]
cats_score = 1.0
"""
SPACY = {"config.cfg": SPACY_CFG, "scripts/convert.py": "import random\nrandom.seed(0)\n",
         "other.cfg": "[training]\ndropout = 0.3\nlearn_rate = 0.1\n"}
SPACY_COMMAND = ("python scripts/convert.py && python -m spacy train config.cfg --output training "
                 "--paths.train corpus/train.spacy --training.optimizer.learn_rate 0.002")


def knobs_of(files: dict[str, str], command: str, metric: str = "val_loss") -> dict[str, tuple[object, bool, str]]:
    return {k: (v.value, v.searchable, v.why_not)
            for k, v in BuiltinPolicy().knobs_in(files, command=command, metric=metric).items()}


def test_a_configparser_file_the_code_reads_holds_the_knobs() -> None:
    got = knobs_of({"train.py": CP_TRAIN, "config.ini": CP_INI}, "python train.py")
    assert got["optim.lr"][:2] == (0.01, True) and got["train.epochs"][:2] == (20, True)
    assert got["model.hidden"][:2] == (128, True)
    assert got["optim.momentum"] == (0.9, False, "not used by the code")  # no line of the code reads it
    assert "train.val_fraction" not in got and "model.layers" not in got  # a split; a value with its comment
    assert not got["DEFAULT.seed"][1] and not got["model.batch_norm"][1]  # a seed and a flag are never moved
    assert "model.notes" not in got  # a value that goes on over indented lines is no scalar
    # named on the command line instead of the default: the same
    named = knobs_of({"train.py": CP_TRAIN, "conf/exp.ini": CP_INI}, "python train.py --config conf/exp.ini")
    assert named["optim.lr"][:2] == (0.01, True)


def test_an_ini_file_no_code_reads_and_a_tool_s_own_file_are_not_searched() -> None:
    code = CP_TRAIN.replace('p.add_argument("--config", default="config.ini")', 'p.add_argument("--config")')
    got = knobs_of({"train.py": code, "old.ini": CP_INI}, "python train.py")
    assert not got["optim.lr"][1] and "old.ini is not read" in str(got["optim.lr"][2])
    for tool in ("setup.cfg", "tox.ini", "pytest.ini", "mypy.ini"):
        assert knobmod.discover(tool, "[train]\nlr = 0.01\nepochs = 3\n") == [], tool


def test_an_ini_value_is_rewritten_in_place_in_its_own_notation() -> None:
    by = {k.name: k for k in knobmod.discover("config.ini", CP_INI)}
    assert "lr = 0.02\n" in knobmod.rewrite(CP_INI, by["optim.lr"], 0.02)
    assert "momentum: 0.95\n" in knobmod.rewrite(CP_INI, by["optim.momentum"], 0.95)
    assert "weight_decay = 3e-4\n" in knobmod.rewrite(CP_INI, by["optim.weight_decay"], 3e-4)
    assert "epochs = 40\n" in knobmod.rewrite(CP_INI, by["train.epochs"], 40)  # an int stays an int for getint
    spacy = {k.name: k for k in knobmod.discover("config.cfg", SPACY_CFG)}
    assert "learn_rate = 0.003\n" in knobmod.rewrite(SPACY_CFG, spacy["training.optimizer.learn_rate"], 0.003)
    # interpolations, lists, null and registry references are no settings to write over
    assert not {"training.seed", "corpora.dev.path", "paths.train", "nlp.pipeline",
                "training.optimizer.@optimizers"} & set(spacy)


def test_spacy_train_reads_the_config_its_command_names_and_its_dotted_flags_override_the_keys() -> None:
    got = knobs_of(SPACY, SPACY_COMMAND, metric="cats_score")
    assert got["config.cfg:training.dropout"][:2] == (0.1, True)  # the convert step before it is not the training
    assert BuiltinPolicy().knobs_in(SPACY, command=SPACY_COMMAND, metric="score")[
        "training.optimizer.learn_rate"].kind == "lr"  # thinc's name for it
    assert got["training.max_steps"][:2] == (20000, True) and got["nlp.batch_size"][:2] == (1000, True)
    lr = got["training.optimizer.learn_rate"]
    assert not lr[1] and "--training.optimizer.learn_rate" in str(lr[2])
    assert got["command:--training.optimizer.learn_rate"][:2] == (0.002, True)
    assert not got["other.cfg:training.dropout"][1] and "not read" in str(got["other.cfg:training.dropout"][2])
    weights = got["training.score_weights.cats_score"]  # the weights of the score that picks the best model
    assert not weights[1] and "measurement" in str(weights[2])
    # bare `spacy train` is read the same way
    assert knobs_of(SPACY, "spacy train config.cfg --training.max_steps=500")["config.cfg:training.dropout"][1]


def test_spacy_re_runs_pass_the_config_s_seed_on_the_command_line() -> None:
    plan = plan_seeding(SPACY_COMMAND, lambda p: SPACY.get(p, ""), lambda p: p in SPACY, sorted(SPACY), "score")
    assert plan.route is SeedRoute.ARGUMENT and plan.argument == "--system.seed"
    assert plan.command(SPACY_COMMAND, 3, 0).endswith("--system.seed=3")


def test_an_edit_that_moves_a_data_part_in_an_ini_config_or_on_the_command_is_refused() -> None:
    def guard(path: str, files: dict[str, str], old: str, new: str) -> list[str]:
        return measuring.measurement_edits(files.get, sorted(files), {path: files[path].replace(old, new)}, "score")

    assert guard("config.cfg", SPACY, 'dev = "corpus/dev.spacy"', 'dev = "corpus/test.spacy"') == \
        ["config.cfg: paths.dev (a setting of the measurement)"]
    assert guard("config.cfg", SPACY, "cats_score = 1.0", "cats_score = 0.5") == \
        ["config.cfg: training.score_weights.cats_score (a setting of the measurement)"]
    assert guard("config.cfg", SPACY, "dropout = 0.1", "dropout = 0.2") == []
    cp = {"train.py": CP_TRAIN, "config.ini": CP_INI}
    assert guard("config.ini", cp, "val_fraction = 0.1", "val_fraction = 0.01") == \
        ["config.ini: train.val_fraction (a setting of the measurement)"]
    assert guard("config.ini", cp, "lr = 0.01", "lr = 0.05") == []
    assert measuring.command_measurement_changes(
        SPACY_COMMAND, SPACY_COMMAND.replace("corpus/train.spacy", "corpus/test.spacy")) == ["paths.train"]
    evaluate = SPACY_COMMAND + " && python -m spacy evaluate training/model-best corpus/test.spacy"
    assert measuring.command_measurement_changes(evaluate, evaluate.replace("test.spacy", "dev.spacy")) == \
        ["the data part corpus/dev.spacy", "the data part corpus/test.spacy"]
    assert measuring.command_measurement_changes(  # a config file named `train` is no part of the data
        "python train.py --config configs/train.yaml", "python train.py --config configs/train_big.yaml") == []
    assert measuring.command_measurement_changes(  # nor is a folder
        "python train.py --output_dir runs/test", "python train.py --output_dir runs/test2") == []


SPACY_LOG = """\
ℹ Pipeline: ['tok2vec', 'textcat']
ℹ Initial learn rate: 0.001
E    #       LOSS TOK2VEC  LOSS TEXTCAT  CATS_SCORE  SCORE
---  ------  ------------  ------------  ----------  ------
  0       0          0.00          0.25       44.29    0.44
  0     200          2.10         41.80       71.33    0.71
  1     400          3.05         20.12       80.50    0.81
✔ Saved pipeline to output directory
"""


@pytest.mark.parametrize(("name", "value"), [("cats_score", 80.5), ("SCORE", 0.81), ("loss_textcat", 20.12)])
def test_spacy_s_training_table_gives_the_metric_and_its_curve(name: str, value: float) -> None:
    reading = metrics.parse_metric(SPACY_LOG, name)
    assert reading.value == value and len(reading.curve) == 3
    assert metrics.parse_named_curve(SPACY_LOG, name)[-1][1] == value


def test_the_engine_moves_a_configparser_setting_on_its_branch_and_leaves_the_user_s_file(tmp_path: Path) -> None:
    """End to end: the builtin policy raises the learning rate in config.ini (the only place it is set), the run
    reads it through configparser and improves; the user's checkout keeps its config.ini."""
    repo = make_repo(tmp_path / "cp", {"train.py": CP_TRAIN, "config.ini": CP_INI})
    cfg = ProjectConfig(command=f"{sys.executable} train.py --seed {{seed}}",
                        metric=MetricConfig(name="val_loss", goal="minimize"),
                        editable=["train.py", "config.ini"], timeout=60)
    (repo / "nightlab.toml").write_text(dump_config(cfg))
    git(repo, "add", "nightlab.toml")
    git(repo, "commit", "-q", "-m", "nightlab config")
    eng = Engine(repo, load_config(repo), options=EngineOptions(mode="autonomous", budget=4),
                 policy=BuiltinPolicy())
    eng.run()
    exps = eng.store.experiments()
    base = next(e for e in exps if e.kind == "baseline")
    moved = [e for e in exps if e.kind not in ("baseline", "rerun") and e.commit_sha]
    assert moved, [(e.title, e.status, e.error) for e in exps]
    diff = git(repo, "diff", f"{base.commit_sha}..{moved[0].commit_sha}", "--", "config.ini")
    assert "lr = 0.01" in diff and moved[0].metric is not None and base.metric is not None
    assert min(e.metric for e in moved if e.metric is not None) < base.metric
    assert (repo / "config.ini").read_text() == CP_INI


PROJECT_YML = """\
title: "Detecting food entities"
vars:
  config: "config.cfg"
  gpu_id: -1
  max_epochs: 5
  dev_frac: 0.1

directories: ["assets", "corpus", "configs", "training", "scripts"]

workflows:
  all:
    - convert
    - train
    - evaluate

commands:
  - name: convert
    help: "Convert the annotations to spaCy's format"
    script:
      - "python scripts/convert.py assets/annotations.jsonl corpus --dev-frac ${vars.dev_frac}"
  - name: train
    help: "Train the textcat model"
    script:
      - "{TRAIN}"
  - name: evaluate
    script:
      - "python -m spacy evaluate training/model-best corpus/test.spacy --output training/metrics.json"
""".replace("{TRAIN}", "python -m spacy train configs/${vars.config} --output training/ --paths.train "
            "corpus/train.spacy --paths.dev corpus/dev.spacy --training.max_epochs ${vars.max_epochs} "
            "--gpu-id ${vars.gpu_id}")
PROJECT = {"project.yml": PROJECT_YML, "configs/config.cfg": SPACY_CFG,
           "scripts/convert.py": SPACY["scripts/convert.py"]}


@pytest.mark.parametrize("command", ["spacy project run all", "python -m spacy project run train .",
                                     "spacy project run train --vars.max_epochs 8"])
def test_spacy_project_run_reads_the_command_s_script_in_project_yml(command: str) -> None:
    """`spacy project run all` runs the workflow's commands from project.yml, `${vars.x}` filled in from `vars:` (or
    from `--vars.x` on the command): the training line inside is what runs, its config the one it names."""
    knobs = BuiltinPolicy().knobs_in(PROJECT, command=command, metric="cats_score")
    got = {k: (v.value, v.searchable, v.why_not) for k, v in knobs.items()}
    assert got["training.dropout"][:2] == (0.1, True)  # configs/config.cfg, found through ${vars.config}
    epochs = next(k for k in got if k.endswith("--training.max_epochs"))
    assert got[epochs][:2] == (8 if "--vars.max_epochs" in command else 5, True)
    if "--vars" not in command:  # edited where the variable is written
        knob = knobs[epochs].knob
        assert knob.path == "project.yml"


def test_an_edit_of_project_yml_s_evaluation_line_is_refused() -> None:
    def guard(old: str, new: str) -> list[str]:
        return measuring.measurement_edits(PROJECT.get, sorted(PROJECT), {"project.yml": PROJECT_YML.replace(old, new)},
                                           "cats_score")

    assert "project.yml: the evaluation of corpus/test.spacy (a setting of the measurement on a line that runs the " \
        "program)" in guard("training/model-best corpus/test.spacy", "training/model-best corpus/dev.spacy")
    assert guard("--paths.dev corpus/dev.spacy", "--paths.dev corpus/test.spacy") == [
        "project.yml: paths.dev (a setting of the measurement on a line that runs the program)"]
    assert guard("max_epochs: 5", "max_epochs: 10") == []
