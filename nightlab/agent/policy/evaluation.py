"""Which code measures the model rather than trains it: the part a policy must never edit or tune.

Changing how the metric is computed (the evaluation batch, the split, a clipping epsilon in the score) would move
the number without making the model any better, so the builtin policy leaves that code alone. It is found from
what the code does, never from how it is laid out or commented:

* functions that compute the printed metric: the statements that print (or log, or write) the metric's name, the
  names they print, and the statements that assign or accumulate those names (two steps back), lead to the
  project's own functions called there (``val_loss = evaluate(model, loader)``, ``losses = estimate_loss()``,
  ``scores.append(logloss_terms(logits, y))``). Where the metric names one entry of a logged dict or a checkpoint
  (``{"val/loss": losses["val"], "lr": lr}``) only that entry is followed, and a method called on the model
  (``model.accuracy(xv, yv)``) is followed, not the factory that built the model (`_heads`);
* functions whose name says they evaluate, test, score or load / split the data (``evaluate``, ``test_accuracy``,
  ``load_data``);

and in both cases only a function that does not train: one that calls ``.backward()``, an optimizer's
``.step()`` / ``.zero_grad()`` or ``.fit()``, takes gradients (``jax.value_and_grad``) or trains a booster
(``xgb.train(params, dtrain)``) is training code whatever its name, and so is one named for training as well
(``train_and_evaluate``) that trains through the functions it calls.
A model-building or data-batching function reached on the way (``get_batch`` used by both) is not an evaluation
function: only the head call of each expression counts, not the arguments it is given.

What an edit may not change of all this is decided in `edit_guard.py`, which compares a file before and after
against what is found here.
"""

from __future__ import annotations

import ast
import copy
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field

__all__ = [
    "CV_FUNCTIONS",
    "CV_SEARCHES",
    "SPLIT_CALLS",
    "builds_held_out",
    "called_name",
    "evaluation_functions",
    "feeding",
    "fixed_lines",
    "function_defs",
    "held_out_data",
    "held_out_name",
    "measuring_helpers",
    "measuring_statements",
    "metric_functions",
    "name_is_fixed",
    "name_words",
    "names_the_data",
    "names_the_measurement",
    "parse_python",
    "project_functions",
    "reaching_training",
    "says_evaluation",
    "scope_statements",
    "sets_a_literal",
    "target_names",
    "trains",
]

_FIXED_NAME_TOKENS = frozenset({
    "eval", "evaluate", "evaluation", "test", "testing", "score", "scoring", "metric", "metrics",
    "validate", "validation", "val", "valid", "data", "dataset", "split", "loaddata",
})
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


# words beside a data word that make it training-side work on the data (augmentation, mixing, parallelism), and
# beside `split` a model operation (`split_heads`, `split_qkv`): never fixed by name
_TRAINING_SIDE_TOKENS = frozenset({"augment", "augmentation", "augmentations", "aug", "mixup", "cutmix", "mix",
                                   "parallel", "jitter", "noise"})
_MODEL_SPLIT_TOKENS = frozenset({"head", "heads", "qkv", "kv", "attn", "attention", "channel", "channels", "dim",
                                 "dims", "tokens", "states"})
_DATA_NAME_TOKENS = frozenset({"data", "dataset", "split", "loaddata"})


# beside these, `val` / `valid` is a value or a validity, not validation (`valid_mask`, `max_val`, `clip_val`,
# mmpretrain's `label_smooth_val`)
_NOT_VALIDATION = frozenset({"mask", "max", "min", "clip", "pos", "positions", "idx", "ids", "range", "value",
                             "values", "tokens", "len", "lengths", "smooth", "smoothing"})


def _tokens(name: str) -> set[str]:
    low = {t.lower() for t in re.split(r"_+|(?<=[a-z])(?=[A-Z])", name) if t}
    if low & _NOT_VALIDATION and not low & _VALIDATION_AMOUNTS:
        low -= {"val", "valid"}
    return low


# beside these, `val` is validation again, whatever else is there (`max_val_batches`, `min_val_samples`)
_VALIDATION_AMOUNTS = frozenset({"batches", "steps", "samples", "examples", "iters", "iterations", "episodes",
                                 "fraction", "frac", "ratio", "split", "percent", "pct", "check"})


def name_is_fixed(name: str) -> bool:
    """Whether a function's own name says it evaluates, tests, scores or loads / splits data (`augment_data`,
    `mixup_data` and `split_heads` say otherwise)."""
    low = _tokens(name)
    said = low & _FIXED_NAME_TOKENS
    if said and said <= _DATA_NAME_TOKENS and (low & _TRAINING_SIDE_TOKENS or (
            said == {"split"} and low & _MODEL_SPLIT_TOKENS)):
        return False
    return bool(said) or "load_data" in name.lower()


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


def says_evaluation(name: str) -> bool:
    """A name with an evaluation word (`validation_step`, `test_step`, `evaluate`), not only a data or score word."""
    return bool(_tokens(name) & (_FIXED_NAME_TOKENS - _DATA_NAME_TOKENS - {"score", "scoring"}))


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


def _metric_pattern(metric: str) -> re.Pattern[str] | None:
    """The metric's name as code writes it (`val_acc`, `val/acc`, `val acc`); a summary of it (`best_val_acc`,
    `final_val_loss`) also matches the measurement it summarises (Ray Tune's trainable reports `{"val_acc": acc}`
    and the driver prints `best_val_acc`)."""
    words = [w for w in re.split(r"[\s_\-/.]+", metric.strip()) if w]
    if not words:
        return None
    sep = r"[\s_\-/.]?"
    summary = ""
    if len(words) > 1 and words[0].lower() in _SUMMARY_WORDS:
        summary, words = f"(?:{re.escape(words[0])}{sep})?", words[1:]
    return re.compile(r"(?<![A-Za-z0-9])" + summary + sep.join(map(re.escape, words)) + r"(?![A-Za-z0-9])",
                      re.IGNORECASE)


_SUMMARY_WORDS = frozenset({"best", "final", "last", "max", "min", "mean", "avg", "average", "top"})


def _mentions(node: ast.AST, pat: re.Pattern[str]) -> bool:
    """Whether a string in `node` names the metric; a file's path does not (`torch.save(model.state_dict(),
    "best_metric_model.pth")` saves a checkpoint, it reports no `best_metric`)."""
    return any(isinstance(n, ast.Constant) and isinstance(n.value, str) and pat.search(n.value)
               and not _a_file_path(n.value) for n in ast.walk(node))


_FILE_PATH = re.compile(r"^[\w.\-/{}]*\.(?:pth?|pt|ckpt|bin|safetensors|h5|hdf5|keras|pkl|pickle|joblib|json|ya?ml|"
                        r"csv|tsv|npz|npy|txt|log|png|jpe?g|svg|pdf|onnx|msgpack|parquet)$", re.IGNORECASE)


def _a_file_path(text: str) -> bool:
    """A string that is a file's name (`best_metric_model.pth`, `runs/{name}/val_loss.csv`): no words around it."""
    return bool(_FILE_PATH.match(text.strip()))


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


def _printed(st: ast.stmt, pat: re.Pattern[str]) -> list[ast.AST]:
    """The values a statement that mentions the metric reports: the arguments of the call that prints or logs it
    (``print(...)``, ``logger.info(...)``, ``report(value, "val_loss")`` — that call is the reporter, not the
    evaluator), or the value assigned / returned. Where the metric names one entry of a dict or one keyword
    (``wandb.log({"val/loss": losses["val"], "lr": lr})``, a checkpoint ``{"best_val_loss": best, "optimizer":
    optimizer.state_dict()}``, ``log(val_loss=v, lr=lr)``), only that entry is its value."""
    value = st.value if isinstance(st, ast.Expr | ast.Assign | ast.Return | ast.AnnAssign) else None
    if isinstance(value, ast.Call):
        named: list[ast.AST] = [k.value for k in value.keywords if k.arg is not None and pat.search(k.arg)]
        values: list[ast.AST] = named or _labelled(_call_pieces(value), pat) \
            or [*value.args, *(k.value for k in value.keywords)]
    else:
        values = (_labelled(_pieces(value), pat) or [value]) if value is not None else [st]
    return [v for d in values for v in _entries_named(d, pat)]


# a printf-style placeholder (`%.4f`, `%(loss)s`; `%%` is a literal percent sign) and a str.format field
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")
_BRACES = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
Piece = str | ast.AST  # the text of a message, or a value formatted into it, in the order printed


@dataclass
class _Message:
    """What a statement prints, in order; `labelled` when its text names its values (a format string, or text
    arguments between values) rather than standing beside one."""
    pieces: list[Piece] = field(default_factory=list)
    labelled: bool = False

    def __iadd__(self, other: _Message) -> _Message:
        self.pieces += other.pieces
        self.labelled = self.labelled or other.labelled
        return self


def _labelled(msg: _Message, pat: re.Pattern[str]) -> list[ast.AST]:
    """The values a message prints right after the metric's name: `{val_loss}` in f"val_loss {val_loss:.4f} lr
    {config.lr}", not the learning rate beside it (whose config is no evaluation code: followed, it froze every
    setting of a get_config()). Empty where the message labels nothing or never names the metric (then every value
    counts, as for ``report(value, "val_loss", step)``)."""
    if not msg.labelled:
        # `print("val_acc", acc, EPOCHS)`: one text piece names the metric, the value right after it is the metric
        texts = [i for i, p in enumerate(msg.pieces) if isinstance(p, str) and pat.search(p)]
        if texts == [0] and len(msg.pieces) > 1 and not isinstance(msg.pieces[1], str):  # (`report(v, "val_loss",
            # step)` names it after its value: every value counts there)
            after = msg.pieces[1]
            assert not isinstance(after, str)
            return [after]
        return []
    out: list[ast.AST] = []
    armed = False
    for p in msg.pieces:
        if isinstance(p, str):
            armed = armed or bool(pat.search(p))
        elif armed:
            out.append(p)
            armed = False
    return out


def _pieces(node: ast.AST) -> _Message:
    """A value as printed: the text and the values of an f-string, a `%` format or a `.format(...)` call; a string
    is text; anything else is one value."""
    if isinstance(node, ast.JoinedStr):
        return _Message([v.value if isinstance(v, ast.Constant) and isinstance(v.value, str)
                         else v.value if isinstance(v, ast.FormattedValue) else v for v in node.values], True)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _Message([node.value])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) \
            and isinstance(node.left.value, str):
        args = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
        return _percent(node.left.value, list(args))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format" \
            and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str):
        return _braces(node.func.value.value, node)
    return _Message([node])


def _call_pieces(call: ast.Call) -> _Message:
    """A print or log call's message: its format string's text and the arguments it formats (``logger.info("val_loss
    %.4f lr %g", v, lr)``), or its arguments in order, each as printed (labelled when two or more are text)."""
    args = list(call.args)
    if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str) and len(args) > 1 \
            and _PERCENT.search(args[0].value):
        return _percent(args[0].value, args[1:])
    out = _Message(labelled=sum(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args) >= 2)
    for a in args:
        out += _pieces(a)
    return out


def _percent(fmt: str, args: list[ast.expr]) -> _Message:
    out = _Message(labelled=True)
    i, at = 0, 0
    for m in _PERCENT.finditer(fmt):
        out.pieces.append(fmt[at:m.start()])
        at = m.end()
        if m.group(1) == "%":
            continue
        if i < len(args):
            out.pieces.append(args[i])
        i += 1
    out.pieces.append(fmt[at:])
    return out


def _braces(fmt: str, call: ast.Call) -> _Message:
    out = _Message(labelled=True)
    keywords = {k.arg: k.value for k in call.keywords if k.arg is not None}
    auto, at = 0, 0
    for m in _BRACES.finditer(fmt):
        if m.group(1) is None:  # an escaped brace
            continue
        out.pieces.append(fmt[at:m.start()])
        at = m.end()
        name = re.split(r"[.\[!:]", m.group(1), maxsplit=1)[0]
        if name == "":
            name, auto = str(auto), auto + 1
        value = call.args[int(name)] if name.isdigit() and int(name) < len(call.args) else keywords.get(name)
        if value is not None:
            out.pieces.append(value)
    out.pieces.append(fmt[at:])
    return out


def _entries_named(node: ast.AST, pat: re.Pattern[str]) -> list[ast.AST]:
    """A dict's values under keys that mention the metric, when some key does; else the node itself."""
    if isinstance(node, ast.Dict):
        named: list[ast.AST] = [v for k, v in zip(node.keys, node.values, strict=True)
                 if isinstance(k, ast.Constant) and isinstance(k.value, str) and pat.search(k.value)]
        if named:
            return named
    return [node]


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


_SIMPLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return)
_HELD_OUT_WORDS = frozenset({"val", "valid", "validation", "test", "te", "dev", "eval", "holdout", "va"})


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


def held_out_name(name: str) -> bool:
    """Whether a variable's name says it holds a held-out part (`val_idx`, `X_test`, `dev_data`, `valid2`)."""
    return bool(_HELD_OUT_WORDS & {w.lower() for w in re.split(r"_+|\d+", name) if w})


# words of a name that holds a number the measurement produced, not held-out data (`val_loss`, `best_val_acc`)
_RESULT_WORDS = frozenset({"loss", "losses", "acc", "accuracy", "score", "scores", "metric", "metrics", "f1", "auc",
                           "err", "error", "errors", "ppl", "perplexity", "bpc", "rmse", "mae", "mse", "r2", "best",
                           "pred", "preds", "prediction", "predictions", "logits", "probs", "history", "result",
                           "results", "log", "logs", "step", "steps", "every", "interval", "freq", "iters", "size",
                           "batch", "fraction", "frac", "ratio", "split", "pct"})
# `xv`, `y_te`, `Xtest`, and the pool a held-out sample is drawn from (`xv_all`)
_SHORT_HELD_OUT = re.compile(r"[xy]_?(v|va|val|te|tst|test)(?:_?(?:all|full|raw|pool))?\d*", re.IGNORECASE)


def held_out_data(name: str) -> bool:
    """A name that holds held-out examples (`X_te`, `val_loader`, `test_ds`, `xv`), not a number measured on them."""
    return bool(_SHORT_HELD_OUT.fullmatch(name)) or (held_out_name(name) and not name_words(name) & _RESULT_WORDS)


def name_words(name: str) -> set[str]:
    """The lower-case words of a variable's name, split at underscores and digits, with the part a short name
    abbreviates (`xv` → `v`, `Xtest` → `test`)."""
    words = {w.lower() for w in re.split(r"_+|\d+", name) if w}
    short = _SHORT_HELD_OUT.fullmatch(name)
    return words | ({short.group(1).lower()} if short else set())


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


def _is_model_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and bool(_tokens(node.id) & {"model", "net", "module", "network", "clf",
                                                                     "estimator", "classifier", "regressor"})


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


def builds_held_out(fn: ast.AST) -> bool:
    """Whether a function reads or assigns a held-out name (`valdir`, `val_tf`, `dataset_test`): it builds that side
    by name, so the rest of it (the training side) can be told apart."""
    return any((isinstance(n, ast.Name) and held_out_name(n.id)) or (isinstance(n, ast.arg) and
                                                                       held_out_name(n.arg)) for n in ast.walk(fn))


def called_name(call: ast.Call) -> str:
    """The name a call is made by, `f` of `f(x)` and of `obj.f(x)`; "" for anything else (`fns[0](x)`)."""
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


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


# words of a setting's name that say it decides what is measured or how much of it (`limit_val_batches`,
# `validation_split`, `max_eval_samples`, `compute_metrics`, `test_size`, `eval_iters`), wherever it is written
_MEASURING_SETTING_WORDS = frozenset({"val", "valid", "validation", "eval", "evaluate", "evaluation", "test",
                                      "holdout", "metric", "metrics", "scoring", "evals",
                                      # cross-validation's folds (`cross_val_score(cv=CV)`, `CV = 5`, `n_folds`)
                                      "cv", "fold", "folds", "nfolds", "kfold", "kfolds"})


# sections (or keys) whose every setting is part of the measurement: spaCy's weights of the scores it combines into
# the one it selects the best model by and reports
_MEASURING_SECTIONS = frozenset({"score_weights"})


def names_the_measurement(name: str | None) -> bool:
    """Whether a setting's name (a keyword, a constant, a config key, a flag; dotted or dashed) says it decides the
    measurement: an evaluation or metric word (`clip_val`, `max_val` say otherwise), except an evaluation batch size
    (`per_device_eval_batch_size`, `eval.batch_size`), which changes only the speed; or a data split of its own
    (`prepare.split`, `split_seed`, `n_splits`; not a tree's `min_samples_split`)."""
    if not name:
        return False
    parts = [p for p in re.split(r"[.:/\\]+", name.strip("-").replace("-", "_")) if p]
    if not parts:
        return False
    words = set().union(*(_tokens(p) for p in parts))
    leaf = _tokens(parts[-1])
    if any(p.lower() in _MEASURING_SECTIONS for p in parts):
        return True  # spaCy's `[training.score_weights] cats_score = 1.0`: the score that picks and reports the best
    if leaf & {"split", "splits"} and not leaf & _NOT_A_DATA_SPLIT:
        return True  # `prepare.split: 0.20`, `split_seed`, `n_splits`: how much is held out, or which rows
    hits = words & _MEASURING_SETTING_WORDS
    if leaf & _ENSEMBLE_WORDS:  # AutoGluon's `num_bag_folds`, `num_stack_levels`: folds that train a bagged ensemble
        hits -= {"fold", "folds", "nfolds", "kfold", "kfolds"}
    return bool(hits) and not ({"batch", "size"} <= leaf or "bs" in leaf)


_ENSEMBLE_WORDS = frozenset({"bag", "bags", "bagging", "bagged", "stack", "stacking"})


# beside `split`, words of a tree's node splitting (`min_samples_split`, `min_split`, `max_splits`) or of a tensor
# split in a model (`split_size`, `split_heads`): no data split
_NOT_A_DATA_SPLIT = frozenset({"min", "max", "samples", "leaf", "node", "nodes", "gain", "size", "sections"}) | \
    _MODEL_SPLIT_TOKENS


_DATA_PLACE_WORDS = frozenset({"dir", "path", "root", "file", "name", "set", "id"})


def names_the_data(name: str | None) -> bool:
    """Whether a setting's name says which data the run uses (`dataset`, `dataset_name`, `data_dir`, `data.path`):
    given a string, it picks the held-out part with the training part (nanoGPT's `dataset = 'shakespeare_char'`
    reads data/<dataset>/val.bin), so another value is another task, not a better model."""
    parts = [p for p in re.split(r"[.:/\\]+", (name or "").strip("-").replace("-", "_")) if p]
    words: set[str] = set().union(*(_tokens(p) for p in parts)) if parts else set()
    return "dataset" in words or "datasets" in words or (
        "data" in words and (len(words) == 1 or bool(words & _DATA_PLACE_WORDS)))


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
