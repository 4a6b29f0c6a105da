"""A repository that starts from downloaded weights or data, run by nightlab: what the user's own runs cached.

A job's home is hidden and it has no network, so `hf_hub_download(...)` / `from_pretrained(...)`, torch hub's
checkpoints and scikit-learn's fetchers found neither the download nor the user's cached copy: every run failed. The
caches are now laid into the job read-only (the hub offline), and what sits beside them — Hugging Face's `token` —
stays hidden.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from helpers import home_env, make_repo, nightlab_as

pytest.importorskip("huggingface_hub", reason="huggingface_hub comes with the finetune extra (in dev)")
pytest.importorskip("datasets", reason="datasets comes with the finetune extra (in dev)")
torch = pytest.importorskip("torch", reason="torch is in the dev extra")

SHA = "0123456789abcdef0123456789abcdef01234567"
TRAIN = '''\
import json, os, sys

import torch
from huggingface_hub import hf_hub_download
from sklearn.datasets import fetch_california_housing

config = json.load(open(hf_hub_download("tiny-org/tiny-model", "config.json")))
state = torch.hub.load_state_dict_from_url("https://download.example.org/models/tiny-0123abcd.pth", progress=False)
token = os.path.join(os.environ["HOME"], ".cache", "huggingface", "token")
from accelerate.commands.config.config_args import default_config_file
print("accelerate config", "read" if os.path.isfile(default_config_file) else "missing")
print("token", "readable" if os.path.exists(token) else "hidden")
housing = fetch_california_housing()
from datasets import load_dataset

toy = load_dataset("someone/toy")["train"].map(lambda row: {"c": row["a"] + row["b"]})  # map writes a cache file
print("acc", config["acc"] + float(state["bias"]) + len(housing.target) / 100 + sum(toy["c"]) / 1000)
'''


def _cached(home: Path) -> None:
    """What the user's own runs left in their caches: a hub snapshot, a torch hub checkpoint, and the login token."""
    hf = home / ".cache" / "huggingface"
    repo = hf / "hub" / "models--tiny-org--tiny-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SHA)
    (repo / "snapshots" / SHA).mkdir(parents=True)
    (repo / "snapshots" / SHA / "config.json").write_text(json.dumps({"acc": 0.5}))
    (hf / "token").write_text("hf_secret_token_of_the_user")
    (hf / "accelerate").mkdir()
    (hf / "accelerate" / "default_config.yaml").write_text("compute_environment: LOCAL_MACHINE\nnum_processes: 1\n")
    ckpt = home / ".cache" / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save({"bias": torch.tensor(0.25)}, ckpt / "tiny-0123abcd.pth")
    import joblib
    import numpy as np

    (home / "scikit_learn_data").mkdir()
    joblib.dump(np.ones((10, 9)), home / "scikit_learn_data" / "cal_housing_py3.pkz", compress=6)
    _prepared_dataset(hf / "datasets", home.parent / "toy.csv")


def _prepared_dataset(cache: Path, csv: Path) -> None:
    """`load_dataset("someone/toy")` as the user's own run left it: prepared Arrow files under the datasets cache
    (prepared here from a CSV by `datasets` itself, then placed where a hub dataset's files go)."""
    import shutil

    import datasets

    csv.write_text("a,b\n1,2\n3,4\n")
    built = datasets.load_dataset("csv", data_files=str(csv), cache_dir=str(cache.parent / "build"))["train"]
    src = Path(built.cache_files[0]["filename"]).parent
    dest = cache / "someone___toy" / "default" / "0.0.0" / "0123abcd"
    dest.mkdir(parents=True)
    info = json.loads((src / "dataset_info.json").read_text())
    (dest / "dataset_info.json").write_text(json.dumps({**info, "config_name": "default"}))
    shutil.copy(src / "csv-train.arrow", dest / "toy-train.arrow")
    shutil.rmtree(cache.parent / "build")


@pytest.mark.parametrize("who", ["self", "user"])
def test_a_job_reads_the_cached_weights_and_never_the_token(place: Path, who: str) -> None:
    from nightlab.sandbox import isolate

    if not isolate.probe().best():
        pytest.skip("no sandbox layer on this machine: the home is hidden only under one")
    home = place / "home"
    _cached(home)
    root = make_repo(place / "p", {"train.py": TRAIN})
    prefix, py, pythonpath = nightlab_as(who, [home, root],
                                         "nightlab.cli, git, torch, sklearn, huggingface_hub, datasets")
    env = home_env(home, pythonpath)

    def nl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, py, "-m", "nightlab", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=300)

    p = nl("init", "--yes", "--command", f"{py} train.py", "--metric", "acc", "--goal", "maximize")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    p = nl("run", "--mode", "autonomous", "--budget", "1")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    status = json.loads(nl("status", "--json").stdout)
    log = nl("log", "1").stdout
    ran = [e for e in status["experiments"] if e.get("metric") is not None]
    assert ran and ran[0]["metric"] == 0.86, log
    assert "token hidden" in log and "accelerate config read" in log
    assert "hf_secret_token_of_the_user" not in log
    assert (home / ".cache" / "huggingface" / "token").read_text() == "hf_secret_token_of_the_user"
    # the datasets cache is as the user left it: its lock and the map's cache were written in the run's mirror,
    # which went when the run was read
    assert not list((root / ".nightlab" / "runs").rglob("hf-datasets"))
    cached = sorted(p.relative_to(home).as_posix() for p in (home / ".cache" / "huggingface" / "datasets").rglob("*"))
    assert cached == [f".cache/huggingface/datasets/someone___toy{p}" for p in (
        "", "/default", "/default/0.0.0", "/default/0.0.0/0123abcd", "/default/0.0.0/0123abcd/dataset_info.json",
        "/default/0.0.0/0123abcd/toy-train.arrow")]


def test_only_the_download_caches_are_laid_in(tmp_path: Path) -> None:
    from nightlab.agent import download_caches

    home = tmp_path / "home"
    assert download_caches.read_only_dirs({"HOME": str(home)}) == []  # nothing cached: nothing laid in, nothing set
    assert download_caches.job_env({"HOME": str(home)}, network=False) == {}
    _cached(home)
    dirs = download_caches.read_only_dirs({"HOME": str(home)})
    hf = home / ".cache" / "huggingface"
    assert dirs == [str(hf / "hub"), str(home / ".cache" / "torch" / "hub"), str(home / "scikit_learn_data"),
                    str(hf / "accelerate"), str(hf / "datasets")]
    env = download_caches.job_env({"HOME": str(home)}, network=False)
    assert env == {"HF_HUB_CACHE": dirs[0], "HF_HUB_OFFLINE": "1", "TORCH_HOME": str(home / ".cache" / "torch"),
                   "SCIKIT_LEARN_DATA": dirs[2], "HF_HOME": str(hf)}
    assert "HF_HUB_OFFLINE" not in download_caches.job_env({"HOME": str(home)}, network=True)
    # the datasets cache: a mirror in the run's folder, its folders writable, its files links to the user's
    run = tmp_path / "run" / "out"
    mirror = download_caches.mirror_datasets_cache({"HOME": str(home)}, run)
    assert mirror == str(run / download_caches.DATASETS_MIRROR)
    arrow = Path(mirror) / "someone___toy" / "default" / "0.0.0" / "0123abcd" / "toy-train.arrow"
    assert arrow.is_symlink() and arrow.resolve() == (hf / "datasets").joinpath(*arrow.parts[-5:])
    assert download_caches.job_env({"HOME": str(home)}, network=False, datasets_mirror=mirror)["HF_DATASETS_CACHE"] \
        == mirror
    assert download_caches.mirror_datasets_cache({"HOME": str(tmp_path / "nobody")}, run) is None
    download_caches.drop_datasets_mirror(run)  # the links go, never what they point at
    assert not Path(mirror).exists() and (hf / "datasets" / "someone___toy").is_dir()
    assert sorted(p.name for p in (hf / "datasets").rglob("*.arrow")) == ["toy-train.arrow"]
    # the user's own places: HF_HOME, XDG_CACHE_HOME
    moved = tmp_path / "hf"
    (moved / "hub").mkdir(parents=True)
    assert download_caches.read_only_dirs({"HOME": str(home), "HF_HOME": str(moved)})[0] == str(moved / "hub")
