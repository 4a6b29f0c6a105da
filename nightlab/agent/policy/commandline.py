"""The training command, read the way the shell and Python read it: which script runs, with which arguments.

A setting given on the command line (``--epochs 1``, ``--learning_rate=3e-4``, Hydra's ``optim.lr=0.1``) beats every
default in the code, and a config file named there (``python train.py config/small.py``, ``--config a.yaml``) beats
the code's defaults too. So before a policy may change a default it has to know the command: this module splits it
into tokens with their exact character spans (so a value can be rewritten in place, quotes and spacing intact),
finds the Python entry point (``python -u train.py``, ``python -m pkg.train``, ``torchrun ... train.py``, or the
``python`` line of a shell script the command runs) and sorts its arguments into flags, dotted overrides and files.

Nothing here runs anything or knows about knobs; `effective.py` decides what the arguments shadow.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from nightlab.agent.code_reach import LAUNCHERS, console_scripts, not_training

__all__ = ["COMMAND_PATH", "Arg", "Invocation", "Token", "parse_command", "parse_value", "tokenize"]

# the pseudo-path of settings that live in the project's command (nightlab.toml `command`), not in a file
COMMAND_PATH = "(command)"

Value = int | float | bool | str

_ENV_ASSIGN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"(?:.*/)?(?:python|pypy)(?:\d+(?:\.\d+)*)?")
_LAUNCHERS = frozenset({"torchrun", "accelerate", "deepspeed", "uv", "poetry", "pipenv", "conda", "mpirun", "srun",
                        "nohup", "time", "env", "exec", "stdbuf", "nice", "taskset", "numactl", "launch", "run"})
_SHELLS = frozenset({"sh", "bash", "zsh", "dash"})
_SEPARATORS = frozenset({"&&", "||", ";", "|", "&"})
# interpreter options that take a value (python -W ignore, -X importtime)
_PY_OPTS_WITH_VALUE = frozenset({"-W", "-X", "-c"})
_CONFIG_EXTS = (".py", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini")


@dataclass(frozen=True)
class Token:
    """One shell word: its value (quotes removed) and the span of its raw text in the command."""

    value: str
    start: int
    end: int


@dataclass(frozen=True)
class Arg:
    """One setting on the command line.

    `name` is as written (``--epochs``, ``-e``, ``optim.lr``, ``+trainer.max_epochs``); `key` is the setting it
    names, normalised (``epochs``, ``optim.lr``, ``trainer.max_epochs``: no dashes or Hydra prefixes, ``-`` inside
    a word read as ``_``). `value` is parsed like Python / YAML would; `start`/`end` span the value's raw text, so
    it can be rewritten in place. `style` is ``flag`` (``--k v`` / ``--k=v``) or ``dotlist`` (``k=v``).
    """

    name: str
    key: str
    value: Value | None
    text: str
    start: int
    end: int
    style: str

    @property
    def seed_placeholder(self) -> bool:
        return "{seed}" in self.text


@dataclass
class Invocation:
    """The Python program a command runs and what it is given.

    `source` is where the invocation is written: `COMMAND_PATH`, or the repo path of a shell script the command
    runs (then spans are offsets in that file's text). `entry` is the repo-relative script (``train.py``,
    ``pkg/train.py`` for ``-m pkg.train``), None when the command runs no Python script nightlab can see.
    """

    text: str
    source: str
    entry: str | None
    module: str | None = None
    tokens: list[Token] = field(default_factory=list)  # the arguments after the entry point
    args: list[Arg] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # repo files named on the command line, in order
    file_options: dict[str, str] = field(default_factory=dict)  # file -> the option that names it ("--config")
    end: int = 0  # where the invocation's words end in `text` (a new argument is inserted there)

    def arg(self, name: str) -> Arg | None:
        """The last occurrence of a setting by its name as written or its key (the last one wins, as in argparse)."""
        hit = None
        for a in self.args:
            if a.name == name or a.key == name:
                hit = a
        return hit


def tokenize(text: str) -> list[Token]:
    """Shell words with spans: quotes ('...', "...") and backslash escapes are honoured, `#` starts a comment,
    operators (``&&``, ``||``, ``;``, ``|``, ``&``) and newlines are tokens of their own."""
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r":
            i += 1
            continue
        if c == "\\" and i + 1 < n and text[i + 1] == "\n":
            i += 2
            continue
        if c == "\n":
            out.append(Token(";", i, i + 1))
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if text.startswith(("&&", "||"), i):
            out.append(Token(text[i:i + 2], i, i + 2))
            i += 2
            continue
        if c in ";|&":
            out.append(Token(c, i, i + 1))
            i += 1
            continue
        start = i
        buf: list[str] = []
        while i < n and text[i] not in " \t\r\n;|&":
            c = text[i]
            if c == "'":
                j = text.find("'", i + 1)
                j = n if j < 0 else j
                buf.append(text[i + 1:j])
                i = j + 1
            elif c == '"':
                j = i + 1
                while j < n and text[j] != '"':
                    if text[j] == "\\" and j + 1 < n:
                        buf.append(text[j + 1])
                        j += 2
                        continue
                    buf.append(text[j])
                    j += 1
                i = j + 1
            elif c == "\\" and i + 1 < n:
                buf.append(text[i + 1])
                i += 2
            else:
                buf.append(c)
                i += 1
        out.append(Token("".join(buf), start, min(i, n)))
    return out


def parse_value(text: str) -> Value:
    """A command-line value as the program most likely reads it: ``3`` an int, ``1e-3`` a float, ``True`` /
    ``true`` a bool, anything else the string itself."""
    s = text.strip()
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        v = ast.literal_eval(s)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        v = None
    if isinstance(v, bool | int | float) and not isinstance(v, complex):
        return v
    try:
        f = float(s)
    except ValueError:
        return s
    return f if f == f and abs(f) != float("inf") else s


def _segments(tokens: list[Token]) -> list[list[Token]]:
    segs: list[list[Token]] = [[]]
    for t in tokens:
        if t.value in _SEPARATORS and t.end - t.start == len(t.value):
            segs.append([])
        else:
            segs[-1].append(t)
    return [s for s in segs if s]


def _module_path(module: str, exists: Callable[[str], bool]) -> str | None:
    rel = module.replace(".", "/")
    for root in ("", "src/"):
        for cand in (f"{root}{rel}.py", f"{root}{rel}/__main__.py"):
            if exists(cand):
                return cand
    return None


def _entry_of(seg: list[Token], exists: Callable[[str], bool]) -> tuple[int, str | None, str | None] | None:
    """(index of the first argument, entry script, module) of a segment that runs Python, or None."""
    i = 0
    while i < len(seg) and _ENV_ASSIGN.match(seg[i].value):
        i += 1
    saw_python = False
    first_missing: int | None = None  # a script outside the repository (a wrapper): keep looking for one inside
    while i < len(seg):
        v = seg[i].value
        if _PYTHON.fullmatch(v) or v.rsplit("/", 1)[-1] in LAUNCHERS:  # `torchrun ... -m pkg.train` runs Python
            saw_python = True
            i += 1
            while i < len(seg) and seg[i].value.startswith("-") and seg[i].value != "-m":
                i += 2 if seg[i].value in _PY_OPTS_WITH_VALUE else 1
            continue
        if v == "-m" and saw_python and i + 1 < len(seg):
            mod = seg[i + 1].value
            path = _module_path(mod, exists)
            if path is not None:
                return i + 2, path, mod
            first_missing = i + 1 if first_missing is None else first_missing  # torch.distributed.run, …
            i += 2
            continue
        if v.endswith(".py"):
            path = _norm_path(v)
            if exists(path):
                return i + 1, path, None
            if first_missing is None:
                first_missing = i
            i += 1
            continue
        i += 1
    if first_missing is not None:
        return first_missing + 1, None, None
    return None


def _norm_path(p: str) -> str:
    while p.startswith("./"):
        p = p[2:]
    return p


def _script_of(seg: list[Token], exists: Callable[[str], bool]) -> str | None:
    """The repo shell script a segment runs (``bash run.sh``, ``./scripts/train.sh``), if any."""
    i = 0
    while i < len(seg) and _ENV_ASSIGN.match(seg[i].value):
        i += 1
    if i >= len(seg):
        return None
    first = seg[i].value
    if first in _SHELLS:
        rest = [t.value for t in seg[i + 1:] if not t.value.startswith("-")]
        cand = _norm_path(rest[0]) if rest else ""
    else:
        cand = _norm_path(first)
    return cand if cand and not cand.endswith(".py") and exists(cand) else None


def _key(name: str) -> str:
    k = name.lstrip("+~").lstrip("-")
    return k.replace("-", "_")


def _args(tokens: Sequence[Token], text: str, exists: Callable[[str], bool],
          takes_value: Callable[[str], bool | None]) -> tuple[list[Arg], list[str], dict[str, str]]:
    """Sort the arguments after the entry point into settings and files (see `Invocation`)."""
    args: list[Arg] = []
    files: list[str] = []
    file_opts: dict[str, str] = {}
    i = 0
    toks = list(tokens)
    while i < len(toks):
        t = toks[i]
        v = t.value
        if v.startswith("-") and len(v) > 1 and not _is_number(v):
            name, eq, rest = v.partition("=")
            if eq:
                vstart = t.start + _raw_offset(text, t, len(name) + 1)
                args.append(_arg(name, rest, text[vstart:t.end], vstart, t.end, "flag"))
                _maybe_file(rest, name, exists, files, file_opts)
                i += 1
                continue
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            wants = takes_value(name)
            if nxt is not None and wants is not False and (not nxt.value.startswith("-") or _is_number(nxt.value)) \
                    and (wants or "=" not in nxt.value or nxt.value.startswith(("{", "["))):
                args.append(_arg(name, nxt.value, text[nxt.start:nxt.end], nxt.start, nxt.end, "flag"))
                _maybe_file(nxt.value, name, exists, files, file_opts)
                i += 2
                continue
            args.append(Arg(name, _key(name), True, "", t.end, t.end, "switch"))
            i += 1
            continue
        key, eq, rest = v.partition("=")
        if eq and re.fullmatch(r"[+~]{0,2}[A-Za-z_][\w.\-]*", key):
            vstart = t.start + _raw_offset(text, t, len(key) + 1)
            args.append(_arg(key, rest, text[vstart:t.end], vstart, t.end, "dotlist"))
            _maybe_file(rest, key, exists, files, file_opts)
        else:
            _maybe_file(v, "", exists, files, file_opts)
        i += 1
    return args, files, file_opts


def _raw_offset(text: str, t: Token, n_chars: int) -> int:
    """Offset in the raw token text after `n_chars` characters of its value (raw text may hold quotes)."""
    raw = text[t.start:t.end]
    if raw.startswith(("'", '"')) or "\\" in raw:
        seen = 0
        j = 0
        while j < len(raw) and seen < n_chars:
            if raw[j] in "'\"":
                j += 1
                continue
            seen += 1
            j += 1
        return j
    return n_chars


def _arg(name: str, value: str, raw: str, start: int, end: int, style: str) -> Arg:
    return Arg(name, _key(name), parse_value(value) if "{seed}" not in value else None, raw, start, end, style)


def _maybe_file(value: str, option: str, exists: Callable[[str], bool], files: list[str],
                file_opts: dict[str, str]) -> None:
    p = _norm_path(value)
    if p.endswith(_CONFIG_EXTS) and exists(p):
        files.append(p)
        if option:
            file_opts[p] = option


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def parse_command(command: str, exists: Callable[[str], bool], read: Callable[[str], str] | None = None,
                  takes_value: Callable[[str], bool | None] | None = None) -> Invocation | None:
    """The Python invocation in `command` (or in the shell script it runs), or None when there is none to see.

    `exists(path)` says whether a repo-relative file exists; `read(path)` returns a shell script's text;
    `takes_value(option)` says whether an option takes a value (True / False), None when unknown (then a following
    word that is not an option is taken as its value).
    """
    takes = takes_value or (lambda _name: None)
    tokens = tokenize(command)
    scripts = console_scripts(read("pyproject.toml")) if read is not None and exists("pyproject.toml") else {}
    found = _first_invocation(COMMAND_PATH, command, tokens, exists, takes, scripts)
    if found is not None or read is None:
        return found
    for seg in _segments(tokens):
        script = _script_of(seg, exists)
        if script is not None:
            body = read(script)
            inner = _first_invocation(script, body, tokenize(body), exists, takes)
            if inner is not None:
                return inner
    return None


def _first_invocation(source: str, text: str, tokens: list[Token], exists: Callable[[str], bool],
                      takes: Callable[[str], bool | None],
                      scripts: dict[str, str] | None = None) -> Invocation | None:
    """The training invocation: the first Python one, unless its name says it prepares data or evaluates and a
    later one does not (`python prepare.py && python train.py --lr 0.05`)."""
    found: list[tuple[list[Token], int, str | None, str | None]] = []
    for seg in _segments(tokens):
        got = _entry_of(seg, exists)
        if got is None and scripts:  # a console script the package installs: `mytrain fit --config a.yaml`
            at = next((i for i, t in enumerate(seg) if not _ENV_ASSIGN.match(t.value)), None)
            mod = scripts.get(seg[at].value) if at is not None else None
            path = _module_path(mod, exists) if mod else None
            got = (at + 1, path, mod) if path is not None and at is not None else None
        if got is not None:
            found.append((seg, *got))
    if not found:
        return None
    seg, idx, entry, module = next((f for f in found if not not_training(f[2] or (f[3] or "").replace(".", "/"))),
                                   found[0])
    rest = seg[idx:]
    args, files, file_opts = _args(rest, text, exists, takes)
    return Invocation(text=text, source=source, entry=entry, module=module, tokens=list(rest), args=args,
                      files=files, file_options=file_opts, end=seg[-1].end)
