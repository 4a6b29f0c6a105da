"""A full `nightlab run --policy llm` against a scripted OpenAI-compatible server on 127.0.0.1.

The path is the real CLI -> engine -> litellm -> HTTP -> server. The key lives only in the CLI's environment; the
test checks it never reaches a job's environment, the store, the logs or an export.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from fake_openai import FakeOpenAI, Reply, tool_reply
from helpers import TINY_TRAIN, git, make_repo, write_config

KEY = "sk-test-NIGHTLAB-SECRET-0123456789abcdef"


def _responder(values: list[str]):  # type: ignore[no-untyped-def]
    it = iter(values)

    def respond(req: dict) -> Reply:  # type: ignore[type-arg]
        names = [t["function"]["name"] for t in req.get("tools", [])]
        if "fix_failure" in names:
            return tool_reply("fix_failure", {"diagnosis": "not fixable here", "edits": []})
        user = req["messages"][1]["content"]
        cur = re.search(r"^LR = (\S+)$", user, re.M)
        v = next(it, None)
        if v is None or cur is None:
            return tool_reply("propose_experiment", {"title": "nothing", "rationale": "", "edits": []})
        return tool_reply("propose_experiment", {
            "title": f"set LR to {v}", "rationale": "the score peaks near 0.3", "expected_effect": "acc up",
            "edits": [{"path": "train.py", "search": f"LR = {cur.group(1)}", "replace": f"LR = {v}"}]})

    return respond


def test_llm_run_improves_and_never_leaks_the_key(tmp_path: Path) -> None:
    train = TINY_TRAIN.replace(
        "import argparse",
        "import argparse, os\nprint('ENV', sorted(k for k in os.environ if 'KEY' in k or 'TOKEN' in k))")
    root = make_repo(tmp_path / "p", {"train.py": train})
    write_config(root)
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-qm", "cfg")
    with FakeOpenAI(responder=_responder(["0.3", "0.2"])) as srv:
        env = {**os.environ, "OPENAI_API_KEY": KEY, "MY_SERVICE_TOKEN": KEY, "NO_COLOR": "1"}
        p = subprocess.run(
            [sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "5", "--policy", "llm",
             "--model", "openai/test-model", "--api-base", srv.url + "/v1"],
            cwd=root, env=env, capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, p.stderr
        assert srv.requests, "the model was never called"
        auth = {r.headers.get("authorization", "") for r in srv.requests}
        assert auth == {f"Bearer {KEY}"}  # the key goes to the model, in the header only
    status = json.loads(subprocess.run([sys.executable, "-m", "nightlab", "status", "--json"], cwd=root,
                                       capture_output=True, text=True, check=True).stdout)
    assert status["best"] is not None and status["baseline"] is not None
    assert status["best"]["metric"] > status["baseline"] + 0.1
    best = next(e for e in status["experiments"] if e["id"] == status["best"]["id"])
    assert best["hypothesis"] == "set LR to 0.3"
    # the key is nowhere on disk: store, logs, specs; and no job saw a KEY/TOKEN variable
    for f in (root / ".nightlab").rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    logs = [f.read_text() for f in (root / ".nightlab" / "runs").rglob("output.log")]
    assert logs and all("ENV []" in log for log in logs)
    export = subprocess.run([sys.executable, "-m", "nightlab", "export", "trajectories", "--format", "rewards"],
                            cwd=root, env=env, capture_output=True, text=True, check=True).stdout
    assert KEY not in export and export.strip()
    # each exported step's prompt is exactly what the model was sent for that answer, and the answer its tool call
    sent = [r.body["messages"] for r in srv.requests]
    records = [json.loads(line) for line in export.splitlines()]
    assert records
    for rec in records:
        assert rec["policy"] == "llm"
        assert any(rec["prompt"] == [{"role": m["role"], "content": m["content"]} for m in msgs] for msgs in sent)
        call = rec["completion"][0]["tool_calls"][0]["function"]
        assert call["name"] == "propose_experiment" and json.loads(call["arguments"])["title"].startswith("set LR")
    assert KEY not in p.stdout + p.stderr


def test_reaching_the_cost_budget_pauses_for_approval(tmp_path: Path) -> None:
    import time

    from nightlab.agent.engine import open_store
    from nightlab.agent.lock import ProjectLock

    root = make_repo(tmp_path / "p", {"train.py": TINY_TRAIN})
    with FakeOpenAI(responder=_responder(["0.3", "0.2", "0.25"])) as srv:
        from nightlab.agent.config import LLMConfig, SearchConfig

        # a model with a known price, so each call costs something; a tiny budget
        write_config(root, search=SearchConfig(policy="llm"),
                     llm=LLMConfig(model="openai/gpt-4o-mini", api_base=srv.url + "/v1", max_cost=1e-9))
        env = {**os.environ, "OPENAI_API_KEY": KEY}
        cmd = [sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "6", "--detach"]
        assert subprocess.run(cmd, cwd=root, env=env, capture_output=True, timeout=120).returncode == 0
        lock = ProjectLock(root / ".nightlab")
        store = open_store(root)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # jobs wake the engine; it ends up waiting for the human
            if any(a.kind == "budget" for a in store.approvals("pending")) and not lock.is_held() \
                    and not store.open_jobs():
                break
            time.sleep(0.2)
        session = store.latest_session()
        assert session is not None and session.state == "hibernating" and session.cost > 0
        pending = [a for a in store.approvals("pending") if a.kind == "budget"]
        assert pending and pending[0].payload["spent"] > 0
        assert any("approval" in c for c in session.wake_conditions)
        calls = len(srv.requests)
        out = subprocess.run([sys.executable, "-m", "nightlab", "status"], cwd=root, env=env, capture_output=True,
                             text=True, check=True).stdout
        assert "nightlab approve budget" in out
        # refusing the extension ends the session without another model call
        subprocess.run([sys.executable, "-m", "nightlab", "reject", "budget"], cwd=root, env=env, check=True,
                       capture_output=True)
        while time.monotonic() < deadline and (store.latest_session() or session).state != "done":
            time.sleep(0.2)
        assert (store.latest_session() or session).state == "done"
        assert len(srv.requests) == calls
