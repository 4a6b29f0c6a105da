"""DVC: `dvc repro [STAGE]` / `dvc exp run [STAGE] [-S key=value]` run the `cmd:` of dvc.yaml's stages, upstream ones
first, each in its `wdir`; `-S` sets a key of params.yaml for the run (a `Setting` the command line holds)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from nightlab.agent.task_runners.recipe import Recipe, Setting, _join, _mapping_get, _scalar_span

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
