"""Knob discovery and in-place rewriting across code styles (nightlab.agent.policy.knobs).

Every rewrite test checks the same contract: the output equals the input with exactly the literal's span replaced,
the file still parses, and rediscovery under the same name yields the new value.
"""

from __future__ import annotations

import json
import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nightlab.agent.policy.knobs import (
    Knob,
    Space,
    classify,
    discover,
    discover_files,
    format_value,
    rewrite,
    search_space,
    span,
)

# ---------------------------------------------------------------------------------------------------------------------
# Fixtures: small, realistic files in the styles training repos use
# ---------------------------------------------------------------------------------------------------------------------

CHARLM = '''"""Character-level language model on a small text file."""
import math
import os

import torch

# ---- hyperparameters --------------------------------------------------------
BLOCK_SIZE = 64      # context length in characters
D_MODEL = 64
N_LAYERS = 2
N_HEADS = 4
LEARNING_RATE = 3e-3  # AdamW
LR_MIN: float = 1e-4
BATCH_SIZE = 32
MAX_STEPS = 10_000
DROPOUT = 0.1
GRAD_CLIP = -1.0     # <= 0 disables clipping
WEIGHT_DECAY = 0
SEED = 1337
EVAL_EVERY = 200
VOCAB_SIZE = 65
USE_AMP = True
OPTIMIZER = "adamw"  # or "sgd"
DATA_PATH = "data/input.txt"

step = 0
for _ in range(3):
    step += 1


def get_batch(split):
    ix = torch.randint(len(data) - BLOCK_SIZE, (BATCH_SIZE,))
    return ix


if __name__ == "__main__":
    torch.manual_seed(SEED)
    model = GPT(VOCAB_SIZE, D_MODEL, N_LAYERS, N_HEADS, BLOCK_SIZE, DROPOUT)
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
'''

DIGITS = '''import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

CONFIG = {
    "lr": 0.01,          # step size
    "hidden": 16,
    "epochs": 30,
    "batch_size": 64,
    "optim": {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-4},
    "layers": [64, 32],
    "test_size": 0.2,
    "seed": 0,
}
LABEL_NAMES = {"zero": 0, "one": 1}
MEAN = (0.5,)

X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=42)
'''

ARGPARSE = '''import argparse


def parse_args():
    p = argparse.ArgumentParser(description="train")
    p.add_argument("--lr", type=float, default=3e-4, help="learning rate")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--batch-size", "-b", type=int, default=128)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--val-frac", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default="0.9")
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd", "rmsprop"])
    p.add_argument("--no-augment", action="store_true", default=False)
    p.add_argument("--log-interval", type=int, default=10)
    p.add_argument("data_dir")
    return p.parse_args()
'''

DATACLASS = '''from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """Everything the run needs."""

    lr: float = 0.01
    batch_size: int = 256
    epochs: int = field(default=5)
    dropout: float = 0.0
    name: str = "baseline"
    layers: list[int] = field(default_factory=lambda: [128, 64])


class Args:
    hidden = 512
    n_layers = 4
    warmup = 100


class Net:
    size = 3  # not a config class: ignored
'''

CONFIG_YAML = """# experiment config
model:
  hidden: 128        # width of the MLP
  n_layers: 3
  dropout: 0.1
optimizer: {name: sgd, lr: 1e-3, momentum: 0.9}   # flow style
train:
  epochs: 10
  batch_size: 64
  weight_decay: 0.0005
  schedule: cosine   # one of: cosine | linear | constant
  use_amp: true
  seed: 42
  log_every: 50
  max_steps: 10_000
data:
  path: "data/train.csv"
  test_size: 0.2
  hidden_sizes: [64, 32]
defaults: &defaults
  warmup: 100
finetune: *defaults
"""

CONFIG_JSON = """{
  "learning_rate": 0.001,
  "batch_size": 32,
  "model": {"hidden":[64,32], "activation": "relu", "dropout": 1e-1},
  "epochs": 12,
  "shuffle": true,
  "seed": 7
}
"""

CIFAR = """import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision
import torchvision.transforms as transforms

transform = transforms.Compose(
    [transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])

trainset = torchvision.datasets.CIFAR10(root='./data', train=True, download=True, transform=transform)
trainloader = torch.utils.data.DataLoader(trainset, batch_size=32, shuffle=True, num_workers=2)
train_part, val_part = torch.utils.data.random_split(trainset, [45000, 5000])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.drop = nn.Dropout(0.1)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = torch.flatten(x, 1)
        return self.fc3(self.drop(F.relu(self.fc2(F.relu(self.fc1(x))))))


net = Net()
torch.manual_seed(0)
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.5, momentum=0.9)  # fast but noisy

for epoch in range(3):  # loop over the dataset multiple times
    running_loss = 0.0
    for i, data in enumerate(trainloader, 0):
        inputs, labels = data
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        running_loss += loss.item()
        if i % 2000 == 1999:
            print(f'[{epoch + 1}, {i + 1:5d}] loss: {running_loss / 2000:.3f}')
            running_loss = 0.0
"""

FUNCS = """import os

EPOCHS = int(os.environ.get("EPOCHS", "8"))
LR = float(os.getenv("LR", 0.05))


def train(model, data, lr=1e-3, epochs=10, verbose=True, name="x"):
    hidden = 64
    batch_size = 32
    total = 0
    correct = 0
    for x, y in data:
        correct += 1
    cfg = {"lr": 0.1, "device": "cpu"}
    return hidden, batch_size, total, cfg


class MLP:
    def __init__(self, d_in, hidden=256, n_layers=2, dropout=0.2):
        self.layers = make(d_in, hidden, n_layers, dropout)


model = MLP(784, hidden=128)
clf = MLPClassifier(hidden_layer_sizes=(64, 32), alpha=1e-4, max_iter=300, random_state=0, activation="relu")
"""


def by_name(knobs: list[Knob]) -> dict[str, Knob]:
    return {k.name: k for k in knobs}


def parses(path: str, text: str) -> None:
    """The rewritten file must still be valid in its own language."""
    if path.endswith(".py"):
        compile(text.encode("utf-8"), path, "exec")  # bytes, as from disk: a BOM is then legal
    elif path.endswith(".json"):
        json.loads(text)
    else:
        yaml.safe_load(text)


def roundtrip(path: str, text: str, name: str, new_value: object, old_literal: str, new_literal: str | None = None,
              ) -> str:
    """Rewrite one knob and check the whole contract; returns the new text."""
    knob = by_name(discover(path, text))[name]
    start, end = span(text, knob)
    assert text[start:end] == old_literal
    out = rewrite(text, knob, new_value)  # type: ignore[arg-type]
    # Differs from the original only in the literal's span.
    assert out[:start] == text[:start]
    assert out[len(out) - (len(text) - end):] == text[end:]
    literal = out[start:len(out) - (len(text) - end)]
    if new_literal is not None:
        assert literal == new_literal
    # Every other line is byte-identical (comments and spacing preserved).
    old_lines, new_lines = text.splitlines(keepends=True), out.splitlines(keepends=True)
    assert len(old_lines) == len(new_lines)
    changed = [i + 1 for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert changed in ([], [knob.line])
    parses(path, out)
    again = by_name(discover(path, out))
    assert set(again) == set(by_name(discover(path, text)))  # names are stable across the edit
    got = again[name].value
    if isinstance(new_value, float) and not isinstance(got, str):
        assert got == pytest.approx(new_value, rel=1e-12, abs=0)
    else:
        assert got == new_value
    assert type(got) is type(knob.value) or (isinstance(new_value, float) and isinstance(got, float))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# 1. Module constants
# ---------------------------------------------------------------------------------------------------------------------


def test_constants_are_discovered_with_kinds_and_lines() -> None:
    ks = by_name(discover("charlm.py", CHARLM))
    expect = {
        "BLOCK_SIZE": (64, "seq_len"), "D_MODEL": (64, "width"), "N_LAYERS": (2, "depth"), "N_HEADS": (4, "other"),
        "LEARNING_RATE": (3e-3, "lr"), "LR_MIN": (1e-4, "lr"), "BATCH_SIZE": (32, "batch_size"),
        "MAX_STEPS": (10_000, "steps"), "DROPOUT": (0.1, "dropout"), "GRAD_CLIP": (-1.0, "clip"),
        "WEIGHT_DECAY": (0, "weight_decay"), "SEED": (1337, "seed"), "EVAL_EVERY": (200, "logging"),
        "VOCAB_SIZE": (65, "fixed"), "USE_AMP": (True, "flag"), "OPTIMIZER": ("adamw", "choice"),
    }
    for name, (value, kind) in expect.items():
        assert ks[name].value == value, name
        assert type(ks[name].value) is type(value), name
        assert ks[name].kind == kind, name
        assert ks[name].style == "constant"
    assert ks["LEARNING_RATE"].line == 12
    assert ks["LEARNING_RATE"].context == "LEARNING_RATE = 3e-3  # AdamW"
    assert not ks["SEED"].tunable and not ks["EVAL_EVERY"].tunable and not ks["VOCAB_SIZE"].tunable
    assert ks["LEARNING_RATE"].tunable
    # Paths, counters reassigned in loops, and literals inside library calls are not knobs.
    assert "DATA_PATH" not in ks and "step" not in ks
    assert not any(n.startswith(("manual_seed", "GPT", "randint")) for n in ks)
    # The choice offers what the file mentions.
    assert set(ks["OPTIMIZER"].choices) == {"adamw", "sgd"}


@pytest.mark.parametrize(
    ("name", "new", "old_lit", "new_lit"),
    [
        ("LEARNING_RATE", 1e-4, "3e-3", "1e-4"),
        ("LEARNING_RATE", 0.00025, "3e-3", "2.5e-4"),
        ("LR_MIN", 3e-5, "1e-4", "3e-5"),
        ("MAX_STEPS", 20000, "10_000", "20_000"),
        ("MAX_STEPS", 12345.6, "10_000", "12_346"),  # ints stay ints
        ("GRAD_CLIP", 0.5, "-1.0", "0.5"),
        ("DROPOUT", 0.25, "0.1", "0.25"),
        ("DROPOUT", -0.0001, "0.1", "-0.0001"),
        ("D_MODEL", 128, "64", "128"),
        ("N_LAYERS", -1, "2", "-1"),
        ("WEIGHT_DECAY", 0.01, "0", "0.01"),  # a float kind written as int becomes a float, not 0
        ("USE_AMP", False, "True", "False"),
        ("OPTIMIZER", "sgd", '"adamw"', '"sgd"'),
    ],
)
def test_constants_rewrite_roundtrip(name: str, new: object, old_lit: str, new_lit: str) -> None:
    if name == "MAX_STEPS" and isinstance(new, float):
        knob = by_name(discover("charlm.py", CHARLM))[name]
        out = rewrite(CHARLM, knob, new)
        assert "MAX_STEPS = 12_346\n" in out
        return
    roundtrip("charlm.py", CHARLM, name, new, old_lit, new_lit)


def test_annotated_constant_keeps_annotation_and_comment() -> None:
    out = roundtrip("charlm.py", CHARLM, "LR_MIN", 2e-5, "1e-4", "2e-5")
    assert "LR_MIN: float = 2e-5\n" in out
    out = roundtrip("charlm.py", CHARLM, "BLOCK_SIZE", 256, "64", "256")
    assert "BLOCK_SIZE = 256      # context length in characters\n" in out


# ---------------------------------------------------------------------------------------------------------------------
# 2. Config dicts
# ---------------------------------------------------------------------------------------------------------------------


def test_config_dict_nested_and_lists() -> None:
    ks = by_name(discover("digits.py", DIGITS))
    assert ks["CONFIG.lr"].value == 0.01 and ks["CONFIG.lr"].kind == "lr" and ks["CONFIG.lr"].style == "dict"
    assert ks["CONFIG.hidden"].kind == "width"
    assert ks["CONFIG.optim.momentum"].kind == "momentum"
    assert ks["CONFIG.optim.weight_decay"].value == 1e-4
    assert ks["CONFIG.optim.name"].kind == "choice" and ks["CONFIG.optim.name"].value == "sgd"
    assert ks["CONFIG.layers[0]"].value == 64 and ks["CONFIG.layers[1]"].kind == "width"
    assert ks["CONFIG.seed"].kind == "seed"
    assert ks["CONFIG.lr"].line == 6
    # Data splitting and non-config dicts/tuples are not knobs; neither are literals in split calls.
    assert "CONFIG.test_size" not in ks
    assert not any(n.startswith(("LABEL_NAMES", "MEAN", "train_test_split")) for n in ks)


@pytest.mark.parametrize(
    ("name", "new", "old_lit", "new_lit"),
    [
        ("CONFIG.lr", 0.03, "0.01", "0.03"),
        ("CONFIG.hidden", 32, "16", "32"),
        ("CONFIG.optim.weight_decay", 3e-5, "1e-4", "3e-5"),
        ("CONFIG.optim.name", "adam", '"sgd"', '"adam"'),
        ("CONFIG.layers[1]", 48, "32", "48"),
    ],
)
def test_config_dict_rewrite_roundtrip(name: str, new: object, old_lit: str, new_lit: str) -> None:
    roundtrip("digits.py", DIGITS, name, new, old_lit, new_lit)


def test_dict_call_style_and_function_level_dict() -> None:
    src = 'HPARAMS = dict(lr=0.1, epochs=3, tag="x")\n\ndef main():\n    cfg = {"lr": 0.2, "device": "cpu"}\n'
    ks = by_name(discover("t.py", src))
    assert ks["HPARAMS.lr"].value == 0.1 and ks["HPARAMS.epochs"].kind == "epochs"
    assert ks["main.cfg.lr"].value == 0.2
    assert "HPARAMS.tag" not in ks and "main.cfg.device" not in ks
    roundtrip("t.py", src, "HPARAMS.epochs", 6, "3", "6")


# ---------------------------------------------------------------------------------------------------------------------
# 3. Dataclass defaults and config classes
# ---------------------------------------------------------------------------------------------------------------------


def test_dataclass_and_config_class_fields() -> None:
    ks = by_name(discover("config.py", DATACLASS))
    assert ks["TrainConfig.lr"].value == 0.01 and ks["TrainConfig.lr"].style == "dataclass"
    assert ks["TrainConfig.batch_size"].kind == "batch_size"
    assert ks["TrainConfig.epochs"].value == 5  # field(default=5)
    assert ks["TrainConfig.dropout"].kind == "dropout"
    assert ks["Args.hidden"].kind == "width" and ks["Args.n_layers"].kind == "depth"
    assert ks["Args.warmup"].kind == "warmup"
    assert "TrainConfig.name" not in ks  # a free string is not a choice
    assert "Net.size" not in ks


@pytest.mark.parametrize(
    ("name", "new", "old_lit", "new_lit"),
    [
        ("TrainConfig.lr", 0.003, "0.01", "0.003"),
        ("TrainConfig.epochs", 9, "5", "9"),
        ("TrainConfig.dropout", 0.3, "0.0", "0.3"),
        ("Args.hidden", 1024, "512", "1024"),
    ],
)
def test_dataclass_rewrite_roundtrip(name: str, new: object, old_lit: str, new_lit: str) -> None:
    roundtrip("config.py", DATACLASS, name, new, old_lit, new_lit)


# ---------------------------------------------------------------------------------------------------------------------
# 4. argparse defaults
# ---------------------------------------------------------------------------------------------------------------------


def test_argparse_defaults() -> None:
    ks = by_name(discover("train.py", ARGPARSE))
    assert ks["--lr"].value == 3e-4 and ks["--lr"].kind == "lr" and ks["--lr"].style == "argparse"
    assert ks["--weight-decay"].kind == "weight_decay" and ks["--weight-decay"].value == 0.0
    assert ks["--batch-size"].value == 128 and ks["--batch-size"].kind == "batch_size"
    assert ks["--epochs"].kind == "epochs"
    assert ks["--seed"].kind == "seed" and not ks["--seed"].tunable
    assert ks["--momentum"].value == 0.9  # numeric string default with type=float
    assert ks["--optimizer"].kind == "choice" and ks["--optimizer"].choices == ("adam", "sgd", "rmsprop")
    assert ks["--no-augment"].kind == "flag"
    assert ks["--log-interval"].kind == "logging"
    assert "--val-frac" not in ks  # data split
    assert ks["--lr"].line == 6


@pytest.mark.parametrize(
    ("name", "new", "old_lit", "new_lit"),
    [
        ("--lr", 1e-3, "3e-4", "1e-3"),
        ("--weight-decay", 0.05, "0.0", "0.05"),
        ("--batch-size", 64, "128", "64"),
        ("--momentum", 0.95, '"0.9"', '"0.95"'),
        ("--optimizer", "sgd", '"adam"', '"sgd"'),
        ("--no-augment", True, "False", "True"),
    ],
)
def test_argparse_rewrite_roundtrip(name: str, new: object, old_lit: str, new_lit: str) -> None:
    out = roundtrip("train.py", ARGPARSE, name, new, old_lit, new_lit)
    assert 'help="learning rate")' in out


# ---------------------------------------------------------------------------------------------------------------------
# 5. YAML and JSON configs
# ---------------------------------------------------------------------------------------------------------------------


def test_yaml_discovery() -> None:
    ks = by_name(discover("config.yaml", CONFIG_YAML))
    assert ks["model.hidden"].value == 128 and ks["model.hidden"].kind == "width" and ks["model.hidden"].style == "yaml"
    assert ks["model.hidden"].line == 3 and ks["model.hidden"].context == "hidden: 128        # width of the MLP"
    assert ks["optimizer.lr"].value == 1e-3 and ks["optimizer.lr"].kind == "lr"  # "1e-3" is a str to PyYAML
    assert ks["optimizer.name"].kind == "choice" and ks["optimizer.name"].value == "sgd"
    assert ks["train.schedule"].choices == ("cosine", "linear", "constant")  # alternatives named in the comment
    assert ks["train.use_amp"].kind == "flag" and ks["train.use_amp"].value is True
    assert ks["train.seed"].kind == "seed" and ks["train.log_every"].kind == "logging"
    assert ks["train.max_steps"].value == 10_000
    assert ks["data.hidden_sizes[1]"].value == 32
    assert ks["defaults.warmup"].value == 100
    assert "data.test_size" not in ks and "data.path" not in ks
    assert not any(n.startswith("finetune") for n in ks)  # the alias is the anchor's literal, reported once


@pytest.mark.parametrize(
    ("name", "new", "old_lit", "new_lit"),
    [
        ("model.hidden", 256, "128", "256"),
        ("model.dropout", 0.2, "0.1", "0.2"),
        ("optimizer.lr", 3e-4, "1e-3", "3e-4"),
        ("optimizer.momentum", 0.95, "0.9", "0.95"),
        ("optimizer.name", "adam", "sgd", "adam"),
        ("train.weight_decay", 1e-5, "0.0005", "0.00001"),
        ("train.use_amp", False, "true", "false"),
        ("train.max_steps", 5000, "10_000", "5_000"),
        ("train.schedule", "linear", "cosine", "linear"),
        ("data.hidden_sizes[0]", 128, "64", "128"),
    ],
)
def test_yaml_rewrite_roundtrip(name: str, new: object, old_lit: str, new_lit: str) -> None:
    out = roundtrip("config.yaml", CONFIG_YAML, name, new, old_lit, new_lit)
    assert "# width of the MLP" in out and "# flow style" in out and "# one of: cosine | linear | constant" in out


def test_yaml_string_that_would_change_type_is_quoted() -> None:
    knob = by_name(discover("config.yaml", CONFIG_YAML))["optimizer.name"]
    out = rewrite(CONFIG_YAML, knob, "yes")  # plain `yes` would read back as a bool
    assert out == CONFIG_YAML.replace("{name: sgd,", '{name: "yes",')
    assert yaml.safe_load(out)["optimizer"]["name"] == "yes"


def test_json_discovery_and_rewrite() -> None:
    ks = by_name(discover("cfg.json", CONFIG_JSON))
    assert ks["learning_rate"].value == 0.001 and ks["learning_rate"].style == "json"
    assert ks["model.hidden[0]"].value == 64 and ks["model.hidden[0]"].kind == "width"
    assert ks["model.activation"].kind == "choice"
    assert ks["model.dropout"].value == 0.1 and ks["shuffle"].kind == "flag" and ks["seed"].kind == "seed"
    assert ks["epochs"].line == 5
    roundtrip("cfg.json", CONFIG_JSON, "learning_rate", 0.0005, "0.001", "0.0005")
    roundtrip("cfg.json", CONFIG_JSON, "model.hidden[1]", 16, "32", "16")  # compact `"hidden":[64,32]`
    roundtrip("cfg.json", CONFIG_JSON, "model.dropout", 0.3, "1e-1", "3e-1")
    roundtrip("cfg.json", CONFIG_JSON, "shuffle", False, "true", "false")
    roundtrip("cfg.json", CONFIG_JSON, "model.activation", "gelu", '"relu"', '"gelu"')


def test_json_with_tabs_and_comments_uses_position_aware_scan() -> None:
    src = '{\n\t"lr":\t0.001, // base\n\t"epochs": 5,\n\t/* model */ "hidden": 64,\n}\n'
    ks = by_name(discover("c.json", src))
    assert ks["lr"].value == 0.001 and ks["epochs"].value == 5 and ks["hidden"].value == 64
    out = rewrite(src, ks["epochs"], 7)
    assert out == src.replace('"epochs": 5', '"epochs": 7')


def test_config_files_that_look_like_data_yield_nothing() -> None:
    assert discover("labels.json", '{"cat": 0, "dog": 1, "bird": 2}') == []
    assert discover("results.yaml", "acc: 0.91\nloss: 0.3\n") == []
    assert discover("broken.yaml", "a: [1, 2\n") == []
    assert discover("notes.txt", "lr = 0.1") == []


# ---------------------------------------------------------------------------------------------------------------------
# 6. Inline literals in calls
# ---------------------------------------------------------------------------------------------------------------------


def test_cifar_tutorial_inline_knobs() -> None:
    ks = by_name(discover("cifar.py", CIFAR))
    assert ks["SGD.lr"].value == 0.5 and ks["SGD.lr"].kind == "lr" and ks["SGD.lr"].style == "call"
    assert ks["SGD.momentum"].value == 0.9 and ks["SGD.momentum"].kind == "momentum"
    assert ks["DataLoader.batch_size"].value == 32 and ks["DataLoader.batch_size"].kind == "batch_size"
    assert ks["epochs"].value == 3 and ks["epochs"].kind == "epochs"
    assert ks["Dropout.p"].value == 0.1 and ks["Dropout.p"].kind == "dropout"
    assert ks["clip_grad_norm_.max_norm"].value == 1.0 and ks["clip_grad_norm_.max_norm"].kind == "clip"
    assert ks["SGD.lr"].line == 35
    # Layer shapes, normalisation constants, worker counts, seeds and split sizes are not knobs.
    assert not any(n.split(".")[0] in {"Linear", "Conv2d", "MaxPool2d", "Normalize", "manual_seed", "random_split",
                                       "flatten", "print"} for n in ks)
    assert "DataLoader.num_workers" not in ks


@pytest.mark.parametrize(
    ("name", "new", "old_lit", "new_lit"),
    [
        ("SGD.lr", 0.05, "0.5", "0.05"),
        ("SGD.momentum", 0.99, "0.9", "0.99"),
        ("DataLoader.batch_size", 128, "32", "128"),
        ("epochs", 10, "3", "10"),
        ("Dropout.p", 0.3, "0.1", "0.3"),
        ("clip_grad_norm_.max_norm", 5.0, "1.0", "5.0"),
    ],
)
def test_cifar_rewrite_roundtrip(name: str, new: object, old_lit: str, new_lit: str) -> None:
    out = roundtrip("cifar.py", CIFAR, name, new, old_lit, new_lit)
    assert "# fast but noisy" in out and "# loop over the dataset multiple times" in out


def test_inline_variants() -> None:
    src = (
        "import torch\n"
        "opt = torch.optim.Adam(params, 1e-3, betas=(0.9, 0.999), weight_decay=0)\n"
        "x = F.dropout(x, 0.5, training=True)\n"
        "layer = nn.Dropout(p=0.2)\n"
        "trainer = Trainer(max_epochs=20, gradient_clip_val=0.5, log_every_n_steps=10, seed=1)\n"
        "for step in tqdm(range(0, 5000)):\n"
        "    pass\n"
        "for i in range(100):\n"
        "    pass\n"
        "lstm = nn.LSTM(32, hidden_size=64, num_layers=2)\n"
        "clf = LogisticRegression(C=1.0, max_iter=1000, random_state=0)\n"
    )
    ks = by_name(discover("t.py", src))
    assert ks["Adam.lr"].value == 1e-3
    assert ks["Adam.betas[0]"].kind == "momentum" and ks["Adam.betas[1]"].value == 0.999
    assert ks["Adam.weight_decay"].value == 0
    assert ks["dropout.p"].value == 0.5 and ks["Dropout.p"].value == 0.2
    assert ks["Trainer.max_epochs"].kind == "epochs" and ks["Trainer.gradient_clip_val"].kind == "clip"
    assert ks["steps"].value == 5000
    assert ks["LSTM.num_layers"].kind == "depth"
    assert ks["LogisticRegression.C"].value == 1.0 and ks["LogisticRegression.max_iter"].kind == "steps"
    for absent in ("Trainer.log_every_n_steps", "Trainer.seed", "LSTM.hidden_size", "LogisticRegression.random_state"):
        assert absent not in ks
    roundtrip("t.py", src, "Adam.betas[1]", 0.98, "0.999", "0.98")
    roundtrip("t.py", src, "Adam.lr", 3e-4, "1e-3", "3e-4")
    roundtrip("t.py", src, "Adam.weight_decay", 0.01, "0", "0.01")


def test_real_valued_hyperparameters_written_as_ints_become_floats() -> None:
    src = "clf = LogisticRegression(C=1, max_iter=100)\nmodel = Ridge(alpha=1)\n"
    ks = by_name(discover("t.py", src))
    roundtrip("t.py", src, "LogisticRegression.C", 0.5, "1", "0.5")
    sp = search_space(ks["Ridge.alpha"])
    assert sp is not None and not sp.integer and sp.low == pytest.approx(0.1)
    it = search_space(ks["LogisticRegression.max_iter"])
    assert it is not None and it.integer
    assert "max_iter=150" in rewrite(src, ks["LogisticRegression.max_iter"], 150.4)  # counts stay ints


def test_duplicate_calls_get_stable_suffixes() -> None:
    src = (
        "train = DataLoader(a, batch_size=64, shuffle=True)\n"
        "test = DataLoader(b, batch_size=256)\n"
    )
    ks = discover("t.py", src)
    assert [k.name for k in ks] == ["DataLoader.batch_size", "DataLoader.batch_size#2"]
    out = roundtrip("t.py", src, "DataLoader.batch_size#2", 512, "256", "512")
    assert "batch_size=64" in out


# ---------------------------------------------------------------------------------------------------------------------
# Signatures, function locals, environment defaults
# ---------------------------------------------------------------------------------------------------------------------


def test_function_defaults_locals_and_env() -> None:
    ks = by_name(discover("f.py", FUNCS))
    assert ks["$EPOCHS"].value == 8 and ks["$EPOCHS"].kind == "epochs" and ks["$EPOCHS"].style == "env"
    assert ks["$LR"].value == 0.05
    assert ks["train.lr"].style == "signature" and ks["train.epochs"].value == 10
    assert ks["train.hidden"].kind == "width" and ks["train.batch_size"].value == 32
    assert ks["train.cfg.lr"].value == 0.1
    assert ks["MLP.hidden"].value == 256 and ks["MLP.n_layers"].kind == "depth" and ks["MLP.dropout"].value == 0.2
    assert ks["MLP.hidden#2"].value == 128  # width keyword of a class defined in this file
    assert ks["MLPClassifier.hidden_layer_sizes[1]"].value == 32
    assert ks["MLPClassifier.alpha"].value == 1e-4
    assert ks["MLPClassifier.activation"].choices == ("identity", "logistic", "tanh", "relu")
    for absent in ("train.total", "train.correct", "train.name", "MLPClassifier.random_state"):
        assert absent not in ks
    roundtrip("f.py", FUNCS, "$EPOCHS", 16, '"8"', '"16"')
    roundtrip("f.py", FUNCS, "train.lr", 5e-4, "1e-3", "5e-4")
    roundtrip("f.py", FUNCS, "MLP.dropout", 0.0, "0.2", "0.0")


# ---------------------------------------------------------------------------------------------------------------------
# Many files, errors, stability
# ---------------------------------------------------------------------------------------------------------------------


def test_discover_files_orders_and_disambiguates() -> None:
    files = {
        "train.py": 'lr = 0.1\nOPT = "adam"\nif OPT == "sgd":\n    pass\n',
        "configs/base.yaml": "lr: 0.01\noptimizer: adam\nepochs: 3\n",
        "model.py": "DROPOUT = 0.1\n",
    }
    ks = discover_files(files)
    assert [k.path for k in ks] == sorted(k.path for k in ks)
    names = [k.name for k in ks]
    assert len(names) == len(set(names))
    assert "configs/base.yaml:lr" in names and "train.py:lr" in names and "DROPOUT" in names and "epochs" in names
    yaml_opt = next(k for k in ks if k.name == "optimizer")
    assert yaml_opt.choices == ("sgd", "adam")  # "sgd" is compared against in train.py
    knob = next(k for k in ks if k.name == "configs/base.yaml:lr")
    out = rewrite(files["configs/base.yaml"], knob, 0.02)
    assert out == "lr: 0.02\noptimizer: adam\nepochs: 3\n"


def test_rewrite_raises_keyerror_when_knob_is_gone() -> None:
    knob = by_name(discover("charlm.py", CHARLM))["DROPOUT"]
    with pytest.raises(KeyError):
        rewrite(CHARLM.replace("DROPOUT = 0.1", "DROPOUT = cfg.dropout"), knob, 0.2)
    with pytest.raises(KeyError):
        rewrite("", knob, 0.2)


def test_rewrite_finds_knob_after_unrelated_edits() -> None:
    knob = by_name(discover("charlm.py", CHARLM))["DROPOUT"]
    edited = "# a new header line\n" + CHARLM.replace("D_MODEL = 64", "D_MODEL = 96")
    out = rewrite(edited, knob, 0.2)
    assert out == edited.replace("DROPOUT = 0.1", "DROPOUT = 0.2")


def test_invalid_python_yields_nothing() -> None:
    assert discover("bad.py", "def f(:\n    lr = 0.1\n") == []
    assert discover("empty.py", "") == []


def test_parenthesised_and_odd_literals() -> None:
    src = "A_LR = (0.5)\nB_LR = - 2e-3\nC_STEPS = +100\nD_WIDTH = 0x40\n"
    ks = by_name(discover("t.py", src))
    assert ks["A_LR"].value == 0.5 and ks["B_LR"].value == -2e-3 and ks["C_STEPS"].value == 100
    assert ks["D_WIDTH"].value == 64
    roundtrip("t.py", src, "A_LR", 0.25, "0.5", "0.25")
    roundtrip("t.py", src, "B_LR", 1e-3, "- 2e-3", "1e-3")
    roundtrip("t.py", src, "C_STEPS", 300, "+100", "300")
    roundtrip("t.py", src, "D_WIDTH", 128, "0x40", "0x80")


def test_byte_order_mark_is_kept() -> None:
    src = "\ufeffLR = 0.1\nEPOCHS = 3\n"
    out = roundtrip("t.py", src, "EPOCHS", 5, "3", "5")
    assert out == "\ufeffLR = 0.1\nEPOCHS = 5\n"


def test_crlf_line_endings_survive() -> None:
    src = "LR = 0.1  # base\r\nEPOCHS = 3\r\n"
    out = roundtrip("t.py", src, "EPOCHS", 4, "3", "4")
    assert out == "LR = 0.1  # base\r\nEPOCHS = 4\r\n"
    out = roundtrip("c.yaml", "lr: 0.1  # base\r\nepochs: 3\r\n", "lr", 0.2, "0.1", "0.2")
    assert out == "lr: 0.2  # base\r\nepochs: 3\r\n"


# ---------------------------------------------------------------------------------------------------------------------
# format_value, classify, search_space
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("new", "old", "expected"),
    [
        (1e-4, "1e-3", "1e-4"),
        (0.00025, "1e-3", "2.5e-4"),
        (0.00025, "1E-3", "2.5E-4"),
        (3e-4, "1.0e-03", "3.0e-04"),  # YAML 1.1 float spelling kept (dot and padded exponent)
        (2000.0, "1e+3", "2e+3"),
        (1e-4, "0.001", "0.0001"),
        (1e-7, "0.001", "0.0000001"),
        (2.0, "1.0", "2.0"),
        (0.5, ".1", ".5"),
        (3.0, "1.", "3."),
        (-0.5, "0.1", "-0.5"),
        (0.5, "-1.0", "0.5"),
        (12, "10", "12"),
        (12.7, "10", "13"),
        (20000, "10_000", "20_000"),
        (-3, "1", "-3"),
        (False, "True", "False"),
        (True, "false", "true"),
        (False, "yes", "no"),
        ("sgd", '"adam"', '"sgd"'),
        ("sgd", "'adam'", "'sgd'"),
        ("sgd", "adam", "sgd"),
        ("null", "adam", '"null"'),
        ("it's", "'adam'", '"it\'s"'),
        (0.05, '"0.1"', '"0.05"'),
    ],
)
def test_format_value_keeps_style(new: object, old: str, expected: str) -> None:
    assert format_value(new, old) == expected  # type: ignore[arg-type]


def test_format_value_refuses_nan_and_type_confusion() -> None:
    with pytest.raises(ValueError):
        format_value(math.nan, "0.1")
    with pytest.raises(ValueError):
        format_value(math.inf, "1e-3")
    with pytest.raises(TypeError):
        format_value("adam", "0.1")
    assert format_value(0.5, "1", integer=False) == "0.5"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("learning_rate", "lr"), ("LR", "lr"), ("base_lr", "lr"), ("learningRate", "lr"), ("eta", "lr"),
        ("lr_decay_iters", "steps"), ("lr_gamma", "other"), ("batch_size", "batch_size"), ("bs", "batch_size"),
        ("per_device_train_batch_size", "batch_size"), ("hidden_dim", "width"), ("d_model", "width"),
        ("n_embd", "width"), ("units", "width"), ("n_layers", "depth"), ("num_hidden_layers", "depth"),
        ("max_depth", "depth"), ("hidden_layer_sizes", "width"), ("epochs", "epochs"), ("num_train_epochs", "epochs"),
        ("max_steps", "steps"), ("max_iters", "steps"), ("train_steps", "steps"), ("dropout", "dropout"),
        ("attn_pdrop", "dropout"), ("weight_decay", "weight_decay"), ("wd", "weight_decay"), ("l2", "weight_decay"),
        ("momentum", "momentum"), ("beta1", "momentum"), ("warmup_steps", "warmup"), ("grad_clip", "clip"),
        ("max_grad_norm", "clip"), ("block_size", "seq_len"), ("seq_len", "seq_len"), ("context_length", "seq_len"),
        ("seed", "seed"), ("random_state", "seed"), ("log_every", "logging"), ("eval_interval", "logging"),
        ("eval_iters", "logging"), ("num_workers", "logging"), ("test_size", "split"), ("n_splits", "split"),
        ("val_frac", "split"), ("vocab_size", "fixed"), ("num_classes", "fixed"), ("input_dim", "fixed"),
        ("label_smoothing", "other"), ("n_heads", "other"), ("gradient_accumulation_steps", "other"),
        ("ema_decay", "momentum"), ("model_ema_decay", "momentum"), ("ema_warmup_steps", "warmup"),
        ("n_estimators", "steps"), ("num_trees", "steps"), ("num_boost_round", "steps"),
        ("feature_fraction", "other"), ("colsample_bytree", "other"), ("max_features", "fixed"),
        ("limit_train_batches", "logging"), ("num_batches", "steps"), ("batches_per_epoch", "steps"),
    ],
)
def test_classify(name: str, kind: str) -> None:
    assert classify(name) == kind


def _knob(kind: str, value: int | float | bool | str, choices: tuple[int | float | bool | str, ...] = ()) -> Knob:
    return Knob("x", "t.py", value, kind, "constant", 1, "x = ...", choices)


def test_search_space_per_kind() -> None:
    lr = search_space(_knob("lr", 0.01))
    assert lr is not None and lr.log and not lr.integer
    assert lr.low == pytest.approx(0.01 / 30) and lr.high == pytest.approx(0.3)
    hi = search_space(_knob("lr", 0.5))
    assert hi is not None and hi.high == 1.0
    lo = search_space(_knob("lr", 1e-4))
    assert lo is not None and lo.low == 1e-5
    bs = search_space(_knob("batch_size", 32))
    assert bs is not None and (bs.low, bs.high, bs.log, bs.integer, bs.pow2) == (8, 512, True, True, True)
    w = search_space(_knob("width", 64))
    assert w is not None and (w.low, w.high, w.integer, w.log) == (16, 256, True, True)
    d = search_space(_knob("depth", 3))
    assert d is not None and (d.low, d.high, d.integer, d.log) == (1, 5, True, False)
    d1 = search_space(_knob("depth", 1))
    assert d1 is not None and d1.high == 4
    ep = search_space(_knob("epochs", 10))
    assert ep is not None and (ep.low, ep.high, ep.integer, ep.log) == (5, 40, True, True)
    st_ = search_space(_knob("steps", 1000))
    assert st_ is not None and (st_.low, st_.high) == (500, 4000)
    dr = search_space(_knob("dropout", 0.1))
    assert dr is not None and (dr.low, dr.high, dr.log) == (0.0, 0.5, False)
    wd = search_space(_knob("weight_decay", 0.0))
    assert wd is not None and (wd.low, wd.high, wd.log, wd.allow_zero) == (1e-6, 0.3, True, True)
    m = search_space(_knob("momentum", 0.9))
    assert m is not None and (m.low, m.high, m.log1m) == (0.0, 0.999, True)
    m0 = search_space(_knob("momentum", 0.0))
    assert m0 is not None and (m0.low, m0.high, m0.log1m) == (0.0, 0.99, False)
    assert search_space(_knob("seed", 42)) is None
    assert search_space(_knob("logging", 100)) is None
    of = search_space(_knob("other", 2.0))
    assert of is not None and (of.low, of.high, of.log) == (pytest.approx(0.2), pytest.approx(20.0), True)
    oi = search_space(_knob("other", 100))
    assert oi is not None and (oi.low, oi.high, oi.integer) == (25, 400, True)
    oi1 = search_space(_knob("other", 2))
    assert oi1 is not None and oi1.low == 1
    fl = search_space(_knob("flag", True))
    assert fl is not None and fl.choices == [False, True]
    ch = search_space(_knob("choice", "adam", ("adam", "sgd")))
    assert ch is not None and ch.choices == ["adam", "sgd"]
    assert search_space(_knob("choice", "adam", ("adam",))) is None
    for kind, value in [("lr", 3e-3), ("batch_size", 1024), ("width", 3), ("epochs", 1), ("dropout", 0.7),
                        ("weight_decay", 0.5), ("momentum", 0.999), ("other", 0.001), ("warmup", 2000)]:
        sp = search_space(_knob(kind, value))
        assert sp is not None and sp.low <= value <= sp.high, (kind, value)


def test_space_snap() -> None:
    assert Space(8, 512, True, True, pow2=True).snap(45.0) == 32
    assert Space(8, 512, True, True, pow2=True).snap(3000.0) == 512
    assert Space(1e-5, 1.0, True, False).snap(0.0031622776601683794) == 0.00316
    assert Space(1, 12, False, True).snap(7.6) == 8
    assert Space(0, 0, False, False, ["adam", "sgd"]).snap(0.0) == "adam"


# ---------------------------------------------------------------------------------------------------------------------
# Property: whatever value a policy proposes, rewrite then discover gives it back
# ---------------------------------------------------------------------------------------------------------------------

_FLOAT_CASES = [
    ("charlm.py", CHARLM, "LEARNING_RATE"), ("charlm.py", CHARLM, "DROPOUT"), ("charlm.py", CHARLM, "GRAD_CLIP"),
    ("digits.py", DIGITS, "CONFIG.optim.weight_decay"), ("config.py", DATACLASS, "TrainConfig.lr"),
    ("train.py", ARGPARSE, "--lr"), ("train.py", ARGPARSE, "--momentum"), ("config.yaml", CONFIG_YAML, "optimizer.lr"),
    ("config.yaml", CONFIG_YAML, "model.dropout"), ("cfg.json", CONFIG_JSON, "learning_rate"),
    ("cfg.json", CONFIG_JSON, "model.dropout"), ("cifar.py", CIFAR, "SGD.lr"),
]
_INT_CASES = [
    ("charlm.py", CHARLM, "MAX_STEPS"), ("charlm.py", CHARLM, "D_MODEL"), ("digits.py", DIGITS, "CONFIG.hidden"),
    ("config.py", DATACLASS, "TrainConfig.epochs"), ("train.py", ARGPARSE, "--batch-size"),
    ("config.yaml", CONFIG_YAML, "train.max_steps"), ("cfg.json", CONFIG_JSON, "model.hidden[0]"),
    ("cifar.py", CIFAR, "epochs"), ("cifar.py", CIFAR, "DataLoader.batch_size"),
]


@settings(max_examples=60, deadline=None)
@given(
    case=st.sampled_from(_FLOAT_CASES),
    value=st.one_of(
        st.floats(min_value=1e-9, max_value=1e6, allow_nan=False, allow_infinity=False),
        st.floats(min_value=-10.0, max_value=10.0, allow_nan=False, allow_infinity=False),
    ),
)
def test_property_float_rewrite_then_discover(case: tuple[str, str, str], value: float) -> None:
    path, text, name = case
    knob = by_name(discover(path, text))[name]
    out = rewrite(text, knob, value)
    parses(path, out)
    got = by_name(discover(path, out))[name].value
    assert isinstance(got, float)
    assert got == value or (value == 0 and got == 0)


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(_INT_CASES), value=st.integers(min_value=-10**9, max_value=10**9))
def test_property_int_rewrite_then_discover(case: tuple[str, str, str], value: int) -> None:
    path, text, name = case
    knob = by_name(discover(path, text))[name]
    out = rewrite(text, knob, value)
    parses(path, out)
    got = by_name(discover(path, out))[name].value
    assert type(got) is int and got == value


# ---------------------------------------------------------------------------------------------------------------------
# Performance sanity (the budget is 0.5 s on an idle 2-core machine; the bound here only catches regressions)
# ---------------------------------------------------------------------------------------------------------------------


def test_discovering_a_2000_line_file() -> None:
    """Correctness on a big file; its speed is a figure printed by bench/parsing.py, not a timed test."""
    chunks = []
    i = 0
    while sum(c.count("\n") for c in chunks) < 2000:
        chunks.append(CIFAR.replace("class Net", f"class Net{i}") + DATACLASS.replace("class ", f"class X{i}"))
        i += 1
    text = "\n".join(chunks)
    ks = discover("big.py", text)
    assert len(ks) > 100


# the two ways the Python scanner places the literals it claims (knobs/__init__.py): the tokenizer's n-th literal
# token, and libcst's ByteSpanPositionProvider where the two do not line up; both must give the same spans
PLACES = '''\ufeff"""Réglages — a docstring that is not ASCII."""
import torch
from os import path as _path
NONE_TYPE = None.__class__  # a literal token under an attribute: walked, so the count stays in step
LR = -3e-4  # the learning rate
WD = (0.01)
NAME = f"run-{3}"
CONFIG = {"batch_size": 64, "dropout": - 0.1, "use_amp": True, "optimizer": "adam"}
EPS = (-  # a comment between the sign and the number
       1e-8)


def train(epochs: int = 10, momentum=0.9) -> None:
    opt = torch.optim.SGD(params, lr=0.05, nesterov=False)
    print(f"{torch.optim.Adam(params, lr=0.002)}")
    for step in range(1000):
        pass
'''


def _placed(text: str) -> tuple[object, object, object]:
    import libcst as cst

    from nightlab.agent.policy.knobs import python_code

    body = text.removeprefix("\ufeff")
    scanner = python_code._PyScanner((text,))
    module = cst.parse_module(body)
    module.visit(scanner)
    names = [p.name for p in scanner.pending]
    return names, python_code._spans_by_token(body, scanner), python_code._spans_exact(module, body, scanner)


def test_the_tokenizer_and_libcst_place_literals_alike() -> None:
    text = PLACES.replace("EPS = (-  # a comment between the sign and the number\n       1e-8)\n", "") \
        .replace('    print(f"{torch.optim.Adam(params, lr=0.002)}")\n', "")
    names, by_token, exact = _placed(text)
    assert by_token is not None and by_token == exact
    body = text.removeprefix("\ufeff")
    got = {n: body[s:e] for k, n in enumerate(names) for s, e in [exact[k]]}  # type: ignore[index]
    assert got["LR"] == "-3e-4" and got["WD"] == "0.01" and got["CONFIG.dropout"] == "- 0.1"
    assert got["CONFIG.use_amp"] == "True" and got["train.epochs"] == "10" and got["SGD.lr"] == "0.05"


def test_where_the_tokenizer_cannot_place_a_literal_libcst_does() -> None:
    """A comment between a sign and its number, a literal claimed inside an f-string: the exact spans are used, and
    the knobs are found where they are (characters, not bytes, after a non-ASCII docstring and a BOM)."""
    names, by_token, exact = _placed(PLACES)
    assert by_token is None and len(exact) == len(names)  # type: ignore[arg-type]
    knobs = {k.name: k for k in discover("train.py", PLACES)}
    assert knobs["EPS"].value == -1e-8 and knobs["Adam.lr"].value == 0.002 and knobs["LR"].value == -3e-4
    out = rewrite(PLACES, knobs["Adam.lr"], 0.001)
    assert out == PLACES.replace("lr=0.002", "lr=0.001")
    s, e = span(PLACES, knobs["EPS"])
    assert PLACES[s:e] == "-  # a comment between the sign and the number\n       1e-8"


def test_an_average_already_on_is_searched_on_its_horizon() -> None:
    """Momentum 0.9 and Adam's β2 0.99 get a log(1 − x) space, whose moves and rounding keep them below 1 (0.99 ×3
    on the horizon is 0.9967, not a rounded 1.0); a momentum that is off keeps the plain range it is switched on in."""
    from nightlab.agent.policy import search as searchmod

    on = search_space(Knob("beta2", "train.py", 0.99, "momentum", "constant", 1, ""))
    off = search_space(Knob("momentum", "train.py", 0.0, "momentum", "constant", 1, ""))
    assert on is not None and on.log1m and on.low == 0.0 and on.high == 0.999
    assert off is not None and not off.log1m
    dim = searchmod.Dim("beta2", on, "momentum")
    assert searchmod.step_values(0.99, dim) == [0.9967, 0.97]
    sgd = search_space(Knob("m", "train.py", 0.9, "momentum", "constant", 1, ""))
    assert sgd is not None and searchmod.step_values(0.9, searchmod.Dim("m", sgd, "momentum")) == [0.967, 0.7]
    assert on.snap(0.996666) == 0.99667 and on.snap(0.9999) == 0.999
    for v in (0.0, 0.5, 0.9, 0.99, 0.999):
        u = searchmod.to_unit(v, on)
        assert u is not None and searchmod.same(searchmod.from_unit(u, on, "momentum"), v)
    mid = searchmod.from_unit(0.5, on, "momentum")
    assert 0.96 < mid < 0.975  # the middle of the horizon's range, where a linear space would put 0.5
    # an EMA of the weights is the same kind of average: 0.9999 never steps to 1 or past it (×3 was 2.9997)
    ema = search_space(Knob("model_ema_decay", "train.py", 0.9999, classify("model_ema_decay"), "constant", 1, ""))
    assert ema is not None and ema.log1m and ema.high == 0.9999
    assert searchmod.step_values(0.9999, searchmod.Dim("model_ema_decay", ema, "momentum")) == [0.9997]
    # where the average is named by the key above a generic word: Hydra YAML, a config class, a nested dict
    files = {"conf/train.yaml": "ema:\n  decay: 0.9999\nscheduler:\n  decay: 0.5\noptimizer:\n  lr: 3.0e-4\n",
             "train.py": "from dataclasses import dataclass\n\n\n@dataclass\nclass EMAConfig:\n"
                         "    decay: float = 0.999\n\n\nCONFIG = {'lr': 0.1, 'ema': {'decay': 0.99}}\n"}
    kinds = {k.name: k.kind for k in discover_files(files)}
    assert kinds["ema.decay"] == kinds["EMAConfig.decay"] == kinds["CONFIG.ema.decay"] == "momentum"
    assert kinds["scheduler.decay"] == "other"  # a step schedule's factor is not an average


def test_a_share_stays_within_one_and_a_decay_factor_below_it() -> None:
    """Unclassified reals whose names bound them, found where real code writes them (a scikit-learn estimator's
    arguments, an XGBoost / LightGBM parameter dict, a reinforcement-learning config): a subsample, a column sample or
    a bagging fraction is searched within (0, 1] (×10 around 0.8 stepped it to 2.4, which scikit-learn and XGBoost
    refuse), a probability or a ratio up to 0.95, and a decay or a discount factor on its horizon, below 1. A name
    that bounds nothing keeps the ×10 around its value, and a boosting model's `n_estimators` counts its training."""
    from nightlab.agent.policy import search as searchmod

    code = (
        "from sklearn.ensemble import GradientBoostingClassifier\n"
        "import lightgbm as lgb\n\n"
        "clf = GradientBoostingClassifier(n_estimators=100, learning_rate=0.1, subsample=0.8, max_depth=3)\n"
        "params = {'objective': 'binary', 'learning_rate': 0.05, 'num_leaves': 31, 'feature_fraction': 0.9,\n"
        "          'bagging_fraction': 1.0, 'colsample_bytree': 0.8}\n"
        "booster = lgb.train(params, None, num_boost_round=200)\n\n"
        "RL = dict(lr=3e-4, discount=0.99, lr_decay=0.95, mask_ratio=0.75, label_smoothing=0.1, temperature=0.07)\n"
    )
    found = {k.name: k for k in discover_files({"train.py": code})}
    assert found["GradientBoostingClassifier.n_estimators"].kind == "steps"

    def space(name: str) -> Space:
        sp = search_space(found[name])
        assert sp is not None, name
        return sp

    for name, value in [("GradientBoostingClassifier.subsample", 0.8), ("params.feature_fraction", 0.9),
                        ("params.bagging_fraction", 1.0), ("params.colsample_bytree", 0.8)]:
        sp = space(name)
        assert (sp.log, sp.high) == (False, 1.0) and 0 < sp.low < value, name
        dim = searchmod.Dim(name, sp, found[name].kind)
        steps = searchmod.step_values(value, dim)
        assert steps and all(0 < v <= 1 for v in steps), (name, steps)
        assert all(0 < searchmod.from_unit(u, sp, "other") <= 1 for u in (0.0, 0.3, 0.7, 1.0))
    assert searchmod.step_values(0.8, searchmod.Dim("s", space("GradientBoostingClassifier.subsample"), "other")) \
        == [0.96, 0.64]
    for name in ("RL.mask_ratio", "RL.label_smoothing"):
        assert space(name).high == 0.95 and not space(name).log
    for name, value, moved in [("RL.discount", 0.99, [0.9967, 0.97]), ("RL.lr_decay", 0.95, [0.983, 0.85])]:
        sp = space(name)
        assert sp.log1m and sp.high < 1 and sp.low == 0.5
        assert searchmod.step_values(value, searchmod.Dim(name, sp, "other")) == moved
    temp = space("RL.temperature")
    assert temp.log and (temp.low, temp.high) == (pytest.approx(0.007), pytest.approx(0.7))


def test_schedules_and_caps_real_libraries_refuse_past_their_bounds() -> None:
    """What real training code passes to libraries with bounds of their own: a diffusion noise schedule's
    `beta_start` / `beta_end` (named like Adam's β, but a variance of 1e-4 that a plain step of 0.2 would wreck), a
    step decay's factor (`ReduceLROnPlateau` refuses a factor of 1 or more; StepLR's `gamma`), and Lightning's
    `limit_train_batches` (a debugging cap, not a batch size: searched as one it went from 1.0, all batches, to 2)."""
    from nightlab.agent.policy import search as searchmod

    code = (
        "import torch\nimport pytorch_lightning as pl\nfrom diffusers import DDPMScheduler\n\n"
        "sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02)\n"
        "opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999))\n"
        "plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=3)\n"
        "step = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)\n"
        "trainer = pl.Trainer(max_epochs=20, limit_train_batches=1.0)\n"
    )
    found = {k.name: k for k in discover_files({"train.py": code})}
    for name, value in [("DDPMScheduler.beta_start", 0.0001), ("DDPMScheduler.beta_end", 0.02)]:
        sp = search_space(found[name])
        assert sp is not None and sp.log and not sp.log1m and sp.high <= 10 * value
        assert all(v < 0.25 for v in searchmod.step_values(value, searchmod.Dim(name, sp, "momentum")))
    adam = search_space(found["AdamW.betas[1]"])
    assert adam is not None and adam.log1m  # Adam's own β is still an average
    for name in ("ReduceLROnPlateau.factor", "StepLR.gamma"):
        sp = search_space(found[name])
        assert sp is not None and sp.high < 1
        assert all(0 < v < 1 for v in searchmod.step_values(0.1, searchmod.Dim(name, sp, "other")))
    assert "Trainer.limit_train_batches" not in found or not found["Trainer.limit_train_batches"].tunable
    assert found["Trainer.max_epochs"].kind == "epochs"


def test_the_lightning_hydra_templates_config_exposes_only_what_learns() -> None:
    """The layout of the Lightning-Hydra template (a trainer, a model with `_partial_` optimizer and scheduler, a
    net sized `lin1_size`, callbacks): hardware, number format, compilation, determinism and checkpoint bookkeeping
    are never searched (`devices: 1` searched ×4 asks for GPUs that are not there, `precision: 32` ×4 for 128-bit
    floats), Hydra's own keys are no knobs at all (`_partial_: true` flipped breaks instantiation), and a layer's
    `lin1_size` is a width."""
    config = (
        "seed: 12345\n"
        "trainer:\n  max_epochs: 10\n  accelerator: cpu\n  devices: 1\n  precision: 32\n  deterministic: false\n"
        "  gradient_clip_val: 0.0\n"
        "model:\n  optimizer:\n    _target_: torch.optim.Adam\n    _partial_: true\n    lr: 0.001\n"
        "    weight_decay: 0.0\n"
        "  scheduler:\n    _target_: torch.optim.lr_scheduler.ReduceLROnPlateau\n    _partial_: true\n"
        "    factor: 0.1\n    patience: 10\n"
        "  net:\n    _target_: src.models.components.simple_dense_net.SimpleDenseNet\n    input_size: 784\n"
        "    lin1_size: 64\n    lin2_size: 128\n    output_size: 10\n"
        "  compile: false\n"
        "data:\n  batch_size: 128\n  num_workers: 0\n  pin_memory: false\n"
        "callbacks:\n  model_checkpoint:\n    save_top_k: 1\n  early_stopping:\n    patience: 100\n"
        "fp16: true\n"
    )
    found = {k.name: k for k in discover_files({"configs/train.yaml": config})}
    assert not [n for n in found if "_partial_" in n or "_target_" in n]
    for name in ("trainer.devices", "trainer.precision", "trainer.deterministic", "model.compile",
                 "callbacks.model_checkpoint.save_top_k", "fp16", "data.num_workers", "seed"):
        assert not found[name].tunable, name
    assert found["model.net.lin1_size"].kind == found["model.net.lin2_size"].kind == "width"
    assert not found["model.net.input_size"].tunable and not found["model.net.output_size"].tunable
    tunable = {n for n, k in found.items() if k.tunable and search_space(k) is not None}
    assert {"trainer.max_epochs", "model.optimizer.lr", "data.batch_size", "model.scheduler.factor"} <= tunable
    assert classify("per_device_train_batch_size") == "batch_size"  # a device word beside a batch is a batch size


def test_a_toml_config_is_read_for_knobs_and_rewritten_in_place() -> None:
    """TOML (tomllib gives values, not positions): tables, dotted and quoted keys, one-line arrays, comments kept on
    rewrite; what a line cannot place (a multi-line string, an array of tables) is left out, and a project's or a
    tool's own settings (pyproject.toml, nightlab.toml) are no training config."""
    import tomllib

    text = (
        "# training settings\ntitle = \"run\"   # a name\n[optimizer]\nname = \"adamw\"\nlr = 3e-4          # peak\n"
        "weight_decay = 0.01\nbetas = [0.9, 0.95]\n\n[model]\nhidden_sizes = [256, 128]\n\"n-layers\" = 4\n\n"
        "[training]\nepochs = 20\nseed = 1_337\nnotes = \"\"\"\nmulti = 3\n\"\"\"\n\n[[callbacks]]\npatience = 5\n"
    )
    found = {k.name: k for k in discover_files({"config.toml": text})}
    assert {n: (k.value, k.kind) for n, k in found.items() if n != "optimizer.name"} == {
        "optimizer.lr": (3e-4, "lr"), "optimizer.weight_decay": (0.01, "weight_decay"),
        "optimizer.betas[0]": (0.9, "momentum"), "optimizer.betas[1]": (0.95, "momentum"),
        "model.hidden_sizes[0]": (256, "width"), "model.hidden_sizes[1]": (128, "width"),
        "model.n-layers": (4, "depth"), "training.epochs": (20, "epochs"), "training.seed": (1337, "seed")}
    assert found["optimizer.lr"].style == "toml" and found["optimizer.lr"].line == 5
    new = rewrite(text, found["optimizer.lr"], 1e-3)
    new = rewrite(new, found["model.hidden_sizes[0]"], 512)
    new = rewrite(new, found["training.epochs"], 40)
    assert "lr = 1e-3          # peak\n" in new and "hidden_sizes = [512, 128]\n" in new
    data = tomllib.loads(new)
    assert (data["optimizer"]["lr"], data["model"]["hidden_sizes"], data["training"]["epochs"]) == (1e-3, [512, 128],
                                                                                                    40)
    assert data["training"]["notes"] == tomllib.loads(text)["training"]["notes"]  # the string's "multi = 3" untouched
    for own in ("pyproject.toml", "nightlab.toml", "sub/pyproject.toml"):
        assert discover_files({own: "[tool.trainer]\nlr = 0.1\nepochs = 3\n"}) == []
    assert discover_files({"broken.toml": "lr = 0.1\n[unclosed\n"}) == []
    assert discover_files({"labels.toml": "[names]\ncat = 1\ndog = 2\n"}) == []  # no hyperparameter: data


def test_a_class_named_hp_holds_settings() -> None:
    """`class HP: lr = 0.01` (the short name many scripts give their hyperparameters) is a config class."""
    found = {k.name: k.kind for k in discover_files({"train.py": "class HP:\n    lr = 0.01\n    epochs = 10\n\n\n"
                                                                 "class Helper:\n    lr = 0.5\n"})}
    assert found == {"HP.lr": "lr", "HP.epochs": "epochs"}


def test_a_warmup_counted_in_epochs_is_a_count_not_a_fraction() -> None:
    """`warmup_epochs = 0.5` (timm, many configs) got the fraction-of-training space [0, 0.5] and could only go down;
    `warmup_epochs = 5` got a steps-sized space up to 100 epochs."""
    def space(name: str, value: float | int) -> Space | None:
        return search_space(Knob(name, "train.py", value, classify(name), "constant", 1, ""))

    half = space("warmup_epochs", 0.5)
    assert half is not None and (half.low, half.high, half.integer) == (0.0, 10.0, False)
    five = space("warmup_epochs", 5)
    assert five is not None and (five.low, five.high, five.integer) == (0.0, 20.0, True)
    steps = space("warmup_steps", 2000)
    assert steps is not None and (steps.high, steps.integer) == (8000.0, True)
    iters = space("warmup_iters", 0)
    assert iters is not None and iters.high == 100.0 and iters.allow_zero
    ratio = space("warmup_ratio", 0.06)
    assert ratio is not None and (ratio.low, ratio.high, ratio.integer) == (0.0, 0.3, False)


def test_settings_that_change_what_is_measured_or_the_data_are_never_knobs() -> None:
    """A detection threshold, NMS's IoU, beam search, sampling's top-k and new tokens, a diffusion sampler's steps and
    guidance: searched, they change what is measured (a threshold of 0.5 ×10 marks nothing positive), and
    `num_inference_steps` had been classed as the training's length. A synthetic dataset's size changes the data, and
    a seq2seq target's length truncates the evaluation's references too. Their training-side neighbours keep their
    kinds."""
    for name in ("threshold", "iou_thres", "conf_thres", "NMS_THR", "num_beams", "max_new_tokens", "top_k", "top_p",
                 "num_inference_steps", "guidance_scale", "N_SAMPLES", "num_examples", "subset_size",
                 "dataset_size", "max_target_length", "val_max_target_length", "generation_max_length", "max_gen_len"):
        assert classify(name) == "fixed", name
    # the input's length is the model's: run_translation's `max_source_length`, nanoGPT's `block_size`
    for name, kind in [("num_train_timesteps", "split"), ("max_steps", "steps"), ("n_layer", "depth"),
                       ("total_timesteps", "steps"), ("early_stopping_rounds", "other"), ("patience", "other"),
                       ("max_source_length", "seq_len"), ("block_size", "seq_len"), ("target_kl", "other")]:
        assert classify(name) == kind, name


def test_the_learning_rate_family_keeps_floors_warmup_starts_and_modifiers_apart() -> None:
    """timm's `--min-lr 0` or `CosineAnnealingLR(eta_min=0)` is a floor: with no rate to move from it is not searched
    (it had been given [1e-5, 1], so a step annealed upwards past the base rate). A warm-up's start value (timm's
    `warmup_lr` 5e-7, YOLO's `warmup_bias_lr` / `warmup_momentum`, detectron2's `WARMUP_FACTOR`) is not a length or a
    share of training (5e-7 had been stepped to 0.06), and timm's `lr_base_size` / `lr_cycle_limit` / `lr_noise_pct`
    modify a schedule rather than set a rate. Warm-up lengths and nanoGPT's `lr_decay_iters` stay what they were."""
    floor = Knob("eta_min", "train.py", 0.0, classify("eta_min"), "call", 1, "")
    assert floor.kind == "lr" and search_space(floor) is None
    for name in ("warmup_lr", "warmup_bias_lr", "warmup_momentum", "WARMUP_FACTOR", "warmup_lr_init",
                 "lr_base_size", "lr_cycle_limit", "lr_cycle_mul", "lr_noise_pct", "lr_noise_std"):
        assert classify(name) == "fixed", name
    for name, kind in [("warmup_steps", "warmup"), ("lr_warmup_steps", "warmup"), ("warmup_ratio", "warmup"),
                       ("WARMUP_EPOCHS", "warmup"), ("lr_decay_iters", "steps"), ("min_lr", "lr"),
                       ("max_lr", "lr")]:
        assert classify(name) == kind, name


def test_reinforcement_learning_coefficients_stay_where_the_algorithms_hold() -> None:
    """PPO's `--clip-coef` / `clip_range` is a trust region on a probability ratio (searched within (0, 0.5], not as a
    gradient norm up to 2); GAE's λ stays in [0.8, 1] (above 1 the advantages grow without bound); an ε-greedy
    exploration rate is a probability; SB3's `learn(total_timesteps=...)` is the training's length. Adam's ε and
    gradient clipping are untouched."""
    code = (
        "import argparse\nfrom stable_baselines3 import PPO\n\n"
        "ap = argparse.ArgumentParser()\n"
        "ap.add_argument('--clip-coef', type=float, default=0.2)\n"
        "ap.add_argument('--gae-lambda', type=float, default=0.95)\n"
        "ap.add_argument('--max-grad-norm', type=float, default=0.5)\n"
        "args = ap.parse_args()\n"
        "config = dict(eps_start=1.0, eps_end=0.05, adam_epsilon=1e-8, clip_range=0.1, lam=0.95)\n"
        "model = PPO('MlpPolicy', env, learning_rate=3e-4, n_steps=2048)\n"
        "model.learn(total_timesteps=100_000)\n"
    )
    found = {k.name: k for k in discover_files({"train.py": code})}
    for name in ("--clip-coef", "config.clip_range"):
        clip = search_space(found[name])
        assert found[name].kind == "other" and clip is not None and clip.low > 0 and clip.high == 0.5, name
    assert found["--max-grad-norm"].kind == "clip"
    for name in ("--gae-lambda", "config.lam"):
        lam = search_space(found[name])
        assert lam is not None and lam.high == 1.0 and lam.low >= 0.8, name
    for name in ("config.eps_start", "config.eps_end"):
        sp = search_space(found[name])
        assert sp is not None and sp.low > 0 and sp.high == 1.0, name
    eps = search_space(found["config.adam_epsilon"])
    assert eps is not None and eps.high < 1e-6
    assert found["learn.total_timesteps"].kind == "steps"


def test_gradient_boosting_and_layerwise_names_read_as_their_libraries_mean_them() -> None:
    """LightGBM's `min_data_in_leaf` is a knob (the shape word `in` inside a phrase had made it "fixed", as
    `in_features` is), `nthread` is where it runs, a bagging `max_samples` share stays within 1, and BEiT's
    `layer_decay` 0.75 is a decay factor on its horizon, not a depth with no space."""
    assert classify("min_data_in_leaf") == "other" and classify("in_features") == "fixed"
    assert classify("d_out") == "fixed" and classify("nthread") == "logging"
    share = search_space(Knob("max_samples", "train.py", 0.8, classify("max_samples"), "call", 1, ""))
    assert share is not None and share.high == 1.0
    layer = search_space(Knob("layer_decay", "train.py", 0.75, classify("layer_decay"), "constant", 1, ""))
    assert layer is not None and layer.log1m and layer.high < 1


def test_a_yacs_config_built_on_underscore_c_is_read() -> None:
    """Swin's, HRNet's and many research repositories' `config.py`: yacs nodes on `_C` (`_C.TRAIN.BASE_LR = 5e-4`),
    which no config-like variable name matched, so not one knob was found. A variable made by a config-node
    constructor holds settings whatever it is called; the seed and the print cadence stay unsearched."""
    code = (
        "from yacs.config import CfgNode as CN\n\n"
        "_C = CN()\n_C.DATA = CN()\n_C.DATA.BATCH_SIZE = 128\n_C.TRAIN = CN()\n_C.TRAIN.EPOCHS = 300\n"
        "_C.TRAIN.BASE_LR = 5e-4\n_C.TRAIN.MIN_LR = 5e-6\n_C.TRAIN.WEIGHT_DECAY = 0.05\n_C.SEED = 0\n"
        "_C.PRINT_FREQ = 10\n\nresults = []\nresults.count = 3\n"
    )
    found = {k.name: k for k in discover_files({"config.py": code})}
    assert {n: k.kind for n, k in found.items() if k.tunable} == {
        "_C.DATA.BATCH_SIZE": "batch_size", "_C.TRAIN.EPOCHS": "epochs", "_C.TRAIN.BASE_LR": "lr",
        "_C.TRAIN.MIN_LR": "lr", "_C.TRAIN.WEIGHT_DECAY": "weight_decay"}
    assert not found["_C.SEED"].tunable and not found["_C.PRINT_FREQ"].tunable
    assert "results.count" not in found
    new = rewrite(code, found["_C.TRAIN.BASE_LR"], 1e-3)
    assert "_C.TRAIN.BASE_LR = 1e-3\n" in new or "_C.TRAIN.BASE_LR = 0.001\n" in new


def test_a_choice_is_offered_only_values_the_repo_could_take() -> None:
    """`report_to="none"` does not make "none" a schedule HF accepts (it raises on it), and `optimizer.step()` does not
    make "step" one (diffusers' DDPMScheduler raises NotImplementedError on it); a comparison against a value does
    offer it."""
    hf = ('from transformers import TrainingArguments\n'
          'args = TrainingArguments(output_dir="o", lr_scheduler_type="linear", report_to="none", learning_rate=5e-5)\n'
          'optimizer.step()\n')
    found = {k.name: k for k in discover_files({"train.py": hf})}
    assert found["TrainingArguments.lr_scheduler_type"].choices == ("linear",)
    compared = ('SCHEDULER = "cosine"\nif SCHEDULER == "linear":\n    pass\nelif SCHEDULER in ("step", "none"):\n'
                '    pass\nopt.step()\n')
    found = {k.name: k for k in discover_files({"train.py": compared})}
    assert found["SCHEDULER"].choices == ("cosine", "linear", "step", "none")


def test_shape_settings_stay_and_an_off_regulariser_can_be_switched_on() -> None:
    """A convolution's kernel, stride and padding, a ViT's patch, YOLO's `imgsz` and a crop size set tensor shapes
    (×4 crashes the model or changes its input): never searched. Label smoothing or mixup written as 0.0 is off, not
    an unknown zero: it gets a space from 0.01 to 0.3 with zero allowed, so a step switches it on; an int 0 stays
    unsearched (a float written into it could be read as a count)."""
    for name in ("kernel_size", "stride", "padding", "dilation", "patch_size", "IMGSZ", "crop_size"):
        assert classify(name) == "fixed", name
    for name in ("label_smoothing", "mixup_alpha"):
        sp = search_space(Knob(name, "train.py", 0.0, classify(name), "constant", 1, ""))
        assert sp is not None and sp.allow_zero and 0 < sp.low < sp.high <= 0.3, name
    assert search_space(Knob("mixup", "train.py", 0, classify("mixup"), "constant", 1, "")) is None


def test_optax_betas_norm_momentum_and_a_decay_period_read_as_meant() -> None:
    """optax's `adamw(b1=0.9, b2=0.999)` are Adam's β (searched on their horizon); a normalisation layer's momentum is
    bounded in its own convention — torch's 0.1 stays in (0, 0.5] (0 freezes the running statistics), Keras's 0.99
    moves on its horizon — and `batch_norm_momentum` is no batch size; Keras' / optax's `decay_steps` is a schedule's
    period, not the training length a "train longer" move would lengthen."""
    for name in ("b1", "b2"):
        assert classify(name) == "momentum", name
    torch_bn = search_space(Knob("BN_MOMENTUM", "train.py", 0.1, classify("BN_MOMENTUM"), "constant", 1, ""))
    assert torch_bn is not None and torch_bn.low > 0 and torch_bn.high == 0.5
    keras_bn = search_space(Knob("batch_norm_momentum", "train.py", 0.99, classify("batch_norm_momentum"),
                                 "constant", 1, ""))
    assert keras_bn is not None and keras_bn.log1m and keras_bn.low >= 0.5
    assert classify("decay_steps") == "other"
    assert classify("lr_decay_steps") == "steps" and classify("max_steps") == "steps"
