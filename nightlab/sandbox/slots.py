"""Execution slots: how many experiments may run at once, and which CPUs / GPUs each one gets.

A slot is a share of the machine a job owns while it runs: a set of CPU cores (for thread counts and pinning) and
zero or more GPUs. On a machine with GPUs there is one slot per GPU, each with its share of the cores; a job that
needs k GPUs takes k GPU slots at once (and waits until k are free). Without GPUs there are `cores - 1` CPU slots by
default: the agent, the wrapper and the OS need a core, and on a 2-core box two busy jobs would slow everything.

Discovery is lazy and cheap: `nvidia-smi` when installed, else torch only if something already imported it (we never
import torch ourselves: seconds of start-up for a question nvidia-smi answers in milliseconds). Pure Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Literal

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "RAYON_NUM_THREADS", "TASK_THREADS")


@dataclass
class Slot:
    """A share of the machine: `id` names it in the store (a multi-GPU grant joins its parts with '+')."""

    id: str
    cpus: list[int] = field(default_factory=list)
    gpus: list[int] = field(default_factory=list)


def cpu_list() -> list[int]:
    """The CPUs this process may run on (respects taskset / cgroup cpusets), else 0..cpu_count-1."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def gpu_list() -> list[int]:
    """Physical GPU indices (nvidia-smi order = PCI bus order), narrowed by our own CUDA_VISIBLE_DEVICES if set."""
    found: list[int] = []
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            r = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True,
                               timeout=10, stdin=subprocess.DEVNULL)
            if r.returncode == 0:
                found = [int(x) for x in r.stdout.split() if x.strip().isdigit()]
        except (OSError, subprocess.TimeoutExpired):
            found = []
    elif "torch" in sys.modules:  # only if already imported: importing torch costs seconds
        try:
            torch = sys.modules["torch"]
            found = list(range(int(torch.cuda.device_count())))
        except Exception:
            found = []
    return visible(found, counted_by_torch=not smi)


def visible(found: list[int], counted_by_torch: bool = False) -> list[int]:
    """The physical GPU indices of `found` that our own CUDA_VISIBLE_DEVICES lets nightlab use.

    `found` is in nvidia-smi / NVML order (physical, PCI bus order), or with `counted_by_torch` torch's count of
    the devices it was shown, mapped back to physical indices. Unset: all of them; "" or "-1": none; UUIDs or MIG
    ids (which we cannot map to indices): all of them, not narrowed.
    """
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None or not found:
        return found
    items = [x.strip() for x in value.split(",") if x.strip()]
    if not items or items == ["-1"]:
        return []
    if not all(x.isdigit() for x in items):
        return found
    if not counted_by_torch:
        return [g for g in found if g in {int(x) for x in items}]
    return [int(items[i]) for i in found if i < len(items)]


def _split(cpus: list[int], parts: int, per: int = 0) -> list[list[int]]:
    """`parts` CPU groups: contiguous shares of `cpus` (round-robin reuse when there are fewer cores than asked)."""
    if parts <= 0:
        return []
    if not cpus:
        return [[] for _ in range(parts)]
    per = per or max(1, len(cpus) // parts)
    return [[cpus[(i * per + j) % len(cpus)] for j in range(per)] for i in range(parts)]


def discover(cfg_cpus: int = 0, threads_per_job: int = 1,
             gpus: list[int] | Literal["auto"] = "auto") -> list[Slot]:
    """The slots of this machine.

    - GPUs present (auto-discovered or listed in `gpus`): one slot per GPU, the cores (less one for the agent)
      shared evenly between them; plus `cfg_cpus` CPU-only slots when that is set explicitly.
    - No GPUs: `cfg_cpus` CPU slots, or max(1, cores - 1) when 0; each gets `threads_per_job` cores.
    """
    cpus = cpu_list()
    gpu_ids = gpu_list() if gpus == "auto" else sorted(set(int(g) for g in gpus))
    slots: list[Slot] = []
    if gpu_ids:
        spare = cpus[:-1] if len(cpus) > 1 else cpus
        for g, share in zip(gpu_ids, _split(spare, len(gpu_ids)), strict=True):
            slots.append(Slot(id=f"gpu{g}", cpus=share, gpus=[g]))
        if cfg_cpus > 0:
            for i, share in enumerate(_split(cpus, cfg_cpus, threads_per_job)):
                slots.append(Slot(id=f"cpu{i}", cpus=share))
        return slots
    n = cfg_cpus if cfg_cpus > 0 else max(1, len(cpus) - 1)
    return [Slot(id=f"cpu{i}", cpus=share) for i, share in enumerate(_split(cpus, n, max(1, threads_per_job)))]


class SlotPool:
    """Hands out slots to jobs; thread-safe. `acquire` never blocks: None means "wait and ask again".

    CPU jobs take a CPU slot, or (on a GPU machine without CPU slots) a GPU slot whose GPU they are not shown, so a
    CPU job never steals a core a GPU job's data loader needs and never runs on a GPU by accident.
    """

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = {s.id: s for s in slots}
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return len(self.slots)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._busy)

    @property
    def free(self) -> int:
        with self._lock:
            return len(self.slots) - len(self._busy)

    @property
    def gpus_total(self) -> int:
        return sum(1 for s in self.slots.values() if s.gpus)

    def gpus_per_job(self, configured: int | str) -> int:
        """The GPUs one job asks for: `configured`, or for "auto" one on a machine with GPUs and none without (so
        a GPU machine's jobs see their GPU by default, and a CPU-only machine behaves as it always has)."""
        if configured == "auto":
            return 1 if self.gpus_total else 0
        return int(configured)

    def acquire(self, gpus_needed: int = 0) -> Slot | None:
        """A free slot with `gpus_needed` GPUs (several GPU slots joined), or None if none is free right now.

        Raises ValueError when the machine can never satisfy the request (more GPUs than it has), so the caller
        fails the experiment instead of waiting forever.
        """
        with self._lock:
            return self._pick(gpus_needed, set(self._busy))

    def _pick(self, gpus_needed: int, busy: set[str]) -> Slot | None:
        """Choose among the slots not in `busy` and mark the choice as ours (the caller holds the lock)."""
        free = [s for sid, s in self.slots.items() if sid not in busy]
        if gpus_needed <= 0:
            cpu = [s for s in free if not s.gpus]
            if cpu:
                self._claim([cpu[0]])
                return cpu[0]
            if any(not s.gpus for s in self.slots.values()):
                return None  # CPU slots exist but are busy: wait for one rather than take a GPU
            if free:
                s = free[0]
                self._claim([s])
                return Slot(id=s.id, cpus=list(s.cpus), gpus=[])
            return None
        gpu_total = [s for s in self.slots.values() if s.gpus]
        if gpus_needed > len(gpu_total):
            raise ValueError(f"a job needs {gpus_needed} GPU(s); this machine has {len(gpu_total)}")
        gpu_free = [s for s in free if s.gpus]
        if len(gpu_free) < gpus_needed:
            return None
        parts = gpu_free[:gpus_needed]
        self._claim(parts)
        if len(parts) == 1:
            return parts[0]
        return Slot(id="+".join(s.id for s in parts), cpus=[c for s in parts for c in s.cpus],
                    gpus=[g for s in parts for g in s.gpus])

    def _claim(self, parts: list[Slot]) -> None:
        for s in parts:
            self._busy.add(s.id)

    def release(self, slot_id: str) -> None:
        """Give a slot back (a joined id releases all its parts); unknown or already-free ids are ignored."""
        with self._lock:
            for part in slot_id.split("+"):
                self._busy.discard(part)

    def mark_busy(self, slot_id: str) -> None:
        """Record a slot as taken without acquiring it: the engine restarted and found a job still running in it.
        Ids this machine no longer has (a GPU removed) are ignored."""
        with self._lock:
            for part in slot_id.split("+"):
                if part in self.slots:
                    self._busy.add(part)

    def is_busy(self, slot_id: str) -> bool:
        with self._lock:
            return all(p in self._busy for p in slot_id.split("+"))


def gpus_of(slot_id: str) -> list[int]:
    """The GPU indices a slot id names (`gpu3` -> [3], a joined grant `gpu0+gpu1` -> [0, 1], `cpu0` -> [])."""
    return [int(p[3:]) for p in slot_id.split("+") if p.startswith("gpu") and p[3:].isdigit()]


def slot_env(slot: Slot, threads: int = 0) -> dict[str, str]:
    """The job variables for a slot: which GPUs it sees (none for a CPU job: CUDA_VISIBLE_DEVICES="" so a stray
    `.cuda()` fails fast instead of landing on someone else's GPU), thread counts, and the CPUs to pin to
    (NIGHTLAB_JOB_CPUS, applied by the sandbox with sched_setaffinity). `threads` 0 = one per CPU of the slot."""
    n = threads if threads > 0 else max(1, len(slot.cpus))
    env = {var: str(n) for var in THREAD_VARS}
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in slot.gpus)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # so CUDA's device numbers are nvidia-smi's
    env["NIGHTLAB_JOB_SLOT"] = slot.id
    if slot.cpus:
        env["NIGHTLAB_JOB_CPUS"] = ",".join(str(c) for c in slot.cpus)
    return env
