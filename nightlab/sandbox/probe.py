"""What confinement this machine can give a job (`probe`, cached), and what each layer leaves open (`gaps`).

The probe runs a few tiny processes (user namespaces, bubblewrap with and without its size and remount flags,
Landlock's ABI), so its result is cached per kernel, bubblewrap binary, uid and `CACHE_VERSION` (isolate.py's
docstring has the whole picture)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nightlab.errors import NightlabError
from nightlab.sandbox.cgroups import cgroup_info
from nightlab.sandbox.spec import atomic_write_json

CACHE_VERSION = 2  # 2: the probe tries --cap-drop ALL and --remount-ro
CONFINE = str(Path(__file__).with_name("confine.py"))


class IsolationError(NightlabError):
    """A required confinement layer is unavailable here; the message names it and says why."""


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


def bwrap_base(size_flag: bool, tmp_mb: int) -> list[str]:
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
        rc, out = _run([bw, *bwrap_base(size_flag, 16), "--unshare-net", "--remount-ro", "/dev", "--", true])
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
