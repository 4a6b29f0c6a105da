"""The engine on a real scheduler (a single-node SLURM and a Ray head on this machine): submit, hibernate, the job
wakes the engine; kill the engine mid-job and wake it by hand; cancel; a failing job; a node that goes away.
Nothing lost, nothing run twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nightlab.agent.config import BackendConfig
from nightlab.agent.engine import open_store
from nightlab.agent.lock import ProjectLock

from helpers import TINY_TRAIN, git, make_repo, until, write_config

# waits in the worktree for a `go` file (the test decides when the job may end), then trains like TINY_TRAIN
GATED_TRAIN = "import os, time\nprint('started', flush=True)\nwhile not os.path.exists('go'):\n    time.sleep(0.1)\n" \
    + TINY_TRAIN.split('"""', 2)[2]


def nl(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=root, capture_output=True, text=True,
                          timeout=timeout)




@pytest.fixture(params=["slurm", "ray"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[BackendConfig]:
    info = request.getfixturevalue(f"{request.param}_cluster")
    if request.param == "slurm":
        monkeypatch.setenv("SLURM_CONF", str(info["conf"]))
        yield BackendConfig(kind="slurm")
    else:
        yield BackendConfig(kind="ray", address=str(info["address"]))


def project(path: Path, backend: BackendConfig, train: str = TINY_TRAIN) -> Path:
    root = make_repo(path, {"train.py": train})
    write_config(root, backend=backend)
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    return root


def session_state(root: Path) -> str:
    s = open_store(root).latest_session()
    return s.state if s else ""


def settled(root: Path) -> bool:
    return session_state(root) == "done" and not ProjectLock(root / ".nightlab").is_held()


def jobs_of(root: Path) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for j in open_store(root).jobs():
        out.setdefault(j.experiment_id, []).append(j)
    return out


def assert_run_again(root: Path, ending: str, *words: str) -> None:
    """Experiment 1's first attempt ended as the scheduler said (`ending`, recorded in an event with `words`), cost
    no budget, and its second attempt ran to the end."""
    (a, b) = jobs_of(root)[1]
    assert a.ending == ending and a.state == "ended" and b.ending is None
    store = open_store(root)
    e = store.experiment(1)
    assert e.run_result == "succeeded" and e.attempts == 2
    assert store.latest_session().runs_started == 1  # type: ignore[union-attr]
    messages = [str(ev["message"]) for ev in store.events()]
    assert any(all(w in m for w in words) for m in messages), messages


def test_submit_hibernate_and_the_jobs_wake_the_engine(backend: BackendConfig, tmp_path: Path) -> None:
    root = project(tmp_path / "p", backend)
    p = nl(root, "run", "--mode", "autonomous", "--budget", "2", "--detach")
    assert p.returncode == 0 and "hibernating" in p.stdout, p.stdout + p.stderr
    # it hibernated naming the scheduler's job (by now a fast job may already have woken it again)
    hibernations = [ev["message"] for ev in open_store(root).events() if ev["kind"] == "hibernate"]
    assert hibernations and f"({backend.kind} " in hibernations[0], hibernations
    # no engine runs now: each job's wrapper starts `nightlab wake` when it ends, until the budget is spent
    until(lambda: settled(root), "the session done, woken by its jobs", timeout=240)
    runs = jobs_of(root)
    assert sorted(runs) == [1, 2] and all(len(v) == 1 for v in runs.values())  # nothing lost, nothing twice
    for (job,) in runs.values():
        assert job.backend == backend.kind and job.sched_id and job.state == "ended"
        assert job.queued_s is not None and job.run_started is not None
    exps = {e.id: e for e in open_store(root).experiments()}
    assert exps[1].run_result == "succeeded" and exps[1].metric is not None and exps[1].status == "kept"
    assert exps[1].isolation  # the wrapper recorded the sandbox layers the node gave it


def test_kill_the_engine_mid_job_and_wake_it_by_hand(backend: BackendConfig, tmp_path: Path) -> None:
    root = project(tmp_path / "p", backend, GATED_TRAIN)
    engine = subprocess.Popen([sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "1"],
                              cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = root / ".nightlab" / "runs" / "1" / "output.log"
    until(lambda: log.exists() and "started" in log.read_text(), "the job running on the scheduler")
    engine.send_signal(signal.SIGKILL)
    engine.wait()
    # by hand, while the job still runs: the engine reconciles from the scheduler and hibernates again
    assert nl(root, "wake").returncode == 0
    (job,) = open_store(root).open_jobs()
    assert job.sched_state == "running" and job.remote
    assert session_state(root) == "hibernating"
    (root / ".nightlab" / "worktrees" / "1" / "go").touch()
    until(lambda: settled(root), "the session done after the job woke it")
    assert [len(v) for v in jobs_of(root).values()] == [1]  # the same job, not a second submission
    assert open_store(root).experiment(1).run_result == "succeeded"


def test_cancel_a_queued_job_and_a_job_that_fails(backend: BackendConfig, tmp_path: Path) -> None:
    held = backend.model_copy()
    if held.kind == "slurm":
        held.sbatch_args = ["--begin=now+3600"]  # SLURM holds it in its queue
    else:
        held.resources = {"nightlab_test_absent_resource": 1.0}  # no node has it: Ray keeps it pending
    root = project(tmp_path / "held", held)
    assert nl(root, "run", "--mode", "autonomous", "--budget", "1", "--detach").returncode == 0
    until(lambda: (j := open_store(root).open_jobs()) != [] and j[0].sched_state == "queued", "queued")
    status = json.loads(nl(root, "status", "--json").stdout)
    assert status["jobs"][0]["state"] == "queued" and status["jobs"][0]["running_s"] == 0.0
    assert nl(root, "stop", "1", "--yes").returncode == 0
    assert nl(root, "wake").returncode == 0
    until(lambda: settled(root), "the cancelled session done")
    e = open_store(root).experiment(1)
    assert e.run_result == "cancelled" and e.status == "cancelled"
    assert not (root / ".nightlab" / "runs" / "1" / "output.log").exists() or \
        "acc=" not in (root / ".nightlab" / "runs" / "1" / "output.log").read_text()

    broken = project(tmp_path / "broken", backend, "raise SystemExit('no data here')\n")
    assert nl(broken, "run", "--mode", "autonomous", "--budget", "1", "--detach").returncode == 0
    until(lambda: settled(broken), "the failing session done", timeout=180)
    e = open_store(broken).experiment(1)
    assert e.run_result == "failed" and "no data here" in (e.log_tail or "")
    assert [len(v) for v in jobs_of(broken).values()] == [1]


def _own_slurm(kind: str, tmp_path_factory: pytest.TempPathFactory,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A SLURM of this test's own (`kind` as clusters.py starts it), its slurm.conf in SLURM_CONF."""
    import clusters

    why = clusters.slurm_missing()
    if why:
        pytest.skip(why)
    base = tmp_path_factory.mktemp("own")
    info = clusters.acquire(kind, base)
    try:
        if "error" in info:
            pytest.fail(f"the private SLURM did not start: {info['error']}")
        monkeypatch.setenv("SLURM_CONF", str(info["conf"]))
        yield Path(str(info["conf"]))
    finally:
        clusters.release(kind, base)


@pytest.fixture
def private_slurm(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A SLURM of this test's own: taking its node down must not touch the jobs of tests running beside it."""
    yield from _own_slurm("slurm", tmp_path_factory, monkeypatch)


def test_a_slurm_node_that_goes_away_mid_job_is_recorded_and_the_run_requeued(private_slurm: Path,
                                                                             tmp_path: Path) -> None:
    root = project(tmp_path / "p", BackendConfig(kind="slurm"), GATED_TRAIN)
    assert nl(root, "run", "--mode", "autonomous", "--budget", "1", "--detach").returncode == 0
    first = root / ".nightlab" / "runs" / "1" / "output.log"
    until(lambda: first.exists() and "started" in first.read_text(), "the job running")
    subprocess.run(["scontrol", "update", "nodename=nl1", "state=down", "reason=nightlab-test"], check=True,
                   capture_output=True)
    # the scheduler's account (NODE_FAIL) decides: the attempt is recorded as a node failure and run again
    second = root / ".nightlab" / "runs" / "1.2" / "output.log"
    until(lambda: second.exists() and "started" in second.read_text(), "the second attempt running", timeout=180)
    (root / ".nightlab" / "worktrees" / "1" / "go").touch()
    until(lambda: settled(root), "the session done")
    assert_run_again(root, "node_failure", "node failure", "NODE_FAIL")


@pytest.fixture
def preempting_slurm(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A SLURM of this test's own whose `urgent` partition pre-empts (cancels) jobs of the default one."""
    yield from _own_slurm("slurm-preempt", tmp_path_factory, monkeypatch)


def test_a_slurm_job_pre_empted_by_an_urgent_one_is_recorded_and_run_again(preempting_slurm: Path,
                                                                          tmp_path: Path) -> None:
    """An urgent job takes the whole node: SLURM cancels nightlab's running job (PREEMPTED). The wrapper is told by
    SIGTERM and says so; the scheduler's account decides that it was a pre-emption, which runs the experiment again
    (at no budget) once the node is free."""
    root = project(tmp_path / "p", BackendConfig(kind="slurm"), GATED_TRAIN)
    assert nl(root, "run", "--mode", "autonomous", "--budget", "1", "--detach").returncode == 0
    first = root / ".nightlab" / "runs" / "1" / "output.log"
    until(lambda: first.exists() and "started" in first.read_text(), "the job running", timeout=120)
    urgent = subprocess.run(["sbatch", "--parsable", "--partition=urgent", "--cpus-per-task=2", "--output=/dev/null",
                             "--wrap", "sleep 8"], capture_output=True, text=True, check=True).stdout.strip()
    assert urgent.isdigit()
    second = root / ".nightlab" / "runs" / "1.2" / "output.log"
    until(lambda: second.exists() and "started" in second.read_text(), "the second attempt running", timeout=180)
    (root / ".nightlab" / "worktrees" / "1" / "go").touch()
    until(lambda: settled(root), "the session done", timeout=180)
    assert_run_again(root, "preempted", "preempted", "PREEMPTED")


def sentinel_alive(root: Path) -> bool:
    from nightlab.agent import sentinel

    return sentinel._held(root / ".nightlab" / sentinel.LOCK_NAME)


def _ancestor(pid: int, cmd_prefix: str) -> int | None:
    """The nearest ancestor of `pid` whose command line starts with `cmd_prefix` (Ray names its workers so)."""
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat[stat.rfind(")") + 2:].split()[1])
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            return None
        if cmd.startswith(cmd_prefix):
            return pid
    return None


def test_a_ray_job_whose_node_processes_die_is_recorded_and_the_run_requeued(ray_cluster: dict[str, object],
                                                                           tmp_path: Path) -> None:
    """What a node going away does to a Ray job, done to this job alone on the shared head: its job supervisor (the
    Ray worker that runs the entrypoint), the wrapper and the job die at once, by SIGKILL, leaving no status. Ray's
    account (FAILED: the supervisor actor died) decides: a node failure, run again as a second attempt."""
    import os

    from nightlab.sandbox import runner

    root = project(tmp_path / "p", BackendConfig(kind="ray", address=str(ray_cluster["address"]), watch_s=1.0),
                   GATED_TRAIN)
    assert nl(root, "run", "--mode", "autonomous", "--budget", "1", "--detach").returncode == 0
    first = root / ".nightlab" / "runs" / "1"
    until(lambda: (first / "output.log").exists() and "started" in (first / "output.log").read_text(),
          "the job running", timeout=180)
    pids = runner.read_pids(first)
    assert pids is not None
    supervisor = _ancestor(int(pids["wrapper_pid"]), "ray::JobSupervisor")
    assert supervisor is not None, "the wrapper runs under Ray's job supervisor"
    for pid in (supervisor, int(pids["wrapper_pid"])):
        os.kill(pid, signal.SIGKILL)
    os.killpg(int(pids["pid"]), signal.SIGKILL)  # the job leads its own process group
    # the engine hibernates: no wrapper lives to wake it, the watch it left behind does (nobody runs `wake` here)
    second = root / ".nightlab" / "runs" / "1.2" / "output.log"
    until(lambda: second.exists() and "started" in second.read_text(), "the second attempt running", timeout=180)
    assert not (first / "status.json").exists()  # nobody on the "node" lived to write one
    (root / ".nightlab" / "worktrees" / "1" / "go").touch()
    until(lambda: settled(root), "the session done", timeout=180)
    assert_run_again(root, "node_failure", "node failure", "Job supervisor actor died")
    assert "waking the engine" in (root / ".nightlab" / "sentinel.log").read_text()
    until(lambda: not sentinel_alive(root), "the watch gone with the session's last cluster job", timeout=30)


def test_a_scheduler_that_is_unreachable_for_now_is_asked_again_not_failed(tmp_path: Path) -> None:
    """A busy or unreachable scheduler keeps the experiment queued (no attempt, no budget spent) and says so."""
    import threading

    import clusters

    from nightlab.agent.config import load_config
    from nightlab.agent.engine import Engine, EngineOptions

    if clusters.ray_missing().startswith("the ray package"):
        pytest.skip(clusters.ray_missing())
    (port,) = clusters.free_ports(1)
    root = project(tmp_path / "p", BackendConfig(kind="ray", address=f"http://127.0.0.1:{port}"))
    engine = Engine(root, load_config(root), options=EngineOptions(mode="autonomous", budget=1, poll_s=0.1,
                                                                   unsafe_no_sandbox=True))
    t = threading.Thread(target=engine.run, daemon=True)
    t.start()
    store = open_store(root)
    until(lambda: any(ev["kind"] == "backend_wait" for ev in store.events()), "the wait reported", timeout=60)
    engine.stop()
    t.join(30)
    e = store.experiment(1)
    assert e.status == "queued" and e.attempts == 0 and e.run_result is None
    assert store.latest_session().runs_started == 0  # type: ignore[union-attr]
    assert all(j.state == "ended" and j.ending == "not_submitted" for j in store.jobs())



# a job run with layer 0 on the node (no sandbox: it can write its run dir) that tries to fool the engine while it
# runs: its log replaced by a link to a secret, a forged "succeeded" status; it waits for a `go` file, then fails
FORGER = '''\
import json, os, time
run_dir = os.path.dirname(os.path.dirname(os.environ["NIGHTLAB_JOB_PROGRESS"]))
print("step 1 loss 0.5", flush=True)
log = os.path.join(run_dir, "output.log")
os.unlink(log)
os.symlink(SECRET, log)
forged = {"job_id": os.environ["NIGHTLAB_JOB_ID"], "state": "succeeded", "exit_code": 0, "signal": None,
          "started_at": 0.0, "ended_at": 1.0, "seconds": 1.0, "pid": 1, "pid_start_time": None,
          "isolation": [], "reason": ""}
with open(os.path.join(run_dir, "status.json"), "w") as f:
    f.write(json.dumps(forged))
print("acc=0.99", flush=True)
while not os.path.exists("go"):
    time.sleep(0.1)
raise SystemExit(3)
'''


def test_a_job_on_a_node_cannot_forge_its_status_or_plant_its_log(backend: BackendConfig, tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("nightlab-test-secret-9c2e")
    root = project(tmp_path / "p", backend, FORGER.replace("SECRET", repr(str(secret))))
    p = nl(root, "run", "--mode", "autonomous", "--budget", "1", "--detach", "--unsafe-no-sandbox")
    assert p.returncode == 0, p.stdout + p.stderr
    run_dir = root / ".nightlab" / "runs" / "1"
    until(lambda: (run_dir / "status.json").exists(), "the forged status planted")
    # an engine woken while the job still runs (by hand, by cron) is not fooled: the scheduler still runs it
    woken = nl(root, "wake", timeout=180)
    assert woken.returncode == 0 and "Traceback" not in woken.stdout + woken.stderr, woken.stdout + woken.stderr
    assert open_store(root).experiment(1).run_result is None
    (root / ".nightlab" / "worktrees" / "1" / "go").touch()
    until(lambda: settled(root), "the session done after the job woke it", timeout=180)
    e = open_store(root).experiment(1)
    assert e.run_result == "failed" and e.status != "kept", (e.run_result, e.status, e.error)  # exit 3, not forged
    log = nl(root, "log", "1")
    assert "step 1 loss 0.5" in log.stdout and "nightlab-test-secret" not in log.stdout + (e.log_tail or "")


def test_a_losing_run_on_the_scheduler_is_stopped_early(backend: BackendConfig, tmp_path: Path) -> None:
    """Early stopping reaches a job on SLURM or Ray: its log is in the shared run folder, and the stop file makes its
    wrapper on the node stop it, recorded as stopped early with the evidence like a local run."""
    from test_early_stop import TRAIN, Kinds

    from nightlab.agent.config import AutonomyConfig, MetricConfig, load_config
    from nightlab.agent.engine import Engine, EngineOptions
    from nightlab.agent.states import RunResult, Status

    root = make_repo(tmp_path / "p", {"train.py": TRAIN.replace('"loser": 0.06', '"loser": 0.2')})
    write_config(root, backend=backend, metric=MetricConfig(name="final", goal="minimize"),
                 autonomy=AutonomyConfig(early_stop_check_s=0.5))
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "config")
    eng = Engine(root, load_config(root), options=EngineOptions(mode="autonomous", budget=3, poll_s=0.2),
                 policy=Kinds(["loser"]))
    eng.run()
    lost = next(e for e in eng.store.experiments() if e.title == "KIND = loser")
    assert lost.status == Status.STOPPED_EARLY and lost.run_result == RunResult.STOPPED_EARLY, \
        [ev["message"] for ev in eng.store.events()]
    assert eng.store.latest_job(lost.id).remote  # type: ignore[union-attr]
    assert max(int(p[0]) for p in lost.loss_curve) < 100
    assert [x for x in eng.store.events() if x["kind"] == "stopped_early" and x["experiment_id"] == lost.id]


def test_a_run_that_cannot_end_before_the_deadline_is_not_submitted(backend: BackendConfig, tmp_path: Path) -> None:
    """The deadline holds on a scheduler too: a proposal predicted to run an hour is not handed to SLURM or Ray
    when the session ends in ten minutes (it waits, queued, with the reason), while the runs that fit are."""
    import time

    from nightlab.agent.config import load_config
    from nightlab.agent.engine import Engine, EngineOptions
    from nightlab.agent.proposal import PolicyContext, Proposal
    from nightlab.agent.states import Status

    from helpers import ScriptedPolicy

    class Long(ScriptedPolicy):
        def propose(self, ctx: PolicyContext) -> Proposal | None:
            got = super().propose(ctx)
            if got is not None:
                got.predicted_s = 3600.0
            return got

    root = project(tmp_path / "p", backend)
    deadline = time.time() + 600
    eng = Engine(root, load_config(root), policy=Long(["0.1"]),
                 options=EngineOptions(mode="autonomous", budget=4, poll_s=0.2, deadline=deadline))
    eng.run()
    base = eng.store.experiment(1)
    assert base.run_result == "succeeded" and eng.store.latest_job(1).remote  # type: ignore[union-attr]
    long = next(e for e in eng.store.experiments() if e.title == "LR = 0.1")
    assert not eng.store.jobs(experiment_id=long.id) and long.status == Status.QUEUED
    why = [str(ev["message"]) for ev in eng.store.events() if ev["kind"] == "out_of_time"]
    assert any(f"#{long.id} not started: this run is predicted to take about 36" in w for w in why), why
    assert time.time() < deadline


def test_a_job_still_going_on_the_scheduler_at_the_deadline_is_withdrawn_and_requeued(
        backend: BackendConfig, tmp_path: Path) -> None:
    """The deadline holds for a job already handed to SLURM or Ray: one that outlives it (it waits for a file that
    never comes) is stopped through the stop file its wrapper polls on the node and re-queued for the next session;
    the session ends in time and nothing is left on the scheduler."""
    import threading
    import time

    from nightlab.agent.config import load_config
    from nightlab.agent.engine import Engine, EngineOptions
    from nightlab.agent.states import JobState, Status

    root = project(tmp_path / "p", backend, GATED_TRAIN)
    deadline = time.time() + 15
    eng = Engine(root, load_config(root),
                 options=EngineOptions(mode="autonomous", budget=2, poll_s=0.2, deadline=deadline))
    # a job the deadline failed to stop is let end a minute later, so a failure reads as one, not as a hang
    late = threading.Timer(75, lambda: (root / ".nightlab" / "worktrees" / "1" / "go").touch())
    late.start()
    try:
        eng.run()
    finally:
        late.cancel()
    assert time.time() < deadline + 60, "the session ended long after its deadline"
    (job,) = eng.store.jobs()
    assert job.remote and job.state == JobState.ENDED
    status = json.loads((Path(job.run_dir) / "status.json").read_text())
    assert status["state"] == "killed" and status["reason"] == "deadline"
    e = eng.store.experiment(1)
    assert e.status == Status.QUEUED, [ev["message"] for ev in eng.store.events()]
    assert [ev for ev in eng.store.events() if ev["kind"] == "deadline" and ev["experiment_id"] == 1]
    assert eng.store.latest_session().state == "done"  # type: ignore[union-attr]
