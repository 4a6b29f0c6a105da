"""A kept experiment's checkpoints survive its worktree: real runs write `out/ckpt.pt` into their worktrees, the
engine prunes them, and what `status`, `promote` and the files on disk say is checked against what each run wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nightlab.agent import artifacts
from nightlab.agent.config import load_config
from nightlab.agent.engine import Engine, EngineOptions

from helpers import ScriptedPolicy, git, make_repo, write_config

KB = 1024
SAVES = '''\
import argparse
import math
import os
import random

LR = 0.05
EPOCHS = 3
CKPT_KB = 400

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
seed = p.parse_args().seed
random.seed(seed)
rows = open(os.path.join("data", "rows.csv")).read().split()
score = 0.9 - 0.25 * abs(math.log10(LR / 0.3)) - 0.3 / EPOCHS + random.uniform(-0.002, 0.002) + 0 * len(rows)
for step in range(1, EPOCHS + 1):
    print(f"step {step} loss {1.0 / step + (0.9 - score):.4f}")
os.makedirs("out", exist_ok=True)
with open(os.path.join("out", "ckpt.pt"), "wb") as f:
    f.write(f"LR={LR} seed={seed}\\n".encode().ljust(CKPT_KB * 1024, b"\\0"))
with open("samples.txt", "w") as f:
    f.write("generated\\n")
print(f"acc={score:.4f}")
'''


def project(tmp_path: Path, max_mb: int) -> Path:
    root = make_repo(tmp_path / "p", {"train.py": SAVES, ".gitignore": "*.pt\ndata/\n"})
    (root / "data").mkdir()
    (root / "data" / "rows.csv").write_text("1 2 3\n")
    write_config(root, links=["data"])
    with open(root / "nightlab.toml", "a") as f:
        f.write(f"\n[artifacts]\nmax_mb = {max_mb}\n")
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    return root


def nl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=root, capture_output=True, text=True,
                          timeout=120)


def test_kept_runs_keep_their_checkpoints_under_the_cap_until_discarded(tmp_path: Path) -> None:
    root = project(tmp_path, max_mb=1)  # room for two 400 KB checkpoints, not three
    eng = Engine(root, load_config(root), options=EngineOptions(mode="autonomous", budget=7),
                 policy=ScriptedPolicy(["0.15", "0.01", "0.3"]))  # better, worse (discarded), better again
    summary = eng.run()
    exps = {e.id: e for e in eng.store.experiments()}
    kept = [i for i, e in exps.items() if e.status == "kept" and e.kind != "rerun"]
    assert len(kept) == 3 and summary.best_id == kept[-1]
    assert not list((root / ".nightlab" / "worktrees").iterdir())  # every worktree went, as before
    stored = artifacts.read_all(root / ".nightlab")

    # the best's checkpoint is its own run's file, moved out of its worktree before the worktree went
    best = stored[summary.best_id]
    ckpt = root / ".nightlab" / "artifacts" / str(summary.best_id) / "out" / "ckpt.pt"
    assert best.state == "kept" and ckpt.read_bytes().startswith(b"LR=0.3 seed=0\n")
    assert [p for p, _ in best.files] == ["out/ckpt.pt", "samples.txt"]  # the linked data is no artefact
    # over the cap: the worst kept experiment (the baseline) made room; the others stay
    baseline = kept[0]
    assert stored[baseline].state == "evicted" and "artifacts.max_mb" in stored[baseline].why
    assert not (root / ".nightlab" / "artifacts" / str(baseline)).exists()
    assert stored[kept[1]].state == "kept"
    assert sum(a.bytes for a in stored.values() if a.state == "kept") <= 1024 * KB
    # discarded changes and seed re-runs keep nothing
    for i, e in exps.items():
        if e.status == "discarded" or e.kind == "rerun":
            assert i not in stored or stored[i].state != "kept"

    status = nl(root, "status")
    assert f"#{summary.best_id}: .nightlab/artifacts/{summary.best_id}/ (out/ckpt.pt, samples.txt; 400.0 KB)" \
        in status.stdout
    data = json.loads(nl(root, "status", "--json").stdout)
    row = next(x for x in data["experiments"] if x["id"] == baseline)
    assert row["artifacts"]["state"] == "evicted"

    p = nl(root, "promote", str(summary.best_id), "--yes")
    assert p.returncode == 0, p.stderr
    assert f"the files its run wrote stay in .nightlab/artifacts/{summary.best_id}/" in p.stdout
    assert not (root / "out").exists()  # promote commits the change; the checkpoint stays where it is
    assert ckpt.exists()


def test_a_checkpoint_larger_than_the_cap_is_not_kept_and_says_why(tmp_path: Path) -> None:
    root = project(tmp_path, max_mb=0)
    eng = Engine(root, load_config(root), options=EngineOptions(mode="autonomous", budget=1),
                 policy=ScriptedPolicy([]))
    eng.run()
    base = eng.ledger.baseline()
    assert base is not None and base.status == "kept"
    a = artifacts.read(root / ".nightlab", base.id)
    assert a is not None and a.state == "too_large" and a.describe() == "not kept: artifacts.max_mb is 0"
    assert not (root / ".nightlab" / "artifacts" / str(base.id)).exists()


def test_a_best_discarded_by_its_confirmation_loses_its_artefacts(tmp_path: Path) -> None:
    root = project(tmp_path, max_mb=10)
    eng = Engine(root, load_config(root), options=EngineOptions(mode="autonomous", budget=1),
                 policy=ScriptedPolicy([]))
    eng.session = eng._open_session()
    e = eng.store.add_experiment(session_id=eng.sid, title="a change", kind="hyperparameter", status="succeeded",
                                 metric=0.9, run_result="succeeded", seed=0)
    wt = eng.ws.checkout(e.id, eng.ws.head_commit(), ["data"])
    (wt / "out").mkdir()
    (wt / "out" / "ckpt.pt").write_bytes(b"weights")
    eng._prune(e.id)  # settled while its confirmation runs: kept
    assert artifacts.read(root / ".nightlab", e.id).state == "kept"  # type: ignore[union-attr]
    eng.store.update_experiment(e.id, status="discarded")  # the confirming re-run did not hold up
    eng.keeper.tidy()
    gone = artifacts.read(root / ".nightlab", e.id)
    assert gone is not None and gone.state == "discarded" and "discarded" in gone.why
    assert not (root / ".nightlab" / "artifacts" / str(e.id)).exists()
