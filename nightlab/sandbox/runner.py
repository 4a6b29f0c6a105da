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

from nightlab.sandbox import isolate, lease, procs, safeio
from nightlab.sandbox.spec import (
    LOG_FILE,
    PID_FILE,
    SPEC_FILE,
    STATUS_FILE,
    STOP_FILE,
    JobEnd,
    JobSpec,
    JobStatus,
    atomic_write_json,
)

CHUNK = 1 << 16
RECENT_BYTES = 8192
STATUS_RESERVE = ".status.reserve"  # freed to make room for status.json when the run dir's disk is full


# ----------------------------------------------------------------------------------------------- agent side
Wrapper = tuple[int, float]  # (pid, start time in clock ticks since boot): the wrapper process as its launcher saw it
RUNNER_MODULE = "nightlab.sandbox.runner"


def launch(spec: JobSpec, wait_s: float = 5.0) -> dict[str, float | int]:
    """Write the spec, start the wrapper detached, and wait until it has recorded the job's PIDs.

    The wrapper's identity (pid, start time) comes from starting it, never from a file; it is what `stop`,
    `wrapper_alive` and `read_status` should be given back (the engine stores it with the job)."""
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    Path(spec.out_dir).mkdir(exist_ok=True)
    for stale in (STATUS_FILE, PID_FILE, STOP_FILE):
        (run_dir / stale).unlink(missing_ok=True)
    spec.write(run_dir / SPEC_FILE)
    err = os.open(run_dir / "wrapper.err", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                  0o644)
    try:
        wrapper = subprocess.Popen(
            [sys.executable, "-m", RUNNER_MODULE, str(run_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            start_new_session=True, close_fds=True, cwd=str(run_dir),
        )
    finally:
        os.close(err)
    ident: dict[str, float | int] = {"wrapper_pid": wrapper.pid,
                                     "wrapper_start": procs.start_time(wrapper.pid) or 0.0, "pid": 0, "start": 0.0}
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        pids = read_pids(run_dir)
        if pids is not None and pids["wrapper_pid"] == wrapper.pid:
            return {**ident, "pid": pids["pid"], "start": pids["start"]}
        if wrapper.poll() is not None:
            return ident
        time.sleep(0.01)
    return ident


def read_status(run_dir: Path | str, wrapper: Wrapper | None = None, settle_s: float = 1.0) -> JobStatus | None:
    """How the job ended, once its wrapper has exited: None while it still runs (a status file that appears while
    the wrapper lives is not believed: the wrapper writes it last and exits), or when there is none / it is damaged.

    `wrapper` is the identity `launch` returned (stored by the engine); without it the status's own record of its
    writer is used. A wrapper that has written its status exits within milliseconds: wait up to `settle_s` for it.
    """
    path = Path(run_dir) / STATUS_FILE
    status = JobStatus.read(path)
    if status is None:
        return None
    ident = wrapper or ((status.wrapper_pid, status.wrapper_start) if status.wrapper_pid else None)
    if ident is None:
        return status
    deadline = time.monotonic() + settle_s
    while _is_wrapper(ident, run_dir):
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)
    return JobStatus.read(path)  # what the wrapper left last (it replaces anything written before it)


def read_pids(run_dir: Path | str) -> dict[str, float | int] | None:
    """pid.json as the wrapper wrote it; None when missing or malformed (never an exception)."""
    data = safeio.read_json(Path(run_dir) / PID_FILE)
    if not isinstance(data, dict):
        return None
    out: dict[str, float | int] = {}
    for key, kind in (("wrapper_pid", int), ("wrapper_start", float), ("pid", int), ("start", float)):
        v = data.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or (kind is int and not isinstance(v, int)):
            return None
        out[key] = v
    started = data.get("started_at")  # when the job started (remote jobs: the queued time ends here)
    if isinstance(started, int | float) and not isinstance(started, bool):
        out["started_at"] = float(started)
    return out


def _is_wrapper(ident: Wrapper | None, run_dir: Path | str) -> bool:
    """True when `ident` is a live wrapper process of this very run dir: right start time and command line. A pid
    file pointing at some other process of the user (forged, or a recycled pid) fails this."""
    if ident is None or ident[0] <= 0:
        return False
    pid, start = ident
    if not procs.alive(pid, start or None):
        return False
    return procs.cmdline(pid)[-3:] == ["-m", RUNNER_MODULE, str(run_dir)]


def _identity(run_dir: Path | str, wrapper: Wrapper | None) -> Wrapper | None:
    if wrapper is not None and wrapper[0]:
        return wrapper
    pids = read_pids(run_dir)
    return None if pids is None else (int(pids["wrapper_pid"]), float(pids["wrapper_start"]))


def wrapper_alive(run_dir: Path | str, wrapper: Wrapper | None = None) -> bool:
    """Whether the job's wrapper still runs (identified by `wrapper`, else by the run dir's pid file)."""
    return _is_wrapper(_identity(run_dir, wrapper), run_dir)


def stop(run_dir: Path | str, reason: str = "cancelled", wrapper: Wrapper | None = None) -> bool:
    """Ask the wrapper to stop its job (it kills the tree and records `killed`). False if it is not running.

    Only a process that is this run dir's wrapper is signalled; the reason is written by rename, so a link planted
    at its path is replaced, not followed."""
    run_dir = Path(run_dir)
    ident = _identity(run_dir, wrapper)
    if ident is None or not _is_wrapper(ident, run_dir):
        return False
    request_stop(run_dir, reason)
    try:
        os.kill(ident[0], signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def request_stop(run_dir: Path | str, reason: str) -> None:
    """Ask by the stop file alone (a wrapper on another node polls for it): written by rename, so a link planted at
    its path is replaced, never written through."""
    safeio.atomic_write_bytes(Path(run_dir) / STOP_FILE, reason[:500].encode())


def run_to_end(spec: JobSpec, on_tick: Callable[[float], None] | None = None, tick_s: float = 0.1) -> JobStatus:
    """Launch the job and wait for its status, calling on_tick(elapsed seconds) while it runs. Ctrl+C (or any error
    while waiting) stops the job before the exception goes on, so nothing is left running. A wrapper that dies
    without a status gives a `lost` status."""
    started = time.monotonic()
    pids = launch(spec)
    ident = (int(pids["wrapper_pid"]), float(pids["wrapper_start"]))
    run_dir = Path(spec.run_dir)
    try:
        while True:
            status = read_status(run_dir, ident)
            if status is not None:
                return status
            if not _is_wrapper(ident, run_dir):
                status = read_status(run_dir, ident)
                if status is not None:
                    return status
                now = time.time()
                return JobStatus(spec.job_id, "lost", None, None, now, now, round(time.monotonic() - started, 3),
                                 0, None, [], reason="the job wrapper exited without a status")
            if on_tick is not None:
                on_tick(time.monotonic() - started)
            time.sleep(tick_s)
    except BaseException:
        stop(run_dir, "interrupted", ident)
        deadline = time.monotonic() + spec.grace_s + 5.0
        while _is_wrapper(ident, run_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        raise


def read_log(run_dir: Path | str, limit: int = 8 << 20) -> str:
    """The job's output as the wrapper stored it (at most `limit` bytes: the head and the tail)."""
    return read_tail(Path(run_dir) / LOG_FILE, limit)


def last_log_line(run_dir: Path | str) -> str:
    lines = read_tail(Path(run_dir) / LOG_FILE, 4096).strip().splitlines()
    return lines[-1][:200] if lines else ""


def read_tail(path: Path | str, limit: int) -> str:
    """A log's text, at most `limit` bytes of it (a quarter from the head, the rest from the tail); "" if absent.
    Something other than a regular file at `path` (a link, a FIFO) is not read: a one-line note says so."""
    try:
        return safeio.read_head_tail(path, limit).decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    except OSError as e:
        return f"[nightlab: the log at {path} was not read: {e.strerror or e}]\n"


def hash_file(path: Path) -> str:
    """sha256 of a regular file; "missing" when absent; a marker when something else (a link, a FIFO, a folder)
    stands at the path: a protected file replaced by a link to /dev/zero must not hang the wrapper, and counts as
    changed."""
    h = hashlib.sha256()
    try:
        fd = safeio.open_regular(path)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"not a regular file ({e.strerror or e})"
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------- wrapper side
class _LogSink:
    """Writes output to the log up to half the cap, then keeps only a rolling tail; the tail is appended at the end."""

    def __init__(self, path: Path, cap: int) -> None:
        path.unlink(missing_ok=True)  # a fresh file, created here: nothing planted at the path is written through
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        self.path = path
        self.f = os.fdopen(fd, "w+b")
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
        self._reclaim_path()
        try:
            self.f.close()
        except OSError as e:
            self.error = self.error or f"log write failed: {e.strerror}"

    def _reclaim_path(self) -> None:
        """The log at `path` is what the job printed: if something else now stands there (a layer-0 job can replace
        it with a link to a secret, a FIFO, another file), put the wrapper's own copy back, by rename."""
        try:
            ours, there = os.fstat(self.f.fileno()), os.lstat(self.path)
            if (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino):
                return
        except FileNotFoundError:
            pass
        except OSError:
            return
        try:
            self.f.seek(0)
            safeio.atomic_write_bytes(self.path, self.f.read())
        except OSError as e:
            self.error = self.error or f"log write failed: {e.strerror}"


def _write_status(status: JobStatus, run_dir: Path) -> int:
    """Write status.json, naming this wrapper as its writer; on a full disk free the reserve made at start and
    retry. 0 on success, 3 if impossible. Something other than a file at the path (a folder a layer-0 job made) is
    moved aside first: the status is the wrapper's to write."""
    status.wrapper_pid, status.wrapper_start = os.getpid(), procs.start_time(os.getpid()) or 0.0
    target = run_dir / STATUS_FILE
    if target.is_dir() and not target.is_symlink():
        target.rename(run_dir / f"{STATUS_FILE}.not-ours-{time.time():.0f}")
    for attempt in range(2):
        try:
            status.write(target)
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
    procs.set_undumpable()  # holds the agent's environment (for the wake it starts): not readable by the job
    spec = JobSpec.read(run_dir / SPEC_FILE)
    Path(spec.out_dir).mkdir(exist_ok=True)  # launched by a scheduler, not by launch(): it may not exist yet
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
        reason = stop_reason(run_dir)
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
    beside_before = {p: _importables_beside(spec.cwd, p) for p in spec.protected if p.endswith(".py")}
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
            # The job ended when its main process did. What it printed is in the pipe already; a leftover child
            # still holding the pipe is not waited for (it is killed next), in every layer alike: under bubblewrap
            # the PID namespace ends with the main process, so nothing an orphan prints afterwards can count.
            _drain_buffered(fd, sink)
            eof = True
            break
        reason_file = run_dir / STOP_FILE
        asked = reason_file.exists() or reason_file.is_symlink()
        # a stop is asked for with a signal (the local path) or by the stop file alone: a job on another node of a
        # cluster cannot be signalled by its engine, but it shares the run dir
        if (stop_requested["sig"] or asked) and not state:
            if asked:
                reason = stop_reason(run_dir)
            else:  # the scheduler (a cancelled or pre-empted job, a node going down) or someone else's kill
                reason = f"stopped by {signal.Signals(stop_requested['sig']).name} from outside nightlab"
            state = JobEnd.KILLED
            launch_info.kill_tree(os.getpid(), proc.pid, spec.grace_s, keep=proc.pid)
        if time.monotonic() > deadline and not state:
            state, reason = JobEnd.TIMED_OUT, f"exceeded the {spec.timeout_s:g} s timeout"
            sink.write(f"\n[nightlab: timeout after {spec.timeout_s:g} s: stopping the job]\n".encode())
            launch_info.kill_tree(os.getpid(), proc.pid, spec.grace_s, keep=proc.pid)
        fault = "" if state else launch_info.poll(os.getpid())
        if fault:
            state, reason = JobEnd.FAILED, fault
            sink.write(f"\n[nightlab: {fault}: stopping the job]\n".encode())
            launch_info.kill_tree(os.getpid(), proc.pid, 0.0, keep=proc.pid)
    rc = proc.wait()
    # whatever the job left behind (setsid grandchildren included) goes with it, and its cgroup
    launch_info.finish(os.getpid())
    launch_info.absorb_report()
    _reap()
    ended = time.time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    sink.finish()
    sig = -rc if rc < 0 else None
    if not state:
        state = JobEnd.SUCCEEDED if rc == 0 else JobEnd.FAILED
        if sig is not None:
            reason = f"killed by signal {signal.Signals(sig).name}" if sig in signal.Signals._value2member_map_ else ""
        if state == JobEnd.FAILED:
            reason = launch_info.explain(rc, sink.recent, sink.error) or reason
    changed = [p for p, before in spec.protected.items() if hash_file(Path(spec.cwd) / p) != before]
    for prot, before_names in beside_before.items():
        changed += [f"{name} (a new module beside protected {prot})"
                    for name in sorted(_importables_beside(spec.cwd, prot) - before_names)]
    status = JobStatus(
        job_id=spec.job_id, state=state, exit_code=rc if rc >= 0 else None, signal=sig, started_at=started,
        ended_at=ended, seconds=round(ended - started, 3), pid=proc.pid, pid_start_time=job_start,
        isolation=launch_info.layers, log_truncated=sink.truncated, reason=reason, protected_changed=changed,
        peak_rss_mb=round(max(usage.ru_maxrss / 1024, launch_info.peak_rss_mb), 1),
    )
    rc_status = _write_status(status, run_dir)
    _maybe_wake(spec)
    return rc_status


def _drain_buffered(fd: int, sink: _LogSink) -> None:
    """Take what is in the pipe now, without waiting for more."""
    while True:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        if not data:
            return
        sink.write(data)


def stop_reason(run_dir: Path | str) -> str:
    """The reason in the run dir's stop file (read as a bounded regular file; "stopped" when unreadable)."""
    try:
        text = safeio.read_bytes(Path(run_dir) / STOP_FILE, 500).decode("utf-8", "replace").strip()
    except OSError:
        return "stopped"
    return " ".join(text.split()) or "stopped"


IMPORTABLE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")


def _importables_beside(cwd: str, protected: str) -> set[str]:
    """Names Python would import from the folder of a protected script (its sys.path[0]): modules, sourceless
    .pyc, extensions, packages. A job that adds `json.py` beside a protected `eval.py` changes what the evaluation
    runs without touching a protected file; the wrapper compares these names before and after the run."""
    folder = os.path.join(cwd, os.path.dirname(protected))
    out: set[str] = set()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if os.path.exists(os.path.join(entry.path, "__init__.py")):
                    out.add(entry.name + "/")
            elif entry.name.endswith(IMPORTABLE_SUFFIXES):
                out.add(entry.name)
        except OSError:
            continue
    return out


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
    code = run_wrapper(Path(sys.argv[1]))
    # Readers believe the status only once its wrapper is gone (read_status): leave at once, without the
    # interpreter's teardown (everything is written and fsynced; only the flush of stderr is left)
    sys.stderr.flush()
    os._exit(code)
