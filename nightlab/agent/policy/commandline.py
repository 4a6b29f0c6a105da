"""The training command, read the way the shell and Python read it: which script runs, with which arguments.

A setting given on the command line (``--epochs 1``, ``--learning_rate=3e-4``, Hydra's ``optim.lr=0.1``) beats every
default in the code, and a config file named there (``python train.py config/small.py``, ``--config a.yaml``) beats
the code's defaults too. So before a policy may change a default it has to know the command: this module splits it
into tokens with their exact character spans (so a value can be rewritten in place, quotes and spacing intact),
finds the Python entry point (``python -u train.py``, ``python -m pkg.train``, ``torchrun ... train.py``,
``uv run -m pkg.train``, a console script, the ``python`` line of a shell script or of a ``make`` / ``just`` /
``tox`` recipe or ``dvc repro`` stage the command runs) and sorts its arguments into flags, dotted overrides and
files. It follows the shell around it: ``cd sub &&`` (and a subshell's ``( … )``, a runner's ``uv run --directory
sub``) moves where paths count from, a Makefile target's own variables (``small: EPOCHS = 2``) hold for its recipe,
``dvc exp run -S train.lr=0.1`` is a dotted setting of the stage it runs, ``PYTHONPATH=lib`` adds
import roots, and redirections (``> log 2>&1``, ``| tee log``) are no arguments. Into a script it follows the
command's own words where the script forwards them (``"$@"``) and a ``--lr "$LR"`` to where ``LR`` is assigned.

Nothing here runs anything or knows about knobs; `effective/` decides what the arguments shadow.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from nightlab.agent import task_runners
from nightlab.agent.code_reach import (
    LAUNCHERS,
    PY_VALUE_OPTS,
    SCRIPT_DIR,
    console_scripts,
    not_training,
    program_index,
    python_path,
    runner_directory,
)

__all__ = ["COMMAND_PATH", "Arg", "Invocation", "Token", "parse_command", "parse_value", "tokenize"]

# the pseudo-path of settings that live in the project's command (nightlab.toml `command`), not in a file
COMMAND_PATH = "(command)"

Value = int | float | bool | str

_ENV_ASSIGN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"(?:.*/)?(?:python|pypy)(?:\d+(?:\.\d+)*)?")
_SHELLS = frozenset({"sh", "bash", "zsh", "dash"})
_CONFIG_EXTS = (".py", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".gin")
_MAX_DEPTH = 3  # scripts and recipes followed into one another


@dataclass(frozen=True)
class Token:
    """One shell word: its value (quotes removed) and the span of its raw text in the command. `kind` is "" for a
    word, ``op`` for a separator or a subshell parenthesis, ``redirect`` for a redirection operator."""

    value: str
    start: int
    end: int
    kind: str = ""


@dataclass(frozen=True)
class Arg:
    """One setting on the command line.

    `name` is as written (``--epochs``, ``-e``, ``optim.lr``, ``+trainer.max_epochs``); `key` is the setting it
    names, normalised (``epochs``, ``optim.lr``, ``trainer.max_epochs``: no dashes or Hydra prefixes, ``-`` inside
    a word read as ``_``). `value` is parsed like Python / YAML would; `start`/`end` span the value's raw text, so
    it can be rewritten in place. `style` is ``flag`` (``--k v`` / ``--k=v``), ``dotlist`` (``k=v``) or ``pair``
    (yacs' ``K.EY v`` words after the flags). A value
    taken from a task-file variable (``--lr $(LR)``) spans the variable's literal (``LR ?= 3e-4``), or the command
    word that sets it (``make train LR=1e-3``: then `source` is that text's path).
    """

    name: str
    key: str
    value: Value | None
    text: str
    start: int
    end: int
    style: str
    source: str = ""  # where the value is written when not in the invocation's own text (`make train LR=1e-3`)

    @property
    def seed_placeholder(self) -> bool:
        return "{seed}" in self.text


@dataclass
class Invocation:
    """The Python program a command runs and what it is given.

    `source` is where the invocation is written: `COMMAND_PATH`, or the repo path of a shell script or task file
    (Makefile, justfile, tox.ini) the command runs (then spans are offsets in that file's text). `entry` is the
    repo-relative script (``train.py``, ``pkg/train.py`` for ``-m pkg.train``), None when the command runs no Python
    script nightlab can see. `cwd` is the folder it runs in (``cd src && python train.py``: ``src``), from which
    the code's relative paths count; `paths` are the folders ``PYTHONPATH`` puts on the import path.
    """

    text: str
    source: str
    entry: str | None
    module: str | None = None
    tokens: list[Token] = field(default_factory=list)  # the arguments after the entry point
    args: list[Arg] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # repo files named on the command line, in order
    file_options: dict[str, str] = field(default_factory=dict)  # file -> the option that names it ("--config")
    end: int = 0  # where the invocation's words end in `text`, before any redirection (a new argument goes there)
    cwd: str = ""
    paths: list[str] = field(default_factory=list)
    outer: dict[str, str] = field(default_factory=dict)  # the texts of other sources args are written in
    # the environment words before the program (`LR=0.01 python train.py`), style "env": settings where the code
    # reads that variable (see effective/command_line.py)
    env: list[Arg] = field(default_factory=list)

    def arg(self, name: str, source: str | None = None) -> Arg | None:
        """The last occurrence of a setting by its name as written or its key (the last one wins, as in argparse);
        with `source`, the last one written there. An environment word is found by its name (`LR`)."""
        hit = next((a for a in self.env if a.name == name and (source is None or self.where(a) == source)), None)
        for a in self.args:
            if (a.name == name or a.key == name) and (source is None or self.where(a) == source):
                hit = a
        return hit

    def where(self, a: Arg) -> str:
        """The path of the text `a`'s value is written in."""
        return a.source or self.source

    def text_of(self, a: Arg) -> str:
        """The text `a`'s span points into."""
        return self.outer.get(a.source, "") if a.source else self.text


# a redirection operator at the start of a word: `>`, `>>`, `2>`, `<`, `2>&1`, `>&2`, `&>`, `&>>`, `>|`, `<<<`
_REDIRECT_AT = re.compile(r"&>>?|\d*(?:>>|>\||>&(?:\d+-?|-)?|<&(?:\d+-?|-)?|<<<|<<-?|<>|>|<)")
# the ones that duplicate a descriptor (`2>&1`, `>&2`, `<&-`): no file word follows them
_DUPLICATE = re.compile(r"\d*[<>]&(?:\d+-?|-)")
_WORD_END = " \t\r\n;|&<>()"


def tokenize(text: str) -> list[Token]:
    """Shell words with spans: quotes ('...', "...") and backslash escapes are honoured, `#` starts a comment,
    `$(...)` and backquotes stay inside their word, separators (``&&``, ``||``, ``;``, ``|``, ``&``, newlines)
    and subshell parentheses are tokens of their own (kind ``op``), and so are redirections (kind ``redirect``:
    ``>``, ``2>``, ``2>&1``, ``&>``), whose ``&`` separates nothing."""
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
            out.append(Token(";", i, i + 1, "op"))
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if text.startswith(("&&", "||"), i):
            out.append(Token(text[i:i + 2], i, i + 2, "op"))
            i += 2
            continue
        redirect = _REDIRECT_AT.match(text, i)
        if redirect is not None:
            out.append(Token(redirect.group(), i, redirect.end(), "redirect"))
            i = redirect.end()
            continue
        if c in ";|&()":
            out.append(Token(c, i, i + 1, "op"))
            i += 1
            continue
        out.append(_word(text, i))
        i = out[-1].end
    return out


def _word(text: str, i: int) -> Token:
    """The shell word starting at `i`, its value with quotes and escapes removed."""
    start, n = i, len(text)
    buf: list[str] = []
    while i < n and text[i] not in _WORD_END:
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
        elif c == "`" or text.startswith("$(", i):  # a command substitution: one word, parentheses and all
            j = _substitution_end(text, i)
            buf.append(text[i:j])
            i = j
        else:
            buf.append(c)
            i += 1
    return Token("".join(buf), start, min(i, n))


def _substitution_end(text: str, i: int) -> int:
    """The end of the command substitution (`` `…` `` or `$(…)`, nested parentheses counted) starting at `i`."""
    if text[i] == "`":
        j = text.find("`", i + 1)
        return len(text) if j < 0 else j + 1
    depth = 0
    for j in range(i + 1, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


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


@dataclass(frozen=True)
class _Scope:
    """Where a command segment runs: its folder (repo-relative), the folders ``PYTHONPATH`` adds to the import path,
    and the shell script it is written in (whose ``$(dirname "$0")`` is that script's folder)."""

    cwd: str = ""
    paths: tuple[str, ...] = ()
    script: str = ""

    def roots(self) -> list[str]:
        """Where ``python -m`` looks for a module: the current folder, ``PYTHONPATH``, then the usual ``src``."""
        return list(dict.fromkeys([self.cwd, *self.paths, "", "src"]))


def _join(cwd: str, path: str) -> str:
    p = posixpath.normpath(posixpath.join(cwd, _norm_path(path)))
    return "" if p == "." else p


def _segments(tokens: list[Token], scope: _Scope) -> list[tuple[list[Token], _Scope]]:
    """The commands between separators, each with where it runs. ``cd DIR`` moves the rest of the line and ``export
    PYTHONPATH=…`` adds import roots (both are consumed); a subshell's changes end at its ``)``."""
    out: list[tuple[list[Token], _Scope]] = []
    outer: list[_Scope] = []
    seg: list[Token] = []
    for t in [*tokens, Token(";", -1, -1, "op")]:
        if t.kind != "op":
            seg.append(t)
            continue
        if seg:
            moved = _moves(seg, scope)
            if moved is None:
                out.append((seg, scope))
            else:
                scope = moved
            seg = []
        if t.value == "(":
            outer.append(scope)
        elif t.value == ")" and outer:
            scope = outer.pop()
    return out


def _moves(seg: list[Token], scope: _Scope) -> _Scope | None:
    """The scope after a segment that only changes it (``cd``, ``export PYTHONPATH=…``, ``PYTHONPATH=…``); None for
    a segment that runs something. A ``cd`` to a place the text does not say (``cd $DIR``, ``cd ~``) changes
    nothing nightlab can follow."""
    words = [t.value for t in seg]
    if words[0] in ("cd", "pushd"):
        target = SCRIPT_DIR.sub(posixpath.dirname(scope.script) or ".", words[1]) if len(words) > 1 else "~"
        p = posixpath.normpath(posixpath.join(scope.cwd, target))
        if "$" in target or target.startswith(("/", "~", "-")) or p.startswith(".."):
            return scope
        return replace(scope, cwd="" if p == "." else p)
    assigns = words[1:] if words[0] == "export" else words
    if assigns and all(_ENV_ASSIGN.match(w) for w in assigns):
        return _with_env(assigns, scope)
    return None


def _with_env(words: Sequence[str], scope: _Scope) -> _Scope:
    """`scope` with the folders of any ``PYTHONPATH=…`` among `words` first on the import path."""
    added = [p for w in words if w.startswith("PYTHONPATH=") for p in python_path(w.split("=", 1)[1], scope.cwd)]
    return replace(scope, paths=tuple(dict.fromkeys([*added, *scope.paths]))) if added else scope


def _module_path(module: str, exists: Callable[[str], bool], roots: Sequence[str]) -> str | None:
    """The repo file ``python -m module`` runs, looked up under each import root in turn."""
    rel = module.replace(".", "/")
    for root in roots:
        for cand in (f"{rel}.py", f"{rel}/__main__.py"):
            p = _join(root, cand)
            if exists(p):
                return p
    return None


# library trainers a command runs by name (or as `python -m NAME`) with their training subcommand: they run no
# script of the repository's; their flags are the settings, and a config file of the repository's their command line
# names holds the rest, its keys overridden by dotted flags (spaCy: `spacy train config.cfg --training.max_epochs 5`;
# fastText: `fasttext supervised -input data/cooking.train -lr 1.0`; see effective.analyse)
LIBRARY_TRAINERS: dict[str, str] = {"spacy": "train", "fasttext": "supervised"}


def _library_trainer(seg: list[Token], i: int) -> bool:
    """Whether word i of `seg` names a library trainer followed by its training subcommand."""
    name = seg[i].value.rsplit("/", 1)[-1]
    return name in LIBRARY_TRAINERS and i + 1 < len(seg) and seg[i + 1].value == LIBRARY_TRAINERS[name]


def _entry_of(seg: list[Token], exists: Callable[[str], bool],
              scope: _Scope) -> tuple[int, str | None, str | None] | None:
    """(index of the first argument, entry script, module) of a segment that runs Python, or None."""
    i = 0
    while i < len(seg) and _ENV_ASSIGN.match(seg[i].value):
        i += 1
    saw_python = False
    first_missing: int | None = None  # a script outside the repository (a wrapper): keep looking for one inside
    while i < len(seg):
        v = seg[i].value
        if seg[i].kind == "redirect":  # `2>&1` stands alone, `> train.log` names a file: neither is an argument
            i += 1 if _DUPLICATE.fullmatch(v) else 2
            continue
        if _PYTHON.fullmatch(v) or v.rsplit("/", 1)[-1] in LAUNCHERS:  # `torchrun ... -m pkg.train` runs Python
            saw_python = True
            i += 1
            while i < len(seg) and seg[i].value.startswith("-") and seg[i].value != "-m":
                i += 2 if seg[i].value in PY_VALUE_OPTS else 1
            continue
        if v == "-m" and saw_python and i + 1 < len(seg):
            mod = seg[i + 1].value
            path = _module_path(mod, exists, scope.roots())
            if path is not None:
                return i + 2, path, mod
            if _library_trainer(seg, i + 1):  # `python -m spacy train config.cfg`
                return i + 2, None, mod
            if i + 2 < len(seg) and task_runners.MODULE_RUNNERS.get(mod) == seg[i + 2].value:
                return None  # `python -m spacy project run train`: a task runner's recipe, not a program
            first_missing = i + 1 if first_missing is None else first_missing  # torch.distributed.run, …
            i += 2
            continue
        if not saw_python and _library_trainer(seg, i):  # `spacy train config.cfg --training.max_epochs 5`
            return i + 1, None, v.rsplit("/", 1)[-1]
        if v.endswith(".py"):
            path = _join(scope.cwd, v)
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


def _script_at(seg: list[Token], exists: Callable[[str], bool], scope: _Scope) -> int | None:
    """The index, among the segment's words without redirections, of the repo shell script it runs (``bash
    run.sh``, ``./scripts/train.sh``), if any; the words after it are the script's arguments."""
    words = [t.value for t in _plain(seg)]
    i = program_index(words)
    if i >= len(words):
        return None
    if words[i] in _SHELLS:
        i += 1
        while i < len(words) and words[i].startswith("-"):
            i += 1
        if i >= len(words):
            return None
    path = _join(scope.cwd, words[i]) if words[i] else ""
    return i if path and not path.endswith(".py") and exists(path) else None


def _plain(seg: Sequence[Token]) -> list[Token]:
    """A segment's words without its redirections (operators and the files they name)."""
    out: list[Token] = []
    skip = False
    for t in seg:
        if skip:
            skip = False
        elif t.kind == "redirect":
            skip = not _DUPLICATE.fullmatch(t.value)
        else:
            out.append(t)
    return out


def _arguments(seg: list[Token], idx: int) -> tuple[list[Token], int]:
    """The words after the entry point (redirections left out) and where a new argument goes: after the last word
    before the first redirection (``python train.py --lr 0.01 --bs=8 2>&1 | tee log``)."""
    end = seg[idx - 1].end
    for t in seg[idx:]:
        if t.kind == "redirect":
            break
        end = t.end
    return _plain(seg[idx:]), end


def _env_words(seg: Sequence[Token], text: str) -> list[Arg]:
    """The `NAME=value` words a segment starts with (`LR=0.01 EPOCHS=3 python train.py`), each an Arg of style
    "env" whose span is its value."""
    out = []
    for t in seg:
        if not _ENV_ASSIGN.match(t.value):
            break
        name, _, value = t.value.partition("=")
        vstart = t.start + _raw_offset(text, t, len(name) + 1)
        out.append(_arg(name, value, text[vstart:t.end], vstart, t.end, "env"))
    return out


def _key(name: str) -> str:
    k = name.lstrip("+~").lstrip("-")
    return k.replace("-", "_")


def _args(tokens: Sequence[Token], text: str, exists: Callable[[str], bool],
          takes_value: Callable[[str], bool | None], cwd: str = "",
          pairs: Sequence[str] | None = None) -> tuple[list[Arg], list[str], dict[str, str]]:
    """Sort the arguments after the entry point into settings and files (see `Invocation`). With `pairs` (the code
    merges the command's words into its config: yacs' ``merge_from_list``, mmengine's ``merge_from_dict``), bare
    ``KEY VALUE`` words are settings too, and so are the words after an option in `pairs` (``--opts``,
    ``--cfg-options a.b=1``): that option takes them, not one value of its own."""
    args: list[Arg] = []
    files: list[str] = []
    file_opts: dict[str, str] = {}
    i = 0
    toks = list(tokens)
    while i < len(toks):
        t = toks[i]
        v = t.value
        if pairs is not None and v in pairs:
            i += 1
            continue
        if pairs is not None and i + 1 < len(toks) and _pair_key(v, toks[i + 1].value, exists, cwd):
            pair = toks[i + 1]
            args.append(_arg(v, pair.value, text[pair.start:pair.end], pair.start, pair.end, "pair"))
            i += 2
            continue
        if _attached_short(v, takes_value):  # `-b32`: argparse's short option with its value in the same word
            vstart = t.start + _raw_offset(text, t, 2)
            args.append(_arg(v[:2], v[2:], text[vstart:t.end], vstart, t.end, "flag"))
            i += 1
            continue
        if v.startswith("-") and len(v) > 1 and not _is_number(v):
            name, eq, rest = v.partition("=")
            if eq:
                vstart = t.start + _raw_offset(text, t, len(name) + 1)
                args.append(_arg(name, rest, text[vstart:t.end], vstart, t.end, "flag"))
                _maybe_file(rest, name, exists, files, file_opts, cwd)
                i += 1
                continue
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            wants = takes_value(name)
            if nxt is not None and wants is not False and (not nxt.value.startswith("-") or _is_number(nxt.value)) \
                    and (wants or "=" not in nxt.value or nxt.value.startswith(("{", "["))):
                args.append(_arg(name, nxt.value, text[nxt.start:nxt.end], nxt.start, nxt.end, "flag"))
                _maybe_file(nxt.value, name, exists, files, file_opts, cwd)
                i += 2
                continue
            args.append(Arg(name, _key(name), True, "", t.end, t.end, "switch"))
            i += 1
            continue
        key, eq, rest = v.partition("=")
        if eq and re.fullmatch(r"[+~]{0,2}[A-Za-z_][\w.\-]*", key):
            vstart = t.start + _raw_offset(text, t, len(key) + 1)
            args.append(_arg(key, rest, text[vstart:t.end], vstart, t.end, "dotlist"))
            _maybe_file(rest, key, exists, files, file_opts, cwd)
        else:
            _maybe_file(v, "", exists, files, file_opts, cwd)
        i += 1
    return args, files, file_opts


def _attached_short(word: str, takes_value: Callable[[str], bool | None]) -> bool:
    """Whether `word` is a short option and its value in one word, as argparse reads it (`-b32`, `-j4`): the program
    declares `-b` as taking a value and does not declare the whole word as an option of its own. Without the
    declaration it is not split, since single-dash long options are common too (`-lr 0.1`, `-epoch 25`)."""
    if len(word) < 3 or word[0] != "-" or not word[1].isalpha() or "=" in word:
        return False
    return takes_value(word[:2]) is True and takes_value(word) is None


_PAIR_KEY = re.compile(r"[A-Za-z_]\w*(?:\.\w+)*")


def _pair_key(word: str, value: str, exists: Callable[[str], bool], cwd: str) -> bool:
    """Whether `word` `value` is a yacs-style ``KEY VALUE`` pair (``SOLVER.BASE_LR 0.0025``): a key, not a file,
    followed by a value that is not an option."""
    if not _PAIR_KEY.fullmatch(word) or word.endswith(_CONFIG_EXTS) or exists(_join(cwd, word)):
        return False
    return not value.startswith("-") or _is_number(value)


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
                file_opts: dict[str, str], cwd: str = "") -> None:
    """Record `value` when it names a repo config file (relative to the folder the command runs in)."""
    p = _join(cwd, value) if value else ""
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
                  takes_value: Callable[[str], bool | None] | None = None,
                  pairs: Sequence[str] | None = None) -> Invocation | None:
    """The Python invocation in `command` (or in the shell script or task-runner recipe it runs), or None when there
    is none to see.

    `exists(path)` says whether a repo-relative file exists; `read(path)` returns a file's text (shell scripts,
    Makefiles, pyproject.toml; without it only the command itself is read); `takes_value(option)` says whether an
    option takes a value (True / False), None when unknown (then a following word that is not an option is taken as
    its value). `pairs`, when the program merges ``KEY VALUE`` words into its config, names the options whose
    values are such words (see `_args`).
    """
    takes = takes_value or (lambda _name: None)
    scripts = console_scripts(read("pyproject.toml")) if read is not None and exists("pyproject.toml") else {}
    reader = _Reader(exists, read, takes, scripts, pairs)
    return reader.invocation(COMMAND_PATH, command, [tokenize(command)], _Scope(), 0)


@dataclass
class _Reader:
    """Reads a command and what it runs, with the repository's files (see `parse_command`)."""

    exists: Callable[[str], bool]
    read: Callable[[str], str] | None
    takes: Callable[[str], bool | None]
    scripts: dict[str, str]  # console scripts the package installs: name -> module
    pairs: Sequence[str] | None = None  # the program reads `KEY VALUE` words (see `_args`)

    def invocation(self, source: str, text: str, lines: list[list[Token]], scope: _Scope,
                   depth: int, scopes: Sequence[_Scope] = ()) -> Invocation | None:
        """The training invocation written in `text` (each of `lines` a shell line starting in `scope`, or in its
        own of `scopes`), else the one in a shell script or task-runner recipe it runs."""
        segs = [pair for k, toks in enumerate(lines)
                for pair in _segments(toks, scopes[k] if k < len(scopes) else scope)]
        found = self.first(source, text, segs)
        if self.read is None or depth >= _MAX_DEPTH or (found is not None and not not_training(found.entry or "")):
            return found
        for seg, where in segs:  # `make train && python eval.py`: the recipe trains, not the evaluation after it
            inner = self.nested(source, text, seg, _with_env([t.value for t in seg], where), depth)
            if inner is not None and not not_training(inner.entry or ""):
                return inner
            found = found or inner
        return found

    def nested(self, source: str, text: str, seg: list[Token], where: _Scope, depth: int) -> Invocation | None:
        """The invocation in the shell script or the task runner's recipe that `seg` runs."""
        assert self.read is not None
        words = _plain(seg)
        at = _script_at(seg, self.exists, where)
        if at is not None:
            script = _join(where.cwd, words[at].value)
            body = self.read(script)
            inner = self.invocation(script, body, [tokenize(body)], replace(where, script=script), depth + 1)
            if inner is not None and inner.source == script:
                self.forward(inner, words[at + 1:], source, text, where)
                env = {w.value.split("=", 1)[0]: w for w in words[:at] if _ENV_ASSIGN.match(w.value)}
                inner.args = [_from_shell_variable(a, inner, env, source, text) for a in inner.args]
            return inner
        for recipe in task_runners.recipes_for([t.value for t in words], self.read, self.exists, where.cwd):
            scope = _with_env(recipe.environment(), replace(where, cwd=recipe.cwd, script=""))
            inv = self.recipe(recipe, scope, depth)
            if inv is not None:
                if inv.source == recipe.source:
                    inv.args = [_from_variable(a, recipe, words, source, text, inv) for a in inv.args]
                    inv.args += _settings(recipe, words, source, text, inv)
                return inv
        return None

    def forward(self, inner: Invocation, words: list[Token], source: str, text: str, where: _Scope) -> None:
        """Splice the script's own arguments (`words`, written in `source`'s `text`) into `inner` where the script
        forwards them (``python train.py --epochs 5 "$@"``): they are the Python command's arguments there, and a
        later one wins, as in argparse (``bash run.sh --epochs 2`` beats the script's ``--epochs 5``)."""
        at = next((t for t in inner.tokens if t.value in _FORWARDS), None)
        if at is None:
            return
        own = [replace(a, value=True, text="", end=a.start, style="switch") if a.text.strip("'\"") in _FORWARDS
               else a for a in inner.args]  # `--fast "$@"`: a switch, not the value "$@"
        args, files, file_opts = _args(words, text, self.exists, self.takes, where.cwd, self.pairs)
        given = [replace(a, source=source) for a in args]
        inner.args = [a for a in own if a.start < at.start] + given + [a for a in own if a.start >= at.start]
        inner.files.extend(f for f in files if f not in inner.files)
        inner.file_options.update(file_opts)
        inner.outer[source] = text

    def recipe(self, recipe: task_runners.Recipe, scope: _Scope, depth: int) -> Invocation | None:
        """The invocation in a recipe's command lines, their variables filled in and spans kept in the task file."""
        lines: list[list[Token]] = []
        for start, end in recipe.lines:
            expanded, spans = recipe.expand(start, end)
            lines.append([Token(t.value, spans[t.start][0], spans[t.end - 1][1], t.kind)
                          for t in tokenize(expanded) if t.end > t.start])
        scopes = [replace(scope, cwd=recipe.line_cwd(k)) for k in range(len(lines))]  # a dvc stage's `wdir`
        return self.invocation(recipe.source, recipe.text, lines, scope, depth + 1, scopes)

    def first(self, source: str, text: str, segs: list[tuple[list[Token], _Scope]]) -> Invocation | None:
        """The training invocation: the first Python one, unless its name says it prepares data or evaluates and a
        later one does not (`python prepare.py && python train.py --lr 0.05`)."""
        found: list[tuple[list[Token], _Scope, int, str | None, str | None]] = []
        for seg, where in segs:
            where = _with_env([t.value for t in seg], where)
            moved = runner_directory([t.value for t in seg])
            if moved:  # `uv run --directory proj python train.py`: paths count from proj
                where = replace(where, cwd=_join(where.cwd, moved))
            got = _entry_of(seg, self.exists, where)
            if got is None and self.scripts:  # a console script the package installs: `mytrain fit --config a.yaml`
                words = [t.value for t in seg]
                at = program_index(words)
                mod = self.scripts.get(words[at]) if at < len(words) else None
                path = _module_path(mod, self.exists, where.roots()) if mod else None
                got = (at + 1, path, mod) if path is not None else None
            if got is not None:
                found.append((seg, where, *got))
        if not found:
            return None
        seg, where, idx, entry, module = next(
            (f for f in found if not not_training(f[3] or (f[4] or "").replace(".", "/"))), found[0])
        rest, end = _arguments(seg, idx)
        args, files, file_opts = _args(rest, text, self.exists, self.takes, where.cwd, self.pairs)
        return Invocation(text=text, source=source, entry=entry, module=module, tokens=rest, args=args,
                          files=files, file_options=file_opts, end=end, cwd=where.cwd, paths=list(where.paths),
                          env=_env_words(seg, text))


# how a shell script hands on its own arguments: `"$@"`, `$@`, `"${@}"`, `$*`
_FORWARDS = frozenset({"$@", "${@}", "$*", "${*}"})
# a value that is one shell variable: `$LR`, `"$LR"`, `${LR}`
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# an assignment at the start of a line: `LR=2e-4`, `export LR="2e-4"`, `EPOCHS=${EPOCHS:-3}`, `local BS=16`
_ASSIGNMENT = r"^[ \t]*(?:(?:export|local|readonly|declare(?:[ \t]+-\w+)*)[ \t]+)?{name}=(\S*)"
# the value of such an assignment: a default for the environment's value (`${LR:-2e-4}`), else a literal
_DEFAULT = re.compile(r"([\"']?)\$\{(\w+):?[-=]([^}$`]*)\}\1")
_LITERAL = re.compile(r"([\"']?)([^\s\"'$`;|&()]+)\1")


def _from_shell_variable(a: Arg, inv: Invocation, env: dict[str, Token], source: str, text: str) -> Arg:
    """A script's argument whose value is a shell variable (``--lr "$LR"``), placed where the variable's value is
    written: the script's last assignment before the command (``LR=2e-4``, ``export LR=2e-4``, the default in
    ``LR=${LR:-2e-4}``), or the command's ``LR=…`` word (``EPOCHS=1 bash train.sh``) where the script only
    defaults it or does not set it (then `source` is the command's). Anything else stays the reference as written:
    a setting nightlab does not edit."""
    m = _VARIABLE.fullmatch(a.text.strip("'\"")) if a.source == "" and isinstance(a.value, str) else None
    if m is None:
        return a
    name = m.group(1) or m.group(2)
    before = inv.text[:a.start]
    hits = list(re.finditer(_ASSIGNMENT.format(name=re.escape(name)), before, re.MULTILINE))
    last = hits[-1] if hits else None
    default = _DEFAULT.fullmatch(last.group(1)) if last is not None else None
    if last is None or (default is not None and default.group(2) == name):
        word = env.get(name)
        if word is not None:  # the command's environment: `${LR:-2e-4}` takes it, so does an unset variable
            vstart = word.start + _raw_offset(text, word, len(name) + 1)
            inv.outer[source] = text
            return replace(a, value=parse_value(word.value.split("=", 1)[1]), text=text[vstart:word.end],
                           start=vstart, end=word.end, source=source)
    if last is None:
        return a
    if default is not None:
        start, end = last.start(1) + default.start(3), last.start(1) + default.end(3)
    else:
        lit = _LITERAL.fullmatch(last.group(1))
        if lit is None:
            return a
        start, end = last.start(1) + lit.start(2), last.start(1) + lit.end(2)
    raw = inv.text[start:end]
    return replace(a, value=parse_value(raw), text=raw, start=start, end=end) if raw else a


def _settings(recipe: task_runners.Recipe, words: list[Token], source: str, text: str, inv: Invocation) -> list[Arg]:
    """The config keys the command sets for the recipe's run (``dvc exp run -S train.n_est=100``), as dotted
    settings of the invocation written on the command (`source`): they beat the params file's values, as a
    ``key=value`` override does. A key of another params file (``-S conf.yaml:lr=0.1``) is not followed."""
    out: list[Arg] = []
    for s in recipe.settings:
        if s.word >= len(words) or ":" in s.key:
            continue
        tok = words[s.word]
        raw = text[tok.start:tok.end]
        vstart = tok.start + _unquoted_at(raw, s.offset, False)
        vend = tok.start + _unquoted_at(raw, s.offset + len(s.value), True)  # before a closing quote
        value = parse_value(s.value) if "{seed}" not in s.value else None  # `-S train.seed={seed}`: re-runs vary it
        out.append(Arg(s.key, _key(s.key), value, text[vstart:vend], vstart, vend, "dotlist", source))
    if out:
        inv.outer[source] = text
    return out


def _unquoted_at(raw: str, n: int, end: bool) -> int:
    """The offset in a raw shell word of its value's `n`-th character (`end`: just after the `n - 1`-th), quotes
    anywhere in the word (``--set-param="k=1"``) and backslash escapes skipped."""
    quote = ""
    seen = j = 0
    while j < len(raw):
        c = raw[j]
        if (c in "'\"" and not quote) or c == quote:
            quote = "" if quote else c
            j += 1
            continue
        if seen == n and not end:
            return j
        if c == "\\" and quote != "'" and j + 1 < len(raw):
            j += 1
        seen += 1
        j += 1
        if seen == n and end:
            return j
    return j


def _from_variable(a: Arg, recipe: task_runners.Recipe, words: list[Token], source: str, text: str,
                   inv: Invocation) -> Arg:
    """A recipe's argument whose value is a variable (``--lr $(LR)``, ``--lr {{lr}}``), placed where the variable's
    value is written: its literal in the task file (``LR ?= 3e-4``), or the command word that sets it (``make train
    LR=1e-3``; then the arg's `source` is the command's). A value nightlab cannot place stays the reference as
    written: a setting it does not edit."""
    var = recipe.variable_at(a.text)
    if var is None:
        return a
    if parse_value(var.value) != a.value:  # a variable holding several words (`$(ARGS)`): not one setting's value
        return replace(a, value=a.text.strip("'\""))
    if var.literal:
        return replace(a, value=parse_value(var.value), text=recipe.text[var.start:var.end], start=var.start,
                       end=var.end)
    if var.word != task_runners.COMMAND_WORD and var.word < len(words):
        tok = words[var.word]
        name, eq, _ = tok.value.partition("=")
        skip = len(name) + 1 if eq and _ENV_ASSIGN.match(tok.value) else 0
        vstart = tok.start + (_raw_offset(text, tok, skip) if skip else 0)
        inv.outer[source] = text
        return replace(a, value=parse_value(var.value), text=text[vstart:tok.end], start=vstart, end=tok.end,
                       source=source)
    return replace(a, value=a.text.strip("'\""))
