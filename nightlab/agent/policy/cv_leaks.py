"""Preprocessing fitted on the rows a cross-validation inside an estimator holds out.

`GridSearchCV(pipe, grid, cv=cv).fit(X, y)` and `cross_val_score(pipe, X, y, cv=5)` split `X` themselves: no split
statement is there for the edit guard to hold, and every row of `X` is a held-out row of some fold. A scaler, an
imputer or a PCA fitted on `X` before (`X[num] = StandardScaler().fit_transform(X[num])`) has seen each fold's
held-out rows — the textbook leak a `Pipeline` exists to prevent. This module finds the data a cross-validating
call is handed and the fits on it that come before; the guard refuses an edit that adds one.
"""

from __future__ import annotations

import ast
from collections import Counter

from nightlab.agent.policy.evaluation import CV_FUNCTIONS, FITTING_CALLS, called_name, function_defs, scope_statements

__all__ = ["cross_validation_leaks"]



def _base(expr: ast.AST) -> str | None:
    """The name an argument reads its rows from: `X`, `X[num]`, `X.values`."""
    while isinstance(expr, ast.Subscript | ast.Attribute):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _cross_validated(stmts: list[ast.stmt]) -> tuple[set[str], set[int]]:
    """The names a cross-validation is handed, and the ids of the calls that do it."""
    searches = {t.id for st in stmts if isinstance(st, ast.Assign) and isinstance(st.value, ast.Call)
                and any(k.arg == "cv" for k in st.value.keywords) for t in st.targets if isinstance(t, ast.Name)}
    names: set[str] = set()
    calls: set[int] = set()
    for c in (c for st in stmts for c in ast.walk(st) if isinstance(c, ast.Call)):
        data: ast.AST | None = None
        if called_name(c) in CV_FUNCTIONS and len(c.args) >= 2:
            data = c.args[1]
        elif called_name(c) == "fit" and isinstance(c.func, ast.Attribute) and c.args and (
                (isinstance(c.func.value, ast.Name) and c.func.value.id in searches)
                or (isinstance(c.func.value, ast.Call) and any(k.arg == "cv" for k in c.func.value.keywords))):
            data = c.args[0]  # `search.fit(X, y)`, `GridSearchCV(..., cv=5).fit(X, y)`
        if data is not None and (name := _base(data)) is not None:
            names.add(name)
            calls.add(id(c))
    return names, calls


def _fits_before(tree: ast.Module) -> Counter[str]:
    """The statements that fit something on data a later cross-validation splits, as "scope\\0name\\0dump"."""
    out: Counter[str] = Counter()
    for scope in [tree, *function_defs(tree)]:
        stmts = scope_statements(scope)
        names, cv_calls = _cross_validated(stmts)
        if not names:
            continue
        for st in stmts:
            if not isinstance(st, ast.Assign | ast.Expr | ast.AugAssign):
                continue
            for c in (c for c in ast.walk(st) if isinstance(c, ast.Call) and id(c) not in cv_calls):
                if called_name(c) in FITTING_CALLS and c.args and (name := _base(c.args[0])) in names:
                    out[f"{getattr(scope, 'name', '')}\0{name}\0{ast.dump(st)}"] += 1
                    break
    return out


def cross_validation_leaks(old: ast.Module, new: ast.Module | None) -> list[str]:
    """What an edit of one file fits, outside the cross-validation, on the rows a cross-validation holds out."""
    if new is None:
        return []
    added = _fits_before(new) - _fits_before(old)
    return sorted({f"a fit on {name} outside the cross-validation that splits it (each fold's held-out rows are "
                   f"seen; fit it inside the pipeline)" for _, name, _ in (k.split("\0", 2) for k in added)})
