"""Shapes of a fifth probe of code no one here wrote: detectron2's yacs configs (`_BASE_:`, `_C.SOLVER.BASE_LR`
defaults, `KEY VALUE` words on the command), click and typer command lines, config dataclasses whose fields are
computed at run time."""

from __future__ import annotations

from nightlab.agent import measuring
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.seeding import SeedRoute, plan_seeding

YACS_COMMAND = "python tools/train_net.py --config-file configs/retina.yaml SOLVER.BASE_LR 0.005 SOLVER.MAX_ITER 2000"
YACS = {
    "tools/train_net.py": '''\
import argparse
import sys

sys.path.insert(0, ".")
from detcore.config import get_cfg  # noqa: E402
from detcore.engine import Trainer, evaluate  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--config-file", default="")
parser.add_argument("opts", default=None, nargs=argparse.REMAINDER)
args = parser.parse_args()
cfg = get_cfg()
cfg.merge_from_file(args.config_file)
cfg.merge_from_list(args.opts)
trainer = Trainer(cfg)
trainer.train()
print(f"bbox/AP={evaluate(trainer.model, cfg.DATASETS.TEST[0]):.3f}")
''',
    "detcore/__init__.py": "",
    "detcore/config/__init__.py": "from .defaults import get_cfg  # noqa: F401\n",
    "detcore/config/defaults.py": '''\
from yacs.config import CfgNode as CN

_C = CN()
_C.MODEL = CN()
_C.MODEL.FOCAL_LOSS_ALPHA = 0.25
_C.MODEL.FOCAL_LOSS_GAMMA = 2.0
_C.DATASETS = CN()
_C.DATASETS.TEST = ("coco_2017_val",)
_C.TEST = CN()
_C.TEST.DETECTIONS_PER_IMAGE = 100
_C.SOLVER = CN()
_C.SOLVER.BASE_LR = 0.01
_C.SOLVER.MAX_ITER = 90000
_C.SOLVER.IMS_PER_BATCH = 16
_C.SOLVER.MOMENTUM = 0.9


def get_cfg():
    return _C.clone()
''',
    "detcore/engine.py": '''\
import torch


class Trainer:
    def __init__(self, cfg):
        self.cfg = cfg
        self.model = torch.nn.Linear(4, 4)

    def train(self):
        opt = torch.optim.SGD(self.model.parameters(), lr=self.cfg.SOLVER.BASE_LR,
                              momentum=self.cfg.SOLVER.MOMENTUM)
        for _ in range(self.cfg.SOLVER.MAX_ITER):
            out = self.model(torch.randn(self.cfg.SOLVER.IMS_PER_BATCH, 4))
            loss = self.cfg.MODEL.FOCAL_LOSS_ALPHA * out.abs().pow(self.cfg.MODEL.FOCAL_LOSS_GAMMA).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()


def evaluate(model, dataset):
    return 0.0
''',
    "configs/base.yaml": "SOLVER:\n  IMS_PER_BATCH: 8\n  BASE_LR: 0.02\n",
    "configs/retina.yaml": "_BASE_: \"base.yaml\"\nMODEL:\n  FOCAL_LOSS_GAMMA: 1.5\nSOLVER:\n  WEIGHT_DECAY: 0.0001\n",
}


def test_yacs_defaults_a_config_or_the_command_sets_are_not_searched_and_the_base_is_followed() -> None:
    knobs = BuiltinPolicy().knobs_in(YACS, command=YACS_COMMAND, metric="bbox/AP")
    got = {k: (v.searchable, v.why_not) for k, v in knobs.items()}
    # detectron2's `_BASE_:` (upper case) is followed: the base's batch size is the one in effect
    assert got["SOLVER.IMS_PER_BATCH"][0], got
    assert "overridden by configs/base.yaml" in got["_C.SOLVER.IMS_PER_BATCH"][1]
    assert "overridden by SOLVER.BASE_LR on the command line" in got["_C.SOLVER.BASE_LR"][1]
    assert "overridden by configs/retina.yaml" in got["_C.MODEL.FOCAL_LOSS_GAMMA"][1]
    # what nothing overrides stays the setting to search
    assert got["_C.SOLVER.MOMENTUM"][0] and got["_C.MODEL.FOCAL_LOSS_ALPHA"][0]


def test_yacs_measurement_keys_given_as_words_on_the_command_are_held() -> None:
    assert measuring.command_measurement_changes(YACS_COMMAND, YACS_COMMAND + " TEST.DETECTIONS_PER_IMAGE 300") \
        == ["TEST.DETECTIONS_PER_IMAGE"]
    assert measuring.command_measurement_changes(
        YACS_COMMAND, YACS_COMMAND + " DATASETS.TEST \"('coco_2017_train',)\"") == ["DATASETS.TEST"]
    assert measuring.command_measurement_changes(
        YACS_COMMAND, YACS_COMMAND.replace("SOLVER.BASE_LR 0.005", "SOLVER.BASE_LR 0.01")) == []


CLICK = {"train.py": '''\
import click
import torch


@click.command()
@click.option("--lr", default=1e-3, type=float)
@click.option("--hidden", default=256)
@click.option("--val-size", default=10000)
def main(lr, hidden, val_size):
    data = torch.load("data.pt")
    x, y = data["x"][:-val_size], data["y"][:-val_size]
    xv, yv = data["x"][-val_size:], data["y"][-val_size:]
    model = torch.nn.Linear(x.shape[1], hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"val_acc={(model(xv).argmax(1) == yv).float().mean():.4f}")


if __name__ == "__main__":
    main()
'''}


def test_a_click_option_that_sets_the_measurement_is_held_in_its_default() -> None:
    def guard(old: str, new: str) -> list[str]:
        return measuring.measurement_edits(CLICK.get, ["train.py"], {"train.py": CLICK["train.py"].replace(old, new)},
                                           "val_acc")

    assert guard('"--val-size", default=10000', '"--val-size", default=500') == \
        ["train.py: --val-size (its default) (a setting of the measurement)"]
    assert guard('"--hidden", default=256', '"--hidden", default=512') == []


TYPER = {"train.py": '''\
import torch
import typer


def main(lr: float = typer.Option(1e-3, help="learning rate"), epochs: int = typer.Option(10, "--epochs"),
         batch_size: int = 32):
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        loss = model(torch.randn(batch_size, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"val_loss={loss.item():.4f}")


if __name__ == "__main__":
    typer.run(main)
'''}


def test_a_typer_option_s_default_is_a_knob() -> None:
    knobs = BuiltinPolicy().knobs_in(TYPER, command="python train.py", metric="val_loss")
    assert knobs["main.lr"].value == 1e-3 and knobs["main.lr"].searchable
    assert knobs["main.epochs"].value == 10
    assert knobs["main.batch_size"].value == 32
    # `--epochs 3` on the command sets the parameter: its default is dead
    knobs = BuiltinPolicy().knobs_in(TYPER, command="python train.py --epochs 3", metric="val_loss")
    assert not knobs["main.epochs"].searchable and "--epochs" in knobs["main.epochs"].why_not


TYPER_SEEDED = {"train.py": TYPER["train.py"].replace(
    "         batch_size: int = 32):",
    "         batch_size: int = 32, threshold: float = 0.5, seed: int = 13):").replace(
    "    model = torch.nn.Linear(4, 2)", "    torch.manual_seed(seed)\n    model = torch.nn.Linear(4, 2)").replace(
    '    print(f"val_loss={loss.item():.4f}")',
    '    acc = evaluate(model, threshold)\n    print(f"val_acc={acc:.4f}")').replace(
    "def main(", """def evaluate(model, threshold):
    with torch.no_grad():
        return float((torch.sigmoid(model(XV)[:, 0]) > threshold).float().eq(YV).float().mean())


XV, YV = torch.linspace(-1, 1, 256).reshape(64, 4), torch.ones(64)


def main(""")}


def test_a_typer_command_s_seed_is_passed_on_the_command_and_a_threshold_only_the_evaluation_reads_is_held() -> None:
    files = TYPER_SEEDED
    plan = plan_seeding("python train.py", lambda p: files.get(p, ""), lambda p: p in files, sorted(files), "val_acc")
    assert plan.route is SeedRoute.ARGUMENT and plan.argument == "--seed" and plan.default == 13, plan.how
    assert plan.command("python train.py", 3, 0) == "python train.py --seed=16"

    def guard(old: str, new: str) -> list[str]:
        assert old in files["train.py"]
        return measuring.measurement_edits(files.get, ["train.py"], {"train.py": files["train.py"].replace(old, new)},
                                           "val_acc")

    assert guard("threshold: float = 0.5", "threshold: float = 0.3") == \
        ["train.py: main(threshold=…) (a setting only the measurement reads)"]
    assert guard("batch_size: int = 32", "batch_size: int = 64") == []
    # the same threshold given on the command tunes the measurement as surely; the learning rate beside it is free
    held = measuring.command_held(files.get, ["train.py"], (), "val_acc")
    assert measuring.command_measurement_changes("python train.py", "python train.py --threshold 0.3", held) == \
        ["threshold"]
    assert measuring.command_measurement_changes("python train.py", "python train.py --lr 0.01 --batch-size 64",
                                                 held) == []


ARGPARSE_THRESHOLD = {"train.py": '''\
import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split


def evaluate(clf, X, y, cutoff):
    return f1_score(y, clf.predict_proba(X)[:, 1] > cutoff)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--decision-cutoff", type=float, default=0.5)
    ap.add_argument("--eval-batch-size", type=int, default=256)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = (X[:, 0] > 0).astype(int)
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.25, random_state=0)
    clf = LogisticRegression(C=args.C).fit(X_tr, y_tr)
    print(f"val_f1={evaluate(clf, X_val, y_val, args.decision_cutoff):.4f} bs={args.eval_batch_size}")


if __name__ == "__main__":
    main()
'''}


def test_an_argparse_flag_only_the_evaluation_reads_is_held_in_its_default_and_on_the_command() -> None:
    files = ARGPARSE_THRESHOLD

    def guard(old: str, new: str) -> list[str]:
        assert old in files["train.py"]
        return measuring.measurement_edits(files.get, ["train.py"], {"train.py": files["train.py"].replace(old, new)},
                                           "val_f1")

    assert guard('"--decision-cutoff", type=float, default=0.5', '"--decision-cutoff", type=float, default=0.3') == \
        ["train.py: --decision-cutoff (its default) (a setting only the measurement reads)"]
    assert guard('"--C", type=float, default=1.0', '"--C", type=float, default=10.0') == []
    assert guard('"--eval-batch-size", type=int, default=256', '"--eval-batch-size", type=int, default=512') == []
    held = measuring.command_held(files.get, ["train.py"], (), "val_f1")
    assert measuring.command_measurement_changes("python train.py", "python train.py --decision-cutoff 0.3",
                                                 held) == ["decision_cutoff"]
    assert measuring.command_measurement_changes("python train.py", "python train.py --C 10", held) == []
    # parsed arguments handed on whole (`vars(args)`) are read by key where they go: nothing is held by their reads
    whole = {"train.py": files["train.py"].replace("    args = ap.parse_args()\n",
                                                   "    args = ap.parse_args()\n    print(vars(args))\n")}
    assert not measuring.command_held(whole.get, ["train.py"], (), "val_f1")("decision-cutoff")


POST_INIT = {"train.py": '''\
from dataclasses import dataclass, field

import torch


@dataclass
class Config:
    base_lr: float = 3e-4
    max_steps: int = 5000
    warmup_frac: float = 0.05
    warmup_steps: int = field(init=False, default=0)
    lr: float = 1e-3
    weight_decay: float = 0.1

    def __post_init__(self):
        self.warmup_steps = int(self.max_steps * self.warmup_frac)
        self.lr = self.base_lr * 2
        self.weight_decay = float(self.weight_decay)


cfg = Config()
model = torch.nn.Linear(4, 2)
opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
for step in range(cfg.max_steps):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"val_loss={loss.item():.4f} warmup={cfg.warmup_steps}")
'''}


def test_config_fields_computed_after_construction_are_no_knobs() -> None:
    knobs = BuiltinPolicy().knobs_in(POST_INIT, command="python train.py", metric="val_loss")
    assert knobs["Config.base_lr"].searchable and knobs["Config.warmup_frac"].searchable
    assert "Config.warmup_steps" not in knobs and "Config.lr" not in knobs
    # a field `__post_init__` only converts (`float(self.weight_decay)`) keeps its default
    assert knobs["Config.weight_decay"].value == 0.1 and knobs["Config.weight_decay"].searchable


HF_SEEDS = {"finetune.py": '''\
import numpy as np
from datasets import load_dataset
from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments, set_seed

set_seed(42)
raw = load_dataset("csv", data_files="data/tickets.csv")["train"]
splits = raw.train_test_split(test_size=0.15, seed=42)
model = AutoModelForSequenceClassification.from_pretrained("distilbert-base-uncased", num_labels=5)


def compute_metrics(eval_pred):
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


args = TrainingArguments(
    output_dir="out",
    learning_rate=3e-5,
    seed=42,
)
trainer = Trainer(model=model, args=args, train_dataset=splits["train"], eval_dataset=splits["test"],
                  compute_metrics=compute_metrics)
trainer.train()
print(f"eval_accuracy={trainer.evaluate()['eval_accuracy']:.4f}")
'''}


def test_a_split_with_its_own_seed_leaves_the_training_seeds_to_vary_trainer_s_included() -> None:
    # HF datasets' `train_test_split(seed=42)` draws from its own seed: `set_seed(42)` does not decide the split, and
    # the Trainer re-seeds from `TrainingArguments(seed=42)` when it starts, so both literals move together
    plan = plan_seeding("python finetune.py", lambda p: HF_SEEDS.get(p, ""), lambda p: p in HF_SEEDS,
                        sorted(HF_SEEDS), "eval_accuracy")
    assert plan.route is SeedRoute.CODE, plan.how
    new = plan.edits(lambda p: HF_SEEDS[p], 1, 0)["finetune.py"]
    assert "set_seed(43)" in new and "    seed=43," in new
    assert "train_test_split(test_size=0.15, seed=42)" in new


OPTUNA = {"tune.py": '''\
import numpy as np
import optuna
import xgboost as xgb
from sklearn.datasets import fetch_california_housing
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

X, y = fetch_california_housing(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=42)


def objective(trial):
    params = {"max_depth": trial.suggest_int("max_depth", 3, 10), "n_estimators": 500}
    model = xgb.XGBRegressor(**params)
    model.fit(X_train, y_train)
    preds = model.predict(X_val)
    return np.sqrt(mean_squared_error(y_val, preds))


study = optuna.create_study(direction="minimize")
study.optimize(objective, n_trials=30)
print(f"best_val_rmse={study.best_value:.4f}")
'''}


def test_what_the_objective_of_a_reported_study_returns_is_measured_and_its_training_is_free() -> None:
    def guard(old: str, new: str) -> list[str]:
        assert old in OPTUNA["tune.py"]
        return measuring.measurement_edits(OPTUNA.get, ["tune.py"], {"tune.py": OPTUNA["tune.py"].replace(old, new)},
                                           "best_val_rmse")

    assert guard("return np.sqrt(mean_squared_error(y_val, preds))", "return mean_squared_error(y_val, preds)")
    assert guard("preds = model.predict(X_val)\n    return np.sqrt(mean_squared_error(y_val, preds))",
                 "preds = model.predict(X_train)\n    return np.sqrt(mean_squared_error(y_train, preds))")
    assert guard('direction="minimize"', 'direction="maximize"')
    assert guard('"n_estimators": 500', '"n_estimators": 1000') == []
    assert guard('"max_depth", 3, 10', '"max_depth", 3, 14') == []
    assert guard("n_trials=30", "n_trials=60") == []


CLEANRL = {"ppo.py": '''\
from dataclasses import dataclass

import torch
import tyro


@dataclass
class Args:
    seed: int = 1
    learning_rate: float = 2.5e-4
    num_envs: int = 4
    num_steps: int = 128
    num_minibatches: int = 4
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    lr_scale: float = 1.0


if __name__ == "__main__":
    args = tyro.cli(Args)
    args.batch_size = int(args.num_envs * args.num_steps)
    args.lr_scale = args.lr_scale * 2
    torch.manual_seed(args.seed)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=args.learning_rate * args.lr_scale)
    for _ in range(args.batch_size // args.num_minibatches):
        loss = model(torch.randn(args.num_envs, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"episodic_return={-loss.item():.3f}")
'''}


def test_a_parsed_field_the_code_computes_right_after_parsing_is_not_searched() -> None:
    knobs = BuiltinPolicy().knobs_in(CLEANRL, command="python ppo.py --seed 1", metric="episodic_return")
    assert not knobs["Args.batch_size"].searchable
    assert "set by the code after the arguments are parsed" in knobs["Args.batch_size"].why_not
    # what feeds it, and a setting the code only scales, stay searched
    assert knobs["Args.num_steps"].searchable and knobs["Args.learning_rate"].searchable
    assert knobs["Args.lr_scale"].searchable or "set by the code" not in knobs["Args.lr_scale"].why_not


def test_the_evaluation_loader_beside_the_training_loader_on_one_line_is_not_searched() -> None:
    files = {"train.py": '''\
import torch
from torch.utils.data import DataLoader, TensorDataset


def loaders(train, val, bs):
    return DataLoader(train, bs, shuffle=True), DataLoader(val, 512)


train_dl, val_dl = loaders(TensorDataset(torch.randn(256, 4)), TensorDataset(torch.randn(64, 4)), 32)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for (xb,) in train_dl:
    loss = model(xb).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"val_loss={sum(model(xb).pow(2).mean().item() for (xb,) in val_dl):.4f}")
'''}
    knobs = BuiltinPolicy().knobs_in(files, command="python train.py", metric="val_loss")
    loader = knobs["DataLoader.batch_size"]
    assert loader.value == 512 and not loader.searchable and "evaluation loader" in loader.why_not
    assert knobs["SGD.lr"].searchable


def test_the_seeds_a_script_averages_over_are_held() -> None:
    script = '''\
#!/usr/bin/env bash
set -euo pipefail
LR=${LR:-0.05}
for SEED in 0 1 2; do
  python train.py --lr "$LR" --seed $SEED --out results/seed_$SEED.json
done
python aggregate.py results
'''
    files = {"scripts/train.sh": script, "train.py": "print('val_acc=0.5')\n", "aggregate.py": "print('x')\n"}

    def guard(old: str, new: str) -> list[str]:
        assert old in script
        return measuring.measurement_edits(files.get, sorted(files), {"scripts/train.sh": script.replace(old, new)},
                                           "mean_val_acc")

    assert guard("for SEED in 0 1 2; do", "for SEED in 1; do") == \
        ["scripts/train.sh: the seeds it runs over (for SEED in 0 1 2)"]
    assert guard("LR=${LR:-0.05}", "LR=${LR:-0.1}") == []
    # a loop over something else (learning rates) is the search's
    sweep = script.replace("for SEED in 0 1 2; do", "for LR in 0.1 0.05; do").replace("--seed $SEED", "--seed 0")
    assert measuring.measurement_edits({**files, "scripts/train.sh": sweep}.get, sorted(files),
                                       {"scripts/train.sh": sweep.replace("0.1 0.05", "0.2 0.1")}, "mean_val_acc") == []


def test_a_wall_clock_budget_is_not_searched() -> None:
    # Optuna's `study.optimize(objective, timeout=args.timeout)`: seconds of search, not a setting of the model
    files = {"tune.py": OPTUNA["tune.py"].replace(
        "import numpy as np\n", "import argparse\n\nimport numpy as np\n", 1).replace(
        "X, y = fetch", "p = argparse.ArgumentParser()\np.add_argument(\"--timeout\", type=int, default=600)\n"
        "args = p.parse_args()\nX, y = fetch", 1).replace("n_trials=30)", "n_trials=30, timeout=args.timeout)")}
    knobs = BuiltinPolicy().knobs_in(files, command="python tune.py", metric="best_val_rmse")
    assert not knobs["--timeout"].searchable and "bookkeeping" in knobs["--timeout"].why_not


def test_a_protected_evaluation_script_on_the_command_is_held_and_the_training_beside_it_is_not() -> None:
    tracked = ["train.py", "evaluate.py", "data/test.csv"]
    protected = ["evaluate.py", "data/*"]
    command = "python train.py --lr 0.1 && python evaluate.py --checkpoint out/m.pt --split test"

    def changes(new: str) -> list[str]:
        return measuring.command_protected_changes(command, new, tracked, protected)

    assert changes(command + " --limit 500") == ["how it runs evaluate.py (protected)"]
    assert changes(command.replace(" && python evaluate.py --checkpoint out/m.pt --split test", "")) == \
        ["how it runs evaluate.py (protected)"]
    assert changes(command.replace("--lr 0.1", "--lr 0.2")) == []


IGNITE = {"main.py": '''\
import torch
from ignite.engine import Events, create_supervised_evaluator, create_supervised_trainer
from ignite.metrics import Accuracy, Loss
from torch import nn


def run(train_loader, val_loader, lr=0.01, epochs=10):
    model = nn.Linear(784, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    trainer = create_supervised_trainer(model, optimizer, criterion)
    val_metrics = {"accuracy": Accuracy(), "nll": Loss(criterion)}
    evaluator = create_supervised_evaluator(model, metrics=val_metrics)

    @trainer.on(Events.EPOCH_COMPLETED)
    def log_validation_results(engine):
        evaluator.run(val_loader)
        metrics = evaluator.state.metrics
        print(f"epoch={engine.state.epoch} val_accuracy={metrics['accuracy']:.4f}")

    trainer.run(train_loader, max_epochs=epochs)
'''}


def test_the_metrics_an_engine_logs_are_held_where_the_engine_is_built() -> None:
    def guard(old: str, new: str) -> list[str]:
        assert old in IGNITE["main.py"]
        return measuring.measurement_edits(IGNITE.get, ["main.py"], {"main.py": IGNITE["main.py"].replace(old, new)},
                                           "val_accuracy")

    # the same key, another measure: top-3 accuracy, or classes dropped by an output transform
    assert guard('"accuracy": Accuracy()', '"accuracy": TopKCategoricalAccuracy(k=3)')
    assert guard('"accuracy": Accuracy()', '"accuracy": Accuracy(output_transform=lambda o: (o[0][:, :5], o[1]))')
    assert guard("lr=0.01", "lr=0.05") == []
    assert guard("nn.Linear(784, 10)", "nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))") == []


GROUP_FOLDS = {"cv.py": '''\
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

df = pd.read_csv("data/visits.csv")
features = [c for c in df.columns if c not in ("patient_id", "visit_id", "label")]
X, y, groups = df[features].values, df["label"].values, df["patient_id"].values
oof = np.zeros(len(df))
for fold, (tr, va) in enumerate(GroupKFold(n_splits=5).split(X, y, groups)):
    model = xgb.XGBClassifier(n_estimators=600, max_depth=5)
    model.fit(X[tr], y[tr])
    oof[va] = model.predict_proba(X[va])[:, 1]
print(f"oof_auc={roc_auc_score(y, oof):.4f}")
'''}


def test_the_groups_a_group_splitter_keeps_together_are_held() -> None:
    def guard(files: dict[str, str], old: str, new: str) -> list[str]:
        assert old in files["cv.py"]
        return measuring.measurement_edits(files.get, ["cv.py"], {"cv.py": files["cv.py"].replace(old, new)},
                                           "oof_auc")

    assert guard(GROUP_FOLDS, 'df["patient_id"].values', 'df["visit_id"].values')
    assert guard(GROUP_FOLDS, "max_depth=5", "max_depth=7") == []
    # a splitter built on a line of its own, its groups given by keyword
    apart = {"cv.py": GROUP_FOLDS["cv.py"].replace(
        "for fold, (tr, va) in enumerate(GroupKFold(n_splits=5).split(X, y, groups)):",
        "gkf = GroupKFold(n_splits=5)\nfor fold, (tr, va) in enumerate(gkf.split(X, y, groups=groups)):")}
    assert guard(apart, 'df["patient_id"].values', 'df["visit_id"].values')
    assert guard(apart, "n_estimators=600", "n_estimators=900") == []


HF_TRAINER = {"finetune.py": '''\
from datasets import load_dataset
from transformers import AutoModelForSequenceClassification, EarlyStoppingCallback, Trainer, TrainingArguments

raw = load_dataset("tweet_eval", "emotion")
model = AutoModelForSequenceClassification.from_pretrained("roberta-base", num_labels=4)
args = TrainingArguments(output_dir="out", learning_rate=2e-5, eval_strategy="epoch", load_best_model_at_end=True)
trainer = Trainer(model=model, args=args, train_dataset=raw["train"], eval_dataset=raw["validation"],
                  callbacks=[EarlyStoppingCallback(early_stopping_patience=2)])
trainer.train()
out = trainer.predict(raw["test"])
print(f"test_f1={out.metrics['test_f1']:.4f}")
'''}


def test_of_a_trainer_built_with_the_held_out_part_only_what_picks_it_is_held() -> None:
    def guard(old: str, new: str) -> list[str]:
        assert old in HF_TRAINER["finetune.py"]
        return measuring.measurement_edits(HF_TRAINER.get, ["finetune.py"],
                                           {"finetune.py": HF_TRAINER["finetune.py"].replace(old, new)}, "test_f1")

    assert guard('eval_dataset=raw["validation"]', 'eval_dataset=raw["test"]')
    assert guard("early_stopping_patience=2", "early_stopping_patience=3") == []
    # a loading function stays whole: its other arguments say which data it loads
    loading = {"finetune.py": HF_TRAINER["finetune.py"].replace(
        'out = trainer.predict(raw["test"])', 'out = trainer.predict(load_dataset("tweet_eval", "emotion", '
        'split="test", cache_dir="cache"))')}
    assert measuring.measurement_edits(loading.get, ["finetune.py"], {"finetune.py": loading["finetune.py"].replace(
        'cache_dir="cache"', 'cache_dir="other"')}, "test_f1")


def test_a_keyword_of_the_same_name_in_a_data_function_is_no_use_of_the_setting() -> None:
    # ignite's examples: `get_data_loaders(train_batch_size, val_batch_size)` builds both loaders, fixed as data code;
    # its `DataLoader(..., batch_size=train_batch_size)` names the keyword, it does not read `--batch_size`
    files = {"main.py": '''\
import argparse

import torch
from torch.utils.data import DataLoader, TensorDataset


def get_data_loaders(train_batch_size, val_batch_size):
    train = TensorDataset(torch.randn(256, 4), torch.randint(0, 2, (256,)))
    val = TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
    return DataLoader(train, batch_size=train_batch_size, shuffle=True), DataLoader(val, batch_size=val_batch_size)


p = argparse.ArgumentParser()
p.add_argument("--batch_size", type=int, default=64)
p.add_argument("--lr", type=float, default=0.01)
args = p.parse_args()
train_loader, val_loader = get_data_loaders(args.batch_size, 1000)
model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=args.lr)
for xb, yb in train_loader:
    loss = torch.nn.functional.cross_entropy(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
with torch.no_grad():
    acc = sum((model(xb).argmax(1) == yb).sum().item() for xb, yb in val_loader) / 64
print(f"val_accuracy={acc:.4f}")
'''}
    knobs = BuiltinPolicy().knobs_in(files, command="python main.py", metric="val_accuracy")
    assert knobs["--batch_size"].searchable, knobs["--batch_size"].why_not


TARGET_ENCODING = {"train.py": '''\
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

CAT_COLS = ["job", "month"]


def target_encode(train, other, col, target, smoothing=20.0):
    prior = train[target].mean()
    stats = train.groupby(col)[target].agg(["mean", "count"])
    enc = (stats["mean"] * stats["count"] + prior * smoothing) / (stats["count"] + smoothing)
    return train[col].map(enc).fillna(prior), other[col].map(enc).fillna(prior)


df = pd.read_csv("data/bank.csv")
train_df, test_df = train_test_split(df, test_size=0.2, random_state=42)
for col in CAT_COLS:
    train_df[col + "_te"], test_df[col + "_te"] = target_encode(train_df, test_df, col, "y")
features = ["age", "balance"] + [c + "_te" for c in CAT_COLS]
scaler = StandardScaler()
X_train = scaler.fit_transform(train_df[features])
X_test = scaler.transform(test_df[features])
clf = LogisticRegression(C=1.0)
clf.fit(X_train, train_df["y"].values)
print(f"test_auc={roc_auc_score(test_df['y'].values, clf.predict_proba(X_test)[:, 1]):.4f}")
'''}


def test_a_transform_that_writes_both_parts_is_not_a_read_of_the_held_out_part_until_it_fits_on_it() -> None:
    def guard(old: str, new: str) -> list[str]:
        assert old in TARGET_ENCODING["train.py"]
        return measuring.measurement_edits(TARGET_ENCODING.get, ["train.py"],
                                           {"train.py": TARGET_ENCODING["train.py"].replace(old, new)}, "test_auc")

    leak = ["train.py: the training reads test_df (held-out data)"]
    assert guard("target_encode(train_df, test_df, col", "target_encode(pd.concat([train_df, test_df]), test_df, col") \
        == leak
    assert guard("X_train = scaler.fit_transform(train_df[features])",
                 "X_train = scaler.fit(pd.concat([train_df, test_df])[features]).transform(train_df[features])") == leak
    assert guard("C=1.0", "C=0.3") == []
    assert guard("scaler = StandardScaler()", "scaler = StandardScaler(with_mean=False)") == []


def test_a_config_key_the_guard_holds_is_not_searched() -> None:
    # `cv.gap` of a TimeSeriesSplit read from a YAML config: every move of it would be refused as measurement
    files = {"conf.yaml": "model:\n  lr: 0.05\n  num_leaves: 31\ncv:\n  n_splits: 5\n  gap: 7\n",
             "train.py": '''\
import lightgbm as lgb
import yaml
from sklearn.model_selection import TimeSeriesSplit

cfg = yaml.safe_load(open("conf.yaml"))
cv = TimeSeriesSplit(n_splits=cfg["cv"]["n_splits"], gap=cfg["cv"]["gap"])
model = lgb.LGBMRegressor(learning_rate=cfg["model"]["lr"], num_leaves=cfg["model"]["num_leaves"])
print("cv_mae=0.1")
'''}
    knobs = BuiltinPolicy().knobs_in(files, command="python train.py", metric="cv_mae")
    assert not knobs["cv.gap"].searchable and "measurement" in knobs["cv.gap"].why_not
    assert knobs["model.lr"].searchable


def test_a_negative_count_is_a_sentinel_not_a_size() -> None:
    files = {"train.py": '''\
import tensorflow_datasets as tfds
import torch

BATCH = 128
ds = tfds.as_numpy(tfds.load("mnist", split="train", batch_size=-1))
model = torch.nn.Linear(784, 10)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(0, 60000, BATCH):
    loss = model(torch.randn(BATCH, 784)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"val_loss={loss.item():.4f}")
'''}
    knobs = BuiltinPolicy().knobs_in(files, command="python train.py", metric="val_loss")
    assert not knobs["load.batch_size"].searchable and "sentinel" in knobs["load.batch_size"].why_not
    assert knobs["BATCH"].searchable
