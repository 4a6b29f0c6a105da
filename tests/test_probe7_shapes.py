"""Shapes of a seventh probe of code no one here wrote: a project launched by `make train`, an RL script with a seed
for its evaluation episodes beside the training's, accelerate's `gather_for_metrics`, tf.data's take/skip split,
PyG's node masks, torchmetrics collections, a recommender's top-K, mmpretrain's `label_smooth_val`."""

from __future__ import annotations

import ast

from nightlab.agent import measuring
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.policy.evaluation import names_the_measurement
from nightlab.agent.policy.label_leaks import label_columns
from nightlab.agent.seeding import SeedRoute, plan_seeding

MAKEFILE = {
    "Makefile": "PY ?= python\nLR ?= 3e-4\n\n.PHONY: train\n\ntrain:\n\t$(PY) -m src.train --lr $(LR) --epochs 5\n",
    "src/__init__.py": "",
    "src/train.py": '''\
import argparse

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    for _ in range(args.epochs):
        loss = model(torch.randn(32, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"val_loss={loss.item():.4f}")


if __name__ == "__main__":
    main()
''',
}


def test_a_seed_option_make_cannot_pass_is_changed_in_the_code_not_silently_kept() -> None:
    """`make train` runs the script through its recipe: `--seed=N` cannot be appended to `make train`, and re-runs
    had been planned as seeded while every one ran the identical command (the rewrite failed and was swallowed)."""
    plan = plan_seeding("make train", lambda p: MAKEFILE.get(p, ""), lambda p: p in MAKEFILE, sorted(MAKEFILE),
                        "val_loss")
    assert plan.route is SeedRoute.CODE, plan.how
    assert "cannot be rewritten to pass --seed" in plan.how and "Makefile" in plan.how
    edits = plan.edits(lambda p: MAKEFILE[p], 3, 0)
    assert list(edits) == ["src/train.py"]
    assert 'p.add_argument("--seed", type=int, default=3)' in edits["src/train.py"]
    assert plan.command("make train", 3, 0) == "make train"
    # with no seed in the code at all, it says so rather than claim a route
    bare = {**MAKEFILE, "src/train.py": MAKEFILE["src/train.py"].replace(
        '    p.add_argument("--seed", type=int, default=0)\n', "").replace("    torch.manual_seed(args.seed)\n", "")}
    plan = plan_seeding("make train", lambda p: bare.get(p, ""), lambda p: p in bare, sorted(bare), "val_loss")
    assert plan.route is SeedRoute.NONE


RL = {"train_ppo.py": '''\
import argparse

import gymnasium as gym
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

parser = argparse.ArgumentParser()
parser.add_argument("--env-id", default="CartPole-v1")
parser.add_argument("--learning-rate", type=float, default=3e-4)
parser.add_argument("--n-eval-episodes", type=int, default=20)
parser.add_argument("--eval-seed", type=int, default=10_000)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

env = make_vec_env(args.env_id, n_envs=4, seed=args.seed)
eval_env = gym.make(args.env_id)
eval_env.reset(seed=args.eval_seed)
model = PPO("MlpPolicy", env, learning_rate=args.learning_rate, seed=args.seed)
model.learn(total_timesteps=50_000)
mean_reward, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.n_eval_episodes)
print(f"mean_reward={mean_reward:.2f}")
'''}


def test_re_runs_vary_the_training_seed_not_the_evaluation_s() -> None:
    """`--eval-seed` comes first in the file; varying it changes which episodes are scored (the measurement) and
    leaves the training as it was."""
    plan = plan_seeding("python train_ppo.py", lambda p: RL.get(p, ""), lambda p: p in RL, sorted(RL), "mean_reward")
    assert plan.route is SeedRoute.ARGUMENT and plan.argument == "--seed", plan.how
    assert plan.command("python train_ppo.py", 2, 0) == "python train_ppo.py --seed=2"


ACCELERATE = {"train.py": '''\
import argparse

import evaluate
import torch
from accelerate import Accelerator
from transformers import AutoModelForSequenceClassification


def training_function(args, train_dataloader, eval_dataloader):
    accelerator = Accelerator()
    metric = evaluate.load("glue", "mrpc")
    model = AutoModelForSequenceClassification.from_pretrained(args.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    model, optimizer, train_dataloader, eval_dataloader = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader)
    for epoch in range(args.epochs):
        model.train()
        for batch in train_dataloader:
            outputs = model(**batch)
            accelerator.backward(outputs.loss)
            optimizer.step()
            optimizer.zero_grad()
        model.eval()
        for batch in eval_dataloader:
            with torch.no_grad():
                outputs = model(**batch)
            predictions = outputs.logits.argmax(dim=-1)
            predictions, references = accelerator.gather_for_metrics((predictions, batch["labels"]))
            metric.add_batch(predictions=predictions, references=references)
        eval_metric = metric.compute()
        accelerator.print(f"epoch {epoch}: eval_f1={eval_metric['f1']:.4f}")
'''}


def _guard(files: dict[str, str], path: str, metric: str, old: str, new: str) -> list[str]:
    assert old in files[path], old
    return measuring.measurement_edits(files.get, sorted(files), {path: files[path].replace(old, new)}, metric)


def test_the_measurement_is_followed_back_past_gather_for_metrics() -> None:
    """print ← `metric.compute()` ← `metric.add_batch(predictions=...)` ← `gather_for_metrics(...)` ←
    `predictions = logits.argmax(-1)`: three assignments back, where two had been followed."""
    assert _guard(ACCELERATE, "train.py", "eval_f1", "accelerator.gather_for_metrics(", "accelerator.gather(") != []
    assert _guard(ACCELERATE, "train.py", "eval_f1", "predictions = outputs.logits.argmax(dim=-1)",
                  "predictions = (outputs.logits.softmax(-1)[:, 1] > 0.3).long()") != []
    clipped = "            accelerator.clip_grad_norm_(model.parameters(), 1.0)\n            optimizer.step()\n"
    assert _guard(ACCELERATE, "train.py", "eval_f1", "            optimizer.step()\n", clipped) == []


OOF = {"oof.py": '''\
import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

train = pd.read_csv("data/train.csv")
test = pd.read_csv("data/test.csv")
train["amt_per_day"] = train["amount"] / (train["days"] + 1)
test["amt_per_day"] = test["amount"] / (test["days"] + 1)
FEATURES = [c for c in train.columns if c not in ("id", "target")]
oof = np.zeros(len(train))
skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
for tr_idx, va_idx in skf.split(train, train["target"]):
    dtr = lgb.Dataset(train.loc[tr_idx, FEATURES], train.loc[tr_idx, "target"])
    model = lgb.train({"objective": "binary", "learning_rate": 0.05}, dtr, num_boost_round=300)
    oof[va_idx] = model.predict(train.loc[va_idx, FEATURES])
print(f"oof_auc={roc_auc_score(train['target'], oof):.5f}")
'''}


def test_the_label_of_a_splitter_s_split_and_a_labelled_dataset_is_found() -> None:
    """`skf.split(train, train["target"])`, `lgb.Dataset(X, train.loc[idx, "target"])`: the label had not been found,
    so a frame-wide target encoding passed and a label-free feature was refused with the data load."""
    assert label_columns([ast.parse(OOF["oof.py"])]) == {"target"}
    load = 'test = pd.read_csv("data/test.csv")\n'
    leak = _guard(OOF, "oof.py", "oof_auc", load,
                  load + 'train["cat_te"] = train.groupby("cat")["target"].transform("mean")\n')
    assert any("reads the label 'target'" in r for r in leak), leak
    assert _guard(OOF, "oof.py", "oof_auc", load, load + 'train["log_amount"] = np.log1p(train["amount"])\n') == []


NCF = {
    "train.py": '''\
import argparse

import torch

import evaluate
from model import NCF

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--top_k", type=int, default=10)
args = parser.parse_args()
data = torch.load("data/ml-1m.pt")
model = NCF(data["n_users"], data["n_items"])
opt = torch.optim.Adam(model.parameters(), lr=args.lr)
for users, items, labels in data["train"]:
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(users, items), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
HR, NDCG = evaluate.metrics(model, data["test"], args.top_k)
print(f"HR={HR:.4f} NDCG={NDCG:.4f}")
''',
    "evaluate.py": '''\
import numpy as np
import torch


def metrics(model, test_loader, top_k):
    hits = []
    for user, item, _ in test_loader:
        ranked = torch.topk(model(user, item), top_k).indices
        hits.append(int(item[0].item() in item[ranked].tolist()))
    return float(np.mean(hits)), 0.0
''',
    "model.py": "import torch\n\n\nclass NCF(torch.nn.Module):\n    pass\n",
}


def test_a_flag_only_the_evaluation_reads_is_held_though_the_evaluation_names_its_parameter_alike() -> None:
    """`evaluate.metrics(model, loader, top_k)` is where `args.top_k` goes: the word in that file is its parameter,
    not another reader of the flag."""
    held = measuring.command_held(NCF.get, sorted(NCF), ["evaluate.py"], "HR")
    assert measuring.command_measurement_changes("python train.py", "python train.py --top_k 20", held) == ["top_k"]
    assert measuring.command_measurement_changes("python train.py", "python train.py --lr 0.01", held) == []


def test_mmpretrain_s_label_smooth_val_is_no_validation_setting() -> None:
    assert not names_the_measurement("label_smooth_val") and not names_the_measurement("model.head.label_smooth_val")
    assert names_the_measurement("val_size") and names_the_measurement("limit_val_batches")


def test_a_measurement_flag_written_into_the_recipe_that_runs_the_training_is_refused() -> None:
    """`make train` runs `$(PY) -m src.train ...`: a `--val-frac 0.05` added there is the same change as on the
    command line; a training flag there stays free."""
    recipe = "\t$(PY) -m src.train --lr $(LR) --epochs 5"

    def guard(new: str) -> list[str]:
        assert recipe in MAKEFILE["Makefile"]
        return measuring.measurement_edits(MAKEFILE.get, sorted(MAKEFILE),
                                           {"Makefile": MAKEFILE["Makefile"].replace(recipe, new)}, "val_loss")

    assert guard(recipe + " --val-frac 0.05") == \
        ["Makefile: val_frac (a setting of the measurement on a line that runs the program)"]
    assert guard(recipe + " --max-val-batches 2") != []
    assert guard(recipe + " --hidden 512") == []
    assert guard(recipe.replace("--epochs 5", "--epochs 8")) == []
    script = "#!/bin/bash\nset -e\npython train.py --lr 0.1 \\\n  --eval-iters 200\n"
    assert measuring.script_measurement_changes(script, script.replace("--eval-iters 200", "--eval-iters 5")) == \
        ["eval_iters"]


GCN = {"gcn.py": '''\
import argparse

import torch
import torch.nn.functional as F
import torch_geometric.transforms as T
from torch_geometric.datasets import Planetoid
from torch_geometric.nn import GCNConv

parser = argparse.ArgumentParser()
parser.add_argument("--hidden", type=int, default=64)
parser.add_argument("--epochs", type=int, default=200)
args = parser.parse_args()
dataset = Planetoid("data", "Cora", transform=T.RandomNodeSplit(num_train_per_class=20, num_val=500, num_test=1000))
data = dataset[0]


class GCN(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.conv1 = GCNConv(dataset.num_features, hidden)
        self.conv2 = GCNConv(hidden, dataset.num_classes)

    def forward(self, x, edge_index):
        return self.conv2(F.relu(self.conv1(x, edge_index)), edge_index)


model = GCN(args.hidden)
optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)


def train():
    model.train()
    optimizer.zero_grad()
    out = model(data.x, data.edge_index)
    loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
    loss.backward()
    optimizer.step()


@torch.no_grad()
def test():
    pred = model(data.x, data.edge_index).argmax(dim=-1)
    return [int((pred[m] == data.y[m]).sum()) / int(m.sum()) for m in (data.train_mask, data.val_mask, data.test_mask)]


best_val_acc = test_acc = 0
for epoch in range(args.epochs):
    train()
    train_acc, val_acc, tmp_test_acc = test()
    if val_acc > best_val_acc:
        best_val_acc = val_acc
        test_acc = tmp_test_acc
print(f"test_acc={test_acc:.4f}")
'''}


def test_a_graph_s_masks_its_split_and_the_epoch_the_validation_picks_are_held() -> None:
    """PyG holds the held-out nodes in `data.test_mask` (an attribute, no name says so), draws the masks in
    `RandomNodeSplit`, and reports the test accuracy of the epoch the validation picks (an `if` decides it)."""
    def guard(old: str, new: str) -> list[str]:
        return _guard(GCN, "gcn.py", "test_acc", old, new)

    assert any("the training reads test_mask" in r for r in guard(
        "loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])",
        "mask = data.train_mask | data.test_mask\n    loss = F.cross_entropy(out[mask], data.y[mask])"))
    assert guard("num_train_per_class=20", "num_train_per_class=60") != []
    assert guard("if val_acc > best_val_acc:", "if tmp_test_acc > test_acc:") != []
    assert guard("lr=0.01, weight_decay=5e-4", "lr=0.005, weight_decay=5e-4") == []
    assert guard("return self.conv2(F.relu(self.conv1(x, edge_index)), edge_index)",
                 "return self.conv2(F.dropout(F.relu(self.conv1(x, edge_index)), 0.5, self.training), edge_index)") \
        == []


TFDATA = {"train_keras.py": '''\
import tensorflow as tf
import tensorflow_datasets as tfds

ds, info = tfds.load("cats_vs_dogs", split="train", as_supervised=True, with_info=True)
n_val = int(0.15 * info.splits["train"].num_examples)
ds = ds.shuffle(25000, seed=1234, reshuffle_each_iteration=False)
val_ds = ds.take(n_val)
train_ds = ds.skip(n_val)
train_ds = train_ds.batch(32)
val_ds = val_ds.batch(64)
model = tf.keras.Sequential([tf.keras.layers.Flatten(), tf.keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
hist = model.fit(train_ds, validation_data=val_ds, epochs=5)
print(f"val_accuracy={hist.history['val_accuracy'][-1]:.4f}")
'''}

NPY = {"train.py": '''\
import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_squared_error

X_train, y_train = np.load("data/train_X.npy"), np.load("data/train_y.npy")
X_val, y_val = np.load("data/val_X.npy"), np.load("data/val_y.npy")
model = HistGradientBoostingRegressor(max_iter=200).fit(X_train, y_train)
print(f"val_rmse={mean_squared_error(y_val, model.predict(X_val)) ** 0.5:.4f}")
'''}


def test_training_on_the_rest_of_a_take_skip_split_or_on_the_held_out_file_is_refused() -> None:
    assert any("the training reads ds" in r for r in _guard(
        TFDATA, "train_keras.py", "val_accuracy", "train_ds = ds.skip(n_val)", "train_ds = ds"))
    assert _guard(TFDATA, "train_keras.py", "val_accuracy", "train_ds.batch(32)", "train_ds.batch(64)") == []
    # the shuffle the parts are cut from: reshuffled every epoch, `take` and `skip` draw other rows each time
    assert _guard(TFDATA, "train_keras.py", "val_accuracy", "reshuffle_each_iteration=False",
                  "reshuffle_each_iteration=True") != []
    refused = _guard(NPY, "train.py", "val_rmse", 'np.load("data/train_X.npy"), np.load("data/train_y.npy")',
                     'np.concatenate([np.load("data/train_X.npy"), np.load("data/val_X.npy")]), '
                     'np.concatenate([np.load("data/train_y.npy"), np.load("data/val_y.npy")])')
    assert any("the training reads 'data/val_X.npy'" in r for r in refused), refused
    assert _guard(NPY, "train.py", "val_rmse", "max_iter=200", "max_iter=400") == []


TIMM = {"train.py": '''\
import argparse
import os

import timm
import torch
from timm.data import create_transform
from torchvision.datasets import ImageFolder

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir", default="data/imagenette")
parser.add_argument("--lr", type=float, default=0.4)
parser.add_argument("--img-size", type=int, default=224)
parser.add_argument("--crop-pct", type=float, default=0.875)
parser.add_argument("--epochs", type=int, default=60)
args = parser.parse_args()

train_tf = create_transform(args.img_size, is_training=True, auto_augment="rand-m9-mstd0.5")
eval_tf = create_transform(args.img_size, is_training=False, crop_pct=args.crop_pct)
train_ds = ImageFolder(os.path.join(args.data_dir, "train"), transform=train_tf)
val_ds = ImageFolder(os.path.join(args.data_dir, "val"), transform=eval_tf)
model = timm.create_model("resnet26d", num_classes=10)
opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
for epoch in range(args.epochs):
    for x, y in torch.utils.data.DataLoader(train_ds, batch_size=128, shuffle=True):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
with torch.no_grad():
    correct = sum((model(x).argmax(1) == y).sum().item() for x, y in torch.utils.data.DataLoader(val_ds, 256))
print(f"val_top1={100 * correct / len(val_ds):.2f}")
'''}


def test_the_evaluation_s_own_transform_and_the_flag_only_it_reads_are_held_and_never_searched() -> None:
    """`--crop-pct` is read by the evaluation's transform alone: the search had tuned it on the validation set."""
    refused = _guard(TIMM, "train.py", "val_top1", '"--crop-pct", type=float, default=0.875',
                     '"--crop-pct", type=float, default=1.0')
    assert refused == ["train.py: --crop-pct (its default) (a setting only the measurement reads)"], refused
    assert _guard(TIMM, "train.py", "val_top1", "is_training=False, crop_pct=args.crop_pct",
                  "is_training=False, crop_pct=args.crop_pct, interpolation='bicubic'") != []
    held = measuring.command_held(TIMM.get, ["train.py"], (), "val_top1")
    assert measuring.command_measurement_changes("python train.py", "python train.py --crop-pct 0.95", held) == \
        ["crop_pct"]
    knobs = BuiltinPolicy().knobs_in(TIMM, command="python train.py", metric="val_top1")
    assert not knobs["--crop-pct"].searchable and "measurement" in knobs["--crop-pct"].why_not
    assert knobs["--lr"].searchable
    # the training part's own transform stays free
    assert _guard(TIMM, "train.py", "val_top1", 'auto_augment="rand-m9-mstd0.5"', 'auto_augment="rand-m7-mstd0.5"') \
        == []


LIT = {"train.py": '''\
import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score


class Classifier(L.LightningModule):
    def __init__(self, in_features=54, num_classes=7, hidden=256, lr=1e-3):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(in_features, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, num_classes))
        self.lr = lr
        shared = MetricCollection([MulticlassF1Score(num_classes=num_classes, average="macro"),
                                   MulticlassAccuracy(num_classes=num_classes)])
        self.train_metrics = shared.clone(prefix="train_")
        self.val_metrics = shared.clone(prefix="val_")

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.train_metrics.update(logits, y)
        return F.cross_entropy(logits, y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.val_metrics.update(self.net(x), y)

    def on_validation_epoch_end(self):
        self.log_dict(self.val_metrics.compute())
        self.val_metrics.reset()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


trainer = L.Trainer(max_epochs=5)
trainer.fit(Classifier(), datamodule=None)
print(f"val_MulticlassF1Score={trainer.callback_metrics['val_MulticlassF1Score']:.4f}")
'''}


def test_the_metric_object_the_validation_reads_is_held_whatever_its_name() -> None:
    """torchmetrics' recommended pattern clones one collection for each part; the validation's clone had been held
    only when the shared collection happened to be called `metrics`."""
    metric = "val_MulticlassF1Score"
    for old, new in [('average="macro"', 'average="micro"'),
                     ('MulticlassF1Score(num_classes=num_classes, average="macro")',
                      'MulticlassF1Score(num_classes=num_classes, average="macro", ignore_index=1)'),
                     ('self.val_metrics = shared.clone(prefix="val_")',
                      'self.val_metrics = MetricCollection([MulticlassAccuracy(num_classes=num_classes)], '
                      'prefix="val_")')]:
        refused = _guard(LIT, "train.py", metric, old, new)
        assert "train.py: Classifier.val_metrics (the object the evaluation reads)" in refused, (old, refused)
    assert _guard(LIT, "train.py", metric, "hidden=256", "hidden=512") == []
    assert _guard(LIT, "train.py", metric, 'self.train_metrics = shared.clone(prefix="train_")',
                  'self.train_metrics = MetricCollection([MulticlassAccuracy(num_classes=num_classes)])') == []


def test_a_seed_that_draws_pyg_s_random_masks_is_left_as_it_is() -> None:
    """`torch.manual_seed(args.seed)` before `dataset[0]`: `RandomNodeSplit` draws the train / val / test masks
    from torch's generator, so a re-run with another seed would measure on other test nodes."""
    seeded = {"gcn.py": GCN["gcn.py"].replace(
        'parser.add_argument("--epochs", type=int, default=200)\nargs = parser.parse_args()\n',
        'parser.add_argument("--epochs", type=int, default=200)\nparser.add_argument("--seed", type=int, default=42)\n'
        'args = parser.parse_args()\ntorch.manual_seed(args.seed)\n')}
    assert "torch.manual_seed(args.seed)" in seeded["gcn.py"]
    plan = plan_seeding("python gcn.py", lambda p: seeded.get(p, ""), lambda p: p in seeded, sorted(seeded),
                        "test_acc")
    assert plan.route is SeedRoute.NONE and "also fixes the data split" in plan.how, plan.how


GRID = {"tune.py": '''\
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

NUMERIC = ["age", "income", "tenure"]
df = pd.read_csv("data/churn.csv")
X, y = df[NUMERIC], df["churned"]
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0, 10.0]}, cv=cv, scoring="roc_auc")
search.fit(X, y)
print(f"cv_auc={search.best_score_:.4f}")
'''}


def test_a_fit_on_the_rows_a_search_cross_validates_is_refused() -> None:
    """`GridSearchCV(..., cv=cv).fit(X, y)` splits `X` itself: a scaler fitted on `X` before has seen every fold's
    held-out rows. Inside the pipeline it is free."""
    split = 'X, y = df[NUMERIC], df["churned"]\n'
    scaled = split + "X[NUMERIC] = StandardScaler().fit_transform(X[NUMERIC])\n"
    refused = _guard(GRID, "tune.py", "cv_auc", split, scaled)
    assert any("a fit on X outside the cross-validation" in r for r in refused), refused
    assert _guard(GRID, "tune.py", "cv_auc", "make_pipeline(StandardScaler(), ",
                  "make_pipeline(StandardScaler(), PCA(n_components=2), ") == []
    assert _guard(GRID, "tune.py", "cv_auc", "LogisticRegression(max_iter=1000)",
                  "LogisticRegression(max_iter=1000, class_weight='balanced')") == []


def test_a_search_s_grid_and_estimator_are_tuned_and_its_scoring_folds_and_rows_are_held() -> None:
    """The statement that builds a `GridSearchCV` is traced from the print and had been held whole, so its inline
    grid and its estimator — the very things the search tunes — were refused; the rows its `fit` is handed were not
    held at all (`search.fit(X[:200], y[:200])` scores 200 rows)."""
    line = 'search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0, 10.0]}, cv=cv, scoring="roc_auc")'
    assert _guard(GRID, "tune.py", "cv_auc", "[0.1, 1.0, 10.0]", "[0.1, 1.0, 10.0, 100.0]") == []
    other = "GridSearchCV(make_pipeline(LogisticRegression()),"
    assert _guard(GRID, "tune.py", "cv_auc", "GridSearchCV(pipe,", other) == []
    assert _guard(GRID, "tune.py", "cv_auc", 'scoring="roc_auc")', 'scoring="roc_auc", n_jobs=2)') == []
    assert _guard(GRID, "tune.py", "cv_auc", 'scoring="roc_auc"', 'scoring="accuracy"') != []
    assert _guard(GRID, "tune.py", "cv_auc", "cv=cv,", "cv=3,") != []
    assert _guard(GRID, "tune.py", "cv_auc", "search.fit(X, y)", "search.fit(X[:200], y[:200])") != []
    searched = line + '\nsearch.fit(X, y)\nprint(f"cv_auc={search.best_score_:.4f}")'
    scoring = 'scores = cross_val_score(pipe, X, y, cv=cv, scoring="roc_auc")\nprint(f"cv_auc={scores.mean():.4f}")'
    scored = {"tune.py": GRID["tune.py"].replace(searched, scoring)
                  .replace("GridSearchCV, StratifiedKFold", "StratifiedKFold, cross_val_score")}
    assert "cross_val_score(pipe" in scored["tune.py"]
    assert _guard(scored, "tune.py", "cv_auc", "cross_val_score(pipe,",
                  "cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(C=0.1)),") == []
    assert _guard(scored, "tune.py", "cv_auc", "(pipe, X, y,", "(pipe, X[:100], y[:100],") != []
    assert _guard(scored, "tune.py", "cv_auc", 'scoring="roc_auc"', 'scoring="accuracy"') != []


HYDRA = {
    "train.py": '''\
import hydra
import torch
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    torch.manual_seed(cfg.seed)
    model = torch.nn.Linear(8, 2)
    opt = hydra.utils.instantiate(cfg.optimizer, params=model.parameters())
    for _ in range(cfg.trainer.max_epochs):
        loss = model(torch.randn(16, 8)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"val_loss={loss.item():.4f}")


if __name__ == "__main__":
    main()
''',
    "conf/config.yaml": "defaults:\n  - optimizer: sgd\n  - _self_\n\nseed: 0\ntrainer:\n  max_epochs: 30\n",
    "conf/optimizer/sgd.yaml": "_target_: torch.optim.SGD\nlr: 0.1\nmomentum: 0.9\n",
    "conf/optimizer/adamw.yaml": "_target_: torch.optim.AdamW\nlr: 1e-3\nweight_decay: 0.05\n",
    "conf/experiment/long_adamw.yaml": "# @package _global_\ndefaults:\n  - override /optimizer: adamw\n\n"
                                       "trainer:\n  max_epochs: 100\n",
}


def test_a_defaults_entry_an_experiment_overrides_is_not_searched() -> None:
    """`+experiment=long_adamw` composes conf/optimizer/adamw.yaml through its `override /optimizer: adamw`: the
    primary config's `- optimizer: sgd` then chooses nothing, and moving it had been a search move with no effect."""
    entry = "defaults[0].optimizer"
    knobs = BuiltinPolicy().knobs_in(HYDRA, command="python train.py +experiment=long_adamw", metric="val_loss")
    assert not knobs[entry].searchable and "conf/optimizer/adamw.yaml is composed" in knobs[entry].why_not
    assert knobs["defaults[0].override /optimizer"].searchable  # the experiment's own choice is live
    knobs = BuiltinPolicy().knobs_in(HYDRA, command="python train.py optimizer=adamw", metric="val_loss")
    assert not knobs[entry].searchable and "composed" in knobs[entry].why_not
    knobs = BuiltinPolicy().knobs_in(HYDRA, command="python train.py", metric="val_loss")
    assert knobs[entry].searchable, knobs[entry].why_not
