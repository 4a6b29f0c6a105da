"""A training job that turns nightlab's own git against the user: it replaces its worktree's `.git` by a pointer to a
git folder of its own whose config runs a command (`core.fsmonitor`, consulted by every `git status`, and hooks).

Before, nightlab listed what a run wrote with `git -C <worktree> status` once the job ended — on the host, as the
user, outside every confinement layer — so the command ran there: a full escape (found by this test's attack, by
hand, at 13:50 on 2026-12-07). Now git in an experiment's worktree goes through the admin folder the repository
registered for it (`.git/worktrees/<name>`), which no job can write. Run with layer 0 and with the default sandbox,
as the user running the tests and, when that is root, as an unprivileged user made for the purpose; what is
asserted is what a user can observe: no marker written by the planted command, the run's own outputs kept as
artefacts, a truthful record, and a session that goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import git, load_bench, make_repo, python_for_user, write_config

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox tests need Linux (/proc, namespaces)")

escape = load_bench("escape")

# the job: plant a git folder of its own beside the code, point `.git` at it, and write an output worth keeping
HOSTILE = '''\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.parse_args()
MARKER = {marker!r}
evil = os.path.abspath(".evil-git")
for sub in ("objects", "refs/heads", "hooks"):
    os.makedirs(os.path.join(evil, sub), exist_ok=True)
open(os.path.join(evil, "HEAD"), "w").write("ref: refs/heads/main\\n")
touch = f"touch {{MARKER}}"
open(os.path.join(evil, "config"), "w").write(
    "[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n"
    f"\\tfsmonitor = \\"{{touch}}; false\\"\\n\\thooksPath = {{evil}}/hooks\\n")
for hook in ("post-commit", "post-index-change", "reference-transaction", "post-checkout"):
    path = os.path.join(evil, "hooks", hook)
    open(path, "w").write(f"#!/bin/sh\\n{{touch}}\\n")
    os.chmod(path, 0o755)
os.remove(".git")
open(".git", "w").write("gitdir: .evil-git\\n")
os.makedirs("out", exist_ok=True)
open(os.path.join("out", "ckpt.pt"), "wb").write(b"weights")
print("acc=0.5", flush=True)
'''


@pytest.mark.parametrize("who", ["self", "user"])
@pytest.mark.parametrize("unsafe", [True, False], ids=["layer0", "sandboxed"])
def test_a_job_cannot_run_commands_through_the_worktrees_git(place: Path, unsafe: bool, who: str) -> None:
    from nightlab.sandbox import isolate

    if not unsafe and not isolate.probe().best():
        pytest.skip("no sandbox layer on this machine")
    pw = None
    py, pythonpath = sys.executable, os.environ.get("PYTHONPATH", "")
    if who == "user":
        pw, why = escape.ensure_user()
        if pw is None:
            pytest.skip(why)
        py, pythonpath, why = python_for_user(escape.as_user(pw))
        if not py:
            pytest.skip(why)
    marker = place / "PWNED"
    home = place / "home"
    home.mkdir()
    root = make_repo(place / "p", {"train.py": HOSTILE.format(marker=str(marker))})
    write_config(root, timeout=60, command=f"{py} train.py --seed {{seed}}")
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-qm", "cfg")
    if pw is not None:
        subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", str(place)], check=True)
        (root / ".git").chmod(0o755)
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "NO_COLOR": "1",
           "PYTHONPATH": pythonpath, "XDG_DATA_HOME": str(home / "data"),
           "XDG_CACHE_HOME": str(home / "cache"), "GIT_CONFIG_GLOBAL": "/dev/null"}

    def nl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*escape.as_user(pw), py, "-m", "nightlab", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)

    run = ["run", "--mode", "autonomous", "--budget", "2", *(["--unsafe-no-sandbox"] if unsafe else [])]
    p = nl(*run)
    assert p.returncode == 0 and "Traceback" not in p.stderr + p.stdout, p.stdout + p.stderr
    assert not marker.exists(), "the job's git config ran a command outside the sandbox"
    status = json.loads(nl("status", "--json").stdout)
    ran = [e for e in status["experiments"] if e.get("metric") is not None]
    assert ran and ran[0]["metric"] == 0.5, (status["experiments"], nl("log", "1").stdout[-3000:])
    # what the run wrote is still kept (listed through the registered admin folder), the planted folder too
    kept = list((root / ".nightlab").rglob("ckpt.pt"))
    assert kept and kept[0].read_bytes() == b"weights"
    again = nl(*run)  # the session goes on
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert not marker.exists()


def test_a_reused_worktree_is_read_through_its_registered_git_and_never_linked_through(tmp_path: Path) -> None:
    """The workspace's own git calls in a worktree a job has written (reuse for a re-launch, the dirty check, an
    amend): its planted `.git` is never consulted, and a data folder it replaced by a link to elsewhere is neither
    made nor written through when the data links are laid again."""
    from nightlab.agent.workspace import Workspace

    marker = tmp_path / "PWNED"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = make_repo(tmp_path / "p", {"train.py": "print('acc=0.5')\n", ".gitignore": "data/\n"})
    (root / "data").mkdir()
    (root / "data" / "rows.csv").write_text("1\n")
    ws = Workspace(root)
    branch, sha = ws.materialise(1, 1, ws.head_commit(), {"train.py": "print('acc=0.6')\n"}, "a change",
                                 links=["data/rows.csv"])
    wt = ws.worktree_path(1)
    assert (wt / "data" / "rows.csv").is_symlink()
    # what a job may do to its worktree
    evil = wt / ".evil-git"
    for sub in ("objects", "refs/heads"):
        (evil / sub).mkdir(parents=True)
    (evil / "HEAD").write_text("ref: refs/heads/main\n")
    (evil / "config").write_text(f'[core]\n\tfsmonitor = "touch {marker}; false"\n')
    (wt / ".git").unlink()
    (wt / ".git").write_text("gitdir: .evil-git\n")
    shutil.rmtree(wt / "data")
    (wt / "data").symlink_to(elsewhere)
    (wt / "train.py").write_text("print('acc=0.7')\n")

    assert ws.checkout(1, sha, links=["data/rows.csv"]) == wt  # the registered HEAD is still the experiment's
    assert ws.worktree_dirty(1)
    new = ws.amend(1, branch)
    assert ws.read_file(new, "train.py") == "print('acc=0.7')\n" and ws.branch_commit(branch) == new
    assert not marker.exists()
    assert list(elsewhere.iterdir()) == []
