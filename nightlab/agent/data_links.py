"""Untracked data a training command reads: what each experiment's worktree needs a link to, and why.

A worktree holds the committed files only. Real repositories keep their prepared data out of git (nanoGPT ignores
`*.bin` and `*.pkl`; many ignore a whole `data/` folder), so a run in a worktree fails unless the data the code
opens is linked in. Which untracked paths those are is decided by evidence, never by folder names:

- the candidates are what git itself reports as untracked or ignored (`git ls-files --others [--ignored]`), minus
  nightlab's own state, virtual environments and tool caches;
- a candidate is linked when the code the command reaches (see `code_reach`) names it: the whole path, a path
  inside it, or its name with each parent folder named somewhere in the same code (`os.path.join("data", dataset,
  "train.bin")` with `dataset = "shakespeare_char"` in the config names `data/shakespeare_char/train.bin`); or when
  the code names a folder and nothing inside it more precisely (`MNIST(root="data")`);
- files that hold credentials (`.env`, `*.pem`, `api_token.txt`, `secrets.json`) are never candidates: a job is
  given no secret;
- a candidate the code writes to (`out_dir = …`, `os.makedirs(…)`, `torch.save(…, path)`) is never linked: a link
  would send the run's outputs into the user's checkout.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nightlab.agent.code_reach import PathRef
from nightlab.agent.config import CONFIG_FILE
from nightlab.agent.paths import STATE_DIR
from nightlab.agent.workspace import Workspace

# never data: nightlab's state, version control, editors' and tools' caches
_NOT_DATA = frozenset({STATE_DIR, CONFIG_FILE, ".git", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
                       ".ipynb_checkpoints", "node_modules", ".idea", ".vscode", ".DS_Store", ".tox", ".nox",
                       ".eggs", ".cache"})


@dataclass(frozen=True)
class Candidate:
    """An untracked path in the user's checkout (a folder when git reports it whole)."""

    path: str
    is_dir: bool
    ignored_by: str = ""  # "<source>:<line> (<pattern>)" when git ignores it, else ""

    @property
    def parts(self) -> list[str]:
        return self.path.split("/")

    def origin(self) -> str:
        return f"ignored by {self.ignored_by}" if self.ignored_by else "untracked"


@dataclass(frozen=True)
class Link:
    path: str
    why: str


@dataclass
class LinkPlan:
    links: list[Link] = field(default_factory=list)
    skipped: list[Link] = field(default_factory=list)  # untracked paths the code names but writes to

    @property
    def paths(self) -> list[str]:
        return [ln.path for ln in self.links]


_SECRET_FILE = re.compile(r"(?:^|[._-])(?:secrets?|passwords?|passwd|credentials?|api[_-]?keys?|"
                          r"(?:api|auth|access)[_-]?tokens?|token)(?:[._-]|$)", re.I)


def _secret(name: str) -> bool:
    """Files that hold credentials are never linked: a job is given no secret. By whole words, so `tokens.txt`
    (a corpus) and `keypoints.npy` stay data while `.env`, `api_token.txt` and `secrets.json` do not."""
    return name.startswith(".env") or name in (".netrc", ".pgpass") or name.endswith((".pem", ".key")) \
        or _SECRET_FILE.search(name) is not None


def _is_venv(root: Path, rel: str) -> bool:
    return (root / rel / "pyvenv.cfg").is_file() or (root / rel / "conda-meta").is_dir()


def candidates(ws: Workspace) -> list[Candidate]:
    """The untracked and ignored paths git reports (folders collapsed where git collapses them)."""
    plain = ws.repo.git.ls_files("--others", "--exclude-standard", "--directory", "--no-empty-directory", "-z")
    ignored = ws.repo.git.ls_files("--others", "--ignored", "--exclude-standard", "--directory",
                                   "--no-empty-directory", "-z")
    raw: list[tuple[str, bool]] = [(p, False) for p in plain.split("\0") if p]
    raw += [(p, True) for p in ignored.split("\0") if p]
    rules = _ignore_rules(ws, [p for p, ign in raw if ign])
    out: list[Candidate] = []
    for p, ign in raw:
        is_dir = p.endswith("/")
        rel = p.rstrip("/")
        parts = rel.split("/")
        if any(part in _NOT_DATA for part in parts) or rel.endswith((".pyc", ".pyo", ".log", ".swp")):
            continue
        if _secret(parts[-1]):
            continue
        if is_dir and _is_venv(ws.root, rel):
            continue
        out.append(Candidate(rel, is_dir, rules.get(p, rules.get(rel, "")) if ign else ""))
    return out


def _ignore_rules(ws: Workspace, paths: list[str]) -> dict[str, str]:
    """For each ignored path, the rule that ignores it, as `git check-ignore -v` reports it."""
    if not paths:
        return {}
    try:
        r = subprocess.run(["git", "-C", str(ws.root), "check-ignore", "-v", "-z", "--stdin"],
                           input="\0".join(paths) + "\0", capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    fields = r.stdout.split("\0")
    out: dict[str, str] = {}
    for i in range(0, len(fields) - 3, 4):
        source, line, pattern, path = fields[i:i + 4]
        if source:
            out[path] = f"{os.path.relpath(source, ws.root) if os.path.isabs(source) else source}:{line} ({pattern})"
    return out


def _suffix_match(ref: list[str], parts: list[str]) -> bool:
    """The reference's parts match the last parts of the candidate (each part a glob)."""
    return 0 < len(ref) <= len(parts) and all(
        fnmatch.fnmatchcase(p, r) for r, p in zip(ref, parts[len(parts) - len(ref):], strict=True))


def _prefix_match(ref: list[str], parts: list[str]) -> bool:
    return 0 < len(ref) <= len(parts) and all(fnmatch.fnmatchcase(p, r) for r, p in zip(ref, parts, strict=False))


def _specific(ref: PathRef) -> bool:
    """Whether a reference says something beyond wildcards and an extension (`f"{name}.txt"` names no file)."""
    return any(len(re.sub(r"\.[A-Za-z0-9]{1,8}$", "", p).replace("*", "")) >= 2 for p in ref.parts)


def _names(ref: PathRef, cand: Candidate, named_parts: set[str]) -> bool:
    """Whether the reference names the candidate: its whole path, a path inside it, or its last parts with every
    parent folder named somewhere in the same code."""
    rp, cp = ref.parts, cand.parts
    if not rp or not _specific(ref):
        return False
    if cand.is_dir and len(rp) > len(cp) and _prefix_match(cp, rp):
        return True  # a path inside the folder
    if not _suffix_match(rp, cp):
        return False
    parents = cp[: len(cp) - len(rp)]
    return all(p in named_parts or any(fnmatch.fnmatchcase(p, n) for n in named_parts if "*" in n) for p in parents)


def _quote(ref: PathRef) -> str:
    return f"{ref.where} names {ref.text!r}" + (f" ({ref.role})" if ref.role else "")


def plan(cands: Iterable[Candidate], refs: Iterable[PathRef]) -> LinkPlan:
    """Which candidates to link (see the module docstring), each with why; and those named only as outputs."""
    cands = list(cands)
    refs = list(refs)
    # plain strings first: the evidence quoted in the summary is then the code's own words, not a joined pattern
    refs.sort(key=lambda r: "*" in r.text)
    reads = [r for r in refs if not r.output]
    writes = [r for r in refs if r.output]
    named = {p for r in reads for p in r.parts if p.strip("*")}  # a bare `*` (a formatted value) names no folder
    out_named = {p for r in writes for p in r.parts if p.strip("*")}
    result = LinkPlan()
    precise: set[str] = set()
    for c in cands:
        writer = next((r for r in writes if _names(r, c, named | out_named)), None)
        if writer is not None:
            result.skipped.append(Link(c.path, f"{c.origin()}; the code writes there: {_quote(writer)}"))
            continue
        reader = next((r for r in reads if _names(r, c, named)), None)
        if reader is not None:
            result.links.append(Link(c.path, f"{c.origin()}; {_quote(reader)}"))
            precise.add(c.path)
    skipped = {s.path for s in result.skipped}
    # a folder the code names whose untracked contents it does not name one by one (`MNIST(root="data")`)
    for c in cands:
        if c.path in precise or c.path in skipped:
            continue
        for r in reads:
            rp = r.parts
            if not rp or len(rp) >= len(c.parts) or not _prefix_match(rp, c.parts) or "*" in r.text:
                continue
            folder = "/".join(c.parts[: len(rp)])
            if any(p.startswith(folder + "/") for p in precise):
                continue
            result.links.append(Link(c.path, f"{c.origin()}; inside {folder}/, which {_quote(r)}"))
            break
    order = {c.path: i for i, c in enumerate(cands)}
    result.links.sort(key=lambda ln: order.get(ln.path, 0))
    return result


def for_missing(path: str, cands: Iterable[Candidate], have: Iterable[str]) -> list[Candidate]:
    """Candidates that a run's "No such file" for `path` (relative to the run's folder) asks for: the candidate
    that holds it, or those inside it when it is a folder the code lists."""
    have = set(have)
    out = []
    for c in cands:
        if c.path in have:
            continue
        if path == c.path or path.startswith(c.path + "/") or c.path.startswith(path + "/"):
            out.append(c)
    return out
