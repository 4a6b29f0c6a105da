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

The probe runs a few tiny processes (~100 ms), so its result is cached in `$XDG_CACHE_HOME/nightlab/isolation.json`,
keyed by the kernel release, the bubblewrap binary (path, size, mtime: a new version is a new binary), the uid and
this module's cache version. The cgroup part is not cached: it depends on which cgroup the caller sits in.
"""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nightlab.errors import NightlabError
from nightlab.sandbox import procs
from nightlab.sandbox.procs import die_with_parent
from nightlab.sandbox.spec import JobSpec, atomic_write_json

SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
ALLOWED_ENV = (
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR",
    "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "TASK_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "RAYON_NUM_THREADS",
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH", "NVIDIA_VISIBLE_DEVICES",
)
ALLOWED_PREFIXES = ("CUDA_", "NCCL_", "NIGHTLAB_JOB_", "LC_")

CACHE_VERSION = 2  # 2: the probe tries --cap-drop ALL and --remount-ro
CONFINE = str(Path(__file__).with_name("confine.py"))
DEFAULT_MAX_PROCS = 4096  # processes (watch) / tasks (RLIMIT_NPROC, pids.max); env NIGHTLAB_MAX_PROCS overrides
DEFAULT_MAX_FILE_MB = 64 * 1024  # RLIMIT_FSIZE: one runaway file cannot fill the disk; NIGHTLAB_MAX_FILE_MB
DEFAULT_NOFILE = 4096
WATCH_INTERVAL_S = 0.25
# RLIMIT_AS is only a backstop (the RSS watch is the cap): address space is not memory. `import torch, numpy` alone
# maps 3.2 GB for 0.5 GB resident (thread arenas, BLAS buffers), so the limit leaves generous room above the cap.
AS_HEADROOM_MB = 8192
TMPFS_DEFAULT_MB = 2048  # size of each writable tmpfs (/tmp, /dev/shm) when the job has no memory cap
HIDDEN_TMPFS_MB = 1  # the empty, read-only tmpfs laid over a hidden tree
SOCKET_TREES = ("/run", "/var/run")  # where daemons keep their unix sockets (D-Bus, docker, systemd...): hidden


class IsolationError(NightlabError):
    """A required confinement layer is unavailable here; the message names it and says why."""


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
    for name in pass_env:
        if name in base:
            env[name] = base[name]
    env.update(extra)
    return {k: v for k, v in env.items() if not is_secret_name(k)}


# ----------------------------------------------------------------------------------------------------- probe
@dataclass
class Capabilities:
    """What confinement works on this machine for this user, with the reason for everything that does not."""

    system: str = ""
    kernel: str = ""
    uid: int = -1
    bwrap: str = ""
    bwrap_version: str = ""
    bwrap_ok: bool = False
    bwrap_reason: str = ""
    bwrap_tmpfs_size: bool = False
    userns: bool = False
    userns_reason: str = ""
    landlock_abi: int = 0
    landlock_ok: bool = False
    landlock_reason: str = ""
    seccomp_ok: bool = False
    seccomp_reason: str = ""
    sandbox_exec: bool = False
    nproc_effective: bool = False  # RLIMIT_NPROC binds this user (root and CAP_SYS_RESOURCE ignore it)
    probed_at: float = 0.0
    key: str = ""
    # live, never cached: depends on the caller's cgroup
    cgroup_base: str = ""
    cgroup_kill: bool = False
    cgroup_controllers: list[str] = field(default_factory=list)
    cgroup_reason: str = ""

    def best(self) -> str:
        """The strongest confinement layer available: what isolation="auto" picks ("" when none)."""
        if self.system == "Darwin":
            return "sandbox-exec" if self.sandbox_exec else ""
        if self.bwrap_ok:
            return "bwrap"
        if self.landlock_ok:
            return "landlock"
        return ""

    def unavailable(self, layer: str) -> str:
        """Why `layer` cannot be used here ("" when it can)."""
        if layer == "bwrap":
            return "" if self.bwrap_ok else self.bwrap_reason or "bubblewrap unavailable"
        if layer == "landlock":
            return "" if self.landlock_ok else self.landlock_reason or "Landlock unavailable"
        if layer == "sandbox-exec":
            return "" if self.sandbox_exec else "sandbox-exec not found"
        return ""

    def describe(self) -> str:
        """Several lines for `nightlab status` / doctor: each layer, yes or no and why, and what "auto" picks."""

        def yn(ok: bool, detail: str) -> str:
            return ("yes" if ok else "no") + (f" ({detail})" if detail else "")

        lines = [f"isolation on {self.system} {self.kernel}, uid {self.uid}:"]
        lines.append("  layer 0 (own session, env allow-list, rlimits, timeout, tree kill): yes")
        if self.system == "Darwin":
            lines.append(f"  sandbox-exec: {yn(self.sandbox_exec, '')}")
        else:
            ver = f"bubblewrap {self.bwrap_version}" if self.bwrap else "bubblewrap"
            lines.append(f"  layer 1 {ver}: {yn(self.bwrap_ok, self.bwrap_reason)}")
            lines.append(f"    user namespaces: {yn(self.userns, self.userns_reason)}")
            if self.bwrap_ok:
                lines.append("    not enforced: " + "; ".join(GAPS_BWRAP))
            ll = f"ABI {self.landlock_abi}" if self.landlock_ok else self.landlock_reason
            lines.append(f"  layer 2 Landlock: {yn(self.landlock_ok, ll)}")
            lines.append(f"    seccomp socket filter: {yn(self.seccomp_ok, self.seccomp_reason)}")
            if self.landlock_ok:
                ns = "yes, as root" if self.uid == 0 else ("yes, in a user namespace" if self.userns else "no")
                lines.append(f"    private namespaces (/tmp, /dev/shm, sockets, network): {ns}")
                gaps = landlock_gaps(ns != "no", self.uid == 0, self.landlock_abi)
                lines.append("    not enforced: " + ("; ".join(gaps) or "nothing listed"))
            lines.append("  layer 0 alone (--unsafe-no-sandbox), not enforced: " + "; ".join(GAPS_LAYER0))
            if self.cgroup_base:
                ctl = ", ".join(self.cgroup_controllers) or "no controllers"
                kill = "cgroup.kill" if self.cgroup_kill else "no cgroup.kill"
                lines.append(f"  cgroup v2 at {self.cgroup_base}: yes ({kill}; {ctl})")
            else:
                lines.append(f"  cgroup v2: no ({self.cgroup_reason})")
            mem = "cgroup memory.max" if "memory" in self.cgroup_controllers else "RLIMIT_AS + RSS watch"
            tree = ("cgroup.kill" if self.cgroup_kill else "freeze-and-kill sweep") + (
                " + PID namespace under bubblewrap" if self.bwrap_ok else "")
            if "pids" in self.cgroup_controllers:
                forks = "cgroup pids.max"
            elif self.nproc_effective:
                forks = "RLIMIT_NPROC + process-count watch"
            else:
                forks = "process-count watch (RLIMIT_NPROC does not bind this user)"
            lines.append(f"  memory cap: {mem}; tree kill: {tree}; fork cap: {forks}")
        best = self.best()
        lines.append(f"  auto picks: {best or 'nothing: jobs refuse to run without --unsafe-no-sandbox'}")
        return "\n".join(lines)


# what each layer cannot enforce (the README's Sandbox section and bench/escape.py say the same, measured)
GAP_SOCKETS = "connecting to named unix sockets outside the sandbox"
GAP_ABSTRACT = "connecting to abstract unix sockets outside the sandbox"
GAP_CMDLINE = "reading other processes' command lines (/proc/PID/cmdline)"
GAP_SHM = "a private, capped /dev/shm (the host's is shared; what the job leaves there outlives it)"
GAP_LATE_SOCKETS = "named unix sockets bound outside /run after the job started"
GAPS_BWRAP = [GAP_LATE_SOCKETS]
GAPS_LAYER0 = ["the file system, network, unix sockets and other processes of this user (the job has your "
               "rights)", GAP_SHM]


def landlock_gaps(namespaces: bool, root: bool, abi: int) -> list[str]:
    """What layer 2 cannot enforce here: without namespaces (no user namespaces for this user) much more."""
    out: list[str] = []
    if not namespaces:
        out += [GAP_SOCKETS, GAP_SHM]
    elif abi:
        out.append(GAP_LATE_SOCKETS)
    if not namespaces and abi < 6:
        out.append(GAP_ABSTRACT)
    if not (namespaces and root):
        out.append(GAP_CMDLINE)
    return out


def gaps(layers: list[str]) -> list[str]:
    """What the run with these layers (JobStatus.isolation) was not protected against, in words for status."""
    if not {"bwrap", "landlock"} & set(layers):
        return list(GAPS_LAYER0)
    out: list[str] = []
    if "named-unix-closed" not in layers:
        out.append(GAP_SOCKETS)
    if "abstract-unix-closed" not in layers and "no-network" in layers:
        out.append(GAP_ABSTRACT)
    if not {"pidns", "procs-hidden"} & set(layers):
        out.append(GAP_CMDLINE)
    if "private-tmp" not in layers:
        out.append(GAP_SHM)
    if "no-network" not in layers:
        out.append("the network (the project allows it)")
    return out


_MEMO: dict[str, Capabilities] = {}


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nightlab" / "isolation.json"


def _bwrap_path() -> str:
    return shutil.which("bwrap") or ""


def _probe_key() -> str:
    bw = _bwrap_path()
    ident = ""
    if bw:
        try:
            st = os.stat(bw)
            ident = f"{os.path.realpath(bw)}:{st.st_size}:{int(st.st_mtime)}"
        except OSError:
            ident = bw
    # the host too: on a cluster the cache may live in a home folder every node shares, and nodes differ
    host = platform.node()
    return f"v{CACHE_VERSION}|{platform.system()}|{host}|{platform.release()}|bwrap={ident}|uid={os.getuid()}"


def probe(refresh: bool = False) -> Capabilities:
    """What this machine offers, probed once per (kernel, bubblewrap, uid) and cached on disk and in memory."""
    key = _probe_key()
    memo_key = f"{key}|{cache_path()}"  # the disk cache is per cache folder, so the memo is too
    caps = None if refresh else _MEMO.get(memo_key)
    if caps is None and not refresh:
        try:
            data = json.loads(cache_path().read_text())
            if data.get("key") == key:
                known = set(Capabilities.__dataclass_fields__)
                caps = Capabilities(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError):
            caps = None
    if caps is None:
        caps = _probe_now(key)
        try:
            stored = asdict(caps)
            for k in ("cgroup_base", "cgroup_kill", "cgroup_controllers", "cgroup_reason"):
                stored.pop(k, None)
            atomic_write_json(cache_path(), stored)
        except OSError:
            pass  # an unwritable cache only costs a re-probe
    _MEMO[memo_key] = caps
    cg = cgroup_info()
    caps.cgroup_base, caps.cgroup_kill = cg.base, cg.kill
    caps.cgroup_controllers, caps.cgroup_reason = cg.controllers, cg.reason
    return caps


def _probe_now(key: str) -> Capabilities:
    caps = Capabilities(system=platform.system(), kernel=platform.release(), uid=os.getuid(), key=key,
                        probed_at=time.time())
    if caps.system == "Darwin":
        caps.sandbox_exec = bool(shutil.which("sandbox-exec"))
        return caps
    if caps.system != "Linux":
        caps.bwrap_reason = caps.landlock_reason = f"not supported on {caps.system}"
        return caps
    caps.nproc_effective = _nproc_binds()
    _probe_userns(caps)
    _probe_bwrap(caps)
    _probe_landlock(caps)
    return caps


def _nproc_binds() -> bool:
    """RLIMIT_NPROC is ignored for root and for holders of CAP_SYS_ADMIN or CAP_SYS_RESOURCE."""
    if os.getuid() == 0:
        return False
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                eff = int(line.split()[1], 16)
                return not (eff & (1 << 21) or eff & (1 << 24))
    except (OSError, ValueError):
        pass
    return True


def _run(argv: list[str], timeout: float = 10.0) -> tuple[int, str]:
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 255, str(e)
    return r.returncode, (r.stderr.strip() or r.stdout.strip())


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _probe_userns(caps: Capabilities) -> None:
    code = ("import ctypes,sys;l=ctypes.CDLL(None,use_errno=True);"
            "r=l.unshare(0x10000000);sys.exit(0 if r==0 else ctypes.get_errno() or 1)")
    rc, _ = _run([sys.executable, "-I", "-S", "-c", code])
    caps.userns = rc == 0
    if not caps.userns:
        caps.userns_reason = f"unshare(CLONE_NEWUSER) refused: {os.strerror(rc) if 0 < rc < 200 else rc}"


def _bwrap_base(size_flag: bool, tmp_mb: int) -> list[str]:
    """The flags every bubblewrap job gets (and the probe tries), up to the per-job mounts.

    `--cap-drop ALL`: bubblewrap run by root keeps every capability otherwise, and a root job could remount `/`
    read-write or unmount the private /tmp (bubblewrap also sets no_new_privs, so exec cannot bring them back).
    """
    argv = ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    argv += (["--size", str(tmp_mb << 20)] if size_flag else []) + ["--tmpfs", "/tmp"]
    return argv


def _probe_bwrap(caps: Capabilities) -> None:
    bw = _bwrap_path()
    if not bw:
        caps.bwrap_reason = "bwrap not installed (apt-get install bubblewrap / dnf install bubblewrap)"
        return
    caps.bwrap = bw
    rc, out = _run([bw, "--version"])
    caps.bwrap_version = out.split()[-1] if rc == 0 and out else "?"
    true = shutil.which("true") or "/bin/true"
    for size_flag in (True, False):
        rc, out = _run([bw, *_bwrap_base(size_flag, 16), "--unshare-net", "--remount-ro", "/dev", "--", true])
        if rc == 0:
            caps.bwrap_ok, caps.bwrap_tmpfs_size, caps.bwrap_reason = True, size_flag, ""
            return
        caps.bwrap_reason = f"bwrap cannot create its sandbox here: {_last_line(out) or f'exit {rc}'}"


def _probe_landlock(caps: Capabilities) -> None:
    from nightlab.sandbox import confine

    caps.landlock_abi = confine.landlock_abi()
    if not caps.landlock_abi:
        caps.landlock_reason = confine.landlock_abi_reason()
    caps.seccomp_reason = confine.seccomp_supported()
    with tempfile.TemporaryDirectory(prefix="nightlab-probe-") as d:
        rw, hid = os.path.join(d, "rw"), os.path.join(d, "hidden")
        os.mkdir(rw)
        os.mkdir(hid)
        rc, out = _run([sys.executable, "-I", "-S", CONFINE, "--self-test", rw, hid])
    try:
        result = json.loads(out.splitlines()[-1]) if rc == 0 and out else {}
    except (ValueError, IndexError):
        result = {}
    errors = [str(e) for e in result.get("errors", [])] if result else [_last_line(out) or f"exit {rc}"]
    caps.landlock_ok = bool(result.get("landlock"))
    caps.seccomp_ok = bool(result.get("seccomp"))
    if not caps.landlock_ok and not caps.landlock_reason:
        caps.landlock_reason = next((e for e in errors if e.startswith("landlock")), "; ".join(errors)) or "failed"
    if not caps.seccomp_ok and not caps.seccomp_reason:
        caps.seccomp_reason = next((e for e in errors if e.startswith("seccomp")), "; ".join(errors)) or "failed"


# ----------------------------------------------------------------------------------------------------- cgroup v2
@dataclass
class CgroupInfo:
    base: str = ""
    kill: bool = False
    controllers: list[str] = field(default_factory=list)  # memory / pids usable for child cgroups
    reason: str = ""


def _cgroup2_base() -> tuple[str, str]:
    """(directory where job cgroups would go, reason if none). NIGHTLAB_CGROUP names a delegated cgroup to use."""
    forced = os.environ.get("NIGHTLAB_CGROUP", "")
    if forced:
        return (forced, "") if os.path.isdir(forced) else ("", f"NIGHTLAB_CGROUP={forced} does not exist")
    mount = ""
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            pre, _, post = line.partition(" - ")
            if post.split()[:1] == ["cgroup2"]:
                mount = pre.split()[4]
                break
        own = next((ln[3:].strip() for ln in Path("/proc/self/cgroup").read_text().splitlines()
                    if ln.startswith("0::")), "")
    except OSError as e:
        return "", f"cannot read /proc: {e}"
    if not mount:
        return "", "no cgroup2 file system mounted"
    base = os.path.normpath(mount + "/" + own.lstrip("/")) if own else mount
    if not os.path.isdir(base):
        return "", f"own cgroup {own} not visible under {mount}"
    return base, ""


def cgroup_info() -> CgroupInfo:
    """Whether jobs can get their own child cgroup here, and which controllers it would carry. No side effects."""
    if platform.system() != "Linux":
        return CgroupInfo(reason="not Linux")
    base, why = _cgroup2_base()
    if not base:
        return CgroupInfo(reason=why)
    if not os.access(base, os.W_OK) or not os.access(os.path.join(base, "cgroup.procs"), os.W_OK):
        return CgroupInfo(reason=f"{base} is not writable by this user (no delegation)")
    enabled = _read(os.path.join(base, "cgroup.subtree_control")).split()
    available = _read(os.path.join(base, "cgroup.controllers")).split()
    usable: list[str] = [c for c in ("memory", "pids") if c in enabled or c in available]
    # cgroup.kill exists in every non-root cgroup on Linux 5.14+; a job cgroup is never the root
    kill = _kernel_at_least(5, 14)
    note = "" if usable else "no memory/pids controller delegated"
    return CgroupInfo(base=base, kill=kill, controllers=usable, reason=note)


def _kernel_at_least(major: int, minor: int) -> bool:
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    if m is None:
        return False
    return (int(m.group(1)), int(m.group(2))) >= (major, minor)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _write(path: str, value: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


def _make_job_cgroup(job_id: str, memory_mb: int | None, max_procs: int) -> tuple[str, list[str], list[str]]:
    """Create this job's cgroup. Returns (path, controllers set up, notes); path "" when cgroups are unusable."""
    info = cgroup_info()
    if not info.base:
        return "", [], [f"no cgroup: {info.reason}"]
    base = info.base
    for stale in Path(base).glob("nightlab-*"):
        owner = stale.name.rsplit("-", 1)[-1]
        if owner.isdigit() and procs.alive(int(owner), None):
            continue  # a live wrapper's cgroup, perhaps not yet joined by its job
        try:
            stale.rmdir()  # left by a wrapper that died; rmdir refuses a populated cgroup
        except OSError:
            pass
    enabled = _read(os.path.join(base, "cgroup.subtree_control")).split()
    for c in info.controllers:
        if c not in enabled:
            _write(os.path.join(base, "cgroup.subtree_control"), f"+{c}")  # EBUSY when base holds processes
    enabled = _read(os.path.join(base, "cgroup.subtree_control")).split()
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", job_id)[:40]
    path = os.path.join(base, f"nightlab-{safe}-{os.getpid()}")
    try:
        os.mkdir(path)
    except OSError as e:
        return "", [], [f"no cgroup: cannot create one under {base}: {e.strerror}"]
    active: list[str] = []
    if "memory" in enabled and memory_mb and _write(os.path.join(path, "memory.max"), str(memory_mb << 20)):
        _write(os.path.join(path, "memory.swap.max"), "0")
        _write(os.path.join(path, "memory.oom.group"), "1")
        active.append("memory")
    if "pids" in enabled and _write(os.path.join(path, "pids.max"), str(max_procs)):
        active.append("pids")
    return path, active, []


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
        own = next((ln[3:].strip() for ln in _read(f"/proc/{pid}/cgroup").splitlines() if ln.startswith("0::")), "")
        if own and self.cgroup.endswith(own):
            self.layers.insert(3, "cgroup")
        else:
            self.notes.append("the job could not join its cgroup; using the process-tree kill")
            self._drop_cgroup()

    def tree(self, wrapper_pid: int) -> list[int]:
        """Every live process of the job: the cgroup's members when we have one, else the wrapper's descendants."""
        if self.cgroup:
            pids = [int(p) for p in _read(os.path.join(self.cgroup, "cgroup.procs")).split() if p.isdigit()]
            return [p for p in pids if not procs.is_zombie(p)]
        return procs.live_descendants(wrapper_pid)

    def poll(self, wrapper_pid: int) -> str:
        """Check the resource caps the kernel does not enforce for us. Returns a fault reason once, else ""."""
        now = time.monotonic()
        if self.fault or now - self._last_poll < WATCH_INTERVAL_S:
            return ""
        self._last_poll = now
        pids_capped = self.cgroup and "pids" in self.cgroup_controllers
        if pids_capped and _events(self.cgroup, "pids.events").get("max", 0) > 0:
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
            _write(os.path.join(self.cgroup, "cgroup.kill"), "1")
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
        self.cgroup_events = {"memory": _events(self.cgroup, "memory.events"),
                              "pids": _events(self.cgroup, "pids.events")}
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                os.rmdir(self.cgroup)
                break
            except FileNotFoundError:
                break
            except OSError:
                _write(os.path.join(self.cgroup, "cgroup.kill"), "1")
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
            ev = {"memory": _events(self.cgroup, "memory.events"), "pids": _events(self.cgroup, "pids.events")}
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


def _events(cgroup: str, name: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in _read(os.path.join(cgroup, name)).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


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
        cgroup, controllers, notes = _make_job_cgroup(spec.job_id, spec.memory_mb, max_procs)
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


# ----------------------------------------------------------------------------------------------------- paths
def _real(p: str, cwd: str = "/") -> str:
    return os.path.realpath(os.path.join(cwd, os.path.expanduser(p)))


def _under(path: str, root: str) -> bool:
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


def hidden_paths(spec: JobSpec) -> list[str]:
    """Trees the job must not see: the user's home (ours and the one in the job's env) and spec.hidden."""
    out: list[str] = []
    for p in [os.path.expanduser("~"), spec.env.get("HOME", ""), *spec.hidden]:
        if p and os.path.isabs(os.path.expanduser(p)):
            r = _real(p)
            if r != "/" and os.path.isdir(r) and r not in out:
                out.append(r)
    return out


def writable_paths(spec: JobSpec) -> list[str]:
    """The worktree, the run dir's `out/` folder and spec.writable (created when missing: an output dir may not exist
    yet). Never the run dir itself: nightlab reads and writes its control files there with the user's rights, so a
    path that would make it writable is refused (IsolationError, recorded as the job's failure)."""
    out: list[str] = []
    control = _real(spec.run_dir)
    for p in [spec.cwd, spec.out_dir, *spec.writable]:
        r = _real(p, spec.cwd)
        if _under(control, r):
            raise IsolationError(f"writable path {p!r} would let the job write nightlab's run dir {control} "
                                 "(its status, log and stop files); choose a narrower path")
        try:
            os.makedirs(r, exist_ok=True)
        except OSError:
            continue
        if r not in out and r != "/":
            out.append(r)
    return out


def runtime_paths(spec: JobSpec) -> list[str]:
    """What the job needs to read to run at all: its interpreter, venv, base Python prefix, PYTHONPATH entries.

    The venv's python is usually a symlink into a base installation that may live under the hidden home
    (pyenv, uv, conda), so both the venv and the real interpreter's prefix are listed.
    """
    env = spec.env
    path = env.get("PATH", os.defpath)
    exes: list[str] = []
    for name in [spec.argv[0] if spec.argv else "", "python3", "python"]:
        if not name:
            continue
        found = os.path.join(spec.cwd, name) if os.sep in name else shutil.which(name, path=path)
        if found and os.path.exists(found):
            exes.append(os.path.abspath(found))
    out: list[str] = []
    for exe in exes:
        bindir = os.path.dirname(exe)
        out.append(bindir)
        root = os.path.dirname(bindir)
        cfg = os.path.join(root, "pyvenv.cfg")
        if os.path.exists(cfg):
            out.append(root)
            for line in _read(cfg).splitlines():
                k, _, v = line.partition("=")
                if k.strip() == "home" and v.strip():
                    out.append(os.path.dirname(v.strip()))
        out.append(os.path.dirname(os.path.dirname(os.path.realpath(exe))))
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        if env.get(var):
            out.append(env[var])
    out += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return [_real(p, spec.cwd) for p in out]


def readable_paths(spec: JobSpec, hidden: list[str]) -> list[str]:
    """Paths inside hidden trees made readable again: the runtime (never a path that would unhide a whole hidden
    tree) and spec.readable (the project's explicit opt-in, honoured as given)."""
    out: list[str] = []
    needed = runtime_paths(spec)
    if spec.allow_network:  # name resolution: resolv.conf usually points into /run (systemd-resolved)
        needed += [os.path.realpath(f) for f in ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf")]
    for p in needed:
        if not os.path.exists(p) or any(_under(h, p) for h in hidden):
            continue
        if any(_under(p, h) for h in hidden) and p not in out:
            out.append(p)
    for p in spec.readable:
        r = _real(p, spec.cwd)
        if os.path.exists(r) and r not in out:
            out.append(r)
    return out


def bwrap_argv(spec: JobSpec, caps: Capabilities) -> list[str]:
    """The bubblewrap command line for this job (layer 1).

    Mounts are ordered shallow to deep, so a path bound inside a hidden tree (the worktree under the home, the venv
    under the home) is laid over the tmpfs that hides the tree; at equal depth tmpfs comes first, then writable binds,
    then read-only ones (a read-only protected file inside the writable worktree stays read-only).

    What the job can fill is bounded: /tmp and /dev/shm are private tmpfs of the memory cap's size (their use also
    counts against the cap: `Launch.poll`); the tmpfs hiding a tree, /var/tmp and bubblewrap's own /dev are made
    read-only once everything is mounted. Unix sockets outside the sandbox are out of reach: /run (where daemons keep
    theirs) is hidden like the home, other named sockets this machine has bound are covered by /dev/null, and
    abstract ones live in the host's network namespace, which the job leaves (unless the project allows network).
    """
    mem_mb = spec.memory_mb or TMPFS_DEFAULT_MB
    argv = [caps.bwrap or "bwrap", *_bwrap_base(caps.bwrap_tmpfs_size, mem_mb)]
    if not spec.allow_network:
        argv.append("--unshare-net")
    for dev in [*sorted(Path("/dev").glob("nvidia*")), Path("/dev/dri")]:
        if dev.exists():
            argv += ["--dev-bind", str(dev), str(dev)]
    argv += (["--size", str(mem_mb << 20)] if caps.bwrap_tmpfs_size else []) + ["--tmpfs", "/dev/shm"]
    writable = writable_paths(spec)
    hidden = hidden_paths(spec)
    hide = [h for h in [*hidden, *socket_trees(), *(["/var/tmp"] if os.path.isdir("/var/tmp") else [])]
            if not _under(h, "/tmp")]
    hide = [h for i, h in enumerate(hide) if h not in hide[:i]]
    mounts: list[tuple[int, int, str]] = [(0, 0, h) for h in hide]
    mounts += [(1, 1, w) for w in writable]
    mounts += [(2, 2, r) for r in readable_paths(spec, [*hide, "/tmp"])]
    for rel in spec.protected:
        p = os.path.join(_real(spec.cwd), rel)
        if os.path.isfile(p) and not os.path.islink(p):
            mounts.append((3, 2, p))
    mounts.sort(key=lambda m: (m[2].rstrip("/").count("/"), m[0]))
    for _order, kind, p in mounts:
        if kind == 0:
            if caps.bwrap_tmpfs_size:
                argv += ["--size", str(HIDDEN_TMPFS_MB << 20)]
            argv += ["--tmpfs", p]
        elif kind == 1:
            argv += ["--bind", p, p]
        else:
            argv += ["--ro-bind", p, p]
    for sock in outside_sockets([*writable, *hide, "/tmp", "/dev"]):
        argv += ["--ro-bind", "/dev/null", sock]
    for h in [*hide, "/dev"]:
        argv += ["--remount-ro", h]
    tmpdir = spec.env.get("TMPDIR", "")
    if not tmpdir or not any(_under(_real(tmpdir), w) for w in writable):
        argv += ["--setenv", "TMPDIR", "/tmp"]
    argv += ["--chdir", _real(spec.cwd), "--", *spec.argv]
    return argv


def socket_trees() -> list[str]:
    """The folders daemons keep their unix sockets in (D-Bus, docker, systemd, podman...), as they exist here."""
    out: list[str] = []
    for p in SOCKET_TREES:
        r = os.path.realpath(p)
        if os.path.isdir(r) and r not in out:
            out.append(r)
    return out


MAX_SOCKET_MASKS = 256


def outside_sockets(skip: list[str]) -> list[str]:
    """Named unix sockets bound on this machine (/proc/net/unix) whose file exists outside the `skip` trees: each
    is covered by /dev/null in the job's mount namespace, so connecting to it fails. Abstract sockets (`@name`) are
    not here: a network namespace separates those. A socket bound after the job started is not covered (the README
    says so); most live under /run, which is hidden whole."""
    try:
        text = Path("/proc/net/unix").read_text(errors="replace")
    except OSError:
        return []
    out: list[str] = []
    for line in text.splitlines()[1:]:
        parts = line.split(None, 7)
        if len(parts) < 8 or not parts[7].startswith("/"):
            continue
        path = parts[7]
        if path in out or any(_under(path, k) for k in skip):
            continue
        try:
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                continue
        except OSError:
            continue
        real = os.path.realpath(path)
        if any(_under(real, k) for k in skip):
            continue
        out.append(path)
        if len(out) >= MAX_SOCKET_MASKS:
            break
    return out


CONFINE_REPORT = "confine.json"  # written into the run dir by confine.py before it restricts itself


def confine_argv(spec: JobSpec, caps: Capabilities) -> list[str]:
    """The layer-2 command line: our stdlib-only launcher applies Landlock + seccomp to itself, then execs the job.

    The launcher first tries private namespaces (a private, size-capped /tmp and /dev/shm, outside sockets covered,
    no network; see confine.py); where it cannot make them, /tmp and /var/tmp are hidden like the home and the job
    gets `<run dir>/out/tmp` as TMPDIR. `NIGHTLAB_CONFINE_NO_NAMESPACES=1` (in the wrapper's environment) forces
    that plain-Landlock variant, the one machines without user namespaces get.
    """
    hidden = hidden_paths(spec) + [d for d in ("/tmp", "/var/tmp") if os.path.isdir(d)]
    writable = writable_paths(spec)
    # TMPDIR where no private /tmp can be made: short (a unix socket path, like multiprocessing's, fits in 107
    # bytes) and removed with the job (Launch.finish)
    tmpdir = tempfile.mkdtemp(prefix="nightlab-job-", dir="/tmp" if os.path.isdir("/tmp") else _real(spec.out_dir))
    argv = [sys.executable, "-I", "-S", CONFINE, "--tmpdir", tmpdir, "--mem-mb", str(spec.memory_mb or
            TMPFS_DEFAULT_MB), "--report", os.path.join(_real(spec.run_dir), CONFINE_REPORT)]
    for w in writable:
        argv += ["--rw", w]
    for r in readable_paths(spec, hidden):
        argv += ["--ro", r]
    for h in hidden:
        argv += ["--hide", h]
    for rel in spec.protected:  # bound read-only where the launcher gets a mount namespace (else hashed only)
        p = os.path.join(_real(spec.cwd), rel)
        if os.path.isfile(p) and not os.path.islink(p):
            argv += ["--ro-file", p]
    # a hidden home stops reading, not connecting: only trees replaced by a private tmpfs need no mask
    for sock in outside_sockets([*writable, "/tmp", "/var/tmp"]):
        argv += ["--mask", sock]
    if os.environ.get("NIGHTLAB_CONFINE_NO_NAMESPACES") == "1":
        argv.append("--no-namespaces")
    if spec.allow_network:
        argv.append("--net")
    if not caps.seccomp_ok:
        argv.append("--no-seccomp")
    return [*argv, "--", *spec.argv]


def macos_profile(spec: JobSpec) -> str:
    """A sandbox-exec (Seatbelt) profile equivalent to layer 1 as far as Seatbelt allows. Untested here (Linux CI).

    Seatbelt evaluates rules in order and the last match wins, so the profile allows by default, then denies writes
    everywhere and reads of the hidden trees, then re-allows the writable and readable paths. Network: outbound and
    inbound IP traffic denied unless the project allows it (unix sockets stay usable for multiprocessing).
    sandbox-exec is deprecated by Apple but still shipped; it is the only unprivileged file-system sandbox on macOS.
    """

    def q(p: str) -> str:
        return '"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"'

    hidden = hidden_paths(spec)
    lines = ["(version 1)", "(allow default)", '(deny file-write* (subpath "/"))']
    lines += [f"(deny file-read* (subpath {q(h)}))" for h in hidden]
    lines += [f"(allow file-read* (subpath {q(r)}))" for r in readable_paths(spec, hidden)]
    rw = [*writable_paths(spec), "/private/tmp", "/private/var/folders"]
    lines += [f"(allow file-read* file-write* (subpath {q(w)}))" for w in rw]
    lines += ['(allow file-write* (literal "/dev/null") (literal "/dev/zero") (regex #"^/dev/tty"))']
    if not spec.allow_network:
        lines += ['(deny network-outbound (remote ip))', '(deny network-inbound (local ip))']
    for rel in spec.protected:
        lines.append(f"(deny file-write* (literal {q(os.path.join(_real(spec.cwd), rel))}))")
    return "\n".join(lines) + "\n"
