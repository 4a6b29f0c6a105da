"""The file system a confined job sees: what is hidden (the user's home, the trees a spec names, daemons' sockets),
what it may write (the worktree, its run folder's out/, opted-in paths), what it may read, and the argument lists
that build that view: bubblewrap's, the Landlock launcher's (confine.py) and macOS' sandbox profile."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from nightlab.sandbox.cgroups import read_or_empty
from nightlab.sandbox.probe import CONFINE, Capabilities, IsolationError, bwrap_base
from nightlab.sandbox.spec import JobSpec

TMPFS_DEFAULT_MB = 2048  # size of each writable tmpfs (/tmp, /dev/shm) when the job has no memory cap
HIDDEN_TMPFS_MB = 1  # the empty, read-only tmpfs laid over a hidden tree
SOCKET_TREES = ("/run", "/var/run")  # where daemons keep their unix sockets (D-Bus, docker, systemd...): hidden


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
            for line in read_or_empty(cfg).splitlines():
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
    argv = [caps.bwrap or "bwrap", *bwrap_base(caps.bwrap_tmpfs_size, mem_mb)]
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
