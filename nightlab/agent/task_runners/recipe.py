"""A recipe: the command lines a task runner would run, with the variables filled in and each value's place in its
file kept, so that a value is edited where it is written; the reading helpers every runner shares (lines, brackets,
YAML nodes with their spans)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import yaml

# `Variable.word` when the value is not set by a word of the command
COMMAND_WORD = -1

_MAX_DEPTH = 4

_MAKE_REF = re.compile(r"\$[({](?P<name>[\w.-]+)[)}]")

_JUST_REF = re.compile(r"\{\{\s*(?P<name>[A-Za-z_][\w-]*)\s*\}\}")

_MLFLOW_REF = re.compile(r"\{(?P<name>[A-Za-z_][\w-]*)\}")

_SPACY_REF = re.compile(r"\$\{\s*vars\.(?P<name>[A-Za-z_][\w.-]*?)\s*\}")
_TOX_REF = re.compile(r"\{(?P<key>posargs|toxinidir|envpython)(?::(?P<default>[^}]*))?\}")


@dataclass(frozen=True)
class Variable:
    """A task-file variable: its value as written, and where that value can be edited.

    `start`/`end` span the literal in the task file's text (-1 when the value is not a literal there: it refers to
    other variables, is an expression, or is set on the command line); `word` is the index of the command word that
    sets it (`make train LR=1e-3`, `LR=1e-3 make train`), `COMMAND_WORD` when the command does not."""

    value: str
    start: int = -1
    end: int = -1
    word: int = COMMAND_WORD

    @property
    def literal(self) -> bool:
        return self.start >= 0 and "$" not in self.value and "{{" not in self.value


@dataclass(frozen=True)
class Setting:
    """A config key the command sets for the run (`dvc exp run -S train.n_est=100`): the key (``train.n_est``;
    ``FILE:key`` for another params file than params.yaml), its value as written, the index of the command word
    holding it, and where the value starts in that word (after ``-S`` / ``--set-param=`` and ``key=``)."""

    key: str
    value: str
    word: int
    offset: int


@dataclass
class Recipe:
    """The command lines one target (recipe, tox environment) runs, read from its task file.

    `lines` are the spans of its shell command lines in `text`, in order; each runs in its own shell (a `cd` on one
    line does not carry over), starting in `cwd` (repo-relative: `make -C sub`, the justfile's folder)."""

    source: str
    text: str
    name: str
    syntax: str  # "make", "just", "tox", "dvc", "mlflow" or "spacy"
    lines: list[tuple[int, int]] = field(default_factory=list)
    variables: dict[str, Variable] = field(default_factory=dict)
    cwd: str = ""
    posargs: str = ""  # tox: the words after `--` on the command
    exported: frozenset[str] = frozenset()  # variables the recipe's commands get in their environment
    cwds: list[str] = field(default_factory=list)  # dvc: the folder each line runs in (a stage's `wdir`), else `cwd`
    folded: frozenset[tuple[int, int]] = frozenset()  # dvc: lines whose newlines are spaces (YAML `>`, plain)
    settings: list[Setting] = field(default_factory=list)  # dvc: the params the command sets (`-S k=v`)

    def line_cwd(self, k: int) -> str:
        """The folder the recipe's `k`-th line starts in."""
        return self.cwds[k] if k < len(self.cwds) else self.cwd

    def environment(self) -> list[str]:
        """`NAME=value` for each exported variable (`export PYTHONPATH := src`), its references filled in."""
        return [f"{name}={self._value(name, 0)}" for name in sorted(self.exported) if name in self.variables]

    def expand(self, start: int, end: int) -> tuple[str, list[tuple[int, int]]]:
        """The command line at `text[start:end]` with its variables filled in, and for each character of the result
        the span of the text it came from (a filled-in value maps to the whole reference: `$(LR)`)."""
        out: list[str] = []
        spans: list[tuple[int, int]] = []
        folded = (start, end) in self.folded
        i = start
        while i < end:
            if folded and self.text[i] == "\n":  # a folded YAML scalar: the line break and indent are a space
                j = i + 1
                while j < end and self.text[j] in " \t":
                    j += 1
                out.append(" ")
                spans.append((i, j))
                i = j
                continue
            ref = self._reference(i, end)
            if ref is None:
                out.append(self.text[i])
                spans.append((i, i + 1))
                i += 1
                continue
            j, value = ref
            out.extend(value)
            spans.extend([(i, j)] * len(value))
            i = j
        return "".join(out), spans

    def variable_at(self, raw: str) -> Variable | None:
        """The variable a word consists of (`$(LR)`, `"${LR}"`, `{{lr}}`), followed through references to the one
        that holds the value (`LR ?= $(BASE_LR)` → `BASE_LR`); None when the word is not a single reference."""
        word = raw.strip()
        if len(word) >= 2 and word[0] == word[-1] and word[0] in "'\"":
            word = word[1:-1]
        pattern = _REFERENCES.get(self.syntax, _MAKE_REF)
        var: Variable | None = None
        for _ in range(_MAX_DEPTH):
            m = pattern.fullmatch(word.strip())
            if m is None:
                return var
            var = self.variables.get(m.group("name"))
            if var is None or var.word != COMMAND_WORD:
                return var
            word = var.value
        return var

    def _reference(self, i: int, end: int) -> tuple[int, str] | None:
        """(end of the reference, its value) for a variable reference starting at `i`, else None."""
        text = self.text
        if self.syntax == "make" and text[i] == "$" and i + 1 < end:
            nxt = text[i + 1]
            if nxt == "$":
                return i + 2, "$"
            if nxt in "({":
                close = _closing(text, i + 1, end)
                if close is None:
                    return None
                inner = text[i + 2:close]
                if re.fullmatch(r"[\w.-]+", inner):
                    return close + 1, self._value(inner, 0)
                return None  # a function ($(shell …), $(abspath …)): left as written
            if nxt == "@":
                return i + 2, self.name
            return None
        if self.syntax == "just" and text.startswith("{{", i):
            m = _JUST_REF.match(text, i, end)
            if m is not None and m.group("name") in self.variables:
                return m.end(), self._value(m.group("name"), 0)
            return None
        if self.syntax == "spacy" and text.startswith("${", i):
            m = _SPACY_REF.match(text, i, end)
            if m is not None and m.group("name") in self.variables:
                return m.end(), self._value(m.group("name"), 0)
            return None
        if self.syntax == "mlflow" and text[i] == "{":
            m = _MLFLOW_REF.match(text, i, end)
            if m is not None and m.group("name") in self.variables:
                return m.end(), self._value(m.group("name"), 0)
            return None
        if self.syntax == "tox" and text[i] == "{":
            m = _TOX_REF.match(text, i, end)
            if m is None:
                return None
            key = m.group("key")
            if key == "posargs":
                return m.end(), self.posargs or (m.group("default") or "")
            return m.end(), "." if key == "toxinidir" else "python"
        return None

    def _value(self, name: str, depth: int) -> str:
        """A variable's value with its own references filled in (an undefined make variable is empty, as in make)."""
        var = self.variables.get(name)
        if var is None:
            return ""
        if depth >= _MAX_DEPTH:
            return var.value
        pattern = _REFERENCES.get(self.syntax, _MAKE_REF)
        value = pattern.sub(lambda m: self._value(m.group("name"), depth + 1), var.value)
        return value.replace("$$", "$") if self.syntax == "make" else value


# the pattern of a variable reference, by syntax (make's `$(LR)` / `${LR}` otherwise)
_REFERENCES = {"just": _JUST_REF, "mlflow": _MLFLOW_REF, "spacy": _SPACY_REF}


def _closing(text: str, i: int, end: int) -> int | None:
    """The index of the bracket closing the one at `i` (nesting counted), None when it is not closed by `end`."""
    pairs = {"(": ")", "{": "}"}
    opener, closer = text[i], pairs[text[i]]
    depth = 0
    for j in range(i, end):
        if text[j] == opener:
            depth += 1
        elif text[j] == closer:
            depth -= 1
            if depth == 0:
                return j
    return None


def _join(cwd: str, path: str) -> str:
    p = posixpath.normpath(posixpath.join(cwd, path))
    return "" if p == "." else p


def _lines(text: str) -> list[tuple[int, str]]:
    """(offset, line without its newline) for each line of `text`."""
    out: list[tuple[int, str]] = []
    at = 0
    for line in text.splitlines(keepends=True):
        out.append((at, line.rstrip("\r\n")))
        at += len(line)
    return out


def _find_upwards(cwd: str, names: Sequence[str], exists: Callable[[str], bool]) -> str:
    """The first of `names` in `cwd` or the nearest folder above it inside the repository, "" if none."""
    folder = cwd
    while True:
        for n in names:
            p = _join(folder, n)
            if exists(p):
                return p
        if not folder:
            return ""
        folder = posixpath.dirname(folder)


def _yaml_file(path: str, read: Callable[[str], str], exists: Callable[[str], bool]) -> tuple[str, yaml.Node] | None:
    """A task file's text and its YAML tree (marks kept, for spans); None when it is missing or no YAML."""
    if not exists(path):
        return None
    text = read(path)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    return (text, root) if root is not None else None


def _mapping_get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def _scalar_span(text: str, node: yaml.ScalarNode) -> tuple[tuple[int, int], bool]:
    """The span of a YAML string's content in `text` (inside its quotes; a block scalar's lines after its `|` / `>`
    line), and whether its line breaks are spaces (folded `>`, a plain scalar over several lines)."""
    start, end = node.start_mark.index, node.end_mark.index
    if node.style in ("'", '"'):
        return (start + 1, end - 1), False
    if node.style in ("|", ">"):
        nl = text.find("\n", start, end)
        start = end if nl < 0 else nl + 1
        while start < end and text[start] in " \t":
            start += 1
        while end > start and text[end - 1] in " \t\r\n":
            end -= 1
        return (start, end), node.style == ">"
    return (start, end), "\n" in text[start:end]
