"""How the builtin policy finds knobs and decides which it searches, on shapes from probe-shapes3 (W12-W18).

Each repository is a small string copy of a shape real training code takes: a nanoGPT package that exec's its
configurator from its own folder, Flax's ml_collections `--config.key=value`, torchvision's references
(`--wd ... dest="weight_decay"`, `--random-erase`), scikit-learn trees and grid searches, an old Flax example that
rebuilds its model in `eval_step`. Only static analysis runs here.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from nightlab.agent import code_reach
from nightlab.agent.policy import effective as eff
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.builtin import BuiltinPolicy


def _knobs(files: Mapping[str, str], command: str, metric: str) -> dict[str, tuple[object, bool, str]]:
    got = BuiltinPolicy().knobs_in(files, command=command, metric=metric)
    return {k: (v.value, v.searchable, v.why_not) for k, v in got.items()}


def _program(files: Mapping[str, str], command: str) -> eff.Program:
    return eff.analyse(command, lambda p: files.get(p, ""), lambda p: p in files, sorted(files))


# --------------------------------------------------------------------- W12: a configurator exec'd from __file__

_CONFIGURATOR = """\
import sys
from ast import literal_eval
for arg in sys.argv[1:]:
    if '=' not in arg:
        exec(open(arg).read())
    else:
        key, val = arg[2:].split('=')
        globals()[key] = literal_eval(val)
"""
_PKG_TRAIN = """\
import os
import torch
learning_rate = 6e-4
n_embd = 384
exec(open(os.path.join(os.path.dirname(__file__), 'configurator.py')).read())
model = torch.nn.Linear(n_embd, n_embd)
opt = torch.optim.AdamW(model.parameters(), lr=learning_rate)
loss = model(torch.randn(4, n_embd)).pow(2).mean()
loss.backward()
opt.step()
print(f"val_loss {loss.item():.4f}")
"""
PKG = {"src/pkg/__init__.py": "", "src/pkg/configurator.py": _CONFIGURATOR, "src/pkg/train.py": _PKG_TRAIN,
       "config/small.py": "learning_rate = 1e-3\nn_embd = 128\n", "pyproject.toml": "[project]\nname = 'pkg'\n"}


def test_configurator_exec_d_from_the_files_own_folder_runs_the_config_file_over_the_defaults() -> None:
    for command in ("python -m pkg.train config/small.py", "python src/pkg/train.py config/small.py"):
        program = _program(PKG, command)
        assert [c.path for c in program.configs] == ["config/small.py"], command
        assert program.exec_configs, command
        kn = _knobs(PKG, command, "val_loss")
        assert kn["config/small.py:learning_rate"][:2] == (1e-3, True), command
        _, searchable, why = kn["src/pkg/train.py:learning_rate"]
        assert not searchable and "overridden by config/small.py" in why, command


def test_a_pathlib_configurator_beside_the_file_counts_too_and_a_same_named_file_elsewhere_does_not() -> None:
    files = dict(PKG)
    files["src/pkg/train.py"] = _PKG_TRAIN.replace(
        "exec(open(os.path.join(os.path.dirname(__file__), 'configurator.py')).read())",
        "from pathlib import Path\nexec((Path(__file__).resolve().parent / 'configurator.py').read_text())")
    program = _program(files, "python src/pkg/train.py config/small.py")
    assert program.exec_configs and [c.path for c in program.configs] == ["config/small.py"]
    # the configurator read from the file's folder is src/pkg's, not one at the top that does something else
    moved = {p: t for p, t in PKG.items() if p != "src/pkg/configurator.py"}
    moved["configurator.py"] = _CONFIGURATOR
    assert not _program(moved, "python src/pkg/train.py config/small.py").exec_configs


def test_beside_file_reads_the_paths_built_from_the_files_folder() -> None:
    def beside(src: str) -> str | None:
        return code_reach.beside_file(ast.parse(src, mode="eval").body)

    assert beside("os.path.join(os.path.dirname(__file__), 'configurator.py')") == "configurator.py"
    assert beside("os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cfg', 'a.py')") == "cfg/a.py"
    assert beside("Path(__file__).parent / 'configurator.py'") == "configurator.py"
    assert beside("Path(__file__).resolve().parents[1] / 'configs' / 'a.yaml'") == "../configs/a.yaml"
    assert beside("Path(__file__).with_name('x.py')") == "x.py"
    assert beside("os.path.join(root, 'x.py')") is None
    assert beside("Path('conf') / 'x.py'") is None


def test_code_reach_follows_a_configurator_exec_d_beside_the_file(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    for p, t in PKG.items():
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_text(t)
    got = code_reach.reach(root, sorted(PKG), "python src/pkg/train.py config/small.py")
    assert got.files.get("src/pkg/configurator.py", "").startswith("exec'd")


# --------------------------------------------------------------------- W13: ml_collections --config.key=value

ML_COLLECTIONS = {
    "main.py": """\
from absl import app, flags
from ml_collections import config_flags
import train
FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training configuration.")
def main(argv):
    train.train_and_evaluate(FLAGS.config)
if __name__ == "__main__":
    app.run(main)
""",
    "configs/default.py": """\
import ml_collections
def get_config():
    config = ml_collections.ConfigDict()
    config.learning_rate = 0.1
    config.num_epochs = 10
    config.batch_size = 128
    config.model = ml_collections.ConfigDict()
    config.model.width = 256
    return config
""",
    "train.py": """\
import optax
def train_and_evaluate(config):
    tx = optax.sgd(config.learning_rate)
    for epoch in range(config.num_epochs):
        print(epoch, config.batch_size, config.model.width, tx)
    print(f"test_accuracy={0.5:.4f}")
""",
}


def test_ml_collections_config_flag_overrides_the_config_files_key() -> None:
    command = "python main.py --config=configs/default.py --config.num_epochs=5 --config.model.width=64"
    kn = _knobs(ML_COLLECTIONS, command, "test_accuracy")
    assert kn["get_config.config.num_epochs"][1:] == (False, "overridden by --config.num_epochs on the command line")
    assert kn["get_config.config.model.width"][1:] == (False,
                                                       "overridden by --config.model.width on the command line")
    assert kn["command:--config.num_epochs"][:2] == (5, True)
    assert kn["get_config.config.learning_rate"][:2] == (0.1, True)
    assert kn["get_config.config.batch_size"][:2] == (128, True)


def test_ml_collections_keys_can_move_to_the_command_line() -> None:
    program = _program(ML_COLLECTIONS, "python main.py --config=configs/default.py")
    assert [(c.path, c.prefix) for c in program.configs] == [("configs/default.py", "config")]
    k = next(k for k in knobmod.discover_files({"configs/default.py": ML_COLLECTIONS["configs/default.py"]})
             if k.name.endswith("num_epochs"))
    assert eff.cli_route(program, k) == "--config.num_epochs"


# --------------------------------------------------------------------- W14 / W15 / W16: argparse, names

TORCHVISION_ARGS = """\
import argparse
import torch
from torchvision import transforms
def get_args_parser():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", default=0.1, type=float)
    p.add_argument(
        "--wd",
        "--weight-decay",
        default=1e-4,
        type=float,
        metavar="W",
        dest="weight_decay",
    )
    p.add_argument("--random-erase", default=0.0, type=float, help="random erasing probability")
    p.add_argument("--random-seed", default=0, type=int)
    p.add_argument("--min-samples-split", default=4, type=int)
    p.add_argument("--val-split", default=0.1, type=float)
    return p
args = get_args_parser().parse_args()
torch.manual_seed(args.random_seed)
model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
aug = transforms.RandomErasing(p=args.random_erase)
print(args.min_samples_split, args.val_split)
loss = model(aug(torch.randn(8, 4))).mean()
loss.backward()
opt.step()
print(f"val_loss={loss.item():.4f}")
"""


def test_an_option_read_by_its_dest_is_used() -> None:
    kn = _knobs({"train.py": TORCHVISION_ARGS}, "python train.py", "val_loss")
    assert kn["--wd"][:2] == (1e-4, True)
    # the option's own declaration is no use of it: without `args.weight_decay` it is dead
    unused = TORCHVISION_ARGS.replace(", weight_decay=args.weight_decay", "")
    _, searchable, why = _knobs({"train.py": unused}, "python train.py", "val_loss")["--wd"]
    assert not searchable and why == "not used by the code"


def test_option_dest_follows_argparse() -> None:
    text = ("p.add_argument('--wd', '--weight-decay', default=1e-4, dest='weight_decay')\n"
            "p.add_argument('--lr', '--learning-rate', default=0.1)\n"
            "p.add_argument('-b', '--batch-size', default=32)\n")
    assert eff.option_dest(text, "--wd") == ("weight_decay", 1, 1)
    assert eff.option_dest(text, "--lr") == ("lr", 2, 2)  # argparse's dest: the first long option
    assert eff.option_dest(text, "-b") == ("batch_size", 3, 3)
    assert eff.option_dest(text, "--epochs") is None


def test_random_augmentation_strength_is_searched_and_a_random_seed_is_not() -> None:
    kn = _knobs({"train.py": TORCHVISION_ARGS}, "python train.py", "val_loss")
    assert kn["--random-erase"][:2] == (0.0, True)
    assert not kn["--random-seed"][1]
    assert "--val-split" not in kn or not kn["--val-split"][1]
    k = knobmod.Knob("--random-erase", "train.py", 0.25, "other", "argparse", 1, "")
    space = knobmod.search_space(k)
    assert space is not None and space.high <= 1.0  # a probability


def test_a_tree_split_rule_is_a_knob_and_a_data_split_is_not() -> None:
    assert knobmod.classify("min_samples_split") == "other"
    assert knobmod.classify("min_split") == "other"
    assert knobmod.classify("min_split_gain") == "other"
    for data_split in ("val_split", "validation_split", "n_splits", "split", "test_split_size", "min_val_split"):
        assert knobmod.classify(data_split) == "split", data_split
    kn = _knobs({"train.py": TORCHVISION_ARGS}, "python train.py", "val_loss")
    assert kn["--min-samples-split"][:2] == (4, True)
    forest = """\
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
X, y = np.load("x.npy"), np.load("y.npy")
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
clf = RandomForestClassifier(n_estimators=200, min_samples_split=4, min_samples_leaf=2)
clf.fit(X_tr, y_tr)
print(f"test_acc={clf.score(X_te, y_te):.4f}")
"""
    kn = _knobs({"train.py": forest}, "python train.py", "test_acc")
    assert kn["RandomForestClassifier.min_samples_split"][:2] == (4, True)
    space = knobmod.search_space(knobmod.Knob("RandomForestClassifier.min_samples_split", "train.py", 4, "other",
                                              "call", 6, ""))
    assert space is not None and space.low >= 2  # scikit-learn refuses min_samples_split=1
    params = {"params.yaml": "train:\n  seed: 20170428\n  n_estimators: 50\n  min_split: 0.01\n",
              "train.py": "import yaml\nfrom sklearn.ensemble import RandomForestClassifier\n"
                          "p = yaml.safe_load(open('params.yaml'))['train']\n"
                          "clf = RandomForestClassifier(n_estimators=p['n_estimators'],\n"
                          "                             min_samples_split=p['min_split'])\n"
                          "clf.fit([[0], [1]], [0, 1])\nprint(f\"roc_auc={clf.score([[0]], [0]):.4f}\")\n"}
    kn = _knobs(params, "python train.py", "roc_auc")
    assert kn["train.min_split"][:2] == (0.01, True)


# --------------------------------------------------------------------- W17: a grid search refits the estimator

GRID = """\
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
pipe = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(C=1.0, max_iter=1000))])
search = GridSearchCV(pipe, {"clf__C": [0.1, 1.0, 10.0]}, cv=5)
search.fit(X_tr, y_tr)
print(f"test_acc={search.score(X_te, y_te):.4f}")
"""


def test_a_parameter_the_search_grid_sets_is_not_searched() -> None:
    kn = _knobs({"train.py": GRID}, "python train.py", "test_acc")
    _, searchable, why = kn["LogisticRegression.C"]
    assert not searchable and "search grid (clf__C)" in why
    assert kn["LogisticRegression.max_iter"][:2] == (1000, True)
    # the grid as a variable, on a bare estimator, under its keyword
    bare = GRID.replace('pipe = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(C=1.0, '
                        'max_iter=1000))])\nsearch = GridSearchCV(pipe, {"clf__C": [0.1, 1.0, 10.0]}, cv=5)',
                        'grid = [{"C": [0.1, 1.0, 10.0]}]\nsearch = GridSearchCV(LogisticRegression(C=1.0, '
                        'max_iter=1000), param_grid=grid, cv=5)')
    assert bare != GRID
    kn = _knobs({"train.py": bare}, "python train.py", "test_acc")
    assert not kn["LogisticRegression.C"][1] and kn["LogisticRegression.max_iter"][1]
    # without the search, C is searched
    plain = GRID.replace('search = GridSearchCV(pipe, {"clf__C": [0.1, 1.0, 10.0]}, cv=5)', "search = pipe")
    assert _knobs({"train.py": plain}, "python train.py", "test_acc")["LogisticRegression.C"][1]


# --------------------------------------------------------------------- W18: the model rebuilt in an eval step

FLAX = """\
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax.training import train_state
LEARNING_RATE = 0.1
HIDDEN = 256
NUM_EVAL = 1000
class MLP(nn.Module):
    hidden: int = 256
    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(nn.relu(nn.Dense(self.hidden)(x)))
@jax.jit
def train_step(state, batch):
    def loss_fn(params):
        logits = state.apply_fn({"params": params}, batch["image"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    grads = jax.grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads)
@jax.jit
def eval_step(params, batch):
    logits = MLP(hidden=HIDDEN).apply({"params": params}, batch["image"][:NUM_EVAL])
    return jnp.mean(jnp.argmax(logits, -1) == batch["label"][:NUM_EVAL])
model = MLP(hidden=HIDDEN)
d = np.load("d.npz")
params = model.init(jax.random.PRNGKey(0), jnp.ones([1, 784]))["params"]
state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.sgd(LEARNING_RATE))
for epoch in range(5):
    state = train_step(state, {"image": d["x_train"], "label": d["y_train"]})
    print(f"test_accuracy={eval_step(state.params, {'image': d['x_test'], 'label': d['y_test']}):.4f}")
"""


def test_a_model_width_the_eval_step_rebuilds_the_model_with_is_searched() -> None:
    kn = _knobs({"train.py": FLAX}, "python train.py", "test_accuracy")
    assert kn["HIDDEN"][:2] == (256, True)
    assert kn["LEARNING_RATE"][:2] == (0.1, True)
    # a constant the eval step also uses other than to build the model stays fixed
    scaled = FLAX.replace('batch["image"][:NUM_EVAL])', 'batch["image"][:NUM_EVAL] * HIDDEN)')
    _, searchable, why = _knobs({"train.py": scaled}, "python train.py", "test_accuracy")["HIDDEN"]
    assert not searchable and "fixed" in why


# --------------------------------------------------------------------- W19: fairseq's architecture defaults

FAIRSEQ = {
    "train.py": """\
import torch
from mini_fairseq import models, options
def main(args):
    model = models.build_model(args)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss = model(torch.zeros(2, dtype=torch.long)).mean()
    loss.backward()
    opt.step()
    print(f"valid_loss {loss.item():.3f}")
if __name__ == "__main__":
    main(options.parse_args_and_arch(options.get_training_parser()))
""",
    "mini_fairseq/__init__.py": "",
    "mini_fairseq/options.py": """\
import argparse
from mini_fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY
def get_training_parser():
    parser = argparse.ArgumentParser(allow_abbrev=False, argument_default=argparse.SUPPRESS)
    parser.add_argument("--arch", "-a", default="lm_base", choices=ARCH_MODEL_REGISTRY.keys())
    parser.add_argument("--lr", default=5e-4, type=float)
    return parser
def parse_args_and_arch(parser):
    args, _ = parser.parse_known_args()
    ARCH_MODEL_REGISTRY[args.arch].add_args(parser)
    args = parser.parse_args()
    ARCH_CONFIG_REGISTRY[args.arch](args)
    return args
""",
    "mini_fairseq/models.py": """\
from torch import nn
MODEL_REGISTRY, ARCH_MODEL_REGISTRY, ARCH_CONFIG_REGISTRY = {}, {}, {}
def register_model(name):
    def wrap(cls):
        MODEL_REGISTRY[name] = cls
        return cls
    return wrap
def register_model_architecture(model_name, arch_name):
    def wrap(fn):
        ARCH_MODEL_REGISTRY[arch_name] = MODEL_REGISTRY[model_name]
        ARCH_CONFIG_REGISTRY[arch_name] = fn
        return fn
    return wrap
def build_model(args):
    return ARCH_MODEL_REGISTRY[args.arch].build_model(args)
@register_model("lm")
class LanguageModel(nn.Module):
    @staticmethod
    def add_args(parser):
        parser.add_argument("--dropout", type=float)
        parser.add_argument("--decoder-embed-dim", type=int)
        parser.add_argument("--decoder-layers", type=int)
    def __init__(self, dim, layers, dropout):
        super().__init__()
        self.embed = nn.Embedding(100, dim)
        self.lstm = nn.LSTM(dim, dim, num_layers=layers, dropout=dropout)
    @classmethod
    def build_model(cls, args):
        return cls(args.decoder_embed_dim, args.decoder_layers, args.dropout)
    def forward(self, tokens):
        return self.lstm(self.embed(tokens))[0]
@register_model_architecture("lm", "lm_base")
def base_lm_architecture(args):
    args.dropout = getattr(args, "dropout", 0.1)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 512)
    args.decoder_layers = getattr(args, "decoder_layers", 2)
@register_model_architecture("lm", "lm_small")
def small_lm_architecture(args):
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 128)
    args.decoder_layers = getattr(args, "decoder_layers", 1)
    base_lm_architecture(args)
""",
}


def test_the_chosen_architectures_getattr_defaults_are_searched() -> None:
    kn = _knobs(FAIRSEQ, "python train.py --lr 1e-3", "valid_loss")
    assert kn["base_lm_architecture.decoder_embed_dim"][:2] == (512, True)
    assert kn["base_lm_architecture.decoder_layers"][:2] == (2, True)
    assert kn["base_lm_architecture.dropout"][:2] == (0.1, True)
    _, searchable, why = kn["small_lm_architecture.decoder_embed_dim"]
    assert not searchable and "--arch lm_base does not run it" in why
    # the edit goes to the getattr fallback
    text = FAIRSEQ["mini_fairseq/models.py"]
    k = next(k for k in knobmod.discover("mini_fairseq/models.py", text)
             if k.name == "base_lm_architecture.decoder_embed_dim")
    assert 'getattr(args, "decoder_embed_dim", 1024)' in knobmod.rewrite(text, k, 1024)


def test_a_smaller_architecture_fills_its_settings_before_the_base_one() -> None:
    kn = _knobs(FAIRSEQ, "python train.py --arch lm_small --decoder-layers 3", "valid_loss")
    assert kn["small_lm_architecture.decoder_embed_dim"][:2] == (128, True)
    _, searchable, why = kn["base_lm_architecture.decoder_embed_dim"]
    assert not searchable and "small_lm_architecture()" in why
    assert kn["base_lm_architecture.dropout"][:2] == (0.1, True)  # the small one leaves dropout to the base
    # the command's --decoder-layers wins over both fallbacks
    assert not kn["small_lm_architecture.decoder_layers"][1]
    assert "--decoder-layers" in kn["small_lm_architecture.decoder_layers"][2]


# --------------------------------------------------------------------- boosting penalties off at their default 0

_LGBM = """\
import argparse
import lightgbm as lgb
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

p = argparse.ArgumentParser()
p.add_argument("--learning-rate", type=float, default=0.1)
p.add_argument("--reg-lambda", type=float, default=0.0)
p.add_argument("--num-leaves", type=int, default=31)
args = p.parse_args()
X, y = load_breast_cancer(return_X_y=True)
Xt, Xv, yt, yv = train_test_split(X, y, test_size=0.25, random_state=0)
clf = lgb.LGBMClassifier(learning_rate=args.learning_rate, reg_lambda=args.reg_lambda, reg_alpha=0.0,
                         num_leaves=args.num_leaves)
clf.fit(Xt, yt)
print(f"roc_auc={roc_auc_score(yv, clf.predict_proba(Xv)[:, 1]):.4f}")
"""


def test_a_boosting_penalty_off_at_zero_is_searched_from_off_on_a_log_scale() -> None:
    got = BuiltinPolicy().knobs_in({"train.py": _LGBM}, command="python train.py", metric="roc_auc")
    penalties = {k: v for k, v in got.items() if "reg" in k}
    assert penalties and all(v.searchable for v in penalties.values()), {k: v.why_not for k, v in got.items()}
    for k in penalties.values():
        space = knobmod.search_space(k.knob)
        assert space is not None and space.allow_zero and space.log and space.low <= 1e-3 and space.high >= 1.0
    # a name that is a penalty only in boosting stays unsearched at zero (a focal loss' `gamma = 0` is plain CE)
    assert knobmod.search_space(knobmod.Knob(name="gamma", path="t.py", value=0.0, kind="other", style="python",
                                             line=1, context="gamma = 0.0")) is None


def test_a_params_file_that_sizes_an_ensemble_by_a_short_name_holds_knobs() -> None:
    # DVC's example-get-started: `train: {n_est: 50, min_split: 0.01}`; no key of a better-known name beside them
    found = {k.name: k.kind for k in knobmod.discover_files({"params.yaml": "train:\n  n_est: 50\n  min_split: 2\n"})}
    assert found == {"train.n_est": "steps", "train.min_split": "other"}
    assert knobmod.classify("nrounds") == knobmod.classify("ntree") == "steps"
    assert knobmod.classify("est_loss") == "other"


def test_how_deepspeed_runs_is_never_searched_and_its_optimizer_is() -> None:
    ds = ('{"train_micro_batch_size_per_gpu": 16, "optimizer": {"type": "AdamW", "params": {"lr": 3e-5, '
          '"weight_decay": 0.01}}, "zero_optimization": {"stage": 2, "reduce_bucket_size": 5e8}, '
          '"fp16": {"enabled": true, "initial_scale_power": 16}}\n')
    train = '''\
import argparse
import json
import deepspeed
p = argparse.ArgumentParser()
p.add_argument("--deepspeed_config", default="ds_config.json")
args = p.parse_args()
cfg = json.load(open(args.deepspeed_config))
engine, _, _, _ = deepspeed.initialize(model=build(), config=cfg)
for xb, yb in batches():
    loss = engine(xb, yb)
    engine.backward(loss)
    engine.step()
print(f"val_loss={evaluate(engine):.4f}")
'''
    got = _knobs({"train.py": train, "ds_config.json": ds}, "deepspeed train.py --deepspeed_config ds_config.json",
                 "val_loss")
    assert got["optimizer.params.lr"][1] and got["optimizer.params.weight_decay"][1], got
    for key in ("zero_optimization.stage", "zero_optimization.reduce_bucket_size", "fp16.initial_scale_power"):
        assert not got[key][1] and "how the program runs" in got[key][2], (key, got[key])
    # YOLO's model yaml: the number of classes is the task's, not a setting
    assert knobmod.classify("nc") == "fixed"


_ABSL = """\
from absl import app, flags
import torch

FLAGS = flags.FLAGS
flags.DEFINE_float("learning_rate", 0.1, "step size")
flags.DEFINE_integer("batch_size", 128, "examples a step")
flags.DEFINE_integer("num_epochs", 10, "passes over the data")
flags.DEFINE_enum("optimizer", "sgd", ["sgd", "adam"], "which optimizer")
flags.DEFINE_integer("seed", 0, "random seed")


def main(_):
    torch.manual_seed(FLAGS.seed)
    acc = train(FLAGS.learning_rate, FLAGS.batch_size, FLAGS.num_epochs, FLAGS.optimizer)
    print(f"val_acc={acc:.4f}")


if __name__ == "__main__":
    app.run(main)
"""


def test_absl_flag_defaults_are_knobs_the_command_line_overrides() -> None:
    got = _knobs({"train.py": _ABSL}, "python train.py --num_epochs=5", "val_acc")
    assert got["--learning_rate"][:2] == (0.1, True) and got["--batch_size"][:2] == (128, True), got
    assert got["--optimizer"][:2] == ("sgd", True), got
    assert got["--num_epochs"][1] is False and "command line" in got["--num_epochs"][2]
    assert got["command:--num_epochs"][:2] == (5, True)
    assert got["--seed"][1] is False
    knob = next(k for k in knobmod.discover_files({"train.py": _ABSL}) if k.name == "--learning_rate")
    assert 'flags.DEFINE_float("learning_rate", 0.3, "step size")' in knobmod.rewrite(_ABSL, knob, 0.3)


def test_an_absl_seed_flag_is_passed_on_the_command_line() -> None:
    from nightlab.agent.seeding import SeedRoute, plan_seeding

    files = {"train.py": _ABSL}
    plan = plan_seeding("python train.py", files.get, lambda p: p in files, sorted(files), "val_acc")
    assert plan.route == SeedRoute.ARGUMENT and "--seed" in plan.how, plan.how


def test_fastai_fits_take_their_epochs_and_learning_rate_by_position() -> None:
    src = """\
from fastai.vision.all import *
dls = ImageDataLoaders.from_folder(untar_data(URLs.MNIST_SAMPLE), bs=64)
learn = vision_learner(dls, resnet18, metrics=accuracy)
learn.fit_one_cycle(4, 1e-3)
print(f"accuracy={learn.validate()[1]:.4f}")
"""
    got = _knobs({"train.py": src}, "python train.py", "accuracy")
    assert got["fit_one_cycle.n_epoch"][:2] == (4, True) and got["fit_one_cycle.lr_max"][:2] == (1e-3, True), got
    knob = next(k for k in knobmod.discover_files({"train.py": src}) if k.name == "fit_one_cycle.lr_max")
    assert "learn.fit_one_cycle(4, 3e-3)" in knobmod.rewrite(src, knob, 0.003)  # in the literal's own style


def test_sacred_with_overrides_the_config_functions_locals() -> None:
    src = """\
from sacred import Experiment
ex = Experiment("mnist")


@ex.config
def cfg():
    lr = 0.1
    epochs = 20
    hidden = 256


@ex.automain
def main(lr, epochs, hidden):
    print(f"val_acc={train(lr, epochs, hidden):.4f}")
"""
    got = _knobs({"train.py": src}, "python train.py with lr=0.01 epochs=5", "val_acc")
    assert got["cfg.lr"][1] is False and "command line" in got["cfg.lr"][2], got
    assert got["cfg.hidden"][:2] == (256, True) and got["command:lr"][:2] == (0.01, True)
    # without `with`, the config's own values are what runs
    assert _knobs({"train.py": src}, "python train.py", "val_acc")["cfg.lr"][:2] == (0.1, True)
