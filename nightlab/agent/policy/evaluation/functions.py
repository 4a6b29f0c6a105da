"""The project's functions that measure (`evaluation_functions`): those the printed metric is traced back to and those
whose name says they evaluate or load data, unless they train; the helpers they call, and the lines a transform
must not edit (`fixed_lines`)."""


from __future__ import annotations

import ast
import re
from collections.abc import Collection, Mapping

from nightlab.agent.policy.evaluation.names import (
    _is_model_name,
    _tokens,
    held_out_data,
    held_out_name,
    name_is_fixed,
    says_evaluation,
)
from nightlab.agent.policy.evaluation.printed import _entries_named, _mentions, _metric_pattern, _printed
from nightlab.agent.policy.evaluation.syntax import called_name, feeding, function_defs, parse_python, scope_statements

# calls that split data into what trains and what is measured: a seed handed to one decides the split, not training
SPLIT_CALLS = frozenset({
    "train_test_split", "random_split", "KFold", "StratifiedKFold", "GroupKFold", "RepeatedKFold", "ShuffleSplit",
    "StratifiedShuffleSplit", "GroupShuffleSplit", "TimeSeriesSplit", "LeaveOneOut", "PredefinedSplit",
    "RandomNodeSplit", "RandomLinkSplit",  # PyG's transforms that draw a graph's train / val / test masks
})

_TRAINING_CALLS = frozenset({"backward", "step", "zero_grad", "fit", "partial_fit", "minimize", "apply_gradients"})

# calls that fit a model to the data they are handed (scikit-learn, Keras, XGBoost / LightGBM's own `train`)
FITTING_CALLS = frozenset({"fit", "partial_fit", "fit_transform", "train_on_batch", "fit_generator"})

# searches that cross-validate an estimator over a grid, and functions that cross-validate the estimator they are
# handed on the data after it: how they score and split (`scoring=`, `cv=`, `refit=`) and the data they are handed
# are the measurement; the estimator, the grid and how many candidates are tried are what the search tunes
CV_SEARCHES = frozenset({"GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV",
                         "BayesSearchCV"})

CV_FUNCTIONS = frozenset({"cross_val_score", "cross_validate", "cross_val_predict", "learning_curve",
                          "validation_curve", "permutation_test_score"})

_CV_MEASURING_KEYWORDS = frozenset({"scoring", "cv", "refit", "error_score", "return_train_score", "groups"})

_CV_TRAINING_KEYWORDS = frozenset({"estimator", "n_jobs", "verbose", "pre_dispatch", "fit_params", "params"})

_TRACE_DEPTH = 2

# how many assignments back the statements that measure are followed from the printed value: accelerate's print ←
# `metric.compute()` ← `metric.add_batch(predictions=...)` ← `predictions = logits.argmax(-1)` takes three
_SLICE_DEPTH = 4


def _model_methods(tree: ast.AST) -> set[int]:
    """ids of the methods of model classes (a class defining `forward`, or deriving from a `Module`): their names
    (`score`, `split_heads`) say what the model computes, not how it is measured."""
    out: set[int] = set()
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        methods = [d for d in cls.body if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)]
        bases = {(b.attr if isinstance(b, ast.Attribute) else b.id if isinstance(b, ast.Name) else "")
                 for b in cls.bases}
        if any(d.name == "forward" for d in methods) or bases & {"Module", "LightningModule"}:
            out.update(id(d) for d in methods if not says_evaluation(d.name))
    return out


def _a_training_call(node: ast.Call) -> bool:
    f = node.func
    return (isinstance(f, ast.Attribute) and (f.attr in _TRAINING_CALLS or f.attr in _GRADIENT_CALLS or (
        f.attr == "train" and len(node.args) >= 2))) or (isinstance(f, ast.Name) and f.id == "value_and_grad")


def trains(fn: ast.AST) -> bool:
    """Whether code calls what only training calls: `.backward()`, an optimizer's `.step()` / `.zero_grad()`,
    `.fit()`, … (on an attribute: a bare `step(…)` is the project's own), takes gradients (`jax.value_and_grad(
    loss_fn)`, `jax.grad`, `tape.gradient`: a Flax `apply_model` that returns grads is a training step), or trains a
    booster (`xgb.train(params, dtrain, …)`, `lgb.train(params, train_set)`: given the data, unlike a module's
    `model.train()` mode switch, which an evaluation function calls on its way out)."""
    return any(isinstance(node, ast.Call) and _a_training_call(node) for node in ast.walk(fn))


_GRADIENT_CALLS = frozenset({"grad", "value_and_grad", "gradient"})

# a metric function imported by name (scikit-learn's `f1_score`, `mean_squared_error`, `log_loss`; torchmetrics'
# functional `accuracy`): what it is handed is what it scores
_LIBRARY_METRIC = re.compile(r"[a-z0-9_]+_(score|error|loss|accuracy|auc)|accuracy|auroc|f1|precision|recall|auc|"
                             r"matthews_corrcoef|cohen_kappa|perplexity")

_LIBRARY_EVALUATIONS = frozenset({"evaluate_policy"})

# builtins whose value is made of what they are given: `float(np.mean(list(scores.values())))` reads `scores`
_PASSING_BUILTINS = frozenset({"sum", "float", "int", "round", "abs", "min", "max", "len", "list", "tuple", "sorted",
                               "dict", "set", "iter", "next", "zip", "enumerate", "reversed", "map", "filter"})


def a_library_metric(name: str) -> bool:
    """A metric function of a library by its name (`roc_auc_score`, `f1_score`, `accuracy`)."""
    return bool(_LIBRARY_METRIC.fullmatch(name))


# methods that draw at random from what they are given, and the keywords that hand a draw its random source: which
# rows an evaluation sample takes is the generator's doing (`g = torch.Generator().manual_seed(1234)`)
_RANDOM_DRAWS = frozenset({"choice", "permutation", "shuffle", "sample", "integers", "randint"})

_RANDOM_SOURCES = frozenset({"generator", "random_state", "rng", "seed"})

# tf.data's / HF datasets' methods that return the dataset they are called on, cut, shuffled or batched
_DATASET_METHODS = frozenset({"take", "skip", "shard", "select", "shuffle", "batch", "prefetch", "cache",
                              "padded_batch", "unbatch"})


def _heads(expr: ast.AST | None, own: Collection[str] = ()) -> tuple[set[str], set[str]]:
    """(functions called at the head of `expr`, names it reads there): through operators, subscripts, method chains,
    f-strings and containers, never into a call's arguments (what a call is given is not what computes the value),
    except for calls of library functions and methods on a value (``torch.cat(losses).mean()`` reads `losses`).

    A method of the project's own (`own`: ``model.accuracy(xv, yv)``, ``trainer.evaluate()``) computes the value
    itself: neither the object it is called on (the model: what builds it measures nothing) nor what it is given
    (the data) is followed. Nor is the object of a library method given variables (``model.fit(lr)``, a
    scikit-learn ``clf.score(X, y)``): the receiver is the model, not a value; a reduction given only constants
    (``losses.mean(0)``, ``t.item()``) reads its receiver."""
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
                if f.attr in own:
                    continue
                given = [*n.args, *(k.value for k in n.keywords)]
                if isinstance(f.value, ast.Call) or all(isinstance(a, ast.Constant) for a in given) or \
                        f.attr in _RANDOM_DRAWS or f.attr in _DATASET_METHODS:  # `rng.choice(n, 200)`: the
                    # generator decides what is drawn; `ds.take(n_val)`: the dataset is the value, cut
                    stack.append(f.value)
                if isinstance(f.value, ast.Name | ast.Attribute):
                    # a library function (torch.cat(xs), np.mean(xs), sum(xs)): its arguments carry the value,
                    # and the random source it is handed decides a draw (`torch.randperm(n, generator=g)`)
                    stack.extend(a for a in n.args)
                    stack.extend(k.value for k in n.keywords if k.arg in _RANDOM_SOURCES)
            if isinstance(f, ast.Name) and f.id in _PASSING_BUILTINS:
                stack.extend(n.args)
            elif isinstance(f, ast.Name) and f.id not in own and f.id in _LIBRARY_EVALUATIONS:
                # SB3's `evaluate_policy(model, eval_env, n_eval_episodes=10)`: the environment it is handed is
                # what is measured (not the model: what builds it trains)
                stack.extend(a for a in n.args if not _is_model_name(a) and not (
                    isinstance(a, ast.Name) and _tokens(a.id) & {"agent", "policy", "algo"}))
            elif isinstance(f, ast.Name) and f.id not in own and a_library_metric(f.id):
                # `f1_score(y_te, preds)`: the predictions it scores compute the value; the held-out data it is
                # handed is held where it is split (a scaler's `X_te = sc.transform(X_te)` stays free)
                for a in n.args:
                    c, got = _heads(a, own)
                    calls |= c
                    names |= {x for x in got if not held_out_data(x)}
        elif isinstance(n, ast.Name):
            names.add(n.id)
        elif isinstance(n, ast.Attribute | ast.Subscript | ast.Starred | ast.FormattedValue):
            stack.append(n.value)
            if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and held_out_data(n.value.id) and \
                    not isinstance(n.slice, ast.Slice | ast.Constant):
                stack.append(n.slice)  # `xv_all[idx]`: which held-out rows are measured is the index's doing
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


def evaluation_functions(files: Mapping[str, str], metric: str) -> set[str]:
    """Names of the project's functions that measure the model (see the module docstring), over all `files`."""
    trees, defs, training = project_functions(files)
    model = set().union(*(_model_methods(t) for t in trees.values())) if trees else set()
    reaching = reaching_training(defs, training)
    named = {name for name, ds in defs.items() if name_is_fixed(name) and name not in training
             and not all(id(d) in model for d in ds)
             and not (_tokens(name) & _TRAINING_WORDS and name in reaching)}
    return named | _traced(trees, defs, training, metric)


# a function named for training as well as evaluation (`train_and_evaluate`) that trains through what it calls
# (`train_epoch` → `state.apply_gradients`) is the training loop, not fixed by the evaluation word in its name
_TRAINING_WORDS = frozenset({"train", "training", "fit"})


def measuring_helpers(files: Mapping[str, str], functions: set[str]) -> set[str]:
    """The project's functions that evaluation functions call by name, transitively (`accuracy(output, target)`
    inside `validate`, in a metrics.py of its own), training functions and model methods excluded: editing one
    changes the metric as surely as editing `validate`. Called through a project module too (`utils.accuracy(...)`),
    and a function that returns the closure an evaluation function is given and calls (`criterion =
    build_criterion()`, then `validate(model, criterion, batches)`). Only the edit guard holds them; the search still
    tunes what they read where training shares them (`get_batch`)."""
    trees, defs, training = project_functions(files)
    model = set().union(*(_model_methods(t) for t in trees.values())) if trees else set()
    modules = _module_functions(trees)
    out: set[str] = set()
    todo = [d for name in functions for d in defs.get(name, [])]

    def add(name: str) -> None:
        if name in defs and name not in functions and name not in out and name not in training and \
                not any(id(d) in model for d in defs[name]):
            out.add(name)
            todo.extend(defs[name])

    while todo:
        fn = todo.pop()
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                add(node.func.id)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.attr in modules.get(node.func.value.id, ()):
                add(node.func.attr)  # `utils.accuracy(output, target)`: a function of the project's utils.py
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for builder in _callable_builders(trees, fn):
                add(builder)
    return out


def _module_functions(trees: Mapping[str, ast.Module]) -> dict[str, set[str]]:
    """{a project module's name (the file's stem, `utils` for src/pkg/utils.py): its top-level functions}."""
    out: dict[str, set[str]] = {}
    for path, tree in trees.items():
        stem = path.rsplit("/", 1)[-1].removesuffix(".py")
        out.setdefault(stem, set()).update(d.name for d in tree.body if isinstance(d, ast.FunctionDef |
                                                                                   ast.AsyncFunctionDef))
    return out


def _callable_builders(trees: Mapping[str, ast.Module], fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Functions that build what `fn` is given and calls (`validate(model, criterion, batches)` calling
    `criterion(model, sample)`, given `criterion = build_criterion()`): the closure they return computes the measured
    value as surely as `fn` does. Found at each call of `fn`, in the scope of the call."""
    params = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]
    called = {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    wanted = {i: p for i, p in enumerate(params) if p in called}
    if not wanted:
        return set()
    out: set[str] = set()
    for tree in trees.values():
        for scope in [tree, *function_defs(tree)]:
            stmts = scope_statements(scope)
            for call in (n for st in stmts if not isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef |
                                                                ast.ClassDef)
                         for n in ast.walk(st) if isinstance(n, ast.Call) and called_name(n) == fn.name):
                shift = 1 if isinstance(call.func, ast.Attribute) and params[:1] == ["self"] else 0
                given = [a for i, a in enumerate(call.args, shift) if i in wanted] + \
                    [k.value for k in call.keywords if k.arg in wanted.values()]
                for name in (g.id for g in given if isinstance(g, ast.Name)):
                    out |= {called_name(v) for v in feeding(stmts, name) if isinstance(v, ast.Call)}
    builders = {d.name for tree in trees.values() for d in function_defs(tree) if _returns_a_closure(d)}
    return out & builders


def _returns_a_closure(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether a function returns a function it defines (`def cross_entropy(...): ...; return cross_entropy`, a
    lambda): a builder of a loss or a metric, not of a model (a model is called too, and its builder stays free)."""
    inner = {d.name for d in function_defs(fn) if d is not fn}
    return any(isinstance(r, ast.Return) and (isinstance(r.value, ast.Lambda) or (
        isinstance(r.value, ast.Name) and r.value.id in inner)) for r in ast.walk(fn))


def builds_held_out(fn: ast.AST) -> bool:
    """Whether a function reads or assigns a held-out name (`valdir`, `val_tf`, `dataset_test`): it builds that side
    by name, so the rest of it (the training side) can be told apart."""
    return any((isinstance(n, ast.Name) and held_out_name(n.id)) or (isinstance(n, ast.arg) and
                                                                       held_out_name(n.arg)) for n in ast.walk(fn))


def reaching_training(defs: Mapping[str, list[ast.AST]], training: set[str]) -> set[str]:
    """Names of functions that train, or call (by name, transitively) one that does: `run_trial(lr)` that trains a
    model and returns its validation score is given training settings, not measurement settings."""
    out = set(training)
    grew = True
    while grew:
        grew = False
        for name, ds in defs.items():
            if name not in out and any(isinstance(n, ast.Call) and called_name(n) in out
                                       for d in ds for n in ast.walk(d)):
                out.add(name)
                grew = True
    return out


def metric_functions(files: Mapping[str, str], metric: str) -> set[str]:
    """Names of the project's functions the printed metric is traced back to (the first rule of the module
    docstring; names alone count for nothing here), training functions excluded."""
    return _traced(*project_functions(files), metric)


def project_functions(files: Mapping[str, str]) -> tuple[dict[str, ast.Module], dict[str, list[ast.AST]], set[str]]:
    """(parsed files, function definitions by name, names of functions that train)."""
    trees = {p: t for p, text in files.items() if p.endswith(".py") and (t := parse_python(text)) is not None}
    defs: dict[str, list[ast.AST]] = {}
    for tree in trees.values():
        for d in function_defs(tree):
            defs.setdefault(d.name, []).append(d)
    training = {name for name, ds in defs.items() if any(trains(d) for d in ds)}
    return trees, defs, training


def _traced(trees: Mapping[str, ast.Module], defs: Mapping[str, list[ast.AST]], training: set[str],
            metric: str) -> set[str]:
    out: set[str] = set()
    pat = _metric_pattern(metric)
    if pat is None:
        return out
    for tree in trees.values():
        for scope in [tree, *function_defs(tree)]:
            stmts = scope_statements(scope)
            for st in stmts:
                if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) or not _mentions(st, pat):
                    continue
                calls, names = set(), set()
                for expr in _printed(st, pat):
                    c, n = _heads(expr, defs)
                    calls |= c
                    names |= n
                seen: set[str] = set()
                for _ in range(_TRACE_DEPTH):
                    nxt: set[str] = set()
                    for name in names - seen:
                        seen.add(name)
                        for expr in (e for fed in feeding(stmts, name) for e in _entries_named(fed, pat)):
                            c, n = _heads(expr, defs)
                            calls |= c
                            nxt |= n
                    names = nxt
                out |= {c for c in calls if c in defs and c not in training}
    return out


def fixed_lines(text: str, functions: Collection[str] = ()) -> set[int]:
    """1-based lines a transform must not edit: the defs (decorators and body) of evaluation functions — those in
    `functions` (see `evaluation_functions`) and those whose own name says so — that do not train."""
    tree = parse_python(text)
    if tree is None:
        return set()
    out: set[int] = set()
    model = _model_methods(tree)
    for d in function_defs(tree):
        if (d.name in functions or (name_is_fixed(d.name) and id(d) not in model)) and not trains(d):
            start = min([d.lineno, *(x.lineno for x in d.decorator_list)])
            out.update(range(start, (d.end_lineno or d.lineno) + 1))
    return out
