"""The statements outside evaluation functions that measure (`measuring_statements`): those that print or log the
metric and what they are computed from, sliced back a few assignments; the held-out part's split and size; a
cross-validating search's scoring and folds; the selection of which value is reported. What trains is cut away."""


from __future__ import annotations

import ast
import copy
import re
from collections.abc import Callable, Collection, Iterator

from nightlab.agent.policy.evaluation.functions import (
    _CV_MEASURING_KEYWORDS,
    _CV_TRAINING_KEYWORDS,
    _SLICE_DEPTH,
    _TRACE_DEPTH,
    CV_FUNCTIONS,
    CV_SEARCHES,
    SPLIT_CALLS,
    _a_training_call,
    _heads,
    trains,
)
from nightlab.agent.policy.evaluation.names import (
    _is_model_name,
    _tokens,
    held_out_data,
    held_out_name,
    name_words,
    names_the_measurement,
)
from nightlab.agent.policy.evaluation.printed import _entries_named, _mentions, _metric_pattern, _printed
from nightlab.agent.policy.evaluation.syntax import (
    called_name,
    feeding,
    function_defs,
    parse_python,
    scope_statements,
    target_names,
)

_SIMPLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return)


def measuring_statements(text: str, metric: str, skip: Collection[str] = (), data_functions: Collection[str] = (),
                         trainers: Collection[str] = ()) -> list[ast.stmt]:
    """The statements outside evaluation functions that measure: each simple statement that prints or logs the
    metric's name, the statements that give the values it prints theirs (two steps back, as `_traced` follows them:
    `acc = accuracy_score(y_te, clf.predict(X_te))`, an inline validation loop's `correct += (pred == y).sum()`),
    and the statements that split the data (`train_test_split(...)`, `random_split(...)`). A statement that trains
    (`clf.fit`, `loss.backward()`) is never one. Functions in `skip` (already held whole) are passed over.

    Of a dict literal the measurement reads by key (``x[-config["val_size"]:]``) only those entries are held, and of
    ``a, b = x, y`` only the names it reads: the learning rate beside `val_size` stays a training setting. A loop that
    feeds the printed value and neither trains (nor calls one of `trainers`) nor prints it (``for xb, yb in
    val_loader: correct += ...``) is held as its header and its exits (`break`, `continue`, with their conditions):
    which batches are measured, and how many. Data given to a training call as the measurement's (``evals=[(dvalid,
    "valid")]``, ``eval_set=[(X_val, y_val)]``) is followed back to what builds it. In `data_functions` (fixed by a
    data name, building the training and the held-out data alike: torchvision's ``load_data(traindir, valdir)``) only
    the held-out side is held: what assigns a held-out name (``val_tf = ...``, ``dataset_test = ...``) and what feeds
    it, and of the return the parts that read one; its training augmentation stays free."""
    tree = parse_python(text)
    pat = _metric_pattern(metric)
    if tree is None:
        return []
    out: list[ast.stmt] = []
    seen: set[int] = set()
    local = list(function_defs(tree))

    def take(st: ast.stmt) -> None:
        if id(st) not in seen and isinstance(st, _SIMPLE + _LOOPS) and not trains(st):
            seen.add(id(st))
            out.append(_cross_validation_settings(st))

    for held in (d for d in local if d.name in skip):  # an evaluation function held whole that reports what an
        _logging_setup(tree, scope_statements(held), take)  # engine logged: the engine's metrics are held too
    for scope in [tree, *(d for d in function_defs(tree) if d.name not in skip)]:
        stmts = scope_statements(scope)
        if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef) and scope.name in data_functions:
            _held_out_side(scope, stmts, take)
        for st in stmts:  # data handed to a training call as the measurement's (`xgb.train(..., evals=evals)`)
            if not isinstance(st, _SIMPLE):
                continue
            for k in (k for n in ast.walk(st) if isinstance(n, ast.Call) for k in n.keywords):
                if names_the_measurement(k.arg) and (_a_display(k.value, stmts) or (
                        isinstance(k.value, ast.Name) and held_out_data(k.value.id))):  # `validation_data=val_ds`
                    _slice(stmts, [_without_training_parts(k.value)], None, take)
        split_names: set[str] = set()
        for st in stmts:
            bounds = _slice_split(st)
            if bounds and isinstance(st, ast.Assign):  # `train_data, val_data = data[:n], data[n:]`: the statement
                take(st)  # and where `n` comes from
                split_names |= {n for t in st.targets for n in target_names(t)}
                _slice(stmts, [r for b in bounds for r in _reads_outside_len(b)], None, take)
            splits = [n for n in ast.walk(st) if isinstance(n, ast.Call) and called_name(n) in SPLIT_CALLS]
            if isinstance(st, _SIMPLE) and splits:
                take(st)
                if isinstance(st, ast.Assign):
                    split_names |= {n for t in st.targets for n in target_names(t)}
                # its sizes and seed (`[len(full) - n_val, n_val]`, `test_size=TEST_SIZE`), back to the module's
                # constants; not the data it is given (preprocessing before a split stays free)
                sizes: list[ast.AST] = [
                    r for c in splits
                    for a in [*(c.args[1:2] if called_name(c) == "random_split" else []),
                              *(k.value for k in c.keywords if k.arg not in ("stratify", "groups"))]
                    for r in _reads_outside_len(a)]
                reached: set[str] = set()
                _slice(stmts, sizes, None, take, reached)
                if scope is not tree:
                    _slice(list(tree.body), [ast.Name(id=n) for n in sorted(reached)], None, take)
        _group_folds(stmts, take)
        for st in stmts:  # the rows a cross-validating search is fitted on are the ones it scores
            if isinstance(st, _SIMPLE):
                for data in _cross_validated_data(stmts, st):
                    take(data)
        training_transforms = {n.id for x in stmts if isinstance(x, ast.Assign) and _makes_training_part(x)
                               for a in _transforms_given(x) for n in ast.walk(a) if isinstance(n, ast.Name)}
        for st in stmts:  # what picks the held-out part by its name: `xb, yb = get_batch("val")` in an inline
            # evaluation loop, `load_dataset("glue", "mrpc", split="validation")`, `eval_ds = ds["test"]`
            if isinstance(st, _SIMPLE) and _picks_held_out(st):
                take(_picking_keywords(st))
                # with the transform its inputs are read through, where the training part has its own (`val_ds =
                # ImageFolder(valdir, transform=eval_tf)`, `eval_tf = create_transform(..., crop_pct=args.crop_pct)`)
                given = [a for a in _transforms_given(st) if not {
                    n.id for n in ast.walk(a) if isinstance(n, ast.Name)} & training_transforms]
                if given:
                    reached_tf: set[str] = set()
                    _slice(stmts, given, None, take, reached_tf)
                    if scope is not tree:
                        _slice(list(tree.body), [ast.Name(id=n) for n in sorted(reached_tf)], None, take)
            elif isinstance(st, ast.If) and _names_a_part(st.test):  # `if split == "train": data = ... else: ...`
                for branch in (x for x in [*st.body, *st.orelse] if isinstance(x, _SIMPLE)):
                    take(branch)
        held_out = {n for n in split_names if held_out_name(n)}
        for st in stmts:  # the held-out part replaced by another part (`val_ds = train_ds`, `X_test = X_train[:50]`);
            # `X_test = scaler.transform(X_test)` reads what it replaces and is preprocessing, not a swap
            if not isinstance(st, ast.Assign) or st.value is None:
                continue
            bound = {n for t in st.targets for n in target_names(t)} & held_out
            read = {n.id for n in ast.walk(st.value) if isinstance(n, ast.Name)}
            if bound and not bound & read and read & (split_names - held_out):
                take(st)
        for st in stmts:
            if pat is None or not isinstance(st, _SIMPLE) or not _mentions(st, pat) or (
                    isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant)) or _only_selects_by(st, pat):
                continue  # a docstring measures nothing; `TuneConfig(metric="val_acc", ...)` reports nothing
            take(st)
            fed: list[ast.stmt] = []
            traced: set[str] = set()
            calls = _slice(stmts, list(_printed(st, pat)), pat, _recording(take, fed), traced, skip)
            calls |= _optimized(stmts, traced)
            _logging_setup(tree, [st, *fed], take)
            for loop in _feeding_loops(scope, fed, st, trainers):
                take(loop)
            for test in _selecting_tests(scope, fed):
                take(test)
            for fn in (d for d in local if d.name in calls and d.name not in skip and trains(d)):
                # a function that trains and evaluates (`val_loss = run_epoch(model, val_loader)`): what it returns
                # and what feeds that, outside the statements that train
                inner = scope_statements(fn)
                for ret in (r for r in inner if isinstance(r, ast.Return)):
                    if ret.value is not None:
                        take(ret)
                        _slice(inner, _measured_parts(ret.value), pat, take)
    return out


# keywords that name the metric a tuner, a checkpoint or early stopping selects by: the statement reports nothing
_SELECTING_KEYWORDS = frozenset({"metric", "monitor", "metric_for_best_model", "objective_metric"})


def _only_selects_by(st: ast.stmt, pat: re.Pattern[str]) -> bool:
    """Whether the metric's name appears in `st` only as what a selection is made by (Ray Tune's ``tune.Tuner(...,
    tune_config=tune.TuneConfig(metric="val_acc", mode="max", num_samples=20))``, Keras' ``EarlyStopping(
    monitor="val_loss")``): the statement names the metric without computing or reporting it, so neither it nor what
    it is given (the search space, the number of trials) is measuring code; the keyword itself is held as a setting
    of the measurement where its name says so (`metric=`)."""
    named = [n for n in ast.walk(st) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and pat.search(n.value)]
    selecting = {id(k.value) for n in ast.walk(st) if isinstance(n, ast.Call) for k in n.keywords
                 if k.arg in _SELECTING_KEYWORDS}
    return all(id(n) in selecting for n in named)


_GROUP_SPLITTERS = frozenset({"GroupKFold", "GroupShuffleSplit", "StratifiedGroupKFold", "LeaveOneGroupOut",
                               "LeavePGroupsOut"})


def _group_folds(stmts: list[ast.stmt], take: Callable[[ast.stmt], None]) -> None:
    """The groups a group splitter keeps together (`GroupKFold(5).split(X, y, groups)`, `groups=` of
    `GroupShuffleSplit`): which rows may share a fold decides what the held-out fold measures (a patient's visits in
    training and validation at once), so what gives `groups` its value is held."""
    splitters = {n for st in stmts if isinstance(st, ast.Assign) and isinstance(st.value, ast.Call)
                 and called_name(st.value) in _GROUP_SPLITTERS for t in st.targets for n in target_names(t)}
    for st in stmts:
        head = [st.iter] if isinstance(st, ast.For | ast.AsyncFor) else [st] if isinstance(st, _SIMPLE) else []
        for call in (n for h in head for n in ast.walk(h) if isinstance(n, ast.Call)):
            f = call.func
            if called_name(call) != "split" or not isinstance(f, ast.Attribute) or not (
                    (isinstance(f.value, ast.Call) and called_name(f.value) in _GROUP_SPLITTERS)
                    or (isinstance(f.value, ast.Name) and f.value.id in splitters)):
                continue
            groups: list[ast.AST] = [*call.args[2:3], *(k.value for k in call.keywords if k.arg == "groups")]
            if groups:
                _slice(stmts, groups, None, take)


def _logging_setup(tree: ast.Module, reporting: list[ast.stmt], take: Callable[[ast.stmt], None]) -> None:
    """What decides the metrics an engine logs, where the report reads them from it (pytorch-ignite's `metrics =
    evaluator.state.metrics`): the statement that builds the engine with its `metrics=` (``evaluator =
    create_supervised_evaluator(model, metrics=val_metrics)``) and what that is built from (``val_metrics =
    {"accuracy": Accuracy()}``), and each metric attached to it (``Accuracy().attach(evaluator, "accuracy")``)."""
    engines: set[str] = set()
    for st in reporting:
        for n in ast.walk(st):
            if isinstance(n, ast.Attribute) and _tokens(n.attr) & _LOGGED_WORDS:
                root: ast.AST = n.value
                while isinstance(root, ast.Attribute | ast.Subscript):
                    root = root.value
                if isinstance(root, ast.Name):
                    engines.add(root.id)
    if not engines:
        return
    for scope in [tree, *function_defs(tree)]:
        stmts = scope_statements(scope)
        for st in stmts:
            if isinstance(st, ast.Assign) and isinstance(st.value, ast.Call) and \
                    {n for t in st.targets for n in target_names(t)} & engines:
                given: list[ast.AST] = [k.value for k in st.value.keywords if k.arg in ("metrics", "metric")]
                if given:
                    take(st)
                    _slice(stmts, given, None, take)
            elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) and called_name(st.value) == "attach" \
                    and any(isinstance(a, ast.Name) and a.id in engines for a in st.value.args):
                take(st)


def _optimized(stmts: list[ast.stmt], reached: Collection[str]) -> set[str]:
    """The objectives a reported study optimizes: Optuna's `study.optimize(objective, n_trials=...)` of a `study`
    whose `best_value` is printed. The value is the best of what `objective` returns, so what it returns is
    measured like a function that trains and evaluates (its training stays free)."""
    return {a.id for st in stmts if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call)
            for call in [st.value] if called_name(call) == "optimize" and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name) and call.func.value.id in reached
            for a in call.args[:1] if isinstance(a, ast.Name)}


def _recording(take: Callable[[ast.stmt], None], into: list[ast.stmt]) -> Callable[[ast.stmt], None]:
    def go(st: ast.stmt) -> None:
        take(st)
        into.append(st)
    return go


_HELD_OUT_PARTS = frozenset({"val", "valid", "validation", "test", "dev", "eval", "evaluation", "holdout"})


def _names_a_part(test: ast.AST) -> bool:
    """Whether a condition compares with the name of a part of the data (`split == "train"`, `mode != 'val'`)."""
    return any(isinstance(n, ast.Compare) and any(
        isinstance(c, ast.Constant) and isinstance(c.value, str) and c.value.lower() in _PARTS
        for c in [n.left, *n.comparators]) for n in ast.walk(test))


_PARTS = _HELD_OUT_PARTS | {"train", "training"}


def _picks_held_out(st: ast.stmt) -> bool:
    """Whether a statement asks for the held-out part by its name: a call given the string (`get_batch("val")`,
    `split="test"`), a subscript by it (`ds["validation"]`), or a choice between the parts by a comparison with one's
    name (`d = train_data if split == "train" else val_data`)."""
    if any(isinstance(n, ast.IfExp) and _names_a_part(n.test) for n in ast.walk(st)):
        return True
    def held(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and \
            node.value.lower() in _HELD_OUT_PARTS
    # a held-out name given an entry under a held-out key (`test_ds = {"image": data["x_test"] / 255.0, ...}`,
    # `x_test, y_test = data["x_test"], data["y_test"]`)
    targets = [n for t in st.targets for n in target_names(t)] if isinstance(st, ast.Assign) else []
    held_target = any(held_out_name(n) for n in targets)
    for n in ast.walk(st):
        if isinstance(n, ast.Call) and any(held(a) for a in [*n.args, *(k.value for k in n.keywords)]):
            return True
        if isinstance(n, ast.Subscript) and (held(n.slice) or (held_target and isinstance(n.slice, ast.Constant)
                                                               and isinstance(n.slice.value, str)
                                                               and held_out_name(n.slice.value))):
            return True
    return False


def _picking_keywords(st: ast.stmt) -> ast.stmt:
    """Of an object built with the held-out part among its components (``trainer = Trainer(model=model, args=args,
    train_dataset=..., eval_dataset=enc["validation"], callbacks=[EarlyStoppingCallback(...)])``) the keywords that
    pick it, with every positional argument: the rest (its callbacks, collator, model) builds the training. A
    function call (``load_dataset("glue", "mrpc", split="validation")``) stays whole: its other arguments say which
    data it loads."""
    if not isinstance(st, ast.Assign | ast.Expr):
        return st
    value = st.value
    if not isinstance(value, ast.Call) or not called_name(value)[:1].isupper():
        return st
    picking = [k for k in value.keywords if _picks_held_out(ast.Expr(value=k.value))]
    if not picking or len(picking) == len(value.keywords):
        return st
    narrowed = copy.copy(st)
    narrowed.value = ast.Call(func=value.func, args=value.args, keywords=picking)
    return ast.copy_location(narrowed, st)


def _cross_validation_settings(st: ast.stmt) -> ast.stmt:
    """Of a statement that cross-validates (`search = GridSearchCV(pipe, {"C": [1, 10]}, scoring="f1", cv=cv,
    n_jobs=-1)`, `scores = cross_val_score(pipe, X, y, cv=5)`), what decides the measurement: its scoring, its
    folds and the data it is handed. The estimator, its grid and the number of jobs are the model being tuned."""
    if not any(isinstance(c, ast.Call) and called_name(c) in CV_SEARCHES | CV_FUNCTIONS for c in ast.walk(st)):
        return st
    narrowed = copy.deepcopy(st)
    for c in (c for c in ast.walk(narrowed) if isinstance(c, ast.Call)):
        if called_name(c) in CV_SEARCHES:
            c.args, c.keywords = [], [k for k in c.keywords if k.arg in _CV_MEASURING_KEYWORDS]
        elif called_name(c) in CV_FUNCTIONS:
            # the estimator's place is kept (narrowing twice must give the same statement)
            c.args = [ast.Constant(value="<estimator>"), *c.args[1:]] if c.args else []
            c.keywords = [k for k in c.keywords if k.arg not in _CV_TRAINING_KEYWORDS]
    return narrowed


def _cross_validated_data(stmts: list[ast.stmt], st: ast.stmt) -> Iterator[ast.stmt]:
    """The data a cross-validating search is fitted on in `st` (`search.fit(X, y)`, `GridSearchCV(...).fit(X, y,
    groups=g)`), as a statement of its own: the fit trains, so it is held for the rows it is given and nothing
    else (`search.fit(X[:200], y[:200])` scores 200 rows)."""
    searches = {t.id for x in stmts if isinstance(x, ast.Assign) and isinstance(x.value, ast.Call)
                and called_name(x.value) in CV_SEARCHES for t in x.targets if isinstance(t, ast.Name)}
    for c in (c for c in ast.walk(st) if isinstance(c, ast.Call) and called_name(c) == "fit"):
        owner = c.func.value if isinstance(c.func, ast.Attribute) else None
        if (isinstance(owner, ast.Name) and owner.id in searches) or (
                isinstance(owner, ast.Call) and called_name(owner) in CV_SEARCHES):
            given = ast.Expr(value=ast.Tuple(elts=[*c.args, *(k.value for k in c.keywords)], ctx=ast.Load()))
            yield ast.copy_location(given, st)


def _slice_split(st: ast.stmt) -> list[ast.expr]:
    """The slice bounds of a statement that cuts a held-out part out of the data by slicing (`train_data, val_data
    = data[:n], data[n:]`, `X_val = X[perm[800:]]`): each bound of a slice that a held-out name receives."""
    if not isinstance(st, ast.Assign) or len(st.targets) != 1:
        return []
    target, value = st.targets[0], st.value
    pairs = list(zip(target.elts, value.elts, strict=True)) if isinstance(target, ast.Tuple) and isinstance(
        value, ast.Tuple) and len(target.elts) == len(value.elts) else [(target, value)]
    out: list[ast.expr] = []
    for t, v in pairs:
        if isinstance(v, ast.Subscript) and any(held_out_name(n) for n in target_names(t)):
            out += [b for sl in ast.walk(v.slice) if isinstance(sl, ast.Slice)
                    for b in (sl.lower, sl.upper, sl.step) if b is not None]
        if isinstance(v, ast.Subscript) and isinstance(v.value, ast.Name) and held_out_data(v.value.id) and \
                isinstance(v.slice, ast.Name) and any(held_out_data(n) for n in target_names(t)):
            out.append(v.slice)  # `xv, yv = xv_all[idx], yv_all[idx]`: the index draws the measured sample
        if isinstance(v, ast.Subscript) and any(held_out_name(n) for n in target_names(t)) and isinstance(
                v.slice, ast.Compare | ast.BoolOp | ast.UnaryOp) and any(
                isinstance(c, ast.Compare) for c in ast.walk(v.slice)):
            out.append(v.slice)  # `test = df[df["date"] >= cutoff]`: a mask cuts the held-out rows
    return out


_MEASURE_WORDS = frozenset({"acc", "accuracy", "loss", "score", "metric", "metrics", "val", "valid", "f1", "auc", "err",
                            "error", "bpc", "ppl", "perplexity", "rmse", "mae", "mse", "r2", "top1", "top5", "map"})


def _measured_parts(value: ast.expr) -> list[ast.AST]:
    """What a training function's return hands back as a measurement: the whole value, or of a tuple (`return model,
    best_acc`) the parts named for one, never the model or the optimizer beside them."""
    if not isinstance(value, ast.Tuple):
        return [value]
    return [e for e in value.elts if not isinstance(e, ast.Name) or _tokens(e.id) & _MEASURE_WORDS]


def sets_a_literal(st: ast.stmt) -> bool:
    """`LR = 0.1`, `CONFIG = {"lr": 0.1, "epochs": 5}`, `LR = float(os.getenv("LR", "0.002"))`: a statement that
    assigns a literal value, or an environment variable's with a literal default."""
    value = st.value if isinstance(st, ast.Assign | ast.AnnAssign) else None
    if value is None:
        return False
    names = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
    if names and names <= {"os", "int", "float", "str", "bool"} and "os" in names:
        return True
    try:
        ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _reads_outside_len(node: ast.AST) -> list[ast.expr]:
    """What an expression reads, except inside `len(...)`: names, and a name read by a constant key as that
    subscript (``config["val_size"]``: the measurement reads that entry of the dict, not the rest of it)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len":
        return []
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Constant) \
            and isinstance(node.slice.value, str):
        return [node]
    if isinstance(node, ast.Name):
        return [node]
    return [r for child in ast.iter_child_nodes(node) for r in _reads_outside_len(child)]


# methods whose result is computed by the object they are called on with what they are given, not a reduction of it:
# `trainer.evaluate()` does not make the Trainer's construction measuring code
_NOT_REDUCTIONS = frozenset({"evaluate", "validate", "test", "predict", "score", "fit", "run", "eval", "forward"})


class _CutReceivers(ast.NodeTransformer):
    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Attribute) and node.func.attr in _NOT_REDUCTIONS:
            node.func = ast.Attribute(value=ast.Name(id="__receiver__", ctx=ast.Load()), attr=node.func.attr,
                                      ctx=ast.Load())
            # the data it is given stays (`model.evaluate(x_test, y_test)`); a model handed over does not
            # (`trainer.test(model, datamodule=dm)`)
            node.args = [a for a in node.args if not _is_model_name(a)]
            node.keywords = [k for k in node.keywords if not _is_model_name(k.value)]
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if _tokens(node.attr) & _LOGGED_WORDS and not _a_selection(node.value):
            node.value = ast.Name(id="__receiver__", ctx=ast.Load())  # what was logged into the object, not how
            # it was built
        return node


def _a_selection(node: ast.AST) -> bool:
    """Whether a value is the pick of the best of several runs (`best = results.get_best_result()`, Optuna's
    `study.best_trial`): what it logged is reported, and which run it is (`scope="all"`, `mode=`) is decided where
    it is picked, so that is followed."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else \
        called_name(node) if isinstance(node, ast.Call) else ""
    return "best" in _tokens(name)


# attributes that hold what a run logged (Lightning's `trainer.callback_metrics`, `trainer.logged_metrics`): read
# after training, they do not make the Trainer's construction (`max_epochs=`) measuring code
_LOGGED_WORDS = frozenset({"metrics", "logged"})


def _guard_heads(expr: ast.AST, evaluations: Collection[str] = ()) -> tuple[set[str], set[str]]:
    """`_heads` for the edit guard: a call of `evaluate` / `test` / `predict` on an object reads neither the object
    nor a model it is given (the Trainer, the model built with its settings), only the data. An object called for
    the value whose name says it scores (`loss_fn(model(x), y)`, `criterion(...)`, `val_metric(...)`) is read as a
    name too: the statement that builds it (`loss_fn = nn.CrossEntropyLoss()`) decides the measured loss. So is
    what the project's own evaluation function (`evaluations`, held whole) is handed besides the model and the
    held-out part (held where it is split): `evaluate(model, val_loader, coco_gt, device)` scores against the
    ground truth `coco_gt = COCO(".../instances_val2017.json")` loads."""
    calls, names = _heads(_CutReceivers().visit(copy.deepcopy(expr)))
    given = {a.id for c in ast.walk(expr) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
             and c.func.id in evaluations for a in [*c.args, *(k.value for k in c.keywords)]
             if isinstance(a, ast.Name) and not _is_model_name(a) and not held_out_data(a.id)}
    return calls, names | given | {c for c in calls if _tokens(c) & _SCORING_OBJECT_WORDS}


_SCORING_OBJECT_WORDS = frozenset({"loss", "criterion", "crit", "metric", "metrics", "scorer"})


def _slice(stmts: list[ast.stmt], exprs: list[ast.AST], pat: re.Pattern[str] | None,
           take: Callable[[ast.stmt], None], reached: set[str] | None = None,
           evaluations: Collection[str] = ()) -> set[str]:
    """Take the statements in `stmts` that give the names `exprs` read their values, `_SLICE_DEPTH` steps back; the
    names of the functions called on the way. `reached` collects every name read on the way; what a call of one of
    `evaluations` (the project's evaluation functions) is handed is read too (`_guard_heads`)."""
    names: set[str] = set()
    calls: set[str] = set()
    for expr in exprs:
        c, n = _guard_heads(expr, evaluations)
        calls |= c
        names |= n
    keys = _keys_read(exprs)
    done: set[str] = set()
    for step in range(_SLICE_DEPTH):
        if reached is not None:
            reached |= names
        nxt: set[str] = set()
        read: list[ast.AST] = []
        for name in names - done:
            done.add(name)
            for whole in stmts:
                if isinstance(whole, _SIMPLE) and any(True for _ in feeding([whole], name)):
                    if pat is not None and sets_a_literal(whole):
                        continue  # a setting (`LR = 0.1`, `CONFIG = {...}`) the metric depends on is what the
                        # search moves, not how the metric is computed
                    if step >= _TRACE_DEPTH and _makes_training_part(whole):
                        continue  # far from the metric, a statement that builds the training part as well
                        # (`train_df[c], test_df[c] = target_encode(...)`) is feature code both sides share
                    # of a cross-validation the estimator it is handed is not followed: that is the model tuned
                    fed = _cross_validation_settings(_narrowed(whole, name, keys.get(name)))
                    if trains(fed):  # what a training call is given (`bst = xgb.train(params, dtrain)`) trains;
                        # what picks from its result (`tuner.fit().get_best_result(scope="last")`) measures
                        picked = _past_training(fed)
                        if picked is None:
                            continue
                        fed = picked
                    take(fed)
                    for expr in (e for v in feeding([fed], name) for e in
                                 (_entries_named(v, pat) if pat is not None else [v])):
                        c, n = _guard_heads(expr, evaluations)
                        calls |= c
                        nxt |= n
                        read.append(expr)
        keys = _keys_read(read)
        names = nxt
    if reached is not None:
        reached |= names
    return calls


_LOOPS = (ast.For, ast.AsyncFor, ast.While)

# the words of a name for the training part (`train_df`, `X_tr`, a fold's `trn_idx`)
TRAINING_PART = frozenset({"train", "training", "tr", "trn"})


def _makes_training_part(st: ast.stmt) -> bool:
    """Whether a statement assigns a name of the training part (`train_df`, `X_tr`, `train_ds`)."""
    targets = st.targets if isinstance(st, ast.Assign) else [st.target] if isinstance(
        st, ast.AugAssign | ast.AnnAssign) else []
    return any(name_words(n) & TRAINING_PART for t in targets for n in target_names(t))


def _keys_read(exprs: list[ast.AST]) -> dict[str, set[str] | None]:
    """{name: the constant keys it is read by (``config["val_size"]``), or None where it is also read whole}."""
    out: dict[str, set[str] | None] = {}
    keyed: set[int] = set()
    for expr in exprs:
        for n in ast.walk(expr):
            if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and isinstance(n.slice, ast.Constant) \
                    and isinstance(n.slice.value, str):
                keyed.add(id(n.value))
                got = out.setdefault(n.value.id, set())
                if got is not None:
                    got.add(n.slice.value)
    for expr in exprs:
        for n in ast.walk(expr):
            if isinstance(n, ast.Name) and id(n) not in keyed:
                out[n.id] = None
    return out


def _narrowed(st: ast.stmt, name: str, keys: set[str] | None) -> ast.stmt:
    """The part of `st` that gives `name` the value the measurement reads: of ``config = {...}`` read by key only
    those entries, of ``a, b = x, y`` only `name`'s pair, of a list of (data, label) pairs (``evals = [(dtrain,
    "train"), (dvalid, "valid")]``) only the parts that are not training data; else `st` itself."""
    if not isinstance(st, ast.Assign) or len(st.targets) != 1:
        return st
    target, value = st.targets[0], st.value
    if isinstance(target, ast.Tuple | ast.List) and isinstance(value, ast.Tuple | ast.List) \
            and len(target.elts) == len(value.elts) and len(target.elts) > 1:
        pairs = [(t, v) for t, v in zip(target.elts, value.elts, strict=True) if name in target_names(t)]
        if not pairs:
            return st
        target = ast.Tuple(elts=[t for t, _ in pairs], ctx=ast.Store())
        value = ast.Tuple(elts=[v for _, v in pairs], ctx=ast.Load())
    elif isinstance(target, ast.Name) and isinstance(value, ast.Dict) and keys is not None:
        value = ast.Dict(keys=[k for k, _ in _kept(value, keys)], values=[v for _, v in _kept(value, keys)])
    elif isinstance(target, ast.Name) and isinstance(value, ast.List | ast.Tuple):
        value = _without_training_parts(value)
    else:
        return st
    return ast.copy_location(ast.Assign(targets=[target], value=value, lineno=st.lineno), st)


class _CutTraining(ast.NodeTransformer):
    def visit_Call(self, node: ast.Call) -> ast.AST:
        if _a_training_call(node):
            return ast.Name(id="__trained__", ctx=ast.Load())
        self.generic_visit(node)
        return node


def _past_training(st: ast.stmt) -> ast.stmt | None:
    """Of an assignment that trains and then picks from what training returned (Ray Tune's ``best =
    tuner.fit().get_best_result(scope="last")``), the pick alone, the training call standing in as a name: how the
    reported run is chosen is measurement, what training is given is not. None where nothing is picked (``h =
    model.fit(x, y, epochs=5)``) or the rest trains too."""
    if not isinstance(st, ast.Assign):
        return None
    cut = _CutTraining().visit(copy.deepcopy(st))
    if not isinstance(cut, ast.Assign) or isinstance(cut.value, ast.Name) or trains(cut):
        return None
    return cut


def _kept(d: ast.Dict, keys: set[str]) -> list[tuple[ast.expr | None, ast.expr]]:
    return [(k, v) for k, v in zip(d.keys, d.values, strict=True)
            if not (isinstance(k, ast.Constant) and isinstance(k.value, str)) or k.value in keys]


def _trainish(node: ast.AST) -> bool:
    """Whether an entry names the training part: a `"train"` label or a name of the training data (`dtrain`,
    `X_train`)."""
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.lower() in ("train", "training"):
            return True
        words = {w.lower() for w in re.split(r"_+|\d+", n.id) if w} if isinstance(n, ast.Name) else set()
        if words & {"train", "tr", "training", "dtrain"} or (isinstance(n, ast.Name) and
                                                             n.id.lower().startswith("train")):
            return True
    return False


def _without_training_parts(value: ast.expr) -> ast.expr:
    """A list or tuple of datasets without its training entries (what the measurement is given is the rest); the
    value itself where every entry trains or it is no display."""
    if isinstance(value, ast.List | ast.Tuple):
        kept = [e for e in value.elts if not _trainish(e)]
        if kept and len(kept) < len(value.elts):
            return type(value)(elts=kept, ctx=ast.Load())
    return value


def _a_display(value: ast.expr, stmts: list[ast.stmt]) -> bool:
    """A list / tuple display, or a name these statements bind to one (`evals = [(dtrain, "train"), ...]`)."""
    if isinstance(value, ast.List | ast.Tuple):
        return True
    return isinstance(value, ast.Name) and any(
        isinstance(v, ast.List | ast.Tuple) for v in feeding(stmts, value.id))


def _enclosing_loops(scope: ast.AST) -> dict[int, list[ast.stmt]]:
    """{id of a statement: the loops of `scope` around it, outermost first} (nested defs excluded)."""
    out: dict[int, list[ast.stmt]] = {}

    def walk(body: list[ast.stmt], loops: list[ast.stmt]) -> None:
        for st in body:
            out[id(st)] = loops
            if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            inner = [*loops, st] if isinstance(st, _LOOPS) else loops
            for attr in ("body", "orelse", "finalbody"):
                walk(getattr(st, attr, []) or [], inner)
            for h in getattr(st, "handlers", []) or []:
                walk(h.body, inner)
            if isinstance(st, ast.Match):
                for case in st.cases:
                    walk(case.body, inner)

    walk(list(getattr(scope, "body", [])), [])
    return out


def _feeding_loops(scope: ast.AST, fed: list[ast.stmt], printing: ast.stmt,
                   trainers: Collection[str]) -> list[ast.stmt]:
    """Skeletons (`_exits`) of the `for` loops around statements that feed the printed value with the loop's items
    (``correct += (model(xb).argmax(1) == yb).sum()`` in ``for xb, yb in val_loader``), but not around the statement
    that prints it, that train nothing (an epoch loop trains, and its length is a training setting)."""
    around = _enclosing_loops(scope)
    outside = {id(x) for x in around.get(id(printing), [])}
    out: list[ast.stmt] = []
    done: set[int] = set()
    for st in fed:
        reads = {n.id for n in ast.walk(st) if isinstance(n, ast.Name)}
        for loop in around.get(id(st), []):
            if id(loop) in outside or id(loop) in done or not isinstance(loop, ast.For | ast.AsyncFor) \
                    or not _item_names(loop) & reads:
                continue
            done.add(id(loop))
            if trains(loop) or any(isinstance(n, ast.Call) and called_name(n) in trainers for n in ast.walk(loop)):
                continue
            out.append(_exits(loop))
    return out


# the keywords that hand a dataset the transform its examples are read through
TRANSFORM_KEYWORDS = frozenset({"transform", "transforms", "preprocess", "preprocessing", "image_transform",
                                "augment"})


def _transforms_given(st: ast.stmt) -> list[ast.AST]:
    """The transforms a statement builds a dataset with (`transform=eval_tf`)."""
    return [k.value for n in ast.walk(st) if isinstance(n, ast.Call) for k in n.keywords
            if k.arg in TRANSFORM_KEYWORDS]


def _selecting_tests(scope: ast.AST, fed: list[ast.stmt]) -> list[ast.stmt]:
    """The conditions that decide which measured value is reported: the test of an `if` around a statement that feeds
    the printed value, where the test reads a value the measurement computes (`if val_acc > best_val_acc:
    test_acc = tmp_test_acc` reports the test accuracy of the epoch the validation picks; `if tmp_test_acc >
    test_acc:` would pick by the test set itself). Not one that reads nothing measured (`if epoch % every == 0:`).
    Each is held as an expression statement at the `if`'s line."""
    assigned = {n for st in fed for t in (st.targets if isinstance(st, ast.Assign) else [st.target] if isinstance(
        st, ast.AugAssign | ast.AnnAssign) else []) for n in target_names(t)}
    around: dict[int, list[ast.If]] = {}
    for node in ast.walk(scope):
        if isinstance(node, ast.If):
            for inner in (x for part in (node.body, node.orelse) for y in part for x in ast.walk(y)):
                if isinstance(inner, ast.stmt):
                    around.setdefault(id(inner), []).append(node)
    out: list[ast.stmt] = []
    done: set[int] = set()
    for st in fed:
        for test in around.get(id(st), []):
            if id(test) not in done and {n.id for n in ast.walk(test.test) if isinstance(n, ast.Name)} & assigned:
                done.add(id(test))
                out.append(ast.copy_location(ast.Expr(value=test.test), test))
    return out


def _item_names(loop: ast.For | ast.AsyncFor) -> set[str]:
    """The loop's target and the names its body computes from it (``outputs = model(**batch)``, ``predictions =
    outputs.logits.argmax(-1)``): what differs from one item to the next."""
    out = target_names(loop.target)
    body = scope_statements(loop)
    grew = True
    while grew:
        grew = False
        for st in body:
            if isinstance(st, ast.Assign | ast.AugAssign | ast.AnnAssign) and st.value is not None and \
                    {n.id for n in ast.walk(st.value) if isinstance(n, ast.Name)} & out:
                targets = st.targets if isinstance(st, ast.Assign) else [st.target]
                new = {n for t in targets for n in target_names(t)} - out
                if new:
                    out |= new
                    grew = True
    return out


def _exits(loop: ast.stmt) -> ast.stmt:
    """A loop reduced to what decides which items it measures: its header and its exits (`break`, `continue`,
    `return`, under the conditions that guard them); loops nested in it keep their own exits."""
    def keep(body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for s in body:
            if isinstance(s, ast.Break | ast.Continue | ast.Return):
                out.append(s)
            elif isinstance(s, ast.If):
                b, o = keep(s.body), keep(s.orelse)
                if b or o:
                    out.append(ast.If(test=s.test, body=b or [ast.Pass()], orelse=o))
            elif isinstance(s, ast.With | ast.AsyncWith):
                out += keep(s.body)
            elif isinstance(s, ast.Try):
                out += keep(s.body) + [x for h in s.handlers for x in keep(h.body)] + keep(s.orelse) + \
                    keep(s.finalbody)
        return out

    skeleton = copy.copy(loop)
    skeleton.body = keep(loop.body) or [ast.Pass()]  # type: ignore[attr-defined]
    skeleton.orelse = []  # type: ignore[attr-defined]
    return skeleton


def _held_out_side(fn: ast.AST, stmts: list[ast.stmt], take: Callable[[ast.stmt], None]) -> None:
    """In a data function that builds both parts, the held-out side: each statement that assigns a held-out name
    (narrowed to that name) and what feeds it, and of each return the parts that read a held-out name."""
    for st in stmts:
        if isinstance(st, ast.Assign | ast.AnnAssign) and st.value is not None:
            targets = st.targets if isinstance(st, ast.Assign) else [st.target]
            held = sorted({n for t in targets for n in target_names(t) if held_out_name(n)})
            for name in held:
                part = _narrowed(st, name, None) if isinstance(st, ast.Assign) else st
                take(part)
                _slice(stmts, [v for v in feeding([part], name)], None, take)
        elif isinstance(st, ast.Return) and st.value is not None:
            parts = st.value.elts if isinstance(st.value, ast.Tuple) else [st.value]
            held_parts = [e for e in parts if any(isinstance(n, ast.Name) and held_out_name(n.id)
                                                  for n in ast.walk(e))]
            take(ast.copy_location(ast.Return(value=ast.Tuple(elts=held_parts, ctx=ast.Load())), st))
