"""Config files and settings as real launch commands compose them, and where each setting's value then lives.

The shapes come from a probe of real launch commands: a Hydra experiment chosen with ``+experiment=small`` that
overrides the primary config and re-selects a group with ``override /model: small``; detectron2 / yacs ``KEY VALUE``
pairs after the script's flags (and mmengine's ``--cfg-options a.b=1``); timm's short option ``-b 64`` over a YAML
config's ``batch_size``; ``sh run.sh --lr 0.01`` forwarding its words with ``"$@"``; a shell script whose flags come
from ``LR=2e-4`` variables. Each test writes a small repository of that shape and asserts what a user sees: which
knob the search may move, where its value lives, and the file and line a move rewrites.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from nightlab.agent.policy import effective as eff
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.builtin import BuiltinPolicy, _checkout_context


def _program(files: Mapping[str, str], command: str) -> eff.Program:
    return eff.analyse(command, lambda p: files.get(p, ""), lambda p: p in files, sorted(files))


def _cli(program: eff.Program) -> dict[str, knobmod.Knob]:
    return {k.name: k for k in eff.cli_knobs(program)}


def _move(files: Mapping[str, str], command: str, values: Mapping[str, object]) -> dict[str, str]:
    """The files after the builtin policy writes `values` ({knob name: value}) as its own moves."""
    policy = BuiltinPolicy()
    state = policy._state(_checkout_context(dict(files), command, "val_loss"), None)
    new = policy._rewrite_knobs({**files, eff.COMMAND_PATH: command}, state, dict(values))
    assert new is not None
    return new


# ------------------------------------------------------------------------------------------- W8 / W9: Hydra

HYDRA_TRAIN = '''\
import hydra
from hydra.utils import instantiate


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg):
    model = instantiate(cfg.model)
    opt = instantiate(cfg.optim, params=model.parameters())
    for epoch in range(cfg.trainer.max_epochs):
        loss = model(cfg.data.batch_size).sum()
        loss.backward()
        opt.step()
    print("val_loss", 0.5)


if __name__ == "__main__":
    main()
'''
EXPERIMENT = ("# @package _global_\ndefaults:\n  - override /model: small\n\n"
              "optim:\n  lr: 0.003\ntrainer:\n  max_epochs: 5\n")
HYDRA = {
    "train.py": HYDRA_TRAIN,
    "model.py": "class Net:\n    def __init__(self, hidden, dropout=0.1):\n        self.hidden = hidden\n",
    "configs/train.yaml": "defaults:\n  - model: default\n  - optim: adam\n  - _self_\n\ndata:\n  batch_size: 64\n"
                          "trainer:\n  max_epochs: 20\nseed: 42\n",
    "configs/model/default.yaml": "_target_: model.Net\nhidden: 256\ndropout: 0.1\n",
    "configs/model/small.yaml": "_target_: model.Net\nhidden: 32\ndropout: 0.0\n",
    "configs/optim/adam.yaml": "_target_: torch.optim.Adam\n_partial_: true\nlr: 0.001\nweight_decay: 0.0\n",
    "configs/experiment/small.yaml": EXPERIMENT,
}
# the lightning-hydra-template's form: the experiment group is in the defaults list, empty unless chosen
HYDRA_NULL = {**HYDRA, "configs/train.yaml": "defaults:\n  - _self_\n  - model: default\n  - optim: adam\n"
                                             "  - experiment: null\n\ndata:\n  batch_size: 64\n"
                                             "trainer:\n  max_epochs: 20\nseed: 42\n"}


@pytest.mark.parametrize(("files", "command"), [(HYDRA, "python train.py +experiment=small"),
                                                (HYDRA_NULL, "python train.py experiment=small")])
def test_a_hydra_experiment_is_composed_over_the_primary_config(files: dict[str, str], command: str) -> None:
    """`+experiment=small` had not been read: adam's lr and train.yaml's max_epochs were searched though the
    experiment sets both. The experiment is applied after the primary config, so its values are the settings."""
    program = _program(files, command)
    assert [c.path for c in program.configs][-1] == "configs/experiment/small.yaml"
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert knobs["optim.lr"].path == "configs/experiment/small.yaml" and knobs["optim.lr"].value == 0.003
    assert knobs["optim.lr"].searchable and knobs["configs/experiment/small.yaml:trainer.max_epochs"].searchable
    assert knobs["lr"].why_not.startswith("overridden by configs/experiment/small.yaml")
    assert knobs["configs/train.yaml:trainer.max_epochs"].why_not.startswith(
        "overridden by configs/experiment/small.yaml")
    assert knobs["weight_decay"].searchable  # adam's other keys are still in effect
    new = _move(files, command, {"optim.lr": 0.001})
    assert new["configs/experiment/small.yaml"] == EXPERIMENT.replace("lr: 0.003", "lr: 0.001")
    assert new["configs/optim/adam.yaml"] == files["configs/optim/adam.yaml"]


@pytest.mark.parametrize(("files", "command"), [(HYDRA, "python train.py +experiment=small"),
                                                (HYDRA_NULL, "python train.py experiment=small")])
def test_an_experiment_s_override_selects_the_group_option_it_names(files: dict[str, str], command: str) -> None:
    """`override /model: small` in the experiment: model/small.yaml is the model that runs, model/default.yaml
    (the primary config's default) is not read, so its hidden size is no knob to search."""
    program = _program(files, command)
    paths = [c.path for c in program.configs]
    assert "configs/model/small.yaml" in paths and "configs/model/default.yaml" not in paths
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert knobs["configs/model/small.yaml:hidden"].searchable
    assert knobs["configs/model/small.yaml:hidden"].value == 32
    assert "is not read" in knobs["configs/model/default.yaml:hidden"].why_not
    new = _move(files, command, {"configs/model/small.yaml:hidden": 64})
    assert "hidden: 64\n" in new["configs/model/small.yaml"]


def test_the_command_line_s_group_choice_beats_an_experiment_s_override() -> None:
    """`model=default` on the command line wins over the experiment's `override /model: small`, as in Hydra; and
    without an experiment the primary config's default option is the one read."""
    knobs = BuiltinPolicy().knobs_in(HYDRA_NULL, command="python train.py experiment=small model=default")
    assert knobs["configs/model/default.yaml:hidden"].searchable
    assert "is not read" in knobs["configs/model/small.yaml:hidden"].why_not
    plain = BuiltinPolicy().knobs_in(HYDRA_NULL, command="python train.py")
    assert plain["configs/model/default.yaml:hidden"].searchable
    assert "is not read" in plain["optim.lr"].why_not and plain["lr"].searchable


def test_a_dotted_override_on_the_command_beats_the_experiment() -> None:
    command = "python train.py +experiment=small optim.lr=0.01"
    knobs = BuiltinPolicy().knobs_in(HYDRA, command=command)
    assert knobs["command:optim.lr"].searchable and knobs["command:optim.lr"].value == 0.01
    assert knobs["optim.lr"].why_not == "overridden by optim.lr on the command line"


def test_a_group_option_s_own_defaults_choose_a_nested_group() -> None:
    """`model/small.yaml` with `defaults: [encoder: tiny]` composes `model/encoder/tiny.yaml` under `model.encoder`
    (a group's option brings its own defaults along); the other encoder is not read."""
    files = {**HYDRA,
             "configs/model/small.yaml": "defaults:\n  - encoder: tiny\n  - _self_\n\n"
                                         "_target_: model.Net\nhidden: 32\n",
             "configs/model/encoder/tiny.yaml": "depth: 2\nwidth: 64\n",
             "configs/model/encoder/big.yaml": "depth: 12\nwidth: 768\n"}
    program = _program(files, "python train.py +experiment=small")
    tiny = program.config("configs/model/encoder/tiny.yaml")
    assert tiny is not None and tiny.prefix == "model.encoder"
    assert program.config("configs/model/encoder/big.yaml") is None


# ------------------------------------------------------------------------------------------- W13: KEY VALUE pairs

D2_TRAIN = '''\
import argparse

from config import get_cfg


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file", default="", metavar="FILE")
    parser.add_argument("--num-gpus", type=int, default=1)
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    for it in range(cfg.SOLVER.MAX_ITER):
        loss = step(cfg.SOLVER.BASE_LR, cfg.SOLVER.IMS_PER_BATCH, cfg.MODEL.HIDDEN)
        loss.backward()
    print("val_loss", loss)


if __name__ == "__main__":
    main()
'''
D2_CFG = '''\
from yacs.config import CfgNode as CN

_C = CN()
_C.SOLVER = CN()
_C.SOLVER.BASE_LR = 0.001
_C.SOLVER.MAX_ITER = 40000
_C.SOLVER.IMS_PER_BATCH = 16
_C.MODEL = CN()
_C.MODEL.HIDDEN = 256


def get_cfg():
    return _C.clone()
'''
D2_YAML = "SOLVER:\n  BASE_LR: 0.02\n  MAX_ITER: 90000\nMODEL:\n  HIDDEN: 512\n"
D2 = {"tools/train_net.py": D2_TRAIN, "tools/config.py": D2_CFG, "configs/x.yaml": D2_YAML}
D2_OPTS = {**D2, "tools/train_net.py": D2_TRAIN.replace('parser.add_argument("opts", default=None, '
                                                        'nargs=argparse.REMAINDER)',
                                                        'parser.add_argument("--opts", default=[], nargs="+")')}


@pytest.mark.parametrize(("files", "command"), [
    (D2, "python tools/train_net.py --config-file configs/x.yaml --num-gpus 1 SOLVER.BASE_LR 0.0025 "
         "SOLVER.MAX_ITER 100"),
    (D2_OPTS, "python tools/train_net.py --config-file configs/x.yaml --opts SOLVER.BASE_LR 0.0025 "
              "SOLVER.MAX_ITER 100"),
])
def test_yacs_key_value_pairs_on_the_command_override_the_config_file(files: dict[str, str], command: str) -> None:
    """detectron2's `train_net.py --config-file x.yaml SOLVER.BASE_LR 0.0025`: the pairs had been dropped, so the
    config's dead 0.02 was searched. The pair is the setting, edited in place on the command line."""
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert knobs["SOLVER.BASE_LR"].why_not == "overridden by SOLVER.BASE_LR on the command line"
    assert knobs["SOLVER.MAX_ITER"].why_not == "overridden by SOLVER.MAX_ITER on the command line"
    assert knobs["command:SOLVER.BASE_LR"].searchable and knobs["command:SOLVER.BASE_LR"].value == 0.0025
    assert knobs["command:SOLVER.MAX_ITER"].value == 100
    assert knobs["MODEL.HIDDEN"].searchable  # a key the command leaves alone stays the config file's
    assert "command:--opts" not in knobs
    program = _program(files, command)
    new = eff.rewrite_cli(command, _cli(program)["command:SOLVER.BASE_LR"], 0.01, program)
    assert new == command.replace("SOLVER.BASE_LR 0.0025", "SOLVER.BASE_LR 0.01")


def test_without_pairs_the_config_file_holds_the_setting() -> None:
    knobs = BuiltinPolicy().knobs_in(D2, command="python tools/train_net.py --config-file configs/x.yaml")
    assert knobs["SOLVER.BASE_LR"].searchable and knobs["SOLVER.BASE_LR"].value == 0.02


def test_bare_words_stay_positional_when_the_code_merges_no_words() -> None:
    """A script that does not merge the command's words into a config: `run a.b c` is no setting."""
    files = {"train.py": "import argparse\np = argparse.ArgumentParser()\np.add_argument('names', nargs='+')\n"
                         "p.add_argument('--lr', type=float, default=0.1)\na = p.parse_args()\nprint(a.lr)\n"}
    program = _program(files, "python train.py data.train extra --lr 0.2")
    assert program.invocation is not None
    assert [a.name for a in program.invocation.args] == ["--lr"]


MM_TRAIN = '''\
import argparse

from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def parse_args():
    parser = argparse.ArgumentParser(description="Train a model")
    parser.add_argument("config", help="train config file path")
    parser.add_argument("--work-dir", help="the dir to save logs and models")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="override some settings")
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    Runner.from_cfg(cfg).train()


if __name__ == "__main__":
    main()
'''


def test_mmengine_cfg_options_override_the_config_s_keys() -> None:
    """`--cfg-options optim_wrapper.optimizer.lr=0.01 train_cfg.max_epochs=3`: each `a.b=v` word is a setting of
    its own (it had been one string value of `--cfg-options`), and it overrides that key of the config."""
    files = {"tools/train.py": MM_TRAIN,
             "configs/x.yaml": "optim_wrapper:\n  optimizer:\n    lr: 0.1\n    momentum: 0.9\n"
                               "train_cfg:\n  max_epochs: 200\n"}
    command = ("python tools/train.py configs/x.yaml --cfg-options optim_wrapper.optimizer.lr=0.01 "
               "train_cfg.max_epochs=3 --work-dir out")
    program = _program(files, command)
    cli = _cli(program)
    assert cli["command:optim_wrapper.optimizer.lr"].value == 0.01 and cli["command:train_cfg.max_epochs"].value == 3
    found = [k for k in knobmod.discover_files(dict(files)) if k.path.endswith(".yaml")]
    res = eff.resolve(program, [*found, *cli.values()], files)
    assert res.why_not("optim_wrapper.optimizer.lr") == "overridden by optim_wrapper.optimizer.lr on the command line"
    assert res.why_not("train_cfg.max_epochs") == "overridden by train_cfg.max_epochs on the command line"
    assert res.why_not("optim_wrapper.optimizer.momentum") == ""
    new = eff.rewrite_cli(command, cli["command:train_cfg.max_epochs"], 5, program)
    assert new == command.replace("max_epochs=3", "max_epochs=5")


# ------------------------------------------------------------------------------------------- W10: short aliases

TIMM = '''\
import argparse

import yaml

from model import Net

config_parser = parser = argparse.ArgumentParser(add_help=False)
parser.add_argument("-c", "--config", default="", type=str)
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--epochs", type=int, default=300)
parser.add_argument("-b", "--batch-size", type=int, default=128)
parser.add_argument("--drop", type=float, default=0.0)


def _parse_args():
    args_config, remaining = config_parser.parse_known_args()
    if args_config.config:
        with open(args_config.config) as f:
            parser.set_defaults(**yaml.safe_load(f))
    return parser.parse_args(remaining)


args = _parse_args()
model = Net(args.drop)
for epoch in range(args.epochs):
    loss = model.step(args.lr, args.batch_size)
    loss.backward()
print("val_loss", loss)
'''
TIMM_REPO = {"train.py": TIMM, "model.py": "class Net:\n    def __init__(self, drop):\n        self.drop = drop\n",
             "configs/x.yaml": "lr: 0.1\nepochs: 50\nbatch_size: 256\ndrop: 0.2\n"}


def test_a_short_option_overrides_the_config_key_of_its_long_name() -> None:
    """timm's `train.py -c x.yaml -b 64`: `-b` is `--batch-size`, whose value argparse takes over the config's
    `set_defaults`, so the YAML's batch_size is dead and `-b 64` on the command is the one knob to search."""
    command = "python train.py -c configs/x.yaml -b 64"
    knobs = BuiltinPolicy().knobs_in(TIMM_REPO, command=command)
    assert knobs["batch_size"].why_not == "overridden by -b on the command line"
    assert knobs["command:-b"].searchable and knobs["command:-b"].value == 64
    assert knobs["--batch-size"].why_not == "overridden by -b on the command line"
    assert knobs["lr"].searchable and knobs["lr"].path == "configs/x.yaml"  # what -b leaves alone: the config's
    program = _program(TIMM_REPO, command)
    assert eff.rewrite_cli(command, _cli(program)["command:-b"], 128, program) == command.replace("-b 64", "-b 128")


def test_a_config_applied_after_parsing_beats_a_short_option_too() -> None:
    """`vars(args).update(yaml.safe_load(...))` after `parse_args()`: the config wins over `-b 64` as it does over
    `--batch-size 64`, so the flag on the command is the dead one."""
    train = ("import argparse\nimport yaml\np = argparse.ArgumentParser()\n"
             "p.add_argument('-b', '--batch-size', type=int, default=32)\np.add_argument('--config', default='')\n"
             "args = p.parse_args()\nvars(args).update(yaml.safe_load(open(args.config)))\n"
             "for i in range(3):\n    loss = step(args.batch_size)\n    loss.backward()\nprint('val_loss', loss)\n")
    files = {"train.py": train, "configs/a.yaml": "batch_size: 16\n"}
    knobs = BuiltinPolicy().knobs_in(files, command="python train.py --config configs/a.yaml -b 64")
    assert knobs["command:-b"].why_not.startswith("overridden by configs/a.yaml")
    assert knobs["batch_size"].searchable


# ------------------------------------------------------------------------------------------- W4: "$@"

TRAIN = '''\
import argparse

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--batch_size", type=int, default=32)
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--weight_decay", type=float, default=0.0)
p.add_argument("--fast", action="store_true")
args = p.parse_args()
for epoch in range(args.epochs):
    loss = step(args.lr, args.batch_size, args.weight_decay, args.fast)
    loss.backward()
print(f"val_loss {loss:.4f}")
'''


@pytest.mark.parametrize("forward", ['"$@"', "$@", '"${@}"', "$*"])
@pytest.mark.parametrize("command", ["sh run.sh --lr 0.01", "./run.sh --lr 0.01", "bash -e run.sh --lr=0.01"])
def test_flags_a_script_forwards_are_the_python_command_s_flags(forward: str, command: str) -> None:
    """`sh run.sh --lr 0.01` with `python train.py --epochs 5 "$@"`: the command's `--lr` had been dropped, so the
    argparse default was searched though 0.01 runs. It is the setting, on the command line."""
    files = {"train.py": TRAIN, "run.sh": f"#!/bin/sh\nset -e\npython train.py --epochs 5 {forward}\n"}
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert knobs["--lr"].why_not == "overridden by --lr on the command line"
    assert knobs["command:--lr"].searchable and knobs["command:--lr"].value == 0.01
    assert knobs["run.sh:--epochs"].searchable and knobs["run.sh:--epochs"].value == 5
    assert knobs["--epochs"].why_not == "overridden by --epochs on run.sh"
    new = _move(files, command, {"command:--lr": 0.02, "run.sh:--epochs": 3})
    assert new["run.sh"] == files["run.sh"].replace("--epochs 5", "--epochs 3")
    assert new[eff.COMMAND_PATH] == command.replace("0.01", "0.02")


def test_the_command_s_flag_beats_the_same_flag_in_the_script() -> None:
    """`bash run.sh --lr=0.01 --epochs 2`: argv is `--epochs 5 --lr=0.01 --epochs 2`, argparse keeps the last, so
    the command's `--epochs 2` is the setting and the script's `--epochs 5` is no knob to search."""
    files = {"train.py": TRAIN, "run.sh": '#!/bin/sh\npython train.py --epochs 5 --fast "$@" 2>&1 | tee log\n'}
    command = "bash run.sh --lr=0.01 --epochs 2"
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert knobs["command:--epochs"].searchable and knobs["command:--epochs"].value == 2
    assert "run.sh:--epochs" not in knobs or not knobs["run.sh:--epochs"].searchable
    assert knobs["--epochs"].why_not == "overridden by --epochs on the command line"
    program = _program(files, command)
    cli = _cli(program)
    assert eff.rewrite_cli(command, cli["command:--epochs"], 4, program) == "bash run.sh --lr=0.01 --epochs 4"
    assert eff.rewrite_cli(command, cli["command:--lr"], 0.1, program) == "bash run.sh --lr=0.1 --epochs 2"


def test_a_script_that_forwards_nothing_ignores_the_command_s_words() -> None:
    files = {"train.py": TRAIN, "run.sh": "#!/bin/sh\npython train.py --epochs 5\n"}
    knobs = BuiltinPolicy().knobs_in(files, command="sh run.sh --lr 0.01")
    assert "command:--lr" not in knobs and knobs["--lr"].searchable


# ------------------------------------------------------------------------------------------- W5: shell variables

SCRIPT = '''\
#!/usr/bin/env bash
set -euo pipefail
export EPOCHS=${EPOCHS:-3}
export LR=2e-4
BS="16"
WD=0.01

python train.py \\
  --epochs $EPOCHS \\
  --lr "$LR" \\
  --batch_size ${BS} \\
  --weight_decay $WD
'''
SCRIPT_REPO = {"train.py": TRAIN, "scripts/train.sh": SCRIPT}


def test_a_script_s_variable_is_the_setting_at_its_assignment() -> None:
    """`--lr "$LR"` with `export LR=2e-4`: the literal in the script is what runs and what a move edits (the flags
    had been "set from the shell variable", so lr, batch size and epochs could not be tuned)."""
    knobs = BuiltinPolicy().knobs_in(SCRIPT_REPO, command="bash scripts/train.sh")
    expected = {"--lr": (2e-4, 4), "--batch_size": (16, 5), "--epochs": (3, 3), "--weight_decay": (0.01, 6)}
    for flag, (value, line) in expected.items():
        k = knobs[f"scripts/train.sh:{flag}"]
        assert k.searchable and k.value == value and k.knob.line == line, flag
        assert knobs[flag].why_not == f"overridden by {flag} on scripts/train.sh"
    new = _move(SCRIPT_REPO, "bash scripts/train.sh", {"scripts/train.sh:--lr": 1e-3,
                                                        "scripts/train.sh:--epochs": 5,
                                                        "scripts/train.sh:--batch_size": 32})
    lines = new["scripts/train.sh"].splitlines()
    assert lines[2:5] == ["export EPOCHS=${EPOCHS:-5}", "export LR=1e-3", 'BS="32"']
    assert lines[7:] == SCRIPT.splitlines()[7:]  # the python command itself is untouched


def test_a_variable_set_on_the_command_beats_the_script_s_default() -> None:
    """`EPOCHS=1 bash scripts/train.sh`: `${EPOCHS:-3}` takes the command's 1, so that word is the setting; `LR=…`
    on the command changes nothing against the script's plain `export LR=2e-4`."""
    command = "EPOCHS=1 LR=0.1 bash scripts/train.sh"
    knobs = BuiltinPolicy().knobs_in(SCRIPT_REPO, command=command)
    assert knobs["command:--epochs"].searchable and knobs["command:--epochs"].value == 1
    assert knobs["--epochs"].why_not == "overridden by --epochs on the command line"
    assert knobs["scripts/train.sh:--lr"].value == 2e-4 and "command:--lr" not in knobs
    program = _program(SCRIPT_REPO, command)
    new = eff.rewrite_cli(command, _cli(program)["command:--epochs"], 2, program)
    assert new == "EPOCHS=2 LR=0.1 bash scripts/train.sh"


def test_a_variable_the_script_never_sets_comes_from_the_command_or_stays_unedited() -> None:
    files = {"train.py": TRAIN, "run.sh": "#!/bin/bash\npython train.py --lr $LR --epochs $(cat epochs.txt)\n"}
    knobs = BuiltinPolicy().knobs_in(files, command="LR=3e-4 bash run.sh")
    assert knobs["command:--lr"].searchable and knobs["command:--lr"].value == 3e-4
    plain = BuiltinPolicy().knobs_in(files, command="bash run.sh")
    assert not plain["run.sh:--lr"].searchable and not plain["--lr"].searchable


# ------------------------------------------------------------------------------------------- W12: mmengine _base_

MM_REPO = {
    "tools/train.py": MM_TRAIN,
    "configs/_base_/models/resnet18.py":
        "model = dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18))\n",
    "configs/_base_/schedules/cifar10_bs128.py":
        "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))\n"
        "train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=1)\n",
    "configs/_base_/datasets/cifar10.py": "train_dataloader = dict(batch_size=16, num_workers=2)\n",
    "configs/resnet/resnet18_cifar.py":
        "_base_ = [\n    '../_base_/models/resnet18.py', '../_base_/datasets/cifar10.py',\n"
        "    '../_base_/schedules/cifar10_bs128.py'\n]\n\n"
        "optim_wrapper = dict(optimizer=dict(lr=0.05))\ntrain_cfg = dict(max_epochs=30)\n",
}
CHILD = "configs/resnet/resnet18_cifar.py"
SCHEDULE = "configs/_base_/schedules/cifar10_bs128.py"


def _mm_resolution(command: str) -> tuple[eff.Program, eff.Resolution]:
    program = _program(MM_REPO, command)
    found = [k for k in knobmod.discover_files(dict(MM_REPO)) if k.path.startswith("configs/")]
    return program, eff.resolve(program, [*found, *eff.cli_knobs(program)], MM_REPO)


def test_an_mmengine_config_and_its_bases_are_the_configs_the_run_reads() -> None:
    """`python tools/train.py configs/x.py` with `Config.fromfile`: the named Python config (it had been skipped as
    "a module the entry imports") and its `_base_` chain, bases first, are read; the child's dict keys override
    only the keys they name."""
    program, res = _mm_resolution(f"python tools/train.py {CHILD}")
    assert [c.path for c in program.configs] == ["configs/_base_/models/resnet18.py",
                                                 "configs/_base_/datasets/cifar10.py", SCHEDULE, CHILD]
    assert res.why_not(f"{CHILD}:optim_wrapper.optimizer.lr") == ""
    assert res.why_not(f"{SCHEDULE}:optim_wrapper.optimizer.lr").startswith(f"overridden by {CHILD}")
    assert res.why_not(f"{SCHEDULE}:train_cfg.max_epochs").startswith(f"overridden by {CHILD}")
    for kept in ("optim_wrapper.optimizer.momentum", "optim_wrapper.optimizer.weight_decay",
                 "train_dataloader.batch_size"):
        assert res.why_not(kept) == "", kept  # a base's key the child leaves alone is in effect
    knobs = BuiltinPolicy().knobs_in(MM_REPO, command=f"python tools/train.py {CHILD}")
    assert knobs[f"{CHILD}:optim_wrapper.optimizer.lr"].searchable
    assert knobs[f"{CHILD}:train_cfg.max_epochs"].searchable
    new = _move(MM_REPO, f"python tools/train.py {CHILD}", {f"{CHILD}:optim_wrapper.optimizer.lr": 0.02})
    assert "optim_wrapper = dict(optimizer=dict(lr=0.02))\n" in new[CHILD]
    assert new[SCHEDULE] == MM_REPO[SCHEDULE]


def test_mmengine_cfg_options_override_a_python_config_s_key() -> None:
    command = f"python tools/train.py {CHILD} --cfg-options optim_wrapper.optimizer.lr=0.01"
    _, res = _mm_resolution(command)
    assert res.why_not(f"{CHILD}:optim_wrapper.optimizer.lr") == \
        "overridden by optim_wrapper.optimizer.lr on the command line"
    assert res.why_not("command:optim_wrapper.optimizer.lr") == ""
    assert res.why_not(f"{CHILD}:train_cfg.max_epochs") == ""


def test_a_python_file_on_the_command_is_no_config_without_config_fromfile() -> None:
    """A script that imports the module it is handed (no `Config.fromfile`, no exec) reads no config from it."""
    files = {"train.py": "import sys\nimport importlib\nm = importlib.import_module(sys.argv[1])\n",
             "exp/a.py": "_base_ = ['b.py']\nlr = 0.1\n", "exp/b.py": "lr = 0.2\n"}
    assert _program(files, "python train.py exp/a.py").configs == []


def test_an_mmengine_config_s_keys_no_code_names_are_searched() -> None:
    """`Runner.from_cfg(Config.fromfile(path))` builds the run from the config's keys: the base's momentum and
    weight decay are settings although no Python file names them; the child's lr is where lr lives."""
    from nightlab.agent.policy.builtin import BuiltinPolicy

    files = {"tools/train.py": "import sys\nfrom mmengine.config import Config\nfrom mmengine.runner import Runner\n"
                               "cfg = Config.fromfile(sys.argv[1])\nRunner.from_cfg(cfg).train()\n",
             "configs/_base_/schedule.py": "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, "
                                           "weight_decay=1e-4))\ntrain_cfg = dict(max_epochs=100)\n",
             "configs/resnet.py": "_base_ = ['./_base_/schedule.py']\noptim_wrapper = dict(optimizer=dict(lr=0.02))\n"}
    knobs = BuiltinPolicy().knobs_in(files, command="python tools/train.py configs/resnet.py", metric="accuracy")
    for key in ("optim_wrapper.optimizer.momentum", "optim_wrapper.optimizer.weight_decay",
                "configs/resnet.py:optim_wrapper.optimizer.lr"):
        assert knobs[key].searchable, (key, knobs[key].why_not)
    assert not knobs["configs/_base_/schedule.py:optim_wrapper.optimizer.lr"].searchable
