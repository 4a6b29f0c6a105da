"""The test schedulers themselves: a single-node SLURM and a Ray head on this machine, listening on loopback only.

The backends' tests (test_backends_*.py) rely on these fixtures; this module checks the fixtures do what they say.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import clusters


def _listeners(pids: set[int]) -> list[str]:
    """The local addresses on which these processes (and their descendants) accept TCP connections."""
    from nightlab.sandbox import procs

    every = set(pids)
    for p in pids:
        every.update(procs.descendants(p))
    inodes: set[str] = set()
    for p in every:
        try:
            for fd in Path(f"/proc/{p}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A = LISTEN
                continue
            out.append(_addr(f[1].split(":")[0], v6))
    return out


def _addr(hexaddr: str, v6: bool) -> str:
    raw = bytes.fromhex(hexaddr)
    if not v6:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i:i + 4][::-1] for i in range(0, 16, 4)]
    full = b"".join(words)
    if full[:12] == b"\0" * 10 + b"\xff\xff":
        return "::ffff:" + ".".join(str(b) for b in full[12:])
    return full.hex()


def test_slurm_runs_a_job_and_listens_on_loopback_only(slurm_cluster: dict[str, object]) -> None:
    env = {**os.environ, "SLURM_CONF": str(slurm_cluster["conf"])}
    r = subprocess.run(["sbatch", "--parsable", "--wait", "-o", "/dev/null", "--wrap", "true"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    addrs = _listeners({int(p) for p in slurm_cluster["pids"]})  # type: ignore[attr-defined]
    assert addrs, "slurmctld and slurmd should be listening"
    assert all(a in ("127.0.0.1", "::ffff:127.0.0.1") for a in addrs), addrs


def test_ray_runs_a_job_and_listens_on_loopback_only(ray_cluster: dict[str, object]) -> None:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(str(ray_cluster["address"]))
    sid = client.submit_job(entrypoint="echo hello-from-ray")
    deadline = time.monotonic() + 120
    while not client.get_job_status(sid).is_terminal() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "hello-from-ray" in client.get_job_logs(sid)
    addrs = _listeners({int(p) for p in ray_cluster["pids"]})  # type: ignore[attr-defined]
    assert len(addrs) >= 4, addrs  # gcs, dashboard, raylet, object manager, agents...
    assert all(a in ("127.0.0.1", "::ffff:127.0.0.1") for a in addrs), addrs


def test_the_last_user_out_stops_the_scheduler(tmp_path: Path) -> None:
    """A keeper whose users are all gone stops its daemons (a crashed test run leaves no scheduler behind)."""
    why = clusters.slurm_missing()
    if why:
        import pytest

        pytest.skip(why)
    info = clusters.acquire("slurm", tmp_path)
    assert "error" not in info, info
    pids = [int(p) for p in info["pids"]]
    assert all(clusters._pid_running(p) for p in pids)
    clusters.release("slurm", tmp_path)
    assert not any(clusters._pid_running(p) for p in pids)
