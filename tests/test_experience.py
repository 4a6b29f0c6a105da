"""The experience store: every decision step recorded when it is made, its outcome when its run settles; the user's
store gathers features and outcomes of the projects that share them, never code, paths or secrets."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from nightlab.agent import experience
from nightlab.agent.config import ExperienceConfig, SearchConfig, SlotsConfig
from nightlab.agent.engine import open_store

from helpers import git, write_config

SECRET = "hf_notarealtokenbutsecret42"


def _run(root: Path, budget: int, env: dict[str, str] | None = None) -> None:
    p = subprocess.run([sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", str(budget)],
                       cwd=root, capture_output=True, text=True, env={**os.environ, **(env or {})})
    assert p.returncode == 0, p.stderr[-2000:]


def _project(root: Path, **overrides: object) -> Path:
    write_config(root, **overrides)
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "nightlab config")
    return root


def test_every_step_is_recorded_when_decided_and_completed_when_settled(tiny_repo: Path) -> None:
    # two jobs at once: steps are decided while other runs are still going (the hindsight trap)
    root = _project(tiny_repo, search=SearchConfig(parallel=2, noise_seeds=1, confirm=False),
                    slots=SlotsConfig(cpus=2))
    (root / "train.py").write_text((root / "train.py").read_text().replace(
        'LOG_EVERY = 1', 'LOG_EVERY = 1\nSAUCE_CODE_LINE = "do-not-leak-this-code"'))
    git(root, "commit", "-qam", "a line of code that must never leave the project")
    _run(root, 7, {"HF_TOKEN": SECRET})
    store = open_store(root)
    steps = store.steps()
    proposals = [e for e in store.experiments() if e.kind not in ("baseline", "rerun")]
    assert proposals, "the session proposed nothing"
    assert sorted(s["experiment_id"] for s in steps if s["experiment_id"]) == [e.id for e in proposals]
    events = store.events(limit=-1)
    finished_at = {ev["experiment_id"]: ev["t"] for ev in events if ev["kind"] in ("finished", "failed")}
    for s in steps:
        e = store.experiment(s["experiment_id"])
        assert s["state"]["s.bias"] == 1.0 and s["candidates"] and s["chosen"] is not None
        assert s["candidates"][s["chosen"]]["valid"] is True
        # the outcome is the experiment's own, recorded after its run ended
        assert s["reward"] == e.reward and s["stage"] == e.stage and s["seconds"] == e.seconds
        assert set(s["reward_parts"]) == {*experience.PARTS, *experience.REFERENCES}
        assert s["settled_t"] >= finished_at[e.id] >= s["t"]
        # the prompt an LLM would have been sent then, with the code, and no result that was not known yet
        user = s["messages"][1]["content"]
        assert "SAUCE_CODE_LINE" in user and "```python" in user
        for row in re.findall(r"^\| (\d+) \| [^|]* \| [^|]* \| ([^|]*) \| ([^|]*) \|", user, re.M):
            exp_id, status, metric = int(row[0]), row[1].strip(), row[2].strip()
            if metric != "-":
                assert finished_at[exp_id] < s["t"], f"step {s['id']} shows #{exp_id}'s result before it existed"
            if exp_id in finished_at and finished_at[exp_id] > s["t"]:
                assert status.split()[0] in ("queued", "running", "proposed", "approved"), (s["id"], row)
    overlapped = [s for s in steps if any(t > s["t"] for i, t in finished_at.items() if i < s["experiment_id"])]
    assert overlapped, "no step was decided while an earlier run was still going; the test proves nothing"

    # the user's store: the same steps as features and outcomes, nothing of the project's text
    rows = experience.user_steps()
    assert len(rows) == len(steps)
    assert {r["project"] for r in rows} == {experience.project_id(root)}
    assert [r["reward"] for r in rows] == [s["reward"] for s in steps]
    raw = b"".join(p.read_bytes() for p in experience.user_store_path().parent.glob("experience.db*"))
    for leak in ("do-not-leak", "SAUCE_CODE_LINE", "train.py", "LEARNING", "EPOCHS", str(root), SECRET,
                 "tmp/", "import "):
        assert leak.encode() not in raw, leak
    for r in rows:
        for c in r["candidates"]:
            assert set(c) == {"features", "valid"}
            assert all(re.fullmatch(r"[ms]\.[a-z_.]+", k) for k in c["features"]), c["features"]
        assert all(re.fullmatch(r"s\.[a-z_.]+", k) for k in r["state"])
        assert set(r["reward_parts"]) == set(experience.PARTS), "a metric value left the project"


def test_a_project_that_does_not_share_keeps_its_steps_to_itself(tiny_repo: Path) -> None:
    root = _project(tiny_repo, experience=ExperienceConfig(share=False),
                    search=SearchConfig(noise_seeds=1, confirm=False))
    _run(root, 3)
    assert open_store(root).steps(), "the project's own store records the steps all the same"
    path = experience.user_store_path()
    if path.exists():
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 0
