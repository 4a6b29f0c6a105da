"""What a job may read of the user's download caches: the weights and datasets their own runs fetched.

A job's home is hidden and it has no network, so a repository that starts from `from_pretrained("bert-base-uncased")`,
torchvision's `resnet18(weights="DEFAULT")` or scikit-learn's `fetch_california_housing()` found neither the download
nor the copy the user's own runs had cached, and every run failed. These caches are laid into the job read-only,
never the folders beside them (Hugging Face keeps its `token` next to `hub/`), each library is pointed at its cache
by the variable it reads (the job's environment keeps no `XDG_CACHE_HOME` or `HF_HOME` of the user's), and where the
job has no network the hub is told to read offline: what it does anyway when it cannot connect, without the retries.

The `datasets` library's cache (`load_dataset("imdb")` reads the prepared Arrow files there) cannot be laid in
read-only: loading takes a lock file at the cache's root and `.map()` writes its result beside the files it read,
so a read-only cache failed every job with `Read-only file system`. A job gets a mirror of it in its run folder
instead, in the part of its run folder it may write (`out/hf-datasets`): the same folders, writable, holding links to
the user's files (laid in read-only), so locks and map caches land there and the user's cache is never written. The
mirror goes when the run is read (`drop_datasets_mirror`): a map cache is worth nothing to a run that has ended.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DATASETS_MIRROR", "datasets_cache", "drop_datasets_mirror", "job_env", "mirror_datasets_cache",
           "read_only_dirs"]

DATASETS_MIRROR = "hf-datasets"  # the mirror's folder in a run's `out/`
_MIRROR_LIMIT = 100_000  # entries: a cache larger than this is not mirrored (its jobs would wait on the walk)


def _caches(env: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(the variable the library reads, its value, the folder to lay in) for each cache, where the libraries look:
    huggingface_hub's `HF_HUB_CACHE` under `HF_HOME` under `XDG_CACHE_HOME`; torch's `TORCH_HOME` (its `hub/`, where
    torch hub and torchvision keep checkpoints); scikit-learn's `SCIKIT_LEARN_DATA`; NLTK's `NLTK_DATA`; Accelerate's
    config under `HF_HOME` (the folder laid in is `accelerate/`: never `HF_HOME` itself, which holds the token)."""
    home = env.get("HOME") or os.path.expanduser("~")
    xdg = env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    hf_home = env.get("HF_HOME") or os.path.join(xdg, "huggingface")
    hub = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(hf_home, "hub")
    torch_home = env.get("TORCH_HOME") or os.path.join(xdg, "torch")
    sklearn = env.get("SCIKIT_LEARN_DATA") or os.path.join(home, "scikit_learn_data")
    nltk = (env.get("NLTK_DATA") or "").split(os.pathsep)[0] or os.path.join(home, "nltk_data")
    return [("HF_HUB_CACHE", hub, hub), ("TORCH_HOME", torch_home, os.path.join(torch_home, "hub")),
            ("SCIKIT_LEARN_DATA", sklearn, sklearn), ("NLTK_DATA", nltk, nltk),
            # not a download: `accelerate config`'s answers (`accelerate launch` reads `default_config.yaml` there;
            # without it a job ran on accelerate's defaults, not the processes and precision the user set up)
            ("HF_HOME", hf_home, os.path.join(hf_home, "accelerate"))]


def datasets_cache(env: Mapping[str, str]) -> str:
    """Where `datasets` keeps prepared datasets: `HF_DATASETS_CACHE`, else `datasets/` under `HF_HOME`."""
    home = env.get("HOME") or os.path.expanduser("~")
    hf_home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"),
                                                 "huggingface")
    return env.get("HF_DATASETS_CACHE") or os.path.join(hf_home, "datasets")


def read_only_dirs(env: Mapping[str, str]) -> list[str]:
    """The caches that exist here, to bind read-only into a job (the datasets cache is what its mirror links to)."""
    return [folder for folder in [*(f for _, _, f in _caches(env)), datasets_cache(env)] if os.path.isdir(folder)]


def mirror_datasets_cache(env: Mapping[str, str], out_dir: Path) -> str | None:
    """Build the job's mirror of the datasets cache in `out_dir` (the part of the run folder a job writes): its
    folders, with a link to each file (a folder of raw downloads linked whole: loading a prepared dataset never writes
    there). None where there is no cache, it is larger than a job should wait for, or the mirror cannot be made (the
    job then runs without it)."""
    src = datasets_cache(env)
    if not os.path.isdir(src):
        return None
    dest = out_dir / DATASETS_MIRROR
    made = 0
    try:
        for here, dirs, files in os.walk(src):
            rel = os.path.relpath(here, src)
            target = dest / rel
            target.mkdir(parents=True, exist_ok=True)
            for name in list(dirs):
                if name == "downloads" or os.path.islink(os.path.join(here, name)):
                    dirs.remove(name)
                    os.symlink(os.path.join(here, name), target / name)
            for name in files:
                if not name.endswith(".lock"):
                    os.symlink(os.path.join(here, name), target / name)
            made += len(dirs) + len(files)
            if made > _MIRROR_LIMIT:
                raise OverflowError(made)
    except (OSError, OverflowError):
        return None
    return str(dest)


def drop_datasets_mirror(out_dir: Path) -> None:
    """Remove a run's mirror (its links, locks and map caches; never what the links point at)."""
    mirror = out_dir / DATASETS_MIRROR
    if mirror.is_dir() and not mirror.is_symlink():
        shutil.rmtree(mirror, ignore_errors=True)


def job_env(env: Mapping[str, str], network: bool, datasets_mirror: str | None = None) -> dict[str, str]:
    """Variables that point a job at the caches `read_only_dirs` lays in (and the datasets cache at its mirror), the
    hub and `datasets` offline where it has no network."""
    out = {name: value for name, value, folder in _caches(env) if os.path.isdir(folder)}
    if datasets_mirror is not None:
        out["HF_DATASETS_CACHE"] = datasets_mirror
        if not network:
            out["HF_DATASETS_OFFLINE"] = "1"
    if "HF_HUB_CACHE" in out and not network:
        out["HF_HUB_OFFLINE"] = "1"
    return out
