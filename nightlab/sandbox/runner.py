"""The detached job wrapper, and the agent-side calls that start, inspect and stop it.

`launch(spec)` starts `python -m nightlab.sandbox.runner RUN_DIR` in a new session, so the job survives nightlab
exiting. The wrapper starts the job, pipes its output into `output.log` (capped: head and tail kept), enforces the
wall-clock timeout with SIGTERM, grace, SIGKILL of the whole tree (it is a child subreaper, so even descendants that
called setsid are found), then writes `status.json` atomically. If no engine holds the project lock at that moment,
it starts `nightlab wake` itself.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from nightlab.sandbox import isolate, lease, procs
from nightlab.sandbox.spec import (
    LOG_FILE,
    PID_FILE,
    PROGRESS_FILE,
    SPEC_FILE,
    STATUS_FILE,
    JobSpec,
    JobStatus,
    atomic_write_json,
)

CHUNK = 1 << 16
RECENT_BYTES = 8192
STATUS_RESERVE = ".status.reserve"  # freed to make room for status.json when the run dir's disk is full
STOP_FILE = "stop.reason"  # written by whoever asks the job to stop: the reason it is recorded with


# ----------------------------------------------------------------------------------------------- agent side
def launch(spec: JobSpec, wait_s: float = 5.0) -> dict[str, float | int]:
    """Write the spec, start the wrapper detached, and wait until it has recorded the job's PIDs."""
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in (STATUS_FILE, PID_FILE, PROGRESS_FILE, STOP_FILE):
        (run_dir / stale).unlink(missing_ok=True)
    spec.write(run_dir / SPEC_FILE)
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "nightlab.sandbox.runner", str(run_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(run_dir / "wrapper.err", "ab"),  # noqa: SIM115 - handed to the child
        start_new_session=True,
        close_fds=True,
        cwd=str(run_dir),
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        pids = read_pids(run_dir)
        if pids is not None:
            return pids
        if wrapper.poll() is not None and read_status(run_dir) is not None:
            return {"wrapper_pid": wrapper.pid, "wrapper_start": 0.0, "pid": 0, "start": 0.0}
        time.sleep(0.01)
    return {"wrapper_pid": wrapper.pid, "wrapper_start": procs.start_time(wrapper.pid) or 0.0, "pid": 0, "start": 0.0}


def read_status(run_dir: Path | str) -> JobStatus | None:
    return JobStatus.read(Path(run_dir) / STATUS_FILE)


def read_pids(run_dir: Path | str) -> dict[str, float | int] | None:
    import json

    try:
        data: dict[str, float | int] = json.loads((Path(run_dir) / PID_FILE).read_text())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def wrapper_alive(run_dir: Path | str) -> bool:
    pids = read_pids(run_dir)
    if pids is None:
        return False
    return procs.alive(int(pids["wrapper_pid"]), float(pids["wrapper_start"]))


def stop(run_dir: Path | str, reason: str = "cancelled") -> bool:
    """Ask the wrapper to stop its job (it kills the tree and records `killed`). False if it is not running."""
    run_dir = Path(run_dir)
    pids = read_pids(run_dir)
    if pids is None or not wrapper_alive(run_dir):
        return False
    # atomically: the wrapper also polls for the file, and one read between its creation and its text records the
    # bare "stopped" instead of the reason
    tmp = run_dir / f".{STOP_FILE}.{os.getpid()}"
    tmp.write_text(reason)
    os.replace(tmp, run_dir / STOP_FILE)
    try:
        os.kill(int(pids["wrapper_pid"]), signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def run_to_end(spec: JobSpec, on_tick: Callable[[float], None] | None = None, tick_s: float = 0.1) -> JobStatus:
    """Launch the job and wait for its status, calling on_tick(elapsed seconds) while it runs. Ctrl+C (or any error
    while waiting) stops the job before the exception goes on, so nothing is left running."""
    started = time.monotonic()
    launch(spec)
    run_dir = Path(spec.run_dir)
    try:
        while True:
            status = read_status(run_dir)
            if status is not None:
                return status
            if on_tick is not None:
                on_tick(time.monotonic() - started)
            time.sleep(tick_s)
    except BaseException:
        stop(run_dir, "interrupted")
        deadline = time.monotonic() + spec.grace_s + 5.0
        while read_status(run_dir) is None and wrapper_alive(run_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        raise


def read_log(run_dir: Path | str, limit: int = 8 << 20) -> str:
    """The job's output as the wrapper stored it (at most `limit` bytes: the head and the tail)."""
    return read_tail(Path(run_dir) / LOG_FILE, limit)


def last_log_line(run_dir: Path | str) -> str:
    lines = read_tail(Path(run_dir) / LOG_FILE, 4096).strip().splitlines()
    return lines[-1][:200] if lines else ""


def read_tail(path: Path, limit: int) -> str:
    """A file's text, at most `limit` bytes of it (a quarter from the head, the rest from the tail); "" if absent."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size > limit:
                f.seek(0)
                head = f.read(limit // 4)
                f.seek(size - (limit - limit // 4))
                return (head + b"\n" + f.read()).decode("utf-8", "replace")
            f.seek(0)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        return "missing"
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------- wrapper side
class _LogSink:
    """Writes output to the log up to half the cap, then keeps only a rolling tail; the tail is appended at the end."""

    def __init__(self, path: Path, cap: int) -> None:
        self.f = open(path, "wb")  # noqa: SIM115 - closed in finish()
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.written = 0
        self.dropped = 0
        self.tail: deque[bytes] = deque()
        self.tail_bytes = 0
        self.recent = b""  # the last few KB, to tell why a job failed (MemoryError, No space left...)
        self.error = ""  # set when the log itself could not be written (a full disk): output is then dropped

    def _put(self, data: bytes) -> None:
        if self.error:
            return
        try:
            self.f.write(data)
            self.f.flush()
        except OSError as e:
            self.error = f"log write failed: {e.strerror}"

    def write(self, data: bytes) -> None:
        self.recent = (self.recent + data)[-RECENT_BYTES:]
        if self.written < self.head_cap:
            take = data[: self.head_cap - self.written]
            # cut at a line end so the head stays readable
            if len(take) < len(data):
                nl = take.rfind(b"\n")
                if nl >= 0:
                    take = take[: nl + 1]
            self._put(take)
            self.written += len(take)
            data = data[len(take) :]
            if not data:
                return
        self.tail.append(data)
        self.tail_bytes += len(data)
        while self.tail_bytes > self.tail_cap and self.tail:
            old = self.tail.popleft()
            self.tail_bytes -= len(old)
            self.dropped += len(old)

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def finish(self) -> None:
        if self.dropped:
            self._put(f"\n[nightlab: log capped, {self.dropped} bytes dropped from the middle]\n".encode())
        for part in self.tail:
            self._put(part)
        try:
            os.fsync(self.f.fileno())
        except OSError:
            pass
        try:
            self.f.close()
        except OSError as e:
            self.error = self.error or f"log write failed: {e.strerror}"


def _write_status(status: JobStatus, run_dir: Path) -> int:
    """Write status.json; on a full disk free the reserve made at start and retry. 0 on success, 3 if impossible."""
    for attempt in range(2):
        try:
            status.write(run_dir / STATUS_FILE)
            (run_dir / STATUS_RESERVE).unlink(missing_ok=True)
            return 0
        except OSError as e:
            if attempt == 0:
                (run_dir / STATUS_RESERVE).unlink(missing_ok=True)
                continue
            print(f"nightlab wrapper: cannot write {run_dir / STATUS_FILE}: {e}", file=sys.stderr)
    return 3


def run_wrapper(run_dir: Path) -> int:
    """Run the job described in run_dir/spec.json to its end and record how it ended; never dies without trying
    to write status.json (an unexpected error becomes a `failed` status naming it)."""
    spec = JobSpec.read(run_dir / SPEC_FILE)
    try:
        (run_dir / STATUS_RESERVE).write_bytes(b"\0" * 65536)
    except OSError:
        pass
    started = time.time()
    try:
        return _run_job(run_dir, spec)
    except Exception as e:  # the wrapper must leave a status behind, whatever happened
        import traceback

        traceback.print_exc()
        procs.kill_all(os.getpid(), timeout_s=5.0)
        status = JobStatus(spec.job_id, "failed", None, None, started, time.time(), round(time.time() - started, 3),
                           0, None, [], reason=f"wrapper error: {type(e).__name__}: {e}")
        rc = _write_status(status, run_dir)
        _maybe_wake(spec)
        return rc


def _run_job(run_dir: Path, spec: JobSpec) -> int:
    procs.become_subreaper()
    try:  # from now on the slot stays leased for as long as this wrapper lives, whatever becomes of the engine
        lease.adopt(spec.leases, spec.lease_run)
    except OSError as e:  # the job runs all the same; its slot is then held only while its engine lives
        print(f"nightlab wrapper: could not adopt the slot lease: {e}", file=sys.stderr)
    stop_requested = {"sig": 0}

    def on_term(signum: int, _frame: object) -> None:
        stop_requested["sig"] = signum

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    sink = _LogSink(run_dir / LOG_FILE, spec.max_log_bytes)
    started = time.time()
    if (run_dir / STOP_FILE).exists():
        # cancelled while a scheduler held it in its queue (a queued job cannot always be withdrawn: Ray may start
        # one it was told to stop): the job never starts
        reason = (run_dir / STOP_FILE).read_text().strip() or "stopped"
        sink.write(f"nightlab: not started: {reason} before the scheduler started it\n".encode())
        sink.finish()
        status = JobStatus(spec.job_id, "killed", None, None, started, time.time(), 0.0, 0, None, [], reason=reason)
        rc = _write_status(status, run_dir)
        _maybe_wake(spec)
        return rc
    # what the node decides (the GPUs a scheduler gave this job) comes from the wrapper's own environment
    spec.env.update({k: os.environ[k] for k in spec.inherit if k in os.environ})
    try:
        launch_info = isolate.prepare(spec)
    except isolate.IsolationError as e:
        sink.write(f"nightlab: not started: {e}\n".encode())
        sink.finish()
        status = JobStatus(spec.job_id, "failed", None, None, started, time.time(), 0.0, 0, None, [], reason=str(e))
        rc = _write_status(status, run_dir)
        _maybe_wake(spec)
        return rc
    try:
        proc = subprocess.Popen(
            launch_info.argv,
            cwd=spec.cwd,
            env=spec.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=launch_info.preexec,  # the wrapper is single-threaded
        )
    except OSError as e:
        sink.write(f"nightlab: could not start {spec.argv[0]!r}: {e.strerror}\n".encode())
        sink.finish()
        launch_info.finish(os.getpid())
        status = JobStatus(spec.job_id, "failed", 127, None, started, time.time(), 0.0, 0, None,
                           launch_info.layers, reason=f"command not found: {spec.argv[0]}")
        rc = _write_status(status, run_dir)
        _maybe_wake(spec)
        return rc
    launch_info.attach(proc.pid)
    job_start = procs.start_time(proc.pid)
    atomic_write_json(run_dir / PID_FILE, {
        "wrapper_pid": os.getpid(), "wrapper_start": procs.start_time(os.getpid()) or 0.0,
        "pid": proc.pid, "start": job_start or 0.0, "pgid": proc.pid, "layers": launch_info.layers,
        "started_at": started,
    })
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    deadline = time.monotonic() + spec.timeout_s
    state, reason = "", ""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    eof = False
    while True:
        if not eof:
            for _key, _ in sel.select(timeout=0.2):
                try:
                    data = os.read(fd, CHUNK)
                except BlockingIOError:
                    continue
                if not data:
                    eof = True
                    sel.unregister(fd)
                    break
                sink.write(data)
        else:
            try:
                proc.wait(timeout=0.05)  # returns as soon as the job exits (a plain sleep added up to 50 ms a run)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is not None and eof:
            break
        if proc.poll() is not None and not eof:
            # the job ended; drain what is left (a detached grandchild may still hold the pipe: stop waiting soon)
            _drain(fd, sink, 1.0)
            eof = True
            break
        reason_file = run_dir / STOP_FILE
        # a stop is asked for with a signal (the local path) or by the stop file alone: a job on another node of a
        # cluster cannot be signalled by its engine, but it shares the run dir
        if (stop_requested["sig"] or reason_file.exists()) and not state:
            if reason_file.exists():
                reason = reason_file.read_text().strip() or "stopped"
            else:  # the scheduler (a cancelled or pre-empted job, a node going down) or someone else's kill
                reason = f"stopped by {signal.Signals(stop_requested['sig']).name} from outside nightlab"
            state = "killed"
            launch_info.kill_tree(os.getpid(), proc.pid, spec.grace_s, keep=proc.pid)
        if time.monotonic() > deadline and not state:
            state, reason = "timed_out", f"exceeded the {spec.timeout_s:g} s timeout"
            sink.write(f"\n[nightlab: timeout after {spec.timeout_s:g} s: stopping the job]\n".encode())
            launch_info.kill_tree(os.getpid(), proc.pid, spec.grace_s, keep=proc.pid)
        fault = "" if state else launch_info.poll(os.getpid())
        if fault:
            state, reason = "failed", fault
            sink.write(f"\n[nightlab: {fault}: stopping the job]\n".encode())
            launch_info.kill_tree(os.getpid(), proc.pid, 0.0, keep=proc.pid)
    rc = proc.wait()
    # whatever the job left behind (setsid grandchildren included) goes with it, and its cgroup
    launch_info.finish(os.getpid())
    _reap()
    ended = time.time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    sink.finish()
    sig = -rc if rc < 0 else None
    if not state:
        state = "succeeded" if rc == 0 else "failed"
        if sig is not None:
            reason = f"killed by signal {signal.Signals(sig).name}" if sig in signal.Signals._value2member_map_ else ""
        if state == "failed":
            reason = launch_info.explain(rc, sink.recent, sink.error) or reason
    changed = [p for p, before in spec.protected.items() if hash_file(Path(spec.cwd) / p) != before]
    status = JobStatus(
        job_id=spec.job_id, state=state, exit_code=rc if rc >= 0 else None, signal=sig, started_at=started,
        ended_at=ended, seconds=round(ended - started, 3), pid=proc.pid, pid_start_time=job_start,
        isolation=launch_info.layers, log_truncated=sink.truncated, reason=reason, protected_changed=changed,
        peak_rss_mb=round(max(usage.ru_maxrss / 1024, launch_info.peak_rss_mb), 1),
    )
    rc_status = _write_status(status, run_dir)
    _maybe_wake(spec)
    return rc_status


def _drain(fd: int, sink: _LogSink, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        if not data:
            return
        sink.write(data)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _maybe_wake(spec: JobSpec) -> None:
    """The job is over and its status written: give its slot back (waking projects waiting for one), then wake
    this project's engine if none holds the lock."""
    try:
        lease.give_back(spec.leases, spec.lease_run)
    except OSError as e:  # an unwritable state folder must not cost the engine its wake-up
        print(f"nightlab wrapper: could not give back the slot lease: {e}", file=sys.stderr)
    if spec.wake_argv and lease.lock_free(spec.lock_path):
        subprocess.Popen(spec.wake_argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


if __name__ == "__main__":
    sys.exit(run_wrapper(Path(sys.argv[1])))
