"""The catalogue of known failures and their fixes: data, not a chain of ifs.

Real training code breaks in well-known ways after a library upgrade or on another machine (torch.load's new
`weights_only` default, CUDA-only code on a CPU, removed numpy aliases, DataLoader workers without shared memory,
...). Each way is an `Entry` in `table.CATALOGUE`: a pattern recognised from the log with certainty, a one-line
diagnosis naming the cause, a minimal format-preserving libcst repair (or the reason none is possible), and a test
case. The builtin policy applies the repairs (`BuiltinPolicy.fix`), the LLM policy shows the same diagnosis in its
prompt (`explain`), and adding an entry never touches either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

from nightlab.agent.policy.catalogue.entry import Entry, Fix, Frame, KnobChange, Match, NoFix, Site, Symptoms
from nightlab.agent.policy.catalogue.table import CATALOGUE

__all__ = ["CATALOGUE", "Entry", "Fix", "Frame", "KnobChange", "Match", "NoFix", "Site", "Symptoms", "explain",
           "recognise", "repairs", "symptoms"]

_FRAME_RE = re.compile(r'^\s*File "([^"]+)", line (\d+)(?:, in .+)?\s*$')


def _repo_path(printed: str, paths: Sequence[str]) -> str | None:
    p = printed.replace("\\", "/")
    for cand in paths:
        if p == cand or p.endswith("/" + cand):
            return cand
    return None


def frames_in(log: str, paths: Sequence[str]) -> tuple[Frame, ...]:
    """Every traceback frame of the log that lies in one of `paths` (repo-relative), in order, with its code line."""
    lines = log.splitlines()
    out = []
    for i, ln in enumerate(lines):
        m = _FRAME_RE.match(ln)
        if not m:
            continue
        path = _repo_path(m.group(1), paths)
        if path is None:
            continue
        code = lines[i + 1].strip() if i + 1 < len(lines) and not _FRAME_RE.match(lines[i + 1]) else ""
        out.append(Frame(path, int(m.group(2)), code))
    return tuple(out)


def symptoms(failure_class: str | None, log: str, result: str | None, paths: Sequence[str]) -> Symptoms:
    """What the patterns read: the failure class, the last exception and the frames in the repository's files."""
    from nightlab.agent import diagnose

    cls = (failure_class or "").lower()
    if not cls:
        cls = diagnose.classify_failure(log, None, result or "failed").cls
    tb = diagnose.parse_traceback(log)
    exc = (tb.exc_type or "").rsplit(".", 1)[-1] if tb is not None else ""
    message = tb.full_message if tb is not None else ""
    return Symptoms(cls=cls, exception=exc, message=message, log=log, result=result or "failed",
                    frames=frames_in(log, paths))


def recognise(sym: Symptoms, entries: Sequence[Entry] = CATALOGUE) -> list[tuple[Entry, Match]]:
    """Every entry whose pattern is certain for these symptoms, in catalogue order."""
    out = []
    for e in entries:
        try:
            m = e.recognise(sym)
        except Exception:  # a pattern bug must never take a policy down
            m = None
        if m is not None:
            out.append((e, m))
    return out


def repairs(sym: Symptoms, site: Site, entries: Sequence[Entry] = CATALOGUE) -> Iterator[tuple[Entry, Match,
                                                                                              Fix | NoFix]]:
    """Candidate repairs in catalogue order (a broken repair is skipped, never half-applied)."""
    for e, m in recognise(sym, entries):
        try:
            for out in e.repair(m, site):
                yield e, m, out
        except Exception:
            continue


def explain(sym: Symptoms, site: Site | None = None) -> str:
    """The catalogue's reading of a failure for a language model's prompt: the diagnosis, and the repair nightlab's
    own policy would make (or why none can work). '' when no entry recognises it."""
    found = recognise(sym)
    if not found:
        return ""
    lines = []
    for e, m in found[:2]:
        lines.append(f"- {e.name}: {m.diagnosis}. Known fix: {e.remedy}.")
        if site is not None:
            for entry, _m, out in repairs(sym, site, [e]):
                if isinstance(out, NoFix):
                    lines.append(f"  No code change can fix it: {out.reason}.")
                elif out.texts or out.changes:
                    lines.append(f"  nightlab's own fix would be: {out.title or entry.remedy}.")
                break
    return "\n".join(lines)


def site_paths(files: Mapping[str, str]) -> list[str]:
    return sorted(files, key=lambda p: -len(p))
