"""What a job may read of the user's download caches: the weights and datasets their own runs fetched.

A job's home is hidden and it has no network, so a repository that starts from `from_pretrained("bert-base-uncased")`,
torchvision's `resnet18(weights="DEFAULT")` or scikit-learn's `fetch_california_housing()` found neither the download
nor the copy the user's own runs had cached, and every run failed. These caches are laid into the job read-only,
never the folders beside them (Hugging Face keeps its `token` next to `hub/`), each library is pointed at its cache
by the variable it reads (the job's environment keeps no `XDG_CACHE_HOME` or `HF_HOME` of the user's), and where the
job has no network the hub is told to read offline: what it does anyway when it cannot connect, without the retries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["job_env", "read_only_dirs"]


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


def read_only_dirs(env: Mapping[str, str]) -> list[str]:
    """The caches that exist here, to bind read-only into a job."""
    return [folder for _, _, folder in _caches(env) if os.path.isdir(folder)]


def job_env(env: Mapping[str, str], network: bool) -> dict[str, str]:
    """Variables that point a job at the caches `read_only_dirs` lays in, the hub offline where it has no network."""
    out = {name: value for name, value, folder in _caches(env) if os.path.isdir(folder)}
    if "HF_HUB_CACHE" in out and not network:
        out["HF_HUB_OFFLINE"] = "1"
    return out
