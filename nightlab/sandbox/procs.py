"""Process identity and tree killing on Linux, without psutil.

A PID alone is not an identity: after a crash the PID may belong to another process. We pair it with the process
start time from /proc (clock ticks since boot), so "is job 4123 still running?" cannot be fooled by PID reuse.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


def start_time(pid: int) -> float | None:
    """The process start time in clock ticks since boot, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, OSError):
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    rest = raw[raw.rfind(")") + 2 :].split()
    try:
        return float(rest[19])
    except (IndexError, ValueError):
        return None


def cmdline(pid: int) -> list[str]:
    """The process's argv ([] when it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]]


def is_zombie(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rfind(")") + 2 :].startswith("Z")


def alive(pid: int | None, started: float | None) -> bool:
    """True if `pid` runs and is the same process that started at `started` (when known)."""
    if not pid or pid <= 0:
        return False
    st = start_time(pid)
    if st is None or is_zombie(pid):
        return False
    return started is None or abs(st - started) < 1e-6


def children_map() -> dict[int, list[int]]:
    """ppid -> [pid] for every process we can see."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rfind(")") + 2 :].split()
        try:
            ppid = int(rest[1])
        except (IndexError, ValueError):
            continue
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    """All descendants of pid (children first), found by walking /proc."""
    tree = children_map()
    out: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(tree.get(p, []))
    return out


def become_subreaper() -> bool:
    """Make orphaned descendants (e.g. a grandchild that called setsid) re-parent to us, so we can still kill them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def set_undumpable() -> bool:
    """Make this process's memory and /proc files (environ, mem, fd...) unreadable to other processes of the same
    user that lack CAP_SYS_PTRACE: the job wrapper holds the agent's environment (API keys for the wake it starts)
    and a layer-0 job runs as the same user. Reset by execve, so it protects only the process that calls it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent() -> None:
    """preexec hook: deliver SIGKILL to this child when the process that spawned it dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def signal_tree(root_pid: int, pgid: int | None, sig: int) -> None:
    """Send sig to the process group and to every descendant of root_pid (which may have left the group)."""
    if pgid:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for p in descendants(root_pid):
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_tree(root_pid: int, pgid: int | None, grace_s: float, is_done: object = None) -> None:
    """SIGTERM the tree, wait up to grace_s for it to go, then SIGKILL whatever is left."""
    signal_tree(root_pid, pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not descendants(root_pid) and not _group_alive(pgid):
            return
        time.sleep(0.05)
    signal_tree(root_pid, pgid, signal.SIGKILL)


def _group_alive(pgid: int | None) -> bool:
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


# ----------------------------------------------------------------------------------------------- resource watch
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def live_descendants(pid: int) -> list[int]:
    """Descendants that have not yet exited (zombies waiting to be reaped are not counted)."""
    return [p for p in descendants(pid) if not is_zombie(p)]


def rss_mb(pids: list[int]) -> float:
    """Memory held by a process tree, in MB, for the RSS watch that stands in for a cgroup memory cap.

    One process: its resident set (cheap, /proc/PID/statm). Several: the sum of proportional set sizes
    (/proc/PID/smaps_rollup), because forked data-loader workers share copy-on-write pages and summing RSS would
    count them once per worker and kill a healthy job. Processes that vanish mid-read count as zero.
    """
    if len(pids) == 1:
        try:
            fields = Path(f"/proc/{pids[0]}/statm").read_text().split()
            return int(fields[1]) * _PAGE / (1 << 20)
        except (OSError, IndexError, ValueError):
            return 0.0
    total_kb = 0
    for p in pids:
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            try:
                total_kb += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * _PAGE // 1024
            except (OSError, IndexError, ValueError):
                pass
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total_kb += int(line.split()[1])
                break
    return total_kb / 1024


def kill_all(root_pid: int, keep: int | None = None, timeout_s: float = 5.0) -> bool:
    """SIGKILL every live descendant of root_pid, robust against a fork storm. True when none is left.

    A tree that forks as fast as we kill can outrun a plain walk-and-kill. So first freeze it: SIGSTOP every process
    we see, again and again until a sweep finds nobody new (a stopped process cannot fork), then SIGKILL them all.
    Orphans re-parented to us (we are a subreaper) are reaped as they die, except `keep`: the job's own process,
    whose exit status the caller still has to collect with Popen.wait().
    """
    deadline = time.monotonic() + timeout_s
    stopped: set[int] = set()
    while time.monotonic() < deadline:
        new = [p for p in live_descendants(root_pid) if p not in stopped]
        if not new:
            break
        for p in new:
            send(p, signal.SIGSTOP)
            stopped.add(p)
    while time.monotonic() < deadline:
        live = live_descendants(root_pid)
        if not live:
            _reap_orphans(root_pid, keep)
            return True
        for p in live:
            send(p, signal.SIGKILL)
        _reap_orphans(root_pid, keep)
        time.sleep(0.02)
    return not live_descendants(root_pid)


def send(pid: int, sig: int) -> None:
    """Signal one process; one that is already gone (or not ours) is not an error."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap_orphans(root_pid: int, keep: int | None) -> None:
    """Reap our own zombie children (never `keep`), so they stop showing up in /proc."""
    if root_pid != os.getpid():
        return
    for p in children_map().get(root_pid, []):
        if p != keep and is_zombie(p):
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass


def system_tasks() -> int:
    """Tasks (threads included) on the machine: the base for an RLIMIT_NPROC that leaves the user's other work room."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, IndexError, ValueError):
        return 0
