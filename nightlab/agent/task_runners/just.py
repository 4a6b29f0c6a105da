"""just: a justfile recipe and its dependencies, `{{name}}` filled in from `name := "v"`, recipe parameters and the
command's arguments (`name=value` words override; aliases and `--justfile` read)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import replace

from nightlab.agent.task_runners.recipe import _MAX_DEPTH, Recipe, Variable, _find_upwards, _join, _lines

_JUSTFILES = ("justfile", "Justfile", ".justfile", "JUSTFILE")

_JUST_ASSIGN = re.compile(r"(?P<export>export\s+)?(?P<name>[A-Za-z_][\w-]*)\s*:=\s*(?P<value>.*?)\s*")

_JUST_ALIAS = re.compile(r"alias\s+(?P<alias>[A-Za-z_][\w-]*)\s*:=\s*(?P<name>[A-Za-z_][\w-]*)\s*")

_JUST_RECIPE = re.compile(r"@?(?P<name>[A-Za-z_][\w-]*)(?P<params>(?:\s+[^:]*?)?)\s*:(?!=)[ \t]*(?P<deps>[^#]*)")

_JUST_PARAM = re.compile(r"(?P<mod>[+*$]*)(?P<name>[A-Za-z_][\w-]*)(?:=(?:(?P<q>[\"'])(?P<qv>.*?)(?P=q)|"
                         r"(?P<bare>[^\s\"']+)))?")

_JUST_VALUE_OPTS = frozenset({"-f", "--justfile", "-d", "--working-directory", "--dotenv-filename",
                              "--dotenv-path", "--shell", "--shell-arg", "--color", "--command-color"})


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
