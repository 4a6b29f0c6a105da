from __future__ import annotations

from pathlib import Path

import pytest

from nightlab.agent.workspace import Workspace, open_repo
from nightlab.errors import GitError

from helpers import git, make_repo, snapshot_repo


def test_not_a_repo_and_empty_repo(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not a git repository"):
        open_repo(tmp_path)
    git(tmp_path, "init", "-q")
    with pytest.raises(GitError, match="no commits yet"):
        open_repo(tmp_path)


def test_experiment_branches_leave_user_repo_untouched(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "p", {"train.py": "LR = 0.1\nprint('acc=0.5')\n", "data.csv": "1,2\n"})
    # the user has work in progress: a staged change and an untracked file
    (root / "notes.txt").write_text("mine\n")
    (root / "data.csv").write_text("1,2\n3,4\n")
    git(root, "add", "data.csv")
    before = snapshot_repo(root)

    ws = Workspace(root)
    base = ws.head_commit()
    br, sha = ws.materialise(1, 7, base, {"train.py": "LR = 0.3\nprint('acc=0.5')\n"}, "raise LR")
    assert br == "nightlab/7/1" and sha != base
    assert ws.read_file(sha, "train.py") == "LR = 0.3\nprint('acc=0.5')\n"
    assert "+LR = 0.3" in ws.diff(base, sha)
    # idempotent: the same call after a crash reuses the commit
    assert ws.materialise(1, 7, base, {"train.py": "LR = 0.3\nprint('acc=0.5')\n"}, "raise LR") == (br, sha)
    # a child on top of it, then a detached re-run worktree of the same commit
    br2, sha2 = ws.materialise(2, 7, sha, {"train.py": "LR = 0.2\nprint('acc=0.5')\n"}, "lower LR")
    wt = ws.checkout(3, sha2)
    assert (wt / "train.py").read_text().startswith("LR = 0.2")
    for i in (1, 2, 3):
        ws.prune(i)
    assert not ws.worktree_path(1).exists()
    assert ws.branch_exists(br) and ws.branch_exists(br2)  # branches stay queryable

    assert snapshot_repo(root) == before
    assert ".nightlab" in (root / ".git" / "info" / "exclude").read_text()
    assert "nightlab" not in (root / ".gitignore").read_text() if (root / ".gitignore").exists() else True


def test_promote_commits_only_touched_files(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "p", {"train.py": "LR = 0.1\n", "other.py": "X = 1\n"})
    ws = Workspace(root)
    base = ws.head_commit()
    _, sha = ws.materialise(1, 1, base, {"train.py": "LR = 0.3\n"}, "raise LR")
    # unrelated staged work of the user stays staged and uncommitted
    (root / "other.py").write_text("X = 2\n")
    git(root, "add", "other.py")
    new = ws.promote(base, sha, "raise LR\n\nwhy")
    assert new != base
    assert (root / "train.py").read_text() == "LR = 0.3\n"
    assert git(root, "log", "-1", "--format=%s") == "raise LR\n"
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == ["train.py"]
    assert "M  other.py" in git(root, "status", "--porcelain")


def test_promote_refuses_dirty_touched_file(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "p", {"train.py": "LR = 0.1\n"})
    ws = Workspace(root)
    base = ws.head_commit()
    _, sha = ws.materialise(1, 1, base, {"train.py": "LR = 0.3\n"}, "raise LR")
    (root / "train.py").write_text("LR = 0.2  # my edit\n")
    before = snapshot_repo(root)
    with pytest.raises(GitError, match=r"uncommitted changes in train.py"):
        ws.promote(base, sha, "raise LR")
    assert snapshot_repo(root) == before


def test_promote_after_user_moved_on(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "p", {"train.py": "LR = 0.1\n", "README.md": "a\n"})
    ws = Workspace(root)
    base = ws.head_commit()
    _, sha = ws.materialise(1, 1, base, {"train.py": "LR = 0.3\n"}, "raise LR")
    (root / "README.md").write_text("b\n")
    git(root, "commit", "-qam", "user work")
    ws.promote(base, sha, "raise LR")
    assert (root / "train.py").read_text() == "LR = 0.3\n" and (root / "README.md").read_text() == "b\n"
    # a conflicting change is refused with the reason
    _, sha2 = ws.materialise(2, 1, base, {"train.py": "LR = 0.9\n"}, "LR 0.9")
    with pytest.raises(GitError, match="no longer applies"):
        ws.promote(base, sha2, "LR 0.9")
