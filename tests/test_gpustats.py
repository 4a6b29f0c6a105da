"""GPU state through NVML, tested with a fake `pynvml` module: `nightlab status` shows each GPU's utilisation,
memory and the experiment holding it (from the running jobs' slot leases); no NVML, no GPU line."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from nightlab.agent.store import Store
from nightlab.cli import main
from nightlab.sandbox import gpustats
from nightlab.sandbox.slots import gpus_of

GIB = 1 << 30


class _Err(Exception):
    pass


def fake_nvml(gpus: list[dict[str, Any]], *, init_fails: bool = False, broken: set[int] | None = None
              ) -> types.ModuleType:
    """A stand-in for nvidia-ml-py's `pynvml`, with the calls nightlab makes and their return shapes."""
    mod = types.ModuleType("pynvml")
    mod.NVMLError = _Err  # type: ignore[attr-defined]
    mod.calls = []  # type: ignore[attr-defined]

    def init() -> None:
        mod.calls.append("init")  # type: ignore[attr-defined]
        if init_fails:
            raise _Err("NVML Shared Library Not Found")

    def handle(i: int) -> int:
        if broken and i in broken:
            raise _Err("GPU is lost")
        return i

    mod.nvmlInit = init  # type: ignore[attr-defined]
    mod.nvmlDeviceGetCount = lambda: len(gpus)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = handle  # type: ignore[attr-defined]
    mod.nvmlDeviceGetName = lambda h: gpus[h]["name"]  # type: ignore[attr-defined]
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(  # type: ignore[attr-defined]
        used=gpus[h]["used"], total=gpus[h]["total"], free=gpus[h]["total"] - gpus[h]["used"])
    mod.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=gpus[h]["util"], memory=0)  # type: ignore[attr-defined]
    return mod


TWO_H200 = [{"name": "NVIDIA H200", "util": 87, "used": 40 * GIB, "total": 140 * GIB},
            {"name": b"NVIDIA H200", "util": 3, "used": 1 * GIB, "total": 140 * GIB}]


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install a fake pynvml (and a fresh reader, which initialises NVML once); its GPUs are all visible."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def install(mod: types.ModuleType | None) -> None:
        monkeypatch.setitem(sys.modules, "pynvml", mod)  # type: ignore[arg-type]
        monkeypatch.setattr(gpustats, "_default", gpustats.GpuReader())
    return install


def _project_with_a_job_on(root: Path, slot: str) -> int:
    """A configured project whose store has one running job leased on `slot`; returns its experiment id."""
    from helpers import make_repo, write_config

    make_repo(root, {"train.py": "print('acc=1')\n"})
    write_config(root)
    store = Store(root / ".nightlab" / "nightlab.db")
    s = store.create_session(str(root), "autonomous", "builtin", 4, None, "main")
    e = store.add_experiment(session_id=s.id, parent_id=None, title="LR = 0.3", status="running", seed=0)
    run_dir = root / ".nightlab" / "runs" / str(e.id)
    run_dir.mkdir(parents=True)
    job = store.add_job(e.id, str(run_dir), str(run_dir / "output.log"), slot)
    store.update_job(job.id, state="running")
    return e.id


def test_status_shows_each_gpu_and_the_experiment_holding_it(tmp_path: Path, nvml: Any,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "proj"
    exp = _project_with_a_job_on(root, "gpu1")
    nvml(fake_nvml(TWO_H200))
    assert main(["-C", str(root), "status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "gpu0 NVIDIA H200  util 87%  mem 40.0/140.0 GiB" in out
    assert f"gpu1 NVIDIA H200  util 3%  mem 1.0/140.0 GiB  held by #{exp}" in out
    assert main(["-C", str(root), "status", "--json"]) == 0
    gpus = json.loads(capsys.readouterr().out)["gpus"]
    assert gpus == [
        {"index": 0, "name": "NVIDIA H200", "util": 87, "mem_used_mb": 40 * 1024, "mem_total_mb": 140 * 1024,
         "experiment": None, "held_by": None},
        {"index": 1, "name": "NVIDIA H200", "util": 3, "mem_used_mb": 1024, "mem_total_mb": 140 * 1024,
         "experiment": exp, "held_by": f"#{exp}"},
    ]


def test_a_gpu_leased_by_another_project_names_that_project(tmp_path: Path, nvml: Any,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from nightlab.sandbox import lease

    root = tmp_path / "proj"
    exp = _project_with_a_job_on(root, "gpu1")
    other = tmp_path / "other-proj"
    lease.pool_dir().mkdir(parents=True, exist_ok=True)
    lease._write_lease(lease.lease_path("gpu0"), lease.Lease(slot="gpu0", project=str(other), run="x",
                                                             holders=[lease.me()]))
    nvml(fake_nvml(TWO_H200))
    assert main(["-C", str(root), "status", "--json"]) == 0
    held = [g["held_by"] for g in json.loads(capsys.readouterr().out)["gpus"]]
    assert held == ["other-proj", f"#{exp}"]
    assert main(["-C", str(root), "status"]) == 0
    assert "gpu0 NVIDIA H200  util 87%  mem 40.0/140.0 GiB  held by other-proj" in capsys.readouterr().out


@pytest.mark.parametrize("how", ["absent", "init fails", "no devices"])
def test_without_working_nvml_status_has_no_gpu_line(tmp_path: Path, nvml: Any, how: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "proj"
    _project_with_a_job_on(root, "cpu0")
    nvml({"absent": None, "init fails": fake_nvml(TWO_H200, init_fails=True), "no devices": fake_nvml([])}[how])
    assert main(["-C", str(root), "status"]) == 0
    assert "gpu" not in capsys.readouterr().out
    assert main(["-C", str(root), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gpus"] == []


def test_reader_initialises_once_and_skips_a_failing_gpu(nvml: Any) -> None:
    mod = fake_nvml(TWO_H200, broken={0})
    nvml(mod)
    reader = gpustats.GpuReader()
    first, second = reader.read(), reader.read()
    assert [g.index for g in first] == [1] and first == second
    assert mod.calls == ["init"]  # type: ignore[attr-defined]
    failing = fake_nvml(TWO_H200, init_fails=True)
    nvml(failing)
    reader = gpustats.GpuReader()
    assert reader.read() == [] and reader.read() == [] and reader.unavailable
    assert failing.calls == ["init"]  # type: ignore[attr-defined]  # a failed init is not retried every refresh


def test_only_the_gpus_nightlab_may_use_are_shown(nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML lists every GPU of the machine whatever CUDA_VISIBLE_DEVICES says; nightlab shows the ones its own
    CUDA_VISIBLE_DEVICES leaves it, as its slots do (a user who narrowed nightlab to GPU 1 sees GPU 1)."""
    nvml(fake_nvml(TWO_H200))
    for value, shown in (("1", [1]), ("1,0", [0, 1]), ("", []), ("-1", []), ("GPU-8f3c", [0, 1])):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
        assert [g.index for g in gpustats.GpuReader().read()] == shown, value
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert [g.index for g in gpustats.GpuReader().read()] == [0, 1]


def test_slot_ids_name_their_gpus() -> None:
    assert gpus_of("gpu3") == [3] and gpus_of("gpu0+gpu1") == [0, 1] and gpus_of("cpu0") == [] and gpus_of("") == []
    assert gpustats.holders([("gpu0+gpu2", 7), ("cpu0", 8), (None, 9)]) == {0: 7, 2: 7}
