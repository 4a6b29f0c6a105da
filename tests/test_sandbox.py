"""The sandbox against real escape attempts and resource faults, through the real detached wrapper (runner.launch).

Each escape test runs once per confinement layer; a layer this machine lacks is skipped with the reason the probe
found (so a skip here says exactly why, e.g. "bwrap cannot create its sandbox here: ... Operation not permitted").
Jobs are tiny `python -c` programs; the whole file runs in well under a minute on two cores.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightlab.sandbox import isolate, procs, runner
from nightlab.sandbox.spec import LOG_FILE, JobSpec, JobStatus

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox tests need Linux (/proc, namespaces)")

CONFINING = ["bwrap", "landlock"]
ALL_LAYERS = ["none", "bwrap", "landlock"]


@pytest.fixture(scope="session")
def _probe_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("isolation-cache")


@pytest.fixture(autouse=True)
def _shared_probe_cache(_probe_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One probe for the whole file (each wrapper process reads the same cache) instead of one per test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(_probe_cache))


@pytest.fixture
def caps(_shared_probe_cache: None) -> isolate.Capabilities:
    return isolate.probe()


def need(layer: str, caps: isolate.Capabilities) -> None:
    """Skip with the probe's own words when `layer` is not available on this machine."""
    why = caps.unavailable(layer) if layer != "none" else ""
    if why:
        pytest.skip(f"{layer} unavailable here: {why}")


def run_job(tmp: Path, code: str, *, isolation: str, name: str = "job", env: dict[str, str] | None = None,
            timeout: float = 20.0, grace: float = 0.5, wait_for: float = 30.0, **kw: object) -> tuple[JobStatus, str]:
    """Run `python -c code` in tmp/wt through the detached wrapper; return its status and log."""
    wt = tmp / "wt"
    wt.mkdir(exist_ok=True)
    run_dir = tmp / "runs" / name
    if env is None:
        env = isolate.job_environment(dict(os.environ), {"PYTHONUNBUFFERED": "1"}, [])
    spec = JobSpec(job_id=name, argv=[sys.executable, "-c", code], cwd=str(wt), run_dir=str(run_dir), env=env,
                   timeout_s=timeout, grace_s=grace, isolation=isolation, **kw)  # type: ignore[arg-type]
    pids = runner.launch(spec)
    status = wait_status(run_dir, wait_for)
    wait_gone(int(pids["wrapper_pid"]))
    log = (run_dir / LOG_FILE).read_text(errors="replace") if (run_dir / LOG_FILE).exists() else ""
    return status, log


def wait_status(run_dir: Path, seconds: float) -> JobStatus:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        st = runner.read_status(run_dir)
        if st is not None:
            return st
        time.sleep(0.03)
    err = (run_dir / "wrapper.err").read_text() if (run_dir / "wrapper.err").exists() else ""
    raise AssertionError(f"no status.json after {seconds} s; wrapper.err: {err[-2000:]}")


def wait_gone(pid: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and procs.alive(pid, None):
        time.sleep(0.02)


def marked(marker: str) -> list[int]:
    """Live processes whose command line contains marker (the test's way to find a job's descendants by pid)."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd and not procs.is_zombie(int(entry.name)):
            out.append(int(entry.name))
    return out


# ----------------------------------------------------------------------------------------------------- probe & API
def test_probe_is_cached_and_described(caps: isolate.Capabilities, _probe_cache: Path) -> None:
    data = json.loads((_probe_cache / "nightlab" / "isolation.json").read_text())
    assert data["key"] == caps.key and caps.kernel in caps.key
    text = caps.describe()
    assert "layer 1" in text and "layer 2" in text and "auto picks" in text
    assert caps.best() in ("bwrap", "landlock", "")


def test_missing_layer_is_a_clear_error() -> None:
    none = isolate.Capabilities(system="Linux", bwrap_reason="bwrap not installed", landlock_reason="no Landlock")
    with pytest.raises(isolate.IsolationError, match=r"bwrap.*unavailable here: bwrap not installed"):
        isolate.check("bwrap", none)
    with pytest.raises(isolate.IsolationError, match="--unsafe-no-sandbox"):
        isolate.check("auto", none)
    assert isolate.check("none", none) == "none"
    only_ll = isolate.Capabilities(system="Linux", landlock_ok=True, bwrap_reason="x")
    assert isolate.check("auto", only_ll) == "landlock"


def test_required_layer_missing_fails_the_job(tmp_path: Path, caps: isolate.Capabilities,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The wrapper reads the same cache: a probe that found no bwrap makes isolation='bwrap' fail with its reason,
    and 'auto' fall back to Landlock (layer 2) when that works."""
    cache = tmp_path / "cache"
    stored = {k: v for k, v in caps.__dict__.items() if not k.startswith("cgroup")}
    stored.update(bwrap_ok=False, bwrap_reason="disabled for this test")
    (cache / "nightlab").mkdir(parents=True)
    (cache / "nightlab" / "isolation.json").write_text(json.dumps(stored))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    status, log = run_job(tmp_path, "print('ran')", isolation="bwrap", name="need-bwrap")
    assert status.state == "failed" and "disabled for this test" in status.reason and "ran" not in log
    if caps.landlock_ok:
        status, log = run_job(tmp_path, "print('ran')", isolation="auto", name="auto")
        assert status.state == "succeeded" and "landlock" in status.isolation, (status, log)


def test_job_environment_never_passes_secrets() -> None:
    base = {"PATH": "/bin", "OPENAI_API_KEY": "sk-1", "HF_TOKEN": "t", "DB_PASSWORD": "p", "CUDA_HOME": "/c",
            "RANDOM_VAR": "r", "MY_SECRET_THING": "s"}
    env = isolate.job_environment(base, {"GITHUB_TOKEN": "g", "FOO": "1"}, ["OPENAI_API_KEY", "RANDOM_VAR"])
    assert env == {"PATH": "/bin", "CUDA_HOME": "/c", "RANDOM_VAR": "r", "FOO": "1", **isolate.JOB_DEFAULTS}


def test_bwrap_mounts_hidden_home_before_binding_back(tmp_path: Path, caps: isolate.Capabilities) -> None:
    home = tmp_path / "home"
    wt = home / "proj" / "wt"
    venv = home / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python").symlink_to(sys.executable)
    wt.mkdir(parents=True)
    (wt / "eval.py").write_text("x")
    spec = JobSpec(job_id="a", argv=[str(venv / "bin" / "python"), "t.py"], cwd=str(wt), run_dir=str(home / "run"),
                   env={"HOME": str(home)}, timeout_s=1, hidden=["/nonexistent"], protected={"eval.py": "h"})
    argv = isolate.bwrap_argv(spec, caps)
    joined = " ".join(argv)
    i_home = argv.index(str(home)) if str(home) in argv else -1
    assert "--unshare-net" in argv and "--unshare-pid" in argv and "--die-with-parent" in argv
    if not str(home).startswith("/tmp/"):  # under /tmp the private /tmp already hides it
        assert argv[i_home - 1] == "--tmpfs"
    assert f"--bind {wt} {wt}" in joined and f"--ro-bind {venv} {venv}" in joined
    assert joined.index(f"--bind {wt} {wt}") < joined.index(f"--ro-bind {wt / 'eval.py'}")
    assert argv[argv.index("--chdir") + 1] == str(wt) and argv[-2:] == [str(venv / "bin" / "python"), "t.py"]


# ----------------------------------------------------------------------------------------------------- escapes
@pytest.mark.parametrize("layer", CONFINING)
def test_cannot_write_outside_the_worktree(tmp_path: Path, layer: str, caps: isolate.Capabilities) -> None:
    need(layer, caps)
    outside_dir = Path(f"/var/tmp/nightlab-test-{uuid.uuid4().hex[:8]}")
    outside_dir.mkdir()
    try:
        run_dir = tmp_path / "runs" / "job"
        targets = [tmp_path / "outside.txt", outside_dir / "x.txt", run_dir / "status.json", run_dir / "new.txt"]
        code = (
            "import os\n"
            f"for p in {[str(t) for t in targets]!r}:\n"
            "    try:\n        open(p, 'w').write('escaped'); print('WROTE', p)\n"
            "    except OSError as e:\n        print('DENIED', p, e.errno)\n"
            "open('inside.txt', 'w').write('ok')\n"
            f"open({str(run_dir / 'out' / 'artifact.txt')!r}, 'w').write('ok')\n"
        )
        status, log = run_job(tmp_path, code, isolation=layer)
        assert status.state == "succeeded", (status, log)
        assert layer in status.isolation
        # under bubblewrap a write to /tmp lands in the job's private /tmp: what matters is that nothing shows here
        assert not (run_dir / "new.txt").exists() and not targets[0].exists() and not targets[1].exists(), log
        assert "escaped" not in (run_dir / "status.json").read_text()
        assert (tmp_path / "wt" / "inside.txt").read_text() == "ok"
        assert (run_dir / "out" / "artifact.txt").read_text() == "ok"
    finally:
        shutil.rmtree(outside_dir, ignore_errors=True)


@pytest.mark.parametrize("layer", CONFINING)
def test_cannot_read_the_users_home(tmp_path: Path, layer: str, caps: isolate.Capabilities) -> None:
    need(layer, caps)
    secret = f"home-secret-{uuid.uuid4().hex}"
    fake_home = tmp_path / "home"
    fake_home.mkdir()
    (fake_home / "secret.txt").write_text(secret)
    real = Path.home() / f".nightlab-sandbox-test-{uuid.uuid4().hex[:8]}"
    try:
        real.write_text(secret)
    except OSError:
        real = fake_home / "secret.txt"
    try:
        env = isolate.job_environment(dict(os.environ), {"HOME": str(fake_home)}, [])
        code = (
            f"for p in {[str(fake_home / 'secret.txt'), str(real)]!r}:\n"
            "    try:\n        print('READ', open(p).read())\n"
            "    except OSError as e:\n        print('DENIED', p, type(e).__name__)\n"
        )
        status, log = run_job(tmp_path, code, isolation=layer, env=env)
        # the interpreter may itself live under the hidden home (pyenv here): running at all proves the bind-back
        assert status.state == "succeeded", (status, log)
        assert secret not in log and log.count("DENIED") == 2, log
    finally:
        if real.parent != fake_home:
            real.unlink(missing_ok=True)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


def _accepted(srv: socket.socket) -> bool:
    try:
        conn, _ = srv.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


CONNECT = (
    "import socket\n"
    "try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3).close(); print('CONNECTED')\n"
    "except OSError as e:\n    print('BLOCKED', e.errno)\n"
)


@pytest.mark.parametrize("layer", CONFINING)
def test_cannot_open_an_inet_socket(tmp_path: Path, layer: str, caps: isolate.Capabilities,
                                    listener: socket.socket) -> None:
    need(layer, caps)
    status, log = run_job(tmp_path, CONNECT.format(port=listener.getsockname()[1]), isolation=layer)
    assert status.state == "succeeded" and "BLOCKED" in log, log
    assert "no-network" in status.isolation
    assert not _accepted(listener)


@pytest.mark.parametrize("layer", CONFINING)
def test_network_opt_in(tmp_path: Path, layer: str, caps: isolate.Capabilities, listener: socket.socket) -> None:
    need(layer, caps)
    status, log = run_job(tmp_path, CONNECT.format(port=listener.getsockname()[1]), isolation=layer,
                          allow_network=True)
    assert "CONNECTED" in log, log
    assert "no-network" not in status.isolation
    assert _accepted(listener)


@pytest.mark.parametrize("layer", ALL_LAYERS)
def test_protected_file_change_is_blocked_or_recorded(tmp_path: Path, layer: str, caps: isolate.Capabilities) -> None:
    need(layer, caps)
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / "eval.py").write_text("ORIGINAL")
    code = (
        "try:\n    open('eval.py', 'w').write('HACKED'); print('MODIFIED')\n"
        "except OSError as e:\n    print('BLOCKED', e.errno)\n"
    )
    status, log = run_job(tmp_path, code, isolation=layer, protected={"eval.py": runner.hash_file(wt / "eval.py")})
    if layer == "bwrap" or "mountns" in status.isolation:  # bound read-only inside the sandbox
        assert "BLOCKED" in log and (wt / "eval.py").read_text() == "ORIGINAL" and status.protected_changed == []
    else:  # layer 0, or Landlock without a mount namespace (rules only grant): detected instead
        assert (wt / "eval.py").read_text() == "HACKED" and status.protected_changed == ["eval.py"]


@pytest.mark.parametrize("layer", ALL_LAYERS)
def test_api_keys_do_not_reach_the_job(tmp_path: Path, layer: str, caps: isolate.Capabilities,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    need(layer, caps)
    fake, openai = f"fake-{uuid.uuid4().hex}", f"sk-{uuid.uuid4().hex}"
    monkeypatch.setenv("FAKE_API_KEY", fake)
    monkeypatch.setenv("OPENAI_API_KEY", openai)
    env = isolate.job_environment(dict(os.environ), {"PYTHONUNBUFFERED": "1"}, ["FAKE_API_KEY"])
    code = "import os\nprint(dict(os.environ))\n"
    if layer != "none":
        # confined jobs may not read anyone's environment through /proc either (the wrapper and this test hold
        # the keys); a layer-0 job runs as the same user with no such wall, which is what 'unsafe' means
        code += (
            "import glob, sys\n"
            "for p in glob.glob('/proc/[0-9]*/environ'):\n"
            "    try:\n        sys.stdout.buffer.write(open(p, 'rb').read().replace(b'\\0', b'\\n'))\n"
            "    except OSError:\n        pass\n"
        )
    status, log = run_job(tmp_path, code, isolation=layer, env=env)
    assert status.state == "succeeded", (status, log)
    assert "PATH" in log
    assert fake not in log and openai not in log


@pytest.fixture(params=["cgroup", "no-cgroup"])
def cgroup_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, caps: isolate.Capabilities) -> str:
    """Run with a job cgroup when this machine offers one, and once without (the freeze-and-kill sweep)."""
    if request.param == "cgroup" and not caps.cgroup_base:
        pytest.skip(f"no cgroup v2 here: {caps.cgroup_reason}")
    if request.param == "no-cgroup":
        monkeypatch.setenv("NIGHTLAB_CGROUP", "/nonexistent-cgroup")
    return str(request.param)


@pytest.mark.parametrize("layer", ALL_LAYERS)
def test_setsid_grandchild_does_not_outlive_the_timeout(tmp_path: Path, layer: str, caps: isolate.Capabilities,
                                                        cgroup_mode: str) -> None:
    need(layer, caps)
    mark = f"nlgc{uuid.uuid4().hex[:10]}"
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import signal, time\\n"
        f"signal.signal(signal.SIGTERM, signal.SIG_IGN)\\ntime.sleep(120)  # {mark}'], start_new_session=True)\n"
        "print('spawned', flush=True)\n"
        "time.sleep(120)\n"
    )
    status, log = run_job(tmp_path, code, isolation=layer, timeout=1.5, grace=0.3)
    assert status.state == "timed_out" and "spawned" in log, (status, log)
    assert ("cgroup" in status.isolation) == (cgroup_mode == "cgroup")
    assert marked(mark) == [], "a process of the job survived its wrapper"


@pytest.mark.parametrize("layer", ["none", "auto"])
def test_daemon_left_by_a_finished_job_is_killed(tmp_path: Path, layer: str) -> None:
    mark = f"nldm{uuid.uuid4().hex[:10]}"
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)  # {mark}'], start_new_session=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print('bye')\n"
    )
    status, _log = run_job(tmp_path, code, isolation=layer)
    assert status.state == "succeeded"
    assert marked(mark) == []


@pytest.mark.parametrize("layer", ALL_LAYERS)
def test_missing_command_is_named(tmp_path: Path, layer: str, caps: isolate.Capabilities) -> None:
    need(layer, caps)
    wt = tmp_path / "wt"
    wt.mkdir()
    env = isolate.job_environment(dict(os.environ), {}, [])
    spec = JobSpec(job_id="nc", argv=["no-such-trainer-xyz", "--lr", "1"], cwd=str(wt),
                   run_dir=str(tmp_path / "run"), env=env, timeout_s=10, isolation=layer)
    runner.launch(spec)
    status = wait_status(tmp_path / "run", 20)
    assert status.state == "failed" and "command not found" in status.reason
    assert "no-such-trainer-xyz" in status.reason


# ----------------------------------------------------------------------------------------------------- faults
def test_out_of_memory_rss_cap(tmp_path: Path) -> None:
    code = (
        "import time\nhold = []\n"
        "for i in range(150):\n    hold.append(b'x' * (20 << 20)); time.sleep(0.03)\n"
        "print('survived')\n"
    )
    status, log = run_job(tmp_path, code, isolation="auto", memory_mb=150)
    assert status.state == "failed", (status, log)
    assert "out of memory" in status.reason and "150 MB" in status.reason
    assert "survived" not in log


def test_out_of_memory_single_huge_allocation(tmp_path: Path) -> None:
    """Faster than any watch: the address-space limit (or the kernel) refuses it, and the failure is named."""
    status, log = run_job(tmp_path, "x = bytearray(64 << 30)\nprint('survived')", isolation="auto", memory_mb=150)
    assert status.state == "failed" and "out of memory" in status.reason, (status, log)


def test_cpu_time_limit(tmp_path: Path) -> None:
    status, _log = run_job(tmp_path, "while True:\n    pass", isolation="auto", cpu_seconds=1, timeout=15)
    assert status.state == "failed" and "CPU time limit" in status.reason, status


def test_log_flood_is_capped_head_and_tail_kept(tmp_path: Path) -> None:
    code = (
        "import sys\nw = sys.stdout.buffer.write\nw(b'HEAD-MARK\\n')\n"
        "block = (b'y' * 99 + b'\\n') * 10000\n"
        "for _ in range(50):\n    w(block)\n"
        "w(b'TAIL-MARK\\n')\nsys.stdout.flush()\n"
    )
    status, _ = run_job(tmp_path, code, isolation="auto", max_log_bytes=1 << 20)
    log = (tmp_path / "runs" / "job" / LOG_FILE).read_bytes()
    assert status.state == "succeeded" and status.log_truncated
    assert len(log) <= 1.1 * (1 << 20)
    assert log.startswith(b"HEAD-MARK\n") and log.endswith(b"TAIL-MARK\n")
    assert b"log capped" in log


@pytest.mark.parametrize("layer", ALL_LAYERS)
def test_fork_storm_fails_cleanly(tmp_path: Path, layer: str, caps: isolate.Capabilities, cgroup_mode: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    need(layer, caps)
    monkeypatch.setenv("NIGHTLAB_MAX_PROCS", "64")  # read by the wrapper (JobSpec has no field for it)
    mark = f"nlfs{uuid.uuid4().hex[:10]}"
    code = (
        f"import os, time  # {mark}\n"
        "for i in range(800):\n"
        "    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
        "time.sleep(60)\n"
    )
    status, log = run_job(tmp_path, code, isolation=layer, timeout=30)
    assert status.state == "failed" and "fork storm" in status.reason, (status, log[-2000:])
    assert status.seconds < 15
    assert marked(mark) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs to hold the run dir (needs root and a mount that works here)."""
    mnt = tmp_path / "runs"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("full-disk test needs root to mount a small tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_in_the_run_dir(tmp_path: Path, small_disk: Path) -> None:
    run_dir = small_disk / "job"
    code = (
        "import sys\n"
        f"with open({str(run_dir / 'fill.bin')!r}, 'wb') as f:\n"
        "    while True:\n        f.write(b'\\0' * 65536); f.flush()\n"
    )
    status, log = run_job(tmp_path, code, isolation="auto")
    assert status.state == "failed", (status, log)
    assert "disk full" in status.reason, status


DATALOADER = (
    "import torch\n"
    "from torch.utils.data import DataLoader, TensorDataset\n"
    "ds = TensorDataset(torch.arange(64, dtype=torch.float32).reshape(32, 2))\n"
    "total = sum(float(b[0].sum()) for b in DataLoader(ds, batch_size=4, num_workers=2))\n"
    "print('TOTAL', total)\n"
)


@pytest.mark.parametrize("layer", [*ALL_LAYERS, "landlock-plain"])
def test_dataloader_workers_still_work(tmp_path: Path, layer: str, caps: isolate.Capabilities,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker processes hand batches over through /dev/shm, socketpairs and a named socket in the private /tmp."""
    pytest.importorskip("torch")
    need(layer.removesuffix("-plain"), caps)
    if layer == "landlock-plain":
        monkeypatch.setenv("NIGHTLAB_CONFINE_NO_NAMESPACES", "1")
    status, log = run_job(tmp_path, DATALOADER, isolation=layer.removesuffix("-plain"), timeout=120, wait_for=150)
    assert status.state == "succeeded" and "TOTAL 2016.0" in log, (status, log[-3000:])
