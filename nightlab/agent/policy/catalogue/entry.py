"""What a catalogue entry is made of, and what it is given.

An entry is data: a name, the error and the remedy in words (the README's table is written from them), a
`recognise` function that reads the failure (`Symptoms`) and answers with a `Match` only when the pattern is certain,
a `repair` function that turns a match and the failed run's code (`Site`) into candidate `Fix`es -- or a `NoFix`
that says why no code change can help -- and the name of the test case that reproduces the failure. Nothing here
knows about the engine or a particular policy: the builtin policy applies the fixes, the LLM policy quotes the
diagnosis, and a new entry is one more row in `table.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Entry", "Fix", "Frame", "KnobChange", "Match", "NoFix", "Site", "Symptoms"]


@dataclass(frozen=True)
class Frame:
    """A traceback frame in the repository's own code: repo-relative path, line, the code line as printed."""

    path: str
    line: int
    code: str = ""


@dataclass(frozen=True)
class Symptoms:
    """Everything a pattern may read about a failed run (all of it from the run's record, no files)."""

    cls: str  # diagnose's failure class: import_error, device_error, oom, timeout, ...
    exception: str  # the last exception's short type name ('' without a traceback): UnpicklingError
    message: str  # its whole message (several lines for torch and scikit-learn)
    log: str  # the log tail the engine kept
    result: str  # the run's result: failed | timed_out | cancelled | lost
    frames: tuple[Frame, ...] = ()  # frames in the repository's files, outermost first (every traceback in the log)

    @property
    def frame(self) -> Frame | None:
        """The innermost frame in the repository's own code."""
        return self.frames[-1] if self.frames else None

    def says(self, *patterns: str) -> re.Match[str] | None:
        """The first regex among `patterns` found in the exception message, else in the log."""
        for pat in patterns:
            m = re.search(pat, self.message) or re.search(pat, self.log)
            if m:
                return m
        return None


@dataclass(frozen=True)
class Match:
    """A recognised failure: the one-line hypothesis naming the cause, and what the repair needs to know."""

    diagnosis: str
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KnobChange:
    """A numeric setting of the training code scaled by the policy's knob editor."""

    key: str  # the knob's name as the policy records it (CONFIG.batch_size, --epochs, ...)
    old: Any
    new: Any


@dataclass
class Site:
    """The failed run's code and surroundings, as a repair sees them."""

    files: Mapping[str, str]  # editable text files of the failed run (repo path -> text)
    # the command the failed run ran; a repair that changes it returns the new one as texts[COMMAND_PATH]
    command: str = ""
    frames: tuple[Frame, ...] = ()  # the failure's traceback frames in those files, outermost first
    tracked: frozenset[str] = frozenset()  # every path the repository tracks: the files it ships
    gpus: int = 0  # GPUs each job gets; 0 on a CPU-only setup
    # knobs this run changed against its parent, which ran: key -> (kind, parent's value, this run's value)
    changed: Mapping[str, tuple[str, Any, Any]] = field(default_factory=dict)
    scale: Callable[[str, float], KnobChange | None] = lambda kind, factor: None  # the first knob of a kind, scaled

    def python(self) -> dict[str, str]:
        return {p: t for p, t in self.files.items() if p.endswith(".py")}


@dataclass
class Fix:
    """One candidate repair: new file texts and/or knob changes, with the words shown to the user."""

    title: str
    rationale: str
    texts: dict[str, str] = field(default_factory=dict)  # repo path -> new text
    changes: dict[str, Any] = field(default_factory=dict)  # knob key -> new value (the policy rewrites the knob)
    transform: str | None = None  # or a named transformation of transforms/
    expected: str = "the script runs"


@dataclass(frozen=True)
class NoFix:
    """No code change can repair this run; `reason` is recorded with the abandoned branch."""

    reason: str


Recognise = Callable[[Symptoms], Match | None]
Repair = Callable[[Match, Site], Iterator[Fix | NoFix]]


@dataclass(frozen=True)
class Entry:
    """One row of the catalogue."""

    name: str
    error: str  # the error as a user sees it (README)
    remedy: str  # what the repair does (README)
    recognise: Recognise
    repair: Repair
    case: str  # tests/catalogue_cases/<case>.py reproduces the failure on the installed versions
