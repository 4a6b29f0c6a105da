"""Confinement for a training job: what this machine can do (`probe`), and how to start a job under it (`prepare`).

Training code written by an agent is untrusted, so every job runs under layers of confinement:

- Layer 0, always: its own session (process group), cwd = the worktree, an environment from an allow-list that never
  carries a variable whose name looks like a secret, rlimits (CPU time, open files, file size, no core dumps, a
  process cap), a memory cap, the wall-clock timeout and a whole-tree kill (done by the runner through `Launch`).
  The memory cap and the tree kill use a cgroup v2 child cgroup when this user may create one (`cgroup.kill` kills
  even descendants that called setsid, atomically; `memory.max` / `pids.max` when those controllers are delegated);
  otherwise RLIMIT_AS plus an RSS watch the wrapper polls, and a freeze-then-kill sweep of the process tree.
- Layer 1, bubblewrap: read-only root, writable worktree + run dir (+ opted-in paths), private /tmp, no network, new
  PID namespace (so the whole tree dies with it), the user's home hidden except the interpreter/venv the job needs,
  protected files bound read-only.
- Layer 2, where user namespaces are refused (some containers and distros): Landlock for the file system plus a
  seccomp filter refusing inet sockets, applied by the tiny launcher in `confine.py`, which then execs the job.
- macOS: layer 0 plus `sandbox-exec` with a generated profile (`macos_profile`).

`spec.isolation`: "auto" picks the strongest layer that works here and refuses to run unconfined when none does;
"bwrap" / "landlock" demand that layer; "none" is layer 0 only (the CLI's `--unsafe-no-sandbox`). A layer that was
demanded but is missing raises `IsolationError` with the reason the probe found; the runner records it as the job's
failure. Which layers were active is returned in `Launch.layers` and lands in `JobStatus.isolation`.

The rooms: probe.py (what this machine can do, and what each layer leaves open), cgroups.py (a job's cgroup v2
child), jail.py (the file system a job sees, and the argument lists that build it); this module starts a job under
them.

The probe runs a few tiny processes (~100 ms), so its result is cached in `$XDG_CACHE_HOME/nightlab/isolation.json`,
keyed by the kernel release, the bubblewrap binary (path, size, mtime: a new version is a new binary), the uid and
this module's cache version. The cgroup part is not cached: it depends on which cgroup the caller sits in.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nightlab.sandbox import procs
from nightlab.sandbox.cgroups import cgroup_events, make_job_cgroup, read_or_empty, write_quietly
from nightlab.sandbox.jail import CONFINE_REPORT, bwrap_argv, confine_argv, macos_profile
from nightlab.sandbox.probe import Capabilities, IsolationError, gaps, probe
from nightlab.sandbox.procs import die_with_parent
from nightlab.sandbox.spec import JobSpec

__all__ = [
    "Capabilities",
    "IsolationError",
    "Launch",
    "bwrap_argv",
    "check",
    "gaps",
    "is_secret_name",
    "job_environment",
    "prepare",
    "probe",
]

SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
ALLOWED_ENV = (
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR",
    "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "TASK_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "RAYON_NUM_THREADS",
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH", "NVIDIA_VISIBLE_DEVICES",
)
ALLOWED_PREFIXES = ("CUDA_", "NCCL_", "NIGHTLAB_JOB_", "LC_")
# What a job gets unless the project's `sandbox.env` (or `pass_env`) says otherwise. A job has no network and no API
# key (secrets never reach it), so W&B's `wandb.init()` failed every run ("No API key configured"), ClearML's
# `Task.init()` ("ClearML is not configured on this machine") and Neptune's `init_run()` (no API token) too; offline,
# each logs locally (to upload later), and a night of experiments does not fill the user's project.
JOB_DEFAULTS = {"WANDB_MODE": "offline", "CLEARML_OFFLINE_MODE": "1", "NEPTUNE_MODE": "offline"}

DEFAULT_MAX_PROCS = 4096  # processes (watch) / tasks (RLIMIT_NPROC, pids.max); env NIGHTLAB_MAX_PROCS overrides
DEFAULT_MAX_FILE_MB = 64 * 1024  # RLIMIT_FSIZE: one runaway file cannot fill the disk; NIGHTLAB_MAX_FILE_MB
DEFAULT_NOFILE = 4096
WATCH_INTERVAL_S = 0.25
# RLIMIT_AS is only a backstop (the RSS watch is the cap): address space is not memory. `import torch, numpy` alone
# maps 3.2 GB for 0.5 GB resident (thread arenas, BLAS buffers), so the limit leaves generous room above the cap.
AS_HEADROOM_MB = 8192


# ----------------------------------------------------------------------------------------------------- environment
def is_secret_name(name: str) -> bool:
    up = name.upper()
    return any(m in up for m in SECRET_MARKERS)


def job_environment(base: dict[str, str], extra: dict[str, str], pass_env: list[str]) -> dict[str, str]:
    """An environment from an allow-list: never a variable whose name looks like a secret, whatever asked for it.

    Allow-list rather than deny-list because the agent's environment holds API keys under names we cannot predict;
    the secret-name filter runs last, so neither the project config (`extra`) nor `pass_env` can let one through.
    """
    env = {k: v for k, v in base.items() if k in ALLOWED_ENV or k.startswith(ALLOWED_PREFIXES)}
    env.update(JOB_DEFAULTS)
    for name in pass_env:
        if name in base:
            env[name] = base[name]
    env.update(extra)
    return {k: v for k, v in env.items() if not is_secret_name(k)}


# ----------------------------------------------------------------------------------------------------- launch
@dataclass
class Launch:
    """How to start a job, and the hooks the wrapper calls while it runs.

    The runner calls: `attach(pid)` right after starting the job, `poll(wrapper_pid)` in its loop (a resource fault
    reason, or ""), `kill_tree(...)` on timeout/stop/fault, `finish(...)` after the job exited (kills what is left,
    removes the cgroup), and `explain(...)` to turn an exit into a reason (out of memory, disk full...).
    """

    argv: list[str]
    layers: list[str]
    preexec: Callable[[], None] | None = None
    notes: list[str] = field(default_factory=list)
    cgroup: str = ""
    cgroup_controllers: list[str] = field(default_factory=list)
    memory_mb: int | None = None
    as_cap_mb: int | None = None
    rss_watch: bool = False
    max_procs: int = DEFAULT_MAX_PROCS
    cpu_seconds: int | None = None
    run_dir: str = ""
    peak_rss_mb: float = 0.0
    fault: str = ""
    cgroup_events: dict[str, dict[str, int]] = field(default_factory=dict)  # read just before the cgroup goes
    _last_poll: float = 0.0
    _ns_pid: int = 0  # a job process inside the private mount namespace (for private_tmpfs_mb)
    scratch: str = ""  # a folder made for the job (layer 2's fallback TMPDIR), removed by finish()
    _host_tmp_devs: set[int | None] = field(default_factory=set)

    def attach(self, pid: int) -> None:
        """Confirm the job landed in its cgroup (the preexec hook put it there); record the layer if so."""
        if not self.cgroup:
            return
        own = next((ln[3:].strip() for ln in read_or_empty(f"/proc/{pid}/cgroup").splitlines()
                    if ln.startswith("0::")), "")
        if own and self.cgroup.endswith(own):
            self.layers.insert(3, "cgroup")
        else:
            self.notes.append("the job could not join its cgroup; using the process-tree kill")
            self._drop_cgroup()

    def tree(self, wrapper_pid: int) -> list[int]:
        """Every live process of the job: the cgroup's members when we have one, else the wrapper's descendants."""
        if self.cgroup:
            pids = [int(p) for p in read_or_empty(os.path.join(self.cgroup, "cgroup.procs")).split() if p.isdigit()]
            return [p for p in pids if not procs.is_zombie(p)]
        return procs.live_descendants(wrapper_pid)

    def poll(self, wrapper_pid: int) -> str:
        """Check the resource caps the kernel does not enforce for us. Returns a fault reason once, else ""."""
        now = time.monotonic()
        if self.fault or now - self._last_poll < WATCH_INTERVAL_S:
            return ""
        self._last_poll = now
        pids_capped = self.cgroup and "pids" in self.cgroup_controllers
        if pids_capped and cgroup_events(self.cgroup, "pids.events").get("max", 0) > 0:
            self.fault = f"fork storm: the job hit the process cap ({self.max_procs})"
            return self.fault
        if not self.rss_watch and ("pids" in self.cgroup_controllers):
            return ""
        pids = self.tree(wrapper_pid)
        if "pids" not in self.cgroup_controllers and len(pids) > self.max_procs:
            self.fault = f"fork storm: {len(pids)} processes (cap {self.max_procs})"
            return self.fault
        if self.rss_watch and self.memory_mb and pids:
            rss = procs.rss_mb(pids)
            tmpfs = self.private_tmpfs_mb(pids)
            self.peak_rss_mb = max(self.peak_rss_mb, rss + tmpfs)
            if rss + tmpfs > self.memory_mb:
                held = f" and {tmpfs:.0f} MB in its private /tmp and /dev/shm" if tmpfs >= 1 else ""
                self.fault = f"out of memory (RSS cap {self.memory_mb} MB, the job used {rss:.0f} MB{held})"
                return self.fault
        return ""

    def private_tmpfs_mb(self, pids: list[int]) -> float:
        """What the job holds in its private /tmp and /dev/shm (tmpfs: memory that no RSS shows). Without a memory
        cgroup (which charges tmpfs pages itself) the RSS watch adds this, so those files count against the cap.
        Found through /proc/PID/root of a job process that sits in the private mount namespace."""
        if not self._host_tmp_devs:
            self._host_tmp_devs = {_st_dev("/tmp"), _st_dev("/dev/shm")}
        candidates = ([self._ns_pid] if self._ns_pid else []) + pids[:8]
        for pid in candidates:
            used, private = 0.0, False
            for sub in ("tmp", "dev/shm"):
                path = f"/proc/{pid}/root/{sub}"
                dev = _st_dev(path)
                if dev is None or dev in self._host_tmp_devs:
                    continue
                try:
                    st = os.statvfs(path)
                except OSError:
                    continue
                private = True
                used += (st.f_blocks - st.f_bfree) * st.f_frsize / (1 << 20)
            if private:
                self._ns_pid = pid
                return used
        return 0.0

    def kill_tree(self, wrapper_pid: int, pgid: int | None, grace_s: float, keep: int | None = None) -> None:
        """SIGTERM the whole tree, wait up to grace_s, then kill everything left, setsid descendants included."""
        procs.signal_tree(wrapper_pid, pgid, signal.SIGTERM)
        for p in self.tree(wrapper_pid):
            procs.send(p, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not self.tree(wrapper_pid) and not procs.live_descendants(wrapper_pid):
                return
            time.sleep(0.05)
        self.hard_kill(wrapper_pid, keep)

    def hard_kill(self, wrapper_pid: int, keep: int | None = None) -> None:
        if self.cgroup:
            write_quietly(os.path.join(self.cgroup, "cgroup.kill"), "1")
        procs.kill_all(wrapper_pid, keep=keep, timeout_s=5.0)

    def finish(self, wrapper_pid: int) -> None:
        """After the job's main process exited: kill whatever it left behind, then remove the cgroup."""
        if self.tree(wrapper_pid) or procs.live_descendants(wrapper_pid):
            self.kill_tree(wrapper_pid, None, 0.5)
        self._drop_cgroup()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def _drop_cgroup(self) -> None:
        if not self.cgroup:
            return
        self.cgroup_events = {"memory": cgroup_events(self.cgroup, "memory.events"),
                              "pids": cgroup_events(self.cgroup, "pids.events")}
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                os.rmdir(self.cgroup)
                break
            except FileNotFoundError:
                break
            except OSError:
                write_quietly(os.path.join(self.cgroup, "cgroup.kill"), "1")
                time.sleep(0.05)
        self.cgroup = ""

    def absorb_report(self) -> None:
        """Layer 2: record what confine.py managed to apply before it restricted itself (confine.json)."""
        if "landlock" not in self.layers:
            return
        from nightlab.sandbox import safeio

        data = safeio.read_json(os.path.join(self.run_dir, CONFINE_REPORT))
        if not isinstance(data, dict):
            return
        if not data.get("namespaces"):
            self.notes.append(f"no private namespaces: {data.get('why_not') or 'unknown'}")
            return
        extra = ["mountns", "private-tmp", "named-unix-closed"]
        if data.get("netns"):
            extra += ["netns", "abstract-unix-closed"]
        if data.get("proc_hidden"):
            extra.append("procs-hidden")
        self.layers += [x for x in extra if x not in self.layers]

    def explain(self, rc: int, log_tail: bytes, log_error: str = "") -> str:
        """Why a job that did not succeed ended, in words the agent can act on ("" when nothing specific is known)."""
        if self.fault:
            return self.fault
        ev = self.cgroup_events
        if self.cgroup:
            ev = {"memory": cgroup_events(self.cgroup, "memory.events"),
                  "pids": cgroup_events(self.cgroup, "pids.events")}
        if ev.get("memory", {}).get("oom_kill", 0) > 0:
            return f"out of memory (cgroup memory cap {self.memory_mb} MB)"
        if ev.get("pids", {}).get("max", 0) > 0:
            return f"fork storm: the job hit the process cap ({self.max_procs})"
        tail = log_tail.decode("utf-8", "replace")
        # bubblewrap's init reports a child killed by signal N as exit status 128 + N
        sig = -rc if rc < 0 else (rc - 128 if "bwrap" in self.layers and 128 < rc < 128 + 65 else 0)
        if sig == signal.SIGXCPU:
            return f"CPU time limit exceeded ({self.cpu_seconds} s)"
        if sig == signal.SIGXFSZ:
            return "file size limit exceeded (RLIMIT_FSIZE)"
        if log_error or "No space left on device" in tail or _disk_full(self.run_dir):
            where = self.run_dir or "the run dir"
            return f"disk full: no space left on device ({where})" + (f"; {log_error}" if log_error else "")
        if "CUDA out of memory" in tail or "OutOfMemoryError: CUDA" in tail:
            return "out of GPU memory (CUDA out of memory)"
        if re.search(r"MemoryError|std::bad_alloc|Cannot allocate memory|out of memory|memory allocation .*failed",
                     tail, re.IGNORECASE):
            if self.as_cap_mb:
                return f"out of memory (memory cap {self.memory_mb} MB; address-space limit {self.as_cap_mb} MB)"
            return "out of memory"
        if re.search(r"BlockingIOError: \[Errno 11\]|fork: (retry: )?Resource temporarily unavailable", tail):
            return f"fork storm: process creation refused (cap {self.max_procs})"
        setup = re.search(r"^(bwrap: .*|nightlab confine: .*)$", tail, re.MULTILINE)
        if setup and rc in (1, 126, 127):
            line = setup.group(1)[:300]
            if "execvp" in line or "could not start" in line:
                return f"command not found ({line})"
            return f"sandbox setup failed: {line}"
        if sig and rc > 0:
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            return f"killed by signal {name}"
        return ""


def _st_dev(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def _disk_full(path: str) -> bool:
    if not path:
        return False
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


# ----------------------------------------------------------------------------------------------------- prepare
def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


def check(isolation: str, caps: Capabilities | None = None) -> str:
    """The confinement layer `isolation` resolves to here; raises IsolationError (with the probe's reason) if none.

    The CLI can call this before launching anything, so a missing layer is one clear line, not N failed jobs.
    """
    caps = caps or probe()
    if isolation == "none":
        return "none"
    if isolation == "auto":
        best = caps.best()
        if best:
            return best
        why = "; ".join(f"{k}: {caps.unavailable(k)}" for k in ("bwrap", "landlock") if caps.unavailable(k))
        raise IsolationError(f"no sandbox layer works on this machine ({why}); fix one, or run with "
                             "--unsafe-no-sandbox to accept layer 0 only (own session, env allow-list, rlimits)")
    if isolation not in ("bwrap", "landlock", "sandbox-exec"):
        raise IsolationError(f"unknown isolation {isolation!r}: use auto, bwrap, landlock or none")
    why = caps.unavailable(isolation)
    if why:
        raise IsolationError(f"isolation {isolation!r} is required but unavailable here: {why}")
    return isolation


def prepare(spec: JobSpec) -> Launch:
    """How to start the job: argv, a preexec hook (rlimits, cgroup, CPU pinning), and the layers that will be active.

    Raises IsolationError when the requested confinement is unavailable; the runner records that as the failure.
    """
    caps = probe()
    layer = check(spec.isolation, caps)
    max_procs = int(getattr(spec, "max_procs", 0) or _int_env("NIGHTLAB_MAX_PROCS", DEFAULT_MAX_PROCS))
    max_file_mb = int(getattr(spec, "max_file_mb", 0) or _int_env("NIGHTLAB_MAX_FILE_MB", DEFAULT_MAX_FILE_MB))
    launch = Launch(argv=list(spec.argv), layers=["session", "env", "rlimits"], memory_mb=spec.memory_mb,
                    max_procs=max_procs, cpu_seconds=spec.cpu_seconds, run_dir=spec.run_dir)
    # the command line first: it may refuse the spec (IsolationError) before anything is created for the job
    if layer == "bwrap":
        launch.argv = bwrap_argv(spec, caps)
        launch.layers += ["bwrap", "pidns", "nocaps", "private-tmp", "named-unix-closed"]
        if not spec.allow_network:
            launch.layers += ["no-network", "abstract-unix-closed"]
    elif layer == "landlock":
        launch.argv = confine_argv(spec, caps)
        launch.scratch = launch.argv[launch.argv.index("--tmpdir") + 1]
        launch.layers += ["landlock", "nocaps"]
        if not spec.allow_network:
            if caps.seccomp_ok:
                launch.layers.append("seccomp")
            if caps.seccomp_ok or caps.landlock_abi >= 4:
                launch.layers.append("no-network")
            else:
                launch.notes.append(f"network stays open: no seccomp ({caps.seccomp_reason}) and Landlock ABI < 4")
            if caps.landlock_abi >= 6:
                launch.layers.append("abstract-unix-closed")
    elif layer == "sandbox-exec":
        launch.argv = ["sandbox-exec", "-p", macos_profile(spec), *spec.argv]
        launch.layers.append("sandbox-exec")
    drop_caps = layer in ("none", "sandbox-exec") and os.geteuid() == 0
    if drop_caps:
        launch.layers.append("nocaps")
    cgroup, controllers, notes = "", list[str](), ["cgroups not used on this system"]
    if caps.system == "Linux":
        cgroup, controllers, notes = make_job_cgroup(spec.job_id, spec.memory_mb, max_procs)
    launch.cgroup, launch.cgroup_controllers = cgroup, controllers
    launch.notes += notes
    gpu_job = bool(spec.env.get("CUDA_VISIBLE_DEVICES", "").strip())
    limits: list[tuple[int, int, int]] = [(resource.RLIMIT_CORE, 0, 0),
                                          (resource.RLIMIT_FSIZE, max_file_mb << 20, max_file_mb << 20)]
    if spec.cpu_seconds:  # SIGXCPU at the soft limit (recognisable), SIGKILL a few seconds later if ignored
        limits.append((resource.RLIMIT_CPU, spec.cpu_seconds, spec.cpu_seconds + 5))
    if spec.memory_mb:
        if "memory" in controllers:
            launch.layers.append("memcap:cgroup")
        else:
            launch.rss_watch = True
            launch.layers.append("memcap:rss")
            if not gpu_job:  # CUDA maps tens of GB of address space: an AS limit would break every GPU job
                launch.as_cap_mb = 2 * spec.memory_mb + AS_HEADROOM_MB
                limits.append((resource.RLIMIT_AS, launch.as_cap_mb << 20, launch.as_cap_mb << 20))
    if "pids" not in controllers and caps.nproc_effective:
        nproc = procs.system_tasks() + max_procs
        limits.append((resource.RLIMIT_NPROC, nproc, nproc))
    cpus = [int(c) for c in spec.env.get("NIGHTLAB_JOB_CPUS", "").split(",") if c.strip().isdigit()]
    launch.preexec = _preexec(os.path.join(cgroup, "cgroup.procs") if cgroup else "", limits, cpus, drop_caps)
    return launch


def _preexec(cgroup_procs: str, limits: list[tuple[int, int, int]], cpus: list[int],
             drop_caps: bool = False) -> Callable[[], None]:
    """Runs in the child between fork and exec: join the cgroup first (so every later fork is counted), lower
    rlimits (never raise: a hard limit below ours wins), pin to the slot's CPUs, and with `drop_caps` (layer 0 run
    by root) give up every capability, bounding set included, so exec cannot bring them back. Errors are swallowed
    except that last one (a root job must not start with its capabilities): a failing preexec aborts the launch,
    and each other mechanism is verified or backed up elsewhere (attach, the watch)."""
    from nightlab.sandbox.confine import drop_capabilities as drop  # imported here, not in the forked child

    def apply() -> None:
        die_with_parent()
        if cgroup_procs:
            try:
                with open(cgroup_procs, "w") as f:
                    f.write(str(os.getpid()))
            except OSError:
                pass
        for res, soft, hard in limits:
            try:
                _cur, cur_hard = resource.getrlimit(res)
                if cur_hard != resource.RLIM_INFINITY:
                    soft, hard = min(soft, cur_hard), min(hard, cur_hard)
                resource.setrlimit(res, (soft, hard))
            except (ValueError, OSError):
                pass
        try:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(DEFAULT_NOFILE, hard), hard))
        except (ValueError, OSError):
            pass
        if cpus:
            try:
                os.sched_setaffinity(0, cpus)
            except (OSError, AttributeError):
                pass
        os.umask(0o022)
        if drop_caps:
            drop()

    return apply


