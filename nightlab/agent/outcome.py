"""Recognising a run that changed nothing: its output is its parent's, number for number.

An edit that lands where something else overrides it (an argparse default the command line sets, a global a config
file replaces) leaves the program untouched: the run prints exactly what its parent printed, up to wall-clock
figures. Counting such a run as "no improvement" would be wrong evidence — the change was never tested — so the
engine records it as "no effect" and the policy moves the setting to where it takes effect.

Two runs are the same when their metric, metric curve and loss curve are equal and their logs are equal once the
figures that vary between identical runs are masked: durations (``12.3ms``, ``4 s``, ``time 2.1``), rates
(``it/s``, ``tok/s``), utilisation (``mfu 0.4%``), timestamps, memory addresses, process ids and the run's own
directories. A log with too few other numbers to tell (just the metric) is never declared the same: two real
changes can land on the same accuracy over 540 images.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Protocol

__all__ = ["MIN_NUMBERS", "digest", "normalise", "same_output"]

MIN_NUMBERS = 4  # numbers a masked log must hold (besides timings) for "identical" to mean anything

_NUM = r"[-+]?(?:\d[\d,_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_MASKS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\x1b\[[0-9;?]*[A-Za-z]"), ""),  # terminal colours
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}\b(?=\s*(?:<|\[|,|$|elapsed|remaining))"), "<time>"),
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "<addr>"),
    (re.compile(r"(?:/[\w.\-]+)*/\.nightlab/(?:worktrees|runs)/[\w.\-]+"), "<run>"),
    (re.compile(r"/tmp/[\w.\-/]+"), "<tmp>"),
    (re.compile(rf"{_NUM}\s*(?:ms|µs|us|ns|s|sec|secs|seconds?|mins?|minutes?|h|hrs?|hours?)\b", re.IGNORECASE),
     "<dur>"),
    (re.compile(rf"{_NUM}\s*(?:it|its|items|samples|examples|tok|tokens|img|imgs|images|batches|steps)/s\b",
                re.IGNORECASE), "<rate>"),
    (re.compile(rf"{_NUM}\s*s/(?:it|step|batch|epoch)\b", re.IGNORECASE), "<rate>"),
    (re.compile(rf"\b(time|elapsed|took|duration|dt|eta|mfu|throughput|speed|pid|memory|mem|rss|gpu_mem)"
                rf"(\s*[:=]?\s*){_NUM}%?", re.IGNORECASE), r"\1\2<t>"),
]
_NUMBER = re.compile(_NUM)


def normalise(log: str) -> str:
    """The log with every figure that differs between identical runs masked; carriage-return progress redraws are
    reduced to their last state."""
    lines = []
    for line in log.splitlines():
        if "\r" in line:
            line = line.rsplit("\r", 1)[-1]
        for pat, repl in _MASKS:
            line = pat.sub(repl, line)
        lines.append(line.rstrip())
    return "\n".join(lines).strip()


class _Run(Protocol):
    @property
    def metric(self) -> float | None: ...
    @property
    def digest(self) -> str | None: ...
    @property
    def curve(self) -> Any: ...
    @property
    def loss_curve(self) -> Any: ...


def same_output(a: _Run, b: _Run) -> bool:
    """Whether two finished runs (store experiments) printed the same thing: metric, curves and masked log."""
    if a.metric is None or b.metric is None or a.metric != b.metric or a.digest is None or a.digest != b.digest:
        return False
    return bool(a.curve == b.curve and a.loss_curve == b.loss_curve)


def digest(log: str) -> str | None:
    """A fingerprint of a run's output for comparing it with another run's; None when the masked log holds too
    few numbers to say that two runs did the same thing."""
    text = normalise(log)
    if len(_NUMBER.findall(text)) < MIN_NUMBERS:
        return None
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
