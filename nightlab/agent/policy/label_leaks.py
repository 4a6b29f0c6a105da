"""Features that read the label: the leak that changes the measurement without touching the code that measures.

A forecasting script builds lag features from its own target (`df["lag_7"] = df["sales"].shift(7)`) before it
splits; an edit that turns the shift around (`shift(-7)`, the future) or drops it (`df["sales"].rolling(7).mean()`
includes the row's own target) hands the model the answer, and so does a target mean over the whole frame
(`df["te"] = df.groupby("store")["sales"].transform("mean")`, the held-out rows' labels included). None of it is in
a measuring function or a split statement, so the edit guard asks this module: which columns are the label (what
a fit, a split or a `label=` is handed, traced back to `frame["sales"]`), and which column writes of an edit read
one at the same row or a later one. A read shifted by a positive amount (`shift(1)`, `shift(lag)`, `shift()`) is
the past and stays free; so is a frame named for the training part (`train_df`, `tr` of a fold) that nothing splits
further (a `train` frame cross-validated by `skf.split(train, ...)` holds the held-out folds), and a column only a
split reads (`stratify=df["y_bin"]`).
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterable

from nightlab.agent.policy.evaluation import (
    FITTING_CALLS,
    SPLIT_CALLS,
    TRAINING_PART,
    a_library_metric,
    called_name,
    feeding,
    function_defs,
    name_words,
    scope_statements,
)

__all__ = ["fresh_features", "label_columns", "label_leaks"]

# keywords that hand the label (`xgb.DMatrix(X, label=y)`); the second argument of a fit or a split is it too
_LABEL_KEYWORDS = frozenset({"label", "y", "labels", "target", "y_train"})
# keywords that name the label's column (`label_column="price"`, PyCaret's `setup(target="price")`)
_LABEL_NAMING = frozenset({"label_column", "target_column", "label_col", "target_col", "label_name", "target_name"})
# what takes the data and its label together: LightGBM's / XGBoost's / CatBoost's / torch's `(X, y)`
_LABELLED_DATA = frozenset({"Dataset", "DMatrix", "Pool", "TensorDataset"})
_TRACE_STEPS = 3


def _scopes(tree: ast.Module) -> list[ast.AST]:
    return [tree, *function_defs(tree)]


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level names bound to a string (`TARGET = "sales"`)."""
    return {t.id: st.value.value for st in tree.body if isinstance(st, ast.Assign)
            and isinstance(st.value, ast.Constant) and isinstance(st.value.value, str)
            for t in st.targets if isinstance(t, ast.Name)}


def _column(node: ast.AST, constants: dict[str, str]) -> str | None:
    """The column a subscript's key names (`"sales"`, `TARGET`), None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _keys(sub: ast.Subscript) -> list[ast.expr]:
    """The column keys of a subscript: `df["y"]`, `df[["a", "y"]]`, `df.loc[idx, "y"]` (the last of a row and a
    column key)."""
    key = sub.slice
    if isinstance(key, ast.Tuple) and key.elts:
        key = key.elts[-1]
    return list(key.elts) if isinstance(key, ast.List) else [key]


def _columns_read(expr: ast.AST, constants: dict[str, str]) -> set[str]:
    """The columns an expression reads by key: `df["sales"]`, `df[["sales"]]`, `df.pop("sales")`."""
    out: set[str] = set()
    for node in ast.walk(expr):
        if isinstance(node, ast.Subscript):
            out |= {c for k in _keys(node) if (c := _column(k, constants)) is not None}
        elif isinstance(node, ast.Call) and called_name(node) == "pop" and node.args and \
                (c := _column(node.args[0], constants)) is not None:
            out.add(c)
    return out


def label_columns(trees: Iterable[ast.Module]) -> set[str]:
    """The columns that are the label: what the second argument of a fit, a split (`train_test_split(X, y)`,
    `skf.split(X, y)`) or a labelled dataset (`lgb.Dataset(X, y)`), a `label=` keyword, or the truth a library
    metric is handed (`roc_auc_score(df["target"], oof)`) reads (`y = df["sales"].values` … `model.fit(X, y)`), traced
    back through a few assignments."""
    out: set[str] = set()
    trees = list(trees)
    splitters = {t.id for tree in trees for st in ast.walk(tree) if isinstance(st, ast.Assign) and isinstance(
        st.value, ast.Call) and called_name(st.value) in SPLIT_CALLS for t in st.targets if isinstance(t, ast.Name)}
    for tree in trees:
        constants = _string_constants(tree)
        for scope in _scopes(tree):
            stmts = scope_statements(scope)
            exprs: list[ast.AST] = []
            for c in (c for st in stmts for c in ast.walk(st) if isinstance(c, ast.Call)):
                name = called_name(c)
                if (name in FITTING_CALLS or name in SPLIT_CALLS or name in _LABELLED_DATA or
                        (name == "split" and _a_splitter(c.func, splitters))) and len(c.args) >= 2:
                    exprs.append(c.args[1])
                elif a_library_metric(name) and len(c.args) >= 2:
                    exprs.append(c.args[0])  # `roc_auc_score(train["target"], oof)`: the truth it scores against
                exprs += [k.value for k in c.keywords if k.arg in _LABEL_KEYWORDS]
                # a label named by its column: AutoGluon's `TabularPredictor(label="class")`, PyCaret's
                # `setup(data, target=TARGET)`, `label_column=` (not a plot's `label="train loss"`)
                named = _LABEL_NAMING | (_LABEL_KEYWORDS if name[:1].isupper() or name == "setup" else set())
                out |= {col for k in c.keywords if k.arg in named if (col := _column(k.value, constants)) is not None}
            seen: set[str] = set()
            for _ in range(_TRACE_STEPS):
                # of a split's result only its label side (`train_test_split(df[["a", "b"]], df["y"])`)
                exprs = [e.args[1] if isinstance(e, ast.Call) and called_name(e) in SPLIT_CALLS and len(e.args) >= 2
                         else e for e in exprs]
                # an expression that reads a column is where the label is (`y = df["sales"].values`); one that
                # reads none is traced on through the names it is made of (`y_train` of a split, `y.astype(...)`)
                found = [(e, _columns_read(e, constants)) for e in exprs]
                out |= {c for _, cols in found for c in cols}
                names = {n.id for e, cols in found if not cols for n in ast.walk(e) if isinstance(n, ast.Name)} - seen
                seen |= names
                exprs = [v for n in names for v in _label_side(stmts, n)]
    return out


def _a_splitter(func: ast.expr, splitters: set[str]) -> bool:
    """`skf.split` of a `skf = StratifiedKFold(...)`, `KFold(5).split`: a splitter's `split(X, y)`."""
    if not isinstance(func, ast.Attribute):
        return False
    owner = func.value
    return (isinstance(owner, ast.Name) and owner.id in splitters) or (
        isinstance(owner, ast.Call) and called_name(owner) in SPLIT_CALLS)


def _label_side(stmts: list[ast.stmt], name: str) -> Iterable[ast.AST]:
    """`feeding`, where `X, y = df[feats].values, df["sales"].values` gives `y` only its own element."""
    for st in stmts:
        if isinstance(st, ast.Assign) and all(isinstance(t, ast.Subscript) for t in st.targets):
            continue  # `train["amt"] = train["amount"] / 2` writes a column: it does not make the frame the label
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Tuple) and \
                isinstance(st.value, ast.Tuple) and len(st.targets[0].elts) == len(st.value.elts):
            yield from (v for t, v in zip(st.targets[0].elts, st.value.elts, strict=True)
                        if isinstance(t, ast.Name) and t.id == name)
            continue
        yield from feeding([st], name)


def _past(call: ast.Call) -> bool:
    """A `.shift(...)` that moves the rows into the past: no periods (1), or periods not zero nor negative."""
    periods = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "periods"), None)
    if periods is None:
        return True
    if isinstance(periods, ast.UnaryOp) and isinstance(periods.op, ast.USub):
        return False
    if isinstance(periods, ast.Constant):
        return isinstance(periods.value, int) and periods.value > 0
    return True


# methods that hand a series to the function they are given (`g.transform(lambda s: s.shift(91).mean())`)
_APPLYING = frozenset({"transform", "apply", "agg", "aggregate", "pipe", "map"})


def _unshifted_reads(expr: ast.AST, labels: set[str], constants: dict[str, str],
                     aliases: dict[str, str] | None = None) -> set[str]:
    """The label columns `expr` reads other than through a `.shift` into the past (`df["sales"].shift(1)`,
    `df.groupby("store")["sales"].shift(7)`). `aliases` are names bound to the label (`g = df.groupby(["store",
    "item"])["sales"]`): `g.shift(lag)` is the past, `g.transform("mean")` is not, and `g.transform(lambda s: ...)`
    reads the label as its lambda reads `s`."""
    aliases = dict(aliases or {})
    past = {id(n) for call in ast.walk(expr) if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and call.func.attr == "shift" and _past(call) for n in ast.walk(call.func.value)}
    for call in (c for c in ast.walk(expr) if isinstance(c, ast.Call)):
        if not isinstance(call.func, ast.Attribute) or call.func.attr not in _APPLYING:
            continue
        receiver = call.func.value
        lambdas = [a for a in [*call.args, *(k.value for k in call.keywords)] if isinstance(a, ast.Lambda)]
        read = _unshifted_reads(receiver, labels, constants, aliases) if lambdas else set()
        if not read:
            continue
        label = sorted(read)[0]
        past |= {id(n) for n in ast.walk(receiver)}  # the receiver is read as the lambda reads its series
        for fn in lambdas:
            aliases.update({a.arg: label for a in fn.args.args[:1]})
    out: set[str] = set()
    for node in ast.walk(expr):
        if id(node) in past:
            continue
        if isinstance(node, ast.Subscript):
            out |= {c for k in _keys(node) if (c := _column(k, constants)) is not None and c in labels}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr in labels:
            out.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in aliases:
            out.add(aliases[node.id])
    return out


def _label_aliases(stmts: list[ast.stmt], labels: set[str], constants: dict[str, str]) -> dict[str, str]:
    """Names a scope binds to the label itself, unshifted (`g = df.groupby(["store", "item"])["sales"]`)."""
    out: dict[str, str] = {}
    for st in stmts:
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
            read = _unshifted_reads(st.value, labels, constants, out)
            if read and not any(isinstance(n, ast.Call) and called_name(n) in _REDUCING for n in ast.walk(st.value)):
                out[st.targets[0].id] = sorted(read)[0]
            else:
                out.pop(st.targets[0].id, None)
    return out


# calls whose result is no longer the label series: `y = df["sales"].values.astype(float)` still is, a fit's
# `model = lgb.train(...)` or a metric is not
_REDUCING = FITTING_CALLS | {"train", "predict", "score"}


def _frame_writes(stmts: list[ast.stmt]) -> Iterable[tuple[ast.stmt, str, ast.AST, ast.expr]]:
    """Column writes: (statement, the frame's name, the written column's key, the value): `df["x"] = …`,
    `df.loc[:, "x"] = …`, `df = df.assign(x=…)`."""
    for st in stmts:
        if not isinstance(st, ast.Assign) or len(st.targets) != 1:
            continue
        t = st.targets[0]
        if isinstance(t, ast.Subscript):
            frame = t.value.value if isinstance(t.value, ast.Attribute) and t.value.attr in ("loc", "iloc") \
                else t.value
            key = t.slice.elts[-1] if isinstance(t.slice, ast.Tuple) and t.slice.elts else t.slice
            if isinstance(frame, ast.Name):
                yield st, frame.id, key, st.value
        elif isinstance(t, ast.Name) and isinstance(st.value, ast.Call) and called_name(st.value) == "assign":
            for k in st.value.keywords:
                if k.arg:
                    yield st, t.id, ast.Constant(k.arg), k.value


def _split_read_columns(trees: Iterable[ast.Module]) -> set[str]:
    """Columns a split is handed (`stratify=df["y_bin"]`, `GroupKFold().split(X, y, df["g"])`)."""
    out: set[str] = set()
    for tree in trees:
        constants = _string_constants(tree)
        for c in (c for c in ast.walk(tree) if isinstance(c, ast.Call)):
            name = called_name(c)
            if name in SPLIT_CALLS or name == "split":
                for a in [*c.args, *(k.value for k in c.keywords)]:
                    out |= _columns_read(a, constants)
    return out


def _split_sources(tree: ast.Module) -> set[str]:
    """Names a split is made from (`skf.split(train, train["target"])`, `train_test_split(df)`): whatever they are
    called, they hold the held-out rows too."""
    splitters = {t.id for st in ast.walk(tree) if isinstance(st, ast.Assign) and isinstance(st.value, ast.Call)
                 and called_name(st.value) in SPLIT_CALLS for t in st.targets if isinstance(t, ast.Name)}
    return {a.id for c in ast.walk(tree) if isinstance(c, ast.Call) and (called_name(c) in SPLIT_CALLS or (
        called_name(c) == "split" and _a_splitter(c.func, splitters))) for a in c.args[:1] if isinstance(a, ast.Name)}


def _leaky_writes(tree: ast.Module, labels: set[str], exempt: set[str]) -> Counter[str]:
    """The column writes of `tree` that read a label at its own row or a later one, as "scope\\0dump"."""
    constants = _string_constants(tree)
    split = _split_sources(tree)
    out: Counter[str] = Counter()
    for scope in _scopes(tree):
        stmts = scope_statements(scope)
        aliases = _label_aliases(stmts, labels, constants)
        for st, frame, key, value in _frame_writes(stmts):
            written = _column(key, constants)
            if written in labels or written in exempt or (name_words(frame) & TRAINING_PART and frame not in split):
                continue
            read = _unshifted_reads(value, labels, constants, aliases)
            if read:
                column = repr(written) if written is not None else ast.unparse(key)
                out[f"{getattr(scope, 'name', '')}\0{frame}[{column}]\0{sorted(read)[0]}\0{ast.dump(st)}"] += 1
    return out


def label_leaks(before: Iterable[ast.Module], old: ast.Module, new: ast.Module | None) -> list[str]:
    """What an edit of one file (`old` → `new`) writes into a frame from the label at its own row or a later one,
    that the file did not write before; `before` is every file of the project as it was (where the label is
    found)."""
    if new is None:
        return []
    trees = list(before)
    labels = label_columns([*trees, new])
    if not labels:
        return []
    exempt = _split_read_columns([new])
    added = _leaky_writes(new, labels, exempt) - _leaky_writes(old, labels, exempt)
    return sorted({f"{write} reads the label {label!r} at its own row or a later one (a feature made from the "
                   f"target hands the model the answer; only a shift into the past is free)"
                   for _, write, label, _ in (k.split("\0", 3) for k in added)})


def _named_columns(tree: ast.Module) -> set[str]:
    """Every string a file reads or writes as a column key, and every string it holds (a feature list)."""
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def fresh_features(before: ast.Module, after: ast.Module, statements: Iterable[ast.stmt]) -> set[int]:
    """Of `statements` (of `after`), the ids of column writes that add a feature: a column `before` never names,
    written from no label at its own row (`df["n_visits"] = df.groupby("patient")["visit"].transform("count")`).
    Nothing measured can read a column it has never heard of, so a new feature changes only what the model sees; a
    write of a column the file already names (the label, a split's groups) is not one, and where the label is not
    taken by name no write is."""
    labels = label_columns([before, after])
    if not labels:  # a label taken by position (`y = df.iloc[:, -1]`) is whatever column comes last: no write is free
        return set()
    known = _named_columns(before)
    made = {ast.dump(n) for n in ast.walk(before) if isinstance(n, ast.JoinedStr)}
    constants = _string_constants(after)
    aliases = {k: v for scope in _scopes(after) for k, v in
               _label_aliases(scope_statements(scope), labels, constants).items()}
    out: set[int] = set()
    for st, _, key, value in _frame_writes(list(statements)):
        written = _column(key, constants)
        fresh = (written is not None and written not in known) or (
            isinstance(key, ast.JoinedStr) and ast.dump(key) not in made)
        if fresh and not _unshifted_reads(value, labels, constants, aliases):
            out.add(id(st))
    return out
