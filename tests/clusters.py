"""Real schedulers on this machine for the tests: a single-node SLURM (Debian's slurmctld, slurmd, munge) and a Ray
head, every listener on 127.0.0.1, started once per test session and shared by the pytest-xdist workers.

One *keeper* process per scheduler (`python tests/clusters.py keep slurm|ray DIR`) starts the daemons in the
foreground as its children, writes `DIR/info.json` when they answer, and stops them when it gets SIGTERM or when
none of the test processes registered under `DIR/users/` is alive any more — so a crashed test run never leaves a
scheduler behind. `shared_cluster()` (used by the session fixtures in conftest.py) registers the calling worker,
starts the keeper if nobody has, and on teardown the last worker out stops it.

The configurations are what works on this kind of machine (Debian 12, SLURM 22.05, inside a container whose PID 1
is not systemd): proctrack/linuxproc and task/none (no cgroup plugin that needs systemd or a writable cgroup tree;
`CgroupPlugin=disabled` only exists from 23.02, so cgroup.conf says autodetect, which nothing uses with these
plugins), no accounting daemon (finished jobs stay visible to `scontrol show job` for MinJobAge seconds),
`CommunicationParameters=NoCtldInAddrAny,NoInAddrAny` so slurmctld and slurmd bind 127.0.0.1 only, and a munged of
our own on a socket in DIR.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SLURM_TOOLS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scontrol", "scancel")
RAY_MIN_FREE_MB = 2500  # an idle Ray head takes ~1.7 GB with its dashboard and agents
NODE = "nl1"
START_TIMEOUT_S = 90.0
_short_dirs: list[Path] = []  # folders under /tmp this keeper made (short socket paths), removed when it stops


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on 127.0.0.1 right now (held together while choosing so they differ)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def sbin(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)),
                                      None)


def slurm_missing() -> str:
    """Why SLURM cannot run here, or "" when it can."""
    missing = [t for t in SLURM_TOOLS if sbin(t) is None]
    if missing:
        how = "scripts/test-deps.sh installs them as root" if os.geteuid() != 0 else \
            "run scripts/test-deps.sh (apt-get install slurmctld slurmd slurm-client munge)"
        return f"SLURM tools missing ({', '.join(missing)}): {how}"
    return ""


def ray_missing() -> str:
    try:
        import ray  # noqa: F401
    except ImportError:
        return "the ray package is not installed (pip install -e '.[dev]' or 'nightlab[ray]')"
    free = _available_mb()
    if free is not None and free < RAY_MIN_FREE_MB:
        return f"only {free} MB of memory available; a Ray head needs about {RAY_MIN_FREE_MB} MB"
    return ""


def _available_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None


# ----------------------------------------------------------------------------------------------- SLURM
def slurm_env(info: dict[str, Any]) -> dict[str, str]:
    return {"SLURM_CONF": info["conf"]}


def write_slurm_config(d: Path, cpus: int = 2, preempt: bool = False) -> dict[str, Any]:
    """slurm.conf for one node on 127.0.0.1. With `preempt`, a second partition `urgent` of higher priority tier
    whose jobs pre-empt (cancel) the default partition's, as a cluster's high-priority queue does."""
    d.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "log", "munge-key"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    # a socket path must stay under 108 bytes, and every folder above it must be searchable by the users who submit
    short = Path(tempfile.mkdtemp(prefix="nlmunge-", dir="/tmp"))
    short.chmod(0o755)
    _short_dirs.append(short)
    sock = short / "munge.socket"
    # slurmstepd's sockets live in the spool (`<node>_<job>.<step>`): it too must stay short, whatever the base temp
    spool = short / "spool"
    (spool / NODE).mkdir(parents=True)
    (d / "munge-key").chmod(0o700)
    key = d / "munge-key" / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
    ctld_port, slurmd_port = free_ports(2)
    host = socket.gethostname().split(".")[0]
    conf = d / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=nightlabtest",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
        "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", f"AuthInfo=socket={sock}", "CredType=cred/munge",
        f"StateSaveLocation={d / 'state'}", f"SlurmdSpoolDir={spool / '%n'}",
        f"SlurmctldPidFile={d / 'slurmctld.pid'}", f"SlurmdPidFile={d / 'slurmd.pid'}",
        f"SlurmctldLogFile={d / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={d / 'log' / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none", "MpiDefault=none",
        "SchedulerType=sched/backfill", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "ReturnToService=2", "MinJobAge=86400", "KillWait=10", "SlurmdTimeout=30", "InactiveLimit=0",
        f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN",
        *([f"PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP"] if not preempt else [
            "PreemptType=preempt/partition_prio", "PreemptMode=CANCEL",
            f"PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP PriorityTier=1",
            f"PartitionName=urgent Nodes={NODE} MaxTime=INFINITE State=UP PriorityTier=10"]),
        "",
    ]))
    (d / "cgroup.conf").write_text("CgroupPlugin=autodetect\n")
    return {"kind": "slurm", "conf": str(conf), "node": NODE, "partition": "debug", "dir": str(d), "cpus": cpus,
            "munge_socket": str(sock)}


def start_slurm(d: Path, procs: list[subprocess.Popen[bytes]],
                preempt: bool = False) -> tuple[dict[str, Any], list[subprocess.Popen[bytes]]]:
    """Start munged, slurmctld and slurmd in the foreground (appended to `procs` as they start)."""
    info = write_slurm_config(d, preempt=preempt)
    env = {**os.environ, **slurm_env(info)}
    log = open(d / "log" / "daemons.out", "ab")  # noqa: SIM115 - the daemons' stdout for as long as they run

    def daemon(argv: list[str]) -> None:
        procs.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log))

    sock = Path(info["munge_socket"])
    daemon([str(sbin("munged")), "-F", "--force", f"--socket={sock}", f"--key-file={d / 'munge-key' / 'munge.key'}",
            f"--log-file={d / 'log' / 'munged.log'}", f"--pid-file={d / 'munge-key' / 'munged.pid'}",
            f"--seed-file={d / 'munge-key' / 'munged.seed'}"])
    _wait(lambda: sock.exists(), "munged socket", procs)
    daemon([str(sbin("slurmctld")), "-D", "-c"])
    daemon([str(sbin("slurmd")), "-D", "-N", NODE])

    def idle() -> bool:
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True, timeout=20)
        states = r.stdout.split()  # the node once per partition it is in
        return r.returncode == 0 and bool(states) and all(x == "idle" for x in states)

    _wait(idle, "the SLURM node to be idle", procs)
    info["pids"] = [p.pid for p in procs]
    return info, procs


# ----------------------------------------------------------------------------------------------- Ray
def ray_env() -> dict[str, str]:
    return {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def ray_bin() -> str:
    return str(Path(sys.executable).parent / "ray")


def ray_node_argv(temp: Path, ports: list[int], head_port: int | None, cpus: int,
                  resources: dict[str, float] | None = None) -> list[str]:
    """`ray start --block` for a head (head_port None) or a worker joining 127.0.0.1:head_port, all on loopback."""
    (nm, om, ag_grpc, ag_http, rt, metrics, wmin) = ports[:7]
    argv = [ray_bin(), "start", "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}",
            f"--node-manager-port={nm}", f"--object-manager-port={om}", f"--dashboard-agent-grpc-port={ag_grpc}",
            f"--dashboard-agent-listen-port={ag_http}", f"--runtime-env-agent-port={rt}",
            f"--metrics-export-port={metrics}", f"--min-worker-port={wmin}", f"--max-worker-port={wmin + 40}",
            "--object-store-memory=80000000", "--disable-usage-stats"]
    if resources:
        argv.append(f"--resources={json.dumps(resources)}")
    if head_port is None:
        return argv
    return [*argv, f"--address=127.0.0.1:{head_port}"]


def start_ray(d: Path, procs: list[subprocess.Popen[bytes]]) -> tuple[dict[str, Any], list[subprocess.Popen[bytes]]]:
    """Start a Ray head (`ray start --head --block`, its own process group; appended to `procs`)."""
    d.mkdir(parents=True, exist_ok=True)
    # Ray's socket paths must stay short (< 108 bytes): its temp dir lives directly under /tmp
    temp = Path(tempfile.mkdtemp(prefix="nlray-", dir="/tmp"))
    _short_dirs.append(temp)
    gcs, dash, client, *rest = free_ports(3 + 6)
    rest = [*rest, _free_block(41, avoid={gcs, dash, client, *rest})]
    argv = ray_node_argv(temp, rest, None, cpus=2)
    argv[2:2] = ["--head", f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                 f"--ray-client-server-port={client}", "--include-dashboard=true", f"--temp-dir={temp}"]
    log = open(d / "ray.out", "ab")  # noqa: SIM115
    proc = subprocess.Popen(argv, env={**os.environ, **ray_env()}, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    procs.append(proc)
    address = f"http://127.0.0.1:{dash}"

    def up() -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{address}/api/version", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    _wait(up, "the Ray dashboard", procs)
    info = {"kind": "ray", "address": address, "gcs": f"127.0.0.1:{gcs}", "gcs_port": gcs, "temp": str(temp),
            "dir": str(d), "pids": [proc.pid]}
    return info, [proc]


def _free_block(n: int, avoid: set[int]) -> int:
    """A port p such that p..p+n-1 look free (Ray's worker port range) and hold none of `avoid`: the ports already
    chosen for Ray's other components are closed again once chosen, so they look free too, and Ray refuses to start
    when its worker range holds one of them ("trying to use a port number ... used by other components")."""
    for _ in range(50):
        (p,) = free_ports(1)
        if p + n > 65535 or any(p <= q < p + n for q in avoid):
            continue
        ok = True
        for q in range(p, p + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
                    break
        if ok:
            return p
    raise RuntimeError("no block of free ports for Ray workers")


# ----------------------------------------------------------------------------------------------- keeper
def _wait(cond: Any, what: str, procs: list[subprocess.Popen[bytes]], timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (OSError, subprocess.SubprocessError):
            pass
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"waiting for {what}: {dead[0].args[0]} exited with {dead[0].returncode}")
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")


def _users_alive(d: Path) -> bool:
    alive = False
    for f in (d / "users").glob("*"):
        if f.name.isdigit() and _pid_running(int(f.name)):  # a zombie (a killed worker nobody reaped) is gone
            alive = True
        else:
            f.unlink(missing_ok=True)
    return alive


def _stop(procs: list[subprocess.Popen[bytes]], grace_s: float = 20.0) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM) if _own_group(p) else p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL) if _own_group(p) else p.kill()
            p.wait(timeout=10)


def _own_group(p: subprocess.Popen[bytes]) -> bool:
    try:
        return os.getpgid(p.pid) == p.pid
    except ProcessLookupError:
        return False


def keep(kind: str, d: Path) -> int:
    """The keeper's main: start the scheduler, publish info.json, stop it when told or when its users are gone."""
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    procs: list[subprocess.Popen[bytes]] = []
    started = False
    try:
        if kind == "slurm-preempt":  # a private SLURM whose `urgent` partition pre-empts the default one
            info, procs = start_slurm(d / kind, procs, preempt=True)
        else:
            info, procs = (start_slurm if kind == "slurm" else start_ray)(d / kind, procs)
        info["keeper"] = os.getpid()
        _atomic_json(d / "info.json", info)
        started = True
        while not stop["now"] and _users_alive(d) and all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except Exception as e:  # reported to the waiting fixture, which fails with it (the keeper is gone by then)
        _atomic_json(d / "info.json", {"error": f"{type(e).__name__}: {e}"})
    finally:
        # Ray's dashboard modules take ~20 s to honour SIGTERM; its state is throwaway here, so 3 s then SIGKILL
        _stop(procs, 3.0 if kind == "ray" else 20.0)
        if started:
            (d / "info.json").unlink(missing_ok=True)
        for short in _short_dirs:
            shutil.rmtree(short, ignore_errors=True)
    return 0


def _atomic_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _keeper_alive(info: dict[str, Any]) -> bool:
    pid = int(info.get("keeper", 0) or 0)
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # we started it and it has exited: reap it
            return False
    return _pid_running(pid)  # a zombie nobody reaps (its parent worker has gone) counts as gone


def acquire(kind: str, base: Path) -> dict[str, Any]:
    """Register this process as a user of the shared `kind` scheduler under `base`, starting it if needed.
    Returns its info (or {"error": ...})."""
    d = base / f"nightlab-{kind}"
    (d / "users").mkdir(parents=True, exist_ok=True)
    with _flock(d / "lock"):
        (d / "users" / str(os.getpid())).touch()
        info = _read_info(d)
        if info is None or not _keeper_alive(info):
            (d / "info.json").unlink(missing_ok=True)
            subprocess.Popen([sys.executable, __file__, "keep", kind, str(d)], stdin=subprocess.DEVNULL,
                             stdout=open(d / "keeper.out", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                             start_new_session=True, cwd=str(d))
            deadline = time.monotonic() + START_TIMEOUT_S + 30
            while (info := _read_info(d)) is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if info is None:
                info = {"error": f"the {kind} keeper did not report within {START_TIMEOUT_S + 30:g} s "
                                 f"(see {d / 'keeper.out'})"}
        return info


def release(kind: str, base: Path) -> None:
    """Unregister this process; the last user out stops the scheduler."""
    d = base / f"nightlab-{kind}"
    with _flock(d / "lock"):
        (d / "users" / str(os.getpid())).unlink(missing_ok=True)
        if _users_alive(d):
            return
        info = _read_info(d)
        if info and _keeper_alive(info):
            os.kill(int(info["keeper"]), signal.SIGTERM)
            deadline = time.monotonic() + 60
            while _keeper_alive(info) and time.monotonic() < deadline:
                time.sleep(0.1)


def _pid_running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:][:1] not in ("Z", "X")


def _read_info(d: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((d / "info.json").read_text())
        return data
    except (FileNotFoundError, json.JSONDecodeError):
        return None


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "keep":
        sys.exit(keep(sys.argv[2], Path(sys.argv[3])))
    print("usage: clusters.py keep slurm|slurm-preempt|ray DIR", file=sys.stderr)
    sys.exit(2)
