"""What a finished run reports: its metric and its curves, from wherever the project's config says they are.

`metric.source = "log"` (the default) reads the metric from what the job printed, or from `metric.file`;
`"tensorboard"` reads it from the scalars of the event files the job wrote (a tag, reduced by last / min / max).
Either way the training-loss curve for diagnosis comes from the log, and from the event files' scalars when the
log prints none: a script that only logs to TensorBoard still gets its learning curve read. The event files are
linked into the run dir so they outlive the experiment's worktree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from nightlab.agent import metrics, tbevents
from nightlab.agent.config import MetricConfig
from nightlab.agent.metric_text import fmt_metric
from nightlab.errors import NightlabError

EVENTS_DIR = "tensorboard"  # inside the run dir: the run's event files, kept


@dataclass
class RunMetrics:
    reading: metrics.MetricReading
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    events_kept: int = 0
    note: str | None = None  # something the user should know that is not a failure (unreadable events, ...)


def read_run(cfg: MetricConfig, log: str, cwd: Path, *, since: float | None = None,
             run_dir: Path | None = None) -> RunMetrics:
    """Read the metric and curves of a run that ran in `cwd` and started at `since` (epoch seconds; event files
    older than that are not this run's). With `run_dir`, the run's event files are linked into
    `run_dir/tensorboard/`."""
    cwd = Path(cwd)
    base = cwd / cfg.logdir if cfg.source == "tensorboard" and cfg.logdir else cwd
    folders = tbevents.event_folders(base, since)
    series: list[tbevents.Series] = []
    note = None
    loss_curve = metrics.parse_loss_curve(log)
    # the events are parsed only when they are needed: for the metric, or for a loss curve the log does not print
    # (event files with images or histograms can be large; a log-metric project pays nothing for them)
    if folders and (cfg.source == "tensorboard" or not loss_curve):
        try:
            series = tbevents.read_folders(base, folders)
        except NightlabError as err:
            if cfg.source == "tensorboard":
                return RunMetrics(metrics.MetricReading(None, [], str(err)))
            note = str(err)  # the metric comes from the log; the events only add a curve
    if cfg.source == "tensorboard":
        reading = tensorboard_reading(cfg, series)
    else:
        reading = metrics.parse_metric(log, cfg.name, cfg.regex)
        if cfg.file:
            mfile = metrics_file(cwd, cfg.file)
            if mfile is not None and (mfile.exists() or mfile.is_symlink()):  # read beneath the worktree, no link
                reading = metrics.parse_metrics_file(mfile, cfg.name, root=cwd)
    if not loss_curve:
        loss = tbevents.loss_series(series)
        if loss is not None:
            loss_curve = list(loss.points)
    kept = 0
    if run_dir is not None and folders:
        try:
            kept = tbevents.keep(base, folders, Path(run_dir) / EVENTS_DIR, since)
        except OSError as err:
            note = f"could not keep the run's TensorBoard event files: {err}"
    return RunMetrics(reading, loss_curve, kept, note)


_GLOB = frozenset("*?[")


def metrics_file(cwd: Path, pattern: str) -> Path | None:
    """The metrics file `metric.file` names in the run's folder: the path itself, or where it is a glob (PyTorch
    Lightning's `lightning_logs/version_*/metrics.csv`, a new version folder per run) the newest regular file it
    matches; None when a glob matches nothing."""
    if not _GLOB & set(pattern):
        return cwd / pattern
    found = []
    for p in cwd.glob(pattern):
        try:
            st = p.lstat()
        except OSError:
            continue
        if p.is_file() and not p.is_symlink():
            found.append((st.st_mtime, str(p), p))
    return max(found)[2] if found else None


def tensorboard_reading(cfg: MetricConfig, series: list[tbevents.Series]) -> metrics.MetricReading:
    """The metric from the event files' scalars: the configured tag, reduced; its series is the curve."""
    tag = cfg.tb_tag
    chosen = tbevents.select(series, tag)
    if isinstance(chosen, str):
        where = f" under {cfg.logdir}" if cfg.logdir else ""
        if not series:
            return metrics.MetricReading(None, [], f"metric {cfg.name!r}: no TensorBoard event files were written"
                                                   f"{where} during the run")
        return metrics.MetricReading(None, [], f"metric {cfg.name!r}: {chosen}")
    curve = [(s, v) for s, v in chosen.points if math.isfinite(v)]
    got = tbevents.reduce(chosen.points, cfg.reduce)
    if isinstance(got, str):
        return metrics.MetricReading(None, curve, f"metric {cfg.name!r} (TensorBoard {tag!r}): {got}",
                                     f"{chosen.label} = {chosen.points[-1][1] if chosen.points else ''}")
    value, step = got
    return metrics.MetricReading(value, curve, None,
                                 f"{chosen.label} step {step} = {fmt_metric(value)} ({cfg.reduce})")
