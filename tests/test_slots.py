"""Slots: discovery (CPU cores, GPUs through a fake nvidia-smi), the pool's accounting, and the job variables."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from nightlab.sandbox import isolate, runner, slots
from nightlab.sandbox.slots import Slot, SlotPool, discover, slot_env
from nightlab.sandbox.spec import LOG_FILE, JobSpec


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slots, "gpu_list", lambda: [])


@pytest.fixture
def four_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slots, "cpu_list", lambda: [0, 1, 2, 3])


def test_default_cpu_slots_leave_one_core(no_gpu: None, four_cores: None) -> None:
    got = discover()
    assert [s.id for s in got] == ["cpu0", "cpu1", "cpu2"]
    assert [s.cpus for s in got] == [[0], [1], [2]] and all(s.gpus == [] for s in got)


def test_single_core_still_has_a_slot(no_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slots, "cpu_list", lambda: [0])
    assert [s.cpus for s in discover()] == [[0]]


def test_configured_cpu_slots_and_threads(no_gpu: None, four_cores: None) -> None:
    got = discover(cfg_cpus=2, threads_per_job=2)
    assert [s.cpus for s in got] == [[0, 1], [2, 3]]
    over = discover(cfg_cpus=3, threads_per_job=2)  # more than the machine has: cores are shared, never missing
    assert len(over) == 3 and all(len(s.cpus) == 2 for s in over)


def test_gpu_slots_share_the_cores(four_cores: None) -> None:
    got = discover(gpus=[0, 1])
    assert [(s.id, s.gpus) for s in got] == [("gpu0", [0]), ("gpu1", [1])]
    assert got[0].cpus and got[1].cpus and not set(got[0].cpus) & set(got[1].cpus)
    assert 3 not in got[0].cpus + got[1].cpus  # one core stays with the agent
    mixed = discover(cfg_cpus=1, gpus=[0])
    assert [s.id for s in mixed] == ["gpu0", "cpu0"]


def _fake_smi(tmp_path: Path, out: str) -> str:
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text(f"#!/bin/sh\nprintf '{out}'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return str(smi.parent)


def test_gpus_found_with_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, four_cores: None) -> None:
    monkeypatch.setenv("PATH", _fake_smi(tmp_path, "0\\n1\\n2\\n") + os.pathsep + os.environ["PATH"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert slots.gpu_list() == [0, 1, 2]
    assert [s.id for s in discover()] == ["gpu0", "gpu1", "gpu2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")  # the user narrowed nightlab itself to two GPUs
    assert slots.gpu_list() == [0, 2]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert slots.gpu_list() == []


def test_no_gpu_here_means_cpu_slots() -> None:
    """On this machine (no nvidia-smi) discovery finds CPU slots only (bench/ measures how fast)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") is None and slots.gpu_list():
        pytest.skip("this machine has GPUs")
    got = discover()
    assert got and all(s.id.startswith("cpu") for s in got)
    assert len(got) == max(1, len(slots.cpu_list()) - 1)


def test_pool_accounting() -> None:
    pool = SlotPool([Slot("cpu0", [0]), Slot("cpu1", [1])])
    assert (pool.total, pool.busy, pool.free) == (2, 0, 2)
    a = pool.acquire()
    b = pool.acquire()
    assert a is not None and b is not None and a.id != b.id
    assert pool.acquire() is None and pool.free == 0
    pool.release(a.id)
    pool.release(a.id)  # twice is harmless
    assert pool.free == 1
    c = pool.acquire()
    assert c is not None and c.id == a.id
    pool.release("nonexistent")
    assert pool.busy == 2


def test_mark_busy_after_restart() -> None:
    pool = SlotPool([Slot("gpu0", [0], [0]), Slot("gpu1", [1], [1]), Slot("gpu2", [2], [2])])
    pool.mark_busy("gpu0+gpu1")  # a 2-GPU job found still running
    pool.mark_busy("gpu7")  # a slot this machine no longer has: ignored
    assert pool.busy == 2 and pool.is_busy("gpu0+gpu1")
    got = pool.acquire(1)
    assert got is not None and got.id == "gpu2"
    pool.release("gpu0+gpu1")
    assert pool.busy == 1


def test_multi_gpu_job_waits_for_enough_free_gpus() -> None:
    pool = SlotPool([Slot(f"gpu{i}", [i], [i]) for i in range(3)])
    one = pool.acquire(1)
    two = pool.acquire(2)
    assert one is not None and two is not None
    assert two.id == "gpu1+gpu2" and two.gpus == [1, 2] and two.cpus == [1, 2]
    pool.release(one.id)
    assert pool.acquire(2) is None  # only one GPU free: wait
    pool.release(two.id)
    three = pool.acquire(3)
    assert three is not None and three.gpus == [0, 1, 2]
    pool.release(three.id)
    assert pool.free == 3
    with pytest.raises(ValueError, match="needs 4 GPU"):
        pool.acquire(4)


def test_cpu_job_on_a_gpu_machine() -> None:
    gpu_only = SlotPool([Slot("gpu0", [0, 1], [0])])
    s = gpu_only.acquire(0)
    assert s is not None and s.id == "gpu0" and s.gpus == [] and s.cpus == [0, 1]
    assert slot_env(s, 2)["CUDA_VISIBLE_DEVICES"] == ""
    assert gpu_only.acquire(1) is None  # its GPU is held by the CPU job
    mixed = SlotPool([Slot("gpu0", [0], [0]), Slot("cpu0", [1])])
    first = mixed.acquire(0)
    assert first is not None and first.id == "cpu0"
    assert mixed.acquire(0) is None  # waits for the CPU slot instead of taking the GPU


def test_concurrent_acquire_never_double_books() -> None:
    pool = SlotPool([Slot(f"cpu{i}", [i]) for i in range(8)])
    got: list[str] = []
    lock = threading.Lock()

    def grab() -> None:
        for _ in range(50):
            s = pool.acquire()
            if s is not None:
                with lock:
                    got.append(s.id)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(f"cpu{i}" for i in range(8))


def test_slot_env() -> None:
    cpu = slot_env(Slot("cpu1", [2, 3]), 0)
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and cpu["OMP_NUM_THREADS"] == "2" and cpu["MKL_NUM_THREADS"] == "2"
    assert cpu["TASK_THREADS"] == "2" and cpu["NIGHTLAB_JOB_CPUS"] == "2,3" and cpu["NIGHTLAB_JOB_SLOT"] == "cpu1"
    gpu = slot_env(Slot("gpu0+gpu1", [0], [0, 1]), 4)
    assert gpu["CUDA_VISIBLE_DEVICES"] == "0,1" and gpu["OPENBLAS_NUM_THREADS"] == "4"
    assert gpu["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    # the sandbox's allow-list keeps every one of them
    env = isolate.job_environment({}, gpu, [])
    assert env == {**isolate.JOB_DEFAULTS, **gpu}




@pytest.mark.skipif(sys.platform != "linux", reason="CPU pinning is Linux-only")
def test_job_is_pinned_to_its_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = sorted(os.sched_getaffinity(0))[-1]
    env = isolate.job_environment(dict(os.environ), slot_env(Slot("cpu0", [cpu]), 1), [])
    wt = tmp_path / "wt"
    wt.mkdir()
    code = "import os; print('AFFINITY', sorted(os.sched_getaffinity(0)), os.environ['OMP_NUM_THREADS'])"
    spec = JobSpec(job_id="pin", argv=[sys.executable, "-c", code], cwd=str(wt), run_dir=str(tmp_path / "run"),
                   env=env, timeout_s=20, isolation="none")
    runner.launch(spec)
    deadline = time.monotonic() + 20
    while runner.read_status(spec.run_dir) is None and time.monotonic() < deadline:
        time.sleep(0.03)
    log = (tmp_path / "run" / LOG_FILE).read_text()
    assert f"AFFINITY [{cpu}] 1" in log


def test_auto_gpus_per_job_is_one_on_a_gpu_machine_and_none_without() -> None:
    assert SlotPool([Slot("gpu0", [0], [0]), Slot("gpu1", [1], [1])]).gpus_per_job("auto") == 1
    assert SlotPool([Slot("cpu0", [0]), Slot("cpu1", [1])]).gpus_per_job("auto") == 0
    assert SlotPool([Slot("gpu0", [0], [0])]).gpus_per_job(0) == 0  # an explicit 0 still means CPU jobs


SHOW_GPUS = "import os\nprint('visible=' + repr(os.environ.get('CUDA_VISIBLE_DEVICES')))\nprint('acc=0.5')\n"


@pytest.mark.parametrize(("smi", "visible"), [("0\\n1\\n", "'0'"), ("", "''")], ids=["gpu-machine", "cpu-only"])
def test_jobs_see_a_gpu_by_default_on_a_gpu_machine(tmp_path: Path, smi: str, visible: str) -> None:
    """The default config on a machine whose nvidia-smi lists GPUs: the job is given one (CUDA_VISIBLE_DEVICES=0);
    on a CPU-only machine nothing changes (CUDA_VISIBLE_DEVICES="", a stray .cuda() fails fast)."""
    import json
    import subprocess

    from helpers import make_repo, write_config

    root = make_repo(tmp_path / "p", {"train.py": SHOW_GPUS})
    write_config(root, command=f"{sys.executable} train.py", timeout=60)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = _fake_smi(tmp_path, smi) + os.pathsep + env["PATH"]  # lists no GPU: also on a machine with GPUs
    p = subprocess.run([sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "1"], cwd=root,
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    status = json.loads(subprocess.run([sys.executable, "-m", "nightlab", "status", "--json"], cwd=root,
                                       capture_output=True, text=True, timeout=60, env=env).stdout)
    assert status["experiments"][0]["metric"] == 0.5
    log = (root / ".nightlab" / "runs" / "1" / LOG_FILE).read_text()
    assert f"visible={visible}" in log
