"""Knobs: the tunable values of a training repo, found in any common code style and rewritten in place.

The builtin (offline) policy cannot write arbitrary code, so its whole reach is "change a number". That only works
if it can find the numbers wherever people put them — module constants, config dicts, dataclass defaults, argparse
defaults, YAML/JSON configs, literals inline in calls — and change one of them without disturbing anything else:
the diff a human reviews must show exactly one literal changed, with comments and spacing intact.

How it is done, and why:

* Python goes through libcst, a concrete syntax tree, never through regexes over code, and through its public API
  only. One visit of the tree (`_PyScanner`, a `CSTVisitor`; it does not descend where no literal can be, since libcst
  rebuilds every node it walks) claims the literals that are knobs, and counts the literal tokens (numbers, strings,
  True/False/None) in source order; the standard tokenizer lists the same tokens with their positions, so the n-th
  literal of the tree is the n-th literal token of the text. Where the two do not line up (a claimed literal inside an
  f-string, a tokenizer that disagrees), libcst's `ByteSpanPositionProvider` gives the exact spans instead: it is a
  code-generation pass plus a second walk of the tree over every node, about twice the cost, so it is the fallback,
  not the rule (bench/knobs.py has the figures).
* YAML uses PyYAML's composer, whose scalar nodes carry exact start/end marks; JSON uses a small position-aware
  scanner (falling back to the composer for JSON-ish files the scanner rejects); TOML, gin bindings and INI-style
  files (configparser's, spaCy's config.cfg) are read line by line. Rewriting splices only that span.
* A knob's name is derived from the code structure (``CONFIG.lr``, ``TrainConfig.lr``, ``--lr``, ``SGD.lr``), so it
  is stable while values change; `rewrite` re-discovers by name rather than trusting stored offsets.
* Literals whose change would break the program or game the metric are left alone: positional layer sizes,
  data-splitting arguments, seeds inside calls. Seeds and logging cadences elsewhere are discovered but marked
  (`Knob.tunable` is False) so a policy can show them without searching over them.

The rooms: `knob` (what a knob is, and `Space`), `kinds` (which kind a name is), `python_code` (the libcst scan),
`config_files` (YAML, JSON, TOML, gin, INI), `literals` (reading numbers and writing a value in its literal's
style), `spaces` (the range a search may give a knob); this module finds and rewrites, and is the API.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence

import libcst as cst

from nightlab.agent.policy.knobs.config_files import (
    _scan_gin,
    _scan_ini,
    _scan_json,
    _scan_toml,
    _scan_yaml,
    gin_bindings,
    ini_settings,
)
from nightlab.agent.policy.knobs.kinds import (
    _local_name,
    _real_valued,
    choice_group,
    choices_for,
    classify,
    name_words,
    schedule_length,
    tree_split,
)
from nightlab.agent.policy.knobs.knob import _MAX_TEXT, UNTUNABLE_KINDS, Knob, Space, Value, _Found
from nightlab.agent.policy.knobs.literals import format_value
from nightlab.agent.policy.knobs.python_code import _scan_python
from nightlab.agent.policy.knobs.spaces import search_space

__all__ = [
    "UNTUNABLE_KINDS",
    "Knob",
    "Space",
    "choice_group",
    "choices_for",
    "classify",
    "discover",
    "discover_files",
    "format_value",
    "gin_bindings",
    "ini_settings",
    "name_words",
    "rewrite",
    "schedule_length",
    "search_space",
    "span",
    "tree_split",
]


def _scan(path: str, text: str, texts: Sequence[str] | None = None) -> tuple[_Found, ...]:
    """All knobs of one file with their spans, sorted by position, names made unique within the file.

    Cached: a policy discovers the same parent files again and again, and `rewrite` re-scans the text it was just
    handed, so the libcst parse (the dominant cost) is paid once per distinct file content.
    """
    if len(text) > _MAX_TEXT:
        return ()
    return _scan_cached(path, text, (text,) if texts is None else tuple(texts))


@functools.lru_cache(maxsize=128)
def _scan_cached(path: str, text: str, texts: tuple[str, ...]) -> tuple[_Found, ...]:
    low = path.lower()
    if low.endswith(".py"):
        found = _scan_python(path, text, texts)
    elif low.endswith((".yaml", ".yml")):
        found = _scan_yaml(path, text, texts)
    elif low.endswith(".json"):
        found = _scan_json(path, text, texts)
    elif low.endswith(".toml"):
        found = _scan_toml(path, text, texts)
    elif low.endswith(".gin"):
        found = _scan_gin(path, text, texts)
    elif low.endswith((".cfg", ".ini")):
        found = _scan_ini(path, text, texts)
    else:
        return ()
    found.sort(key=lambda f: f.start)
    seen: Counter[str] = Counter()
    out = []
    for f in found:
        seen[f.knob.name] += 1
        n = seen[f.knob.name]
        if n > 1:
            f = _Found(_renamed(f.knob, f"{f.knob.name}#{n}"), f.start, f.end)
        out.append(f)
    return tuple(out)


def _renamed(knob: Knob, name: str) -> Knob:
    return Knob(name, knob.path, knob.value, knob.kind, knob.style, knob.line, knob.context, knob.choices)


def discover(path: str, text: str) -> list[Knob]:
    """Knobs of one file, chosen by extension: ``.py`` through libcst, ``.yaml``/``.yml``/``.json`` through marks,
    ``.toml``, ``.gin`` and ``.cfg``/``.ini`` (configparser, spaCy) line by line; anything else (and anything that
    does not parse) yields []. Order is source order."""
    return [f.knob for f in _scan(path, text)]


def discover_files(files: dict[str, str]) -> list[Knob]:
    """Knobs of many files (path → text), ordered by path then position. Names that two files share are prefixed
    with ``path:`` so every name is unique in the repo; choice alternatives are checked against all files."""
    texts = list(files.values())
    knobs: list[Knob] = []
    for path in sorted(files):
        knobs.extend(f.knob for f in _scan(path, files[path], texts))
    owners: dict[str, set[str]] = {}
    for k in knobs:
        owners.setdefault(k.name, set()).add(k.path)
    return [_renamed(k, f"{k.path}:{k.name}") if len(owners[k.name]) > 1 else k for k in knobs]


def span(text: str, knob: Knob) -> tuple[int, int]:
    """Character span of `knob`'s literal in `text` (found again by name). Raises KeyError if it is gone."""
    name = _local_name(knob)
    for f in _scan(knob.path, text):
        if f.knob.name == name:
            return f.start, f.end
    raise KeyError(knob.name)


def rewrite(text: str, knob: Knob, new_value: Value) -> str:
    """`text` with only `knob`'s literal replaced by `new_value`, written in the literal's own style.

    The knob is found again by name (so edits elsewhere in the file since discovery do not matter); KeyError if it
    no longer exists. Every byte outside the literal is kept, comments and spacing included.
    """
    start, end = span(text, knob)
    old = text[start:end]
    integer: bool | None = None
    if isinstance(new_value, float) and not new_value.is_integer() and _real_valued(knob):
        integer = False
    new = format_value(new_value, old, integer=integer)
    if knob.path.lower().endswith(".py"):
        try:
            cst.parse_expression(new)
        except cst.ParserSyntaxError as e:  # pragma: no cover - format_value only writes valid literals
            raise ValueError(f"cannot write {new_value!r} as a Python literal") from e
    return text[:start] + new + text[end:]
