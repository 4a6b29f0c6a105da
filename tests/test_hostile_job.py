"""A hostile training job against the whole agent: `nightlab run` with the LLM policy, as the user would see it.

The committed train.py, on its baseline run, tries what issue 14 reproduced: it replaces its log by a link to the
user's SSH key, forges a `succeeded` status while it still runs, points the pid file at another process of the user,
then fails (exit 3). Afterwards the user must see the truth: the run recorded as failed, no key in `nightlab log`,
`status`, the store or any prompt sent to the model, no traceback, the other process alive, and the session usable.
Run with layer 0 (`--unsafe-no-sandbox`, where the job can reach the run dir) and with the default sandbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, Reply, tool_reply
from helpers import git, make_repo, write_config

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")

KEY_TEXT = "-----BEGIN OPENSSH PRIVATE KEY----- nightlab-test-secret-key-7f3a"

HOSTILE = '''\
import json, os, time
run_dir = os.path.dirname(os.path.dirname(os.environ["NIGHTLAB_JOB_PROGRESS"]))
print("step 1 loss 0.5", flush=True)
def plant(name, make):
    path = os.path.join(run_dir, name)
    try:
        if os.path.lexists(path):
            os.unlink(path)
        make(path)
        print("PLANTED", name, flush=True)
    except OSError as e:
        print("REFUSED", name, e.errno, flush=True)
plant("output.log", lambda p: os.symlink(os.path.expanduser("~/.ssh/id_rsa"), p))
forged = {"job_id": os.environ["NIGHTLAB_JOB_ID"], "state": "succeeded", "exit_code": 0, "signal": None,
          "started_at": 0.0, "ended_at": 1.0, "seconds": 1.0, "pid": 1, "pid_start_time": None,
          "isolation": [], "reason": ""}
plant("status.json", lambda p: open(p, "w").write(json.dumps(forged)))
victim = int(open(os.path.join(os.environ["HOME"], "victim.pid")).read())
plant("pid.json", lambda p: open(p, "w").write(json.dumps(
    {"wrapper_pid": victim, "wrapper_start": 0.0, "pid": victim, "start": 0.0})))
print("acc=0.99", flush=True)
time.sleep(0.5)
raise SystemExit(3)
'''


def _fix_nothing(req: dict) -> Reply:  # type: ignore[type-arg]
    names = [t["function"]["name"] for t in req.get("tools", [])]
    if "fix_failure" in names:
        return tool_reply("fix_failure", {"diagnosis": "cannot fix", "edits": []})
    return tool_reply("propose_experiment", {"title": "nothing", "rationale": "", "edits": []})


@pytest.mark.parametrize("unsafe", [True, False], ids=["layer0", "sandboxed"])
def test_hostile_job_cannot_fool_or_leak(tmp_path: Path, unsafe: bool) -> None:
    from nightlab.sandbox import isolate

    if not unsafe and not isolate.probe().best():
        pytest.skip("no sandbox layer on this machine")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(KEY_TEXT)
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])  # killed below
    (home / "victim.pid").write_text(str(victim.pid))
    root = make_repo(tmp_path / "p", {"train.py": HOSTILE})
    write_config(root, timeout=30)
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-qm", "cfg")
    env = {**os.environ, "HOME": str(home), "OPENAI_API_KEY": "sk-test", "NO_COLOR": "1"}

    def nl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=180)

    try:
        with FakeOpenAI(responder=_fix_nothing) as srv:
            run = ["run", "--mode", "autonomous", "--budget", "1", "--policy", "llm", "--model", "openai/m",
                   "--api-base", srv.url + "/v1", *(["--unsafe-no-sandbox"] if unsafe else [])]
            p = nl(*run)
            assert p.returncode == 0 and "Traceback" not in p.stderr + p.stdout, p.stderr
            prompts = json.dumps([r.body for r in srv.requests])
            status = json.loads(nl("status", "--json").stdout)
            base = status["experiments"][0]
            assert base["status"] == "failed", base  # the true outcome: exit 3, never the forged "succeeded"
            log = nl("log", str(base["id"]))
            assert log.returncode == 0 and "step 1 loss 0.5" in log.stdout  # what the job printed
            for text in (p.stdout, p.stderr, log.stdout, json.dumps(status), prompts):
                assert KEY_TEXT not in text
            for f in (root / ".nightlab").rglob("*"):
                if f.is_file() and not f.is_symlink():
                    assert KEY_TEXT.encode() not in f.read_bytes(), f
            assert victim.poll() is None  # the forged pid file pointed nightlab at it: never signalled
            again = nl(*run)  # the session is still usable
            assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    finally:
        victim.kill()
        victim.wait()
