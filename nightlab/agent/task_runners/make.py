"""make: the recipe of a Makefile target and of the targets it depends on, `$(VAR)` / `${VAR}` filled in from
`VAR = v` / `?=` / `:=` (or `make train VAR=v`, or `VAR=v make train`), `-f` / `-C` read; includes and
conditionals are not followed."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from nightlab.agent.task_runners.recipe import _MAX_DEPTH, Recipe, Variable, _join, _lines

# the file names each runner reads, in the order it looks for them
_MAKEFILES = ("GNUmakefile", "makefile", "Makefile")

_MAKE_ASSIGN = re.compile(r"(?P<pre>(?:(?:export|override)\s+)*)(?P<name>\.?[A-Za-z_][\w.-]*)\s*"
                          r"(?P<op>\?=|::=|:=|\+=|!=|=)[ \t]*(?P<value>.*)")

_MAKE_RULE = re.compile(r"(?P<targets>[^:=#\s][^:=#]*?)\s*::?(?!=)[ \t]*(?P<rest>.*)")

# make options that take the next word as their value
_MAKE_VALUE_OPTS = frozenset({"-f", "--file", "--makefile", "-C", "--directory", "-I", "--include-dir", "-o",
                              "--old-file", "--assume-old", "-W", "--what-if", "--new-file", "--assume-new", "-l",
                              "--load-average", "--max-load", "-O", "--output-sync", "--eval"})


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
