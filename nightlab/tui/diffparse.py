"""Unified diffs as data: files, hunks and numbered lines, plus the pairing a side-by-side view needs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(?P<a>\d+)(?:,\d+)? \+(?P<b>\d+)(?:,\d+)? @@(?P<rest>.*)$")


@dataclass(frozen=True)
class DiffLine:
    kind: str  # ctx | add | del | hunk | meta
    text: str
    old_no: int | None = None
    new_no: int | None = None


@dataclass
class FileDiff:
    path: str
    old_path: str
    lines: list[DiffLine] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    binary: bool = False

    @property
    def label(self) -> str:
        return self.path if self.path == self.old_path or self.old_path == "/dev/null" else \
            f"{self.old_path} → {self.path}"


def _strip_prefix(p: str) -> str:
    p = p.strip()
    if p.startswith(("a/", "b/")):
        return p[2:]
    return p


def parse_unified(text: str) -> list[FileDiff]:
    """Split `git diff` output into per-file diffs with old/new line numbers."""
    files: list[FileDiff] = []
    cur: FileDiff | None = None
    old_no = new_no = 0
    in_hunk = False
    for raw in text.splitlines():
        if raw.startswith("diff --git "):
            parts = raw[len("diff --git "):].split(" b/", 1)
            a = _strip_prefix(parts[0])
            b = parts[1] if len(parts) > 1 else a
            cur = FileDiff(path=b, old_path=a)
            files.append(cur)
            in_hunk = False
            continue
        if cur is None:
            continue
        if raw.startswith("--- ") and not in_hunk:
            src = raw[4:].strip()
            cur.old_path = "/dev/null" if src == "/dev/null" else _strip_prefix(src)
            continue
        if raw.startswith("+++ ") and not in_hunk:
            dst = raw[4:].strip()
            if dst != "/dev/null":
                cur.path = _strip_prefix(dst)
            continue
        m = _HUNK.match(raw)
        if m:
            old_no, new_no = int(m.group("a")), int(m.group("b"))
            cur.lines.append(DiffLine("hunk", raw))
            in_hunk = True
            continue
        if raw.startswith("Binary files"):
            cur.binary = True
            cur.lines.append(DiffLine("meta", raw))
            continue
        if not in_hunk:
            continue  # header lines (index, mode, rename) before the first hunk
        if raw.startswith("+"):
            cur.lines.append(DiffLine("add", raw[1:], None, new_no))
            cur.added += 1
            new_no += 1
        elif raw.startswith("-"):
            cur.lines.append(DiffLine("del", raw[1:], old_no, None))
            cur.removed += 1
            old_no += 1
        elif raw.startswith(" ") or raw == "":
            cur.lines.append(DiffLine("ctx", raw[1:], old_no, new_no))
            old_no += 1
            new_no += 1
        elif raw.startswith("\\"):
            cur.lines.append(DiffLine("meta", raw))
    return files


Pair = tuple[DiffLine | None, DiffLine | None]


def side_by_side(f: FileDiff) -> list[Pair]:
    """Rows of (old, new): context on both sides, a run of removals paired line by line with the following additions."""
    rows: list[Pair] = []
    dels: list[DiffLine] = []
    adds: list[DiffLine] = []

    def flush() -> None:
        for i in range(max(len(dels), len(adds))):
            rows.append((dels[i] if i < len(dels) else None, adds[i] if i < len(adds) else None))
        dels.clear()
        adds.clear()

    for ln in f.lines:
        if ln.kind == "del":
            if adds:
                flush()
            dels.append(ln)
        elif ln.kind == "add":
            adds.append(ln)
        else:
            flush()
            rows.append((ln, ln))
    flush()
    return rows
