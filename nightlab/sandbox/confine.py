"""Layer 2 launcher: confine this process with Landlock and a seccomp filter, then exec the job.

    python -I -S .../nightlab/sandbox/confine.py --rw DIR ... --ro DIR ... --hide DIR ... [--mask SOCKET ...]
        [--mem-mb N] [--tmpdir DIR] [--report FILE] [--no-namespaces] [--net] -- argv...

Why a separate launcher: Landlock and seccomp restrict the *calling* thread and everything it later executes, so they
must be applied in the process that becomes the job, after the wrapper has forked but before the job's code runs.
Doing it from a `preexec_fn` would work too, but a tiny standalone program keeps the wrapper free of the restriction
and makes the layer testable on its own (`--self-test`).

This file imports only the standard library and nothing of nightlab, so it can run with `python -I -S` by path:
no site-packages, no user environment variables, ~10 ms of start-up.

What it enforces
- Private namespaces first, where this process may make them (as root, or through a user namespace when the kernel
  allows unprivileged ones; `--no-namespaces` skips this): a mount namespace with a private /tmp and /dev/shm (tmpfs
  of the memory cap's size, gone with the job), an empty read-only /var/tmp, every named unix socket the caller found
  outside (`--mask`, from /proc/net/unix) covered by /dev/null, and, as root, a fresh /proc mounted `hidepid=2` (with
  Landlock's ptrace wall, other processes' /proc entries, command lines included, are invisible); and a network
  namespace (unless `--net`): no interface at all, and abstract unix sockets are per network namespace. Where none
  can be made, the job keeps the host's /dev/shm (PyTorch data loaders need one) and gets `--tmpdir` as TMPDIR, and
  what the kernel cannot enforce without namespaces is listed under Known gaps. `--report FILE` receives what was
  applied (JSON, written before any restriction and before the job starts).
- File system (Landlock, any ABI): everything is readable and executable except the `--hide` trees (and /tmp,
  /var/tmp, the user's home, which the caller passes as hidden); `--ro` paths inside hidden trees are readable again;
  `--rw` paths are fully writable; /dev is read/write for existing devices only (no creating or removing nodes);
  /dev/shm is writable (PyTorch data loaders need it). Landlock rules are hierarchical and only grant, so hiding a tree
  means granting read on each of its siblings along the path from `/` instead of granting `/` itself.
- Network (unless `--net`): a seccomp filter makes socket(AF_INET / AF_INET6 / AF_PACKET) fail with EACCES and
  io_uring_setup fail with EPERM (io_uring can open sockets without the socket syscall); on Landlock ABI >= 4 TCP
  bind/connect are refused too, so the network stays closed even where the seccomp filter is unavailable.
- Signals and abstract unix sockets outside the sandbox (Landlock ABI >= 6 scopes), and ptrace / /proc/PID/environ of
  processes outside it (Landlock, any ABI): the job cannot read the agent's environment through /proc.
- PR_SET_NO_NEW_PRIVS: setuid binaries cannot raise privileges (and both Landlock and seccomp require it).
- All capabilities dropped (bounding set included) when the agent runs as root: Landlock's ptrace wall and the
  file rules are bypassable by CAP_SYS_PTRACE / CAP_SYS_ADMIN / CAP_NET_RAW otherwise. Probed here: as root, a
  confined job could read the wrapper's /proc/PID/environ until the capabilities were dropped.

Known gaps: Landlock does not govern stat (a hidden file's existence shows, not its content), chmod/chown/utime,
connecting to existing *named* unix sockets (covered by the mount namespace's /dev/null masks where one could be
made), reading /proc/PID/cmdline (world-readable; hidden by the hidepid /proc only as root), or descriptors opened
before the restriction (none are: close_fds).
Protected files inside the worktree cannot be carved out read-only (rules only grant); the runner's before/after
hashes detect a change instead.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys
from collections.abc import Callable

# ----------------------------------------------------------------------------------------------------- Landlock
SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture (generic syscall table, Linux 5.13+)
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1

FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # the rights a file rule may hold
READ_RIGHTS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
DEV_RIGHTS = FS_READ_FILE | FS_WRITE_FILE | FS_READ_DIR | FS_TRUNCATE | FS_IOCTL_DEV

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _PathBeneath(ctypes.Structure):
    _pack_ = 1  # the kernel struct is __attribute__((packed)): u64 + s32 = 12 bytes
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class ConfineError(Exception):
    """A restriction could not be applied: the job must not start (the caller asked for this layer)."""


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers; 0 when Landlock is missing or disabled at boot."""
    try:
        v = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION)
    except (AttributeError, OSError):
        return 0
    return int(v) if v > 0 else 0


def landlock_abi_reason() -> str:
    """Why Landlock is unavailable, in words (empty when it is available)."""
    v = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION)
    if v > 0:
        return ""
    e = ctypes.get_errno()
    if e == errno.ENOSYS:
        return "kernel has no Landlock (needs Linux 5.13+ built with CONFIG_SECURITY_LANDLOCK)"
    if e == errno.EOPNOTSUPP:
        return "Landlock is built in but not enabled at boot (add landlock to the lsm= kernel parameter)"
    return f"landlock_create_ruleset failed: {os.strerror(e)}"


def fs_rights(abi: int) -> int:
    """Every file-system right the given ABI knows: all of them are 'handled', i.e. denied unless a rule grants."""
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def _norm(p: str) -> str:
    return os.path.realpath(os.path.abspath(p))


def _under(path: str, root: str) -> bool:
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


def read_rule_paths(hidden: list[str]) -> list[str]:
    """Paths to grant read+execute on so that everything is readable except the hidden trees.

    Landlock only grants, hierarchically: a rule on `/` would expose the hidden trees too. So we walk from `/` down
    towards each hidden path and grant each sibling that neither is nor contains a hidden path. A symlink whose target
    contains or lies in a hidden tree is skipped (its target is covered, or deliberately not, where it really lives).
    """
    hide = sorted({_norm(h) for h in hidden if h and _norm(h) != "/"})
    hide = [h for h in hide if not any(h != o and _under(h, o) for o in hide)]  # drop nested duplicates
    if not hide:
        return ["/"]
    out: list[str] = []

    def walk(d: str) -> None:
        try:
            entries = list(os.scandir(d))
        except OSError:
            return
        for entry in entries:
            p = entry.path
            real = _norm(p)
            if real in hide or any(_under(real, h) for h in hide):
                continue  # a hidden tree, or a link into one
            if any(_under(h, real) for h in hide):
                if not entry.is_symlink() and real == p:
                    walk(p)  # an ancestor of a hidden tree: open it up entry by entry
                continue  # a link to an ancestor of a hidden tree: its real location is walked instead
            out.append(p)

    walk("/")
    return out


def apply_landlock(rw: list[str], ro: list[str], hidden: list[str], allow_network: bool, abi: int) -> list[str]:
    """Restrict this process (and what it execs) with Landlock. Returns notes about what was applied."""
    if abi <= 0:
        raise ConfineError(landlock_abi_reason() or "Landlock unavailable")
    handled = fs_rights(abi)
    handled_net = 0 if allow_network or abi < 4 else NET_BIND_TCP | NET_CONNECT_TCP
    scoped = (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if abi >= 6 else 0
    if abi >= 6:
        attr = struct.pack("QQQ", handled, handled_net, scoped)
    elif abi >= 4:
        attr = struct.pack("QQ", handled, handled_net)
    else:
        attr = struct.pack("Q", handled)
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), 0)
    if fd < 0:
        raise ConfineError(f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    notes = [f"landlock ABI {abi}"]
    try:
        rules: list[tuple[str, int]] = [(p, READ_RIGHTS) for p in read_rule_paths(hidden)]
        rules += [(p, READ_RIGHTS) for p in ro]
        rules += [("/dev", DEV_RIGHTS), ("/dev/shm", handled)]
        rules += [(p, handled) for p in rw]
        for path, rights in rules:
            _add_rule(fd, path, rights & handled)
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise ConfineError(f"prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
        if _libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, fd, 0) != 0:
            raise ConfineError(f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    if handled_net:
        notes.append("landlock tcp bind/connect refused")
    return notes


def _add_rule(ruleset_fd: int, path: str, rights: int) -> None:
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist grants nothing; that is the safe direction
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
        attr = _PathBeneath(rights, pfd)
        if _libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(attr), 0) != 0:
            e = ctypes.get_errno()
            raise ConfineError(f"landlock_add_rule({path}): {os.strerror(e)}")
    finally:
        os.close(pfd)


# ----------------------------------------------------------------------------------------------------- namespaces
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
CAP_SYS_ADMIN = 21


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> int:
    """mount(2); 0 or the errno."""
    r = _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                    data.encode() if data else None)
    return 0 if r == 0 else ctypes.get_errno()


def _has_cap(cap: int) -> bool:
    hdr = ctypes.create_string_buffer(struct.pack("Ii", LINUX_CAPABILITY_VERSION_3, 0), 8)
    data = ctypes.create_string_buffer(24)
    if _libc.capget(hdr, data) != 0:
        return False
    effective = struct.unpack("IIIIII", data.raw)[0::3]  # (effective, permitted, inheritable) x 2 words
    return bool(effective[cap // 32] & (1 << (cap % 32)))


def enter_namespaces(new_net: bool) -> tuple[bool, str]:
    """unshare a mount (and network) namespace: directly with CAP_SYS_ADMIN, else inside a new user namespace that
    maps this uid/gid onto themselves. (ok, "root" | "userns" | why not)."""
    flags = CLONE_NEWNS | (CLONE_NEWNET if new_net else 0)
    if _has_cap(CAP_SYS_ADMIN) and _libc.unshare(flags) == 0:
        return True, "root"
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(flags | CLONE_NEWUSER) != 0:
        return False, f"unshare refused: {os.strerror(ctypes.get_errno())}"
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError as e:
        return False, f"user namespace id maps refused: {e.strerror}"
    return True, "userns"


MS_REMOUNT = 32
ST_FLAGS_TO_MS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024, 2048: 2048, 4096: 1 << 21}


def private_mounts(mem_mb: int, keep: list[str], read_only: list[str], masks: list[str],
                   hide_procs: bool) -> dict[str, object]:
    """In the new mount namespace: nothing propagates back; private, size-capped /tmp and /dev/shm (paths the job
    needs under /tmp, its worktree say, are bound back onto the new tmpfs); an empty read-only /var/tmp; the
    `read_only` files (protected ones) bound read-only onto themselves; sockets covered by /dev/null; /proc with
    other processes hidden (root only). Returns what worked (a mask whose socket vanished meanwhile is skipped)."""
    done: dict[str, object] = {}
    if _mount("none", "/", None, MS_REC | MS_PRIVATE) != 0:
        raise ConfineError(f"cannot make the mount namespace private: {os.strerror(ctypes.get_errno())}")
    covered = [p for p in keep if _under(_norm(p), "/tmp")]
    held = {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p in covered if os.path.exists(p)}
    size = f"size={max(mem_mb, 1)}m"
    for target in ("/tmp", "/dev/shm"):
        if os.path.isdir(target):
            err = _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode=1777")
            if err:
                raise ConfineError(f"cannot mount a private {target}: {os.strerror(err)}")
    for path in sorted(held, key=lambda x: x.count("/")):
        fd = held[path]
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        err = _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
        if err:
            raise ConfineError(f"cannot keep {path} visible over the private /tmp: {os.strerror(err)}")
    done["private_tmp"] = True
    if os.path.isdir("/var/tmp"):
        _mount("tmpfs", "/var/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=1m,mode=755")
    frozen = 0
    for path in read_only:
        if _mount(path, path, None, MS_BIND) == 0:
            frozen += _mount("none", path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(path)) == 0
    done["read_only_files"] = frozen
    done["sockets_masked"] = sum(_mount("/dev/null", m, None, MS_BIND) == 0 for m in masks)
    os.chdir(os.getcwd())  # the working directory still pointed into the mounts as they were: enter the new ones
    # hidepid exempts the group named by gid= (root's group by default, which a root job is in): name one it is not
    gid = next(g for g in (65534, 65533, 65532) if g != os.getegid() and g not in os.getgroups())
    done["proc_hidden"] = hide_procs and _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                                f"hidepid=2,gid={gid}") == 0
    return done


def _locked_flags(path: str) -> int:
    """The mount flags a remount inside a user namespace must keep (nosuid, nodev, noexec, atime flags)."""
    try:
        f_flag = os.statvfs(path).f_flag
    except OSError:
        return 0
    return sum(ms for st, ms in ST_FLAGS_TO_MS.items() if f_flag & st and ms != MS_RDONLY)


# ----------------------------------------------------------------------------------------------------- capabilities
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522


def drop_capabilities() -> bool:
    """Give up every capability, for good (bounding set emptied first, so exec cannot bring them back).

    Matters when the agent runs as root (containers, CI): Landlock confines the file system, but a root job with
    CAP_SYS_PTRACE / CAP_SYS_ADMIN / CAP_NET_RAW could still read other processes' memory and environment or reach
    the network by other means. Returns False when nothing needed dropping (an ordinary user has no capabilities).
    """
    hdr = struct.pack("Ii", LINUX_CAPABILITY_VERSION_3, 0)
    data = ctypes.create_string_buffer(24)
    if _libc.capget(ctypes.create_string_buffer(hdr, 8), data) != 0:
        return False
    if not any(data.raw):
        return False
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break  # past the last capability this kernel knows
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if _libc.capset(ctypes.create_string_buffer(hdr, 8), ctypes.create_string_buffer(24)) != 0:
        raise ConfineError(f"capset: {os.strerror(ctypes.get_errno())}")
    return True


# ----------------------------------------------------------------------------------------------------- seccomp
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
SYSCALLS = {"x86_64": {"socket": 41, "io_uring_setup": 425}, "aarch64": {"socket": 198, "io_uring_setup": 425}}
X32_SYSCALL_BIT = 0x40000000
AF_INET, AF_INET6, AF_PACKET = 2, 10, 17
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
RET_KILL_PROCESS = 0x80000000
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_RET_K = 0x06


def machine() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def seccomp_supported() -> str:
    """Empty when we have a filter for this architecture, else why not."""
    if machine() not in AUDIT_ARCH:
        return f"no seccomp filter written for the {machine()} architecture"
    return ""


def seccomp_program(arch: str) -> list[tuple[int, int, int, int]]:
    """The BPF program, as (code, jt, jf, k) tuples: refuse inet/packet sockets and io_uring, allow the rest.

    seccomp_data layout: nr (u32) at 0, arch (u32) at 4, ip (u64) at 8, args[6] (u64) from 16; on little-endian
    machines the low half of args[0] (the socket domain) is at 16. A foreign architecture (a 32-bit binary) is killed:
    its socketcall multiplexer would slip past the socket check.
    """
    nr = SYSCALLS[arch]
    # jumps are relative: jt/jf count the instructions skipped after the jump itself
    prog: list[tuple[int, int, int, int]] = [
        (BPF_LD_W_ABS, 0, 0, 4),  # 0 A = arch
        (BPF_JEQ_K, 1, 0, AUDIT_ARCH[arch]),  # 1 native? skip the kill
        (BPF_RET_K, 0, 0, RET_KILL_PROCESS),  # 2
        (BPF_LD_W_ABS, 0, 0, 0),  # 3 A = nr
    ]
    if arch == "x86_64":
        prog.append((BPF_JGE_K, 0, 1, X32_SYSCALL_BIT))  # 4 x32 ABI call? -> refuse
        prog.append((BPF_RET_K, 0, 0, RET_ERRNO | errno.EPERM))  # 5
    tail: list[tuple[int, int, int, int]] = [
        (BPF_JEQ_K, 0, 1, nr["io_uring_setup"]),  # a+0
        (BPF_RET_K, 0, 0, RET_ERRNO | errno.EPERM),  # a+1
        (BPF_JEQ_K, 0, 4, nr["socket"]),  # a+2 not socket -> allow (a+7)
        (BPF_LD_W_ABS, 0, 0, 16),  # a+3 A = domain
        (BPF_JEQ_K, 3, 0, AF_INET),  # a+4 -> refuse (a+8)
        (BPF_JEQ_K, 2, 0, AF_INET6),  # a+5 -> refuse
        (BPF_JEQ_K, 1, 0, AF_PACKET),  # a+6 -> refuse
        (BPF_RET_K, 0, 0, RET_ALLOW),  # a+7
        (BPF_RET_K, 0, 0, RET_ERRNO | errno.EACCES),  # a+8
    ]
    return prog + tail


def apply_seccomp() -> None:
    """Install the socket filter on this process (NO_NEW_PRIVS must be set, or we set it)."""
    why = seccomp_supported()
    if why:
        raise ConfineError(why)
    prog = seccomp_program(machine())
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    filt = ctypes.create_string_buffer(raw, len(raw))

    class _Fprog(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

    fprog = _Fprog(len(prog), ctypes.cast(filt, ctypes.c_void_p))
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise ConfineError(f"prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise ConfineError(f"seccomp filter: {os.strerror(ctypes.get_errno())}")


# ----------------------------------------------------------------------------------------------------- self-test
def self_test(rw_dir: str, hidden_dir: str) -> dict[str, object]:
    """Apply both restrictions to this process and check they bite. Run in a throwaway child (`--self-test`)."""
    import json
    import socket

    out: dict[str, object] = {"landlock_abi": landlock_abi(), "landlock": False, "seccomp": False, "errors": []}
    errors: list[str] = []
    secret = os.path.join(hidden_dir, "secret")
    with open(secret, "w") as f:
        f.write("x")
    abi = landlock_abi()
    try:
        apply_landlock([rw_dir], [], [hidden_dir], allow_network=True, abi=abi)
        ok_write = _try(lambda: os.close(os.open(os.path.join(rw_dir, "ok"), os.O_WRONLY | os.O_CREAT, 0o600)))
        denied_read = not _try(lambda: os.close(os.open(secret, os.O_RDONLY)))
        out["landlock"] = ok_write and denied_read
        if not out["landlock"]:
            errors.append(f"landlock applied but did not bite (write ok={ok_write}, read denied={denied_read})")
    except ConfineError as e:
        errors.append(f"landlock: {e}")
    try:
        apply_seccomp()
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
            errors.append("seccomp applied but an inet socket still opened")
        except PermissionError:
            out["seccomp"] = True
    except ConfineError as e:
        errors.append(f"seccomp: {e}")
    out["errors"] = errors
    print(json.dumps(out))
    return out


def _try(fn: Callable[[], object]) -> bool:
    try:
        fn()
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------------- main
USAGE = ("usage: confine.py [--rw P]... [--ro P]... [--hide P]... [--ro-file F]... [--mask SOCKET]... [--mem-mb N] "
         "[--tmpdir P] "
         "[--report FILE] [--no-namespaces] [--no-seccomp] [--net] -- argv... | --self-test RW HID")


def main(args: list[str]) -> int:
    if args[:1] == ["--self-test"] and len(args) == 3:
        self_test(args[1], args[2])
        return 0
    lists: dict[str, list[str]] = {"--rw": [], "--ro": [], "--hide": [], "--mask": [], "--ro-file": []}
    opts: dict[str, str] = {"--tmpdir": "", "--mem-mb": "0", "--report": ""}
    flags = {"--net": False, "--no-seccomp": False, "--no-namespaces": False}
    i = 0
    while i < len(args) and args[i] != "--":
        a = args[i]
        if (a in lists or a in opts) and i + 1 < len(args):
            if a in lists:
                lists[a].append(args[i + 1])
            else:
                opts[a] = args[i + 1]
            i += 2
            continue
        if a not in flags:
            print(f"nightlab confine: unknown option {a!r}\n{USAGE}", file=sys.stderr)
            return 2
        flags[a] = True
        i += 1
    argv = args[i + 1 :]
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    net = flags["--net"]
    rw, ro, hide = lists["--rw"], lists["--ro"], lists["--hide"]
    report: dict[str, object] = {"namespaces": "", "why_not": "skipped (--no-namespaces)"}
    report_fd = _open_report(opts["--report"])  # before any mount can cover the run dir
    try:
        if not flags["--no-namespaces"]:
            ok, how = enter_namespaces(new_net=not net)
            if ok:
                report.update(private_mounts(int(opts["--mem-mb"] or 0), [*rw, *ro], lists["--ro-file"],
                                             lists["--mask"], hide_procs=how == "root"))
                report.update(namespaces=how, why_not="", netns=not net)
                rw += ["/tmp", "/dev/shm"]
                hide = [h for h in hide if h != "/tmp"]
                os.environ["TMPDIR"] = "/tmp"
            else:
                report["why_not"] = how
        if not report["namespaces"] and opts["--tmpdir"]:
            os.environ["TMPDIR"] = opts["--tmpdir"]
            rw.append(opts["--tmpdir"])
        _write_report(report_fd, report)
        _die_with_parent()  # entering a user namespace may clear it
        apply_landlock(rw, ro, hide, allow_network=net, abi=landlock_abi())
        drop_capabilities()
        if not net and not flags["--no-seccomp"]:
            apply_seccomp()
    except ConfineError as e:
        print(f"nightlab confine: refusing to run unconfined: {e}", file=sys.stderr)
        return 126
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        print(f"nightlab confine: could not start {argv[0]!r}: {e.strerror}", file=sys.stderr)
        return 127
    return 127  # not reached


def _open_report(path: str) -> int | None:
    """The file that tells the wrapper what was applied (a new file only: never through a link)."""
    if not path:
        return None
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:
        return None


def _write_report(fd: int | None, report: dict[str, object]) -> None:
    if fd is None:
        return
    import json

    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(report))


def _die_with_parent() -> None:
    import signal

    _libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
