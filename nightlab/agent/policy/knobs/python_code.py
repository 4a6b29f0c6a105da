"""Knobs in Python source, through libcst's public API: one `CSTVisitor` walk claims the literals that are knobs
(module constants, config dicts and classes, dataclass and argparse defaults, keyword arguments of known calls) and
places them among the tokenizer's literal tokens (the package docstring says how, and why not by regexes)."""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import libcst as cst
from libcst.metadata import ByteSpanPositionProvider, MetadataWrapper

from nightlab.agent.policy.knobs.kinds import (
    _ELEMENT_KIND,
    _KNOWN,
    _TUNABLE_KNOWN,
    _choice_group,
    _choices,
    classify,
    classify_path,
)
from nightlab.agent.policy.knobs.knob import Value, _Found, _knob_at, _line_starts
from nightlab.agent.policy.knobs.literals import _parse_number

_DICT_LIKE = frozenset({"dict", "SimpleNamespace", "Namespace", "EasyDict", "edict", "ConfigDict", "AttrDict", "Box",
                        "DictConfig"})
_SKIP_CALLS = frozenset({"train_test_split", "KFold", "StratifiedKFold", "GroupKFold", "ShuffleSplit",
                         "StratifiedShuffleSplit", "RepeatedKFold", "RepeatedStratifiedKFold", "TimeSeriesSplit",
                         "LeaveOneOut", "PredefinedSplit", "GroupShuffleSplit", "random_split", "cross_val_score",
                         "cross_validate", "cross_val_predict", "manual_seed", "manual_seed_all", "seed", "set_seed",
                         "seed_everything", "default_rng", "RandomState", "Generator", "PRNGKey", "randn", "rand",
                         "randint", "normal", "uniform", "print", "range", "trange", "enumerate", "zip", "round"})
_DROPOUT_CALLS = frozenset({"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
                            "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout"})
_DROPOUT_FUNCS = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout"})
_OPTIMIZERS = frozenset({"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
                         "Nadam", "Lion", "Adafactor", "LBFGS", "SparseAdam", "ASGD", "Rprop", "Ftrl"})
_CLIP_FUNCS = {"clip_grad_norm_": "max_norm", "clip_grad_norm": "max_norm", "clip_grad_value_": "clip_value"}
# Call keywords that are kinds we always trust inline (optimizer, loader, trainer arguments)...
_CALL_KINDS = frozenset({"lr", "batch_size", "epochs", "steps", "dropout", "weight_decay", "momentum", "warmup",
                         "clip", "depth"})
# ...and estimator / scheduler keywords of kind "other" that are nonetheless standard hyperparameters.
_SAFE_CALL_KW = frozenset({"C", "alpha", "gamma", "l1_ratio", "n_estimators", "min_samples_split",
                           "min_samples_leaf", "max_features", "max_leaf_nodes", "min_child_weight", "subsample",
                           "colsample_bytree", "num_leaves", "reg_alpha", "reg_lambda", "n_neighbors", "n_components",
                           "degree", "epsilon", "nu", "ccp_alpha", "label_smoothing", "T_max", "T_0", "T_mult",
                           "step_size", "eta_min", "factor", "patience", "pct_start", "hidden_layer_sizes",
                           "dim_feedforward", "betas", "n_iter_no_change", "l2_leaf_reg", "min_delta", "max_samples",
                           "var_smoothing", "lambda_l1", "lambda_l2", "min_impurity_decrease"})
_SAFE_WIDTH_KW = frozenset({"hidden_layer_sizes", "dim_feedforward"})


def _literal_choices(node: cst.BaseExpression | None) -> tuple[Value, ...]:
    """The values of a literal list / tuple / set of choices (argparse's `choices=`, absl's enum values); () when
    one is not a literal."""
    if not isinstance(node, cst.List | cst.Tuple | cst.Set):
        return ()
    lits = [_py_literal(el.value) for el in node.elements]
    return tuple(x for x in lits if x is not None) if all(x is not None for x in lits) else ()


# fastai's Learner methods that train, with the names of their first two parameters (epochs, learning rate)
_FASTAI_FITS = {"fit_one_cycle": ("n_epoch", "lr_max"), "fine_tune": ("epochs", "base_lr"),
                "fit_flat_cos": ("n_epoch", "lr"), "fit_sgdr": ("n_cycles", "lr_max")}
# absl's flag definitions (`flags.DEFINE_float(name, default, help)`): read like argparse's `add_argument`
_ABSL_DEFINES = frozenset({"DEFINE_float", "DEFINE_integer", "DEFINE_string", "DEFINE_bool", "DEFINE_boolean",
                           "DEFINE_enum"})
_CALL_FLAG_KW = frozenset({"nesterov", "amsgrad", "early_stopping", "bootstrap"})
_CONFIG_CLASS = re.compile(r"config|cfg|conf$|args|arguments|hparams|hyper|params|settings|options|opts|defaults|"
                           r"^hps?$", re.IGNORECASE)
_CONFIG_BASES = frozenset({"BaseModel", "BaseSettings", "NamedTuple", "Config", "Struct"})
_DATACLASS_DECOS = frozenset({"dataclass", "define", "frozen", "attrs", "mutable", "pydantic_dataclass"})
_CONFIG_VAR = re.compile(r"config|cfg|conf$|hparams|hyper|params|settings|options|opts|defaults|args",
                         re.IGNORECASE)
# Config-node constructors: a variable made by one of these holds settings whatever it is called (yacs's `_C = CN()`
# in Swin's / HRNet's defaults.py, `__C = edict()`, `C = ml_collections.ConfigDict()`)
_CONFIG_CTORS = frozenset({"CN", "CfgNode", "ConfigDict", "FrozenConfigDict", "EasyDict", "edict", "AttrDict",
                           "SimpleNamespace", "Namespace", "DictConfig"})
# Detectron2's lazy call: `L(cls)(...)` / `LazyCall(cls)(...)` records cls's keywords, to be called later
_LAZY_CALLS = frozenset({"L", "LazyCall"})

_Literal = cst.Integer | cst.Float | cst.Name | cst.SimpleString


def _py_literal(node: cst.BaseExpression) -> Value | None:
    """The Python value of a plain literal node (numbers, signed numbers, True/False, simple strings), else None."""
    try:
        if isinstance(node, cst.Integer):
            return int(ast.literal_eval(node.value))
        if isinstance(node, cst.Float):
            f = float(ast.literal_eval(node.value))
            return f if math.isfinite(f) else None
        if isinstance(node, cst.Name):
            return {"True": True, "False": False}.get(node.value)
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus | cst.Plus):
            inner = node.expression
            if isinstance(inner, cst.Integer | cst.Float) and not inner.lpar:
                v = _py_literal(inner)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    return -v if isinstance(node.operator, cst.Minus) else v
            return None
        if isinstance(node, cst.SimpleString):
            if set(node.prefix.lower()) & {"b", "f"}:
                return None
            s = ast.literal_eval(node.value)
            return s if isinstance(s, str) else None
    except (ValueError, SyntaxError):
        return None
    return None


def _leaf_of(node: cst.BaseExpression) -> cst.CSTNode:
    return node.expression if isinstance(node, cst.UnaryOperation) else node


def _callee(func: cst.BaseExpression) -> str | None:
    if isinstance(func, cst.Name):
        return func.value
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Call) and _callee(func.func) in _LAZY_CALLS and len(func.args) == 1 \
            and func.args[0].keyword is None:  # Detectron2's `L(torch.optim.SGD)(lr=0.02)`: SGD's keywords
        return _callee(func.args[0].value)
    return None


def _lazy_roots(module: cst.Module) -> set[str]:
    """The names a Detectron2 lazy config imports to set (``from ..common.optim import SGD as optimizer`` then
    ``optimizer.lr = 0.02``): a name imported from a module of its own package (a relative import: a later config
    takes ``train`` and ``optimizer`` from the one it extends) or, in a module that imports `LazyCall`, from any
    module is a config node, whatever it is called. Not a library's module (`from torch.backends import cudnn`;
    `cudnn.benchmark = True` is no setting)."""
    relative: set[str] = set()
    absolute: set[str] = set()
    lazy = False
    for st in module.body:
        if not isinstance(st, cst.SimpleStatementLine):
            continue
        for small in st.body:
            if not isinstance(small, cst.ImportFrom) or isinstance(small.names, cst.ImportStar):
                continue
            for alias in small.names:
                imported = alias.name.value if isinstance(alias.name, cst.Name) else ""
                lazy = lazy or imported == "LazyCall"
                bound = alias.asname.name if alias.asname is not None else alias.name
                if isinstance(bound, cst.Name):
                    (relative if small.relative else absolute).add(bound.value)
    return relative | (absolute if lazy else set())


def _computed_fields(node: cst.ClassDef) -> set[str]:
    """Fields of a config class that no one sets: declared `field(init=False)`, or assigned in `__post_init__`
    (`self.warmup_steps = int(0.1 * self.total_steps)`): their default is overwritten before it is read."""
    out: set[str] = set()
    for st in _suite(node.body):
        for small in (st.body if isinstance(st, cst.SimpleStatementLine) else ()):
            if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name) and \
                    isinstance(small.value, cst.Call) and _callee(small.value.func) == "field" and any(
                        a.keyword is not None and a.keyword.value == "init" and isinstance(a.value, cst.Name)
                        and a.value.value == "False" for a in small.value.args):
                out.add(small.target.value)
        if isinstance(st, cst.FunctionDef) and st.name.value == "__post_init__":
            for assign in _walk_assigns(st.body):
                for t in assign.targets:
                    if isinstance(t.target, cst.Attribute) and isinstance(t.target.value, cst.Name) and \
                            t.target.value.value == "self" and not _reads_attribute(assign.value, t.target.attr.value):
                        out.add(t.target.attr.value)  # not `self.betas = tuple(self.betas)`: the default is read
    return out


def _reads_attribute(node: cst.CSTNode, name: str) -> bool:
    found: list[bool] = []

    class _Visitor(cst.CSTVisitor):
        def visit_Attribute(self, n: cst.Attribute) -> None:
            if n.attr.value == name:
                found.append(True)

    node.visit(_Visitor())
    return bool(found)


def _walk_assigns(node: cst.CSTNode) -> list[cst.Assign]:
    found: list[cst.Assign] = []

    class _Visitor(cst.CSTVisitor):
        def visit_Assign(self, n: cst.Assign) -> None:
            found.append(n)

    node.visit(_Visitor())
    return found


def _suite(body: cst.BaseSuite) -> Sequence[cst.BaseStatement | cst.BaseSmallStatement]:
    if isinstance(body, cst.IndentedBlock):
        return body.body
    if isinstance(body, cst.SimpleStatementSuite):
        return body.body
    return ()


def _attr_path(node: cst.BaseExpression) -> str | None:
    """``config.model.hidden_size`` for an attribute chain rooted at a name, else None (``f().x``, ``a[0].x``)."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name) or not parts:
        return None
    return ".".join([node.value, *reversed(parts)])


def _target_names(node: cst.BaseExpression) -> Iterator[str]:
    if isinstance(node, cst.Name):
        yield node.value
    elif isinstance(node, cst.Attribute):
        path = _attr_path(node)
        if path is not None:
            yield path
    elif isinstance(node, cst.Tuple | cst.List):
        for el in node.elements:
            yield from _target_names(el.value)
    elif isinstance(node, cst.StarredElement):
        yield from _target_names(node.value)


@dataclass
class _Pending:
    """A knob found in the tree whose position is filled in when code generation reaches its literal."""

    name: str
    kind: str
    style: str
    value: Value
    leaf: cst.CSTNode
    node: cst.CSTNode  # the claimed expression: the leaf, or a signed number's UnaryOperation
    choices: tuple[Value, ...] = ()
    ordinal: int = -1  # the leaf's place among the module's literal tokens, in source order (-1: not reached)


class _PyScanner(cst.CSTVisitor):
    """Walks a libcst module once, in source order: claims the literal nodes that are knobs, and numbers every
    literal token it passes (`_LITERAL_TOKENS`) so that a claimed one can be found among the tokenizer's.

    Handlers for Module / ClassDef / FunctionDef / Call / For run when the walk enters their node — before their
    children — and claim literal nodes below it; a claimed node's ordinal is recorded when the walk reaches it.
    The walk never descends into an f-string for its count (the tokenizer sees one string there, or a run of
    f-string tokens counted as one), but handlers still see the calls inside it; a literal they claim there has no
    ordinal and is placed by the exact fallback.
    """

    def __init__(self, texts: Sequence[str]) -> None:
        super().__init__()
        self.texts = texts
        self.pending: list[_Pending] = []
        self.claimed: set[int] = set()
        self.leaves: dict[int, _Pending] = {}
        self.scope: list[tuple[str, str]] = []
        self.local_callables: set[str] = set()
        self.lazy_roots: set[str] = set()
        self.count = 0  # literal tokens passed so far
        self.in_fstring = 0  # depth of f-strings the walk is inside

    # ---- visitor hooks ----------------------------------------------------------------------------------------

    def on_visit(self, node: cst.CSTNode) -> bool:
        t = type(node)
        handler = _HANDLERS.get(t)
        if handler is not None:
            handler(self, node)
        if t in _TOKEN_LEAVES or (t is cst.Name and node.value in _NAME_LITERALS):  # type: ignore[attr-defined]
            if not self.in_fstring:
                p = self.leaves.get(id(node))
                if p is not None:
                    p.ordinal = self.count
                self.count += 1
        elif t is cst.FormattedString:
            if not self.in_fstring:
                self.count += 1  # one string token (or one f-string's run of tokens)
            self.in_fstring += 1
        # below a name, a literal, an operator, whitespace, an import or `name.attr` there is no literal token and
        # nothing to claim: not walking it spares libcst rebuilding its nodes, most of a walk's cost (bench/knobs.py)
        if t is cst.Attribute:  # `None.__class__` holds a literal token
            value = node.value  # type: ignore[attr-defined]
            return type(value) is not cst.Name or value.value in _NAME_LITERALS
        return t not in _NOTHING_BELOW

    def on_leave(self, original_node: cst.CSTNode) -> None:
        t = type(original_node)
        if t is cst.ClassDef or t is cst.FunctionDef:
            self.scope.pop()
        elif t is cst.FormattedString:
            self.in_fstring -= 1

    # ---- registration -----------------------------------------------------------------------------------------

    def _register(self, name: str, kind: str, style: str, value: Value, node: cst.BaseExpression,
                  choices: tuple[Value, ...] = ()) -> None:
        if id(node) in self.claimed:
            return
        self.claimed.add(id(node))
        p = _Pending(name, kind, style, value, _leaf_of(node), node, choices)
        self.pending.append(p)
        self.leaves[id(p.leaf)] = p

    def _scalar(self, full: str, key: str, value: Value, node: cst.BaseExpression, mode: str, style: str,
                callee: str | None = None) -> None:
        """Make a knob of one literal if its name says it is one; `mode` decides how strict to be."""
        if isinstance(value, str):
            group = _choice_group(full, value, callee)
            if group is None:
                return
            self._register(full, "choice", style, value, node, _choices(group, value, self.texts))
            return
        kind = classify_path([*full.split(".")[:-1], key])
        if kind == "split":
            return
        if isinstance(value, bool) and kind not in ("seed", "logging"):
            kind = "flag"
        if mode == "function" and kind not in _KNOWN:
            return
        self._register(full, kind, style, value, node)

    def _value(self, full: str, key: str, node: cst.BaseExpression, mode: str, style: str) -> None:
        """Knobs in the value of an assignment, dict entry or default: a literal, a dict, a list of sizes."""
        v = _py_literal(node)
        if v is not None:
            self._scalar(full, key, v, node, mode, style)
            return
        if isinstance(node, cst.Dict) or (isinstance(node, cst.Call) and _callee(node.func) in _DICT_LIKE):
            if mode == "module":
                if not (_CONFIG_VAR.search(key) or _has_known_key(node)):
                    return
                mode = "config"
            for k, val in _dict_items(node):
                self._value(f"{full}.{k}", k, val, mode, "dict" if style != "dataclass" else style)
            return
        if isinstance(node, cst.List | cst.Tuple):
            elem_kind = _ELEMENT_KIND.get(classify(key))
            if elem_kind is None:
                return
            for i, el in enumerate(node.elements):
                ev = _py_literal(el.value)
                if isinstance(ev, int | float) and not isinstance(ev, bool):
                    self._register(f"{full}[{i}]", elem_kind, style, ev, el.value)
            return
        if isinstance(node, cst.Call) and _callee(node.func) == "field" and mode == "config":
            for arg in node.args:
                if arg.keyword is not None and arg.keyword.value == "default":
                    self._value(full, key, arg.value, mode, style)

    # ---- scopes -----------------------------------------------------------------------------------------------

    def _walk(self, stmts: Sequence[cst.BaseStatement | cst.BaseSmallStatement], in_loop: bool,
              counts: Counter[str], smalls: list[tuple[cst.BaseSmallStatement, bool]]) -> None:
        """Statements of one scope (not nested defs/classes): count assignments per name, collect small statements
        with whether they sit in a loop. A name assigned twice or augmented is a variable, not a knob."""
        for st in stmts:
            if isinstance(st, cst.SimpleStatementLine):
                self._walk(st.body, in_loop, counts, smalls)
            elif isinstance(st, cst.BaseSmallStatement):
                smalls.append((st, in_loop))
                if isinstance(st, cst.Assign):
                    for t in st.targets:
                        counts.update(_target_names(t.target))
                elif isinstance(st, cst.AnnAssign) and st.value is not None:
                    counts.update(_target_names(st.target))
                elif isinstance(st, cst.AugAssign):
                    counts.update(_target_names(st.target))
                    counts.update(_target_names(st.target))
            elif isinstance(st, cst.FunctionDef | cst.ClassDef):
                continue
            elif isinstance(st, cst.If):
                self._walk(_suite(st.body), in_loop, counts, smalls)
                if st.orelse is not None:
                    self._walk([st.orelse] if isinstance(st.orelse, cst.If) else _suite(st.orelse.body), in_loop,
                               counts, smalls)
            elif isinstance(st, cst.For):
                counts.update(_target_names(st.target))
                self._walk(_suite(st.body), True, counts, smalls)
                if st.orelse is not None:
                    self._walk(_suite(st.orelse.body), True, counts, smalls)
            elif isinstance(st, cst.While):
                self._walk(_suite(st.body), True, counts, smalls)
            elif isinstance(st, cst.With):
                for item in st.items:
                    if item.asname is not None:
                        counts.update(_target_names(item.asname.name))
                self._walk(_suite(st.body), in_loop, counts, smalls)
            elif isinstance(st, cst.Try | cst.TryStar):
                self._walk(_suite(st.body), in_loop, counts, smalls)
                for h in st.handlers:
                    self._walk(_suite(h.body), in_loop, counts, smalls)
                if st.orelse is not None:
                    self._walk(_suite(st.orelse.body), in_loop, counts, smalls)
                if st.finalbody is not None:
                    self._walk(_suite(st.finalbody.body), in_loop, counts, smalls)
            elif isinstance(st, cst.Match):
                for case in st.cases:
                    self._walk(_suite(case.body), in_loop, counts, smalls)

    def _block(self, stmts: Sequence[cst.BaseStatement | cst.BaseSmallStatement], prefix: str, mode: str,
               style: str, computed: Collection[str] = ()) -> None:
        counts: Counter[str] = Counter()
        smalls: list[tuple[cst.BaseSmallStatement, bool]] = []
        self._walk(stmts, False, counts, smalls)
        last = _last_of_redefined(stmts, counts)
        roots = {t.target.value for small, _ in smalls if isinstance(small, cst.Assign)
                 for t in small.targets if isinstance(t.target, cst.Name) and isinstance(small.value, cst.Call)
                 and _callee(small.value.func) in _CONFIG_CTORS} | (self.lazy_roots if mode == "module" else set())
        for small, in_loop in smalls:
            if in_loop:
                continue
            if isinstance(small, cst.Assign) and len(small.targets) == 1:
                target, value = small.targets[0].target, small.value
            elif isinstance(small, cst.AnnAssign) and small.value is not None:
                target, value = small.target, small.value
            else:
                continue
            if isinstance(target, cst.Attribute):
                # a field set on a config object: ml_collections' `config.learning_rate = 0.1` in get_config(),
                # detectron2's `cfg.SOLVER.BASE_LR = 0.00025`, `args.epochs = 20` after parsing, a lazy config's
                # `optimizer.lr = 0.02` (never `self.x`, a module's attribute or anything set twice)
                path = _attr_path(target)
                root = path.split(".", 1)[0] if path is not None else ""
                if path is None or counts[path] != 1 or not (_CONFIG_VAR.search(root) or root in roots):
                    continue
                self._value(prefix + path, path.rsplit(".", 1)[1], value, mode, style)
                continue
            if not isinstance(target, cst.Name) or target.value.startswith("__") or target.value in computed or (
                    counts[target.value] != 1 and last.get(target.value) is not small):
                continue
            self._value(prefix + target.value, target.value, value, mode, style)

    def _qual(self) -> str:
        return ".".join(n for _, n in self.scope)

    def on_module(self, node: cst.Module) -> None:
        self.local_callables = set(_def_names(node.body))
        self.lazy_roots = _lazy_roots(node)
        self._block(node.body, "", "module", "constant")

    def on_class(self, node: cst.ClassDef) -> None:
        self.scope.append(("class", node.name.value))
        if _is_config_class(node):
            self._block(_suite(node.body), self._qual() + ".", "config", "dataclass", _computed_fields(node))

    def on_def(self, node: cst.FunctionDef) -> None:
        parent_is_class = bool(self.scope) and self.scope[-1][0] == "class"
        outer = self._qual()
        fname = node.name.value
        self.scope.append(("def", fname))
        qual = self._qual()
        sig = f"{outer}." if fname == "__init__" and parent_is_class else f"{qual}."
        params = node.params
        for p in (*params.posonly_params, *params.params, *params.kwonly_params):
            if p.default is not None and p.name.value not in ("self", "cls"):
                default = p.default
                if isinstance(default, cst.Call) and _callee(default.func) in ("Option", "Argument") and \
                        default.args and default.args[0].keyword is None:
                    default = default.args[0].value  # typer's `lr: float = typer.Option(1e-3, help=...)`
                self._value(sig + p.name.value, p.name.value, default, "function", "signature")
        self._block(_suite(node.body), qual + ".", "function", "constant")

    def on_for(self, node: cst.For) -> None:
        if not isinstance(node.target, cst.Name):
            return
        low = node.target.value.lower()
        if "epoch" in low:
            name = "epochs"
        elif "step" in low or "iter" in low:
            name = "steps"
        else:
            return
        it = node.iter
        if isinstance(it, cst.Call) and _callee(it.func) not in ("range", "trange") and it.args:
            it = it.args[0].value  # tqdm(range(n))
        if not (isinstance(it, cst.Call) and _callee(it.func) in ("range", "trange")):
            return
        pos = [a.value for a in it.args if a.keyword is None and not a.star]
        if not pos or len(pos) > 3:
            return
        stop = pos[0] if len(pos) == 1 else pos[1]
        v = _py_literal(stop)
        if isinstance(v, int) and not isinstance(v, bool):
            self._register(name, name, "call", v, stop)

    def on_call(self, node: cst.Call) -> None:
        callee = _callee(node.func)
        if callee is None:
            return
        if callee in ("add_argument", "option"):
            self._argparse(node)
            return
        if callee in _ABSL_DEFINES:
            self._absl(node)
            return
        if callee in ("get", "getenv"):
            self._env(node, callee)
            return
        if callee == "getattr":
            self._getattr(node)
            return
        if callee in _SKIP_CALLS or callee in _DICT_LIKE or callee.startswith(("make_", "load_", "fetch_")):
            return
        pos = [a.value for a in node.args if a.keyword is None and not a.star]
        if callee in _DROPOUT_CALLS:
            self._positional(callee, "p", "dropout", pos[:1])
        elif callee in _DROPOUT_FUNCS:
            self._positional(callee, "p", "dropout", pos[1:2])
        elif callee in _OPTIMIZERS:
            lits = [p for p in pos[:2] if isinstance(_py_literal(p), float | int)]
            self._positional(callee, "lr", "lr", lits[:1])
        elif callee == "DataLoader":
            self._positional(callee, "batch_size", "batch_size", pos[1:2])
        elif callee in _FASTAI_FITS:  # `learn.fit_one_cycle(5, 1e-3)`: epochs, then the peak learning rate
            epochs, lr = _FASTAI_FITS[callee]
            self._positional(callee, epochs, "epochs", [p for p in pos[:1] if isinstance(_py_literal(p), int)])
            self._positional(callee, lr, "lr", [p for p in pos[1:2] if isinstance(_py_literal(p), float)])
        elif callee in _CLIP_FUNCS:
            self._positional(callee, _CLIP_FUNCS[callee], "clip", pos[1:2])
        for arg in node.args:
            if arg.keyword is None:
                continue
            kw = arg.keyword.value
            if _CONFIG_VAR.search(kw) and (isinstance(arg.value, cst.Dict) or (
                    isinstance(arg.value, cst.Call) and _callee(arg.value.func) in _DICT_LIKE)):
                # the settings handed whole to a call: W&B's `wandb.init(config={"lr": 0.02, ...})` (read back as
                # `wandb.config.lr`), a library's `lgb.train(params=dict(...))`, `Trainer(hparams=dict(...))`
                owner = "wandb" if callee == "init" and kw == "config" else callee
                self._value(f"{owner}.{kw}", kw, arg.value, "module", "dict")
                continue
            self._call_kw(callee, kw, arg.value)

    # ---- call styles ------------------------------------------------------------------------------------------

    def _positional(self, callee: str, param: str, kind: str, nodes: Sequence[cst.BaseExpression]) -> None:
        for n in nodes:
            v = _py_literal(n)
            if isinstance(v, int | float) and not isinstance(v, bool):
                self._register(f"{callee}.{param}", kind, "call", v, n)

    def _call_kw(self, callee: str, kw: str, node: cst.BaseExpression) -> None:
        """Inline keyword literals: only kinds that are safe to change in place (an optimizer's lr, a loader's
        batch size, an estimator's C), never shapes of library layers, seeds or split sizes."""
        local = callee in self.local_callables
        kind = "dropout" if callee in _DROPOUT_CALLS | _DROPOUT_FUNCS and kw in ("p", "rate") else classify(kw)
        if kind in ("seed", "split", "logging", "fixed"):
            return
        allowed = (kind in _CALL_KINDS or kw in _SAFE_CALL_KW
                   or (kind in ("width", "seq_len") and (local or kw in _SAFE_WIDTH_KW)))
        name = f"{callee}.{kw}"
        if isinstance(node, cst.List | cst.Tuple):
            elem_kind = _ELEMENT_KIND.get(kind)
            if elem_kind is None or not allowed:
                return
            for i, el in enumerate(node.elements):
                ev = _py_literal(el.value)
                if isinstance(ev, int | float) and not isinstance(ev, bool):
                    self._register(f"{name}[{i}]", elem_kind, "call", ev, el.value)
            return
        v = _py_literal(node)
        if v is None:
            return
        if isinstance(v, str):
            group = _choice_group(name, v, callee)
            if group is not None:
                self._register(name, "choice", "call", v, node, _choices(group, v, self.texts))
        elif isinstance(v, bool):
            if kw in _CALL_FLAG_KW or local:
                self._register(name, "flag", "call", v, node)
        elif allowed:
            self._register(name, kind, "call", v, node)

    def _argparse(self, node: cst.Call) -> None:
        """``add_argument("--lr", type=float, default=0.01)`` (and click's ``option``): the default is the knob,
        named by its long option string."""
        opts = [v for a in node.args if a.keyword is None and isinstance(v := _py_literal(a.value), str)]
        option = next((o for o in opts if o.startswith("--")), None) or next((o for o in opts if o.startswith("-")),
                                                                           None)
        if option is None:
            return
        kws = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
        dnode = kws.get("default")
        if dnode is None:
            return
        v = _py_literal(dnode)
        if v is None:
            return
        typ = kws.get("type")
        type_name = typ.value if isinstance(typ, cst.Name) else None
        if isinstance(v, str) and (num := _parse_number(v) if type_name in ("float", "int") else None) is not None:
            v = float(num) if type_name == "float" and isinstance(num, int) else num
        self._option(option, option.lstrip("-"), v, dnode, _literal_choices(kws.get("choices")))

    def _option(self, option: str, key: str, v: Value, dnode: cst.BaseExpression, choices: tuple[Value, ...]) -> None:
        """An option's default as a knob named by the option: a string among its choices is a choice, another
        string a scalar setting; a number or a switch is classified by the option's name."""
        if isinstance(v, str):
            if choices:
                self._register(option, "choice", "argparse", v, dnode, choices)
            else:
                self._scalar(option, key, v, dnode, "module", "argparse")
            return
        kind = classify(key)
        if kind == "split":
            return
        if isinstance(v, bool) and kind not in ("seed", "logging"):
            kind = "flag"
        self._register(option, kind, "argparse", v, dnode, choices)

    def _absl(self, node: cst.Call) -> None:
        """absl's ``flags.DEFINE_float("learning_rate", 0.1, "help")``: the default (second argument, or
        ``default=``) is the knob, named like the option the command line sets (``--learning_rate``);
        ``DEFINE_enum``'s values (third argument, or ``enum_values=``) are its choices."""
        pos = [a.value for a in node.args if a.keyword is None and not a.star]
        kws = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
        flag = _py_literal(pos[0]) if pos else _py_literal(kws["name"]) if "name" in kws else None
        dnode = pos[1] if len(pos) > 1 else kws.get("default")
        if not isinstance(flag, str) or not flag.isidentifier() or dnode is None:
            return
        v = _py_literal(dnode)
        if v is None:
            return
        cnode = pos[2] if len(pos) > 2 and _callee(node.func) == "DEFINE_enum" else kws.get("enum_values")
        self._option(f"--{flag}", flag, v, dnode, _literal_choices(cnode))

    def _getattr(self, node: cst.Call) -> None:
        """``args.decoder_embed_dim = getattr(args, "decoder_embed_dim", 512)``: the fallback is the setting where
        the command leaves the option out (fairseq's architecture functions fill the model's settings this way,
        with options declared without a default). Named by the function and the attribute; only known tunable kinds."""
        pos = [a.value for a in node.args if a.keyword is None and not a.star]
        if len(pos) != 3:
            return
        attr, v = _py_literal(pos[1]), _py_literal(pos[2])
        if not isinstance(attr, str) or not attr.isidentifier() or not isinstance(v, int | float) \
                or isinstance(v, bool):
            return
        kind = classify(attr)
        if kind not in _TUNABLE_KNOWN:
            return
        qual = self._qual()
        self._register(f"{qual}.{attr}" if qual else attr, kind, "getattr", v, pos[2])

    def _env(self, node: cst.Call, callee: str) -> None:
        """``os.environ.get("LR", "0.01")`` / ``os.getenv("EPOCHS", 5)``: the fallback default is the knob."""
        func = node.func
        if callee == "get":
            recv = func.value if isinstance(func, cst.Attribute) else None
            if not ((isinstance(recv, cst.Attribute) and recv.attr.value == "environ")
                    or (isinstance(recv, cst.Name) and recv.value == "environ")):
                return
        pos = [a.value for a in node.args if a.keyword is None and not a.star]
        if len(pos) < 2:
            return
        var = _py_literal(pos[0])
        v = _py_literal(pos[1])
        if not isinstance(var, str) or v is None:
            return
        if isinstance(v, str):
            num = _parse_number(v)
            if num is None:
                self._scalar(f"${var}", var, v, pos[1], "module", "env")
                return
            v = num
        kind = classify(var)
        if kind == "split":
            return
        if isinstance(v, bool) and kind not in ("seed", "logging"):
            kind = "flag"
        self._register(f"${var}", kind, "env", v, pos[1])


_HANDLERS: dict[type, Any] = {
    cst.Module: _PyScanner.on_module,
    cst.ClassDef: _PyScanner.on_class,
    cst.FunctionDef: _PyScanner.on_def,
    cst.Call: _PyScanner.on_call,
    cst.For: _PyScanner.on_for,
}


def _last_of_redefined(stmts: Sequence[cst.BaseStatement | cst.BaseSmallStatement],
                       counts: Counter[str]) -> dict[str, cst.BaseSmallStatement]:
    """Names set to a literal more than once, each time as a statement of the block itself (not in a branch or a
    loop) and never read in between (`LR = 0.1` … `LR = 0.05`, a notebook's cell run again): the last is what the
    code after it reads, so it is the knob; the earlier ones are dead. Any other name set twice is a variable."""
    flat: list[cst.BaseStatement | cst.BaseSmallStatement] = []
    for st in stmts:
        flat.extend(st.body if isinstance(st, cst.SimpleStatementLine) else [st])
    at: dict[str, list[int]] = {}
    for i, st in enumerate(flat):
        target = (st.targets[0].target if isinstance(st, cst.Assign) and len(st.targets) == 1 else
                  st.target if isinstance(st, cst.AnnAssign) and st.value is not None else None)
        if isinstance(target, cst.Name) and counts[target.value] > 1 and _py_literal(
                st.value) is not None:  # type: ignore[union-attr]
            at.setdefault(target.value, []).append(i)
    out: dict[str, cst.BaseSmallStatement] = {}
    for name, where in at.items():
        if len(where) != counts[name]:
            continue  # also set elsewhere: in a branch, a loop, by `+=`, or to something computed
        between = [flat[i] for i in range(where[0] + 1, where[-1]) if i not in where]
        if any(not isinstance(st, cst.FunctionDef | cst.ClassDef) and _mentions(st, name) for st in between):
            continue  # read between the two: both values are used
        last = flat[where[-1]]
        if isinstance(last, cst.BaseSmallStatement):
            out[name] = last
    return out


def _mentions(node: cst.CSTNode, name: str) -> bool:
    """Whether `name` occurs as a name anywhere in `node`."""
    class _Find(cst.CSTVisitor):
        found = False

        def visit_Name(self, n: cst.Name) -> None:
            if n.value == name:
                self.found = True

    finder = _Find()
    node.visit(finder)
    return finder.found


def _dict_items(node: cst.BaseExpression) -> Iterator[tuple[str, cst.BaseExpression]]:
    """String-keyed entries of a dict literal or of ``dict(lr=...)`` / ``SimpleNamespace(...)``-like calls."""
    if isinstance(node, cst.Dict):
        for el in node.elements:
            if isinstance(el, cst.DictElement):
                k = _py_literal(el.key)
                if isinstance(k, str) and k:
                    yield k, el.value
    elif isinstance(node, cst.Call):
        for arg in node.args:
            if arg.keyword is not None:
                yield arg.keyword.value, arg.value
            elif not arg.star and isinstance(arg.value, cst.Dict):
                yield from _dict_items(arg.value)


def _has_known_key(node: cst.BaseExpression, depth: int = 0) -> bool:
    if depth > 4:
        return False
    for k, v in _dict_items(node):
        if classify(k) in _TUNABLE_KNOWN:
            return True
        if isinstance(v, cst.Dict | cst.Call) and _has_known_key(v, depth + 1):
            return True
    return False


def _def_names(stmts: Sequence[cst.BaseStatement | cst.BaseSmallStatement]) -> Iterator[str]:
    """Names of classes and functions defined anywhere in the file: calls to them may take width keywords."""
    for st in stmts:
        if isinstance(st, cst.FunctionDef | cst.ClassDef):
            yield st.name.value
            yield from _def_names(_suite(st.body))
        elif isinstance(st, cst.If | cst.With | cst.Try | cst.For | cst.While):
            yield from _def_names(_suite(st.body))


def _is_config_class(node: cst.ClassDef) -> bool:
    for d in node.decorators:
        expr = d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator
        if _callee(expr) in _DATACLASS_DECOS:
            return True
    if any(_callee(b.value) in _CONFIG_BASES for b in node.bases):
        return True
    return bool(_CONFIG_CLASS.search(node.name.value))


# the tree's literal leaves that are one token each, and the names that are literals (keywords: never anything else)
_TOKEN_LEAVES = frozenset({cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString})
_NAME_LITERALS = frozenset({"True", "False", "None"})


def _nothing_below() -> frozenset[type]:
    """libcst's node types whose subtree holds no literal token and no node a handler claims from: names and
    literals (counted as they are reached), operators, brackets, commas, whitespace, imports and the statements
    that hold only names."""
    bases = (cst.BaseBinaryOp, cst.BaseBooleanOp, cst.BaseCompOp, cst.BaseUnaryOp, cst.BaseAugOp)
    plain = {cst.Name, cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.Ellipsis, cst.Comma, cst.Colon,
             cst.Dot, cst.AssignEqual, cst.Semicolon, cst.ImportStar, cst.LeftParen, cst.RightParen,
             cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace, cst.RightCurlyBrace, cst.Newline,
             cst.Comment, cst.EmptyLine, cst.TrailingWhitespace, cst.ParenthesizedWhitespace, cst.SimpleWhitespace,
             cst.Import, cst.ImportFrom, cst.ImportAlias, cst.Global, cst.Nonlocal, cst.Pass, cst.Break,
             cst.Continue}
    ops = {c for c in vars(cst).values() if isinstance(c, type) and issubclass(c, bases) and c not in bases}
    return frozenset(plain | ops)


_NOTHING_BELOW = _nothing_below()


def _literal_tokens(body: str) -> list[tuple[int, int]] | None:
    """(row, column) where every literal token starts — numbers, strings, True/False/None, and each f-string as
    one — in source order; None when the tokenizer refuses the text."""
    out: list[tuple[int, int]] = []
    depth = 0
    names = _NAME_LITERALS
    try:
        for tok in tokenize.generate_tokens(io.StringIO(body).readline):
            typ = tok.type
            if depth:
                name = tokenize.tok_name.get(typ, "")
                if name.endswith("STRING_START"):
                    depth += 1
                elif name.endswith("STRING_END"):
                    depth -= 1
                continue
            if typ == tokenize.NUMBER or typ == tokenize.STRING or (typ == tokenize.NAME and tok.string in names):
                out.append(tok.start)
            elif tokenize.tok_name.get(typ, "").endswith("STRING_START"):  # Python 3.12+: f"..." is several tokens
                out.append(tok.start)
                depth = 1
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    return out


def _spans_by_token(body: str, scanner: _PyScanner) -> dict[int, tuple[int, int]] | None:
    """Where each claimed literal lies in `body` (character offsets, by the index of its `_Pending`), found as the
    n-th literal token; None when the tree and the tokenizer do not line up, or a literal was not reached."""
    if any(p.ordinal < 0 for p in scanner.pending):
        return None
    starts = _literal_tokens(body)
    if starts is None or len(starts) != scanner.count:
        return None
    lines = _line_starts(body)
    out: dict[int, tuple[int, int]] = {}
    for k, p in enumerate(scanner.pending):
        row, col = starts[p.ordinal]
        s = lines[row - 1] + col
        value: str = p.leaf.value  # type: ignore[attr-defined]
        e = s + len(value)
        if body[s:e] != value:
            return None
        if isinstance(p.node, cst.UnaryOperation):
            # the sign: the operator just before the literal, across spaces, line breaks and comments in brackets
            q = s - 1
            while q >= 0 and body[q] in " \t\f\r\n\\":
                q -= 1
            if q < 0 or body[q] not in "+-":
                return None
            s = q
        out[k] = (s, e)
    return out


def _spans_exact(module: cst.Module, body: str, scanner: _PyScanner) -> dict[int, tuple[int, int]]:
    """The same spans from libcst's `ByteSpanPositionProvider` (exact for every node, about twice the cost)."""
    spans = MetadataWrapper(module, unsafe_skip_copy=True).resolve(ByteSpanPositionProvider)
    if body.isascii():
        def char(b: int) -> int:
            return b
    else:
        raw = body.encode("utf-8")

        def char(b: int) -> int:
            return len(raw[:b].decode("utf-8"))
    out: dict[int, tuple[int, int]] = {}
    for k, p in enumerate(scanner.pending):
        leaf, node = spans.get(p.leaf), spans.get(p.node)
        if leaf is None or node is None:
            continue
        start = spans[p.node.operator].start if isinstance(p.node, cst.UnaryOperation) else leaf.start
        out[k] = (char(start), char(leaf.start + leaf.length))
    return out


def _scan_python(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    # libcst drops a byte-order mark: positions in the parsed body are one character before the text's
    bom = 1 if text.startswith("\ufeff") else 0
    body = text[bom:]
    try:
        module = cst.parse_module(body)
    except (cst.ParserSyntaxError, ValueError, RecursionError):
        return []
    scanner = _PyScanner(texts)
    try:
        module.visit(scanner)
    except RecursionError:
        return []
    spans = _spans_by_token(body, scanner)
    if spans is None:
        spans = _spans_exact(module, body, scanner)
    starts = _line_starts(text)
    out = []
    for k, p in enumerate(scanner.pending):
        if k not in spans:
            continue
        s, e = (x + bom for x in spans[k])
        if not text[s:e].endswith(getattr(p.leaf, "value", "\0")):
            continue
        out.append(_Found(_knob_at(path, text, starts, p.name, p.value, p.kind, p.style, s, p.choices), s, e))
    return out
