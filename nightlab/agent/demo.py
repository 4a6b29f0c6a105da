"""The bundled example (`nightlab/examples/spirals`, a deliberately badly tuned MLP) as a fresh git repository:
what `nightlab demo` and `make run` improve. The user's own repositories are never created or committed here."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from nightlab.errors import NightlabError


def example_dir(name: str = "spirals") -> Path:
    return Path(str(resources.files("nightlab") / "examples" / name))


def make_demo_repo(dest: Path | None = None) -> Path:
    """Copy the bundled example into a fresh git repository and commit it."""
    src = example_dir()
    if not src.is_dir():
        raise NightlabError(f"the bundled example is missing at {src}; reinstall nightlab")
    repo = Path(dest) if dest else Path(tempfile.mkdtemp(prefix="nightlab-demo-"))
    repo.mkdir(parents=True, exist_ok=True)
    if any(repo.iterdir()):
        raise NightlabError(f"{repo}: not empty; choose a new folder for the demo")
    shutil.copytree(src, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@localhost",
           "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@localhost"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "commit", "-q", "-m", "spirals demo project"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env, capture_output=True)
    return repo


__all__ = ["example_dir", "make_demo_repo"]
