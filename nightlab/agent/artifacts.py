"""What a kept experiment's run saved in its worktree, kept after the worktree is removed.

A settled experiment's worktree is pruned, and with it everything the job wrote there that git does not track:
`out/ckpt.pt`, samples, a metrics file. For a run that may become the user's model that is the point of the run,
so before the worktree of a successful run that is kept (or waiting for its confirming re-run) is removed, the
untracked files it holds move to `.nightlab/artifacts/<id>/` under the same relative paths, with a manifest
(`.nightlab/artifacts/<id>.json`) that `status`, `promote` and the TUI read to say where they are.

They stay until the experiment is discarded (a failed confirmation), within `artifacts.max_mb` for all experiments
together. Over the cap, room is made in this order: the artefacts of promoted experiments first (promote said where
they were), then those of kept experiments furthest from the best; the current best's never — when they alone do
not fit, they are not kept and the manifest says so. Files of linked data, `__pycache__` and symlinks are never
artefacts. The filesystem is the record: a manifest is written last, so a crash mid-move leaves a folder without
one, which the next keep of that experiment completes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from nightlab.agent.config import ProjectConfig
from nightlab.agent.edits import matches_any
from nightlab.agent.ledger import Ledger
from nightlab.agent.paths import ARTIFACTS_DIR, StatePaths
from nightlab.agent.states import EventKind, Kind, RunResult, Status
from nightlab.agent.workspace import worktree_git_env

MB = 1024 * 1024
# a run's outputs are worth keeping while its experiment may still be (or is) the user's result
HOLDS = frozenset({Status.SUCCEEDED, Status.KEPT, Status.UNCONFIRMED, Status.PROMOTED})


class Kept(StrEnum):
    """What became of an experiment's artefacts."""

    KEPT = "kept"  # on disk under .nightlab/artifacts/<id>/
    TOO_LARGE = "too_large"  # larger than artifacts.max_mb on their own: not kept
    EVICTED = "evicted"  # removed to make room under artifacts.max_mb
    DISCARDED = "discarded"  # removed because the experiment was discarded


@dataclass
class Artifacts:
    exp_id: int
    state: Kept
    files: list[tuple[str, int]] = field(default_factory=list)  # relative path, bytes
    why: str = ""
    where: str = ""  # the folder, relative to the project root

    @property
    def bytes(self) -> int:
        return sum(b for _, b in self.files)

    @property
    def on_disk(self) -> bool:
        """Whether the files are kept (rather than too large, evicted or removed with a discarded experiment)."""
        return self.state == Kept.KEPT

    def describe(self, limit: int = 3) -> str:
        """One line for status, promote and the TUI: where the files are, or why they are gone."""
        names = ", ".join(p for p, _ in self.files[:limit]) + (f", +{len(self.files) - limit} more"
                                                                if len(self.files) > limit else "")
        if self.state == Kept.KEPT:
            return f"{self.where}/ ({names}; {human_bytes(self.bytes)})"
        return f"not kept: {self.why}" if self.why else f"not kept ({self.state})"

    def to_json(self) -> dict[str, object]:
        return {"exp_id": self.exp_id, "state": str(self.state), "files": [list(f) for f in self.files],
                "why": self.why, "where": self.where}


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def folder(state_dir: Path) -> Path:
    return Path(state_dir) / ARTIFACTS_DIR


def _manifest(state_dir: Path, exp_id: int) -> Path:
    return folder(state_dir) / f"{exp_id}.json"


def read(state_dir: Path, exp_id: int) -> Artifacts | None:
    """The record of an experiment's artefacts, or None when it never had any."""
    try:
        data = json.loads(_manifest(state_dir, exp_id).read_text())
        return Artifacts(int(data["exp_id"]), Kept(data["state"]), [(str(p), int(b)) for p, b in data["files"]],
                         str(data.get("why", "")), str(data.get("where", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_all(state_dir: Path) -> dict[int, Artifacts]:
    out: dict[int, Artifacts] = {}
    d = folder(state_dir)
    if not d.is_dir():
        return out
    for p in d.glob("*.json"):
        if p.stem.isdigit():
            a = read(state_dir, int(p.stem))
            if a is not None:
                out[a.exp_id] = a
    return out


def _write(state_dir: Path, a: Artifacts) -> None:
    path = _manifest(state_dir, a.exp_id)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(a.to_json(), indent=1))
    os.replace(tmp, path)


def outputs(worktree: Path, links: Iterable[str], project_root: Path) -> list[tuple[str, int]]:
    """The files a run wrote in its worktree that git does not track (ignored ones included), with their sizes:
    no symlinks, nothing under a linked path, no byte-code caches. git reads the worktree through the admin folder
    the repository registered for it, never through the `.git` the job may have replaced (workspace.py says why);
    nothing is kept from a folder the repository registered no worktree at."""
    env = _git_env(project_root, worktree)
    if env is None:
        return []
    r = subprocess.run(["git", "status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignored"],
                       cwd=worktree, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return []
    links = list(links)
    out: list[tuple[str, int]] = []
    for entry in r.stdout.split("\0"):
        if len(entry) < 4 or entry[:2] not in ("??", "!!"):
            continue
        rel = entry[3:].rstrip("/")
        if matches_any(rel, links) or "__pycache__" in rel.split("/") or rel.endswith((".pyc", ".pyo")):
            continue
        p = worktree / rel
        if p.is_symlink() or not p.is_file():
            continue
        out.append((rel, p.stat().st_size))
    return sorted(out)


def _git_env(project_root: Path, worktree: Path) -> dict[str, str] | None:
    r = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=project_root, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0 or not r.stdout.strip():
        return None
    return worktree_git_env(Path(project_root) / r.stdout.strip(), worktree)  # (relative to the root, or absolute)


def keep(state_dir: Path, exp_id: int, worktree: Path, links: Iterable[str], max_bytes: int,
         project_root: Path) -> Artifacts | None:
    """Move what the run wrote in `worktree` into the artefacts folder (before the worktree is removed). None when
    it wrote nothing; a record saying why when it does not fit under the cap on its own. Idempotent."""
    done = read(state_dir, exp_id)
    if done is not None:
        return done
    files = outputs(worktree, links, project_root)
    if not files:
        return None
    dest = folder(state_dir) / str(exp_id)
    where = os.path.relpath(dest, project_root)
    a = Artifacts(exp_id, Kept.KEPT, files, where=where)
    if a.bytes > max_bytes:
        a.state = Kept.TOO_LARGE
        a.why = (f"{human_bytes(a.bytes)} is more than artifacts.max_mb ({human_bytes(max_bytes)})" if max_bytes
                 else "artifacts.max_mb is 0")
    else:
        for rel, _ in files:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(worktree / rel), target)
    folder(state_dir).mkdir(parents=True, exist_ok=True)
    _write(state_dir, a)
    return a


def drop(state_dir: Path, exp_id: int, state: Kept, why: str) -> Artifacts | None:
    """Remove an experiment's kept files; the manifest stays, saying why."""
    a = read(state_dir, exp_id)
    if a is None or a.state != Kept.KEPT:
        return None
    shutil.rmtree(folder(state_dir) / str(exp_id), ignore_errors=True)
    a.state, a.why = state, why
    _write(state_dir, a)
    return a


def make_room(state_dir: Path, max_bytes: int, eviction_order: list[int]) -> list[Artifacts]:
    """Evict kept artefacts, in `eviction_order` (first goes first; ids not listed are never evicted), until all of
    them fit under `max_bytes`. Returns what was evicted."""
    kept = {i: a for i, a in read_all(state_dir).items() if a.state == Kept.KEPT}
    total = sum(a.bytes for a in kept.values())
    evicted: list[Artifacts] = []
    for exp_id in eviction_order:
        if total <= max_bytes:
            break
        a = kept.get(exp_id)
        if a is None:
            continue
        gone = drop(state_dir, exp_id, Kept.EVICTED,
                    f"evicted to stay under artifacts.max_mb ({human_bytes(max_bytes)})")
        if gone is not None:
            total -= a.bytes
            evicted.append(gone)
    return evicted


class Keeper:
    """The engine's room for artefacts: save a run's files before its worktree goes, drop them when its experiment
    is discarded, and keep the total under `artifacts.max_mb` (see the module docstring for the order)."""

    def __init__(self, paths: StatePaths, ledger: Ledger, cfg: ProjectConfig,
                 emit: Callable[..., None]) -> None:
        self.paths = paths
        self.ledger = ledger
        self.cfg = cfg
        self.emit = emit

    @property
    def state_dir(self) -> Path:
        return self.paths.dir

    @property
    def max_bytes(self) -> int:
        return self.cfg.artifacts.max_mb * MB

    def save(self, exp_id: int, worktree: Path) -> None:
        """Before `worktree` is removed: keep what a successful, still standing run wrote there."""
        e = self.ledger.store.find_experiment(exp_id)
        if e is None or e.kind == Kind.RERUN or e.run_result != RunResult.SUCCEEDED or e.status not in HOLDS \
                or not worktree.is_dir():
            return
        kept = keep(self.state_dir, exp_id, worktree, self.cfg.links, self.max_bytes, self.paths.root)
        if kept is not None:
            self.emit(EventKind.ARTIFACTS, f"#{exp_id} artefacts: {kept.describe()}", exp_id, state=str(kept.state))

    def tidy(self) -> None:
        """Discarded experiments' artefacts go; then room is made under the cap."""
        stored = {i: a for i, a in read_all(self.state_dir).items() if a.state == Kept.KEPT}
        if not stored:
            return
        exps = {e.id: e for e in self.ledger.store.experiments()}
        for i in list(stored):
            e = exps.get(i)
            if e is None or e.status not in HOLDS:
                was = e.status if e is not None else "deleted"
                drop(self.state_dir, i, Kept.DISCARDED, f"#{i} was {was}")
                self.emit(EventKind.ARTIFACTS, f"#{i} artefacts removed: the experiment was {was}", i)
                del stored[i]
        best_id, _ = self.ledger.best()
        sc = self.ledger.scores()

        def goodness(i: int) -> float:
            v = self.ledger.score(i, sc)
            return -math.inf if v is None else self.ledger.goal.sign * v

        promoted = [i for i in stored if exps[i].status == Status.PROMOTED and i != best_id]
        rest = sorted((i for i in stored if i not in promoted and i != best_id), key=goodness)
        for gone in make_room(self.state_dir, self.max_bytes, promoted + rest):
            self.emit(EventKind.ARTIFACTS, f"#{gone.exp_id} artefacts removed: {gone.why}", gone.exp_id)


__all__ = ["Artifacts", "Keeper", "Kept", "drop", "folder", "human_bytes", "keep", "make_room", "outputs", "read",
           "read_all"]
