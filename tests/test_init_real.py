"""`nightlab init` on real-shaped repositories written in styles unlike ../shared/tasks.

Each repository is a real git checkout in a temp folder, with its data kept out of git the way real projects do it
(a .gitignore'd folder, ignored extensions, a folder git was never told about), outputs of an earlier run lying
around, and its configuration spread over the places real code puts it: a package imported at depth, an exec'd
config named on the command line, an argparse default naming a YAML file, a Hydra config directory. The baseline
really runs (numpy only, a second or two), so "linked" means the run could read its data through the link.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from nightlab.agent.config import MetricConfig
from nightlab.agent.policy.evaluation import metric_functions
from nightlab.agent.project_init import InitOptions, InitResult, init_project
from nightlab.errors import NightlabError

from helpers import REPO_ROOT, git, make_repo, snapshot_repo

NANOGPT = REPO_ROOT.parent / "shared" / "repos" / "nanogpt"


def init(root: Path, **opts: object) -> tuple[InitResult, str]:
    said: list[str] = []
    res = init_project(root, InitOptions(yes=True, **opts), say=said.append)  # type: ignore[arg-type]
    return res, "\n".join(said + res.notes)


def config(root: Path) -> dict[str, object]:
    return tomllib.loads((root / "nightlab.toml").read_text())


def save_blobs(path: Path, seed: int = 0, n: int = 200) -> None:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-1, 1, (n // 2, 2)), rng.normal(1, 1, (n // 2, 2))])
    y = np.array([0] * (n // 2) + [1] * (n // 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)


# --- a package layout: python -m src.train, imports at depth, data in an ignored folder --------------------------

PKG_TRAIN = '''\
import argparse
import os

import numpy as np

from src.model import make
from src.data.loader import load_split

p = argparse.ArgumentParser()
p.add_argument("--data-dir", default="datasets/blobs")
p.add_argument("--out-dir", default="outputs")
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
x, y = load_split(args.data_dir, "train")
xv, yv = load_split(args.data_dir, "val")
model = make(seed=args.seed)
for epoch in range(args.epochs):
    model.step(x, y)
    print(f"epoch {epoch} loss {model.loss(x, y):.4f}")
os.makedirs(args.out_dir, exist_ok=True)
np.save(os.path.join(args.out_dir, "weights.npy"), model.w)
print(f"val_acc={model.accuracy(xv, yv):.4f}")
'''

PKG_MODEL = '''\
import numpy as np

from .layers.linear import Linear


def make(seed=0):
    return Linear(2, seed)
'''

PKG_LINEAR = '''\
import numpy as np

LR = 0.1


class Linear:
    def __init__(self, n, seed):
        self.w = np.random.default_rng(seed).normal(0, 0.1, n)

    def _p(self, x):
        return 1 / (1 + np.exp(-x @ self.w))

    def step(self, x, y):
        self.w -= LR * x.T @ (self._p(x) - y) / len(y)

    def loss(self, x, y):
        p = np.clip(self._p(x), 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    def accuracy(self, x, y):
        return float(np.mean((self._p(x) > 0.5) == y))
'''

PKG_LOADER = '''\
import os

import numpy as np


def load_split(root, split):
    d = np.load(os.path.join(root, f"{split}.npz"))
    return d["x"], d["y"]
'''


def test_package_layout_follows_imports_at_depth_and_links_the_ignored_data(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "pkg", {
        ".gitignore": "datasets/\noutputs/\n__pycache__/\n",
        "src/__init__.py": "",
        "src/train.py": PKG_TRAIN,
        "src/model.py": PKG_MODEL,
        "src/layers/__init__.py": '"""Layers."""\n',
        "src/layers/linear.py": PKG_LINEAR,
        "src/data/__init__.py": "from .loader import load_split\n",
        "src/data/loader.py": PKG_LOADER,
        "src/unused.py": "X = 1\n",
        "README.md": "# blobs\n",
    })
    save_blobs(root / "datasets" / "blobs" / "train.npz")
    save_blobs(root / "datasets" / "blobs" / "val.npz", seed=1)
    (root / "outputs").mkdir()
    (root / "outputs" / "weights.npy").write_bytes(b"an earlier run's output")
    before = snapshot_repo(root)

    res, text = init(root, command="python -m src.train --epochs 5 --seed {seed}")
    cfg = config(root)
    assert cfg["editable"] == ["src/train.py", "src/model.py", "src/layers/linear.py"]
    assert "src/data/loader.py" in cfg["protected"]  # data code is never edited, but its folder is no link
    assert cfg["links"] == ["datasets"]
    assert res.baseline is not None and res.baseline > 0.6
    assert "src/layers/linear.py — imported by src/model.py:3" in text
    assert "datasets — ignored by .gitignore:1 (datasets/)" in text
    assert "outputs — ignored by .gitignore:2 (outputs/); the code writes there" in text
    assert snapshot_repo(root) == before


# --- an exec'd config named on the command line, key=value overrides, data among tracked files ----------------

EXEC_TRAIN = '''\
import os
import sys

lr = 0.01
steps = 20
corpus = os.path.join("corpus", "tokens.txt")
for arg in sys.argv[1:]:
    if arg.endswith(".py"):
        exec(open(arg).read())
    else:
        key, value = arg.lstrip("-").split("=")
        globals()[key] = type(globals()[key])(value)
exec(open(os.path.join("settings", "late.py")).read())
words = open(corpus).read().split()
loss = 5.0 / (1 + lr * steps) + len(words) * 1e-4
print(f"final loss: {loss:.4f}")
'''


def test_exec_config_on_the_command_line_is_editable_and_the_data_file_linked(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ex", {
        ".gitignore": "*.txt\n",
        "train.py": EXEC_TRAIN,
        "configs/tiny.py": "lr = 0.05\nsteps = 40\n",
        "configs/big.py": "lr = 0.01\nsteps = 400\n",
        "settings/late.py": "steps = min(steps, 1000)\n",
        "corpus/README.md": "tokens.txt is made by a script\n",
    })
    (root / "corpus" / "tokens.txt").write_text("to be or not to be " * 50)
    (root / "corpus" / "other.txt").write_text("not read by train.py\n")
    res, text = init(root, command="python train.py configs/tiny.py --steps=30", metric="loss", goal="minimize")
    cfg = config(root)
    assert cfg["editable"] == ["train.py", "configs/tiny.py", "settings/late.py"]
    assert cfg["links"] == ["corpus/tokens.txt"]
    assert "configs/tiny.py — named on the command line" in text
    assert "settings/late.py — exec'd by train.py:13" in text
    assert res.baseline == pytest.approx(5.0 / (1 + 0.05 * 30) + 300 * 1e-4, abs=1e-3)


# --- argparse default naming a YAML file; the YAML names the data and the output folder ------------------------

YAML_TRAIN = '''\
import argparse
import os

import numpy as np
import yaml

p = argparse.ArgumentParser()
p.add_argument("--config", default="configs/base.yaml")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
with open(args.config) as f:
    cfg = yaml.safe_load(f)
pts = np.loadtxt(os.path.join(cfg["data"]["root"], cfg["data"]["file"]), delimiter=",")
err = abs(pts.mean() - cfg["train"]["lr"]) / cfg["train"]["epochs"]
print(f"mse: {err:.5f}")
'''

BASE_YAML = """\
data:
  root: raw
  file: points.csv
train:
  lr: 0.1
  epochs: 5
output_dir: checkpoints
"""


def test_yaml_named_by_an_argparse_default_is_editable_and_its_data_linked(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ya", {
        ".gitignore": "raw/\ncheckpoints/\n",
        "train.py": YAML_TRAIN,
        "configs/base.yaml": BASE_YAML,
        "configs/unrelated.yaml": "x: 1\n",
    })
    (root / "raw").mkdir()
    (root / "raw" / "points.csv").write_text("0.5,0.25\n0.75,1.0\n")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "last.ckpt").write_text("old")
    res, text = init(root, command="python train.py --seed {seed}")
    cfg = config(root)
    assert cfg["editable"] == ["train.py", "configs/base.yaml"]
    assert cfg["links"] == ["raw"]
    assert "configs/base.yaml — loaded by train.py:8" in text
    assert "checkpoints" in text and "(output_dir)" in text  # named, but only as where the run writes
    assert res.config.metric.name == "mse" and res.baseline is not None


# --- Hydra: the config directory, config groups, overrides on the command line -------------------------------

HYDRA_TRAIN = '''\
import hydra
from omegaconf import DictConfig

from models.mlp import build


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    model = build(cfg.model)
    print(f"val_loss={model.fit(cfg.optim.lr):.4f}")


if __name__ == "__main__":
    main()
'''


def test_hydra_config_dir_and_groups_are_editable(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "hy", {
        ".gitignore": "data/\n",
        "train.py": HYDRA_TRAIN,
        "models/__init__.py": "",
        "models/mlp.py": "HIDDEN = 32\n\ndef build(cfg):\n    return cfg\n",
        "conf/config.yaml": "defaults:\n  - model: mlp\n  - optim: sgd\ndata_dir: ${hydra:runtime.cwd}/data/digits\n",
        "conf/model/mlp.yaml": "hidden: 64\n",
        "conf/model/cnn.yaml": "channels: 16\n",
        "conf/optim/sgd.yaml": "lr: 0.1\nmomentum: 0.9\n",
        "docs/notes.yaml": "not: config\n",
    })
    (root / "data" / "digits").mkdir(parents=True)
    (root / "data" / "digits" / "train.csv").write_text("1,2\n")
    res, text = init(root, command="python train.py optim.lr=0.05 model=mlp", metric="val_loss", goal="minimize",
                     run=False)
    cfg = config(root)
    assert cfg["editable"] == ["train.py", "models/mlp.py", "conf/config.yaml", "conf/model/cnn.yaml",
                               "conf/model/mlp.yaml", "conf/optim/sgd.yaml"]
    assert cfg["links"] == ["data"]
    assert "conf/optim/sgd.yaml — config dir of train.py:7" in text
    assert res.baseline is None


# --- a fixed seed, no seed flag, a metric printed as prose --------------------------------------------------------

FIXED_SEED = '''\
import numpy as np

rng = np.random.default_rng(1234)
N_TEST = 540
correct = 375 + int(rng.integers(0, 1))
print("Finished Training")
print(f"Accuracy of the network on the {N_TEST} test images: {correct / N_TEST:.4f}")
'''


def test_fixed_seed_repo_with_a_prose_metric_gets_a_proposed_regex(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "fs", {"fit.py": FIXED_SEED})
    res, text = init(root, command="python fit.py", metric="accuracy", goal="maximize")
    assert res.config.command == "python fit.py"  # no seed flag to add: the command is the user's
    assert res.baseline == pytest.approx(0.6944)
    assert res.config.metric.regex is not None
    assert "metric.regex" in text and "Accuracy of the network on the 540 test images" in text


# --- a crashing baseline -------------------------------------------------------------------------------------

CRASH = '''\
import json

LR = 0.1
with open("settings.json") as f:
    cfg = json.load(f)
print(cfg["missing_key"])
print(f"acc={LR}")
'''


def test_a_crashing_baseline_says_why_and_with_command_metric_goal_is_configured_anyway(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "cr", {"train.py": CRASH, "settings.json": '{"lr": 0.1}\n'})
    with pytest.raises(NightlabError) as err:
        init(root, command="python train.py")
    msg = str(err.value)
    assert "KeyError" in msg and "missing_key" in msg and "last lines of its output" in msg
    assert 'print(cfg["missing_key"])' in msg  # the traceback's own lines, not just "exit code 1"
    assert not (root / "nightlab.toml").exists()

    res, text = init(root, command="python train.py", metric="acc", goal="maximize")
    assert (root / "nightlab.toml").exists() and res.crashed is not None
    assert "KeyError" in text and "wrote the config anyway" in text
    assert config(root)["editable"] == ["train.py", "settings.json"]


def test_a_baseline_that_downloads_its_data_says_which_host_and_the_ways_past_it(tmp_path: Path) -> None:
    """torchvision's `download=True` and the Hub fail in a job without network: init names the host and the line
    (repo-relative, not its temporary copy's path) and says how to get past it."""
    code = ('import urllib.request\n\nurllib.request.urlretrieve("https://data.nightlab-test.invalid/mnist.npz", '
            '"mnist.npz")\nprint("acc=0.9")\n')
    root = make_repo(tmp_path / "dl", {"train.py": code})
    with pytest.raises(NightlabError) as err:
        init(root, command="python train.py")
    msg = str(err.value)
    assert "could not reach data.nightlab-test.invalid (urllib.error.URLError) at train.py:3\n" in msg
    assert "sandbox.network = true" in msg and "untracked files are linked into every run" in msg
    assert "nightlab-init-" not in msg.split("last lines of its output")[0]


def test_a_baseline_that_prints_a_value_then_crashes_is_a_crash_not_a_baseline(tmp_path: Path) -> None:
    """The first epoch's loss printed before a crash was taken as the baseline (exit code 1, config written, the
    TUI said it was set up); the engine then failed that very run."""
    root = make_repo(tmp_path / "late", {"train.py": 'print("epoch 1 loss 0.9")\nraise RuntimeError("boom")\n'})
    with pytest.raises(NightlabError) as err:
        init(root)
    msg = str(err.value)
    assert "the baseline failed (exit code 1) after printing loss = 0.9" in msg and "RuntimeError" in msg, msg
    assert not (root / "nightlab.toml").exists()
    res, text = init(root, command="python train.py", metric="loss", goal="minimize")
    assert res.crashed is not None and "wrote the config anyway" in text


def test_the_cli_prints_what_it_linked_and_why(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "cli", {".gitignore": "*.npz\n", "train.py": (
        "import numpy as np\nd = np.load('blobs.npz')\nprint(f\"acc={(d['y'] == (d['x'][:, 0] > 0)).mean():.3f}\")\n")})
    save_blobs(root / "blobs.npz")
    p = subprocess.run([sys.executable, "-m", "nightlab", "init", "--yes"], cwd=root, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "linked into each experiment" in p.stdout
    assert "blobs.npz — ignored by .gitignore:1 (*.npz); train.py:2 names 'blobs.npz'" in p.stdout
    assert "train.py — the command runs it" in p.stdout


# --- data the code names in a way static reading cannot see ---------------------------------------------------

HIDDEN_PATH = '''\
import os

root = os.environ.get("INPUT_ROOT") or "".join(["in", "puts"])
rows = open(os.path.join(root, "rows.csv")).read().splitlines()
print(f"rows={len(rows)}")
print(f"acc={0.5 + len(rows) / 100:.3f}")
'''


def test_a_baseline_that_cannot_open_an_untracked_path_gets_it_linked_and_runs_again(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "hp", {"train.py": HIDDEN_PATH})
    (root / "inputs").mkdir()
    (root / "inputs" / "rows.csv").write_text("1\n2\n3\n")
    res, text = init(root, metric="acc")
    assert res.config.links == ["inputs"]
    assert res.baseline == pytest.approx(0.53)
    assert "the baseline could not open inputs" in text


# --- the real thing: nanoGPT as a user's checkout -------------------------------------------------------------


@pytest.mark.skipif(not (NANOGPT / "make-repo.sh").exists(), reason="../shared/repos/nanogpt is absent (a user's "
                    "clone of nightlab has no ../shared)")
def test_nanogpt_init_links_its_data_and_makes_the_config_file_editable(tmp_path: Path) -> None:
    dest = tmp_path / "ng"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(["bash", str(NANOGPT / "make-repo.sh"), str(dest)], check=True, capture_output=True, env=env,
                   timeout=120)
    p = subprocess.run([sys.executable, "-m", "nightlab", "init", "--yes", "--command",
                        "python train.py config/train_shakespeare_char_cpu.py", "--metric", "val loss", "--goal",
                        "minimize"], cwd=dest, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    cfg = config(dest)
    assert sorted(cfg["links"]) == ["data/shakespeare_char/meta.pkl", "data/shakespeare_char/train.bin",
                                    "data/shakespeare_char/val.bin"]
    assert {"config/train_shakespeare_char_cpu.py", "train.py", "model.py"} <= set(cfg["editable"])
    # what measures is estimate_loss, inside train.py, which also trains: no file is protected, the function is fixed
    assert cfg["protected"] == []
    py = {f: (dest / f).read_text() for f in cfg["editable"] if f.endswith(".py")}
    assert metric_functions(py, "val loss") == {"estimate_loss"}
    assert "metric: val loss = 2." in p.stdout
    assert "config/train_shakespeare_char_cpu.py — named on the command line" in p.stdout
    assert git(dest, "status", "--porcelain") == "?? nightlab.toml\n"  # the checkout itself is untouched


def test_a_run_that_exits_0_with_a_prose_metric_fails_with_a_regex_hint(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "pr", {"fit.py": FIXED_SEED})
    from helpers import write_config

    write_config(root, command=f"{sys.executable} fit.py", metric=MetricConfig(name="accuracy", goal="maximize"))
    p = subprocess.run([sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "1"], cwd=root,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    status = json.loads(subprocess.run([sys.executable, "-m", "nightlab", "status", "--json"], cwd=root,
                                       capture_output=True, text=True, timeout=60).stdout)
    base = status["experiments"][0]
    assert base["failure_class"] == "no_metric"
    assert "set metric.regex = " in base["diagnosis"] and "540 test images" in base["diagnosis"]


def test_init_says_the_gpus_it_sees_and_that_jobs_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "nvidia-smi").write_text("#!/bin/sh\nprintf '0\\n1\\n'\n")
    (bindir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    root = make_repo(tmp_path / "g", {"train.py": "print('acc=0.5')\n"})
    res, text = init(root, metric="acc", goal="maximize", run=False)
    assert 'GPUs found: 0, 1; each job gets one (slots.gpus_per_job = "auto")' in text
    assert res.config.slots.gpus_per_job == "auto"


# --- a monorepo example run from its own folder, a shared helper on sys.path, data ignored next to it ---------

MONO_MAIN = '''\
import sys

import numpy as np

sys.path.insert(0, "../common")
from utils import score  # noqa: E402

d = np.load("data/digits.npz")
print(f"accuracy: {score(d['x'], d['y']):.4f}")
'''


def test_a_command_that_cds_into_an_example_resolves_paths_from_there(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "mono", {
        "examples/mnist/.gitignore": "data/\n",
        "examples/mnist/main.py": MONO_MAIN,
        "examples/common/utils.py": "SCALE = 1.0\n\ndef score(x, y):\n    return float(((x[:, 0] > 0) == y).mean())\n",
        "README.md": "# examples\n",
    })
    save_blobs(root / "examples" / "mnist" / "data" / "digits.npz")
    res, text = init(root, command="cd examples/mnist && python main.py")
    assert res.config.editable == ["examples/mnist/main.py"]
    # the shared helper only computes the printed accuracy (traced from the print): it measures, so it is protected
    assert res.config.protected == ["examples/common/utils.py"]
    assert "examples/common/utils.py — computes the metric (score) and trains nothing" in text
    assert res.config.links == ["examples/mnist/data"]
    assert "ignored by examples/mnist/.gitignore:1 (data/)" in text
    assert res.baseline is not None


def test_a_shell_script_command_is_read_for_the_script_and_config_it_runs(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "sh", {
        "scripts/train.sh": "#!/bin/sh\nset -e\npython src/train.py \\\n  --config configs/a.yaml \"$@\"\n",
        "src/train.py": ("import sys\nimport yaml\ncfg = yaml.safe_load(open(sys.argv[2]))\n"
                         "print(f\"loss={cfg['lr']}\")\n"),
        "configs/a.yaml": "lr: 0.5\n",
        "configs/b.yaml": "lr: 0.1\n",
    })
    res, _ = init(root, command="bash scripts/train.sh")
    assert res.config.editable == ["scripts/train.sh", "src/train.py", "configs/a.yaml"]
    assert res.baseline == 0.5


def test_credentials_the_code_reads_are_never_linked(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "env", {".gitignore": ".env\napi_token.txt\n", "train.py": (
        "import os\nif os.path.exists('.env'):\n    open('.env').read()\nif os.path.exists('api_token.txt'):\n"
        "    open('api_token.txt').read()\nrows = open('rows.csv').read().split()\nprint(f'acc={len(rows) / 10}')\n")})
    (root / ".env").write_text("OPENAI_API_KEY=sk-not-for-jobs\n")
    (root / "api_token.txt").write_text("tok\n")
    (root / "rows.csv").write_text("1 2 3\n")
    res, _ = init(root, metric="acc")
    assert res.config.links == ["rows.csv"]
    assert res.baseline == pytest.approx(0.3)


def test_a_baseline_over_the_timeout_says_where_it_was(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "slow", {"train.py": (
        "import time\nprint('epoch 1 loss 0.9', flush=True)\ntime.sleep(30)\nprint('acc=1')\n")})
    with pytest.raises(NightlabError) as err:
        init(root, timeout=2.0)
    assert "exceeded 2 s" in str(err.value) and "  | epoch 1 loss 0.9" in str(err.value)
    assert not (root / "nightlab.toml").exists()
