"""What the builtin policy knows about the experiment it builds on, and the moves it weighs there.

`ExperimentState` is read fresh from the experiment tree each call (the files of an experiment's commit, its knobs
and what was decided about each, its lineage and regime), so a policy rebuilt after hibernation sees the same; a
`Move` is a candidate experiment before it becomes a Proposal. The knob adapters here never raise: an odd file must
not take the policy down.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nightlab.agent.policy import effective as eff
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.searchable import is_numeric, leaf_name
from nightlab.agent.proposal import ExperimentView
from nightlab.agent.states import Kind

log = logging.getLogger("nightlab.policy.builtin")


def discover_knobs(files: Mapping[str, str]) -> list[knobmod.Knob]:
    """All knobs in the files; names are unique across files (knobs.discover_files prefixes `path:` on clashes)."""
    try:
        return knobmod.discover_files(dict(files))
    except Exception as err:  # an odd file must not take the policy down: fall back to file by file
        log.debug("knob discovery failed: %s", err)
    out: list[knobmod.Knob] = []
    for path, text in files.items():
        try:
            out += knobmod.discover(path, text)
        except Exception as err:
            log.debug("knob discovery failed on %s: %s", path, err)
    return out


def space_of(knob: knobmod.Knob) -> knobmod.Space | None:
    try:
        return knobmod.search_space(knob)
    except Exception:
        return None


def settings_of(knobs: Iterable[PolicyKnob], moved: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The numeric settings as they take effect, by their last name part (lowercase): what a config object's field
    (`config.n_embd`, `cfg["width"]`) reads as in the cost model, so code that sizes its layers from a config
    object (nanoGPT's model.py, with the values in an exec'd config file) is priced. `moved`: knob name -> the value
    an edit gave it. Knobs overridden elsewhere are left out, and so is a name two knobs give different values
    (which one the code reads cannot be told)."""
    seen: dict[str, set[float]] = {}
    for k in knobs:
        v = (moved or {}).get(k.knob.name, k.value)
        if k.effective and is_numeric(v):
            seen.setdefault(leaf_name(str(k.knob.name)).lower(), set()).add(float(v))
    return {name: next(iter(vs)) for name, vs in seen.items() if len(vs) == 1}


def norm_value(v: Any) -> Any:
    """A hashable, rounding-insensitive form of a knob value for comparing assignments."""
    if is_numeric(v):
        return float(f"{float(v):.6g}")
    if isinstance(v, (list, tuple)):
        return tuple(norm_value(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), norm_value(x)) for k, x in v.items()))
    return v


def fmt_value(v: Any) -> str:
    if is_numeric(v) and isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


@dataclass
class PolicyKnob:
    """A discovered knob with what the policy decided about it."""

    key: str  # the knob's (repo-unique) name
    knob: knobmod.Knob
    kind: str
    space: knobmod.Space | None
    searchable: bool
    why_not: str = ""
    effective: bool = True  # False: overridden elsewhere, never run or read, or shown to have no effect
    follows: bool = False  # never moved alone, but carried along with the training length it equals (OneCycleLR's)

    @property
    def value(self) -> Any:
        return self.knob.value

    @property
    def path(self) -> str:
        return str(self.knob.path)


@dataclass(frozen=True)
class SearchKnob:
    """A knob the search may change, with its space: what `BuiltinPolicy.search_knobs` hands a benchmark."""

    key: str
    knob: knobmod.Knob
    space: knobmod.Space
    kind: str

    @property
    def baseline(self) -> Any:
        return self.knob.value


@dataclass
class Move:
    """A candidate experiment before it becomes a Proposal."""

    title: str
    rationale: str
    changes: dict[str, Any] = field(default_factory=dict)  # knob key -> new value
    transform: str | None = None
    diagnosis: str = ""
    expected: str = ""
    kind: Kind = Kind.HYPERPARAMETER
    texts: dict[str, str] | None = None  # precomputed new file texts (code fixes)
    source: str = ""  # which part of `_moves` made it: combine | diagnosis | transform | widen | search | fix
    # (| pattern: a move only the learned policy weighs, policy/learned.py)
    pathology: str = ""  # the diagnosis it remedies (a pathology kind)


@dataclass(frozen=True)
class Foreseen:
    """A move the policy could propose: its plan phase, title and predicted duration (None: no prediction)."""

    phase: str
    title: str
    predicted_s: float | None


@dataclass
class ExperimentState:
    """What propose / fix know about the experiment they build on.

    `files` holds the editable files plus every file the command runs or reads (read-only ones too: a default in
    an editable file may be overridden by one that is not), and the command itself under `eff.COMMAND_PATH`.
    """

    exp: ExperimentView | None
    files: dict[str, str]
    knobs: dict[str, PolicyKnob]
    assignment: dict[str, Any]
    regime: frozenset[str]
    lineage: list[ExperimentView]
    editable: frozenset[str] = frozenset()
    program: eff.Program | None = None
    evaluation: frozenset[str] = frozenset()

    @property
    def command(self) -> str:
        return self.files.get(eff.COMMAND_PATH, "")

    def code(self) -> dict[str, str]:
        """The editable source files (what transforms and fixes may change)."""
        return {p: t for p, t in self.files.items() if p in self.editable}
