"""Seeds held by a config system get a route, and a seed of the generator the data split draws from is never varied
(probe 3, W20 / W21: agent/seeding.py)."""

from __future__ import annotations

from nightlab.agent.seeding import SeedPlan, SeedRoute, plan_seeding


def _plan(files: dict[str, str], command: str = "python train.py", metric: str = "val_acc") -> SeedPlan:
    return plan_seeding(command, lambda p: files.get(p, ""), lambda p: p in files, sorted(files), metric)


def _changed(files: dict[str, str], plan: SeedPlan, seed: int = 3) -> dict[str, list[str]]:
    """The lines a re-run with `seed` (base 0) changes, per file."""
    return {p: [x for x in t.splitlines() if x not in files[p].splitlines()]
            for p, t in plan.edits(files.__getitem__, seed, 0).items()}


# ------------------------------------------------------------------------------------ W20: seeds in config systems

LIGHTNING = {
    "main.py": "from lightning.pytorch.cli import LightningCLI\nfrom model import Lit\n\n\n"
               "def main():\n    LightningCLI(Lit)\n\n\nif __name__ == '__main__':\n    main()\n",
    "model.py": '''\
import lightning as L
import torch


class Lit(L.LightningModule):
    def __init__(self, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.l = torch.nn.Linear(2, 2)

    def training_step(self, b, i):
        return self.l(b).mean()

    def validation_step(self, b, i):
        self.log("val_acc", self.l(b).mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
''',
    "config.yaml": "seed_everything: 1234\ntrainer:\n  max_epochs: 5\nmodel:\n  lr: 0.001\n",
}


def test_lightning_cli_seed_everything_in_the_config_is_passed_on_the_command_line() -> None:
    command = "python main.py fit --config config.yaml"
    plan = _plan(LIGHTNING, command)
    assert plan.route is SeedRoute.ARGUMENT and plan.argument == "--seed_everything" and plan.default == 1234
    assert plan.command(command, 0, 0) == command  # the baseline runs the config as it is
    assert plan.command(command, 2, 0) == "python main.py fit --config config.yaml --seed_everything=1236"


def test_lightning_cli_seed_is_held_when_a_datamodule_splits_from_the_global_torch_generator() -> None:
    files = dict(LIGHTNING)
    files["model.py"] += '''

class Data(L.LightningDataModule):
    def setup(self, stage=None):
        full = torch.utils.data.TensorDataset(torch.randn(1000, 2))
        self.train_ds, self.val_ds = torch.utils.data.random_split(full, [800, 200])
'''
    files["main.py"] = files["main.py"].replace("from model import Lit", "from model import Data, Lit").replace(
        "LightningCLI(Lit)", "LightningCLI(Lit, Data)")
    plan = _plan(files, "python main.py fit --config config.yaml")
    assert plan.route is SeedRoute.NONE and "also fixes the data split" in plan.how


TYRO = {"train.py": '''\
from dataclasses import dataclass

import torch
import tyro


@dataclass
class Config:
    lr: float = 1e-3
    data_seed: int = 7
    seed: int = 0


cfg = tyro.cli(Config)
torch.manual_seed(cfg.seed)
m = torch.nn.Linear(2, 1)
opt = torch.optim.SGD(m.parameters(), lr=cfg.lr)
loss = m(torch.randn(4, 2)).mean()
loss.backward()
opt.step()
print(f"val_loss={loss.item():.4f}")
'''}


def test_a_tyro_dataclass_seed_field_is_passed_as_its_flag() -> None:
    command = "python train.py --lr 1e-3"
    plan = _plan(TYRO, command, "val_loss")
    assert plan.route is SeedRoute.ARGUMENT and plan.argument == "--seed" and plan.default == 0
    assert plan.command(command, 5, 0) == "python train.py --lr 1e-3 --seed=5"
    # the same dataclass built in code (no tyro): the field's default is the literal re-runs change
    plain = {"train.py": TYRO["train.py"].replace("tyro.cli(Config)", "Config()")}
    plan = _plan(plain, "python train.py", "val_loss")
    assert plan.route is SeedRoute.CODE
    assert _changed(plain, plan) == {"train.py": ["    seed: int = 3"]}


def test_a_config_dict_seed_entry_is_changed_at_its_own_entry() -> None:
    files = {"train.py": '''\
from tensorflow import keras

config = {"learning_rate": 1e-3, "epochs": 42, "seed": 42}
keras.utils.set_random_seed(config["seed"])
(x, y), (xt, yt) = keras.datasets.mnist.load_data()
model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
h = model.fit(x, y, epochs=config["epochs"], validation_data=(xt, yt))
print(f"val_accuracy={h.history['val_accuracy'][-1]:.4f}")
'''}
    plan = _plan(files, "python train.py", "val_accuracy")
    assert plan.route is SeedRoute.CODE and plan.default == 42
    assert plan.edits(files.__getitem__, 0, 0) == {}
    assert _changed(files, plan) == {"train.py": ['config = {"learning_rate": 1e-3, "epochs": 42, "seed": 45}']}


def test_a_config_seed_that_also_fixes_the_split_is_not_varied() -> None:
    files = {"train.py": '''\
import numpy as np
import torch
from sklearn.model_selection import train_test_split

config = {"lr": 1e-3, "seed": 42}
torch.manual_seed(config["seed"])
X, y = np.load("x.npy"), np.load("y.npy")
X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.2, random_state=config["seed"])
model = torch.nn.Linear(4, 2)
print(f"val_acc={0.5:.4f}")
'''}
    plan = _plan(files, "python train.py")
    assert plan.route is SeedRoute.NONE and "train.py: config.seed" in plan.how


ML_COLLECTIONS = {
    "main.py": "from absl import app, flags\nfrom ml_collections import config_flags\nimport train\n"
               "FLAGS = flags.FLAGS\nconfig_flags.DEFINE_config_file('config', None, 'cfg')\n\n\n"
               "def main(argv):\n    train.run(FLAGS.config)\n\n\napp.run(main)\n",
    "configs/default.py": "import ml_collections\n\n\ndef get_config():\n    config = ml_collections.ConfigDict()\n"
                          "    config.learning_rate = 0.1\n    config.seed = 0\n    return config\n",
    "train.py": "import jax\nimport numpy as np\nimport optax\n\n\ndef run(config):\n"
                "    test_ds = {'image': np.load('x_test.npy')}\n    rng = jax.random.key(config.seed)\n"
                "    rng, init_rng = jax.random.split(rng)\n    tx = optax.sgd(config.learning_rate)\n"
                "    state = tx.init({'w': jax.random.normal(init_rng, (2,))})\n"
                "    test_accuracy = (test_ds['image'] @ state['w']).mean()  # measures what the seed trained\n"
                "    print(f'test_accuracy={test_accuracy:.4f}')\n",
}


def test_an_ml_collections_config_seed_is_passed_as_a_config_flag() -> None:
    command = "python main.py --config=configs/default.py"
    plan = _plan(ML_COLLECTIONS, command, "test_accuracy")
    assert plan.route is SeedRoute.ARGUMENT and plan.argument == "--config.seed"
    assert plan.command(command, 2, 0) == "python main.py --config=configs/default.py --config.seed=2"
    written = f"{command} --config.seed=10"  # already on the command line: that value is the one changed
    plan = _plan(ML_COLLECTIONS, written, "test_accuracy")
    assert plan.route is SeedRoute.ARGUMENT and plan.command(written, 2, 0).endswith("--config.seed=12")


def test_a_seed_in_a_yaml_file_the_code_loads_is_changed_in_the_yaml() -> None:
    files = {"config.yaml": "lr: 0.01\nepochs: 10\nseed: 17\n",
             "train.py": "import yaml\nimport torch\ncfg = yaml.safe_load(open('config.yaml'))\n"
                         "torch.manual_seed(cfg['seed'])\nm = torch.nn.Linear(2, 1)\n"
                         "opt = torch.optim.SGD(m.parameters(), lr=cfg['lr'])\n"
                         "for _ in range(cfg['epochs']):\n    opt.step()\nprint(f'val_acc={0.5:.4f}')\n"}
    plan = _plan(files, "python train.py")
    assert plan.route is SeedRoute.CODE and plan.default == 17
    assert _changed(files, plan) == {"config.yaml": ["seed: 20"]}
    # another stage reads the same file (it may split with the seed): the entry is left alone
    staged = {**files, "prepare.py": "import random\nimport yaml\ncfg = yaml.safe_load(open('config.yaml'))\n"
                                     "random.seed(cfg['seed'])\n"}
    assert _plan(staged, "python prepare.py && python train.py").route is SeedRoute.NONE
    # two seed entries of one name (`prepare.seed`, `train.seed`): which one the code reads is not known
    two = {**files, "config.yaml": "prepare:\n  seed: 5\ntrain:\n  lr: 0.01\n  epochs: 10\n  seed: 17\n"}
    assert _plan(two, "python train.py").route is SeedRoute.NONE


# ------------------------------------------------------------------ W21: the generator the split draws from


SPLIT_BY_PERMUTATION = '''\
import numpy as np
import torch
from model import Net
np.random.seed(42)
torch.manual_seed(42)
X, y = np.load("data/X.npy"), np.load("data/y.npy")
perm = np.random.permutation(len(X))
n_val = int(0.2 * len(X))
val_idx, train_idx = perm[:n_val], perm[n_val:]
model = Net()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(10):
    loss = model.loss(X[train_idx], y[train_idx])
    loss.backward()
    opt.step()
    acc = model.accuracy(X[val_idx], y[val_idx])
    print(f"epoch {epoch} val_acc={acc:.4f}")
'''


SHUFFLES_BATCHES_ONLY = '''\
import numpy as np
np.random.seed(42)
X, y = np.load("x.npy"), np.load("y.npy")
X_val, y_val = np.load("xv.npy"), np.load("yv.npy")
w = np.zeros(X.shape[1])
for epoch in range(10):
    perm = np.random.permutation(len(X))
    for i in range(0, len(X), 32):
        idx = perm[i:i + 32]
        w -= 0.1 * X[idx].T @ (X[idx] @ w - y[idx])
print(f"val_mse={np.mean((X_val @ w - y_val) ** 2):.4f}")
'''


def test_a_global_numpy_seed_the_split_draws_from_stays_and_the_torch_seed_is_varied() -> None:
    files = {"train.py": SPLIT_BY_PERMUTATION}
    plan = _plan(files)
    assert plan.route is SeedRoute.CODE
    assert [x.what for x in plan.literals] == ["torch.manual_seed(42)"]
    assert _changed(files, plan) == {"train.py": ["torch.manual_seed(45)"]}
    assert "np.random.seed(42)` also decides the data split" in plan.how
    # numpy draws that only shuffle the training batches (no held-out part is cut from them) leave it varied
    batches = {"train.py": SHUFFLES_BATCHES_ONLY}
    plan = _plan(batches, "python train.py", "val_mse")
    assert plan.route is SeedRoute.CODE and [x.what for x in plan.literals] == ["np.random.seed(42)"]


def test_a_shared_seed_constant_that_seeds_the_split_generator_is_left_whole() -> None:
    files = {"train.py": SPLIT_BY_PERMUTATION.replace("np.random.seed(42)\ntorch.manual_seed(42)",
                                                      "SEED = 42\nnp.random.seed(SEED)\ntorch.manual_seed(SEED)")}
    plan = _plan(files)
    assert plan.route is SeedRoute.NONE and "train.py: SEED" in plan.how and plan.edits(files.__getitem__, 3, 0) == {}


def test_an_unseeded_split_call_holds_the_seed_of_the_generator_it_reads() -> None:
    tts = {"train.py": '''\
import numpy as np
import torch
from sklearn.model_selection import train_test_split
np.random.seed(0)
torch.manual_seed(0)
X, y = np.load("x.npy"), np.load("y.npy")
X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.2)
print(f"val_acc={0.5:.4f}")
'''}
    plan = _plan(tts)
    assert [x.what for x in plan.literals] == ["torch.manual_seed(0)"]
    seeded = {"train.py": tts["train.py"].replace("test_size=0.2)", "test_size=0.2, random_state=1)")}
    assert len(_plan(seeded).literals) == 2  # the split has its own seed: both global seeds are varied
    rs = {"train.py": '''\
import torch
from torch.utils.data import TensorDataset, random_split
torch.manual_seed(0)
full = TensorDataset(torch.randn(1000, 4), torch.randint(0, 2, (1000,)))
train_ds, val_ds = random_split(full, [800, 200])
print(f"val_acc={0.5:.4f}")
'''}
    plan = _plan(rs)
    assert plan.route is SeedRoute.NONE and "torch.manual_seed(0)" in plan.how


def test_a_generator_object_that_draws_the_split_is_held_and_the_others_vary() -> None:
    files = {"train.py": '''\
import numpy as np
import torch
rng = np.random.default_rng(3)
torch.manual_seed(5)
X = np.load("x.npy")
perm = rng.permutation(len(X))
X_val, X_train = X[perm[:200]], X[perm[200:]]
print(f"val_acc={0.5:.4f}")
'''}
    plan = _plan(files)
    assert [x.what for x in plan.literals] == ["torch.manual_seed(5)"]
    inline = {"train.py": files["train.py"].replace("rng = np.random.default_rng(3)\n", "").replace(
        "rng.permutation", "np.random.default_rng(3).permutation")}
    assert [x.what for x in _plan(inline).literals] == ["torch.manual_seed(5)"]


def test_a_command_line_seed_that_also_seeds_the_split_generator_is_not_varied() -> None:
    files = {"train.py": '''\
import argparse
import numpy as np
import torch
p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
np.random.seed(args.seed)
torch.manual_seed(args.seed)
X = np.load("x.npy")
idx = np.arange(len(X))
np.random.shuffle(idx)
X_test, X_train = X[idx[:100]], X[idx[100:]]
print(f"test_acc={0.5:.4f}")
'''}
    for command in ("python train.py", "python train.py --seed 3"):
        plan = _plan(files, command, "test_acc")
        assert plan.route is SeedRoute.NONE and "also fixes the data split" in plan.how, command
    apart = {"train.py": files["train.py"].replace("np.random.shuffle(idx)", "np.random.default_rng(0).shuffle(idx)")}
    assert _plan(apart, "python train.py", "test_acc").argument == "--seed"


def test_a_global_seed_that_draws_an_evaluation_subsample_under_a_short_name_is_not_varied() -> None:
    # `xv, yv = xv_all[idx], yv_all[idx]` of `idx = torch.randperm(...)` under `torch.manual_seed(SEED)`: varying SEED
    # would measure other rows on every re-run
    files = {"train.py": '''\
import torch
from torch import nn

SEED = 0
torch.manual_seed(SEED)
d = torch.load("d.pt")
x, y, xv_all, yv_all = d["x"], d["y"], d["xv"], d["yv"]
idx = torch.randperm(len(xv_all))[:2000]
xv, yv = xv_all[idx], yv_all[idx]
model = nn.Linear(10, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(0, len(x), 32):
    opt.zero_grad()
    nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
    opt.step()
with torch.no_grad():
    acc = (model(xv).argmax(1) == yv).float().mean().item()
print(f"val_acc={acc:.4f}")
'''}
    plan = _plan(files)
    assert plan.route == SeedRoute.NONE and not plan.literals, plan.how
    assert "split" in plan.how


_RUN_GLUE = '''\
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed


@dataclass
class ModelArguments:
    model_name_or_path: str = field(default="bert-base-cased")


parser = HfArgumentParser((ModelArguments, TrainingArguments))
if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
    model_args, training_args = parser.parse_json_file(json_file=sys.argv[1])
else:
    model_args, training_args = parser.parse_args_into_dataclasses()
set_seed(training_args.seed)
trainer = Trainer(model=build(model_args), args=training_args)
trainer.train()
print(f"eval_accuracy={trainer.evaluate()['eval_accuracy']:.4f}")
'''


def test_transformers_training_arguments_take_their_seed_from_the_command_line() -> None:
    files = {"run_glue.py": _RUN_GLUE}
    command = "python run_glue.py --output_dir out --do_train --learning_rate 2e-5"
    plan = _plan(files, command, "eval_accuracy")
    assert plan.route == SeedRoute.ARGUMENT and plan.argument == "--seed" and plan.default == 42, plan.how
    assert "--seed" in plan.command(command, 1, 0) and "43" in plan.command(command, 1, 0)
    # the arguments read from a JSON file instead: its `"seed"` is the setting (the command's flags are not parsed)
    files = {"run_glue.py": _RUN_GLUE, "args.json": '{"output_dir": "out", "seed": 7}\n'}
    assert _plan(files, "python run_glue.py args.json", "eval_accuracy").route != SeedRoute.ARGUMENT
