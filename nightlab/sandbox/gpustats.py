"""GPU state through NVML: each GPU's utilisation and memory, for `nightlab status` and the TUI's status bar.

NVML is the library nvidia-smi itself reads (`nvidia-ml-py`'s `pynvml` binds it with ctypes): one in-process call
per GPU, milliseconds, where spawning nvidia-smi costs a process every refresh. It is imported lazily, and any
failure — the package or the driver's library absent (no NVIDIA GPU here), an NVML error — means "no GPU state":
callers then show no GPU line at all, never an error. Who holds a GPU comes from the slot leases, not from NVML:
this project's running jobs name their experiment, the machine-wide leases (sandbox/lease.py) other projects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nightlab.sandbox.slots import gpus_of, visible


@dataclass(frozen=True)
class GpuStat:
    index: int  # NVML's index: PCI bus order, as nvidia-smi and the slots count them
    name: str
    util_pct: int | None  # None when the GPU does not report utilisation (some MIG / vGPU setups)
    mem_used_mb: int
    mem_total_mb: int

    def as_dict(self, experiment: int | None = None, held_by: str | None = None) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "util": self.util_pct, "mem_used_mb": self.mem_used_mb,
                "mem_total_mb": self.mem_total_mb, "experiment": experiment, "held_by": held_by}


class GpuReader:
    """Reads GPU state; initialises NVML once, on first use, and remembers when it cannot (then reads nothing)."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._state = "new"  # new | ready | unavailable
        self._lock = threading.Lock()

    @property
    def unavailable(self) -> bool:
        return self._state == "unavailable"

    def _init(self) -> Any:
        if self._state == "new":
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
                self._state = "ready"
            except Exception:  # no package, no driver library, no device, a driver/library mismatch
                self._state = "unavailable"
        return self._nvml if self._state == "ready" else None

    def read(self) -> list[GpuStat]:
        """Every GPU NVML sees that nightlab may use (our own CUDA_VISIBLE_DEVICES narrows them, as it narrows the
        slots: NVML itself ignores it); [] when NVML is unavailable or fails (a GPU that fails alone is left out)."""
        with self._lock:
            nvml = self._init()
            if nvml is None:
                return []
            try:
                count = int(nvml.nvmlDeviceGetCount())
            except Exception:
                return []
            out: list[GpuStat] = []
            for i in visible(list(range(count))):
                try:
                    h = nvml.nvmlDeviceGetHandleByIndex(i)
                    name = nvml.nvmlDeviceGetName(h)
                    if isinstance(name, bytes):
                        name = name.decode("utf-8", "replace")
                    mem = nvml.nvmlDeviceGetMemoryInfo(h)
                    try:
                        util: int | None = int(nvml.nvmlDeviceGetUtilizationRates(h).gpu)
                    except Exception:
                        util = None
                    out.append(GpuStat(i, str(name), util, int(mem.used) >> 20, int(mem.total) >> 20))
                except Exception:
                    continue
            return out


_default = GpuReader()


def read_gpus() -> list[GpuStat]:
    """GPU state of this machine from the process-wide reader ([] without NVML)."""
    return _default.read()


def holders(leases: Iterable[tuple[str | None, int]]) -> dict[int, int]:
    """GPU index -> the experiment whose job holds it, from (slot id, experiment id) of this project's running
    jobs."""
    out: dict[int, int] = {}
    for slot, exp_id in leases:
        for g in gpus_of(slot or ""):
            out[g] = exp_id
    return out


def leased_elsewhere(project: Path) -> dict[int, str]:
    """GPU index -> the folder name of another project whose job holds it (the machine-wide slot leases)."""
    from nightlab.sandbox import lease

    mine = str(Path(project).resolve())
    out: dict[int, str] = {}
    try:
        held = lease.leases()
    except OSError:
        return {}
    for x in held:
        if str(Path(x.project).resolve()) == mine:
            continue
        for g in gpus_of(x.slot):
            out.setdefault(g, Path(x.project).name or x.project)
    return out


def holder_label(index: int, own: dict[int, int], elsewhere: dict[int, str]) -> str | None:
    """`#7` for this project's experiment 7, a project's folder name for another project's job, None if free."""
    if index in own:
        return f"#{own[index]}"
    return elsewhere.get(index)


def format_gpu(g: GpuStat, holder: str | None, compact: bool = False) -> str:
    """One GPU in a line: `gpu0 NVIDIA H200  util 87%  mem 40.1/139.8 GiB  held by #7` (compact: `gpu0 87%
    40/140G #7`)."""
    util = "—" if g.util_pct is None else f"{g.util_pct}%"
    used, total = g.mem_used_mb / 1024, g.mem_total_mb / 1024
    if compact:
        return f"gpu{g.index} {util} {used:.0f}/{total:.0f}G" + (f" {holder}" if holder else "")
    return f"gpu{g.index} {g.name}  util {util}  mem {used:.1f}/{total:.1f} GiB" + \
        (f"  held by {holder}" if holder else "")
