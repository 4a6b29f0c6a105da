"""TensorBoard event files: find the ones a run wrote, and read their scalars with TensorBoard's own reader.

Training code that logs with `SummaryWriter` (PyTorch, tensorboardX), Lightning's TensorBoardLogger or Keras'
TensorBoard callback writes `events.out.tfevents.*` files into a folder relative to where it runs, by default
(`runs/<date>_<host>/`, `lightning_logs/version_0/`, `logs/train/`). A job runs in its experiment's worktree, and the
sandbox lets it write only there and in its run dir, so that is where its event files are: nightlab looks for them
under the worktree (or under `metric.logdir` inside it) after the job ends, taking only files written during the run.
It never tells the job where to write: unmodified code keeps working.

Reading goes through `tensorboard.backend.event_processing.plugin_event_accumulator`, the loader TensorBoard's own
server uses: it understands both the `simple_value` scalars PyTorch writes and the tensor scalars of TF2/Keras,
drops events orphaned by a restarted writer, and keeps memory bounded: the scalars too, by a reservoir of
`MAX_POINTS_PER_TAG` per tag. The package is an extra (`nightlab[tensorboard]`), imported only when event files are
there to read.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nightlab.agent.paths import STATE_DIR
from nightlab.errors import NightlabError

EVENT_PREFIX = "events.out.tfevents."
# points kept per tag: TensorBoard's own reservoir (the last point always kept, the others sampled uniformly), so a
# run logging a scalar millions of times — or a job writing them to exhaust the agent's memory — costs at most this
# many per tag; a curve shows fewer anyway (metrics.MAX_CURVE_POINTS), and a min / max reduction is exact up to it
MAX_POINTS_PER_TAG = 10_000
INSTALL_HINT = "pip install 'nightlab[tensorboard]'"
# folders never searched for event files: version control, environments, caches
_SKIP_DIRS = frozenset({".git", ".venv", "venv", "env", "__pycache__", "node_modules", ".mypy_cache",
                        ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints", STATE_DIR})
_TOKEN_SPLIT_RE = re.compile(r"[^a-z0-9]+")
_EVAL_WORDS = frozenset({"val", "valid", "validation", "test", "testing", "eval", "evaluation", "dev", "holdout"})
_TRAIN_WORDS = frozenset({"train", "training", "trn"})


class TensorBoardMissing(NightlabError):
    """Event files are to be read but the tensorboard package is not installed."""


def available() -> bool:
    """Whether TensorBoard's reader can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        return False


def require() -> None:
    """One clear error before anything runs when metric.source = "tensorboard" cannot be read here."""
    if not available():
        raise TensorBoardMissing(f"metric.source = \"tensorboard\" needs the tensorboard package: {INSTALL_HINT}")


@dataclass
class Series:
    """One scalar tag of one event folder: (step, value) points in step order (NaN and inf kept)."""

    tag: str
    folder: str  # the event folder, relative to where the search started ("" = that folder itself)
    points: list[tuple[int, float]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.folder}: {self.tag}" if self.folder else self.tag


def event_folders(base: Path, since: float | None = None) -> list[Path]:
    """Folders under `base` holding event files modified at or after `since` (epoch seconds), sorted.

    `since` is the job's start: the worktree was checked out before it, so event files committed to the repository
    (or left by an earlier attempt) are older and never taken for this run's. Symlinks are not followed (linked data
    folders are the user's, and can be huge).
    """
    base = Path(base)
    found: set[Path] = set()
    if not base.is_dir():
        return []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for name in filenames:
            if not name.startswith(EVENT_PREFIX):
                continue
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if not path.is_symlink() and (since is None or st.st_mtime >= since):
                found.add(Path(dirpath))
    return sorted(found)


def read_folders(base: Path, folders: list[Path]) -> list[Series]:
    """Every scalar series in these event folders. Raises TensorBoardMissing without the tensorboard package."""
    if not folders:
        return []
    try:
        from tensorboard.backend.event_processing import plugin_event_accumulator as pea
        from tensorboard.util import tensor_util
    except ImportError:
        raise TensorBoardMissing(f"the run wrote TensorBoard event files, but the tensorboard package is not "
                                 f"installed: {INSTALL_HINT}") from None
    out: list[Series] = []
    for folder in folders:
        with _regular_files_of(folder) as view:
            acc = pea.EventAccumulator(view, size_guidance={pea.TENSORS: 1},
                                       tensor_size_guidance={"scalars": MAX_POINTS_PER_TAG})
            try:
                acc.Reload()
                tags = sorted(acc.PluginTagToContent("scalars"))
            except KeyError:
                continue  # no scalars in this folder
            except Exception as err:  # a truncated or corrupt file: read what we can, say what failed
                raise NightlabError(f"cannot read TensorBoard events in {folder}: {err}") from None
        rel = Path(folder).relative_to(base).as_posix() if Path(folder) != Path(base) else ""
        for tag in tags:
            pts: list[tuple[int, float]] = []
            for ev in acc.Tensors(tag):
                arr = tensor_util.make_ndarray(ev.tensor_proto)
                if arr.size != 1:
                    continue
                pts.append((int(ev.step), float(arr.reshape(()).item())))
            pts.sort(key=lambda p: p[0])
            if pts:
                out.append(Series(tag, "" if rel == "." else rel, pts))
    return out


@contextlib.contextmanager
def _regular_files_of(folder: Path) -> Iterator[str]:
    """A private folder holding (hard links to, or copies of) only the regular event files of `folder`: the job
    wrote that folder, and TensorBoard's loader opens whatever is named like an event file, links and FIFOs
    included (a FIFO there would hang the engine, a link would be read with the user's rights)."""
    with tempfile.TemporaryDirectory(prefix="nightlab-events-") as tmp:
        for f in Path(folder).iterdir():
            if not f.name.startswith(EVENT_PREFIX):
                continue
            try:
                if not stat.S_ISREG(f.lstat().st_mode):
                    continue
                try:
                    os.link(f, Path(tmp) / f.name, follow_symlinks=False)
                except OSError:  # another file system
                    shutil.copyfile(f, Path(tmp) / f.name, follow_symlinks=False)
            except OSError:
                continue
        yield tmp


def read_run(base: Path, since: float | None = None) -> list[Series]:
    """The scalars a run wrote under `base` (see `event_folders`); [] when it wrote no event files."""
    return read_folders(base, event_folders(base, since))


def select(series: list[Series], tag: str) -> Series | str:
    """The series of `tag`, or a one-line reason why there is none (missing, or written by several writers)."""
    hits = [s for s in series if s.tag == tag]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        seen = sorted({s.tag for s in series})
        near = [t for t in seen if tag.lower() in t.lower() or t.lower() in tag.lower()][:3]
        if not seen:
            return f"TensorBoard tag {tag!r}: the run wrote no scalar to any event file"
        hint = f"similar: {', '.join(near)}" if near else f"tags written: {', '.join(seen[:6])}"
        return f"TensorBoard tag {tag!r} was never written ({hint})"
    where = ", ".join(s.folder or "." for s in hits)
    return (f"TensorBoard tag {tag!r} is written in {len(hits)} event folders ({where}): set metric.logdir to the "
            "one that holds the metric")


def reduce(points: list[tuple[int, float]], how: str) -> tuple[float, int] | str:
    """(value, step) of the series reduced by `how` (last | min | max), or why it has no usable value.

    A series whose last value is NaN or inf failed, whatever the reduction: the best epoch of a run that diverged
    afterwards is not a result to keep. Otherwise min and max look at the finite values only.
    """
    if not points:
        return "no values"
    last_step, last = points[-1]
    if not math.isfinite(last):
        return f"last value is {last} (step {last_step})"
    if how == "last":
        return last, last_step
    finite = [(v, s) for s, v in points if math.isfinite(v)]
    v, s = (min if how == "min" else max)(finite, key=lambda vs: vs[0])
    return v, s


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT_RE.split(text.lower()) if t]


def loss_series(series: list[Series]) -> Series | None:
    """The training loss among the scalars, for diagnosis: a tag with a `loss` word, never an evaluation one.

    `train/loss`, `Loss/train`, `train_loss`, Keras' `epoch_loss` in a `train` folder; not `val/loss`, `test_loss`
    or `epoch_loss` in a `validation` folder. A tag or folder saying "train" ranks first, then a plain `loss`, then
    the series with most points (per-batch beats per-epoch).
    """
    best: tuple[tuple[int, int, int], Series] | None = None
    for s in series:
        toks = _tokens(s.tag)
        where = _tokens(s.folder)
        if not any(t == "loss" or (t.endswith("loss") and t[:-4] in _TRAIN_WORDS) for t in toks):
            continue
        if any(t in _EVAL_WORDS for t in toks + where):
            continue
        trainish = any(t in _TRAIN_WORDS or (t.endswith("loss") and t[:-4] in _TRAIN_WORDS) for t in toks + where)
        plain = len([t for t in toks if t not in _TRAIN_WORDS | {"loss", "epoch", "batch", "step", "total"}]) == 0
        key = (int(trainish), int(plain), len(s.points))
        if best is None or key > best[0]:
            best = (key, s)
    return best[1] if best else None


def keep(base: Path, folders: list[Path], dest: Path, since: float | None = None) -> int:
    """Hard-link (or copy, across file systems) a run's event files into `dest`, keeping their folder layout, so
    they outlive the worktree: `tensorboard --logdir .nightlab/runs` then shows every run. Returns files kept."""
    n = 0
    for folder in folders:
        for f in sorted(Path(folder).iterdir()):
            if not f.name.startswith(EVENT_PREFIX) or f.is_symlink() or not f.is_file():
                continue
            if since is not None and f.stat().st_mtime < since:
                continue
            target = dest / f.relative_to(base)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target.unlink()
            try:
                os.link(f, target)
            except OSError:
                shutil.copy2(f, target)
            n += 1
    return n


def gather(runs: list[tuple[str, Path]], dest: Path) -> int:
    """One folder per run under `dest` (named by `label`), holding hard links to (or copies of) the event files kept
    in its run dir: `tensorboard --logdir dest` shows exactly these runs, named so a human recognises them. `dest` is
    emptied first. Returns the runs that had event files."""
    if dest.exists():
        shutil.rmtree(dest)
    n = 0
    for label, events in runs:
        files = [f for f in sorted(Path(events).rglob(EVENT_PREFIX + "*")) if f.is_file() and not f.is_symlink()]
        if not files:
            continue
        n += 1
        for f in files:
            target = dest / label / f.relative_to(events)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, target)
            except OSError:
                shutil.copy2(f, target)
    return n


def run_label(exp_id: int, title: str) -> str:
    """`7 lr 0.1 → 0.3`-style folder names: the id first (sorting), the hypothesis shortened, no path separators."""
    slug = re.sub(r"[^\w.=+-]+", " ", title).strip()[:60].strip()
    return f"{exp_id} {slug}" if slug else str(exp_id)
