"""A cgroup v2 child for one job, where this user may create one: `cgroup.kill` kills the whole tree atomically
(descendants that called setsid too), `memory.max` / `pids.max` cap it when those controllers are delegated; and
the counters read back after it ends (an OOM kill, a disk that filled)."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

from nightlab.sandbox import procs


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
    enabled = read_or_empty(os.path.join(base, "cgroup.subtree_control")).split()
    available = read_or_empty(os.path.join(base, "cgroup.controllers")).split()
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


def read_or_empty(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def write_quietly(path: str, value: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


def make_job_cgroup(job_id: str, memory_mb: int | None, max_procs: int) -> tuple[str, list[str], list[str]]:
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
    enabled = read_or_empty(os.path.join(base, "cgroup.subtree_control")).split()
    for c in info.controllers:
        if c not in enabled:
            write_quietly(os.path.join(base, "cgroup.subtree_control"), f"+{c}")  # EBUSY when base holds processes
    enabled = read_or_empty(os.path.join(base, "cgroup.subtree_control")).split()
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", job_id)[:40]
    path = os.path.join(base, f"nightlab-{safe}-{os.getpid()}")
    try:
        os.mkdir(path)
    except OSError as e:
        return "", [], [f"no cgroup: cannot create one under {base}: {e.strerror}"]
    active: list[str] = []
    if "memory" in enabled and memory_mb and write_quietly(os.path.join(path, "memory.max"), str(memory_mb << 20)):
        write_quietly(os.path.join(path, "memory.swap.max"), "0")
        write_quietly(os.path.join(path, "memory.oom.group"), "1")
        active.append("memory")
    if "pids" in enabled and write_quietly(os.path.join(path, "pids.max"), str(max_procs)):
        active.append("pids")
    return path, active, []


def cgroup_events(cgroup: str, name: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in read_or_empty(os.path.join(cgroup, name)).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out
