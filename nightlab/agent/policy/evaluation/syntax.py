"""Syntax-tree helpers every reader of training code shares: parsing, every function defined, a scope's statements,
what feeds a name, what a target binds, the name a call is made by."""


from __future__ import annotations

import ast
from collections.abc import Iterator


def parse_python(text: str) -> ast.Module | None:
    """The module's tree, or None for text that is not Python this interpreter parses."""
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None


def function_defs(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every function and method defined anywhere in `tree`, nested ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def scope_statements(scope: ast.AST) -> list[ast.stmt]:
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


def feeding(stmts: list[ast.stmt], name: str) -> Iterator[ast.AST]:
    """Expressions that give `name` its value in these statements: assignments, augmented assignments and
    ``name.append(...)`` / ``extend`` / ``add`` / ``update`` arguments."""
    for st in stmts:
        if isinstance(st, ast.Assign):
            if any(name in target_names(t) for t in st.targets):
                yield st.value
        elif isinstance(st, ast.AugAssign | ast.AnnAssign):
            if st.value is not None and name in target_names(st.target):
                yield st.value
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
            f = st.value.func
            if (isinstance(f, ast.Attribute) and f.attr in ("append", "extend", "add", "update", "insert",
                                                          "add_batch")
                    and isinstance(f.value, ast.Name) and f.value.id == name) or \
                    (isinstance(f, ast.Name) and f.id == name):
                # (a cumulative metric called with a batch, MONAI's `dice_metric(y_pred=out, y=labels)` and
                # torchmetrics' `metric(preds, target)`, is fed as `update` feeds it)
                yield from st.value.args
                yield from (k.value for k in st.value.keywords)


def target_names(t: ast.AST) -> set[str]:
    """The names an assignment target binds or updates (`a, b[i] = …` → a and b)."""
    if isinstance(t, ast.Name):
        return {t.id}
    if isinstance(t, ast.Tuple | ast.List):
        return set().union(*(target_names(e) for e in t.elts)) if t.elts else set()
    if isinstance(t, ast.Subscript):
        return target_names(t.value)
    return set()


def called_name(call: ast.Call) -> str:
    """The name a call is made by, `f` of `f(x)` and of `obj.f(x)`; "" for anything else (`fns[0](x)`)."""
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
