"""What `init` protects: files the command reaches only to measure the model or to provide its data, read from the
code in repositories laid out in several styles (a package whose folder names say nothing true, sklearn helpers, a
torch data module with its split, config loaders, exec'd configs) — never from a file's name."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from nightlab.agent import code_reach, measuring
from nightlab.agent.policy.evaluation import evaluation_functions, fixed_lines, metric_functions
from nightlab.agent.project_init import InitOptions, init_project

from helpers import make_repo


def protected(root: Path, files: dict[str, str], command: str, metric: str | None = None) -> dict[str, str]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    tracked = sorted(files)
    return measuring.protected_files(str(root), tracked, code_reach.reach(root, tracked, command), metric)


# --- a package whose folder names mislead: the "data" folder builds the model, a "utils" module scores it --------

MISNAMED_TRAIN = '''\
import numpy as np

from pkg.data.loader import build_model
from pkg.utils.helpers import summarise
from pkg.io import read_blobs

x, y, xv, yv = read_blobs("blobs.npz")
model = build_model(width=8)
for epoch in range(5):
    model.step(x, y)
print(f"val_acc={summarise(model.predict(xv), yv):.4f}")
'''

MISNAMED_LOADER = '''\
import numpy as np

LR = 0.1


class Net:
    def __init__(self, width):
        self.w = np.zeros(2)

    def predict(self, x):
        return x @ self.w > 0

    def step(self, x, y):
        self.w -= LR * x.T @ ((x @ self.w > 0).astype(float) - y) / len(y)


def build_model(width=8):
    return Net(width)
'''

HELPERS = '''\
import numpy as np


def _share(hits):
    return float(np.mean(hits))


def summarise(pred, y):
    return _share(pred == y)
'''

READ_BLOBS = '''\
import numpy as np


def read_blobs(path):
    d = np.load(path)
    return d["x"], d["y"], d["xv"], d["yv"]
'''


def test_a_folder_named_data_that_builds_the_model_stays_editable_and_the_scoring_helper_is_protected(
        tmp_path: Path) -> None:
    files = {"train.py": MISNAMED_TRAIN, "pkg/__init__.py": "", "pkg/data/__init__.py": "",
             "pkg/data/loader.py": MISNAMED_LOADER, "pkg/utils/__init__.py": "", "pkg/utils/helpers.py": HELPERS,
             "pkg/io.py": READ_BLOBS}
    got = protected(tmp_path, files, "python train.py", metric="val_acc")
    assert "pkg/data/loader.py" not in got  # a model and its learning rate: what the search tunes
    assert got["pkg/utils/helpers.py"] == "computes the metric (summarise) and trains nothing"  # _share comes along
    assert got["pkg/io.py"] == "provides the data (read_blobs) and trains nothing"
    assert "train.py" not in got  # the script the command runs holds the knobs, whatever it prints
    # without the metric's name the scoring helper is not recognised: it does nothing an evaluator must do
    assert "pkg/utils/helpers.py" not in protected(tmp_path, files, "python train.py")


# --- sklearn: a metrics-library report module, a features module, files the command never reaches ----------------

SK_TRAIN = '''\
from sklearn.linear_model import LogisticRegression

from lib.features import make_pipeline_for
from lib.report import f1_of
from lib.loading import train_and_test

Xtr, Xte, ytr, yte = train_and_test(0.25)
clf = make_pipeline_for(LogisticRegression(C=1.0, max_iter=200))
clf.fit(Xtr, ytr)
print("f1", f1_of(clf, Xte, yte))
'''

SK_REPORT = '''\
from sklearn import metrics


def f1_of(clf, X, y):
    return metrics.f1_score(y, clf.predict(X))
'''

SK_FEATURES = '''\
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

N_COMPONENTS = 4


def make_pipeline_for(clf):
    return make_pipeline(StandardScaler(), clf)
'''

SK_LOADING = '''\
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split


def train_and_test(test_size):
    X, y = load_breast_cancer(return_X_y=True)
    return train_test_split(X, y, test_size=test_size, random_state=0)
'''


def test_sklearn_report_and_split_modules_are_protected_by_what_they_call(tmp_path: Path) -> None:
    files = {"fit_model.py": SK_TRAIN, "lib/__init__.py": "", "lib/report.py": SK_REPORT,
             "lib/features.py": SK_FEATURES, "lib/loading.py": SK_LOADING,
             "eval.py": "def evaluate():\n    return 1\n", "metrics.py": "X = 1\n", "data/train.csv": "a,b\n1,2\n",
             "notes.txt": "small notes\n"}
    got = protected(tmp_path, files, "python fit_model.py")
    assert got["lib/report.py"] == "measures the model (f1_of) and trains nothing"
    assert got["lib/loading.py"] == "provides the data (train_and_test) and trains nothing"
    assert "lib/features.py" not in got
    assert "eval.py" not in got and "metrics.py" not in got  # named like evaluation, never run by the command
    assert got["data/train.csv"] == "a data file (.csv)"
    assert "notes.txt" not in got  # a small text file is not a dataset


# --- torch: a data module with a Dataset and its split; a module that trains and evaluates; a config loader -------

TORCH_TRAIN = '''\
import torch

from project.datamodule import loaders
from project.loop import fit
from project.nets import Tiny
from project.settings import load_settings

cfg = load_settings("conf.yaml")
train_dl, val_dl = loaders(cfg["batch_size"])
print("val loss", fit(Tiny(cfg["width"]), train_dl, val_dl, cfg["lr"]))
'''

TORCH_DATAMODULE = '''\
import torch
from torch.utils.data import DataLoader, Dataset, random_split


def _standardise(x):
    return (x - x.mean(0)) / x.std(0)


class Points(Dataset):
    def __init__(self, n=256):
        g = torch.Generator().manual_seed(0)
        self.x = _standardise(torch.randn(n, 4, generator=g))
        self.y = (self.x.sum(1) > 0).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def loaders(batch_size=32):
    train, val = random_split(Points(), [200, 56], generator=torch.Generator().manual_seed(0))
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(val, batch_size=56)
'''

TORCH_LOOP = '''\
import torch


@torch.no_grad()
def evaluate(model, dl):
    model.eval()
    return sum(torch.nn.functional.cross_entropy(model(x), y).item() for x, y in dl)


def fit(model, train_dl, val_dl, lr, epochs=3):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        for x, y in train_dl:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return evaluate(model, val_dl)
'''

TORCH_NETS = '''\
import torch


class Tiny(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))

    def forward(self, x):
        return self.body(x)


@torch.no_grad()
def validate(model, dl):
    model.eval()
    return sum((model(x).argmax(1) == y).float().mean().item() for x, y in dl)
'''

TORCH_SETTINGS = '''\
import yaml


def load_settings(path):
    with open(path) as f:
        return yaml.safe_load(f)
'''


def test_torch_data_module_with_its_split_is_protected_training_and_model_modules_are_not(tmp_path: Path) -> None:
    files = {"run_experiment.py": TORCH_TRAIN, "conf.yaml": "batch_size: 32\nwidth: 16\nlr: 0.1\n",
             "project/__init__.py": "", "project/datamodule.py": TORCH_DATAMODULE, "project/loop.py": TORCH_LOOP,
             "project/nets.py": TORCH_NETS, "project/settings.py": TORCH_SETTINGS}
    got = protected(tmp_path, files, "python run_experiment.py", metric="val loss")
    # the split, the dataset class and the helper only it uses: data code; the batch size is passed from outside
    assert got["project/datamodule.py"] == "provides the data (Points, loaders) and trains nothing"
    assert "project/loop.py" not in got  # it trains: its evaluate() is left alone function by function
    assert "project/nets.py" not in got  # a model beside a validation function: the architecture stays tunable
    assert "project/settings.py" not in got  # opens a file to parse a config: no dataset
    assert set(got) == {"project/datamodule.py"}


EXEC_TRAIN = '''\
import sys

lr = 0.01
steps = 20
exec(open("configurator.py").read())
print(f"loss={5.0 / (1 + lr * steps):.4f}")
'''

CONFIGURATOR = '''\
import sys

for arg in sys.argv[1:]:
    if arg.endswith(".py"):
        exec(open(arg).read())
'''


def test_an_execd_configurator_and_its_config_are_not_protected(tmp_path: Path) -> None:
    files = {"train.py": EXEC_TRAIN, "configurator.py": CONFIGURATOR, "config/small.py": "lr = 0.05\n"}
    assert protected(tmp_path, files, "python train.py config/small.py", metric="loss") == {}


def test_init_says_what_it_protects_and_why(tmp_path: Path) -> None:
    """End to end: the repository with the misleading folder names, initialised; the baseline really runs."""
    import numpy as np

    root = make_repo(tmp_path / "repo", {
        ".gitignore": "*.npz\n", "train.py": MISNAMED_TRAIN, "pkg/__init__.py": "", "pkg/data/__init__.py": "",
        "pkg/data/loader.py": MISNAMED_LOADER, "pkg/utils/__init__.py": "", "pkg/utils/helpers.py": HELPERS,
        "pkg/io.py": READ_BLOBS})
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (100, 2))
    np.savez(root / "blobs.npz", x=x, y=(x.sum(1) > 0), xv=x[:40], yv=(x[:40].sum(1) > 0))
    said: list[str] = []
    res = init_project(root, InitOptions(yes=True, command="python train.py", goal="maximize"), say=said.append)
    cfg = tomllib.loads((root / "nightlab.toml").read_text())
    assert cfg["metric"]["name"] == "val_acc"  # found in the baseline's output, then used to trace the scorer
    assert sorted(cfg["protected"]) == ["pkg/io.py", "pkg/utils/helpers.py"]
    assert "pkg/data/loader.py" in cfg["editable"] and "pkg/utils/helpers.py" not in cfg["editable"]
    text = "\n".join(said + res.notes)
    assert "pkg/utils/helpers.py — computes the metric (summarise) and trains nothing" in text


# --- tracing the printed metric: to what computes it, not to what builds the model or is logged beside it ---------

LOOP_TRAIN = '''\
import torch

from nets import make_model, get_lr

model = make_model(width=16)
optimizer = model.configure_optimizers(lr=0.1)
best_val_loss = 1e9


@torch.no_grad()
def estimate_loss():
    model.eval()
    out = {"val": model(torch.ones(4, 4)).pow(2).mean().item()}
    model.train()
    return out


for it in range(3):
    lr = get_lr(it)
    losses = estimate_loss()
    print(f"step {it}: val loss {losses['val']:.4f}")
    log({"val/loss": losses["val"], "lr": lr, "weights": model.state_dict()})
    if losses["val"] < best_val_loss:
        best_val_loss = losses["val"]
        checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "best_val_loss": best_val_loss}
    optimizer.zero_grad()
    model(torch.ones(4, 4)).sum().backward()
    optimizer.step()
'''

LOOP_NETS = '''\
import torch


class Net(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = torch.nn.Linear(4, width)

    def forward(self, x):
        return self.body(x)

    def configure_optimizers(self, lr):
        return torch.optim.SGD(self.parameters(), lr=lr)


def make_model(width):
    return Net(width)


def get_lr(it):
    return 0.1 / (1 + it)
'''


def test_the_metric_is_traced_to_the_function_that_computes_it_and_no_further() -> None:
    """Not to the factory that built the model it is called on, the learning-rate schedule logged in the same dict,
    or the optimizer saved in the same checkpoint: those are what the search tunes."""
    files = {"train.py": LOOP_TRAIN, "nets.py": LOOP_NETS}
    assert metric_functions(files, "val loss") == {"estimate_loss"}


def test_a_method_of_the_model_that_scores_it_is_traced_but_what_built_the_model_is_not() -> None:
    train = "from m import make\nmodel = make(2)\nxv = load()\nprint(f'val_acc={model.accuracy(xv):.3f}')\n"
    m = ("class Lin:\n    def __init__(self, n):\n        self.n = n\n\n    def accuracy(self, x):\n"
         "        return float((x > 0).mean())\n\n\ndef make(n):\n    return Lin(n)\n\n\ndef load():\n    return 1\n")
    assert metric_functions({"train.py": train, "m.py": m}, "val_acc") == {"accuracy"}
    # a reduction given only constants reads the value it is called on
    train = "from m import score\nlosses = score()\nprint(f'val_acc={losses.mean(0).item():.3f}')\n"
    assert metric_functions({"train.py": train, "m.py": "def score():\n    return 1\n"}, "val_acc") == {"score"}


def test_a_module_that_trains_and_evaluates_stays_editable_but_its_evaluation_function_is_fixed(
        tmp_path: Path) -> None:
    files = {"run_experiment.py": TORCH_TRAIN, "conf.yaml": "batch_size: 32\nwidth: 16\nlr: 0.1\n",
             "project/__init__.py": "", "project/datamodule.py": TORCH_DATAMODULE, "project/loop.py": TORCH_LOOP,
             "project/nets.py": TORCH_NETS, "project/settings.py": TORCH_SETTINGS}
    assert "project/loop.py" not in protected(tmp_path, files, "python run_experiment.py", metric="val loss")
    evaluation = evaluation_functions({p: t for p, t in files.items() if p.endswith(".py")}, "val loss")
    assert "evaluate" in evaluation and "fit" not in evaluation
    fixed = fixed_lines(TORCH_LOOP, evaluation)
    lines = TORCH_LOOP.splitlines()
    assert {lines[i - 1].strip() for i in fixed} >= {"def evaluate(model, dl):", "model.eval()"}
    assert not any("lr=lr" in lines[i - 1] for i in fixed)  # the optimizer line is the policy's to tune


SCORED = '''\
import argparse

LR = 0.05


def evaluate(w):
    return 1.0 - abs(w - 0.3)


def train(lr):
    w = 0.0
    for step in range(5):
        w += lr
        print(f"step {step} loss {abs(w - 0.3):.4f}")
    return w


p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.parse_args()
print(f"acc={evaluate(train(LR)):.4f}")
'''


def test_no_policy_may_change_how_the_metric_is_measured_in_an_editable_file(tmp_path: Path) -> None:
    """`evaluate` sits in the editable train.py beside the training loop: a proposal that rewrites it (as a language
    model might, to "improve" the score) is refused before it becomes a commit; one that moves a setting runs."""
    from nightlab.agent.config import load_config
    from nightlab.agent.engine import Engine, EngineOptions, open_store
    from nightlab.agent.policy.base import Edit, PolicyBase, PolicyContext, Proposal
    from nightlab.agent.states import Kind, Status

    from helpers import git, make_repo, write_config

    class Gamer(PolicyBase):
        name = "gamer"

        def __init__(self) -> None:
            self.todo = [
                Proposal(title="a kinder score", rationale="higher acc", kind=Kind.LLM,
                         edits=[Edit("train.py", "    return 1.0 - abs(w - 0.3)", "    return 1.0")]),
                Proposal(title="a smaller validation set", rationale="faster", kind=Kind.LLM, edits=[],
                         command="python train.py --seed 0 --val-fraction 0.01"),
                Proposal(title="LR = 0.06", rationale="a setting", kind=Kind.LLM,
                         edits=[Edit("train.py", "LR = 0.05", "LR = 0.06")], knobs={"LR": 0.06}),
            ]

        def propose(self, ctx: PolicyContext) -> Proposal | None:
            return self.todo.pop(0) if self.todo else None

    root = make_repo(tmp_path / "p", {"train.py": SCORED})
    write_config(root)
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    opts = EngineOptions(mode="autonomous", budget=3, poll_s=0.1, unsafe_no_sandbox=True)
    Engine(root, load_config(root), options=opts, policy=Gamer()).run()
    store = open_store(root)
    exps = {e.title: e for e in store.experiments()}
    cheat = exps["a kinder score"]
    assert cheat.status == Status.REJECTED and cheat.run_result is None and cheat.commit_sha is None
    assert "how the metric is measured (train.py: evaluate)" in (cheat.error or "")
    assert exps["LR = 0.06"].run_result is not None  # a setting in the same file goes ahead
    smaller = exps["a smaller validation set"]  # the measurement's size on the command line is held too
    assert smaller.status == Status.REJECTED and "command: val_fraction" in (smaller.error or "")
    assert "return 1.0 - abs(w - 0.3)" in (root / "train.py").read_text()


PREPARED_TRAIN = '''\
import argparse
import json

params = json.load(open("params.json"))["train"]
p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.parse_args()
print(f"acc={1.0 - abs(params['lr'] - 0.3):.4f}")
'''
PREPARE = '''\
import json
import random

params = json.load(open("params.json"))["prepare"]
random.seed(params["seed"])
rows = list(range(100))
random.shuffle(rows)
json.dump(rows[: int(len(rows) * 0.2)], open("test_rows.json", "w"))
'''


def test_a_config_key_only_protected_code_reads_is_refused_by_the_engine(tmp_path: Path) -> None:
    """The split's seed sits in a params file beside the training settings, and only the protected prepare.py reads
    it: a proposal that redraws the split (in the file, or as a DVC-style `-S` override on the command) is refused;
    one that moves the training's own setting in the same file runs."""
    from nightlab.agent.config import load_config
    from nightlab.agent.engine import Engine, EngineOptions, open_store
    from nightlab.agent.policy.base import Edit, PolicyBase, PolicyContext, Proposal
    from nightlab.agent.states import Kind, Status

    from helpers import git, make_repo, write_config

    class Gamer(PolicyBase):
        name = "gamer"

        def __init__(self) -> None:
            self.todo = [
                Proposal(title="a luckier split", rationale="higher acc", kind=Kind.LLM,
                         edits=[Edit("params.json", '"seed": 7', '"seed": 8')]),
                Proposal(title="a luckier split, from the command", rationale="higher acc", kind=Kind.LLM, edits=[],
                         command=f"{sys.executable} train.py --seed 0 -S params.json:prepare.seed=8"),
                Proposal(title="lr = 0.25", rationale="a setting", kind=Kind.LLM,
                         edits=[Edit("params.json", '"lr": 0.1', '"lr": 0.25')]),
            ]

        def propose(self, ctx: PolicyContext) -> Proposal | None:
            return self.todo.pop(0) if self.todo else None

    root = make_repo(tmp_path / "p", {"train.py": PREPARED_TRAIN, "prepare.py": PREPARE,
                                      "params.json": '{"prepare": {"seed": 7}, "train": {"lr": 0.1}}\n'})
    write_config(root, editable=["train.py", "params.json"], protected=["prepare.py"])
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    opts = EngineOptions(mode="autonomous", budget=3, poll_s=0.1, unsafe_no_sandbox=True)
    Engine(root, load_config(root), options=opts, policy=Gamer()).run()
    exps = {e.title: e for e in open_store(root).experiments()}
    for title in ("a luckier split", "a luckier split, from the command"):
        assert exps[title].status == Status.REJECTED and exps[title].run_result is None
        assert "prepare.seed" in (exps[title].error or ""), exps[title].error
    assert exps["lr = 0.25"].run_result is not None
    assert '"seed": 7' in (root / "params.json").read_text()
