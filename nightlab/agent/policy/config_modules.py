"""Python files that are configs: a module of `name = dict(...)` assignments, guarded key by key like a YAML file.

OpenMMLab's `configs/_base_/datasets/cifar10_bs16.py`, detectron2's and mmengine's new-style configs, and many
projects' `config.py` hold no code at all: every statement assigns a literal, a `dict(...)`, a list of them or
another config name. Such a file often describes the training data and the evaluation together
(`train_pipeline = [...]`, `train_dataloader = dict(...)`, `val_dataloader = dict(dataset=dict(split="test"))`,
`val_evaluator = dict(type="Accuracy")`). Protecting it whole for its `split="test"` would freeze the training
augmentation, the main lever of those repositories; leaving it to the code guard would miss the keys nested in
`dict(...)` calls. So it is read as data, one dotted key per leaf (`val_dataloader.dataset.split`), and an edit may
not change:

* a key whose path names the measurement (`val_dataloader.*`, `test_pipeline.*`, `val_evaluator.topk`,
  `train_dataloader.dataset.split`: `names_the_measurement`);
* a string that names the data (`train_dataloader.dataset.data_root`, `...ann_file`, `dataset_type`): every part of
  the path above the first list index is read, so a transform's `type` in a pipeline list stays free;
* a top-level name the measurement's keys refer to (`dataset_type`, or a `train_pipeline` that `val_dataloader`
  is handed): changing it changes what is measured;
* a key that newly refers to such a name (`train_dataloader = dict(dataset=val_dataloader["dataset"])`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator

from nightlab.agent.policy.evaluation import called_name, names_the_data, names_the_measurement, parse_python

__all__ = ["config_module_changes", "declarative"]

# calls that build data and nothing else: a config's `dict(type="SGD", lr=0.1)`
_DATA_CALLS = frozenset({"dict", "list", "tuple", "set", "frozenset", "range"})


def _data(node: ast.AST) -> bool:
    """Whether an expression only builds data: literals, names, attributes, displays, `dict(...)` and arithmetic."""
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            if called_name(n) not in _DATA_CALLS or not isinstance(n.func, ast.Name):
                return False
        elif isinstance(n, ast.Lambda | ast.NamedExpr | ast.Await | ast.Yield | ast.YieldFrom):
            return False
    return True


def declarative(tree: ast.Module | None) -> bool:
    """A module whose statements only assign data (imports of other configs and a docstring aside), at least one
    of them a `dict` or a list: a config, not code."""
    if tree is None:
        return False
    structured = False
    for st in tree.body:
        if isinstance(st, ast.Import | ast.ImportFrom) or (
                isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant)):
            continue
        if isinstance(st, ast.With) and all(isinstance(s, ast.Import | ast.ImportFrom) for s in st.body):
            continue  # mmengine's `with read_base(): from .._base_.datasets import *`
        if isinstance(st, ast.Assign | ast.AnnAssign) and st.value is not None and _data(st.value):
            structured = structured or any(isinstance(n, ast.Dict | ast.List) or (
                isinstance(n, ast.Call) and called_name(n) == "dict") for n in ast.walk(st.value))
            continue
        return False
    return structured


def _targets(st: ast.stmt) -> list[str]:
    targets = st.targets if isinstance(st, ast.Assign) else [st.target] if isinstance(st, ast.AnnAssign) else []
    return [t.id for t in targets if isinstance(t, ast.Name)]


def _items(node: ast.AST) -> Iterator[tuple[str, ast.AST]] | None:
    """The entries of a dict display or a `dict(...)` call, or of a list / tuple of them (by index)."""
    if isinstance(node, ast.Dict):
        return ((str(k.value), v) for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant))
    if isinstance(node, ast.Call) and called_name(node) == "dict" and not node.args:
        return ((k.arg, k.value) for k in node.keywords if k.arg)
    if isinstance(node, ast.List | ast.Tuple) and any(_items(e) is not None for e in node.elts):
        return ((str(i), e) for i, e in enumerate(node.elts))
    return None


def _leaves(tree: ast.Module) -> dict[str, tuple[ast.AST, str]]:
    """{dotted key: (value, value as source)} for every leaf of the module's assignments."""
    out: dict[str, tuple[ast.AST, str]] = {}

    def walk(node: ast.AST, key: str) -> None:
        items = _items(node)
        if items is None:
            out[key] = (node, ast.unparse(node))
            return
        for k, v in items:
            walk(v, f"{key}.{k}")

    for st in tree.body:
        if isinstance(st, ast.Assign | ast.AnnAssign) and st.value is not None:
            for name in _targets(st):
                walk(st.value, name)
    return out


def _held_names(leaves: dict[str, tuple[ast.AST, str]]) -> set[str]:
    """Top-level names that belong to the measurement: one named for it (`val_evaluator`, not a `model` whose
    `test_cfg` alone is), and what a measurement key's value refers to (`pipeline=test_pipeline`,
    `type=dataset_type`, `model.test_cfg=dict(nms=nms_cfg)`), to a fixed point."""
    held = {top for key in leaves if names_the_measurement(top := key.split(".")[0])}
    while True:
        grown = held | {n.id for key, (value, _) in leaves.items()
                        if key.split(".")[0] in held or names_the_measurement(key)
                        for n in ast.walk(value) if isinstance(n, ast.Name)}
        if grown == held:
            return held
        held = grown


def _names_data(key: str) -> bool:
    """`names_the_data` on the path above its first list index (a pipeline step's `type` is no dataset)."""
    parts: list[str] = []
    for part in key.split("."):
        if part.isdigit():
            break
        parts.append(part)
    return names_the_data(".".join(parts))


def _a_string(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def config_module_changes(before: str, after: str, others: Iterable[str] = ()) -> list[str]:
    """The keys of a declarative config (`before`) that an edit (`after`) may not change, as "key (why)"; `others`
    are the project's other config modules (a measurement key in a child config that refers to a name of this one
    holds it). Nothing for a file that is not a config."""
    old_tree, new_tree = parse_python(before), parse_python(after)
    if not declarative(old_tree) or old_tree is None:
        return []
    if new_tree is None:
        return []
    old, new = _leaves(old_tree), _leaves(new_tree)
    everything = dict(old)
    for text in others:
        tree = parse_python(text)
        if declarative(tree) and tree is not None:
            everything.update({f"\0{k}": v for k, v in _leaves(tree).items()})
    held = _held_names({k.lstrip("\0"): v for k, v in everything.items()})
    out = []
    for key in sorted(old.keys() | new.keys()):
        was, now = old.get(key), new.get(key)
        if (was[1] if was else None) == (now[1] if now else None):
            continue
        if names_the_measurement(key) or key.split(".")[0] in held:
            out.append(f"{key} (a setting of the measurement)")
        elif _names_data(key) and (_a_string(was[0] if was else None) or _a_string(now[0] if now else None)):
            out.append(f"{key} (the data it names)")
        else:
            refers = {n.id for n in ast.walk(now[0]) if isinstance(n, ast.Name)} if now else set()
            before_refs = {n.id for n in ast.walk(was[0]) if isinstance(n, ast.Name)} if was else set()
            given = sorted((refers - before_refs) & held)
            if given:
                out.append(f"{key} (given what the measurement uses: {', '.join(given)})")
    return out
