"""Where a setting takes effect: the command line, exec'd and loaded config files, and the defaults they override.

Each repository here is written in a shape real training code takes (none like ../shared/tasks): nanoGPT's
configurator, an argparse script run with flags, a package run with ``-m`` whose settings live in a dataclass, a
Hydra app. Only static analysis runs here; tests/test_real_repos.py runs such repositories through the engine.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from nightlab.agent.policy import effective as eff
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.commandline import parse_command, tokenize


def _resolve(files: Mapping[str, str], command: str) -> tuple[eff.Program, dict[str, knobmod.Knob], eff.Resolution]:
    program = eff.analyse(command, lambda p: files.get(p, ""), lambda p: p in files, sorted(files))
    knobs = knobmod.discover_files(dict(files)) + eff.cli_knobs(program)
    return program, {k.name: k for k in knobs}, eff.resolve(program, knobs, files)


def _effective(res: eff.Resolution, knobs: Mapping[str, knobmod.Knob]) -> dict[str, object]:
    return {n: k.value for n, k in knobs.items() if not res.why_not(n) and k.tunable}


# ----------------------------------------------------------------------------------------------- the command


def test_commands_are_split_with_spans_that_rewrite_in_place() -> None:
    files = {"train.py", "pkg/train.py", "conf/a.yaml", "run.sh"}
    inv = parse_command('OMP_NUM_THREADS=1 python -u -m pkg.train --lr="1e-3" optim.momentum=0.9 -c conf/a.yaml '
                        '--dry-run && echo done', lambda p: p in files)
    assert inv is not None and inv.entry == "pkg/train.py" and inv.module == "pkg.train"
    assert inv.files == ["conf/a.yaml"] and inv.file_options == {"conf/a.yaml": "-c"}
    lr = inv.arg("--lr")
    assert lr is not None and lr.value == 0.001 and inv.text[lr.start:lr.end] == '"1e-3"'
    mom = inv.arg("optim.momentum")
    assert mom is not None and mom.style == "dotlist" and mom.value == 0.9
    dry = inv.arg("--dry-run")
    assert dry is not None and dry.style == "switch"
    assert inv.text[inv.end:] == " && echo done"  # a new argument goes before the next command
    # torchrun's own options are not the script's; a shell script's python line is found inside it
    tr = parse_command("torchrun --nproc_per_node=1 train.py --epochs 3", lambda p: p in files)
    assert tr is not None and tr.entry == "train.py" and [a.name for a in tr.args] == ["--epochs"]
    sh = parse_command("bash run.sh", lambda p: p in files, read=lambda p: "set -e\npython train.py --bs 8\n")
    assert sh is not None and sh.source == "run.sh" and sh.arg("--bs") is not None
    assert [t.value for t in tokenize("a 'b c' \"d\\\"e\" # comment")] == ["a", "b c", 'd"e']


# ----------------------------------------------------------------------------------------------- nanoGPT's shape

NANO_TRAIN = '''\
import os
import torch
from model import GPTConfig, GPT

out_dir = 'out'
eval_interval = 2000
batch_size = 12
block_size = 1024
n_layer = 12
n_embd = 768
dropout = 0.0
learning_rate = 6e-4
max_iters = 600000
weight_decay = 1e-1
grad_clip = 1.0
lr_decay_iters = 600000
config_keys = [k for k, v in globals().items() if not k.startswith('_')]
exec(open('configurator.py').read())
torch.manual_seed(1337)
model_args = dict(n_layer=n_layer, n_embd=n_embd, block_size=block_size, dropout=dropout)
model = GPT(GPTConfig(**model_args))
'''
NANO_MODEL = '''\
from dataclasses import dataclass

@dataclass
class GPTConfig:
    block_size: int = 1024
    n_layer: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True

class GPT:
    def __init__(self, config):
        self.config = config
'''
CONFIGURATOR = '''\
import sys
from ast import literal_eval
for arg in sys.argv[1:]:
    if '=' not in arg:
        config_file = arg
        exec(open(config_file).read())
    else:
        key, val = arg.split('=')
        key = key[2:]
        globals()[key] = literal_eval(val)
'''
NANO_CONFIG = "batch_size = 16\nblock_size = 64\nn_layer = 2\nn_embd = 64\nlearning_rate = 1e-3\nmax_iters = 300\n" \
              "lr_decay_iters = 300\n"
NANO = {"train.py": NANO_TRAIN, "model.py": NANO_MODEL, "configurator.py": CONFIGURATOR,
        "config/small.py": NANO_CONFIG, "config/big.py": NANO_CONFIG.replace("16", "64"),
        "sample.py": "temperature = 0.8\ntop_k = 200\nbatch_size = 4\nexec(open('configurator.py').read())\n"}


def test_an_execd_config_file_overrides_the_entry_globals_and_the_command_line_overrides_both() -> None:
    program, knobs, res = _resolve(NANO, "python train.py config/small.py --learning_rate=3e-3")
    assert program.run_files == {"train.py", "model.py", "configurator.py"}
    assert program.exec_configs and program.argv_globals
    assert [c.path for c in program.configs] == ["config/small.py"]
    eff_now = _effective(res, knobs)
    # each setting once, where it takes effect
    assert eff_now["command:--learning_rate"] == 3e-3
    assert eff_now["config/small.py:batch_size"] == 16 and eff_now["config/small.py:max_iters"] == 300
    assert eff_now["weight_decay"] == 0.1 and eff_now["grad_clip"] == 1.0  # only train.py sets them
    assert "overridden by --learning_rate" in res.why_not("config/small.py:learning_rate")
    assert "overridden by --learning_rate" in res.why_not("train.py:learning_rate")
    assert "config/small.py" in res.why_not("train.py:batch_size")
    # a config file the command does not name, and a script it does not run, change nothing
    assert "not run by" in res.why_not("config/big.py:batch_size")
    assert "not run by" in res.why_not("temperature")
    # the dataclass defaults are passed explicitly where the model is built (via **model_args)
    assert "passes n_embd" in res.why_not("GPTConfig.n_embd")
    assert not res.why_not("GPTConfig.bias")
    # no leftover setting appears twice among the effective ones
    leaves = [n.split(":")[-1].lstrip("-") for n in eff_now]
    assert len(leaves) == len(set(leaves))


def test_a_command_line_setting_is_rewritten_in_the_command_and_a_missing_one_appended() -> None:
    cmd = "python train.py config/small.py --learning_rate=3e-3 && echo ok"
    program, knobs, _ = _resolve(NANO, cmd)
    new = eff.rewrite_cli(cmd, knobs["command:--learning_rate"], 0.01, program)
    assert new == "python train.py config/small.py --learning_rate=1e-2 && echo ok"  # in the old style
    # a setting of the exec'd config can be moved to the command line (configurator reads --key=value)
    virtual = eff.virtual_cli_knob(program, knobs["config/small.py:max_iters"])
    assert virtual is not None and virtual.name == "command:--max_iters" and virtual.value == 300
    assert eff.rewrite_cli(cmd, virtual, 900, program) == \
        "python train.py config/small.py --learning_rate=3e-3 --max_iters=900 && echo ok"


# ----------------------------------------------------------------------------------------------- argparse + flags

LSTM_MAIN = '''\
import argparse
import model
parser = argparse.ArgumentParser()
parser.add_argument('--lr', type=float, default=20)
parser.add_argument('--epochs', type=int, default=40)
parser.add_argument('--emsize', type=int, default=200)
parser.add_argument('--nhid', type=int, default=200)
parser.add_argument('--dropout', type=float, default=0.2)
parser.add_argument('--tied', action='store_true')
parser.add_argument('--seed', type=int, default=1111)
args = parser.parse_args()
net = model.RNNModel(args.emsize, args.nhid, args.dropout)
'''
LSTM_MODEL = '''\
class RNNModel:
    def __init__(self, ninp, nhid, dropout=0.5, nlayers=2):
        self.nlayers = nlayers
'''


def test_argparse_defaults_the_command_sets_are_dead_and_the_flags_are_the_knobs() -> None:
    files = {"main.py": LSTM_MAIN, "model.py": LSTM_MODEL}
    cmd = "python main.py --epochs 1 --tied --emsize 64 --nhid 64 --lr 1 --seed {seed}"
    program, knobs, res = _resolve(files, cmd)
    eff_now = _effective(res, knobs)
    assert eff_now["command:--epochs"] == 1 and eff_now["command:--emsize"] == 64
    assert eff_now["command:--lr"] == 1.0 and isinstance(eff_now["command:--lr"], float)  # type=float
    assert eff_now["--dropout"] == 0.2  # not on the command line: the argparse default takes effect
    assert "overridden by --epochs" in res.why_not("--epochs")
    assert "command:--seed" not in eff_now and "command:--tied" not in knobs  # a placeholder and a switch
    # the model's dropout default is dead (main passes it positionally); nlayers is not passed: effective
    assert "passes dropout" in res.why_not("RNNModel.dropout")
    assert not res.why_not("RNNModel.nlayers")
    assert eff.rewrite_cli(cmd, knobs["command:--epochs"], 3, program).startswith("python main.py --epochs 3 --tied")


# ----------------------------------------------------------------------------------------------- packages, -m

PKG = {
    "src/fitlib/__init__.py": "",
    "src/fitlib/cli.py": "from fitlib.training.loop import run\nfrom fitlib import settings\n"
                         "run(settings.Config())\n",
    "src/fitlib/settings.py": "from dataclasses import dataclass\n\n@dataclass\nclass Config:\n    lr: float = 0.1\n"
                              "    epochs: int = 5\n    hidden: int = 32\n",
    "src/fitlib/training/__init__.py": "",
    "src/fitlib/training/loop.py": "from ..nets import build\n\ndef run(cfg):\n    build(cfg.hidden)\n",
    "src/fitlib/nets.py": "def build(hidden, depth=2):\n    return hidden * depth\n",
    "tools/sweep.py": "LR = 0.5\nEPOCHS = 100\n",
}


def test_a_package_run_with_dash_m_follows_imports_at_any_depth() -> None:
    program, knobs, res = _resolve(PKG, "python -m fitlib.cli")
    assert program.invocation is not None and program.invocation.entry == "src/fitlib/cli.py"
    assert program.run_files is not None and {"src/fitlib/training/loop.py", "src/fitlib/nets.py",
                                              "src/fitlib/settings.py"} <= program.run_files
    eff_now = _effective(res, knobs)
    assert eff_now["Config.lr"] == 0.1 and eff_now["Config.hidden"] == 32
    assert "not run by" in res.why_not("LR")  # a script the command never runs


# ----------------------------------------------------------------------------------------------- Hydra

HYDRA = {
    "train.py": "import hydra\n\n@hydra.main(config_path='conf', config_name='config', version_base=None)\n"
                "def main(cfg):\n    print(cfg.optim.lr, cfg.trainer.epochs)\n",
    "conf/config.yaml": "defaults:\n  - optim: sgd\n  - _self_\ntrainer:\n  epochs: 3\n  batch_size: 32\n",
    "conf/optim/sgd.yaml": "lr: 0.05\nmomentum: 0.9\n",
    "conf/optim/adam.yaml": "lr: 0.001\nweight_decay: 0.0\n",
}


def test_hydra_composes_the_selected_group_files_and_key_value_overrides_win() -> None:
    program, knobs, res = _resolve(HYDRA, "python train.py trainer.epochs=2")
    # in the order Hydra applies them: the group, then the primary config's own values where `_self_` stands
    assert [c.path for c in program.configs] == ["conf/optim/sgd.yaml", "conf/config.yaml"]
    assert program.dotlist
    eff_now = _effective(res, knobs)
    assert eff_now["command:trainer.epochs"] == 2
    assert "overridden by trainer.epochs" in res.why_not("trainer.epochs")
    assert eff_now["conf/optim/sgd.yaml:lr"] == 0.05
    assert "not read by" in res.why_not("conf/optim/adam.yaml:lr")  # the group option not selected
    # selecting the other option on the command line switches which file takes effect
    program2, _knobs2, res2 = _resolve(HYDRA, "python train.py optim=adam")
    assert [c.path for c in program2.configs] == ["conf/optim/adam.yaml", "conf/config.yaml"]
    assert not res2.why_not("conf/optim/adam.yaml:lr") and res2.why_not("conf/optim/sgd.yaml:lr")
    # a YAML key moves to the command line as a dotted override
    virtual = eff.virtual_cli_knob(program, knobs["conf/optim/sgd.yaml:lr"])
    assert virtual is not None and virtual.name == "command:optim.lr"


HYDRA_EXPERIMENTS = {
    "train.py": "import hydra\n\n@hydra.main(config_path='conf', config_name='config', version_base=None)\n"
                "def main(cfg):\n    print(cfg.optim.lr, cfg.trainer.epochs, cfg.model.hidden)\n",
    "conf/config.yaml": "defaults:\n  - optim: adam\n  - model: mlp\n\ntrainer:\n  epochs: 10\n",
    "conf/exp1.yaml": "defaults:\n  - config\n  - _self_\n\noptim:\n  lr: 0.005\ntrainer:\n  epochs: 3\n",
    "conf/optim/adam.yaml": "lr: 0.001\nweight_decay: 0.0\n",
    "conf/model/mlp.yaml": "hidden: 64\n",
}


@pytest.mark.parametrize("flag", ["--config-name exp1", "-cn exp1", "--config-name=exp1"])
def test_hydra_s_config_name_flag_chooses_the_primary_config_and_its_values_win(flag: str) -> None:
    """`python train.py --config-name exp1`: exp1.yaml had been "not read" while adam.yaml's lr, which exp1
    overrides, stayed searchable. exp1 names `config` whole, whose groups come along; exp1's own values, after its
    defaults (`_self_` last), are the ones in effect."""
    program, knobs, res = _resolve(HYDRA_EXPERIMENTS, f"python train.py {flag}")
    assert [c.path for c in program.configs] == ["conf/optim/adam.yaml", "conf/model/mlp.yaml", "conf/config.yaml",
                                                 "conf/exp1.yaml"]
    eff_now = _effective(res, knobs)
    assert eff_now["optim.lr"] == 0.005 and eff_now["conf/exp1.yaml:trainer.epochs"] == 3
    assert "overridden by conf/exp1.yaml" in res.why_not("lr")
    assert "overridden by conf/exp1.yaml" in res.why_not("conf/config.yaml:trainer.epochs")
    assert eff_now["hidden"] == 64 and eff_now["weight_decay"] == 0.0


@pytest.mark.parametrize("command", ["make train", "bash -c 'echo hi'"])
def test_a_command_nightlab_cannot_read_rules_nothing_out(command: str) -> None:
    program, _knobs, res = _resolve(NANO, command)
    assert program.run_files is None
    assert not res.shadowed and not res.unused


def test_a_step_count_stays_a_multiple_of_the_evaluation_interval() -> None:
    """nanoGPT evaluates every eval_interval steps: 300 → 150 would end training before its last evaluation (the
    metric read would be the step-0 loss), 300 → 900 keeps the final evaluation; the schedule length follows."""
    import random as _random

    from nightlab.agent.policy.base import PolicyContext
    from nightlab.agent.policy.builtin import BuiltinPolicy
    from nightlab.agent.policy.state import Move

    files = {**NANO, "config/small.py": NANO_CONFIG + "eval_interval = 300\n"}
    ctx = PolicyContext(root="", metric="val loss", goal="minimize", editable=["config/small.py"], protected=[],
                        experiments=[], best_id=None, baseline_id=None, noise_floor=0.0, brief="", timeout_s=0.0,
                        runs_left=5, read_file=lambda _i, p: files.get(p, ""), rng=_random.Random(0),
                        command="python train.py config/small.py", tracked=sorted(files))
    policy = BuiltinPolicy()
    st = policy._state(ctx, None)
    key = "config/small.py:max_iters"
    assert policy._knob_proposal(ctx, st, Move(title="fewer", rationale="", changes={key: 150}), set()) is None
    prop = policy._knob_proposal(ctx, st, Move(title="more", rationale="", changes={key: 800}), set())
    assert prop is not None
    new = prop.edits[0].replace
    assert "max_iters = 900" in new and "lr_decay_iters = 900" in new


MERGED_AFTER_PARSE = '''\
import argparse
import yaml

p = argparse.ArgumentParser()
p.add_argument("--config", default=None)
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--epochs", type=int, default=5)
args = p.parse_args()
if args.config:
    vars(args).update(yaml.safe_load(open(args.config)))
print(args.lr, args.epochs)
'''
DEFAULTS_FROM_CONFIG = MERGED_AFTER_PARSE.replace(
    "args = p.parse_args()\nif args.config:\n    vars(args).update(yaml.safe_load(open(args.config)))\n",
    "p.set_defaults(**yaml.safe_load(open('configs/exp1.yaml')))\nargs = p.parse_args()\n")


def test_a_config_merged_onto_the_parsed_arguments_wins_over_the_command_line() -> None:
    """`vars(args).update(yaml.safe_load(...))` after `parse_args()`: the YAML's lr is what runs, so `--lr 0.05` on
    the command line changes nothing (it had been the setting searched, every edit of it dead). Loaded as argparse
    defaults instead (`set_defaults(**cfg)`), the command line wins as usual."""
    files = {"train.py": MERGED_AFTER_PARSE, "configs/exp1.yaml": "lr: 0.01\nepochs: 20\n"}
    program, knobs, res = _resolve(files, "python train.py --config configs/exp1.yaml --lr 0.05")
    assert program.config_over_cli
    assert "updates the parsed arguments" in res.why_not("command:--lr")
    assert _effective(res, knobs)["lr"] == 0.01
    files = {"train.py": DEFAULTS_FROM_CONFIG, "configs/exp1.yaml": "lr: 0.01\nepochs: 20\n"}
    program, knobs, res = _resolve(files, "python train.py --lr 0.05")
    assert not program.config_over_cli and _effective(res, knobs)["command:--lr"] == 0.05


LIGHTNING_CLI = {
    "main.py": "from lightning.pytorch.cli import LightningCLI\nfrom model import LitModel\n\n"
               "if __name__ == '__main__':\n    LightningCLI(LitModel)\n",
    "model.py": "import lightning as L\n\n\nclass LitModel(L.LightningModule):\n"
                "    def __init__(self, hidden_dim: int = 64, learning_rate: float = 1e-3, dropout: float = 0.1):\n"
                "        super().__init__()\n        self.save_hyperparameters()\n",
    "config.yaml": "trainer:\n  max_epochs: 10\nmodel:\n  hidden_dim: 128\n  init_args:\n    learning_rate: 0.001\n",
}


def test_lightning_cli_sets_constructor_arguments_from_its_config_and_flags() -> None:
    """`python main.py fit --config config.yaml --model.dropout 0.2`: LightningCLI builds LitModel from the config's
    `model:` section and the `--model.*` flags, so those `__init__` defaults are dead (they had all been searched);
    a default nothing sets is what runs."""
    program, knobs, res = _resolve(LIGHTNING_CLI, "python main.py fit --config config.yaml --model.dropout 0.2")
    assert program.signature_cli
    for name in ("LitModel.hidden_dim", "LitModel.learning_rate", "LitModel.dropout"):
        assert "LightningCLI sets it" in res.why_not(name), name
    effective = _effective(res, knobs)
    assert effective["model.hidden_dim"] == 128 and effective["command:--model.dropout"] == 0.2
    _program, _knobs, res = _resolve(LIGHTNING_CLI, "python main.py fit --config config.yaml")
    assert not res.why_not("LitModel.dropout")


def test_a_config_extending_a_base_config_brings_the_base_s_settings_into_effect() -> None:
    """`configs/small.yaml` says `defaults: base.yaml` and the repository's own loader merges it over the base: the
    base's settings that small.yaml leaves alone are the ones in effect (they had been "not read", and lr, weight
    decay and batch size set only there were never searched); those small.yaml sets are overridden."""
    files = {
        "train.py": "import argparse\nfrom config import load_config\n\np = argparse.ArgumentParser()\n"
                    "p.add_argument('--config', default='configs/default.yaml')\n"
                    "cfg = load_config(p.parse_args().config)\nprint(cfg)\n",
        "config.py": "import os\nimport yaml\n\n\ndef load_config(path):\n    cfg = yaml.safe_load(open(path))\n"
                     "    base = cfg.pop('defaults', None)\n    if base:\n"
                     "        merged = yaml.safe_load(open(os.path.join(os.path.dirname(path), base)))\n"
                     "        merged.update(cfg)\n        cfg = merged\n    return cfg\n",
        "configs/base.yaml": "model:\n  hidden: 64\noptim:\n  lr: 0.001\ntrain:\n  epochs: 10\n",
        "configs/small.yaml": "defaults: base.yaml\nmodel:\n  hidden: 32\ntrain:\n  epochs: 3\n",
        "configs/default.yaml": "model:\n  hidden: 128\noptim:\n  lr: 0.0003\n",
    }
    program, knobs, res = _resolve(files, "python train.py --config configs/small.yaml")
    assert [c.path for c in program.configs] == ["configs/base.yaml", "configs/small.yaml"]
    effective = _effective(res, knobs)
    assert effective["configs/base.yaml:optim.lr"] == 0.001 and effective["configs/small.yaml:model.hidden"] == 32
    assert "applied later" in res.why_not("configs/base.yaml:model.hidden")
    assert "not read" in res.why_not("configs/default.yaml:optim.lr")


def test_a_model_setting_its_own_attributes_does_not_make_the_config_win() -> None:
    """`self.__dict__.update(kw)` in a model class, `setattr(model, name, ...)`: no parsed arguments are overwritten,
    so the command line still wins over the config (only `vars(args).update(...)` of `parse_args()`'s result counts)."""
    train = MERGED_AFTER_PARSE.replace("    vars(args).update(yaml.safe_load(open(args.config)))\n",
                                       "    cfg = yaml.safe_load(open(args.config))\n    cfg.update(vars(args))\n")
    model = ("class Model:\n    def __init__(self, **kw):\n        self.__dict__.update(kw)\n"
             "        setattr(self, kw['n'], 1)\n")
    files = {"train.py": "import model\n" + train, "model.py": model, "configs/exp1.yaml": "lr: 0.01\n"}
    program, _knobs, res = _resolve(files, "python train.py --config configs/exp1.yaml --lr 0.05")
    assert not program.config_over_cli
    assert "overridden by --lr" in res.why_not("lr") and not res.why_not("command:--lr")
