"""A job that writes outside its worktree: an output folder the repository or its command names by an absolute path.

Jobs may write their worktree, `out/` and a private /tmp; the rest of the file system is read-only and the home is
hidden. A repository whose default output is `~/experiments/run1` or `/scratch/ckpt` ran on the user's machine and
failed in every job (`OSError: [Errno 30] Read-only file system`; under Landlock `[Errno 13] Permission denied`),
and nightlab had no fix to try. The repair writes the path as a relative one, which lands in the job's worktree (a
run's files there are kept with it), wherever it is named: a string literal in the code, a value in a config file
or a shell script the run reads (`output_dir: /scratch/run1`, `--output_dir /scratch/run1` in `train.sh`), or a word
of the training command itself (`python train.py --output_dir /scratch/run1`, Hydra's `hydra.run.dir=/scratch/x`;
the experiment then runs its own command, shown with it and at promote). Only a path nothing names (an environment
variable's) stops the branch, with how to go on.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator

from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms
from nightlab.agent.policy.commandline import COMMAND_PATH

__all__ = ["recognise_outside_write", "repair_outside_write"]

# EROFS: a write (never a read) bubblewrap's read-only file system refused. EACCES is what Landlock (the layer used
# where user namespaces are refused, as on Ubuntu 24.04's defaults) answers, to a read as well: it counts only where
# the repository's line that failed writes (makes a folder, opens for writing, saves)
_READ_ONLY = r"\[Errno 30\] Read-only file system: '(/[^']*)'"
_DENIED = r"\[Errno 13\] Permission denied: '(/[^']*)'"
_WRITES = re.compile(r"\b(?:makedirs|mkdir|touch|save\w*|savefig|to_(?:csv|parquet|json|pickle)|dump|write\w*|"
                     r"copy\w*|move|rename|SummaryWriter)\s*\(|\bopen\s*\(.*['\"](?:[wax]b?\+?|r\+b?)['\"]")


def recognise_outside_write(sym: Symptoms) -> Match | None:
    m = sym.says(_READ_ONLY)
    if m is None:
        fr = sym.frame
        m = sym.says(_DENIED) if fr is not None and _WRITES.search(fr.code) else None
    if m is None:
        return None
    return Match(f"the job writes {m.group(1)}, outside its worktree (jobs may write only their worktree, out/ and "
                 "/tmp)", {"path": m.group(1)})


def _relative(value: str) -> str:
    return value[2:] if value.startswith("~/") else value.lstrip("/")


def _names(value: str, refused: str) -> bool:
    """Whether path literal `value` names the refused path, a folder above it or a file below it."""
    if not value.startswith(("/", "~/")) or "\n" in value:
        return False
    full = os.path.normpath(os.path.expanduser(value))
    if full in ("/", os.path.expanduser("~")) or not _relative(value).strip("/"):
        return False
    return full == refused or full.startswith(refused + "/") or refused.startswith(full + "/")


def _rewritten(text: str, refused: str) -> tuple[str, list[tuple[str, str]]]:
    """`text` with each string literal naming the refused path made relative, and the (old, new) pairs."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return text, []
    lines = text.splitlines(keepends=True)
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln))
    spans: list[tuple[int, int, str, str]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and _names(node.value, refused)):
            continue
        if node.end_lineno != node.lineno or node.end_col_offset is None:
            continue
        line = lines[node.lineno - 1].encode()
        seg = line[node.col_offset:node.end_col_offset].decode()
        quote = seg[-1:]
        new = _relative(node.value)
        if quote not in ("'", '"') or seg[:1] not in ("'", '"') or quote in new or "\\" in new or \
                seg != f"{quote}{node.value}{quote}":
            continue  # a prefix, a triple quote, an escape: not rewritten blind
        a = starts[node.lineno - 1] + len(line[:node.col_offset].decode())
        spans.append((a, a + len(seg), seg, f"{quote}{new}{quote}"))
    for a, b, _, new in sorted(spans, reverse=True):
        text = text[:a] + new + text[b:]
    return text, [(old, new) for _, _, old, new in sorted(spans)]


# a path word in a config file, a shell script or the command: `/…` or `~/…` that starts a word or a value (after
# `=`, `:`, a quote, a bracket), up to the next space, quote or separator; never the tail of `$HOME/x` or `a/b`
_PATH_WORD = re.compile(r"(?<![\w.~/$}\-])~?/[^\s'\"`,;)\]}>|&]+")
# text files whose words a run reads as settings: configs and the scripts and recipes that run the program
_WORD_FILES = (".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".conf", ".sh", ".bash", ".env", ".mk")
_WORD_NAMES = ("Makefile", "makefile", "GNUmakefile", "justfile", "Justfile", "dvc.yaml", "params.yaml")


def _rewritten_words(text: str, refused: str) -> tuple[str, list[tuple[str, str]]]:
    """`text` (a config, a script, the command) with each path word naming the refused path made relative."""
    pairs: list[tuple[str, str]] = []

    def sub(m: re.Match[str]) -> str:
        word = m.group(0).rstrip(".")
        if not _names(word, refused):
            return m.group(0)
        pairs.append((word, _relative(word)))
        return _relative(word) + m.group(0)[len(word):]

    return _PATH_WORD.sub(sub, text), pairs


def _word_file(path: str) -> bool:
    return path.endswith(_WORD_FILES) or os.path.basename(path) in _WORD_NAMES


def repair_outside_write(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    refused = str(match.facts["path"])
    texts: dict[str, str] = {}
    changed: list[str] = []
    for path, text in site.files.items():
        new, pairs = _rewritten(text, refused) if path.endswith(".py") else \
            _rewritten_words(text, refused) if _word_file(path) else (text, [])
        if pairs:
            texts[path] = new
            changed += [f"{old} -> {rel} ({path})" for old, rel in pairs]
    new, pairs = _rewritten_words(site.command, refused)
    if pairs:
        texts[COMMAND_PATH] = new
        changed += [f"{old} -> {rel} (the command)" for old, rel in pairs]
    fr = site.frames[-1] if site.frames else None
    where = f" (at {fr.path}:{fr.line})" if fr else ""
    if texts:
        yield Fix(f"write {'; '.join(changed)}: inside the job's worktree",
                  f"the job could not write {refused}{where}: jobs may write only their worktree, out/ and /tmp. "
                  "The output path it names is made relative, so the run writes into its worktree (its files are kept "
                  "with the run)", texts=texts)
        return
    yield NoFix(f"the job writes {refused}{where}, outside its worktree, and neither the code, its configs nor the "
                "command name such a path (the environment gives it?): jobs may write only their worktree, out/ and "
                "/tmp. Give the output "
                f"a relative path, or allow it with sandbox.writable = [\"{refused}\"] in nightlab.toml")
