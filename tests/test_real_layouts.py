"""Repository layouts real projects take, and where nightlab reads the run's settings in them (found by probing the
static analysis: reach, the command's invocation, which knob takes effect). Each test writes the repository itself:
a user's clone has no shared folder."""

from __future__ import annotations

from pathlib import Path

from nightlab.agent import code_reach
from nightlab.agent.policy.builtin import BuiltinPolicy

from helpers import tracked_repo as _repo

ARGPARSE_TRAIN = '''\
import argparse

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=3e-4)
p.add_argument("--batch_size", type=int, default=16)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--weight_decay", type=float, default=0.0)
args = p.parse_args()
for epoch in range(args.epochs):
    step(args.lr, args.batch_size, args.weight_decay)
print("val_loss", 0.5)
'''


def test_a_chained_command_trains_with_its_training_script(tmp_path: Path) -> None:
    """`python prepare.py && python train.py --lr 0.05`: the entry had been prepare.py, with no arguments, so the
    flags on the command overrode nothing and train.py's settings were "not run"."""
    files = {"prepare.py": "open('data.bin', 'wb').write(b'x')\n", "train.py": ARGPARSE_TRAIN}
    tracked = _repo(tmp_path, files)
    command = "python prepare.py && python train.py --lr 0.05"
    assert code_reach.reach(tmp_path, tracked, command).entry == "train.py"
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert "overridden by --lr" in knobs["--lr"].why_not
    assert knobs["--epochs"].searchable and knobs["command:--lr"].searchable


def test_a_shell_script_s_flags_are_edited_in_the_script_and_its_variables_shadow_defaults() -> None:
    """`bash scripts/train.sh` runs `python train.py --lr $LR --batch_size $BS --epochs 2`: the literal `--epochs 2`
    is searched where it is written (".sh" was no editable kind of file), and `--lr $LR` overrides the argparse
    default as much as a number would (the default had been searched, and changed nothing)."""
    script = ("#!/bin/bash\nset -e\nLR=${LR:-5e-4}\nBS=32\n"
              "python train.py \\\n    --lr $LR \\\n    --batch_size $BS \\\n    --epochs 2\n")
    files = {"train.py": ARGPARSE_TRAIN, "scripts/train.sh": script}
    knobs = BuiltinPolicy().knobs_in(files, command="bash scripts/train.sh")
    assert knobs["scripts/train.sh:--epochs"].searchable
    for default in ("--lr", "--batch_size", "--epochs"):
        assert not knobs[default].searchable and "overridden" in knobs[default].why_not, default
    # the variables' literals are the settings, edited at their assignments (tests/test_launch_configs.py)
    assert knobs["scripts/train.sh:--lr"].searchable and knobs["scripts/train.sh:--lr"].value == 5e-4
    assert knobs["--weight_decay"].searchable  # nothing sets it: its default is what runs


HYDRA_TRAIN = '''\
import hydra
from hydra.utils import instantiate


@hydra.main(version_base="1.3", config_path="../configs", config_name="train.yaml")
def main(cfg):
    model = instantiate(cfg.model)
    trainer = instantiate(cfg.trainer)
    trainer.fit(model)
    print("val_loss", 0.5)


if __name__ == "__main__":
    main()
'''


def test_a_hydra_template_s_settings_are_read_and_instantiate_uses_them() -> None:
    """The lightning-hydra-template's shape: `config_name="train.yaml"` (with its extension: no config had been
    found), groups whose keys only Hydra's `instantiate` reads (every one had been "not used by the code", leaving no
    knob to search), and a dotted override on the command line, which is used by being written there."""
    files = {
        "src/train.py": HYDRA_TRAIN,
        "configs/train.yaml": "defaults:\n  - model: mnist\n  - trainer: default\n  - _self_\n\nseed: 12345\n",
        "configs/model/mnist.yaml": "_target_: src.models.LitModule\noptimizer:\n  _target_: torch.optim.Adam\n"
                                    "  _partial_: true\n  lr: 0.001\n  weight_decay: 0.0\nnet:\n  lin1_size: 64\n",
        "configs/trainer/default.yaml": "_target_: lightning.Trainer\nmax_epochs: 10\ngradient_clip_val: 0.5\n",
    }
    command = "python src/train.py trainer.max_epochs=3"
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    searchable = {k for k, v in knobs.items() if v.searchable}
    assert {"optimizer.lr", "optimizer.weight_decay", "net.lin1_size", "gradient_clip_val"} <= searchable, \
        {k: v.why_not for k, v in knobs.items()}
    assert "overridden" in knobs["max_epochs"].why_not
    assert any(k.startswith("command:") and "max_epochs" in k for k in searchable)


def test_a_launcher_running_a_module_reaches_it(tmp_path: Path) -> None:
    """`accelerate launch -m pkg.train` and `torchrun --nproc_per_node=1 -m pkg.train`: no entry had been found (only
    `python -m` was), so the training code was neither editable nor read, and no flag overrode a default."""
    files = {"src/mypkg/__init__.py": "", "src/mypkg/train.py": ARGPARSE_TRAIN}
    tracked = _repo(tmp_path, files)
    for command in ("accelerate launch -m mypkg.train --lr 0.01",
                    "torchrun --standalone --nproc_per_node=1 -m mypkg.train --lr 0.01"):
        assert code_reach.reach(tmp_path, tracked, command).entry == "src/mypkg/train.py", command
        knobs = BuiltinPolicy().knobs_in(files, command=command)
        assert "overridden by --lr" in knobs["--lr"].why_not and knobs["--epochs"].searchable, command


def test_the_training_script_is_found_before_a_demo_main(tmp_path: Path) -> None:
    """A root `main.py` (a gradio demo) beside `src/train.py`: the root was searched for every conventional name
    before `src/`, so the demo became the entry. A `main.py` that trains is still found."""
    from nightlab.agent import project_init

    files = {"main.py": "import gradio as gr\n\ngr.Interface(fn=predict, inputs='text', outputs='text').launch()\n",
             "src/train.py": ARGPARSE_TRAIN}
    assert project_init.find_entry(tmp_path, _repo(tmp_path, files)) == "src/train.py"
    other = tmp_path / "other"
    other.mkdir()
    files = {"main.py": "import torch\nopt = torch.optim.SGD(params, lr=0.1)\nloss.backward()\n"}
    assert project_init.find_entry(other, _repo(other, files)) == "main.py"


def test_a_console_script_the_package_installs_runs_its_module(tmp_path: Path) -> None:
    """`mytrain --lr 0.01` where pyproject.toml's `[project.scripts]` says `mytrain = "mypkg.cli:main"`: no entry
    had been found, so the package's code was not read and the flag overrode nothing."""
    files = {"pyproject.toml": '[project]\nname = "mypkg"\n\n[project.scripts]\nmytrain = "mypkg.cli:main"\n',
             "src/mypkg/__init__.py": "", "src/mypkg/cli.py": ARGPARSE_TRAIN}
    tracked = _repo(tmp_path, files)
    assert code_reach.reach(tmp_path, tracked, "mytrain --lr 0.01").entry == "src/mypkg/cli.py"
    knobs = BuiltinPolicy().knobs_in(files, command="mytrain --lr 0.01")
    assert "overridden by --lr" in knobs["--lr"].why_not and knobs["--epochs"].searchable


def test_a_lightning_cli_main_is_an_entry(tmp_path: Path) -> None:
    """`main.py` that only builds `LightningCLI(Model, DataModule)` shows no training itself, yet it is the entry."""
    from nightlab.agent import project_init

    files = {"main.py": "from lightning.pytorch.cli import LightningCLI\nfrom model import Model\n\n"
                        "if __name__ == '__main__':\n    LightningCLI(Model)\n", "model.py": "class Model: ...\n"}
    assert project_init.find_entry(tmp_path, _repo(tmp_path, files)) == "main.py"


JSONARGPARSE_TRAIN = '''\
from jsonargparse import CLI


def train(lr: float = 1e-3, epochs: int = 5, batch_size: int = 32, dropout: float = 0.1) -> None:
    for _ in range(epochs):
        step(lr, batch_size, dropout)
    print("val_loss", 0.5)


if __name__ == "__main__":
    CLI(train)
'''


def test_jsonargparse_s_cli_sets_a_function_s_parameters_from_its_config_file_and_flags() -> None:
    """`python train.py --config config.yaml --batch_size 8` under jsonargparse's `CLI(train)`: the config's
    top-level `lr:` sets `train(lr=...)` and the flag sets `batch_size`, so those defaults are dead (they had been
    searched as if they ran: every edit of them changed nothing)."""
    files = {"train.py": JSONARGPARSE_TRAIN, "config.yaml": "lr: 0.01\nepochs: 20\n"}
    knobs = BuiltinPolicy().knobs_in(files, command="python train.py --config config.yaml --batch_size 8")
    for name in ("train.lr", "train.epochs"):
        assert not knobs[name].searchable and "in config.yaml (jsonargparse's CLI sets it)" in knobs[name].why_not
    assert "overridden by --batch_size" in knobs["train.batch_size"].why_not
    assert knobs["lr"].searchable and knobs["epochs"].searchable and knobs["command:--batch_size"].searchable
    assert knobs["train.dropout"].searchable  # nothing sets it: its default is what runs
    # a class handed to the CLI: its constructor's parameters, and `--lr` routes to them
    cls = JSONARGPARSE_TRAIN.replace("def train(", "class Trainer:\n    def __init__(self, ").replace(
        "    for _ in", "        for _ in").replace("        step(", "            step(").replace(
        '    print("val', '        print("val').replace("CLI(train)", "CLI(Trainer)")
    knobs = BuiltinPolicy().knobs_in({"train.py": cls, "config.yaml": "lr: 0.01\n"},
                                     command="python train.py --config config.yaml")
    assert "in config.yaml (jsonargparse's CLI sets it)" in knobs["Trainer.lr"].why_not
    assert knobs["Trainer.epochs"].searchable


def test_the_settings_handed_to_wandb_init_are_knobs_read_back_through_wandb_config() -> None:
    """W&B's own quickstart: `wandb.init(config={"learning_rate": 0.02, "epochs": 10})`, read back as
    `wandb.config.epochs` / `run.config["learning_rate"]`. The dict inside the call had given no knob at all."""
    train = '''\
import torch
import wandb

run = wandb.init(project="demo", config={"learning_rate": 0.02, "epochs": 10, "architecture": "CNN",
                                          "batch_size": 64})
opt = torch.optim.SGD(model.parameters(), lr=run.config["learning_rate"])
for epoch in range(wandb.config.epochs):
    train_one_epoch(opt)
print("val_loss", 0.5)
'''
    knobs = BuiltinPolicy().knobs_in({"train.py": train})
    assert knobs["wandb.config.learning_rate"].value == 0.02 and knobs["wandb.config.learning_rate"].searchable
    assert knobs["wandb.config.epochs"].searchable
    assert not knobs["wandb.config.batch_size"].searchable  # logged, never read: moving it changes nothing
    # a dict handed inline to a library's call is read by the library, key by key
    lgb = "import lightgbm as lgb\nbooster = lgb.train(params=dict(learning_rate=0.05, num_leaves=31), train_set=ds)\n"
    knobs = BuiltinPolicy().knobs_in({"train.py": lgb})
    assert knobs["train.params.learning_rate"].searchable and knobs["train.params.num_leaves"].searchable


def test_a_constant_set_again_below_is_the_knob_where_it_is_set_last(tmp_path: Path) -> None:
    """`LR = 0.1` … `LR = 0.05` (a notebook exported with a cell run again): the code reads the last value, so that
    line is the knob; a name set in a branch, read in between or computed from itself stays a variable."""
    import subprocess
    import sys

    train = "import sys\nLR = 0.1\nEPOCHS = 3\nLR = 0.05\nprint('lr', LR, 'epochs', EPOCHS)\n"
    policy = BuiltinPolicy()
    knobs = policy.search_knobs({"train.py": train}, command="python train.py", metric="val_loss")
    by_key = {k.key: k for k in knobs}
    assert by_key["LR"].knob.value == 0.05
    files, _ = policy.write_values({"train.py": train}, "python train.py", knobs, {"LR": 0.2})
    (tmp_path / "train.py").write_text(files["train.py"])
    out = subprocess.run([sys.executable, "train.py"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["lr", "0.2", "epochs", "3"]  # the edit takes effect
    for variable in ("LR = 0.1\nif len(sys.argv) > 1:\n    LR = 0.01\n", "LR = 0.1\nprint(LR)\nLR = 0.05\n",
                     "LR = 0.1\nLR = LR * 2\n"):
        knobs_of = BuiltinPolicy().knobs_in({"train.py": "import sys\n" + variable + "print('lr', LR)\n"})
        assert "LR" not in knobs_of, variable


def test_a_dataclass_built_from_a_yaml_splat_keeps_the_defaults_the_yaml_does_not_set() -> None:
    """`Config(**yaml.safe_load(open(args.config)))` with `configs/base.yaml` named on the command: the YAML's keys
    override their fields, and the fields it leaves out run at their defaults. Those had been "every call of
    Config(...) passes batch_size" (a splat counted as passing anything), so half the settings were never searched."""
    config = ("from dataclasses import dataclass\n\n\n@dataclass\nclass Config:\n    lr: float = 1e-3\n"
              "    epochs: int = 10\n    batch_size: int = 32\n    hidden: int = 128\n")
    for build in ("cfg = Config(**yaml.safe_load(open(a.config)))",
                  "raw = yaml.safe_load(open(a.config))\n    cfg = Config(**raw)"):
        train = ("import argparse\n\nimport yaml\n\nfrom pkg.config import Config\n\n\ndef main():\n"
                 "    p = argparse.ArgumentParser()\n    p.add_argument('--config', required=True)\n"
                 f"    a = p.parse_args()\n    {build}\n"
                 "    for _ in range(cfg.epochs):\n        step(cfg.lr, cfg.batch_size, cfg.hidden)\n\n\nmain()\n")
        files = {"pkg/__init__.py": "", "pkg/config.py": config, "pkg/train.py": train,
                 "configs/base.yaml": "lr: 0.0003\nepochs: 5\n"}
        knobs = BuiltinPolicy().knobs_in(files, command="python -m pkg.train --config configs/base.yaml")
        assert "overridden by configs/base.yaml" in knobs["Config.lr"].why_not, build
        assert knobs["Config.batch_size"].searchable and knobs["Config.hidden"].searchable, build
        assert knobs["lr"].searchable and knobs["epochs"].searchable
    # a mapping of unknown keys still counts as passing anything
    files["pkg/train.py"] = files["pkg/train.py"].replace("yaml.safe_load(open(a.config))", "load_anything(a.config)")
    knobs = BuiltinPolicy().knobs_in(files, command="python -m pkg.train --config configs/base.yaml")
    assert not knobs["Config.batch_size"].searchable
