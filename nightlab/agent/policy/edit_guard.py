"""The edit guard: what of the measurement an edit would change, wherever the measurement is written.

`evaluation/` finds the code that measures (the functions that compute the printed metric, the statements that
print, split or size it); this module compares a file before and after an edit against it. It holds those
functions whole, with the helpers and classes they use (also through a project module, ``utils.accuracy``, and the
closure a ``build_criterion()`` hands them), except a data function that builds the training and the held-out part
alike (``load_data(traindir, valdir)``): of it only the held-out side is held. Elsewhere it holds statements
(`evaluation.measuring_statements`), of a config dict only the entries the measurement reads, and of an inline
validation loop its header and its exits; and outside all of it, what the measurement is handed at its call sites
and every setting whose name says it decides the measurement (`evaluation.names_the_measurement`) or which data
the run uses (`evaluation.names_the_data`); and the training may not start reading held-out rows
(`_training_inputs`), nor a feature the label at its own row (`label_leaks`), nor the held-out part a random
augmentation through a transform it shares (`shared_transforms`), nor Keras' validation tail other rows
(`validation_tail`), nor a fit see the rows a cross-validation inside an estimator holds out (`cv_leaks`).
Compared as syntax trees, so a comment or a blank line is no change.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from typing import NamedTuple

from nightlab.agent.code_reach import dotted_name
from nightlab.agent.policy.config_modules import config_module_changes
from nightlab.agent.policy.cv_leaks import cross_validation_leaks
from nightlab.agent.policy.evaluation import (
    FITTING_CALLS,
    SPLIT_CALLS,
    builds_held_out,
    called_name,
    evaluation_functions,
    feeding,
    function_defs,
    held_out_data,
    held_out_name,
    measuring_helpers,
    measuring_statements,
    metric_functions,
    name_words,
    names_the_data,
    names_the_measurement,
    parse_python,
    project_functions,
    reaching_training,
    says_evaluation,
    scope_statements,
    sets_a_literal,
    target_names,
    trains,
)
from nightlab.agent.policy.label_leaks import fresh_features, label_leaks
from nightlab.agent.policy.shared_transforms import shared_augmentation
from nightlab.agent.policy.validation_tail import validation_tail_changes

__all__ = ["evaluation_edits", "measurement_only_options"]


def _evaluator_classes(tree: ast.Module, functions: Collection[str]) -> list[str]:
    """Classes that exist to measure: one of their methods is an evaluation function, none trains or serves
    training (`train_dataloader`), and they are no model (no `forward`). Their other methods (`__init__` keeping
    `max_batches`, an `update` of a running mean) decide the metric as much as the one called: held whole."""
    out = []
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        methods = [d for d in cls.body if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)]
        if any(d.name in functions for d in methods) and not any(
                d.name == "forward" or trains(d) or {"train", "training"} & set(d.name.lower().split("_"))
                for d in methods) and not _a_model_class(cls):
            out.append(cls.name)  # (a LightningDataModule's `train_dataloader` holds the training batch: not held)
    return out


def _a_model_class(cls: ast.ClassDef) -> bool:
    """A torch `nn.Module` or a `LightningModule` by its bases: a model, whatever its methods are called."""
    return any((b.attr if isinstance(b, ast.Attribute) else b.id if isinstance(b, ast.Name) else "") in
               ("Module", "LightningModule") for b in cls.bases)


def _made_in(tree: ast.Module, measuring: list[ast.AST], path: str = "") -> set[str]:
    """Classes of this file that measuring code instantiates (`top1 = AverageMeter()` in `validate`, or through the
    module, `utils.MetricLogger()` for this utils.py) and that are no model and train nothing: their `update`
    decides the reported average. The classes a held class builds or is given (`defaultdict(SmoothedValue)`) are
    held with it."""
    stem = path.rsplit("/", 1)[-1].removesuffix(".py")

    def made_by(code: list[ast.AST]) -> set[str]:
        out: set[str] = set()
        for n in (n for fn in code for n in ast.walk(fn) if isinstance(n, ast.Call)):
            f = n.func
            if isinstance(f, ast.Name):
                out.add(f.id)
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == stem:
                out.add(f.attr)
        return out

    classes = {c.name: c for c in ast.walk(tree) if isinstance(c, ast.ClassDef)}
    made = made_by(measuring)
    out: set[str] = set()
    todo = sorted(made & classes.keys())
    while todo:
        cls = classes[todo.pop()]
        if cls.name in out:
            continue
        methods = [d for d in cls.body if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)]
        if not any(d.name == "forward" or trains(d) for d in methods) and not _a_model_class(cls):
            out.add(cls.name)
            given = {a.id for n in ast.walk(cls) if isinstance(n, ast.Call) for a in n.args if isinstance(a, ast.Name)}
            todo += sorted(((made_by([cls]) | given) & classes.keys()) - out)
    return out


def _measuring_attributes(tree: ast.Module | None, held: Collection[str]) -> dict[str, str]:
    """{"Class.attr": dump of what sets it} for the attributes of a class that its held methods read and no other
    method reads but `__init__` / `setup` (a LightningModule's `self.val_metrics`, read by `validation_step` and
    `on_validation_epoch_end`): the metric objects the evaluation reports, whatever their name or value
    (`metrics.clone(prefix="val_")`, with the local `metrics = MetricCollection([...])` it copies). An attribute the
    training reads too (`self.loss_fn`, `self.net`) is the model's."""
    out: dict[str, str] = {}
    for cls in (c for c in ast.walk(tree) if isinstance(c, ast.ClassDef)) if tree is not None else []:
        methods = [d for d in cls.body if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)]
        readers: dict[str, set[str]] = {}
        for m in methods:
            for n in ast.walk(m):
                if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load) and isinstance(n.value, ast.Name) \
                        and n.value.id == "self":
                    readers.setdefault(n.attr, set()).add(m.name)
        mine = {m.name for m in methods if m.name in held}
        for attr, names in readers.items():
            if not names & mine or names - mine - _BUILDING_METHODS:
                continue
            dumps: list[str] = []
            for m in methods:
                stmts = scope_statements(m)
                for st in stmts:
                    if isinstance(st, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == attr and
                                                          isinstance(t.value, ast.Name) and t.value.id == "self"
                                                          for t in st.targets):
                        dumps.append(ast.dump(st))
                        local = {n.id for n in ast.walk(st.value) if isinstance(n, ast.Name)}
                        dumps += [ast.dump(x) for x in stmts if isinstance(x, ast.Assign) and any(
                            n in local for t in x.targets for n in target_names(t))]
            if dumps:
                out[f"{cls.name}.{attr}"] = "".join(dumps)
    return out


# calls that make a metric object by name: Hugging Face's `evaluate.load("wer")` (and `datasets.load_metric`,
# `evaluate.combine`), scikit-learn's `make_scorer(f1_score)` / `get_scorer("roc_auc")`, any torchmetrics class
_METRIC_MAKERS = frozenset({"evaluate.load", "load_metric", "datasets.load_metric", "evaluate.combine", "make_scorer",
                            "get_scorer", "metrics.make_scorer", "metrics.get_scorer"})


def _metric_bindings(tree: ast.Module | None, held: Collection[str]) -> dict[str, list[str]]:
    """{name: dumps of the statements that bind it} for the metric objects a held evaluation function reads from
    outside itself — a closure variable of the function it sits in, or a global: Whisper's `compute_metrics` reads
    `metric` that `main` made with `metric = evaluate.load("wer")`; held whole, the function still printed CER as
    `eval_wer` when that line said "cer". Only a binding made by a metric maker (`_METRIC_MAKERS`) is held: a model
    or a processor the evaluation reads from outside is the training's too."""
    if tree is None:
        return {}
    free: set[str] = set()
    for d in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name in held):
        a = d.args
        own = {x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if x is not None}
        own |= {n.id for n in ast.walk(d) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        free |= {n.id for n in ast.walk(d) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} - own
    out: dict[str, list[str]] = {}
    for st in ast.walk(tree):
        if not isinstance(st, ast.Assign | ast.AnnAssign) or not isinstance(st.value, ast.Call):
            continue
        maker = dotted_name(st.value.func)
        if maker not in _METRIC_MAKERS and maker.split(".")[0] != "torchmetrics":
            continue
        for t in st.targets if isinstance(st, ast.Assign) else [st.target]:
            if isinstance(t, ast.Name) and t.id in free:
                out.setdefault(t.id, []).append(ast.dump(st.value))
    return {k: sorted(v) for k, v in out.items()}


def _default_constants(tree: ast.Module | None, held: Collection[str]) -> dict[str, str]:
    """{constant: dump of its value} for the module-level constants a held evaluation function takes as a
    parameter's default (`def mean_ndcg(df, scores, k=K)` with `K = 10`): the function is held whole, but its dump
    holds the name `K`, not its value, and `K = 5` printed NDCG@5 as `ndcg@10`. Held whatever else reads it (LightGBM's
    `eval_at=[K]` beside it only picks the early-stopping metric)."""
    if tree is None:
        return {}
    names: set[str] = set()
    for d in (n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name in held):
        names |= {x.id for x in (*d.args.defaults, *d.args.kw_defaults) if isinstance(x, ast.Name)}
    out: dict[str, str] = {}
    for st in tree.body:
        if isinstance(st, ast.Assign) and isinstance(st.value, ast.Constant):
            out.update({t.id: ast.dump(st.value) for t in st.targets if isinstance(t, ast.Name) and t.id in names})
    return out


# methods that build a class's parts rather than use them
_BUILDING_METHODS = frozenset({"__init__", "setup", "__post_init__", "build", "configure_metrics"})


def _class_dump(tree: ast.Module, name: str) -> str | None:
    found = [ast.dump(c) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and c.name == name]
    return "\n".join(sorted(found)) if found else None


def _assigned_names(t: ast.AST) -> list[str]:
    if isinstance(t, ast.Name):
        return [t.id]
    if isinstance(t, ast.Attribute):
        return [t.attr]
    return [n for e in t.elts for n in _assigned_names(e)] if isinstance(t, ast.Tuple | ast.List) else []


_SPLIT_SEEDS = frozenset({"seed", "random_state", "split_seed", "shuffle", "generator", "rng"})
_SPLIT_SIZE_WORDS = frozenset({"pct", "percent", "fraction", "frac", "size", "ratio", "split", "portion", "proportion"})


def _settings(tree: ast.Module | None, held: Collection[str]) -> tuple[Counter[tuple[str, str]], Counter[str],
                                                                       Counter[str]]:
    """What held calls are given, as (label, arguments), and the measurement settings of `tree`, as "label\0value",
    whose name says they decide the measurement (`names_the_measurement`): the keywords of calls (`Trainer(
    limit_val_batches=...)`: one added is a change too), then the settings only a changed or removed value counts
    for — a parameter default, a literal or a built object assigned to a name, a dict literal's key, an argparse
    flag's default (new code that keeps `best_val_loss = 1e9` for early stopping sets up nothing of the
    measurement)."""
    calls: Counter[tuple[str, str]] = Counter()
    keywords: Counter[str] = Counter()
    existing: Counter[str] = Counter()
    for n in ast.walk(tree) if tree is not None else []:
        if isinstance(n, ast.Call):
            name = called_name(n)
            if name in held:
                calls[(f"{name}(…)", ast.dump(ast.Tuple(elts=n.args, ctx=ast.Load())) +
                       "".join(sorted(ast.dump(k) for k in n.keywords)))] += 1
            flags = [a.value for a in n.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name in ("add_argument", "option") and any(names_the_measurement(f) for f in flags):
                # argparse's `add_argument("--val-size", default=...)`, click's `@click.option("--val-size", ...)`
                existing[f"{flags[0]} (its default)\0" + "".join(ast.dump(k) for k in n.keywords)] += 1
            elif name.startswith("DEFINE_") and n.args and isinstance(n.args[0], ast.Constant) and \
                    names_the_measurement(flags[0] if flags else None):
                # absl's `flags.DEFINE_integer("eval_examples", 10000, "...")`: the default is the second argument
                existing[f"--{flags[0]} (its default)\0" + ast.dump(ast.Tuple(elts=n.args[1:2], ctx=ast.Load())) +
                         "".join(ast.dump(k) for k in n.keywords if k.arg == "default")] += 1
            else:
                # a call that sizes what is held out (fastai's `from_name_func(valid_pct=0.2, seed=42)`) draws it
                # with its seed as well; not one that only schedules evaluation (`TrainingArguments(eval_steps=…,
                # seed=42)`: that seed trains)
                sizes = any(names_the_measurement(k.arg) and _SPLIT_SIZE_WORDS & set(re.split(r"_+", k.arg.lower()))
                            for k in n.keywords if k.arg)
                keywords.update(f"{name}({k.arg}=…)\0{ast.dump(k.value)}" for k in n.keywords
                                if (names_the_measurement(k.arg) and not _training_parts_named(k.arg, k.value))
                                or (sizes and k.arg in _SPLIT_SEEDS))
                existing.update(f"{name}({k.arg}=…)\0{ast.dump(k.value)}" for k in n.keywords
                                if not names_the_measurement(k.arg) and _names_data_string(k.arg, k.value))
        elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
            existing.update(f"{n.name}({x.arg}=…)\0{ast.dump(d)}" for x, d in _defaults(n)
                            if names_the_measurement(x.arg) or _names_data_string(x.arg, d))
        elif isinstance(n, ast.Assign | ast.AnnAssign) and n.value is not None:
            # a literal, or an object built under a measurement's name (`self.val_acc = MulticlassAccuracy(...)`
            # in a LightningModule's `__init__`, `val_loader = DataLoader(Subset(val_ds, ...))`), each name of
            # `A, B = 1, 2` with its own value
            existing.update(f"{t} = …\0{ast.dump(v)}" for tg in (n.targets if isinstance(n, ast.Assign) else [n.target])
                            for name_node, v in _paired(tg, n.value) for t in _assigned_names(name_node)
                            if (names_the_measurement(t) and _a_setting(v)) or _names_data_string(t, v))
        elif isinstance(n, ast.Dict):
            existing.update(f"{{{k.value!r}: …}}\0{ast.dump(v)}" for k, v in zip(n.keys, n.values, strict=True)
                            if isinstance(k, ast.Constant) and isinstance(k.value, str)
                            and (names_the_measurement(k.value) or _names_data_string(k.value, v)))
    return calls, keywords, existing


def _training_parts_named(arg: str | None, value: ast.expr) -> bool:
    """A `split=` naming training parts only, whole (STL10's `split="train+unlabeled"` for pretraining): no held-out
    part in it, and no slice of a part (`"train[:90%]"` is cut against a `"train[90%:]"` held out beside it)."""
    if arg != "split" or not isinstance(value, ast.Constant) or not isinstance(value.value, str):
        return False
    parts = [x for x in re.split(r"[+,\s]+", value.value) if x]
    return bool(parts) and all(x.isidentifier() and not held_out_name(x) for x in parts)


def _defaults(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[ast.arg, ast.expr]]:
    """A function's parameters that have a default, each with it (positional ones, then keyword-only ones)."""
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    return [*zip(positional[len(positional) - len(a.defaults):], a.defaults, strict=True),
            *((x, d) for x, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None)]


def _names_data_string(name: str | None, value: ast.AST) -> bool:
    return isinstance(value, ast.Constant) and isinstance(value.value, str) and names_the_data(name)


def _paired(target: ast.expr, value: ast.expr) -> list[tuple[ast.expr, ast.expr]]:
    if isinstance(target, ast.Tuple | ast.List) and isinstance(value, ast.Tuple | ast.List) and \
            len(target.elts) == len(value.elts):
        return list(zip(target.elts, value.elts, strict=True))
    return [(target, value)]


def _a_setting(value: ast.expr) -> bool:
    """A literal (or an environment variable's literal default), or an object built by its class."""
    return sets_a_literal(ast.Assign(targets=[], value=value)) or (
        isinstance(value, ast.Call) and called_name(value)[:1].isupper())


def _setting_changes(before: ast.Module, after: ast.Module | None, held: Collection[str]) -> list[str]:
    """What an edit changes where measurement is asked for or set up, outside the code that measures: the arguments
    of a call to a held function or class (`Evaluator(val_ds, max_batches=1)`, `validate(model, train_loader)`),
    and the measurement settings (`_settings`: `Trainer(limit_val_batches=0.1)`, `def __init__(self,
    val_fraction=0.2)`, `eval_iters = 200`, `fit(validation_split=0.5)`). A new call of a held function with
    arguments seen before is no change."""
    old_calls, old_keywords, old_existing = _settings(before, held)
    new_calls, new_keywords, new_existing = _settings(after, held)
    given = {f"{key[0]} (what the measurement is given)" for key in old_calls - new_calls}
    label = lambda key: key.split("\0")[0]
    had = {label(k) for k in old_existing}
    changed = [*(old_keywords - new_keywords), *(new_keywords - old_keywords), *(old_existing - new_existing),
               *(k for k in new_existing - old_existing if label(k) in had)]
    return sorted(given | {label(k) + " (a setting of the measurement)" for k in changed})


def _statement_changes(before: str, after: str, metric: str, skip: Collection[str],
                       data_functions: Collection[str] = (), trainers: Collection[str] = ()) -> list[int]:
    """Lines (in `before`) of measuring statements that `after` no longer has as they were, and, where `after`
    measures with statements `before` did not have, the first such line in `after` (an `acc = acc * 2` slipped in
    between the evaluation and the print) that is not a new feature (`label_leaks.fresh_features`)."""
    old = measuring_statements(before, metric, skip, data_functions, trainers)
    new = measuring_statements(after, metric, skip, data_functions, trainers)
    old_dumps = [ast.dump(st) for st in old]
    new_dumps = [ast.dump(st) for st in new]
    lines = [st.lineno for st, d in zip(old, old_dumps, strict=True) if d not in new_dumps]
    if not lines:
        added = [st for st, d in zip(new, new_dumps, strict=True) if d not in old_dumps]
        old_tree, new_tree = parse_python(before), parse_python(after)
        features = fresh_features(old_tree, new_tree, added) if old_tree and new_tree and added else set()
        lines = [st.lineno for st in added if id(st) not in features][:1]
    return lines


_TRACE_STEPS = 4
# keywords that hand a trainer its training data (transformers' `Trainer(train_dataset=…)`, Lightning's
# `fit(train_dataloaders=…)`, Keras' `fit(x=…, y=…)`)
_TRAINING_DATA_KEYWORDS = frozenset({"train_dataset", "train_dataloaders", "train_dataloader", "train_loader",
                                     "train_data", "train_set"})


def _training_inputs(tree: ast.Module, metric: str = "", training: Collection[str] = ()) -> Counter[str]:
    """The held-out data the training reads, as "scope: name": what a fitting call is handed (`clf.fit(X_te, y_te)`;
    not its `validation_data=` / `eval_set=`, which only monitor), and what feeds a `loss.backward()` (through the
    loss's assignments and the loops its batches come from), traced back through assignments to the split. A
    split's own source (`X` of `train_test_split(X, y)`) holds the held-out rows as well, and is held-out data here
    when training reads it past the split (`clf.fit(X, y)`); tracing stops at the statement that splits."""
    out: Counter[str] = Counter()
    for scope in [tree, *function_defs(tree)]:
        everything = scope_statements(scope)
        # what runs without gradients measures, whatever names it reuses (`loss = crit(model(xv), yv)` under
        # `torch.no_grad()` beside the training's `loss.backward()`)
        no_grad = {id(x) for w in everything if isinstance(w, ast.With) and any(
            isinstance(i.context_expr, ast.Call) and called_name(i.context_expr) in ("no_grad", "inference_mode")
            for i in w.items) for x in ast.walk(w) if isinstance(x, ast.stmt)}
        stmts = [st for st in everything if id(st) not in no_grad]
        splits = [c for st in stmts for c in ast.walk(st) if isinstance(c, ast.Call) and called_name(c) in SPLIT_CALLS]
        sources = {n.id for c in splits for a in c.args for n in ast.walk(a) if isinstance(n, ast.Name)}
        # a source that is no bare name: HF datasets' `data["train"].train_test_split(test_size=0.1)` cuts the held-out
        # part out of `data["train"]`, which then holds it as well
        whole = {ast.dump(x) for c in splits for x in [*c.args[:1], *(
            [c.func.value] if isinstance(c.func, ast.Attribute) else [])]
            if isinstance(x, ast.Subscript | ast.Attribute)}
        # tf.data's `val_ds = ds.take(n)`, `train_ds = ds.skip(n)` (HF's `select` / `shard` alike) split `ds`
        cut = _take_skip_sources(stmts)
        sources |= cut
        seeds: list[ast.AST] = []
        for c in (c for st in stmts for c in ast.walk(st) if isinstance(c, ast.Call)):
            f = c.func
            if isinstance(f, ast.Attribute) and (f.attr in FITTING_CALLS or (f.attr == "train" and len(c.args) >= 2)):
                # the data is the first two arguments (`fit(X, y)`, `train(params, dtrain)`, Lightning's
                # `fit(model, train_loader)`: its third, the validation loader, only monitors)
                seeds += [*c.args[:2], *(k.value for k in c.keywords if k.arg and not names_the_measurement(k.arg)
                                         and k.arg != "callbacks")]
            elif isinstance(f, ast.Attribute) and f.attr == "backward":  # `loss.backward()`, `crit(...).backward()`
                seeds += list(feeding(stmts, f.value.id)) if isinstance(f.value, ast.Name) else [f.value]
            seeds += [k.value for k in c.keywords if k.arg in _TRAINING_DATA_KEYWORDS]  # `Trainer(train_dataset=…)`
            if isinstance(f, ast.Name) and f.id in training:  # the project's `train_one_epoch(model, opt, loader)`
                seeds += [*c.args, *(k.value for k in c.keywords if not names_the_measurement(k.arg))]
        loops = [(target_names(st.target), st.iter) for st in stmts if isinstance(st, ast.For | ast.AsyncFor)]
        read: set[str] = set()
        todo = {n.id for e in seeds for n in ast.walk(e) if isinstance(n, ast.Name)}
        # what is read as an attribute (PyG's `data.test_mask`), held out by its name as a name would be
        attributes = {a.attr for e in seeds for a in ast.walk(e) if isinstance(a, ast.Attribute)}
        # and a file or a key named for a part (`np.load("data/val_X.npy")`, `d["x_val"]`, `split="validation"`)
        strings = {c.value for e in seeds for c in ast.walk(e) if isinstance(c, ast.Constant)
                   and isinstance(c.value, str)}
        exprs: list[ast.AST] = list(seeds)
        for _ in range(_TRACE_STEPS):
            todo -= read
            read |= todo
            nxt: set[str] = set()
            for name in todo:
                for v in _paired_feeding(stmts, name):
                    if not _splits(v, cut):
                        exprs.append(v)
                        nxt |= {n.id for n in ast.walk(v) if isinstance(n, ast.Name)}
                        attributes |= {a.attr for a in ast.walk(v) if isinstance(a, ast.Attribute)}
                        strings |= {c.value for c in ast.walk(v) if isinstance(c, ast.Constant)
                                    and isinstance(c.value, str)}
                nxt |= {n.id for names, it in loops if name in names for n in ast.walk(it) if isinstance(n, ast.Name)}
            todo = nxt
        label = getattr(scope, "name", "")
        part = _measured_part(metric)
        # a split's source read whole, and a dataset built as the held-out part by its argument (torchvision's
        # `CIFAR10(root, train=False)`), whatever the name it is bound to
        out.update(f"{label}\0{ast.unparse(x)}" for e in exprs for x in ast.walk(e) if ast.dump(x) in whole or (
            isinstance(x, ast.Call) and any(k.arg == "train" and isinstance(k.value, ast.Constant)
                                            and k.value.value is False for k in x.keywords)))
        out.update(f"{label}\0{n}" for n in read if n in sources or (
            held_out_data(n) and (part is None or _part_of(n) in (part, None))))
        # (`valid` beside a mask or tokens is validity, not validation: `batch.valid_mask`)
        stems = {x: posixpath.splitext(posixpath.basename(x))[0] for x in strings if len(x) < 200}
        out.update(f"{label}\0{x!r}" for x, stem in stems.items() if stem.isidentifier() and held_out_data(stem) and (
            part is None or _part_of(stem) in (part, None)))
        out.update(f"{label}\0{a}" for a in attributes if held_out_data(a) and not (
            "valid" in name_words(a) and "validation" not in name_words(a)) and (
            part is None or _part_of(a) in (part, None)))
    return out


def _splits(v: ast.AST, cut: Collection[str]) -> bool:
    """Whether an expression splits the data: a split call, or `take` / `skip` of a dataset a part is cut from."""
    return any(isinstance(c, ast.Call) and (called_name(c) in SPLIT_CALLS or (
        called_name(c) in ("take", "skip") and isinstance(c.func, ast.Attribute)
        and isinstance(c.func.value, ast.Name) and c.func.value.id in cut)) for c in ast.walk(v))


def _take_skip_sources(stmts: list[ast.stmt]) -> set[str]:
    """Datasets a part is cut from by `take(n)` or `skip(n)` (tf.data's usual split: `val_ds = ds.take(n)`,
    `train_ds = ds.skip(n)`), where what is cut is named for a part; their rest holds the other part's rows."""
    out: set[str] = set()
    for st in stmts:
        if isinstance(st, ast.Assign) and isinstance(st.value, ast.Call) and isinstance(st.value.func, ast.Attribute) \
                and st.value.func.attr in ("take", "skip") and isinstance(st.value.func.value, ast.Name) and any(
                    held_out_name(n) or name_words(n) & {"train", "training"}
                    for t in st.targets for n in target_names(t)):
            out.add(st.value.func.value.id)
    return out


# the parts a held-out name may say it is: a validation part and a test part; where a project has both and the
# metric names one (`test_acc`), training on the other (a final fit on train + validation) changes nothing measured
_PARTS = {"test": frozenset({"test", "te", "tst", "testing", "holdout"}),
          "val": frozenset({"val", "valid", "validation", "va", "v", "dev", "eval"})}


def _part_of(name: str) -> str | None:
    words = name_words(name)
    found = [part for part, names in _PARTS.items() if words & names]
    return found[0] if len(found) == 1 else None


def _measured_part(metric: str) -> str | None:
    """The part the metric's name says it is measured on (`test_accuracy`, `val_loss`), None when it says neither."""
    found = [part for part, names in _PARTS.items() if set(re.split(r"[^a-z0-9]+", metric.lower())) & names]
    return found[0] if len(found) == 1 else None


def _paired_feeding(stmts: list[ast.stmt], name: str) -> Iterator[ast.AST]:
    """`feeding`, where `a, b = f(a), g(b)` gives `a` only its own element."""
    for st in stmts:
        if isinstance(st, ast.Assign) and len(st.targets) == 1:
            pairs = _paired(st.targets[0], st.value)
            if len(pairs) > 1:
                yield from (v for t, v in pairs if name in target_names(t))
                continue
            both = target_names(st.targets[0])
            if isinstance(st.value, ast.Call) and len(both) > 1 and name in both and not held_out_data(name) and \
                    any(held_out_data(n) for n in both):
                # `train_df[c], test_df[c] = target_encode(train_df, test_df, c)`: the held-out frame it is handed
                # whole is what it transforms for the held-out side; one built from both parts is read
                call = st.value
                yield ast.Call(func=call.func, args=[a for a in call.args if not (
                    isinstance(a, ast.Name) and held_out_data(a.id))], keywords=call.keywords)
                continue
        yield from feeding([st], name)


def _training_data_changes(before: ast.Module, after: ast.Module | None, metric: str,
                           training: Collection[str] = ()) -> list[str]:
    """The held-out data an edit has the training read that it did not read before (`_training_inputs`)."""
    if after is None:
        return []
    new = _training_inputs(after, metric, training) - _training_inputs(before, metric, training)
    return sorted({f"the training reads {k.split(chr(0))[1]} (held-out data)" for k in new})


# words of a setting that changes how fast or how verbosely the measurement runs, never what it measures
_SPEED_WORDS = frozenset({"batch", "bs", "workers", "device", "devices", "verbose", "verbosity", "log", "print",
                          "every", "interval", "freq", "frequency", "pin", "memory", "prefetch", "chunk"})


def _settings_by_name(tree: ast.Module, wanted: Collection[str] = ()) -> dict[str, str]:
    """{name: the dump of the module-level statements that set it to a literal (`THRESHOLD = 0.5`)}."""
    out: dict[str, str] = {}
    for st in tree.body:
        if isinstance(st, ast.Assign | ast.AnnAssign) and sets_a_literal(st):
            targets = st.targets if isinstance(st, ast.Assign) else [st.target]
            for name in (n for t in targets for n in _assigned_names(t) if not wanted or n in wanted):
                out[name] = out.get(name, "") + ast.dump(st)
    return out


def _measurement_only_settings(tree: ast.Module, held_functions: Collection[str], text: str, metric: str,
                               data_functions: Collection[str], trainers: Collection[str],
                               elsewhere: Collection[str]) -> dict[str, str]:
    """The module's literal settings that only measuring code reads (`THRESHOLD = 0.5` read by nothing but the
    evaluation's `probs > THRESHOLD`): the decision threshold, the number of evaluation samples. The search never
    moves them (`searchable.may_search`); an edit of one changes the measurement as surely as an edit of the line that
    reads it. A setting the training reads too (`BATCH`), one another file names, or one that only sets the speed
    (`EVAL_BATCH_SIZE`, `NUM_WORKERS`) stays free; one whose name says it sets the measurement (`VAL_FRACTION`) is
    held by `_settings` already. {name: dump of its statements}."""
    settings = _settings_by_name(tree)
    params = _parameter_defaults(tree, held_functions)
    if not settings and not params and not _option_defaults(tree):
        return {}
    # where each name is read, as (line, column): `measuring_statements` parses the text afresh
    def places(nodes: list[ast.AST]) -> set[tuple[int, int]]:
        return {(n.lineno, n.col_offset) for x in nodes for n in ast.walk(x)
                if isinstance(n, ast.Name) and hasattr(n, "lineno")}

    measuring: list[ast.AST] = [*measuring_statements(text, metric, held_functions, data_functions, trainers),
                                *(d for d in function_defs(tree) if d.name in held_functions)]
    # what builds an object there (`cross_val_score(Ridge(alpha=ALPHA), ...)`, `MLP(hidden=HIDDEN)`) is the model's
    built = places([c for x in measuring for c in ast.walk(x) if isinstance(c, ast.Call)
                    and called_name(c)[:1].isupper()])
    inside = places(measuring) - built
    defining = places([st for st in tree.body if sets_a_literal(st)])
    readers: dict[str, list[bool]] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id in settings and (n.lineno, n.col_offset) not in defining:
            readers.setdefault(n.id, []).append((n.lineno, n.col_offset) in inside)
    out = {name: settings[name] for name, seen in readers.items()
           if seen and all(seen) and not name_words(name) & _SPEED_WORDS and not names_the_measurement(name)
           and not any(re.search(rf"\b{re.escape(name)}\b", t) for t in elsewhere)}
    for label, (dump, fn, param) in params.items():  # typer's `def main(..., threshold: float = 0.5)`
        seen = [(n.lineno, n.col_offset) in inside for n in ast.walk(fn)
                if isinstance(n, ast.Name) and n.id == param and isinstance(n.ctx, ast.Load)]
        if seen and all(seen) and not name_words(param) & _SPEED_WORDS and not names_the_measurement(param):
            out[label] = dump
    # argparse's `--threshold`, read as `args.threshold` (an attribute starts where its object's name does); not
    # where the parsed arguments go on as a whole (`vars(args)`), whose reads by key cannot be followed
    whole = any((isinstance(n, ast.Call) and called_name(n) == "vars")
                or (isinstance(n, ast.Attribute) and n.attr == "__dict__") for n in ast.walk(tree))
    for label, (dump, dest) in ({} if whole else _option_defaults(tree)).items():
        seen = [(n.lineno, n.col_offset) in inside for n in ast.walk(tree)
                if isinstance(n, ast.Attribute) and n.attr == dest and isinstance(n.ctx, ast.Load)]
        # another file reads it where it reads the parsed arguments (`args.top_k`, `cfg["top_k"]`); a parameter of
        # the same name there (`def metrics(model, loader, top_k)` in the evaluation the flag is handed to) is not one
        if seen and all(seen) and not name_words(dest) & _SPEED_WORDS and not names_the_measurement(dest) \
                and not any(re.search(rf"\.{re.escape(dest)}\b|[\"']{re.escape(dest)}[\"']", t) for t in elsewhere):
            out[label] = dump
    return out


def _option_defaults(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """{"--name (its default)": (dump of the flag's keywords, its dest)} of argparse's `add_argument("--name",
    ...)` flags."""
    out: dict[str, tuple[str, str]] = {}
    for c in (c for c in ast.walk(tree) if isinstance(c, ast.Call) and called_name(c) == "add_argument"):
        flags = [a.value for a in c.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        long = [f for f in flags if f.startswith("--")] or [f for f in flags if not f.startswith("-")]
        dest = next((k.value.value for k in c.keywords if k.arg == "dest" and isinstance(k.value, ast.Constant)
                     and isinstance(k.value.value, str)), long[0].lstrip("-").replace("-", "_") if long else None)
        if dest and dest.isidentifier():
            out[f"{flags[0]} (its default)"] = ("".join(ast.dump(k) for k in c.keywords), dest)
    return out


def _parameter_defaults(tree: ast.Module, held_functions: Collection[str] = ()) \
        -> dict[str, tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    """{"fn(param=…)": (dump of its literal default, the function, the parameter)} of the functions not held
    whole; a typer `typer.Option(0.5, ...)` default counts by its value."""
    out: dict[str, tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, str]] = {}
    for fn in function_defs(tree):
        if fn.name in held_functions:
            continue
        for arg, default in _defaults(fn):
            value = default.args[0] if isinstance(default, ast.Call) and called_name(default) == "Option" \
                and default.args else default
            try:
                ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            out[f"{fn.name}({arg.arg}=…)"] = (ast.dump(default), fn, arg.arg)
    return out


class _Measured(NamedTuple):
    """What of a project measures (`_measured`), for the guard of a file edit and of a command."""
    names: set[str]  # functions held whole
    evaluating: set[str]  # functions that measure, of them
    helpers: set[str]  # what they call
    data_functions: set[str]  # held on their held-out side only
    trainers: set[str]  # functions that reach training
    asked: set[str]  # functions and classes whose call sites' arguments are held
    trees: dict[str, ast.Module]
    measuring: list[ast.AST]  # the definitions of the measuring functions and helpers
    project_trains: bool
    training: set[str]  # functions that train themselves (`train_one_epoch` with its `loss.backward()`)


def _measured(before: Mapping[str, str], metric: str) -> _Measured:
    names = evaluation_functions(before, metric)
    traced = metric_functions(before, metric)
    # helpers and held classes start from code that measures, not from a data loader named for data (its
    # augmentation helpers and Dataset classes stay free; its split statements are guarded below)
    evaluating = {n for n in names if n in traced or says_evaluation(n)}
    helpers = measuring_helpers(before, evaluating)
    names |= helpers
    trees, defs, training = project_functions(before)
    measuring = [d for name in evaluating | helpers for d in defs.get(name, [])]  # what it instantiates is held
    held_classes = {name for path, tree in trees.items()
                    for name in set(_evaluator_classes(tree, evaluating | helpers)) | _made_in(tree, measuring, path)}
    # calls whose arguments are held: of measuring functions that train nothing, even through what they call
    trainers = reaching_training(defs, training)
    asked = (evaluating | helpers | held_classes) - trainers
    # a function fixed only by a data name that builds the held-out part by name (torchvision's `load_data(
    # traindir, valdir)`) is held on its held-out side only (`measuring_statements`)
    data_functions = {n for n in names - evaluating - helpers if all(builds_held_out(d) for d in defs.get(n, []))}
    names -= data_functions
    # a script that trains nothing (a stand-in that prints a number computed from its settings) has no setting that
    # only the measurement reads: every one feeds the printed value the way training would
    project_trains = any(trains(t) for t in trees.values())
    return _Measured(names, evaluating, helpers, data_functions, trainers, asked, trees, measuring, project_trains,
                     training)


def measurement_only_options(before: Mapping[str, str], metric: str) -> set[str]:
    """The command-line options (as their parameter or `dest` names, `threshold`) whose value only the measurement
    reads: a typer / fire / click command's parameter, or an argparse flag read as `args.threshold` nowhere but in
    measuring code (`_measurement_only_settings`). Set on the command (`--threshold 0.3`) it tunes the measurement
    as surely as an edit of its default."""
    m = _measured(before, metric)
    if not m.project_trains:
        return set()
    out: set[str] = set()
    for path, tree in m.trees.items():
        elsewhere = [t for p, t in before.items() if p != path]
        only = _measurement_only_settings(tree, m.names, before[path], metric, m.data_functions, m.trainers,
                                          elsewhere)
        commands = _command_functions(tree)
        params = _parameter_defaults(tree, m.names)
        options = _option_defaults(tree)
        out |= {params[label][2] for label in only if label in params and params[label][1].name in commands}
        out |= {options[label][1] for label in only if label in options}
    return out


def _command_functions(tree: ast.Module) -> set[str]:
    """Functions whose parameters are command-line options: decorated as a command (`@app.command()`,
    `@click.command()`) or handed to `typer.run(main)` / `fire.Fire(main)`."""
    handed = {a.id for c in ast.walk(tree) if isinstance(c, ast.Call) and called_name(c) in ("run", "Fire")
              for a in c.args if isinstance(a, ast.Name)}
    return {d.name for d in function_defs(tree) if d.name in handed or any(
        called_name(x if isinstance(x, ast.Call) else ast.Call(func=x, args=[], keywords=[])) == "command"
        for x in d.decorator_list)}


def evaluation_edits(before: Mapping[str, str], after: Mapping[str, str], metric: str) -> list[str]:
    """The evaluation functions of `before` (see `evaluation_functions`) and the helpers they call
    (`measuring_helpers`) whose code `after` changes, as "path: name", and the measuring statements outside them
    (`measuring_statements`) it changes, as "path: line N (...)" ("after" holds only the files an edit changed).
    Compared as syntax trees: a comment or a blank line is not a change; a body, a default or a decorator is."""
    m = _measured(before, metric)
    names, evaluating, helpers, data_functions, trainers, asked, trees, measuring, project_trains, training = m
    out = []
    for path, text in sorted(after.items()):
        old_tree = parse_python(before.get(path, "")) if path.endswith(".py") else None
        if old_tree is None:
            continue
        new_tree = parse_python(text)
        new_defs: dict[str, list[str]] = {}
        for d in function_defs(new_tree) if new_tree is not None else []:
            new_defs.setdefault(d.name, []).append(ast.dump(d))
        old_defs: dict[str, list[str]] = {}
        for d in function_defs(old_tree):
            if d.name in names:
                old_defs.setdefault(d.name, []).append(ast.dump(d))
        out += [f"{path}: {name}" for name, dumps in old_defs.items()
                if sorted(new_defs.get(name, [])) != sorted(dumps)]
        held = set(_evaluator_classes(old_tree, evaluating | helpers)) | _made_in(old_tree, measuring, path)
        out += [f"{path}: {name}" for name in sorted(held)
                if _class_dump(old_tree, name) != (_class_dump(new_tree, name) if new_tree is not None else None)]
        changed = _statement_changes(before.get(path, ""), text, metric, names, data_functions, trainers)
        if changed:
            out.append(f"{path}: line {changed[0]} (where the metric is computed or the data split)")
        elsewhere = [t for p, t in before.items() if p != path]
        only = _measurement_only_settings(old_tree, names, before.get(path, ""), metric, data_functions, trainers,
                                          elsewhere) if project_trains else {}
        if only:
            now = {**_settings_by_name(new_tree, set(only)),
                   **{label: dump for label, (dump, _, _) in _parameter_defaults(new_tree).items()},
                   **{label: dump for label, (dump, _) in _option_defaults(new_tree).items()}} \
                if new_tree is not None else {}
            out += [f"{path}: {name} (a setting only the measurement reads)" for name in sorted(only)
                    if now.get(name) != only[name]]
        out += [f"{path}: {site}" for site in _setting_changes(old_tree, new_tree, asked)]
        # (not again where the class is held whole, or the assignment is a setting of the measurement already)
        attributes = {a: d for a, d in _measuring_attributes(old_tree, names).items() if a.split(".")[0] not in held
                      and f"{path}: {a.split('.')[1]} = … (a setting of the measurement)" not in out}
        now_attributes = _measuring_attributes(new_tree, names) if attributes else {}
        out += [f"{path}: {attr} (the object the evaluation reads)" for attr in sorted(attributes)
                if now_attributes.get(attr) != attributes[attr]]
        defaults = _default_constants(old_tree, names)
        now_defaults = _default_constants(new_tree, names) if defaults else {}
        out += [f"{path}: {name} (the default of a held evaluation function's parameter)" for name in sorted(defaults)
                if now_defaults.get(name) != defaults[name] and
                f"{path}: {name} (a setting only the measurement reads)" not in out]
        bound = _metric_bindings(old_tree, names)
        now_bound = _metric_bindings(new_tree, names) if bound else {}
        out += [f"{path}: {name} = … (the metric object the evaluation reads)" for name in sorted(bound)
                if now_bound.get(name) != bound[name]]
        out += [f"{path}: {what}" for what in _training_data_changes(old_tree, new_tree, metric, training)]
        out += [f"{path}: {what}" for what in label_leaks(trees.values(), old_tree, new_tree)]
        out += [f"{path}: {what}" for what in shared_augmentation(old_tree, new_tree)]
        out += [f"{path}: {what}" for what in validation_tail_changes(old_tree, new_tree)]
        out += [f"{path}: {what}" for what in cross_validation_leaks(old_tree, new_tree)]
        out += [f"{path}: {what}" for what in config_module_changes(before.get(path, ""), text, elsewhere)]
    return out

