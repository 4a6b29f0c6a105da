"""SLURM through its own commands: `sbatch` to submit, `squeue` (every state, while slurmctld remembers the job) and
`sacct` (once it has forgotten, where accounting is on) to ask, `scancel` to cancel.

The batch script is a single `exec` of nightlab's job wrapper, so SLURM's signals (a cancel, a pre-emption, a node
going down, its time limit) reach the wrapper, which stops the job's process tree and records how it ended. Jobs are
submitted with `--no-requeue`: when a node fails, the engine decides whether to run the experiment again (in a new
run dir, as a new attempt), so SLURM never runs one attempt twice behind nightlab's back. Only the names of a few
harmless variables are exported to the job (`--export`), never a value that looks like a secret: the wrapper gets
the job's own environment from `spec.json`.
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import time
from pathlib import Path

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
from nightlab.sandbox.isolate import is_secret_name
from nightlab.sandbox.spec import SPEC_FILE, JobSpec

SCRIPT = "job.sbatch"
SCHEDULER_LOG = "scheduler.log"  # what SLURM itself prints for the job (the job's own output is output.log)
EXPORT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "XDG_CACHE_HOME", "XDG_STATE_HOME",
          "XDG_DATA_HOME", "XDG_CONFIG_HOME", "SLURM_CONF")
SQUEUE_FORMAT = "%i|%T|%r|%N|%V|%S|%e"

QUEUED_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED",
                 "SPECIAL_EXIT"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
ENDINGS = {
    "COMPLETED": Ending.COMPLETED, "FAILED": Ending.FAILED, "OUT_OF_MEMORY": Ending.FAILED,
    "BOOT_FAIL": Ending.NODE_FAILURE, "DEADLINE": Ending.TIMED_OUT, "CANCELLED": Ending.CANCELLED,
    "REVOKED": Ending.CANCELLED, "TIMEOUT": Ending.TIMED_OUT, "NODE_FAIL": Ending.NODE_FAILURE,
    "PREEMPTED": Ending.PREEMPTED,
}


class SlurmBackend:
    kind = BackendKind.SLURM

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings

    # --------------------------------------------------------------------------------------------- submit
    def sbatch_argv(self, run_dir: str, name: str, spec: JobSpec) -> list[str]:
        s = self.settings
        limit = s.time_limit or str(math.ceil((spec.timeout_s + spec.grace_s + 300) / 60))  # minutes
        export = [n for n in EXPORT if n in os.environ and not is_secret_name(n)]
        argv = ["sbatch", "--parsable", f"--job-name={name}", f"--output={Path(run_dir) / SCHEDULER_LOG}",
                f"--chdir={run_dir}", "--no-requeue", f"--export={','.join(export) or 'NONE'}", f"--time={limit}",
                f"--cpus-per-task={max(1, s.cpus_per_job)}"]
        if s.partition:
            argv.append(f"--partition={s.partition}")
        if s.account:
            argv.append(f"--account={s.account}")
        if s.memory:
            argv.append(f"--mem={s.memory}")
        if s.gpus_per_job:
            argv.append(f"--gres=gpu:{s.gpus_per_job}")
        return [*argv, *s.sbatch_args, str(Path(run_dir) / SCRIPT)]

    def submit(self, run_dir: str, name: str) -> str:
        import sys

        spec = JobSpec.read(Path(run_dir) / SPEC_FILE)
        python = self.settings.python or sys.executable
        script = Path(run_dir) / SCRIPT
        script.write_text("#!/bin/sh\n# nightlab's job wrapper: reads spec.json here, writes status.json here\n"
                          f"exec {shlex.join(wrapper_argv(python, run_dir))}\n")
        script.chmod(0o755)
        out = _run(self.sbatch_argv(run_dir, name, spec))
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise BackendError(f"sbatch answered {out.strip()!r}, not a job id")
        return job_id

    def find(self, name: str) -> str | None:
        out = _run(["squeue", "-h", "-t", "all", "-n", name, "-o", "%i"], ok_codes=(0, 1))
        ids = [x for x in out.split() if x.isdigit()]
        return ids[-1] if ids else None

    # --------------------------------------------------------------------------------------------- ask
    def query(self, ids: list[str]) -> dict[str, SchedInfo]:
        found: dict[str, SchedInfo] = {}
        if not ids:
            return found
        # squeue answers for every job slurmctld still holds (finished ones too, for MinJobAge seconds); with an
        # unknown id among several it lists the others, with only unknown ones it exits 1
        out = _run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", SQUEUE_FORMAT], ok_codes=(0, 1))
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 7 and parts[0] in ids:
                found[parts[0]] = _info(parts[1], parts[2], parts[3], parts[4], parts[5], parts[6])
        rest = [i for i in ids if i not in found]
        if rest:
            found.update(self._sacct(rest))
        for i in ids:
            found.setdefault(i, SchedInfo(SchedState.UNKNOWN))
        return found

    def _sacct(self, ids: list[str]) -> dict[str, SchedInfo]:
        """Jobs slurmctld has forgotten, from the accounting database (none where accounting is off)."""
        try:
            out = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(ids), "-o",
                        "JobIDRaw,State,Reason,NodeList,Submit,Start,End"])
        except BackendError:
            return {}
        found = {}
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 7 and parts[0] in ids:
                found[parts[0]] = _info(parts[1].split()[0], parts[2], parts[3], parts[4], parts[5], parts[6])
        return found

    def cancel(self, job_id: str) -> None:
        _run(["scancel", job_id], ok_codes=(0, 1))

    def where(self, job_id: str) -> str:
        return f"slurm {job_id}"


def _info(state: str, reason: str, node: str, submit: str, start: str, end: str) -> SchedInfo:
    state = state.strip().upper()
    info = SchedInfo(SchedState.UNKNOWN, native=state, reason="" if reason in ("None", "(null)") else reason,
                     node="" if node in ("", "(null)", "None assigned") else node, submitted_at=_when(submit),
                     started_at=_when(start), ended_at=_when(end))
    if state in QUEUED_STATES:
        info.state, info.started_at, info.ended_at = SchedState.QUEUED, None, None
    elif state in RUNNING_STATES:
        info.state, info.ended_at = SchedState.RUNNING, None
    elif state in ENDINGS:
        info.state, info.ending = SchedState.ENDED, ENDINGS[state]
    return info


def _when(text: str) -> float | None:
    """SLURM's local timestamps (2026-12-02T09:10:48); N/A, Unknown, None and the like are None."""
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _run(argv: list[str], ok_codes: tuple[int, ...] = (0,)) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise BackendError(f"{argv[0]} not found: the SLURM client commands must be on PATH") from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"{argv[0]} did not answer within 60 s (is slurmctld reachable?)", transient=True) from None
    if r.returncode not in ok_codes:
        msg = (r.stderr.strip() or r.stdout.strip()).splitlines()
        last = msg[-1] if msg else "no output"
        raise BackendError(f"{argv[0]} failed ({r.returncode}): {last}", transient=is_transient(last))
    return r.stdout
