"""tox: the `commands` of `[testenv:NAME]` (`tox -e NAME`), `{posargs}` filled in from the words after `--`."""

from __future__ import annotations

import re
from collections.abc import Callable

from nightlab.agent.task_runners.recipe import Recipe, _join, _lines

_TOX_SECTION = re.compile(r"\[(?P<name>[^\]]+)\]")


_TOX_KEY = re.compile(r"(?P<key>[A-Za-z_][\w-]*)\s*=[ \t]*(?P<value>.*)")


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
