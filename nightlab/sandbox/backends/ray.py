"""Ray through its Jobs SDK (`ray.job_submission.JobSubmissionClient`, the dashboard's Jobs API).

The entrypoint is nightlab's job wrapper; the submission id is the run's name, so a submission made just before a
crash is found again and never submitted twice. Ray runs the entrypoint on a node under a job supervisor; a job
whose supervisor or node died is reported FAILED with a message saying so, which is recorded as a node failure
(safe to run again). The SDK is imported only when a project uses this backend (`pip install 'nightlab[ray]'`).
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

from nightlab.sandbox.backends import (
    BackendError,
    BackendKind,
    BackendSettings,
    Ending,
    SchedInfo,
    SchedState,
    is_transient,
    wrapper_argv,
)

# words in Ray's message of a FAILED job that mean the job never failed by itself: its node or supervisor went away
NODE_LOST = ("node", "supervisor actor died", "actor died", "raylet", "worker died", "unexpectedly", "died")


class RayBackend:
    kind = BackendKind.RAY

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self._client: Any = None

    @property
    def address(self) -> str:
        return self.settings.address or os.environ.get("RAY_ADDRESS", "")

    def client(self) -> Any:
        if self._client is None:
            if not self.address:
                raise BackendError("backend.address is not set (nor RAY_ADDRESS): the Ray dashboard, e.g. "
                                   "http://head-node:8265")
            try:
                from ray.job_submission import JobSubmissionClient
            except ImportError:
                raise BackendError("the Ray backend needs the ray package: pip install 'nightlab[ray]'") from None
            try:
                self._client = JobSubmissionClient(self.address)
            except Exception as e:  # the SDK raises ConnectionError, RuntimeError... with a useful message
                raise BackendError(f"cannot reach Ray at {self.address}: {_line(e)}", transient=True) from None
        return self._client

    def submit(self, run_dir: str, name: str) -> str:
        s = self.settings
        kwargs: dict[str, Any] = {
            "entrypoint": shlex.join(wrapper_argv(s.python or sys.executable, run_dir)),
            "submission_id": name,
            "entrypoint_num_cpus": max(1, s.cpus_per_job),
            "metadata": {"nightlab_run_dir": run_dir},
        }
        if s.gpus_per_job:
            kwargs["entrypoint_num_gpus"] = s.gpus_per_job
        if s.resources:
            kwargs["entrypoint_resources"] = dict(s.resources)
        if s.runtime_env:
            kwargs["runtime_env"] = dict(s.runtime_env)
        try:
            return str(self.client().submit_job(**kwargs))
        except BackendError:
            raise
        except Exception as e:
            raise BackendError(f"Ray refused the job {name}: {_line(e)}", transient=is_transient(_line(e))) from None

    def find(self, name: str) -> str | None:
        info = self.query([name]).get(name)
        return name if info is not None and info.state != SchedState.UNKNOWN else None

    def query(self, ids: list[str]) -> dict[str, SchedInfo]:
        out: dict[str, SchedInfo] = {}
        for job_id in ids:
            try:
                details = self.client().get_job_info(job_id)
            except BackendError:
                raise
            except Exception as e:
                text = _line(e)
                if "does not exist" in text or "404" in text or "not found" in text.lower():
                    out[job_id] = SchedInfo(SchedState.UNKNOWN, reason=text)
                    continue
                raise BackendError(f"cannot ask Ray about {job_id}: {text}") from None
            out[job_id] = _info(details)
        return out

    def cancel(self, job_id: str) -> None:
        try:
            self.client().stop_job(job_id)
        except BackendError:
            raise
        except Exception as e:
            if "does not exist" not in _line(e):
                raise BackendError(f"Ray could not stop {job_id}: {_line(e)}") from None

    def where(self, job_id: str) -> str:
        return f"ray {job_id}"


def _info(details: Any) -> SchedInfo:
    native = str(getattr(details.status, "value", details.status))
    message = str(getattr(details, "message", "") or "")
    # Ray's start_time is when the job was accepted (ms since the epoch); when the wrapper really started is in
    # the run dir (pid.json), which is where the engine takes it from
    start = getattr(details, "start_time", None)
    end = getattr(details, "end_time", None)
    info = SchedInfo(SchedState.UNKNOWN, native=native, reason=message,
                     node=str(getattr(details, "driver_node_id", "") or "")[:12],
                     submitted_at=start / 1000 if start else None, ended_at=end / 1000 if end else None)
    if native == "PENDING":
        info.state = SchedState.QUEUED
    elif native == "RUNNING":
        info.state = SchedState.RUNNING
    elif native == "SUCCEEDED":
        info.state, info.ending = SchedState.ENDED, Ending.COMPLETED
    elif native == "STOPPED":
        info.state, info.ending = SchedState.ENDED, Ending.CANCELLED
    elif native == "FAILED":
        lost = any(w in message.lower() for w in NODE_LOST) and getattr(details, "driver_exit_code", None) is None
        info.state, info.ending = SchedState.ENDED, Ending.NODE_FAILURE if lost else Ending.FAILED
    return info


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[-1] if text else type(e).__name__)[:300]
