"""DataLoader worker processes that cannot start, or die, for want of shared memory.

Workers hand batches to the main process through shared memory (/dev/shm). In a container or sandbox with a small or
read-only /dev/shm they die with a bus error, fail to allocate, or cannot create their queues. Loading in the main
process (`num_workers=0`) needs no shared memory; it is slower only where loading is the bottleneck, and the
rationale says so.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from nightlab.agent.policy.catalogue.code import Source, call_name, keyword, with_keyword, without_keyword
from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms

__all__ = ["recognise_loader_workers", "repair_loader_workers"]

_SHM = (
    r"unable to allocate shared memory\(shm\)[^\n]*", r"DataLoader worker \(pid [^)]*\) is killed by signal: Bus error",
    r"out of shared memory", r"insufficient shared memory[^\n]*", r"unable to open shared memory object[^\n]*",
    r"unable to write to file </torch_[^\n]*", r"DataLoader worker \(pid\(s\) [\d, ]+\) exited unexpectedly",
)
_QUEUE = r"(?:Read-only file system|Function not implemented|Permission denied)"
# keywords that torch refuses together with num_workers=0
_MULTIPROCESS_ONLY = ("persistent_workers", "prefetch_factor", "multiprocessing_context")


def recognise_loader_workers(sym: Symptoms) -> Match | None:
    m = sym.says(*_SHM)
    if m is None and "torch/utils/data/dataloader.py" in sym.log and sym.exception in ("OSError", "PermissionError"):
        m = sym.says(_QUEUE)  # the worker queues' semaphores live in /dev/shm too
    if m is None:
        return None
    return Match(f"the DataLoader's worker processes cannot get shared memory here ({m.group(0).strip()}): "
                 "/dev/shm is too small or not writable in this sandbox", {"evidence": m.group(0).strip()})


def repair_loader_workers(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    texts: dict[str, str] = {}
    was: list[str] = []
    for path, text in site.python().items():
        src = Source(path, text)
        if not src.ok:
            continue
        n = 0
        for c in src.calls():
            if call_name(c).split(".")[-1] != "DataLoader":
                continue
            a = keyword(c, "num_workers")
            if a is None or (isinstance(a.value, cst.Integer) and a.value.value == "0"):
                continue
            new = with_keyword(c, "num_workers", "0")
            for kw in _MULTIPROCESS_ONLY:
                new = without_keyword(new, kw)
            src.replace(c, new)
            was.append(f"{path}:{src.line(c)} num_workers={src.code(a.value).strip()}")
            n += 1
        new_text = src.render() if n else None
        if new_text is not None:
            texts[path] = new_text
    if not texts:
        return
    yield Fix(title="load data in the main process (num_workers=0): the workers get no shared memory here",
              rationale=f"The run failed because {match.diagnosis}. With num_workers=0 batches are built in the "
                        "training process itself and need no shared memory; loading may be slower if it was the "
                        f"bottleneck, the data and the training are the same. Changed: {'; '.join(was)}.",
              texts=texts)
