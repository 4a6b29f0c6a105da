"""What a command reaches and which untracked paths its code names: the reading behind `init`, on the shapes real
training code takes (launchers, `-m` packages, relative and by-name imports, option aliases, formatted paths)."""

from __future__ import annotations

from pathlib import Path

from nightlab.agent import code_reach
from nightlab.agent.code_reach import PathRef
from nightlab.agent.data_links import Candidate, plan


def tree(root: Path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return sorted(files)


def test_launchers_and_module_runs_find_the_script(tmp_path: Path) -> None:
    tracked = tree(tmp_path, {"train.py": "", "pkg/__init__.py": "", "pkg/cli/__init__.py": "",
                              "pkg/cli/__main__.py": "from pkg.cli import helpers\n", "pkg/cli/helpers.py": "LR = 1\n",
                              "cfg/ds.json": "{}"})
    for cmd in ("torchrun --standalone --nproc_per_node=2 train.py", "accelerate launch train.py --x 1",
                "uv run python train.py", "CUDA_VISIBLE_DEVICES=0 python train.py"):
        assert code_reach.reach(tmp_path, tracked, cmd).entry == "train.py", cmd
    r = code_reach.reach(tmp_path, tracked, "deepspeed --num_gpus 1 -m x || python -m pkg.cli --ds_config=cfg/ds.json")
    assert r.entry == "pkg/cli/__main__.py"
    assert list(r.files) == ["pkg/cli/__main__.py", "cfg/ds.json", "pkg/cli/helpers.py"]


def test_relative_and_by_name_imports_are_followed(tmp_path: Path) -> None:
    tracked = tree(tmp_path, {
        "app/train.py": "from .models import build\nfrom . import schedule\nimport importlib\n"
                        "m = importlib.import_module('app.models.heads.linear')\n",
        "app/__init__.py": "",
        "app/models/__init__.py": "from .backbone import Net\n\ndef build():\n    return Net()\n",
        "app/models/backbone.py": "from ..layers import norm\n",
        "app/models/heads/linear.py": "",
        "app/layers/norm.py": "EPS = 1e-5\n",
        "app/layers/__init__.py": "",
        "app/schedule.py": "WARMUP = 10\n",
        "app/unused.py": "",
    })
    r = code_reach.reach(tmp_path, tracked, "python -m app.train")
    assert set(r.files) == {"app/train.py", "app/models/__init__.py", "app/models/backbone.py",
                            "app/models/heads/linear.py", "app/layers/norm.py", "app/schedule.py"}
    assert r.files["app/layers/norm.py"] == "imported by app/models/backbone.py:1"


def test_an_option_alias_or_dest_that_names_an_output_marks_its_default_as_written(tmp_path: Path) -> None:
    tracked = tree(tmp_path, {"train.py": (
        "import argparse\np = argparse.ArgumentParser()\np.add_argument('-o', '--out-dir', default='results_a')\n"
        "p.add_argument('-s', dest='save_path', default='results_b')\n"
        "p.add_argument('-d', '--data', default='inp')\n")})
    refs = {r.text: r for r in code_reach.reach(tmp_path, tracked, "python train.py").refs}
    assert refs["results_a"].output and refs["results_a"].role == "out_dir"
    assert refs["results_b"].output and refs["results_b"].role == "save_path"
    assert not refs["inp"].output


def test_formatted_and_joined_paths_name_files_inside_tracked_folders(tmp_path: Path) -> None:
    tracked = tree(tmp_path, {"train.py": (
        "import os\nfrom pathlib import Path\nsplit = 'train'\nroot = Path('corpora')\n"
        "x = open(f'shards/{split}_000.bin')\ny = open(root / 'wiki' / 'vocab.json')\n"
        "z = open('%s.idx' % split)\nlog = open(os.path.join('logs', f'{split}.txt'), 'w')\n")})
    refs = code_reach.reach(tmp_path, tracked, "python train.py").refs
    cands = [Candidate("shards/train_000.bin", False), Candidate("shards/valid_000.bin", False),
             Candidate("corpora/wiki/vocab.json", False), Candidate("corpora/other/vocab.json", False),
             Candidate("logs/train.txt", False), Candidate("notes.txt", False), Candidate("x.idx", False)]
    got = plan(cands, refs)
    # `f"shards/{split}_000.bin"` names every shard; `"%s.idx" % split` says only an extension: it names no file
    assert got.paths == ["shards/train_000.bin", "shards/valid_000.bin", "corpora/wiki/vocab.json"]
    assert [s.path for s in got.skipped] == ["logs/train.txt"]


def test_a_folder_named_without_its_files_is_linked_whole_unless_files_in_it_are_named() -> None:
    mnist = [Candidate("data/MNIST", True), Candidate("data/cifar", True)]
    assert plan(mnist, [PathRef("data", "train.py:3", role="root")]).paths == ["data/MNIST", "data/cifar"]
    named = [Candidate("data/a/train.bin", False), Candidate("data/a/input.txt", False)]
    refs = [PathRef("data", "train.py:1"), PathRef("a", "config.py:2"), PathRef("train.bin", "train.py:5")]
    assert plan(named, refs).paths == ["data/a/train.bin"]  # input.txt is the prepare script's, not train.py's
