"""`nightlab export trajectories`: JSONL chat records that match the store, with secrets and paths stripped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nightlab.agent.engine import open_store
from nightlab.agent.trajectories import scrub


def test_export_matches_the_store(tiny_project: Path, tmp_path: Path) -> None:
    run = [sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "5"]
    assert subprocess.run(run, cwd=tiny_project, capture_output=True).returncode == 0
    out = tmp_path / "traj.jsonl"
    env = {**os.environ, "HF_TOKEN": "hf_supersecretvalue123"}
    p = subprocess.run([sys.executable, "-m", "nightlab", "export", "trajectories", "-o", str(out)],
                       cwd=tiny_project, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    store = open_store(tiny_project)
    steps = [e for e in store.experiments() if e.kind not in ("baseline", "rerun")]
    assert [r["experiment_id"] for r in records] == [e.id for e in steps]
    assert steps, "the session proposed nothing"
    for r, e in zip(records, steps, strict=True):
        assert r["parent_id"] == e.parent_id and r["reward"] == e.reward and r["stage"] == e.stage
        assert r["duration_s"] == e.seconds and r["status"] == e.status
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert r["prompt"] == r["messages"][:2] and r["completion"] == r["messages"][2:]
        action = json.loads(r["completion"][0]["content"])
        assert action["title"] == e.title and action["edits"] == e.edits
        assert e.reward is not None and e.stage is not None
    text = out.read_text()
    assert str(tiny_project) not in text and "/tmp/" not in text


def test_scrub_removes_secrets_and_paths(tmp_path: Path) -> None:
    os.environ["NIGHTLAB_TEST_API_KEY"] = "abc123secretvalue"
    try:
        text = (f"key sk-abcdefghijklmnop and token=ghp_abcdefghijklmnop OPENAI_API_KEY=foo at {tmp_path}/x.py "
                "value abc123secretvalue")
        out = scrub(text, tmp_path)
        assert "sk-abc" not in out and "ghp_" not in out and "foo" not in out and "abc123secretvalue" not in out
        assert str(tmp_path) not in out and "./x.py" in out
    finally:
        del os.environ["NIGHTLAB_TEST_API_KEY"]
