"""Search/replace edits: validated against the parent's files before anything is written.

Every policy's change goes through here, so "the search text occurs exactly once in an editable file" and "protected
or unknown paths are refused" hold for the builtin policy and a language model alike.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence

from nightlab.agent.proposal import Edit
from nightlab.errors import EditError


def matches_any(path: str, patterns: Iterable[str]) -> bool:
    """True if a repo-relative path matches one of the globs (a pattern naming a folder covers what is inside)."""
    for pat in patterns:
        pat = pat.rstrip("/")
        if fnmatch.fnmatchcase(path, pat) or path.startswith(pat + "/"):
            return True
        if pat.startswith("**/") and fnmatch.fnmatchcase(path, pat[3:]):
            return True
    return False


def _listing(editable: Sequence[str]) -> str:
    """What may be edited, for the refusal: an empty list allows nothing (as the policies see it), never everything."""
    return f" (editable: {', '.join(editable)})" if editable else \
        " (no file is editable: list the files the agent may edit under `editable` in nightlab.toml)"


def apply_edits(
    edits: Sequence[Edit],
    read: Callable[[str], str | None],
    editable: Sequence[str],
    protected: Sequence[str],
    link_in_path: Callable[[str], str | None] | None = None,
) -> dict[str, str]:
    """Apply edits in order; return {path: new_text}. `read(path)` gives the parent's text, None if absent;
    `link_in_path(path)` describes a symbolic link the path is or passes through in the parent ("" / None: none).

    Raises EditError naming the path and the reason on the first invalid edit; nothing is written here. A path
    through a link is refused whatever the link points at: writing through it would change a file outside the
    worktree (or another file than the one named, under other rules), and git cannot commit it.
    """
    out: dict[str, str] = {}
    for i, e in enumerate(edits, 1):
        path = e.path.strip().lstrip("./") if e.path.startswith("./") else e.path.strip()
        if not path or path.startswith("/") or ".." in path.split("/"):
            raise EditError(f"edit {i}: path {e.path!r} is not a relative path inside the repository")
        link = link_in_path(path) if link_in_path is not None else None
        if link:
            raise EditError(f"edit {i}: {path} {link}; nightlab never edits through a symbolic link")
        if matches_any(path, protected):
            raise EditError(f"edit {i}: {path} is protected (evaluation or data); edits to it are refused")
        current = out[path] if path in out else read(path)
        if current is None:
            if e.search:
                raise EditError(f"edit {i}: {path} does not exist")
            if not matches_any(path, editable):
                raise EditError(f"edit {i}: {path} is not an editable file{_listing(editable)}")
            out[path] = e.replace
            continue
        if not matches_any(path, editable):
            raise EditError(f"edit {i}: {path} is not an editable file{_listing(editable)}")
        if not e.search:
            raise EditError(f"edit {i}: empty search text for existing file {path}")
        count = current.count(e.search)
        if count == 0:
            raise EditError(f"edit {i}: search text not found in {path}: {_first_line(e.search)!r}")
        if count > 1:
            raise EditError(f"edit {i}: search text occurs {count} times in {path}; it must occur exactly once")
        out[path] = current.replace(e.search, e.replace, 1)
    return {p: t for p, t in out.items() if read(p) != t}


def _first_line(s: str) -> str:
    line = s.strip().splitlines()[0] if s.strip() else s
    return line[:80]
