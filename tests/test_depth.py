"""Depth as a remedy for under-fitting, only where the model's structure is certain.

The planted task is real: an MLP of one hidden layer (96 units, not tiny, so widening is not the first remedy) that
under-fits concentric rings; a second hidden layer composes |x| from the first layer's features and fits them far
better. Both variants really train (in one interpreter: one torch import for the four runs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_builtin_policy import MLP_ADAMW, Tree, applied, view

from nightlab.agent import diagnose
from nightlab.agent.policy import depth
from nightlab.agent.policy import transforms as tf
from nightlab.agent.policy.builtin import BuiltinPolicy

RINGS = '''\
"""Classify points of the plane by which ring around the origin they fall in, with an MLP (synthetic)."""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

HIDDEN = 96
EPOCHS = 10
LEARNING_RATE = 0.01


def load_data():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3000, 2, generator=g) * 2 - 1
    y = (torch.floor(x.norm(dim=1) * 3) % 2).long()
    return x[:2000], y[:2000], x[2000:], y[2000:]


@torch.no_grad()
def evaluate(model, x, y):
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    x_train, y_train, x_val, y_val = load_data()
    model = nn.Sequential(nn.Linear(2, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(EPOCHS):
        perm = torch.randperm(len(x_train), generator=gen)
        total = 0.0
        for i in range(0, len(x_train), 50):
            idx = perm[i:i + 50]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1} train_loss {total / len(x_train):.4f}")
    print(f"accuracy={evaluate(model, x_val, y_val):.4f}")


if __name__ == "__main__":
    main()
'''

RUNNER = """
import contextlib, io, re, runpy, sys
for path in sys.argv[1:]:
    for seed in (0, 1):
        sys.argv = [path, "--seed", str(seed)]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name="__main__")
        text = out.getvalue()
        print(path, seed, re.findall(r"accuracy=([0-9.]+)", text)[-1], *re.findall(r"train_loss ([0-9.]+)", text))
"""


def train(tmp_path: Path, scripts: dict[str, str]) -> dict[str, list[tuple[float, list[float]]]]:
    """{name: [(accuracy, training-loss curve) at seeds 0 and 1]} of real runs of each script."""
    for name, text in scripts.items():
        (tmp_path / f"{name}.py").write_text(text)
    out = subprocess.run([sys.executable, "-c", RUNNER, *(f"{n}.py" for n in scripts)], cwd=tmp_path, check=True,
                         capture_output=True, text=True, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}).stdout
    got: dict[str, list[tuple[float, list[float]]]] = {n: [] for n in scripts}
    for line in out.splitlines():
        path, _seed, acc, *loss = line.split()
        got[path[:-3]].append((float(acc), [float(v) for v in loss]))
    return got


def test_an_under_fitting_sequential_model_gets_a_hidden_layer_and_it_wins(tmp_path: Path) -> None:
    shallow = train(tmp_path, {"shallow": RINGS})["shallow"]
    acc, loss = shallow[0]
    found = {p.kind for p in diagnose.curve_pathologies([(i + 1, v) for i, v in enumerate(loss)])}
    assert "underfitting" in found  # the planted property: the loss is still high and falling at the end
    tree = Tree({"train.py": RINGS})
    tree.add(view(1, kind="baseline", metric=acc, loss=loss))
    prop = BuiltinPolicy().propose(tree.ctx())
    assert prop is not None and prop.kind == "transform" and prop.knobs["transform"] == depth.NAME, prop.title
    assert prop.diagnosis.startswith("underfitting") and "hidden layer" in prop.rationale
    new = applied(prop.edits, tree.files[1])["train.py"]
    assert "nn.Linear(2, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2)" in new
    deep = train(tmp_path, {"deep": new})["deep"]
    gain = sum(d[0] for d in deep) / 2 - sum(s[0] for s in shallow) / 2
    assert gain > 0.05, (shallow, deep)  # depth wins, over two seeds, by more than the seeds differ


def test_a_hidden_layer_copies_what_sits_between_the_last_two_layers() -> None:
    text = ("import torch.nn as nn\nH = 64\n"
            "net = nn.Sequential(\n    nn.Linear(10, H),\n    nn.LayerNorm(H),\n    nn.GELU(),\n"
            "    nn.Dropout(0.1),\n    nn.Linear(H, 3),\n)\n")
    r = depth.add_hidden_layer(text, "m.py")
    assert r is not None
    net = r.new_text
    assert net.count("nn.Linear(H, H)") == 1 and net.count("nn.LayerNorm(H)") == 2 and net.count("nn.GELU()") == 2
    assert net.index("nn.Linear(H, H)") < net.index("nn.Linear(H, 3)")
    compile(net, "m.py", "exec")
    # a list of layers is a container too; applied again it stacks one more
    listed = ("import torch.nn as nn\nlayers = [nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1)]\n"
              "m = nn.Sequential(*layers)\n")
    once = depth.add_hidden_layer(listed, "m.py")
    assert once is not None and "nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1)" in once.new_text
    twice = depth.add_hidden_layer(once.new_text, "m.py")
    assert twice is not None and twice.new_text.count("nn.Linear(32, 32)") == 2
    assert tf.TRANSFORMS[depth.NAME](text, "m.py") is not None


@pytest.mark.parametrize("text", [
    # the width is spelled differently on the two sides: is it the same number?
    "import torch.nn as nn\nnet = nn.Sequential(nn.Linear(2, h), nn.ReLU(), nn.Linear(hidden, 2))\n",
    # something between the layers that is not elementwise: its shapes would have to be understood
    "import torch.nn as nn\n"
    "net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Unflatten(1, (2, 4)), nn.Linear(8, 2))\n",
    # no activation between them: a second linear map adds nothing
    "import torch.nn as nn\nnet = nn.Sequential(nn.Linear(2, 8), nn.Linear(8, 2))\n",
    # two containers: which one is the model?
    "import torch.nn as nn\na = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))\n"
    "b = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))\n",
    # a starred element: the layers are built elsewhere
    "import torch.nn as nn\nnet = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), *rest, nn.Linear(8, 2))\n",
    # not torch's Linear
    "net = Sequential(Linear(2, 8), ReLU(), Linear(8, 2))\n",
])
def test_depth_is_left_alone_where_the_structure_is_not_certain(text: str) -> None:
    assert depth.add_hidden_layer(text, "m.py") is None


def test_a_layer_count_knob_is_raised_rather_than_the_code_edited() -> None:
    text = MLP_ADAMW.replace('"hidden": 32', '"hidden": 128').replace(
        '    "epochs": 6,\n', '    "epochs": 6,\n    "n_layers": 1,\n')
    text = text.replace(
        "self.body = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout),\n"
        "                                  nn.Linear(hidden, n_out))",
        "layers = [nn.Linear(d_in, hidden), nn.ReLU()]\n"
        "        for _ in range(n_layers - 1):\n"
        "            layers += [nn.Linear(hidden, hidden), nn.ReLU()]\n"
        "        self.body = nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(hidden, n_out))")
    text = text.replace("def __init__(self, d_in, hidden, n_out, dropout):",
                        "def __init__(self, d_in, hidden, n_out, dropout, n_layers):")
    text = text.replace('cfg["dropout"])', 'cfg["dropout"], cfg["n_layers"])')
    assert "range(n_layers - 1)" in text and 'cfg["n_layers"]' in text
    tree = Tree({"train.py": text})
    loss = [2.0 - 0.04 * i for i in range(16)]  # high and still falling: under-fitting
    tree.add(view(1, kind="baseline", metric=0.5, loss=loss))
    prop = BuiltinPolicy().propose(tree.ctx())
    assert prop is not None and prop.diagnosis.startswith("underfitting")
    assert prop.knobs["CONFIG.n_layers"] == 2 and prop.kind == "hyperparameter", prop.title
