"""Test helpers: real git repositories in temp folders with tiny, fast training scripts (no torch).

A module of its own (not conftest) so that `from helpers import ...` works from any test folder."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

from nightlab.agent.policy.base import Edit, ExperimentView, PolicyBase, PolicyContext, Proposal
from nightlab.agent.policy.effective import Program, analyse

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_TASKS = REPO_ROOT.parent / "shared" / "tasks"

TINY_TRAIN = '''\
"""A tiny 'training' script: accuracy peaks at LR = 0.3 and grows with EPOCHS; prints a curve and a metric."""
import argparse
import math
import random

LR = 0.05
EPOCHS = 3
LOG_EVERY = 1

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
seed = p.parse_args().seed
random.seed(seed)
score = 0.9 - 0.25 * abs(math.log10(LR / 0.3)) - 0.3 / EPOCHS + random.uniform(-0.002, 0.002)
for step in range(1, EPOCHS + 1):
    print(f"step {step} loss {1.0 / step + (0.9 - score):.4f}")
print(f"acc={score:.4f}")
'''


BENCH_TRAIN = '''\
"""Synthetic task: score peaks at lr = 0.1 and grows with epochs; deterministic for a seed."""
import argparse
import math
import random
import time

CONFIG = {
    "lr": 0.01,
    "epochs": 4,
    "hidden": 16,
}

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
seed = p.parse_args().seed
random.seed(seed)
{slow}x = 0.9 - 0.2 * abs(math.log10(CONFIG["lr"] / 0.1)) - 0.4 / CONFIG["epochs"]
x += 0.0005 * math.log2(CONFIG["hidden"])
for epoch in range(CONFIG["epochs"]):
    print(f"epoch {epoch} loss {1.0 / (epoch + 1) + (1 - x):.4f}")
print(f"score={x + random.uniform(-0.002, 0.002):.4f}")
'''

BENCH_TASK_TOML = '''\
name = "{name}"
command = "python train.py"
metric = "score"
goal = "maximize"
metric_regex = 'score=([0-9.eE+-]+|nan|inf)'
baseline = 0.6
baseline_sd = 0.002
reference = 0.9
reference_note = "lr 0.1, many epochs"
seconds = 0.1
'''


def bench_task(dest: Path, name: str = "synthetic", slow_above_epochs: int = 0) -> Path:
    """A task folder in ../shared/tasks' format (train.py + task.toml) for bench/search.py. With
    `slow_above_epochs`, a configuration with more epochs sleeps a minute: past any timeout a test uses."""
    slow = f'if CONFIG["epochs"] > {slow_above_epochs}:\n    time.sleep(60)\n' if slow_above_epochs else ""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "train.py").write_text(BENCH_TRAIN.replace("{slow}", slow))
    (dest / "task.toml").write_text(BENCH_TASK_TOML.format(name=name))
    return dest


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "user", "GIT_AUTHOR_EMAIL": "user@example.com",
           "GIT_COMMITTER_NAME": "user", "GIT_COMMITTER_EMAIL": "user@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def tracked_repo(root: Path, files: Mapping[str, str]) -> list[str]:
    """Write `files` under `root` as a git repository with everything added and nothing committed (what `init` sees
    in a checkout); returns the tracked paths."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    return sorted(files)


def analysed(files: Mapping[str, str], command: str) -> Program:
    """How the effective-settings analysis reads `command` over `files` (no repository on disk)."""
    return analyse(command, lambda p: files.get(p, ""), lambda p: p in files, sorted(files))


def write_config(root: Path, **overrides: object) -> None:
    from nightlab.agent.config import MetricConfig, ProjectConfig, dump_config

    cfg = ProjectConfig(command=f"{sys.executable} train.py --seed {{seed}}",
                        metric=MetricConfig(name="acc", goal="maximize"), editable=["train.py"], timeout=60)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    (root / "nightlab.toml").write_text(dump_config(cfg))


def snapshot_repo(root: Path) -> dict[str, str]:
    """Everything of the user's repository that nightlab must not touch: HEAD, their refs, index, working tree."""
    gitdir = root / ".git"
    out: dict[str, str] = {"HEAD": (gitdir / "HEAD").read_text()}
    refs = git(root, "for-each-ref", "--format=%(refname) %(objectname)")
    out["refs"] = "\n".join(r for r in refs.splitlines() if not r.startswith("refs/heads/nightlab/"))
    index = gitdir / "index"
    out["index"] = hashlib.sha256(index.read_bytes()).hexdigest() if index.exists() else ""
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.startswith((".git/", ".nightlab")) or rel in (".git", "nightlab.toml") or not p.is_file():
            continue
        if "__pycache__" in rel:
            continue
        out["file:" + rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


class ScriptedPolicy(PolicyBase):
    """Proposes LR values in order; fixes nothing."""

    name = "scripted"

    def __init__(self, values: list[str]) -> None:
        self.values = list(values)
        self.fix_calls = 0

    def propose(self, ctx: PolicyContext) -> Proposal | None:
        if not self.values:
            return None
        v = self.values.pop(0)
        parent = ctx.best_id
        if v.endswith("@base"):  # the same change again, but from the baseline
            v, parent = v[:-5], ctx.baseline_id
        text = ctx.read_file(parent, "train.py")
        line = next(ln for ln in text.splitlines() if ln.startswith("LR = "))
        return Proposal(title=f"LR = {v}", rationale="try it", edits=[Edit("train.py", line, f"LR = {v}")],
                        knobs={"LR": float(v)}, parent_id=parent)

    def fix(self, ctx: PolicyContext, failed: ExperimentView) -> Proposal | None:
        self.fix_calls += 1
        return None


def until(cond: Callable[[], bool], what: str, timeout: float = 120) -> None:
    """Poll `cond` until it holds (AssertionError naming `what` after `timeout` seconds)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"not reached in {timeout:g} s: {what}")


def load_bench(name: str) -> ModuleType:
    """A script of bench/ as a module (`bench_<name>`), for tests that exercise what it measures."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO_ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[f"bench_{name}"] = mod
    spec.loader.exec_module(mod)
    return mod


def python_for_user(as_user: list[str], imports: str = "nightlab.cli, git") -> tuple[str, str, str]:
    """A Python an unprivileged user (run through the `as_user` prefix) may start that imports this checkout's
    nightlab and its packages (the venv's own interpreter may live under root's home), its PYTHONPATH, or "" and why
    not. The check runs a child of that Python too, as nightlab's jobs are."""
    import shutil
    import site
    import subprocess

    paths = os.pathsep.join([str(Path(__file__).resolve().parents[1]), *site.getsitepackages()])
    check = f"import subprocess, sys; subprocess.run([sys.executable, '-c', 'import {imports}'], check=True)"
    for py in dict.fromkeys([sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]):
        if py and subprocess.run([*as_user, py, "-c", check], capture_output=True, cwd="/",
                                 env={"PATH": os.defpath, "PYTHONPATH": paths}).returncode == 0:
            return py, paths, ""
    return "", "", f"no Python the unprivileged user may run imports {imports}"


def nightlab_as(who: str, owned: Sequence[Path], imports: str = "nightlab.cli, git") -> tuple[list[str], str, str]:
    """(command prefix, Python, PYTHONPATH) that run nightlab as `who`: "self", the user running the tests, or
    "user", an unprivileged user made for the test, who then owns `owned` (a repository's `.git` stays enterable).
    Skips the test where that user, or a Python it may run that imports `imports`, is not to be had."""
    import pytest

    if who == "self":
        return [], sys.executable, os.environ.get("PYTHONPATH", "")
    escape = load_bench("escape")
    pw, why = escape.ensure_user()
    if pw is None:
        pytest.skip(why)
    prefix = escape.as_user(pw)
    py, pythonpath, why = python_for_user(prefix, imports)
    if not py:
        pytest.skip(why)
    for mine in owned:
        subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(mine)], check=True)
        if (mine / ".git").is_dir():
            (mine / ".git").chmod(0o755)
    return prefix, py, pythonpath


def home_env(home: Path, pythonpath: str) -> dict[str, str]:
    """The environment of a user whose home is `home` (no config of the machine's own user leaks in)."""
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "NO_COLOR": "1", "PYTHONPATH": pythonpath,
            "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / ".cache"),
            "GIT_CONFIG_GLOBAL": "/dev/null"}
