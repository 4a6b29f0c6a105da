"""The SLURM and Ray backends against the real schedulers on this machine: the runner contract (spec.json in,
status.json out, written by nightlab's wrapper on the node), what the scheduler says of queued, running and ended
jobs, and cancelling."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightlab.sandbox import runner
from nightlab.sandbox.backends import Backend, BackendKind, BackendSettings, Ending, SchedState, make_backend
from nightlab.sandbox.spec import SPEC_FILE, JobSpec

from helpers import until


def _spec(tmp_path: Path, name: str, code: str, timeout: float = 60) -> JobSpec:
    run_dir = tmp_path / name
    run_dir.mkdir(parents=True)
    spec = JobSpec(job_id=name, argv=[sys.executable, "-c", code], cwd=str(tmp_path), run_dir=str(run_dir),
                   env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}, timeout_s=timeout, grace_s=2,
                   isolation="none")
    spec.write(run_dir / SPEC_FILE)
    return spec




@pytest.fixture(params=["slurm", "ray"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    info = request.getfixturevalue(f"{request.param}_cluster")
    if request.param == "slurm":
        monkeypatch.setenv("SLURM_CONF", str(info["conf"]))
        yield make_backend(BackendSettings(kind=BackendKind.SLURM))
    else:
        yield make_backend(BackendSettings(kind=BackendKind.RAY, address=str(info["address"])))


def _name(tmp_path: Path, tag: str) -> str:
    return f"nightlab-test-{os.getpid()}-{abs(hash(str(tmp_path))) % 10**8}-{tag}"


def test_a_job_runs_under_the_wrapper_and_its_status_lands_in_the_run_dir(backend: Backend, tmp_path: Path) -> None:
    ok = _spec(tmp_path, "ok", "print('acc=0.75')")
    bad = _spec(tmp_path, "bad", "raise SystemExit(3)")
    ids = {backend.submit(s.run_dir, _name(tmp_path, s.job_id)): s for s in (ok, bad)}
    assert backend.find(_name(tmp_path, "ok")) in ids  # a submission is found again by its name
    until(lambda: all(runner.read_status(s.run_dir) is not None for s in ids.values()), "both statuses")
    until(lambda: all(i.state == SchedState.ENDED for i in backend.query(list(ids)).values()), "the scheduler done")
    by_name = {s.job_id: runner.read_status(s.run_dir) for s in ids.values()}
    assert by_name["ok"].state == "succeeded" and "acc=0.75" in runner.read_log(ok.run_dir)  # type: ignore[union-attr]
    assert by_name["bad"].state == "failed" and by_name["bad"].exit_code == 3  # type: ignore[union-attr]
    infos = backend.query(list(ids))
    assert {i.ending for i in infos.values()} == {Ending.COMPLETED}  # the wrapper itself ended normally both times
    unknown = "nightlab-no-such-job-1" if backend.kind == BackendKind.RAY else "999999"
    assert backend.query([unknown])[unknown].state == SchedState.UNKNOWN
    assert backend.find("nightlab-no-such-name") is None


def test_the_stop_file_stops_a_running_job_wherever_it_runs(backend: Backend, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "long", "import time\nprint('started', flush=True)\ntime.sleep(120)")
    job = backend.submit(spec.run_dir, _name(tmp_path, "long"))
    until(lambda: "started" in runner.read_log(spec.run_dir), "the job running")
    assert backend.query([job])[job].state == SchedState.RUNNING
    (Path(spec.run_dir) / runner.STOP_FILE).write_text("stopped by the user")
    until(lambda: runner.read_status(spec.run_dir) is not None, "the wrapper's status")
    status = runner.read_status(spec.run_dir)
    assert status is not None and status.state == "killed" and status.reason == "stopped by the user"
    until(lambda: backend.query([job])[job].state == SchedState.ENDED, "the scheduler done")


def test_cancelling_a_job_the_scheduler_has_not_started(slurm_cluster: dict[str, object], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """SLURM withdraws a queued job. (Ray cannot: stop_job leaves a PENDING job pending, ray-project/ray#58353; the
    stop file below is what keeps such a job from ever running.)"""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster["conf"]))
    backend = make_backend(BackendSettings(kind=BackendKind.SLURM, sbatch_args=["--begin=now+3600"]))
    spec = _spec(tmp_path, "never", "print('should not run')")
    job = backend.submit(spec.run_dir, _name(tmp_path, "never"))
    info = backend.query([job])[job]
    assert info.state == SchedState.QUEUED and info.reason == "BeginTime" and info.submitted_at is not None
    backend.cancel(job)
    until(lambda: backend.query([job])[job].state == SchedState.ENDED, "cancelled")
    assert backend.query([job])[job].ending == Ending.CANCELLED
    assert runner.read_status(spec.run_dir) is None and "should not run" not in runner.read_log(spec.run_dir)


def test_a_job_cancelled_while_queued_never_runs_even_if_the_scheduler_starts_it(backend: Backend,
                                                                                tmp_path: Path) -> None:
    spec = _spec(tmp_path, "late", "open('ran', 'w').write('x')\nprint('should not run')")
    (Path(spec.run_dir) / runner.STOP_FILE).write_text("cancelled by the user")
    backend.submit(spec.run_dir, _name(tmp_path, "late"))
    until(lambda: runner.read_status(spec.run_dir) is not None, "the wrapper's status")
    status = runner.read_status(spec.run_dir)
    assert status is not None and status.state == "killed" and status.reason == "cancelled by the user"
    assert "should not run" not in runner.read_log(spec.run_dir) and not (tmp_path / "ran").exists()
