"""The builtin policy: code transforms that run, a crash fix that works, diagnosis moves, knob search, exhaustion.

Everything runs on miniature training scripts written here (synthetic data, 1-2 s each with torch on one thread),
never on the benchmark tasks.
"""

from __future__ import annotations

import dataclasses
import math
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nightlab.agent import diagnose
from nightlab.agent.edits import apply_edits
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy import search as searchmod
from nightlab.agent.policy import transforms as tf
from nightlab.agent.policy.base import Abandon, Edit, ExperimentView, PolicyContext, Proposal
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.policy.evaluation import fixed_lines

MLP_SGD = '''\
"""Classify four Gaussian blobs with a small MLP (synthetic, deterministic)."""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG = {
    "hidden": 32,
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "batch_size": 50,
    "epochs": 6,
}


# --------------------------------------------------------------- fixed: data and evaluation (do not edit)
def load_data(seed=7):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 12, generator=g) * 2.0
    y = torch.randint(0, 4, (1000,), generator=g)
    x = (centers[y] + torch.randn(1000, 12, generator=g)) * 40.0 + 300.0  # raw, badly scaled features
    return x[:800], y[:800], x[800:], y[800:]


@torch.no_grad()
def evaluate(model, x, y):
    """Accuracy on the held-out part; non-finite logits count as wrong."""
    model.eval()
    logits = model(x)
    return ((logits.argmax(1) == y) & torch.isfinite(logits).all(1)).float().mean().item()
# ---------------------------------------------------------------


class Net(nn.Module):
    def __init__(self, d_in, hidden, n_out):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))

    def forward(self, x):
        return self.body(x)


def train(cfg, x_train, y_train, seed):
    torch.manual_seed(seed)
    model = Net(x_train.shape[1], cfg["hidden"], 4)
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                          weight_decay=cfg["weight_decay"])
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(cfg["epochs"]):
        model.train()
        perm = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(x_train), cfg["batch_size"]):
            idx = perm[i:i + cfg["batch_size"]]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch} train_loss {loss.item():.4f}")
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = load_data()
    model = train(CONFIG, x_train, y_train, args.seed)
    print(f"accuracy={evaluate(model, x_test, y_test):.4f}")


if __name__ == "__main__":
    main()
'''

# the same project after someone already moved to AdamW and added dropout: diagnosis moves act on knobs
_ADAMW_CHANGES = [
    ('    "momentum": 0.9,\n', '    "dropout": 0.0,\n'),
    ('torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],\n                          ',
     'torch.optim.AdamW(model.parameters(), lr=cfg["lr"], '),
    ("nn.ReLU(), nn.Linear(hidden, n_out))", "nn.ReLU(), nn.Dropout(dropout),\n"
                                             "                                  nn.Linear(hidden, n_out))"),
    ("def __init__(self, d_in, hidden, n_out):", "def __init__(self, d_in, hidden, n_out, dropout):"),
    ('Net(x_train.shape[1], cfg["hidden"], 4)', 'Net(x_train.shape[1], cfg["hidden"], 4, cfg["dropout"])'),
]
MLP_ADAMW = MLP_SGD
for _old, _new in _ADAMW_CHANGES:
    assert _old in MLP_ADAMW, _old
    MLP_ADAMW = MLP_ADAMW.replace(_old, _new)

CNN_BROKEN = '''\
# A small CNN on synthetic 8x8 images, written as a flat script; its classifier head was sized for 16x16 inputs.
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_num_threads(1)
images = torch.randn(256, 1, 8, 8)
labels = (images.mean(dim=(1, 2, 3)) > 0).long()
train_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=32,
                                           shuffle=True)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 2)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


net = SmallCNN()
optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
for epoch in range(2):
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(net(xb), yb)
        loss.backward()
        optimizer.step()
with torch.no_grad():
    acc = (net(images).argmax(1) == labels).float().mean().item()
print(f"acc={acc:.3f}")
'''

# no torch at all: only knobs, so `propose` goes straight to the search
KNOB_ONLY = '''\
"""A stand-in training script whose score depends on its settings."""
import math

SEED = 0
LEARNING_RATE = 0.01
BATCH_SIZE = 64
LOG_EVERY = 10


def run():
    score = 1.0 - abs(math.log10(LEARNING_RATE / 0.1)) / 3 - abs(math.log2(BATCH_SIZE / 32)) / 20
    print(f"score={score:.4f}")


if __name__ == "__main__":
    run()
'''


# ----------------------------------------------------------------------------------------------- helpers


def run_script(tmp_path: Path, text: str, name: str = "train.py", timeout: float = 120) -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_text(text)
    return subprocess.run([sys.executable, str(path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})


def metric(out: str, name: str = "accuracy") -> float:
    line = [ln for ln in out.splitlines() if ln.startswith(name + "=")][-1]
    return float(line.split("=")[1])


def applied(edits: list[Edit], files: dict[str, str], protected: tuple[str, ...] = ()) -> dict[str, str]:
    """The files after the edits, validated exactly as the engine validates them."""
    return {**files, **apply_edits(edits, lambda p: files.get(p), list(files), list(protected))}


def view(id: int, parent: int | None = None, *, kind: str = "hyperparameter", metric: float | None = 0.5,
         loss: list[float] | None = None, curve: list[float] | None = None, knobs: dict[str, Any] | None = None,
         result: str = "succeeded", failure: str | None = None, log_tail: str = "",
         seconds: float | None = 2.0, title: str = "") -> ExperimentView:
    return ExperimentView(
        id=id, parent_id=parent, title=title or f"exp {id}", kind=kind, status="kept", run_result=result,
        metric=metric, curve=[(i + 1, v) for i, v in enumerate(curve or [])],
        loss_curve=[(i + 1, v) for i, v in enumerate(loss or [])], knobs=dict(knobs or {}), failure_class=failure,
        diagnosis=None, log_tail=log_tail, seed=0, seconds=seconds,
    )


class Tree:
    """An in-memory experiment tree with files per experiment: what the engine gives a policy, minus git."""

    def __init__(self, files: dict[str, str], protected: tuple[str, ...] = (), goal: str = "maximize") -> None:
        self.files: dict[int, dict[str, str]] = {1: dict(files)}
        self.views: list[ExperimentView] = []
        self.protected = protected
        self.goal = goal
        self.best_id: int | None = None

    def ctx(self, runs_left: int = 50) -> PolicyContext:
        editable = [p for p in self.files[1] if p not in self.protected]
        return PolicyContext(
            root="/nonexistent", metric="accuracy", goal=self.goal,  # type: ignore[arg-type]
            editable=editable, protected=list(self.protected), experiments=list(self.views), best_id=self.best_id,
            baseline_id=1, noise_floor=0.0, brief="", timeout_s=600.0, runs_left=runs_left,
            read_file=lambda i, p: self.files.get(i if i is not None else 1, {}).get(p, ""), rng=random.Random(0),
        )

    def add(self, v: ExperimentView, files: dict[str, str] | None = None) -> None:
        self.views.append(v)
        if files is not None:
            self.files[v.id] = files
        sign = 1 if self.goal == "maximize" else -1
        best = next((x for x in self.views if x.id == self.best_id), None)
        if v.metric is not None and (best is None or best.metric is None or sign * (v.metric - best.metric) > 0):
            self.best_id = v.id

    def record(self, prop: Proposal, metric: float | None, **kw: Any) -> ExperimentView:
        parent = prop.parent_id if prop.parent_id is not None else self.best_id
        assert parent is not None
        files = applied(prop.edits, self.files[parent], self.protected)
        v = view(len(self.views) + 1, parent, kind=prop.kind, metric=metric, knobs=prop.knobs, title=prop.title,
                 **kw)
        self.add(v, files)
        return v


# ----------------------------------------------------------------------------------------------- diff_edits


def test_diff_edits_are_valid_unique_edits_that_reproduce_the_new_text() -> None:
    old = "a = 1\nb = 2\nx = 0\nb = 2\nc = 3\n" * 2 + "end\n"
    new = old.replace("c = 3\n", "c = 4\n", 1).replace("end\n", "end\nextra = 1\n")
    edits = tf.diff_edits("f.py", old, new)
    assert edits and all(e.path == "f.py" for e in edits)
    assert applied(edits, {"f.py": old})["f.py"] == new
    assert tf.diff_edits("f.py", old, old) == []


# ----------------------------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("name", ["sgd_to_adamw", "grad_clip", "standardize", "warmup_cosine"])
def test_transform_gives_a_valid_edit_whose_script_runs(tmp_path: Path, name: str) -> None:
    r = tf.TRANSFORMS[name](MLP_SGD, "train.py")
    assert r is not None, name
    compile(r.new_text, "train.py", "exec")
    new = applied(tf.diff_edits("train.py", MLP_SGD, r.new_text), {"train.py": MLP_SGD})["train.py"]
    assert new == r.new_text
    # the fixed data / evaluation region is untouched
    fixed = MLP_SGD.split("# ----")[1]
    assert fixed in new
    proc = run_script(tmp_path, new)
    assert proc.returncode == 0, proc.stderr[-2000:]
    acc = metric(proc.stdout)
    assert 0.0 <= acc <= 1.0
    if name == "standardize":
        # badly scaled inputs made SGD useless; with training-set statistics (applied at evaluation too) it learns
        assert acc >= 0.8, proc.stdout


def test_sgd_to_adamw_drops_sgd_only_arguments_and_keeps_knob_expressions() -> None:
    r = tf.sgd_to_adamw(MLP_SGD, "train.py")
    assert r is not None
    assert 'torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])' in r.new_text
    assert "momentum=" not in r.new_text
    assert r.exprs["lr"] == 'cfg["lr"]'
    lit = tf.sgd_to_adamw(MLP_SGD, "train.py", lr=3e-3)
    assert lit is not None and "lr=0.003" in lit.new_text


def test_all_transforms_stack_and_the_result_runs(tmp_path: Path) -> None:
    text = MLP_SGD
    for name in ["sgd_to_adamw", "standardize", "warmup_cosine", "grad_clip"]:
        r = tf.TRANSFORMS[name](text, "train.py")
        assert r is not None, name
        text = r.new_text
        assert tf.TRANSFORMS[name](text, "train.py") is None, f"{name} applied twice"
    proc = run_script(tmp_path, text)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert metric(proc.stdout) >= 0.8


def test_grad_clip_lands_between_backward_and_step_on_a_one_line_update(tmp_path: Path) -> None:
    # `loss.backward(); opt.step()` on one line: a clip inserted after the line would run after the step, and clip
    # gradients that are about to be zeroed, changing nothing while the diff says it does
    one_line = MLP_SGD.replace("            loss.backward()\n            opt.step()\n",
                               "            loss.backward(); opt.step()\n")
    assert one_line != MLP_SGD
    r = tf.gradient_clipping(one_line, "train.py")
    assert r is not None
    line = next(ln for ln in r.new_text.splitlines() if "loss.backward()" in ln)
    assert line.index("loss.backward()") < line.index("clip_grad_norm_(") < line.index("opt.step()")
    proc = run_script(tmp_path, r.new_text)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_transforms_skip_ambiguous_patterns() -> None:
    # two optimizers (e.g. a GAN): clipping / scheduling one of them would be a guess
    two = MLP_SGD.replace("    gen = torch.Generator()", "    opt2 = torch.optim.Adam(model.parameters())\n"
                                                           "    gen = torch.Generator()")
    assert tf.gradient_clipping(two, "train.py") is None
    assert tf.warmup_cosine(two, "train.py") is None
    # a conditional step (gradient accumulation): the number of optimizer steps is unknown
    accum = MLP_SGD.replace("            opt.step()\n", "            if i % 2 == 0:\n                opt.step()\n")
    assert tf.warmup_cosine(accum, "train.py") is None
    # a hand-written schedule already exists
    manual = "            opt.step()\n            opt.param_groups[0]['lr'] = 0.01\n"
    sched = MLP_SGD.replace("            opt.step()\n", manual)
    assert tf.warmup_cosine(sched, "train.py") is None
    assert tf.sgd_to_adamw("x = 1 +\n", "bad.py") is None  # does not parse: skipped, no exception


def test_fixed_lines_cover_evaluation_functions_and_marked_regions() -> None:
    lines = MLP_SGD.splitlines()
    fixed = fixed_lines(MLP_SGD)
    n_eval = next(i for i, ln in enumerate(lines, 1) if ln.startswith("def evaluate"))
    n_train = next(i for i, ln in enumerate(lines, 1) if ln.startswith("def train"))
    assert n_eval in fixed and n_eval + 3 in fixed
    assert n_train not in fixed and n_train + 3 not in fixed


# ----------------------------------------------------------------------------------------------- fix


def test_shape_mismatch_fix_makes_the_crashing_cnn_run(tmp_path: Path) -> None:
    proc = run_script(tmp_path, CNN_BROKEN)
    assert proc.returncode != 0 and "mat1 and mat2 shapes cannot be multiplied" in proc.stderr
    log = proc.stdout + proc.stderr
    failure = diagnose.classify_failure(log, proc.returncode, "failed")
    tree = Tree({"train.py": CNN_BROKEN})
    failed = view(1, kind="baseline", metric=None, result="failed", failure=failure.cls, log_tail=log[-4000:])
    tree.add(failed)
    prop = BuiltinPolicy().fix(tree.ctx(), failed)
    assert prop is not None and prop.kind == "fix" and prop.parent_id == 1
    assert prop.diagnosis and prop.rationale
    fixed = applied(prop.edits, tree.files[1])["train.py"]
    assert "nn.Linear(64, 32)" in fixed
    proc = run_script(tmp_path, fixed)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "acc=" in proc.stdout


def test_fix_by_failure_class() -> None:
    policy = BuiltinPolicy()
    tree = Tree({"train.py": MLP_ADAMW})
    base = view(1, kind="baseline", metric=0.5)
    tree.add(base)
    nan = view(2, 1, metric=None, result="failed", failure="nan_loss")
    tree.add(nan, tree.files[1])
    prop = policy.fix(tree.ctx(), nan)
    assert prop is not None and prop.knobs["CONFIG.lr"] == pytest.approx(0.001)
    oom = view(3, 1, metric=None, result="failed", failure="oom")
    tree.add(oom, tree.files[1])
    prop = policy.fix(tree.ctx(), oom)
    assert prop is not None and prop.knobs["CONFIG.batch_size"] < 50
    slow = view(4, 1, metric=None, result="timed_out", failure="timeout")
    tree.add(slow, tree.files[1])
    prop = policy.fix(tree.ctx(), slow)
    assert prop is not None and prop.knobs["CONFIG.epochs"] == 3
    missing = view(5, 1, metric=None, result="failed", failure="import_error",
                   log_tail="ModuleNotFoundError: No module named 'timm'")
    tree.add(missing, tree.files[1])
    with pytest.raises(Abandon, match=r"timm is not installed.*cannot install"):  # nothing installs offline
        policy.fix(tree.ctx(), missing)
    other = view(6, 1, metric=None, result="failed", failure="key_error", log_tail="KeyError: 'foo'")
    tree.add(other, tree.files[1])
    assert policy.fix(tree.ctx(), other) is None


# ----------------------------------------------------------------------------------------------- diagnosis


def _diagnosed(loss: list[float], curve: list[float] | None = None, text: str = MLP_ADAMW) -> Proposal:
    tree = Tree({"train.py": text})
    tree.add(view(1, kind="baseline", metric=0.7, loss=loss, curve=curve))
    prop = BuiltinPolicy().propose(tree.ctx())
    assert prop is not None
    # every proposal is a valid edit on top of the best, with its reasons written down
    applied(prop.edits, tree.files[1])
    assert prop.parent_id == 1 and prop.title and prop.rationale
    return prop


def test_diverging_run_lowers_the_learning_rate() -> None:
    prop = _diagnosed([1.0, 0.8, 0.6, 0.5, 0.55, 0.7, 1.1, 1.9, 3.5, 6.0, 11.0, 20.0])
    assert prop.diagnosis.startswith("diverging")
    assert prop.knobs["CONFIG.lr"] < 0.01


def test_still_improving_run_trains_longer() -> None:
    loss = [2.0 * 0.8**i for i in range(16)]
    prop = _diagnosed(loss, text=MLP_ADAMW.replace('"hidden": 32', '"hidden": 256'))
    assert "still_improving" in prop.diagnosis
    assert prop.knobs["CONFIG.epochs"] > 6 and prop.knobs["CONFIG.hidden"] == 256


def test_a_tiny_hidden_layer_is_widened_first_within_the_time_limit() -> None:
    """Capacity is the cheapest lever of a small model: 4x where it fits the timeout, 2x where only that fits."""
    loss = [2.0 * 0.8**i for i in range(16)]
    prop = _diagnosed(loss)  # hidden 32, a 2 s run of a 600 s limit
    assert "still_improving" in prop.diagnosis
    assert prop.knobs["CONFIG.hidden"] == 128 and prop.knobs["CONFIG.epochs"] == 6
    assert prop.title.startswith("widen") and "tiny" in prop.rationale

    def first(seconds: float) -> Proposal:
        tree = Tree({"train.py": MLP_ADAMW})
        tree.add(view(1, kind="baseline", metric=0.7, loss=loss, seconds=seconds))
        got = BuiltinPolicy().propose(tree.ctx())
        assert got is not None
        return got

    # the cost model reads two Linear layers each widened on one side, plus their fixed cost per call: 4x the width
    # predicts ~1.44x the time, over 70% of the 600 s limit for a 320 s run, while 2x (~1.15x) fits
    assert first(320.0).knobs["CONFIG.hidden"] == 64
    # a run that already takes 400 s cannot afford either: the remedy falls through to training longer
    slow = first(400.0)
    assert slow.knobs["CONFIG.hidden"] == 32 and not slow.title.startswith("widen")


def test_when_time_is_short_a_cheaper_move_that_fits_is_proposed_and_the_others_said() -> None:
    """With the session's deadline or compute budget near (`time_left_s`), the cost model's prediction of each
    candidate decides: the widening and the longer training (more than the 100 s run) are skipped and listed in
    `unfit`; a same-shape move (about the run's own time) fits just above it, only a shorter run (fewer epochs)
    below it, and nothing when not even that fits."""
    from dataclasses import replace

    loss = [2.0 * 0.8**i for i in range(16)]  # still improving: the remedies widen, then train longer

    def first(left: float | None) -> tuple[Proposal | None, dict[str, float]]:
        tree = Tree({"train.py": MLP_ADAMW})
        tree.add(view(1, kind="baseline", metric=0.7, loss=loss, seconds=100.0))
        policy = BuiltinPolicy()
        got = policy.propose(replace(tree.ctx(), time_left_s=left))
        return got, dict(policy.unfit)

    free, skipped = first(None)
    assert free is not None and free.title.startswith("widen") and not skipped
    roomy, skipped = first(1000.0)  # time enough: the same move as without a limit
    assert roomy is not None and roomy.title == free.title and not skipped
    short, skipped = first(105.0)
    assert short is not None and not short.title.startswith("widen") and (short.predicted_s or 100.0) <= 105.0
    assert short.knobs["CONFIG.hidden"] == 32 and short.knobs["CONFIG.epochs"] <= 6
    assert skipped["hidden → 128"] > 105.0 and skipped["epochs → 12"] > 105.0
    tight, skipped = first(60.0)  # less than the run itself: only a shorter one fits
    assert tight is not None and tight.predicted_s is not None and tight.predicted_s <= 60.0
    assert tight.knobs["CONFIG.epochs"] < 6 and tight.knobs["CONFIG.hidden"] <= 32
    none, skipped = first(5.0)
    assert none is None and skipped and min(skipped.values()) > 5.0


def test_overfitting_run_is_regularised() -> None:
    loss = [2.0 * 0.7**i for i in range(12)]
    curve = [0.5, 0.7, 0.8, 0.85, 0.86, 0.84, 0.8, 0.77, 0.74, 0.72, 0.7, 0.69]
    prop = _diagnosed(loss, curve)
    assert prop.diagnosis.startswith("overfitting")
    assert prop.knobs["CONFIG.weight_decay"] > 0 or prop.knobs["CONFIG.dropout"] > 0


def test_a_tiny_layer_is_widened_without_a_curve_after_the_transforms_and_only_once() -> None:
    tree = Tree({"train.py": MLP_ADAMW})
    tree.add(view(1, kind="baseline", metric=0.70))  # no learning curve to read: no diagnosis
    policy = BuiltinPolicy()
    titles = []
    for _ in range(6):
        prop = policy.propose(tree.ctx())
        assert prop is not None
        titles.append(prop.title)
        if prop.title.startswith("widen"):
            break
        tree.record(prop, 0.69)  # the transforms lose
    assert titles[-1] == "widen CONFIG.hidden from 32 to 128" and len(titles) >= 2
    assert all(t and not t.startswith("widen") for t in titles[:-1])
    tree.record(prop, 0.68)  # the widening loses too
    follow = policy.propose(tree.ctx())
    assert follow is not None and not follow.title.startswith("widen")
    # a new best elsewhere (a search move) does not bring the blind widening back
    tree.record(follow, 0.80)
    assert tree.best_id == len(tree.views)
    for _ in range(4):
        nxt = policy.propose(tree.ctx())
        assert nxt is not None and not nxt.title.startswith("widen CONFIG.hidden from 32")
        tree.record(nxt, 0.75)


def test_sgd_project_is_moved_to_adamw_with_a_suitable_learning_rate() -> None:
    tree = Tree({"train.py": MLP_SGD})
    tree.add(view(1, kind="baseline", metric=0.3))
    prop = BuiltinPolicy().propose(tree.ctx())
    assert prop is not None and prop.kind == "transform" and prop.knobs["transform"] == "sgd_to_adamw"
    new = applied(prop.edits, tree.files[1])["train.py"]
    assert "torch.optim.AdamW(" in new and "torch.optim.SGD(" not in new
    assert prop.knobs["CONFIG.lr"] == pytest.approx(0.003)  # the knob the optimizer reads, re-tuned for AdamW


def test_two_small_gains_from_the_best_are_tried_together() -> None:
    tree = Tree({"train.py": MLP_ADAMW})
    tree.add(view(1, kind="baseline", metric=0.80))
    knobs = {k.name: k for k in knobmod.discover_files(tree.files[1])}

    def child(id: int, name: str, value: Any, metric: float) -> None:
        files = {"train.py": knobmod.rewrite(tree.files[1]["train.py"], knobs[name], value)}
        full = {k.name: k.value for k in knobmod.discover_files(files)}
        tree.add(view(id, 1, metric=metric, knobs=full), files)
        tree.best_id = 1  # each gain alone was within the noise floor: the baseline stays the best

    child(2, "CONFIG.epochs", 12, 0.81)
    child(3, "CONFIG.lr", 0.03, 0.79)  # worse: not part of any combination
    child(4, "CONFIG.hidden", 64, 0.805)
    prop = BuiltinPolicy().propose(tree.ctx())
    assert prop is not None and prop.parent_id == 1 and prop.kind == "hyperparameter"
    assert prop.title.startswith("combine #2 and #4")
    new = {k.name: k.value for k in knobmod.discover_files(applied(prop.edits, tree.files[1]))}
    assert new["CONFIG.epochs"] == 12 and new["CONFIG.hidden"] == 64 and new["CONFIG.lr"] == knobs["CONFIG.lr"].value
    assert "same seed" in prop.rationale
    # tried once: the next proposal is something else
    tree.record(prop, 0.80)
    tree.best_id = 1
    nxt = BuiltinPolicy().propose(tree.ctx())
    assert nxt is not None and not nxt.title.startswith("combine")


# ----------------------------------------------------------------------------------------------- search


def _score(files: dict[str, str]) -> float:
    ks = {k.name: k.value for k in knobmod.discover_files(files)}
    lr, bs = float(ks["LEARNING_RATE"]), float(ks["BATCH_SIZE"])
    return 1.0 - abs(math.log10(lr / 0.1)) / 3 - abs(math.log2(bs / 32)) / 20


def test_search_stays_in_the_space_and_never_touches_seeds_or_protected_files() -> None:
    files = {"train.py": KNOB_ONLY, "eval.yaml": "test_size: 0.2\nthreshold: 0.5\nlr: 0.1\n"}
    tree = Tree(files, protected=("eval.yaml",))
    tree.add(view(1, kind="baseline", metric=_score(files), seconds=None))
    policy = BuiltinPolicy()
    seen: list[tuple[Any, ...]] = []
    for _ in range(12):
        ctx = tree.ctx()
        parent = ctx.best_id
        assert parent is not None
        prop = policy.propose(ctx)
        assert prop is not None
        assert prop.kind == "hyperparameter" and prop.parent_id == parent
        assert all(e.path == "train.py" for e in prop.edits)
        before = {k.name: k for k in knobmod.discover_files(tree.files[parent])}
        after = applied(prop.edits, tree.files[parent], tree.protected)
        now = {k.name: k.value for k in knobmod.discover_files(after)}
        changed = {n for n in now if now[n] != before[n].value}
        assert changed and changed <= {"LEARNING_RATE", "BATCH_SIZE"}
        for n in changed:
            space = knobmod.search_space(before[n])
            assert space is not None and space.low <= float(now[n]) <= space.high
        assert now["SEED"] == 0 and now["LOG_EVERY"] == 10
        sig = tuple(sorted(now.items()))
        assert sig not in seen, "proposed the same assignment twice"
        seen.append(sig)
        tree.record(prop, _score(after), seconds=None)
    best = next(v for v in tree.views if v.id == tree.best_id)
    start = tree.views[0].metric
    assert best.metric is not None and start is not None and best.metric > start + 0.2  # the search progresses


def test_the_search_tries_the_other_direction_and_then_knobs_never_varied() -> None:
    # (HIDDEN is not tiny: a tiny layer would be widened before the search starts)
    text = KNOB_ONLY.replace("BATCH_SIZE = 64\n", "BATCH_SIZE = 64\nHIDDEN = 128\n").replace(
        "/ 20\n", "/ 20 - abs(math.log2(HIDDEN / 512)) / 30\n")
    knobs = {k.name: k for k in knobmod.discover_files({"train.py": text})}

    def tree_with(*lost: tuple[str, Any, str]) -> Tree:
        """The baseline as the best, and one-knob children that lost (title: a search move or a diagnosis move)."""
        tree = Tree({"train.py": text})
        tree.add(view(1, kind="baseline", metric=0.5, seconds=None))
        for i, (name, value, title) in enumerate(lost, 2):
            files = {"train.py": knobmod.rewrite(text, knobs[name], value)}
            v = view(i, 1, metric=0.4, seconds=None, title=title,
                     knobs={k.name: k.value for k in knobmod.discover_files(files)})
            tree.add(dataclasses.replace(v, status="discarded"), files)
        tree.best_id = 1
        return tree

    def next_change(tree: Tree) -> dict[str, Any]:
        prop = BuiltinPolicy().propose(tree.ctx())
        assert prop is not None
        after = {k.name: k.value for k in knobmod.discover_files(applied(prop.edits, tree.files[1]))}
        return {n: v for n, v in after.items() if v != knobs[n].value}

    lost = [("BATCH_SIZE", 256, "tune BATCH_SIZE 64 → 256"), ("LEARNING_RATE", 0.03, "tune LEARNING_RATE 0.01 → 0.03")]
    down = next_change(tree_with(*lost))
    assert set(down) == {"LEARNING_RATE"} and down["LEARNING_RATE"] < 0.01  # the search move that just lost: the
    lost.append(("LEARNING_RATE", down["LEARNING_RATE"], "tune LEARNING_RATE"))  # other direction first
    assert set(next_change(tree_with(*lost))) == {"HIDDEN"}  # then a knob never varied, before batch size again
    # a diagnosis move that lost ("still improving: raise the learning rate") is no case for the opposite move
    diag = ("LEARNING_RATE", 0.02, "raise LEARNING_RATE from 0.01 to 0.02")
    assert set(next_change(tree_with(diag))) == {"BATCH_SIZE"}


def test_propose_returns_none_when_everything_is_tried() -> None:
    text = "SEED = 0\nN_LAYERS = 2\nprint(f'score={N_LAYERS}')\n"
    tree = Tree({"train.py": text})
    tree.add(view(1, kind="baseline", metric=2.0, seconds=None))
    policy = BuiltinPolicy()
    titles = []
    for _ in range(10):
        prop = policy.propose(tree.ctx())
        if prop is None:
            break
        titles.append(prop.title)
        tree.record(prop, 0.0, seconds=None)  # every change is worse
    else:
        pytest.fail(f"never exhausted: {titles}")
    assert 1 <= len(titles) <= 3  # depth 1, 3, 4: each once
    assert BuiltinPolicy().propose(Tree({"notes.txt": "nothing\n"}).ctx()) is None  # no best at all


def test_coordinate_moves_and_tpe_stay_in_space() -> None:
    space = knobmod.Space(1e-4, 1.0, True, False)
    dims = [searchmod.Dim("lr", space, "lr")]
    rng = random.Random(1)
    history = [searchmod.Observation({"lr": v}, -abs(math.log10(v / 0.05))) for v in (0.001, 0.003, 0.01, 0.03)]
    tried: Callable[[dict[str, Any]], bool] = lambda ch: any(math.isclose(ch["lr"], o.values["lr"]) for o in history)
    moves = searchmod.coordinate_moves({"lr": 0.03}, dims, history)
    assert [round(m.changes["lr"], 6) for m in moves] == [0.09, 0.01]  # larger first: larger scored better
    s = searchmod.tpe_suggest(history, dims, {"lr": 0.03}, rng, tried)
    assert s is not None and 1e-4 <= s.changes["lr"] <= 1.0 and not tried(s.changes)


def test_policy_identity() -> None:
    p = BuiltinPolicy()
    assert p.name == "builtin"


# ----------------------------------------------------------------------------------------------- a person's "no"
def _rejected(tree: Tree, prop: Proposal) -> ExperimentView:
    """Record a proposal as a person's rejection (it never ran)."""
    v = tree.record(prop, None, result="", loss=[])
    rejected = dataclasses.replace(v, status="rejected", run_result=None)
    tree.views[-1] = rejected
    return rejected


def test_a_rejected_change_is_never_proposed_again_even_on_a_new_best() -> None:
    improving = [2.0 * 0.8**i for i in range(16)]
    tree = Tree({"train.py": MLP_ADAMW.replace('"hidden": 32', '"hidden": 256')})
    tree.add(view(1, kind="baseline", metric=0.7, loss=improving))
    first = BuiltinPolicy().propose(tree.ctx())
    assert first is not None and first.knobs["CONFIG.epochs"] > 6  # still improving: train longer
    no = _rejected(tree, first)
    ctx = dataclasses.replace(tree.ctx(), rejected_by_user={no.id: ""})
    second = BuiltinPolicy().propose(ctx)
    assert second is not None
    # a new best that is still improving too: the same "train longer" change would apply on top of it
    tree.record(second, 0.8, loss=improving)
    ctx = dataclasses.replace(tree.ctx(), rejected_by_user={no.id: ""})
    epochs = first.knobs["CONFIG.epochs"]
    policy = BuiltinPolicy()
    for _ in range(6):
        prop = policy.propose(ctx)
        assert prop is not None
        assert not (prop.knobs.get("CONFIG.epochs") == epochs and prop.title == first.title), prop.title
        tree.record(prop, 0.1, loss=improving)  # a worse result: the best stays
        ctx = dataclasses.replace(tree.ctx(), rejected_by_user={no.id: ""})


def test_feedback_naming_a_knob_moves_it_forward() -> None:
    improving = [2.0 * 0.8**i for i in range(16)]
    tree = Tree({"train.py": MLP_ADAMW.replace('"hidden": 32', '"hidden": 256')})
    tree.add(view(1, kind="baseline", metric=0.7, loss=improving))
    first = BuiltinPolicy().propose(tree.ctx())
    assert first is not None
    no = _rejected(tree, first)
    unguided = BuiltinPolicy().propose(dataclasses.replace(tree.ctx(), rejected_by_user={no.id: ""}))
    assert unguided is not None and "CONFIG.weight_decay" not in _changed(tree, unguided)
    guided = BuiltinPolicy().propose(dataclasses.replace(
        tree.ctx(), rejected_by_user={no.id: "no: add some weight decay first"}))
    assert guided is not None and _changed(tree, guided) == {"CONFIG.weight_decay"}, guided.title
    wider = BuiltinPolicy().propose(dataclasses.replace(
        tree.ctx(), rejected_by_user={no.id: "try a wider model first"}))
    assert wider is not None and _changed(tree, wider) == {"CONFIG.hidden"}, wider.title


def _changed(tree: Tree, prop: Proposal) -> set[str]:
    base = tree.views[0]
    files = applied(prop.edits, tree.files[1])
    before = {k: v.value for k, v in BuiltinPolicy().knobs_in(tree.files[base.id]).items()}
    after = {k: v.value for k, v in BuiltinPolicy().knobs_in(files).items()}
    return {k for k in after if after[k] != before.get(k)}


def test_a_change_that_lost_clearly_is_not_repeated_after_an_unrelated_nudge() -> None:
    """The learning rate 0.01 → 0.03 lost clearly on the baseline; a weight-decay nudge then made a new best. The
    same raise on that best is a run spent to learn what is known, so it is not proposed; after a batch-size change
    (which moves where the best learning rate lies) it is fair again."""
    text = KNOB_ONLY.replace("BATCH_SIZE = 64\n", "BATCH_SIZE = 64\nWEIGHT_DECAY = 0.0001\n")
    knobs = {k.name: k for k in knobmod.discover_files({"train.py": text})}

    def proposals(nudge: tuple[str, Any]) -> list[dict[str, Any]]:
        tree = Tree({"train.py": text})
        tree.add(view(1, kind="baseline", metric=0.5, seconds=None))
        lost = {"train.py": knobmod.rewrite(text, knobs["LEARNING_RATE"], 0.03)}
        tree.add(dataclasses.replace(view(2, 1, metric=0.2, seconds=None, title="tune LEARNING_RATE 0.01 → 0.03",
                                          knobs={k.name: k.value for k in knobmod.discover_files(lost)}),
                                     status="discarded"), lost)
        nudged = {"train.py": knobmod.rewrite(text, knobs[nudge[0]], nudge[1])}
        tree.add(view(3, 1, metric=0.55, seconds=None, title=f"tune {nudge[0]}",
                      knobs={k.name: k.value for k in knobmod.discover_files(nudged)}), nudged)
        assert tree.best_id == 3
        out = []
        for _ in range(8):
            prop = BuiltinPolicy().propose(tree.ctx())
            if prop is None:
                break
            files = applied(prop.edits, tree.files[prop.parent_id or 3])
            after = {k.name: k.value for k in knobmod.discover_files(files)}
            out.append({n: v for n, v in after.items() if v != knobs[n].value and n != nudge[0]})
            tree.record(prop, 0.54, seconds=None)
            tree.best_id = 3
        return out

    unrelated = proposals(("WEIGHT_DECAY", 0.0003))
    assert unrelated and {"LEARNING_RATE": 0.03} not in unrelated
    assert any(set(p) == {"LEARNING_RATE"} for p in unrelated)  # the other direction is still searched
    related = proposals(("BATCH_SIZE", 128))
    assert {"LEARNING_RATE": 0.03} in related


LIBRARY_NAMES = '''\
import lightgbm as lgb
import pytorch_lightning as pl
import timm
import xgboost as xgb
from transformers import Trainer, TrainingArguments

args = TrainingArguments(output_dir="out", per_device_train_batch_size=16, per_device_eval_batch_size=64,
                         learning_rate=5e-5, num_train_epochs=3)
model = timm.create_model("vit_tiny_patch16_224", drop_path_rate=0.1)
trainer = pl.Trainer(max_epochs=10, gradient_clip_val=1.0, check_val_every_n_epoch=1)
params = {"objective": "binary:logistic", "eta": 0.1, "max_depth": 6, "subsample": 0.8, "nthread": 4}
booster = xgb.train(params, dtrain, num_boost_round=300)
opts = {"momentum_unused": 0.5}
print(opts)
'''


def test_the_search_reads_library_names_as_their_libraries_mean_them() -> None:
    """Names whose words also name bookkeeping: HF's `per_device_train_batch_size` (the only batch knob an HF
    script has: "device" had kept it from the search), Lightning's `gradient_clip_val` ("val"), timm's
    `drop_path_rate` ("path"); the eval batch and the validation cadence stay unsearched. An XGBoost parameter
    dict handed whole to `xgb.train` has its keys read by the library, though the code never names them."""
    knobs = BuiltinPolicy().knobs_in({"train.py": LIBRARY_NAMES}, command="python train.py")
    searchable = {k for k, v in knobs.items() if v.searchable}
    for key in ("TrainingArguments.per_device_train_batch_size", "Trainer.gradient_clip_val",
                "create_model.drop_path_rate", "params.eta", "params.max_depth", "params.subsample"):
        assert key in searchable, (key, knobs[key].why_not if key in knobs else "not found")
    for key in ("TrainingArguments.per_device_eval_batch_size", "params.nthread"):
        assert key in knobs and key not in searchable, key
    assert not any("val_every" in k for k in searchable)
    # a dict that is only printed: its key, named nowhere else, is read by nothing
    assert "opts.momentum_unused" in knobs and knobs["opts.momentum_unused"].why_not == "not used by the code"


def test_raising_the_learning_rate_moves_the_base_rate_not_the_floor() -> None:
    """yacs `_C.TRAIN.MIN_LR` beside `_C.TRAIN.BASE_LR` (Swin): neither is a canonical name, and the floor's was
    the shorter, so "raise the learning rate" had raised the floor of the schedule."""
    from nightlab.agent.policy.builtin import _checkout_context

    cfg = ("from yacs.config import CfgNode as CN\n_C = CN()\n_C.TRAIN = CN()\n_C.TRAIN.BASE_LR = 5e-4\n"
           "_C.TRAIN.MIN_LR = 5e-6\n_C.TRAIN.EPOCHS = 30\n")
    train = ("from config import _C as config\n"
             "opt = make(config.TRAIN.BASE_LR, config.TRAIN.MIN_LR)\n"
             "for epoch in range(config.TRAIN.EPOCHS):\n    step()\n")
    files = {"config.py": cfg, "train.py": train}
    policy = BuiltinPolicy()
    st = policy._state(_checkout_context(files, "python train.py", "val_loss"), None)
    assert [k.key for k in policy._by_kind(st, "lr")] == ["_C.TRAIN.BASE_LR", "_C.TRAIN.MIN_LR"]


def test_training_longer_lengthens_the_whole_run_not_a_rollout() -> None:
    """PPO's `n_steps` (the rollout, 2048) beside SB3's `learn(total_timesteps=...)`: the shorter name had come first,
    so "train longer" doubled the rollout instead of the training."""
    from nightlab.agent.policy.builtin import _checkout_context

    files = {"train.py": "from stable_baselines3 import PPO\n\nmodel = PPO('MlpPolicy', env, n_steps=2048)\n"
                         "model.learn(total_timesteps=100_000)\n"}
    policy = BuiltinPolicy()
    st = policy._state(_checkout_context(files, "python train.py", "mean_reward"), None)
    assert [k.key for k in policy._by_kind(st, "steps")] == ["learn.total_timesteps", "PPO.n_steps"]


GPT_CONFIG = '''\
# a GPT config in nanoGPT's shape: attention splits n_embd over n_head
n_layer = 4
n_head = 6
n_embd = 384
d_ff = 1000
learning_rate = 1e-3
'''
GPT_TRAIN = '''\
exec(open("config.py").read())
assert n_embd % n_head == 0
model = build(n_layer=n_layer, n_head=n_head, n_embd=n_embd, d_ff=d_ff, lr=learning_rate)
'''


def test_a_model_width_moves_in_multiples_of_its_attention_heads() -> None:
    """nanoGPT asserts `n_embd % n_head == 0`: searched apart, one draw in three of the peers' `n_head` in [1, 8]
    beside `n_embd` crashed the run (39 of random search's 88 nanoGPT runs). The head count is not searched; the
    width moves in multiples of it, however it is moved (a step, a model-based draw, ×4); the feed-forward width is
    not tied to it."""
    from nightlab.agent.policy.builtin import scale_value

    files = {"config.py": GPT_CONFIG, "train.py": GPT_TRAIN}
    policy = BuiltinPolicy()
    knobs = policy.knobs_in(files, command="python train.py")
    assert not knobs["n_head"].searchable and "multiples of 6" in knobs["n_head"].why_not
    width = knobs["n_embd"]
    assert width.searchable and width.space is not None and width.space.multiple == 6
    assert knobs["d_ff"].space is not None and knobs["d_ff"].space.multiple == 0
    dim = searchmod.Dim("n_embd", width.space, "width")
    values = [*searchmod.step_values(384, dim), *(searchmod.from_unit(u / 10, width.space, "width") for u in range(11)),
              searchmod.snap(500, width.space, "width"), searchmod.clip(1000, width.space)]
    assert values and all(v % 6 == 0 and width.space.low <= v <= width.space.high for v in values), values
    for factor in (0.3, 0.6, 0.999, 1.001, 1.7, 2.0, 3.0):  # the policy's own ×k moves (widen, narrow)
        scaled = scale_value(width, factor)
        assert scaled is not None and scaled % 6 == 0, (factor, scaled)
    pow2 = knobmod.Space(16, 256, True, True, pow2=True, multiple=2)
    assert all(pow2.snap(x) % 2 == 0 for x in (15, 17, 33, 100, 255))


ONE_CYCLE = '''\
import torch

MAX_STEPS = 1000
LEARNING_RATE = 0.01
opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=1000)
for step in range(MAX_STEPS):
    loss.backward()
    opt.step()
    sched.step()
'''


def test_a_one_cycle_schedule_moves_with_the_training_length_never_alone() -> None:
    """OneCycleLR raises once stepped past `total_steps`: searched alone, a shorter one crashed the run. It is not a
    search dimension; a move of the training length it equals carries it along."""
    from nightlab.agent.policy.builtin import _checkout_context
    from nightlab.agent.policy.coupling import linked_lengths

    files = {"train.py": ONE_CYCLE}
    policy = BuiltinPolicy()
    knobs = policy.knobs_in(files, command="python train.py")
    total = knobs["OneCycleLR.total_steps"]
    assert not total.searchable and "raises when stepped past its length" in total.why_not
    assert "OneCycleLR.total_steps" not in {k.key for k in policy.search_knobs(files, command="python train.py")}
    st = policy._state(_checkout_context(files, "python train.py", "val_loss"), None)
    assert linked_lengths(st, {"MAX_STEPS": 2000}) == {"OneCycleLR.total_steps": 2000}


def test_an_evaluation_loaders_batch_size_is_not_searched() -> None:
    """The second and third `DataLoader(..., batch_size=...)` read the validation and test sets: their batch sizes
    change how fast the metric is read, not what is learned (a search over them spends runs that measure nothing);
    the training loader's is searched."""
    src = ("from torch.utils.data import DataLoader\n"
           "train_loader = DataLoader(train_ds, batch_size=64, shuffle=True)\n"
           "val_loader = DataLoader(val_ds, batch_size=256)\n"
           "test_loader = DataLoader(dataset=test_set, batch_size=512, shuffle=False)\n"
           "for x in train_loader:\n    pass\n")
    knobs = BuiltinPolicy().knobs_in({"train.py": src}, command="python train.py")
    assert knobs["DataLoader.batch_size"].searchable
    for key in ("DataLoader.batch_size#2", "DataLoader.batch_size#3"):
        assert not knobs[key].searchable and "evaluation loader" in knobs[key].why_not


def test_a_value_a_move_crashed_at_is_not_proposed_again_after_a_new_best() -> None:
    """ALPHA 0.9 → 2.7 crashed (scikit-learn refuses it), BATCH_SIZE 64 → 256 ran out of memory; then a change of
    the learning rate became the best. The search had counted only runs with a metric and rejected whole
    assignments, so from the new best it proposed ALPHA 2.7 again; now neither that value nor a batch of 256 or
    more comes back (a timeout would have ruled out nothing)."""
    from nightlab.agent.policy.builtin import _fails

    text = ("LEARNING_RATE = 0.01\nALPHA = 0.9\nBATCH_SIZE = 64\nHIDDEN = 32\n"
            "print(LEARNING_RATE, ALPHA, BATCH_SIZE, HIDDEN)\n")
    knobs = {k.name: k for k in knobmod.discover_files({"train.py": text})}
    tree = Tree({"train.py": text})
    tree.add(view(1, kind="baseline", metric=0.5, seconds=None))

    def child(i: int, name: str, value: Any, metric: float | None, failure: str | None) -> None:
        files = {"train.py": knobmod.rewrite(text, knobs[name], value)}
        v = view(i, 1, metric=metric, seconds=None, result="failed" if failure else "succeeded", failure=failure,
                 knobs={k.name: k.value for k in knobmod.discover_files(files)}, title=f"tune {name}")
        tree.add(dataclasses.replace(v, status="failed" if failure else "kept"), files)

    child(2, "ALPHA", 2.7, None, "runtime_error")
    child(3, "BATCH_SIZE", 256, None, "oom")
    child(4, "HIDDEN", 128, None, "timeout")
    child(5, "LEARNING_RATE", 0.03, 0.6, None)
    tree.best_id = 5
    failed = BuiltinPolicy()._failed_values(tree.ctx())
    assert failed == {"ALPHA": [(2.7, False)], "BATCH_SIZE": [(256, True)]}
    assert _fails({"ALPHA": 2.7}, failed) and _fails({"BATCH_SIZE": 512}, failed)
    assert not _fails({"ALPHA": 0.3}, failed) and not _fails({"BATCH_SIZE": 128}, failed)
    policy = BuiltinPolicy()
    for _ in range(8):
        prop = policy.propose(tree.ctx())
        if prop is None:
            break
        after = {k.name: k.value for k in knobmod.discover_files(applied(prop.edits, tree.files[5]))}
        assert after["ALPHA"] != 2.7 and after["BATCH_SIZE"] < 256, prop.title
        tree.record(prop, 0.55, seconds=None)


def test_out_of_memory_on_a_smaller_value_rules_out_only_that_value() -> None:
    """A move that lowered BATCH_SIZE 64 → 32 and ran out of memory (something else grew with it) says nothing about
    64 or more: only a move up rules out the larger values."""
    text = "BATCH_SIZE = 64\nprint(BATCH_SIZE)\n"
    knob = knobmod.discover_files({"train.py": text})[0]
    tree = Tree({"train.py": text})
    tree.add(view(1, kind="baseline", metric=0.5, seconds=None))
    files = {"train.py": knobmod.rewrite(text, knob, 32)}
    v = view(2, 1, metric=None, seconds=None, result="failed", failure="oom", knobs={"BATCH_SIZE": 32})
    tree.add(dataclasses.replace(v, status="failed"), files)
    assert BuiltinPolicy()._failed_values(tree.ctx()) == {"BATCH_SIZE": [(32, False)]}
