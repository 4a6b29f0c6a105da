"""Edits never leave the worktree, and a change that cannot be committed never wedges a session.

A tracked symbolic link (`shared_cfg.py -> /elsewhere/shared_cfg.py`, or a folder `configs -> ../configs`) is
refused by name for every policy (both go through `apply_edits`), before anything is written; a commit that fails
anyway is recorded as a refused experiment, and a store left by an older nightlab with such an edit waiting for its
commit (the state that made every later `nightlab run` crash) is recovered by the next run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nightlab.agent.config import load_config
from nightlab.agent.edits import apply_edits
from nightlab.agent.engine import Engine, EngineOptions, open_store
from nightlab.agent.policy.base import Edit, ExperimentView, PolicyBase, PolicyContext, Proposal
from nightlab.agent.workspace import Workspace
from nightlab.errors import EditError

from fake_openai import FakeOpenAI, Reply, tool_reply
from helpers import TINY_TRAIN, git, make_repo, write_config

SHARED = "A = 1\n"


@pytest.fixture
def linked_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A project whose shared_cfg.py is a tracked link to a file outside it, and configs/ a link to a folder."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "configs").mkdir(parents=True)
    (elsewhere / "shared_cfg.py").write_text(SHARED)
    (elsewhere / "configs" / "base.py").write_text(SHARED)
    root = make_repo(tmp_path / "p", {"train.py": TINY_TRAIN, "local.py": SHARED})
    os.symlink(elsewhere / "shared_cfg.py", root / "shared_cfg.py")
    os.symlink("../elsewhere/configs", root / "configs")
    os.symlink("local.py", root / "alias.py")
    write_config(root, editable=["*.py", "configs/*.py"])
    git(root, "add", "-A")
    git(root, "commit", "-qm", "links")
    return root, elsewhere


def test_link_in_path_names_the_link(linked_repo: tuple[Path, Path]) -> None:
    root, elsewhere = linked_repo
    ws = Workspace(root)
    head = ws.head_commit()
    assert ws.link_in_path(head, "shared_cfg.py") == \
        f"is the symbolic link shared_cfg.py -> {elsewhere / 'shared_cfg.py'}, outside the worktree"
    assert ws.link_in_path(head, "configs/base.py") == \
        "passes through the symbolic link configs -> ../elsewhere/configs, outside the worktree"
    assert "inside the worktree" in (ws.link_in_path(head, "alias.py") or "")
    assert ws.link_in_path(head, "train.py") is None and ws.link_in_path(head, "new/file.py") is None
    with pytest.raises(EditError, match=r"edit 1: configs/base.py passes through the symbolic link configs"):
        apply_edits([Edit("configs/base.py", "", "A = 2\n")], lambda p: None, ["configs/*.py"], [],
                    lambda p: ws.link_in_path(head, p))


class OnePolicy(PolicyBase):
    """Proposes the given edits once (the same path every policy's proposal takes into the engine)."""

    name = "one"

    def __init__(self, edits: list[Edit]) -> None:
        self.edits: list[Edit] | None = edits

    def propose(self, ctx: PolicyContext) -> Proposal | None:
        edits, self.edits = self.edits, None
        return None if edits is None else Proposal(title="edit through a link", rationale="r", edits=edits)

    def fix(self, ctx: PolicyContext, failed: ExperimentView) -> Proposal | None:
        return None


@pytest.mark.parametrize("edit", [Edit("shared_cfg.py", "A = 1", "A = 2"), Edit("configs/base.py", "", "A = 3\n")],
                         ids=["linked-file", "linked-folder"])
def test_engine_refuses_edits_through_links(linked_repo: tuple[Path, Path], edit: Edit) -> None:
    root, elsewhere = linked_repo
    eng = Engine(root, load_config(root), options=EngineOptions(mode="autonomous", budget=3),
                 policy=OnePolicy([edit]))
    eng.run()
    assert (elsewhere / "shared_cfg.py").read_text() == SHARED
    assert (elsewhere / "configs" / "base.py").read_text() == SHARED
    refused = eng.store.experiments("status = 'rejected'")
    assert refused and "symbolic link" in (refused[0].error or "") and edit.path in (refused[0].error or "")


def test_llm_edit_through_a_link_is_one_clear_line(linked_repo: tuple[Path, Path]) -> None:
    root, elsewhere = linked_repo
    def respond(req: dict) -> Reply:  # type: ignore[type-arg]  # a stubborn model: the same edit every time
        names = [t["function"]["name"] for t in req.get("tools", [])]
        if "fix_failure" in names:
            return tool_reply("fix_failure", {"diagnosis": "-", "edits": []})
        return tool_reply("propose_experiment", {"title": "share a bigger A", "rationale": "r", "edits": [
            {"path": "shared_cfg.py", "search": "A = 1", "replace": "A = 5"}]})

    with FakeOpenAI(responder=respond) as srv:
        p = subprocess.run([sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "3",
                            "--policy", "llm", "--model", "openai/m", "--api-base", srv.url + "/v1"], cwd=root,
                           capture_output=True, text=True, timeout=180, env={**os.environ, "OPENAI_API_KEY": "x"})
    assert p.returncode == 0 and "Traceback" not in p.stderr + p.stdout, p.stderr
    assert (elsewhere / "shared_cfg.py").read_text() == SHARED
    lines = [ln for ln in p.stdout.splitlines() if "shared_cfg.py is the symbolic link" in ln]
    assert lines, p.stdout


def test_a_wedged_experiment_is_recovered_by_the_next_run(linked_repo: tuple[Path, Path]) -> None:
    """The state an older nightlab left: an experiment recorded with an edit through a link, never committed.
    Every later run re-applied it on recovery and crashed; now the next run refuses it and carries on."""
    root, elsewhere = linked_repo
    cfg = load_config(root)
    eng = Engine(root, cfg, options=EngineOptions(mode="autonomous", budget=2), policy=OnePolicy([]))
    eng.run()
    store = open_store(root)
    base = eng.ledger.baseline()
    assert base is not None
    wedged = store.add_experiment(session_id=base.session_id, parent_id=base.id, title="old wedged edit",
                                  status="queued", edits=[{"path": "shared_cfg.py", "search": "A = 1",
                                                           "replace": "A = 9"}], seed=0)
    p = subprocess.run([sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "1"],
                       cwd=root, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    e = store.experiment(wedged.id)
    assert e.status == "rejected" and "symbolic link" in (e.error or "")
    assert (elsewhere / "shared_cfg.py").read_text() == SHARED
    status = json.loads(subprocess.run([sys.executable, "-m", "nightlab", "status", "--json"], cwd=root,
                                       capture_output=True, text=True, check=True).stdout)
    assert status["session"]["state"] == "done"


def test_a_commit_that_fails_is_refused_not_fatal(tiny_project: Path) -> None:
    """A change git cannot take (a file where the tree has a folder) is recorded as refused; the run goes on."""
    (tiny_project / "data").mkdir()
    (tiny_project / "data" / "x.txt").write_text("x")
    git(tiny_project, "add", "-A")
    git(tiny_project, "commit", "-qm", "data")
    cfg = load_config(tiny_project)
    cfg.editable = ["train.py", "data"]
    eng = Engine(tiny_project, cfg, options=EngineOptions(mode="autonomous", budget=2),
                 policy=OnePolicy([Edit("data", "", "not a folder\n")]))
    eng.run()
    refused = eng.store.experiments("status = 'rejected'")
    assert refused and (refused[0].error or "").startswith("not committed: could not commit experiment")
    assert not (eng.ws.worktree_path(refused[0].id)).exists()
    assert not eng.ws.branch_exists(eng.ws.branch_name(eng.sid, refused[0].id))


def test_an_empty_editable_list_allows_no_edit() -> None:
    # the policies see no file to edit when `editable` is empty; an edit that reaches the check anyway is refused
    with pytest.raises(EditError, match="no file is editable"):
        apply_edits([Edit("train.py", "lr = 0.1", "lr = 0.2")], lambda p: "lr = 0.1\n", [], [])
    with pytest.raises(EditError, match="no file is editable"):
        apply_edits([Edit("new.py", "", "x = 1\n")], lambda p: None, [], [])
