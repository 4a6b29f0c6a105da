"""Detectron2's lazy configs (LazyConfig, also detrex's): Python files that import the parts they set and overwrite
them by attribute.

A lazy config reads ``from ..common.optim import SGD as optimizer`` and then ``optimizer.lr = 0.02``; the module it
imports from holds ``SGD = L(torch.optim.SGD)(lr=0.02, momentum=0.9)``; a later config imports ``optimizer`` from
the first and writes ``optimizer.lr`` again; and the command's ``optimizer.lr=0.01`` is applied over all of them by
``LazyConfig.apply_overrides``. Each write is a literal that looks like a setting, and only the last one the run
applies takes effect: the others are shadowed by it. Names differ along the way (``SGD`` is ``optimizer`` once
imported), so a write is traced through the imports to the module that defines what it sets.

`analyse` (program.py) finds the configs, follows their imports (the files they import are run: LazyConfig.load
executes them) and records each file's imported names (`Program.lazy_imports`); `overrides` says which knobs are
shadowed by which later write.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Collection, Iterator, Mapping, Sequence

from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.effective.python_facts import parsed

# one file's imported names: the name it is bound to -> (the repository file it comes from, its name there)
Aliases = dict[str, tuple[str, str]]


def imported_names(text: str) -> list[tuple[str, int, str, str]]:
    """The names a file binds by ``from M import N [as A]`` at module level: (M, level, N, A)."""
    tree = parsed(text)
    if tree is None:
        return []
    return [(node.module or "", node.level, a.name, a.asname or a.name) for node in tree.body
            if isinstance(node, ast.ImportFrom) for a in node.names if a.name != "*"]


def overrides(knobs: Sequence[knobmod.Knob], files: Mapping[str, str], lazy_imports: Mapping[str, Aliases],
              configs: Sequence[str], cli: Sequence[knobmod.Knob]) -> dict[str, knobmod.Knob]:
    """For each knob a later write sets again: that write's knob. `configs` are the lazy configs the command names
    (in the order applied), `cli` the command's settings (``optimizer.lr=0.01``, applied over the last config)."""
    by_place: dict[tuple[str, str], knobmod.Knob] = {}  # (file, dotted path it sets) -> the knob
    for k in knobs:
        if k.path in lazy_imports and k.path.endswith(".py"):
            place = _paths(files.get(k.path, "")).get((int(getattr(k, "line", 0) or 0), _leaf(k)))
            if place is not None:
                by_place[(k.path, place)] = k
    out: dict[str, knobmod.Knob] = {}

    def shadow(path: str, dotted: str, by: knobmod.Knob) -> None:
        """`by` sets `dotted` as seen from `path`: everything it reaches through the imports is shadowed."""
        for file, place in _chain(path, dotted, lazy_imports):
            hit = by_place.get((file, place))
            if hit is not None and hit.name != by.name:
                out.setdefault(hit.name, by)

    for (file, place), k in by_place.items():
        if "." in place:
            shadow(file, place, k)
    for top in configs[-1:]:
        for c in cli:
            key = c.name.split(":", 1)[-1]
            if "." in key and not key.startswith("-"):
                shadow(top, key, c)
                hit = by_place.get((top, key))
                if hit is not None:
                    out.setdefault(hit.name, c)
    return out


def unimported(knobs: Sequence[knobmod.Knob], files: Mapping[str, str], lazy_imports: Mapping[str, Aliases],
               lazy_only: Collection[str]) -> dict[str, str]:
    """Knobs of objects no config imports, in files only configs import (``SGD = L(torch.optim.SGD)(lr=0.02)``
    beside the ``AdamW`` the config takes): executed, never used. Knob name -> why."""
    taken = {source for aliases in lazy_imports.values() for source in aliases.values()}
    out: dict[str, str] = {}
    for k in knobs:
        if k.path not in lazy_only:
            continue
        place = _paths(files.get(k.path, "")).get((int(getattr(k, "line", 0) or 0), _leaf(k)))
        head = place.split(".", 1)[0] if place is not None else None
        if head is not None and (k.path, head) not in taken:
            out[k.name] = f"`{head}` in {k.path} is imported by no config the command reads"
    return out


def _chain(path: str, dotted: str, lazy_imports: Mapping[str, Aliases]) -> Iterator[tuple[str, str]]:
    """The (file, dotted path) a write of `dotted` in `path` reaches: through each import of its first name, to the
    file that defines it (``optimizer.lr`` in a config -> ``optimizer.lr`` in the config it imports ``optimizer``
    from -> ``SGD.lr`` in common/optim.py). The write's own place is not one of them."""
    seen: set[str] = set()
    head, _, rest = dotted.partition(".")
    while rest and path not in seen:
        seen.add(path)
        source = lazy_imports.get(path, {}).get(head)
        if source is None:
            return
        path, head = source
        yield path, f"{head}.{rest}"


def _leaf(k: knobmod.Knob) -> str:
    local = k.name.split(":", 1)[1] if k.name.startswith(f"{k.path}:") else k.name
    return local.split("#")[0].rsplit(".", 1)[-1]


@functools.lru_cache(maxsize=256)
def _paths(text: str) -> dict[tuple[int, str], str]:
    """Each literal a module-level statement sets, by (line, last name): the dotted path it sets. ``SGD =
    L(torch.optim.SGD)(lr=0.02)`` sets ``SGD.lr``; ``train = dict(max_iter=90000)`` ``train.max_iter``;
    ``optimizer.lr = 0.02`` ``optimizer.lr``."""
    tree = parsed(text)
    out: dict[tuple[int, str], str] = {}
    if tree is None:
        return out

    def walk(node: ast.expr, path: str) -> None:
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg is not None:
                    walk(kw.value, f"{path}.{kw.arg}")
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    walk(value, f"{path}.{key.value}")
        elif isinstance(node, ast.Tuple | ast.List):  # `betas=(0.9, 0.999)`: `betas[0]`, `betas[1]`
            for i, element in enumerate(node.elts):
                walk(element, f"{path}[{i}]")
        elif isinstance(node, ast.Constant | ast.UnaryOp):
            out.setdefault((node.lineno, path.rsplit(".", 1)[-1]), path)

    for st in tree.body:
        if isinstance(st, ast.Assign) and len(st.targets) == 1:
            target = _dotted(st.targets[0])
            if target is not None:
                walk(st.value, target)
    return out


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])
