"""Pretrained weights a job may read: the caches the user's own runs filled.

A job's home is hidden and it has no network, so a repository that starts from `from_pretrained("bert-base-uncased")`
or torchvision's `resnet18(weights="DEFAULT")` found neither the download nor the copy the user's own runs had
cached, and every run failed. The caches of weights — the Hugging Face hub cache and torch hub's — are laid into the
job read-only, never the folders beside them (Hugging Face keeps its `token` next to `hub/`), and where the job has
no network the hub is told to read them offline: what it does anyway when it cannot connect, without the retries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["job_env", "read_only_dirs"]


def _places(env: Mapping[str, str]) -> dict[str, str]:
    """The variable each library reads for its cache -> where that cache is for this user (as the libraries work it
    out: huggingface_hub's `HF_HUB_CACHE` under `HF_HOME` under `XDG_CACHE_HOME`; torch's `TORCH_HOME`)."""
    home = env.get("HOME") or os.path.expanduser("~")
    xdg = env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    hf_home = env.get("HF_HOME") or os.path.join(xdg, "huggingface")
    hub = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(hf_home, "hub")
    return {"HF_HUB_CACHE": hub, "TORCH_HOME": env.get("TORCH_HOME") or os.path.join(xdg, "torch")}


def read_only_dirs(env: Mapping[str, str]) -> list[str]:
    """The weight caches that exist here, to bind read-only into a job (torch's: only its `hub/`, where
    `torch.hub` and torchvision keep downloaded checkpoints)."""
    places = _places(env)
    dirs = [places["HF_HUB_CACHE"], os.path.join(places["TORCH_HOME"], "hub")]
    return [d for d in dirs if os.path.isdir(d)]


def job_env(env: Mapping[str, str], network: bool) -> dict[str, str]:
    """Variables that point a job at the caches `read_only_dirs` lays in (its environment keeps no `XDG_CACHE_HOME`
    or `HF_HOME` of the user's), offline where it has no network."""
    places = _places(env)
    out: dict[str, str] = {}
    if os.path.isdir(places["HF_HUB_CACHE"]):
        out["HF_HUB_CACHE"] = places["HF_HUB_CACHE"]
        if not network:
            out["HF_HUB_OFFLINE"] = "1"
    if os.path.isdir(os.path.join(places["TORCH_HOME"], "hub")):
        out["TORCH_HOME"] = places["TORCH_HOME"]
    return out
