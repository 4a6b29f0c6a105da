"""A training script that logs the version it runs (`git rev-parse HEAD`, `git describe`, GitPython), run by nightlab.

A job cannot see the repository's `.git` (it is in the hidden home, or beside a private /tmp), so its worktree's
`.git` pointed nowhere and such a script failed every run, the baseline of `nightlab init` too ("not a git
repository"). A job now gets a read-only git folder of its own commit: HEAD, index and tags, the repository's
objects read through. Never the repository's config (a remote's URL may hold a token), and it can change nothing.
Run as the user running the tests and, when that is root, as an unprivileged user made for the purpose.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import git, home_env, make_repo, nightlab_as

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox tests need Linux (/proc, namespaces)")

TRAIN = '''\
import argparse, os, subprocess

import git

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.parse_args()
sha = subprocess.check_output(["git", "rev-parse", "HEAD"], text=True).strip()
dirty = subprocess.check_output(["git", "status", "--porcelain", "--untracked-files=no"], text=True)
described = subprocess.check_output(["git", "describe", "--tags", "--always"], text=True).strip()
print("commit", sha, "dirty", len(dirty.splitlines()), "describe", described)
here = git.Repo(os.path.dirname(os.path.abspath(__file__)), search_parent_directories=True)  # as W&B reads it
print("gitpython", git.Repo().head.commit.hexsha == sha, here.head.commit.hexsha == sha)
other = subprocess.run(["git", "-C", os.path.dirname(os.getcwd()), "rev-parse", "HEAD"], capture_output=True)
print("elsewhere", "refused" if other.returncode else "ours")
remote = subprocess.run(["git", "config", "--get", "remote.origin.url"], capture_output=True, text=True)
print("remote", repr(remote.stdout.strip()))
tagged = subprocess.run(["git", "tag", "planted-by-the-job"], capture_output=True, text=True)
print("tag", "refused" if tagged.returncode else "made")
print("acc=0.5")
'''


@pytest.mark.parametrize("who", ["self", "user"])
def test_a_job_reads_its_own_commit_and_nothing_of_the_repository_s_config(place: Path, who: str) -> None:
    from nightlab.sandbox import isolate

    if not isolate.probe().best():
        pytest.skip("no sandbox layer on this machine: the repository's .git is hidden only under one")
    home = place / "home"
    home.mkdir()
    root = make_repo(place / "p", {"train.py": TRAIN})
    git(root, "tag", "v1.2.0")
    git(root, "remote", "add", "origin", "https://me:sekret-token-123@git.example.org/me/p.git")
    head = git(root, "rev-parse", "HEAD").strip()
    prefix, py, pythonpath = nightlab_as(who, [home, root])
    env = home_env(home, pythonpath)

    def nl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, py, "-m", "nightlab", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=300)

    p = nl("init", "--yes", "--command", f"{py} train.py --seed {{seed}}", "--metric", "acc", "--goal", "maximize")
    assert p.returncode == 0 and "acc = 0.5" in p.stdout, p.stdout + p.stderr  # init's baseline ran too
    p = nl("run", "--mode", "autonomous", "--budget", "1")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    log = nl("log", "1").stdout
    assert f"commit {head} dirty 0 describe v1.2.0" in log, log[-3000:]
    for said in ("gitpython True True", "elsewhere refused", "remote ''", "tag refused"):
        assert said in log, (said, log[-3000:])
    assert "sekret-token-123" not in log
    tags = subprocess.run([*prefix, "git", "-C", str(root), "tag", "--list"], capture_output=True, text=True, env=env)
    assert tags.stdout.split() == ["v1.2.0"], tags
    assert json.loads(nl("status", "--json").stdout)["experiments"][0]["metric"] == 0.5
