"""Which code measures the model rather than trains it: the part a policy must never edit or tune.

Changing how the metric is computed (the evaluation batch, the split, a clipping epsilon in the score) would move
the number without making the model any better, so the builtin policy leaves that code alone. It is found from
what the code does, never from how it is laid out or commented:

* functions that compute the printed metric: the statements that print (or log, or write) the metric's name, the
  names they print, and the statements that assign or accumulate those names (two steps back), lead to the
  project's own functions called there (``val_loss = evaluate(model, loader)``, ``losses = estimate_loss()``,
  ``scores.append(logloss_terms(logits, y))``);
* functions whose name says they evaluate, test, score or load / split the data (``evaluate``, ``test_accuracy``,
  ``load_data``);

and in both cases only a function that does not train: one that calls ``.backward()``, an optimizer's
``.step()`` / ``.zero_grad()`` or ``.fit()`` is training code whatever its name (``train_and_evaluate``).
A model-building or data-batching function reached on the way (``get_batch`` used by both) is not an evaluation
function: only the head call of each expression counts, not the arguments it is given.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterator, Mapping

__all__ = ["evaluation_functions", "fixed_lines", "name_is_fixed"]

_FIXED_NAME_TOKENS = frozenset({
    "eval", "evaluate", "evaluation", "test", "testing", "score", "scoring", "metric", "metrics",
    "validate", "validation", "data", "dataset", "split", "loaddata",
})
_TRAINING_CALLS = frozenset({"backward", "step", "zero_grad", "fit", "partial_fit", "minimize", "apply_gradients"})
_TRACE_DEPTH = 2


def name_is_fixed(name: str) -> bool:
    """Whether a function's own name says it evaluates, tests, scores or loads / splits data."""
    toks = [t for t in re.split(r"_+|(?<=[a-z])(?=[A-Z])", name) if t]
    low = {t.lower() for t in toks}
    return bool(low & _FIXED_NAME_TOKENS) or "load_data" in name.lower()


def _trains(fn: ast.AST) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in _TRAINING_CALLS:
            return True
    return False


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None


def _defs(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _metric_pattern(metric: str) -> re.Pattern[str] | None:
    words = [w for w in re.split(r"[\s_\-/.]+", metric.strip()) if w]
    if not words:
        return None
    return re.compile(r"(?<![A-Za-z0-9])" + r"[\s_\-/.]?".join(map(re.escape, words)) + r"(?![A-Za-z0-9])",
                      re.IGNORECASE)


def _mentions(node: ast.AST, pat: re.Pattern[str]) -> bool:
    return any(isinstance(n, ast.Constant) and isinstance(n.value, str) and pat.search(n.value)
               for n in ast.walk(node))


def _heads(expr: ast.AST | None) -> tuple[set[str], set[str]]:
    """(functions called at the head of `expr`, names it reads there): through operators, subscripts, method chains,
    f-strings and containers, never into a call's arguments (what a call is given is not what computes the value),
    except for calls of methods on a value (``torch.cat(losses).mean()`` reads `losses`)."""
    calls: set[str] = set()
    names: set[str] = set()
    stack: list[ast.AST] = [expr] if expr is not None else []
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Call):
            f = n.func
            if isinstance(f, ast.Name):
                calls.add(f.id)
            elif isinstance(f, ast.Attribute):
                calls.add(f.attr)  # a method of the project's own (trainer.evaluate()) counts like a function
                stack.append(f.value)
                if isinstance(f.value, ast.Name | ast.Attribute):
                    # a library function (torch.cat(xs), np.mean(xs), sum(xs)): its arguments carry the value
                    stack.extend(a for a in n.args)
            if isinstance(f, ast.Name) and f.id in ("sum", "float", "int", "round", "abs", "min", "max", "len"):
                stack.extend(n.args)
        elif isinstance(n, ast.Name):
            names.add(n.id)
        elif isinstance(n, ast.Attribute | ast.Subscript | ast.Starred | ast.FormattedValue):
            stack.append(n.value)
        elif isinstance(n, ast.JoinedStr):
            stack.extend(n.values)
        elif isinstance(n, ast.BinOp):
            stack.extend((n.left, n.right))
        elif isinstance(n, ast.UnaryOp):
            stack.append(n.operand)
        elif isinstance(n, ast.IfExp):
            stack.extend((n.body, n.orelse))
        elif isinstance(n, ast.Tuple | ast.List | ast.Set):
            stack.extend(n.elts)
        elif isinstance(n, ast.Dict):
            stack.extend(v for v in n.values if v is not None)
        elif isinstance(n, ast.Compare):
            stack.extend((n.left, *n.comparators))
    return calls, names


def _printed(st: ast.stmt) -> list[ast.AST]:
    """The values a statement that mentions the metric reports: the arguments of the call that prints or logs it
    (``print(...)``, ``logger.info(...)``, ``report(value, "val_loss")`` — that call is the reporter, not the
    evaluator), or the value assigned / returned."""
    value = st.value if isinstance(st, ast.Expr | ast.Assign | ast.Return | ast.AnnAssign) else None
    if isinstance(value, ast.Call):
        return [*value.args, *(k.value for k in value.keywords)]
    return [value] if value is not None else [st]


def _scope_statements(scope: ast.AST) -> list[ast.stmt]:
    """Every statement of a function or module body, nested blocks included, nested defs excluded."""
    out: list[ast.stmt] = []
    body = getattr(scope, "body", [])
    stack = list(reversed(body))
    while stack:
        st = stack.pop()
        out.append(st)
        if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for attr in ("body", "orelse", "finalbody", "handlers"):
            stack.extend(reversed(getattr(st, attr, []) or []))
        if isinstance(st, ast.Match):
            for case in st.cases:
                stack.extend(reversed(case.body))
    return out


def _feeding(stmts: list[ast.stmt], name: str) -> Iterator[ast.AST]:
    """Expressions that give `name` its value in these statements: assignments, augmented assignments and
    ``name.append(...)`` / ``extend`` / ``add`` / ``update`` arguments."""
    for st in stmts:
        if isinstance(st, ast.Assign):
            if any(name in _target_names(t) for t in st.targets):
                yield st.value
        elif isinstance(st, ast.AugAssign | ast.AnnAssign):
            if st.value is not None and name in _target_names(st.target):
                yield st.value
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
            f = st.value.func
            if isinstance(f, ast.Attribute) and f.attr in ("append", "extend", "add", "update", "insert") \
                    and isinstance(f.value, ast.Name) and f.value.id == name:
                yield from st.value.args


def _target_names(t: ast.AST) -> set[str]:
    if isinstance(t, ast.Name):
        return {t.id}
    if isinstance(t, ast.Tuple | ast.List):
        return set().union(*(_target_names(e) for e in t.elts)) if t.elts else set()
    if isinstance(t, ast.Subscript):
        return _target_names(t.value)
    return set()


def evaluation_functions(files: Mapping[str, str], metric: str) -> set[str]:
    """Names of the project's functions that measure the model (see the module docstring), over all `files`."""
    trees = {p: t for p, text in files.items() if p.endswith(".py") and (t := _parse(text)) is not None}
    defs: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for tree in trees.values():
        for d in _defs(tree):
            defs.setdefault(d.name, []).append(d)
    trains = {name for name, ds in defs.items() if any(_trains(d) for d in ds)}
    out = {name for name in defs if name_is_fixed(name) and name not in trains}
    pat = _metric_pattern(metric)
    if pat is None:
        return out
    for tree in trees.values():
        for scope in [tree, *_defs(tree)]:
            stmts = _scope_statements(scope)
            for st in stmts:
                if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) or not _mentions(st, pat):
                    continue
                calls, names = set(), set()
                for expr in _printed(st):
                    c, n = _heads(expr)
                    calls |= c
                    names |= n
                seen: set[str] = set()
                for _ in range(_TRACE_DEPTH):
                    nxt: set[str] = set()
                    for name in names - seen:
                        seen.add(name)
                        for expr in _feeding(stmts, name):
                            c, n = _heads(expr)
                            calls |= c
                            nxt |= n
                    names = nxt
                out |= {c for c in calls if c in defs and c not in trains}
    return out


def fixed_lines(text: str, functions: Collection[str] = ()) -> set[int]:
    """1-based lines a transform must not edit: the defs (decorators and body) of evaluation functions — those in
    `functions` (see `evaluation_functions`) and those whose own name says so — that do not train."""
    tree = _parse(text)
    if tree is None:
        return set()
    out: set[int] = set()
    for d in _defs(tree):
        if (d.name in functions or name_is_fixed(d.name)) and not _trains(d):
            start = min([d.lineno, *(x.lineno for x in d.decorator_list)])
            out.update(range(start, (d.end_lineno or d.lineno) + 1))
    return out
