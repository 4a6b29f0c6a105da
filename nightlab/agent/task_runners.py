"""Task runners a launch command goes through: `make train`, `just train`, `tox -e train`, `dvc repro`, `mlflow run`.

The command a person types is often not the Python command that trains. `make train` runs the recipe of the
Makefile's `train` target with `$(LR)` filled in from `LR ?= 3e-4` (or from `make train LR=1e-3`); `just train`
runs a justfile recipe with `{{lr}}` filled in; `tox -e train` runs the `commands` of `[testenv:train]`. nightlab
reads that recipe the way the runner would, so that entry detection (`code_reach`) and the effective-value analysis
(`policy.commandline`, `policy.effective`) see the python command inside it. A recipe keeps its file's text and the
character spans of its command lines, and a variable keeps the span of the literal that defines it, so a value can
be edited where it is written (at `LR ?= 3e-4`, not at the `$(LR)` that uses it).

`dvc repro [STAGE]` / `dvc exp run [STAGE] [-S key=value]` run the `cmd:` of the stages in dvc.yaml: the named
stage and the stages whose outputs it depends on (all stages when none is named), upstream ones first, each in its
`wdir`; that is one recipe whose lines are the stages' commands in the order DVC runs them (like `python prepare.py
&& python train.py && python evaluate.py`). `-S train.n_est=100` (`--set-param`) sets a key of params.yaml for the
run: a `Setting` of the recipe, which the command line holds. DVC's templating (`vars:`, `${…}`, `foreach:`,
`matrix:`) is not read: such a stage's command is left as written.

`mlflow run . [-e ENTRY] [-P alpha=0.3]` runs the `command:` of an entry point in the MLproject file, with its
`{alpha}` filled in from `-P` or from the parameter's `default:` — variables as make's are, edited where written.

`spacy project run NAME [DIR] [--vars.key value]` runs the `script:` lines of the command NAME in project.yml (of each
command of the workflow NAME, in order), with its `${vars.key}` filled in from `--vars.key` on the command line, else
from `vars:` (edited where it is written).

Only the simple variable forms are read (make's `VAR = v`, `?=`, `:=`, `$(VAR)`, `${VAR}`; just's `name := "v"`,
recipe parameters and `{{name}}`; tox's `{posargs}`); anything else (`$(shell …)`, just expressions) is left as
written. Nothing here runs anything.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import yaml

__all__ = ["COMMAND_WORD", "MODULE_RUNNERS", "TASK_FILES", "Recipe", "Setting", "Variable", "recipes_for",
           "spacy_scripts"]

# the file names each runner reads, in the order it looks for them
_MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
_JUSTFILES = ("justfile", "Justfile", ".justfile", "JUSTFILE")
_SPACY_PROJECT = "project.yml"
TASK_FILES = frozenset({*_MAKEFILES, *_JUSTFILES, "tox.ini", "MLproject", _SPACY_PROJECT})
# Python modules that are task runners with this subcommand (`python -m spacy project run train`): no program of
# their own to analyse, but a recipe to read
MODULE_RUNNERS: dict[str, str] = {"spacy": "project"}
# `Variable.word` when the value is not set by a word of the command
COMMAND_WORD = -1
_MAX_DEPTH = 4

_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_MAKE_ASSIGN = re.compile(r"(?P<pre>(?:(?:export|override)\s+)*)(?P<name>\.?[A-Za-z_][\w.-]*)\s*"
                          r"(?P<op>\?=|::=|:=|\+=|!=|=)[ \t]*(?P<value>.*)")
_MAKE_RULE = re.compile(r"(?P<targets>[^:=#\s][^:=#]*?)\s*::?(?!=)[ \t]*(?P<rest>.*)")
_MAKE_REF = re.compile(r"\$[({](?P<name>[\w.-]+)[)}]")
# make options that take the next word as their value
_MAKE_VALUE_OPTS = frozenset({"-f", "--file", "--makefile", "-C", "--directory", "-I", "--include-dir", "-o",
                              "--old-file", "--assume-old", "-W", "--what-if", "--new-file", "--assume-new", "-l",
                              "--load-average", "--max-load", "-O", "--output-sync", "--eval"})
_JUST_ASSIGN = re.compile(r"(?P<export>export\s+)?(?P<name>[A-Za-z_][\w-]*)\s*:=\s*(?P<value>.*?)\s*")
_JUST_ALIAS = re.compile(r"alias\s+(?P<alias>[A-Za-z_][\w-]*)\s*:=\s*(?P<name>[A-Za-z_][\w-]*)\s*")
_JUST_RECIPE = re.compile(r"@?(?P<name>[A-Za-z_][\w-]*)(?P<params>(?:\s+[^:]*?)?)\s*:(?!=)[ \t]*(?P<deps>[^#]*)")
_JUST_PARAM = re.compile(r"(?P<mod>[+*$]*)(?P<name>[A-Za-z_][\w-]*)(?:=(?:(?P<q>[\"'])(?P<qv>.*?)(?P=q)|"
                         r"(?P<bare>[^\s\"']+)))?")
_JUST_REF = re.compile(r"\{\{\s*(?P<name>[A-Za-z_][\w-]*)\s*\}\}")
_JUST_VALUE_OPTS = frozenset({"-f", "--justfile", "-d", "--working-directory", "--dotenv-filename",
                              "--dotenv-path", "--shell", "--shell-arg", "--color", "--command-color"})
_MLFLOW_REF = re.compile(r"\{(?P<name>[A-Za-z_][\w-]*)\}")
_SPACY_REF = re.compile(r"\$\{\s*vars\.(?P<name>[A-Za-z_][\w.-]*?)\s*\}")
_TOX_SECTION = re.compile(r"\[(?P<name>[^\]]+)\]")
_TOX_REF = re.compile(r"\{(?P<key>posargs|toxinidir|envpython)(?::(?P<default>[^}]*))?\}")
_TOX_KEY = re.compile(r"(?P<key>[A-Za-z_][\w-]*)\s*=[ \t]*(?P<value>.*)")


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


def recipes_for(words: Sequence[str], read: Callable[[str], str], exists: Callable[[str], bool],
                cwd: str = "") -> list[Recipe]:
    """The recipes a command segment's words run, the named target's first and then the targets it depends on
    (a caller uses the first that runs Python: `train: data` whose own recipe is empty runs `data`'s); [] when the
    segment runs no task runner nightlab reads or its task file is missing. `cwd` is where the segment runs."""
    at = 0
    while at < len(words) and _ENV.match(words[at]):
        at += 1
    if at >= len(words):
        return []
    program = posixpath.basename(words[at])
    env = {w.split("=", 1)[0]: (w.split("=", 1)[1], i) for i, w in enumerate(words[:at])}
    if program in ("make", "gmake"):
        return _make(list(words), at + 1, env, read, exists, cwd)
    if program == "just":
        return _just(list(words), at + 1, env, read, exists, cwd)
    if program == "tox":
        return _tox(list(words), at + 1, read, exists, cwd)
    if program == "dvc":
        return _dvc(list(words), at + 1, read, exists, cwd)
    if program == "mlflow":
        return _mlflow(list(words), at + 1, read, exists, cwd)
    if program in ("python", "python3") and at + 3 < len(words) and words[at + 1] == "-m" and \
            MODULE_RUNNERS.get(words[at + 2]) == words[at + 3]:
        at, program = at + 2, words[at + 2]
    if program == "spacy":
        return _spacy(list(words), at + 1, read, exists, cwd)
    return []


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


# ------------------------------------------------------------------------------------------------------------ make


def _make(words: list[str], i: int, env: dict[str, tuple[str, int]], read: Callable[[str], str],
          exists: Callable[[str], bool], cwd: str) -> list[Recipe]:
    """`make [-f FILE] [-C DIR] [TARGET…] [VAR=VALUE…]`: the first target's recipe and its prerequisites'."""
    file_opt = ""
    targets: list[str] = []
    overrides: dict[str, tuple[str, int]] = {}
    while i < len(words):
        w = words[i]
        name, eq, value = w.partition("=")
        if (w.startswith("-") and not eq) or (w.startswith("--") and eq):
            opt = name if w.startswith("--") else w[:2]
            inline = value if w.startswith("--") else w[2:]
            if opt in _MAKE_VALUE_OPTS and not inline and i + 1 < len(words):
                inline = words[i + 1]
                i += 1
            if opt in ("-C", "--directory"):
                cwd = _join(cwd, inline)
            elif opt in ("-f", "--file", "--makefile"):
                file_opt = inline
        elif eq and re.fullmatch(r"[A-Za-z_][\w.-]*", name):
            overrides[name] = (value, i)
        elif not w.isdigit():  # (the job count of `-j 4`)
            targets.append(w)
        i += 1
    path = _join(cwd, file_opt) if file_opt else next(
        (p for p in (_join(cwd, n) for n in _MAKEFILES) if exists(p)), "")
    if not path or not exists(path):
        return []
    text = read(path)
    rules, variables, default, exported, target_vars, forced = _parse_makefile(text, env, overrides)
    goal = targets[0] if targets else variables.get(".DEFAULT_GOAL", Variable(default)).value.strip()
    out: list[Recipe] = []
    base = Recipe(path, text, goal, "make", variables=variables, cwd=cwd, exported=exported)
    _make_chain(goal, rules, base, out, set(), 0, _TargetScope(target_vars, overrides, forced))
    return out


@dataclass(frozen=True)
class _TargetScope:
    """What a target's own assignments need: them, and the command line's, which beat them unless `override`."""

    assignments: _TargetVars
    overrides: dict[str, tuple[str, int]]
    forced: frozenset[str]

    def variables(self, target: str, inherited: dict[str, Variable]) -> dict[str, Variable]:
        """`inherited` with `target`'s own assignments applied (as GNU make: for its recipe and, made for it, its
        prerequisites'), the command line's values kept where the Makefile does not force its own."""
        own = self.assignments.get(target)
        if not own:
            return inherited
        out = dict(inherited)
        forced = set(self.forced)
        for m, at in own:
            _make_assign(m, at, out, forced, {})
        for name, (value, word) in self.overrides.items():
            if name not in forced:
                out[name] = Variable(value, word=word)
        return out


_Rules = dict[str, tuple[list[str], list[tuple[int, int]]]]  # target -> (prerequisites, recipe line spans)


_TargetVars = dict[str, list[tuple[re.Match[str], int]]]


def _parse_makefile(text: str, env: dict[str, tuple[str, int]], overrides: dict[str, tuple[str, int]]
                    ) -> tuple[_Rules, dict[str, Variable], str, frozenset[str], _TargetVars, frozenset[str]]:
    """(rules, variables as make resolves them, the default goal, the exported variables' names, the
    target-specific assignments, the `override` variables).

    Precedence as in GNU make: `VAR=v` on the command line beats the Makefile (unless `override`), the Makefile's
    `=` / `:=` beat the environment (`VAR=v make`), and `?=` only sets what neither defines."""
    reader = _MakefileReader(text, env)
    reader.read()
    for name, (value, word) in env.items():
        reader.variables.setdefault(name, Variable(value, word=word))
    for name, (value, word) in overrides.items():
        if name not in reader.forced:
            reader.variables[name] = Variable(value, word=word)
    return (reader.rules, reader.variables, reader.default, frozenset(reader.exported), reader.target_vars,
            frozenset(reader.forced))


@dataclass
class _MakefileReader:
    """One pass over a Makefile's lines: rules with their recipe lines, variable assignments, `export`s."""

    text: str
    env: dict[str, tuple[str, int]]
    rules: _Rules = field(default_factory=dict)
    # make's own: `$(MAKE) -C sub train` runs make; `$(CURDIR)`, `$(PWD)` are the folder make runs in
    variables: dict[str, Variable] = field(
        default_factory=lambda: {"MAKE": Variable("make"), "CURDIR": Variable("."), "PWD": Variable(".")})
    forced: set[str] = field(default_factory=set)  # `override` assignments: the command line does not beat them
    exported: set[str] = field(default_factory=set)
    default: str = ""
    current: list[str] = field(default_factory=list)  # the targets whose recipe the next tab-indented lines are
    # `train: LR = 1e-2`: assignments that hold for a target's recipe and its prerequisites' (with their offsets)
    target_vars: dict[str, list[tuple[re.Match[str], int]]] = field(default_factory=dict)

    def read(self) -> None:
        lines = _lines(self.text)
        k = 0
        while k < len(lines):
            at, line = lines[k]
            if line.startswith("\t") and self.current:
                k = self.recipe_line(lines, k)
                continue
            k += 1
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.startswith("define "):  # a multi-line variable: its lines are no rules
                while k < len(lines) and lines[k][1].strip() != "endef":
                    k += 1
                k += 1
                self.current = []
                continue
            self.statement(at, line, stripped)

    def recipe_line(self, lines: list[tuple[int, str]], k: int) -> int:
        """Record the recipe line at `lines[k]` (continued with `\\` onto the next ones); returns the next index."""
        at, line = lines[k]
        start = at + 1
        while start < at + len(line) and self.text[start] in "@-+ \t":  # echo / error / always prefixes
            start += 1
        end = at + len(line)
        while self.text[at:end].endswith("\\") and k + 1 < len(lines):
            k += 1
            at, line = lines[k]
            end = at + len(line)
        for t in self.current:
            self.rules[t][1].append((start, end))
        return k + 1

    def statement(self, at: int, line: str, stripped: str) -> None:
        """An assignment, a rule, an `export`, or a directive nightlab does not follow (conditionals, includes)."""
        self.current = []
        m = _MAKE_ASSIGN.fullmatch(line)
        if m is not None:
            _make_assign(m, at, self.variables, self.forced, self.env)
            if "export" in m.group("pre"):
                self.exported.add(m.group("name"))
            return
        if stripped.startswith(("export ", "unexport ")):
            if stripped.startswith("export "):
                self.exported.update(stripped.split()[1:])
            return
        if stripped.startswith(("ifeq", "ifneq", "ifdef", "ifndef", "else", "endif", "include ", "-include ",
                                "sinclude ", "vpath")):
            return
        r = _MAKE_RULE.fullmatch(line)
        assign = _MAKE_ASSIGN.fullmatch(r.group("rest")) if r is not None else None
        if r is not None and assign is not None:  # `train: LR = 0.1`: a target-specific variable, no rule
            for t in r.group("targets").split():
                self.target_vars.setdefault(t, []).append((assign, at + r.start("rest")))
        elif r is not None:
            self.rule(at, line, r)

    def rule(self, at: int, line: str, r: re.Match[str]) -> None:
        """`targets: prerequisites [; recipe]` (a `## help` comment after them is no prerequisite)."""
        rest = r.group("rest")
        prereqs, _, inline = rest.partition(";")
        self.current = [t for t in r.group("targets").split() if "%" not in t]
        for t in self.current:
            self.rules.setdefault(t, ([], []))[0].extend(
                p for p in prereqs.split("#", 1)[0].split() if "%" not in p)
            if not self.default and not t.startswith("."):
                self.default = t
        if inline.strip():
            start = at + r.start("rest") + len(prereqs) + 1
            while start < at + len(line) and self.text[start] in "@-+ \t":
                start += 1
            for t in self.current:
                self.rules[t][1].append((start, at + len(line)))


def _make_assign(m: re.Match[str], at: int, variables: dict[str, Variable], forced: set[str],
                 env: dict[str, tuple[str, int]]) -> None:
    """Apply one `VAR op value` line (a trailing `# comment` is not part of the value, as in make)."""
    name, op, raw = m.group("name"), m.group("op"), m.group("value")
    value = re.split(r"(?<!\\)#", raw, maxsplit=1)[0].rstrip()
    start = at + m.start("value")
    if "override" in m.group("pre"):
        forced.add(name)
    if op == "?=":
        if name in variables or name in env:
            return
        variables[name] = Variable(value, start, start + len(value))
    elif op == "+=":
        old = variables.get(name)
        variables[name] = Variable(f"{old.value} {value}" if old is not None else value)
    elif op == "!=":
        variables[name] = Variable(f"$(shell {value})")  # a shell command's output: not known here
    else:
        variables[name] = Variable(value, start, start + len(value))


def _make_chain(target: str, rules: _Rules, base: Recipe,
                out: list[Recipe], seen: set[str], depth: int, scope: _TargetScope) -> None:
    """Append `target`'s recipe, then its prerequisites' (depth first, each once), each with the variables its
    target sets for itself (`train: LR = 1e-2`) on top of what it inherits."""
    if target in seen or target not in rules or depth > _MAX_DEPTH:
        return
    seen.add(target)
    prereqs, lines = rules[target]
    here = replace(base, name=target, lines=list(lines), variables=scope.variables(target, base.variables))
    out.append(here)
    for p in prereqs:
        _make_chain(p, rules, here, out, seen, depth + 1, scope)


# ------------------------------------------------------------------------------------------------------------ just


def _just(words: list[str], i: int, env: dict[str, tuple[str, int]], read: Callable[[str], str],
          exists: Callable[[str], bool], cwd: str) -> list[Recipe]:
    """`just [-f FILE] [-d DIR] [VAR=VALUE…] [--set VAR VALUE] [RECIPE [ARG…]]`: the recipe and its dependencies'.
    Recipes run in the justfile's folder; just looks for the justfile in `cwd` and its parents."""
    file_opt = ""
    overrides: dict[str, tuple[str, int]] = {}
    rest: list[tuple[str, int]] = []
    while i < len(words):
        w = words[i]
        name, eq, value = w.partition("=")
        if w == "--set" and i + 2 < len(words):
            overrides[words[i + 1]] = (words[i + 2], i + 2)
            i += 3
            continue
        if w.startswith("-") and not rest:
            opt = name
            inline = value if eq else ""
            if opt in _JUST_VALUE_OPTS and not eq and i + 1 < len(words):
                inline = words[i + 1]
                i += 1
            if opt in ("-f", "--justfile"):
                file_opt = inline
        elif eq and not rest and re.fullmatch(r"[A-Za-z_][\w-]*", name):
            overrides[name] = (value, i)
        else:
            rest.append((w, i))
        i += 1
    path = _join(cwd, file_opt) if file_opt else _find_upwards(cwd, _JUSTFILES, exists)
    if not path or not exists(path):
        return []
    text = read(path)
    recipes, variables, aliases, exported = _parse_justfile(text)
    for name, (value, word) in overrides.items():
        variables[name] = Variable(value, word=word)
    name = rest[0][0] if rest else next(iter(recipes), "")
    name = aliases.get(name, name)
    out: list[Recipe] = []
    base = Recipe(path, text, name, "just", variables=variables, cwd=posixpath.dirname(path), exported=exported)
    _just_chain(name, recipes, base, rest[1:], out, set(), 0)
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


_JustRecipe = tuple[list[tuple[str, Variable]], list[str], list[tuple[int, int]]]  # params, deps, line spans


def _parse_justfile(text: str) -> tuple[dict[str, _JustRecipe], dict[str, Variable], dict[str, str], frozenset[str]]:
    """(recipe → (parameters with defaults, dependencies, body line spans), variables, aliases, exported names)."""
    recipes: dict[str, _JustRecipe] = {}
    variables: dict[str, Variable] = {}
    aliases: dict[str, str] = {}
    exported: set[str] = set()
    export_all = False
    current: str | None = None
    lines = _lines(text)
    k = 0
    while k < len(lines):
        at, line = lines[k]
        k += 1
        if current is not None and line[:1] in (" ", "\t") and line.strip():
            start = at + len(line) - len(line.lstrip())
            while start < at + len(line) and text[start] in "@-":
                start += 1
            end = at + len(line)
            while text[at:end].endswith("\\") and k < len(lines):
                at, line = lines[k]
                end = at + len(line)
                k += 1
            if not text[start:end].startswith("#"):
                recipes[current][2].append((start, end))
            continue
        if not line.strip() or line.lstrip().startswith(("#", "[")):
            continue
        current = None
        a = _JUST_ALIAS.fullmatch(line)
        if a is not None:
            aliases[a.group("alias")] = a.group("name")
            continue
        m = _JUST_ASSIGN.fullmatch(line)
        if m is not None:
            variables[m.group("name")] = _just_value(m.group("value"), at + m.start("value"))
            if m.group("export"):
                exported.add(m.group("name"))
            continue
        if re.fullmatch(r"set\s+export(?:\s*:=\s*true)?\s*", line):
            export_all = True
        r = _JUST_RECIPE.fullmatch(line)
        if r is None or line.startswith("set "):
            continue
        current = r.group("name")
        params: list[tuple[str, Variable]] = []
        for p in _JUST_PARAM.finditer(r.group("params")):
            off = at + r.start("params")
            if p.group("qv") is not None:
                var = Variable(p.group("qv"), off + p.start("qv"), off + p.end("qv"))
            elif p.group("bare") is not None:
                var = _just_value(p.group("bare"), off + p.start("bare"))
            else:
                var = Variable("")
            params.append((p.group("name"), var))
        recipes[current] = (params, r.group("deps").split(), [])
    return recipes, variables, aliases, frozenset(variables if export_all else exported)


def _just_value(raw: str, at: int) -> Variable:
    """A just expression as a variable: a quoted string is a literal (its span inside the quotes), a bare name a
    reference to another variable, anything else an expression left as written."""
    m = re.fullmatch(r"(?P<q>[\"'])(?P<v>[^\"']*)(?P=q)", raw)
    if m is not None:
        return Variable(m.group("v"), at + m.start("v"), at + m.end("v"))
    if re.fullmatch(r"[A-Za-z_][\w-]*", raw):
        return Variable("{{" + raw + "}}")
    return Variable(raw)


def _just_chain(name: str, recipes: dict[str, _JustRecipe], base: Recipe, args: list[tuple[str, int]],
                out: list[Recipe], seen: set[str], depth: int) -> None:
    """Append recipe `name` (its parameters bound to the command's arguments in order, else their defaults), then
    its dependencies'."""
    if name in seen or name not in recipes or depth > _MAX_DEPTH:
        return
    seen.add(name)
    params, deps, lines = recipes[name]
    variables = dict(base.variables)
    for n, (pname, default) in enumerate(params):
        variables[pname] = Variable(args[n][0], word=args[n][1]) if n < len(args) else default
    out.append(replace(base, name=name, lines=list(lines), variables=variables))
    for d in deps:
        _just_chain(d, recipes, base, [], out, seen, depth + 1)


# ------------------------------------------------------------------------------------------------------------- tox


def _tox(words: list[str], i: int, read: Callable[[str], str], exists: Callable[[str], bool],
         cwd: str) -> list[Recipe]:
    """`tox -e ENV[,ENV] [-- POSARGS]`: the `commands` of `[testenv:ENV]` (else `[testenv]`), in `changedir`."""
    envs: list[str] = []
    posargs = ""
    while i < len(words):
        w = words[i]
        if w == "--":
            posargs = " ".join(words[i + 1:])
            break
        if w in ("-e", "--envlist") and i + 1 < len(words):
            envs += words[i + 1].split(",")
            i += 1
        elif w.startswith(("-e", "--envlist=")) and len(w) > 2:
            envs += w.split("=", 1)[1].split(",") if w.startswith("--") else w[2:].split(",")
        i += 1
    path = _join(cwd, "tox.ini")
    if not envs or not exists(path):
        return []
    text = read(path)
    sections = _ini_sections(text)
    out: list[Recipe] = []
    for env in envs:
        own = sections.get(f"testenv:{env}", {})
        base = sections.get("testenv", {})
        spans = own.get("commands") or base.get("commands")
        if not spans:
            continue
        change = own.get("changedir") or base.get("changedir")
        where = _join(cwd, text[change[0][0]:change[0][1]].replace("{toxinidir}", ".")) if change else cwd
        out.append(Recipe(path, text, env, "tox", spans, {}, where, posargs))
    return out


def _ini_sections(text: str) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """section → key → the spans of its value's lines (a value continues on indented lines, one command each)."""
    out: dict[str, dict[str, list[tuple[int, int]]]] = {}
    section: dict[str, list[tuple[int, int]]] | None = None
    key: str | None = None
    for at, line in _lines(text):
        s = _TOX_SECTION.fullmatch(line.strip())
        if s is not None and not line[:1].isspace():
            section = out.setdefault(s.group("name").strip(), {})
            key = None
            continue
        if section is None or not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        if line[:1].isspace() and key is not None:
            start = at + len(line) - len(line.lstrip())
            while start < at + len(line) and text[start] == "-":
                start += 1
            section[key].append((start, at + len(line.rstrip())))
            continue
        m = _TOX_KEY.fullmatch(line)
        if m is None:
            key = None
            continue
        key = m.group("key").strip()
        section[key] = []
        if m.group("value").strip():
            start = at + m.start("value")
            section[key].append((start, at + len(line.rstrip())))
    return out


# ------------------------------------------------------------------------------------------------------------- dvc

# `dvc repro` / `dvc exp run` options that take the next word as their value
_DVC_VALUE_OPTS = frozenset({"-S", "--set-param", "-n", "--name", "-m", "--message", "-j", "--jobs", "-C",
                             "--copy-paths", "--cd", "--cwd", "--glob-pattern"})
_DVC_SET = re.compile(r"[+]{0,2}(?P<key>(?:[^=:\s]+:)?[A-Za-z_][\w.\-\[\]]*)=")


@dataclass
class _Stage:
    name: str
    lines: list[tuple[int, int]]
    folded: set[tuple[int, int]]
    cwd: str
    deps: list[str]
    outs: list[str]


def _dvc(words: list[str], i: int, read: Callable[[str], str], exists: Callable[[str], bool],
         cwd: str) -> list[Recipe]:
    """`dvc [--cd DIR] repro [-s] [--downstream] [STAGE…]`, `dvc exp run [-S KEY=VALUE…] [STAGE…]`: one recipe with the
    `cmd:` lines of the stages it runs, in the order DVC runs them (see the module docstring)."""
    while i < len(words) and words[i].startswith("-"):  # global options: `dvc --cd sub repro`, `dvc -q repro`
        if words[i] == "--cd" and i + 1 < len(words):
            cwd = _join(cwd, words[i + 1])
            i += 1
        elif words[i].startswith("--cd="):
            cwd = _join(cwd, words[i].split("=", 1)[1])
        i += 1
    if i < len(words) and words[i] == "repro":
        i += 1
    elif i + 1 < len(words) and words[i] in ("exp", "experiments") and words[i + 1] == "run":
        i += 2
    else:
        return []
    targets: list[str] = []
    settings: list[Setting] = []
    single = downstream = False
    while i < len(words):
        w = words[i]
        name, eq, value = w.partition("=")
        if w.startswith("--") and eq:
            opt, inline, skip = name, value, len(name) + 1
        elif w.startswith("-") and len(w) > 2 and w[:2] in _DVC_VALUE_OPTS and not w.startswith("--"):
            opt, inline, skip = w[:2], w[2:], 2  # `-Strain.n_est=100`
        else:
            opt, inline, skip = w, "", 0
        if opt.startswith("-"):
            at = i
            if opt in _DVC_VALUE_OPTS and not inline and i + 1 < len(words):
                i += 1
                at, inline, skip = i, words[i], 0
            if opt in ("-S", "--set-param"):
                m = _DVC_SET.match(inline)
                if m is not None:
                    key = m.group("key")
                    key = key.split(":", 1)[1] if key.startswith("params.yaml:") else key
                    settings.append(Setting(key, inline[m.end():], at, skip + m.end()))
            elif opt in ("-s", "--single-item"):
                single = True
            elif opt == "--downstream":
                downstream = True
        else:
            targets.append(w)
        i += 1
    default = _join(cwd, "dvc.yaml")
    chosen: dict[str, list[str]] = {}  # dvc.yaml path -> the stages named in it ([] for all)
    for t in targets or [default]:
        path, colon, stage = t.rpartition(":") if ":" in t else ("", "", t)
        if not colon and (t.endswith(("dvc.yaml", "dvc.yml")) or exists(_join(_join(cwd, t), "dvc.yaml"))):
            path, stage = t, ""
        file = _join(cwd, path) if path else default
        if not file.endswith(("dvc.yaml", "dvc.yml")):
            file = _join(file, "dvc.yaml")
        chosen.setdefault(file, [])
        if stage and stage not in chosen[file]:
            chosen[file].append(stage)
    file, names = next(iter(chosen.items()))  # one pipeline file: several are not followed
    if not exists(file):
        return []
    text = read(file)
    stages = _dvc_stages(text, posixpath.dirname(file))
    order = _dvc_order(stages, names, single, downstream)
    if not order:
        return []
    lines = [span for s in order for span in s.lines]
    cwds = [s.cwd for s in order for _ in s.lines]
    folded = frozenset(span for s in order for span in s.folded)
    return [Recipe(file, text, "+".join(s.name for s in order), "dvc", lines, {}, posixpath.dirname(file),
                   cwds=cwds, folded=folded, settings=settings)]


# -------------------------------------------------------------------------------------------------------- mlflow

# `mlflow run` options that take the next word as their value
_MLFLOW_VALUE_OPTS = frozenset({"-e", "--entry-point", "-v", "--version", "-P", "--param-list", "-A",
                                "--docker-args", "--experiment-name", "--experiment-id", "-b", "--backend",
                                "-c", "--backend-config", "--env-manager", "--storage-dir", "--run-id", "--run-name",
                                "--build-image"})


def _mlflow(words: list[str], i: int, read: Callable[[str], str], exists: Callable[[str], bool],
            cwd: str) -> list[Recipe]:
    """`mlflow run [URI] [-e ENTRY] [-P NAME=VALUE…]`: the `command:` of the entry point (`main` unless `-e` names
    another) in the project's MLproject file, with each `{name}` filled in from `-P name=value`, else from the
    parameter's `default:` (edited where it is written). A project at a git URL or an archive is not read."""
    if i >= len(words) or words[i] != "run":
        return []
    i += 1
    uri, entry = "", "main"
    params: dict[str, tuple[str, int]] = {}
    while i < len(words):
        w = words[i]
        name, eq, value = w.partition("=")
        if w.startswith("-"):
            opt, inline, at = (name, value, i) if eq and w.startswith("--") else (w, "", i)
            if opt in _MLFLOW_VALUE_OPTS and not inline and i + 1 < len(words):
                i += 1
                inline, at = words[i], i
            if opt in ("-e", "--entry-point"):
                entry = inline
            elif opt in ("-P", "--param-list"):
                key, has, val = inline.partition("=")
                if has:
                    params[key] = (val, at)
        elif not uri:
            uri = w
        i += 1
    if "://" in uri or uri.startswith("git@") or uri.endswith((".zip", ".tar.gz")):
        return []
    folder = _join(cwd, uri or ".")
    path = _join(folder, "MLproject")
    got = _yaml_file(path, read, exists)
    if got is None:
        return []
    text, root = got
    point = _mapping_get(_mapping_get(root, "entry_points"), entry)
    command = _mapping_get(point, "command")
    if not isinstance(command, yaml.ScalarNode):
        return []  # an entry point named by a script file (`-e train.py`) runs it with the parameters as flags
    span, fold = _scalar_span(text, command)
    variables: dict[str, Variable] = {}
    declared = _mapping_get(point, "parameters")
    for key, spec in declared.value if isinstance(declared, yaml.MappingNode) else []:
        default = _mapping_get(spec, "default")
        if isinstance(default, yaml.ScalarNode):
            (start, end), _ = _scalar_span(text, default)
            variables[str(key.value)] = Variable(str(default.value), start, end)
    for key, (val, at) in params.items():
        variables[key] = Variable(val, word=at)
    return [Recipe(path, text, entry, "mlflow", [span], variables, folder,
                   folded=frozenset({span}) if fold else frozenset())]


# ---------------------------------------------------------------------------------------------------- spaCy


def _spacy(words: list[str], i: int, read: Callable[[str], str], exists: Callable[[str], bool],
           cwd: str) -> list[Recipe]:
    """`spacy project run NAME [DIR] [--vars.key value | --vars.key=value]`: one recipe with the `script:` lines of
    the command NAME in DIR's project.yml, or of each command of the workflow NAME in the workflow's order."""
    if words[i:i + 2] != ["project", "run"]:
        return []
    i += 2
    positional: list[str] = []
    given: dict[str, tuple[str, int]] = {}
    while i < len(words):
        w = words[i]
        if w.startswith("--vars."):
            key, eq, value = w[len("--vars."):].partition("=")
            if not eq and i + 1 < len(words):
                i += 1
                value = words[i]
            given[key.replace("-", "_")] = (value, i)
        elif not w.startswith("-"):
            positional.append(w)
        i += 1
    if not positional:
        return []
    folder = _join(cwd, positional[1] if len(positional) > 1 else ".")
    path = _join(folder, _SPACY_PROJECT)
    got = _yaml_file(path, read, exists)
    if got is None:
        return []
    text, root = got
    scripts = _spacy_command_scripts(root)
    workflow = _mapping_get(_mapping_get(root, "workflows"), positional[0])
    names = [str(n.value) for n in workflow.value if isinstance(n, yaml.ScalarNode)] \
        if isinstance(workflow, yaml.SequenceNode) else [positional[0]]
    if not all(n in scripts for n in names):
        return []
    lines: list[tuple[int, int]] = []
    folded: set[tuple[int, int]] = set()
    for name in names:
        for node in scripts[name]:
            span, fold = _scalar_span(text, node)
            lines.append(span)
            if fold:
                folded.add(span)
    variables = _spacy_vars(text, _mapping_get(root, "vars"))
    for key, (value, at) in given.items():
        variables[key] = Variable(value, word=at)
    return [Recipe(path, text, "+".join(names), "spacy", lines, variables, folder, folded=frozenset(folded))]


def _spacy_command_scripts(root: yaml.Node | None) -> dict[str, list[yaml.ScalarNode]]:
    """{command name: its `script:` lines} of a project.yml."""
    commands = _mapping_get(root, "commands")
    out: dict[str, list[yaml.ScalarNode]] = {}
    for c in commands.value if isinstance(commands, yaml.SequenceNode) else []:
        name, script = _mapping_get(c, "name"), _mapping_get(c, "script")
        if isinstance(name, yaml.ScalarNode) and isinstance(script, yaml.SequenceNode):
            out[str(name.value)] = [n for n in script.value if isinstance(n, yaml.ScalarNode)]
    return out


def _spacy_vars(text: str, node: yaml.Node | None, prefix: str = "") -> dict[str, Variable]:
    """The `vars:` of a project.yml, nested ones dotted (`${vars.train.epochs}`), each with its literal's span."""
    out: dict[str, Variable] = {}
    for key, value in node.value if isinstance(node, yaml.MappingNode) else []:
        name = f"{prefix}{key.value}"
        if isinstance(value, yaml.MappingNode):
            out.update(_spacy_vars(text, value, name + "."))
        elif isinstance(value, yaml.ScalarNode):
            (start, end), _ = _scalar_span(text, value)
            out[name] = Variable(str(value.value), start, end)
    return out


def spacy_scripts(text: str) -> str:
    """The `script:` lines of every command of a project.yml, one a line ("" when it does not parse): the lines the
    edit guard reads as it reads a shell script's."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return ""
    return "\n".join(str(n.value) for nodes in _spacy_command_scripts(root).values() for n in nodes)


def _dvc_stages(text: str, folder: str) -> list[_Stage]:
    """The stages of a dvc.yaml, in the file's order, with the spans of their commands (`cmd:` a string or a list;
    a stage with `foreach:` / `matrix:` is left out)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return []
    stages = _mapping_get(root, "stages")
    if not isinstance(stages, yaml.MappingNode):
        return []
    out: list[_Stage] = []
    for key, node in stages.value:
        if not isinstance(node, yaml.MappingNode) or _mapping_get(node, "cmd") is None:
            continue
        wdir = _mapping_get(node, "wdir")
        cwd = _join(folder, wdir.value) if isinstance(wdir, yaml.ScalarNode) else folder
        cmd = _mapping_get(node, "cmd")
        items = cmd.value if isinstance(cmd, yaml.SequenceNode) else [cmd]
        stage = _Stage(str(key.value), [], set(), cwd, [], [])
        for item in items:
            if isinstance(item, yaml.ScalarNode):
                span, fold = _scalar_span(text, item)
                if span[1] > span[0]:
                    stage.lines.append(span)
                    if fold:
                        stage.folded.add(span)
        for field_name, into in (("deps", stage.deps), ("outs", stage.outs), ("metrics", stage.outs),
                                 ("plots", stage.outs)):
            paths = _mapping_get(node, field_name)
            for entry in paths.value if isinstance(paths, yaml.SequenceNode) else []:
                p = entry.value[0][0] if isinstance(entry, yaml.MappingNode) and entry.value else entry
                if isinstance(p, yaml.ScalarNode) and isinstance(p.value, str):
                    into.append(_join(cwd, p.value))
        out.append(stage)
    return out


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


def _overlaps(a: str, b: str) -> bool:
    """Whether two paths name the same file or one holds the other (`data/prepared` and `data/prepared/train.csv`)."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/") or not a or not b


def _dvc_order(stages: list[_Stage], names: list[str], single: bool, downstream: bool) -> list[_Stage]:
    """The stages `dvc repro NAMES` runs, upstream first: each named stage with the ones whose outputs it depends on
    (`-s`: only it; `--downstream`: it and the ones that depend on it); all of them when none is named. Stages that
    do not depend on one another keep the file's order."""
    before: dict[str, set[str]] = {s.name: set() for s in stages}
    for s in stages:
        for o in stages:
            if o is not s and any(_overlaps(out, dep) for out in o.outs for dep in s.deps):
                before[s.name].add(o.name)
    after: dict[str, set[str]] = {s.name: {o for o, ups in before.items() if s.name in ups} for s in stages}
    if names:
        wanted: set[str] = set()
        todo = [n for n in names if n in before]
        while todo:
            n = todo.pop()
            if n in wanted:
                continue
            wanted.add(n)
            if not single:
                todo.extend(after[n] if downstream else before[n])
    else:
        wanted = set(before)
    out: list[_Stage] = []
    done: set[str] = set()
    pending = [s for s in stages if s.name in wanted]
    while pending:  # the first stage, in the file's order, whose upstream stages have all run (a cycle: in order)
        ready = next((s for s in pending if not (before[s.name] & wanted) - done), pending[0])
        out.append(ready)
        done.add(ready.name)
        pending.remove(ready)
    return out
