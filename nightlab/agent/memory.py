"""Memory: what this project has already tried, and what came of it.

The experiment tree in the store is the record; this module reads it as a list of settled hypotheses (title,
outcome, metric, change against the parent, diagnosis) that a policy can be shown and queried, and decides whether a
new proposal merely repeats one of them, so the engine (or the policy itself) can refuse it before it costs a run.

Policy-agnostic on purpose: the builtin policy and a language model are held to the same "don't try it twice".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from nightlab.agent.proposal import Edit, ExperimentView, Proposal
from nightlab.agent.states import ACTIVE, ENGINE_KINDS, Kind, RunResult, Status

# statuses whose experiment ran to an outcome that counts as evidence (rejected / cancelled ones never ran)
RAN = frozenset({Status.KEPT, Status.UNCONFIRMED, Status.DISCARDED, Status.PROMOTED, Status.FAILED, Status.TIMED_OUT,
                 Status.SUCCEEDED, Status.LOST, Status.STOPPED_EARLY,
                 Status.NO_EFFECT})
# refused before running (by a human, with feedback, or as an invalid edit): worth remembering, not a repeat
REJECTED = Status.REJECTED
# statuses of experiments on their way to a run: proposing the same thing again while they run is also a repeat
PENDING = ACTIVE
# kinds that repeat on purpose (seed re-runs) or are not hypotheses at all
NOT_HYPOTHESES = ENGINE_KINDS
TITLE_SIMILARITY = 0.9  # SequenceMatcher ratio of normalised titles above which two titles say the same thing


@dataclass(frozen=True)
class MemoryItem:
    """One tried hypothesis and what it led to. `delta` is metric minus the parent's metric (raw, not signed)."""

    id: int
    title: str
    kind: str
    outcome: str  # improved | no improvement | worse (stopped early) | failed: <class> | timed out | pending
    metric: float | None
    delta: float | None
    diagnosis: str


def _outcome(e: ExperimentView) -> str:
    if e.status in PENDING:
        return "pending"
    if e.status in (Status.KEPT, Status.UNCONFIRMED):
        return "improved"
    if e.status == Status.PROMOTED:
        return "improved (promoted)"
    if e.status == Status.DISCARDED:
        return "no improvement"
    if e.status == Status.STOPPED_EARLY:  # its curve was clearly worse than its parent's: a regression, seen early
        return "worse (stopped early)"
    if e.status == Status.NO_EFFECT:
        return "no effect (ran exactly like its parent: the change did not reach the program)"
    if e.status == REJECTED:
        return "rejected before running"
    if e.status == Status.TIMED_OUT or e.run_result == RunResult.TIMED_OUT:
        return "timed out"
    if e.status in (Status.FAILED, Status.LOST) or e.run_result in (RunResult.FAILED, RunResult.LOST):
        return f"failed: {e.failure_class}" if e.failure_class else "failed"
    return e.status


def settled(experiments: Sequence[ExperimentView], include_pending: bool = False) -> list[MemoryItem]:
    """Hypotheses that ran or were rejected (with the reason or the human's feedback as diagnosis), oldest first;
    with include_pending also those on their way to a run."""
    by_id = {e.id: e for e in experiments}
    out: list[MemoryItem] = []
    for e in sorted(experiments, key=lambda x: x.id):
        if e.kind in NOT_HYPOTHESES:
            continue
        if e.status not in RAN and e.status != REJECTED and not (include_pending and e.status in PENDING):
            continue
        parent = by_id.get(e.parent_id) if e.parent_id is not None else None
        delta = e.metric - parent.metric if e.metric is not None and parent and parent.metric is not None else None
        out.append(MemoryItem(id=e.id, title=e.title, kind=e.kind, outcome=_outcome(e), metric=e.metric,
                              delta=delta, diagnosis=(e.diagnosis or "").strip()))
    return out


def search(items: Iterable[MemoryItem], query: str) -> list[MemoryItem]:
    """Items whose title or diagnosis holds every word of `query` (case-insensitive): "what did we learn about lr?"."""
    words = [w for w in _norm_text(query).split() if w]
    return [it for it in items if all(w in _norm_text(f"{it.title} {it.diagnosis}") for w in words)]


def format_memory(items: Sequence[MemoryItem], limit: int = 60, diagnosis_chars: int = 160) -> str:
    """One line per hypothesis for a prompt or a report; the newest `limit` when there are more (and says so)."""
    if not items:
        return "(nothing tried yet)"
    shown = list(items)[-limit:]
    lines = [] if len(shown) == len(items) else [f"({len(items) - len(shown)} older hypotheses not shown)"]
    for it in shown:
        metric = f"; metric {it.metric:.6g}" if it.metric is not None else ""
        delta = f" ({it.delta:+.4g} vs parent)" if it.delta is not None else ""
        diag = it.diagnosis.replace("\n", " ")
        diag = f" — {diag[:diagnosis_chars]}{'…' if len(diag) > diagnosis_chars else ''}" if diag else ""
        lines.append(f"- #{it.id} [{it.kind}] {it.title} → {it.outcome}{metric}{delta}{diag}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ repeats
def _norm_text(s: str) -> str:
    return re.sub(r"[^a-z0-9.]+", " ", s.lower()).strip()


_NUM = re.compile(r"(?<![a-z0-9_])[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?", re.IGNORECASE)


def _numbers(s: str) -> list[float]:
    """The numbers in a title, as floats, so "lr 3e-4" and "lr 0.0003" agree and "lr 0.01" and "lr 0.02" don't."""
    out = []
    for m in _NUM.findall(s):
        try:
            out.append(float(m))
        except ValueError:
            continue
    return sorted(out)


def same_title(a: str, b: str) -> bool:
    """Near-identical after normalising case and punctuation, with exactly the same numbers."""
    if _numbers(a) != _numbers(b):
        return False
    words_a, words_b = _title_words(a), _title_words(b)
    if not words_a or not words_b:
        return False
    return words_a == words_b or difflib.SequenceMatcher(None, words_a, words_b).ratio() >= TITLE_SIMILARITY


_STOP = {"the", "a", "an", "to", "of", "by", "for", "in", "on", "and", "from", "with", "at", "into"}


def _title_words(s: str) -> list[str]:
    words = (w.strip(".") for w in _norm_text(_NUM.sub(" ", s.lower())).split())
    return [w for w in words if w and w not in _STOP]


def _norm_line(line: str) -> str:
    return " ".join(line.split())


Signature = frozenset[tuple[str, str, str]]  # (path, "-" | "+", normalised line)


def edit_signature(edits: Sequence[Edit]) -> Signature:
    """The lines an edit list removes and adds, per file, ignoring whitespace and context.

    Comparable with `patch_signature`, so a proposal's search/replace blocks can be matched against the unified
    diff stored for an experiment that ran.
    """
    sig: set[tuple[str, str, str]] = set()
    for e in edits:
        path = e.path.strip().removeprefix("./")
        old, new = e.search.splitlines(), e.replace.splitlines()
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
            if tag == "equal":
                continue
            sig.update((path, "-", _norm_line(x)) for x in old[i1:i2] if _norm_line(x))
            sig.update((path, "+", _norm_line(x)) for x in new[j1:j2] if _norm_line(x))
    return frozenset(sig)


def patch_signature(patch: str) -> Signature:
    """The same signature from a unified diff (`git diff` output)."""
    sig: set[tuple[str, str, str]] = set()
    path = ""
    for line in patch.splitlines():
        if line.startswith("+++ "):
            target = line[4:].strip()
            path = target[2:] if target.startswith("b/") else target
            continue
        if line.startswith("--- "):
            source = line[4:].strip()
            if source != "/dev/null":
                path = source[2:] if source.startswith("a/") else source
            continue
        if line.startswith(("diff ", "index ", "@@", "new file", "deleted file", "similarity", "rename ")):
            continue
        if line[:1] in "+-" and _norm_line(line[1:]):
            sig.add((path, line[0], _norm_line(line[1:])))
    return frozenset(sig)


def is_repeat(
    proposal: Proposal,
    experiments: Sequence[ExperimentView],
    patches: Mapping[int, str] | None = None,
) -> str | None:
    """'#id title' of a tried (or pending) experiment that `proposal` repeats, else None.

    A repeat builds on the same parent (when the proposal names one) and makes the same change (same normalised
    removed/added lines, when `patches` gives experiment id -> unified diff) or says the same thing (near-identical
    title, same numbers, same kind). The same change on another parent is a new experiment: raising the learning
    rate after switching optimizer is not the rise tried before the switch. Fixes only repeat fixes of the same
    parent: one fix idea may well be right for two different broken branches.
    """
    sig = edit_signature(proposal.edits) if proposal.edits else frozenset()
    for e in sorted(experiments, key=lambda x: -x.id):  # newest first: the most relevant precedent
        if e.kind in NOT_HYPOTHESES or (e.status not in RAN and e.status not in PENDING):
            continue
        if proposal.parent_id is not None and e.parent_id != proposal.parent_id:
            continue
        fix_like = proposal.kind == Kind.FIX or e.kind == Kind.FIX
        if fix_like and (e.kind != proposal.kind or e.parent_id != proposal.parent_id):
            continue
        if sig and patches is not None and patches.get(e.id) and patch_signature(patches[e.id]) == sig \
                and (proposal.command or "") == (e.command or ""):
            return f"#{e.id} {e.title}"
        if not sig and proposal.command and proposal.command == e.command \
                and not (patches or {}).get(e.id, "").strip():
            return f"#{e.id} {e.title}"
        if e.kind == proposal.kind and same_title(proposal.title, e.title):
            return f"#{e.id} {e.title}"
    return None
