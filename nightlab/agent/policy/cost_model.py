"""How long a run will take after a change of its knobs: a cost per layer type read from the code, corrected by the
measured durations of past runs.

The policy only proposes a change whose predicted run time fits the timeout (`BuiltinPolicy._affordable`); a
prediction that is too low costs a timeout (and the timeout fix then halves the training length), one that is too
high hides a good move. A run's time is modelled as a fixed start-up (interpreter, imports, data) plus a part that
scales with the change:

- the training length (epochs, steps) scales it linearly;
- a width scales each layer it sizes by what that layer's compute does (`width_factor`): a Linear layer costs
  in·out per sample (r² when both sides widen, r when one does), a convolution in·out·k² per position (r² for a
  channel-to-channel conv), attention 4·d² projections, a recurrent layer gates·h·(in+h). Small layers also pay a
  fixed cost per call (kernel launch, autograd bookkeeping) that does not grow with the width, so widening a
  16-unit layer costs far less than its r² says. With no layer recognised, r^1.5 stands in;
- depth scales it linearly; the batch size depends on how the training length is counted: in epochs a larger batch
  takes fewer steps over the same samples (a smaller one costs the square root of its extra optimizer steps), in
  optimizer steps (nanoGPT's `max_iters`, a `TRAIN_STEPS` constant: a steps knob and no epochs knob) every step
  sees r times the samples, so the time scales linearly (nanoGPT's `batch_size` 16 -> 32, priced at the parent's
  34 s, took 59 s against a 60 s timeout).

A change of the code is priced by the whole model's cost after it over before it (`code_factor`): every layer the
code builds, sized from constants, parameter defaults, what calls pass and a config object's fields (read as the
settings take effect: nanoGPT's `config.n_embd` is its config file's `n_embd`), counted as often as loops and the
classes around it build it.

Past runs correct both parts (`RunTimeModel`): the progress hook times the start-up of every torch run (the seconds
before its first optimizer step and after its last: analysis.fixed_seconds); elsewhere two runs that differ only in
the training length give it (t = a + b·L through both); two runs that differ only in the width give the fixed cost
of a layer call on this machine (`fit_call_cost`), the one thing the code cannot show; other knobs' priors are bent
to agree with what was measured.
"""

from __future__ import annotations

import ast
import math
import statistics
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nightlab.agent.code_reach import dotted_name

# what a call into a layer costs beyond its arithmetic, in multiply-adds per batch (about 15 µs of one CPU thread)
CALL_COST = 3e5
DEFAULT_BATCH = 64
DEFAULT_POSITIONS = 64  # positions a convolution visits per sample when the input size cannot be read (8x8)
DEFAULT_WIDTH_EXPONENT = 1.5  # no layer recognised: between a layer widened on one side (r) and on both (r²)
_MIN_LOG_RATIO = math.log(1.25)  # measured pairs with a smaller change say too little above the timing noise


class LayerKind(StrEnum):
    """The layer types the cost model knows."""

    LINEAR = "linear"
    CONV = "conv"
    ATTENTION = "attention"
    RECURRENT = "recurrent"
    EMBEDDING = "embedding"


_LAYERS: dict[str, LayerKind] = {
    "Linear": LayerKind.LINEAR, "LazyLinear": LayerKind.LINEAR,
    "Conv1d": LayerKind.CONV, "Conv2d": LayerKind.CONV, "Conv3d": LayerKind.CONV,
    "ConvTranspose1d": LayerKind.CONV, "ConvTranspose2d": LayerKind.CONV, "ConvTranspose3d": LayerKind.CONV,
    "MultiheadAttention": LayerKind.ATTENTION, "TransformerEncoderLayer": LayerKind.ATTENTION,
    "TransformerDecoderLayer": LayerKind.ATTENTION,
    "LSTM": LayerKind.RECURRENT, "GRU": LayerKind.RECURRENT, "RNN": LayerKind.RECURRENT,
    "Embedding": LayerKind.EMBEDDING,
}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_LENGTH_KINDS = frozenset({"epochs", "steps"})


@dataclass(frozen=True)
class Term:
    """One part of a layer's compute per sample: `cost` at the current width, growing as r**`power`."""

    kind: LayerKind
    cost: float
    power: int


@dataclass(frozen=True)
class Layer:
    """A layer constructor call found in the code, as terms of compute per sample."""

    kind: LayerKind
    line: int
    terms: tuple[Term, ...]


# ----------------------------------------------------------------------------------------------- reading the code


def _words(node: ast.AST) -> set[str]:
    """The lowercase names an expression reads: variables, attributes, string subscripts (`cfg["hidden"]`)."""
    out: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id.lower())
        elif isinstance(n, ast.Attribute):
            out.add(n.attr.lower())
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.add(n.value.lower())
    return out


def _constants(tree: ast.Module) -> dict[str, float]:
    """Module-level numeric constants (`HIDDEN = 64`)."""
    out: dict[str, float] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            v = stmt.value
            if isinstance(v, ast.Constant) and isinstance(v.value, int | float) and not isinstance(v.value, bool):
                out[stmt.targets[0].id.lower()] = float(v.value)
    return out


ATTR = "."  # in `consts`: the value a config object's field reads as (`config.n_embd`, `cfg["width"]`) is "." + name


def attribute_sizes(known: Mapping[str, float]) -> dict[str, float]:
    """`known` (settings by name: the knobs' values as they take effect) as what a config object's fields read as,
    to be merged into the constants `_evaluate` reads."""
    return {ATTR + name.lower(): float(v) for name, v in known.items()}


def _field(node: ast.AST) -> str | None:
    """The field a config object's read names: `n_embd` for `config.n_embd` / `self.cfg.n_embd` / `cfg["n_embd"]`."""
    if isinstance(node, ast.Attribute):
        return node.attr.lower()
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value.lower()
    return None


def _evaluate(node: ast.AST | None, names: Collection[str], value: float, consts: Mapping[str, float]) -> float | None:
    """The number an expression of sizes evaluates to (the knob's names read as its value; module constants by name,
    a config object's fields as `consts` holds them under ATTR + name), None when unknown."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name | ast.Attribute | ast.Subscript):
        words = _words(node)
        if words & set(names):
            return value
        if isinstance(node, ast.Name) and node.id.lower() in consts:
            return consts[node.id.lower()]
        field_ = _field(node)
        if field_ is not None and ATTR + field_ in consts:
            return consts[ATTR + field_]
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Add | ast.Sub | ast.FloorDiv | ast.Div):
        a, b = _evaluate(node.left, names, value, consts), _evaluate(node.right, names, value, consts)
        if a is None or b is None:
            return None
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        return a / b if b else None
    return None


def _arg(call: ast.Call, i: int, name: str) -> ast.AST | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return call.args[i] if len(call.args) > i and not isinstance(call.args[i], ast.Starred) else None


def aliases(texts: Iterable[str], names: Collection[str]) -> set[str]:
    """`names` (lowercase) and the parameters they are passed to: `MLP(HIDDEN)` with `def __init__(self, hidden)`
    adds `hidden`; `Net(d, cfg["width"])` with `def __init__(self, d_in, h)` adds `h` (one level of calls)."""
    out = {n.lower() for n in names}
    trees = [t for t in (_parse(x) for x in texts) if t is not None]
    params: dict[str, list[str]] = {}  # callable name -> its parameters (methods without self)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        params[node.name] = [a.arg for a in item.args.args[1:]]
            elif isinstance(node, ast.FunctionDef) and node.name not in params:
                params[node.name] = [a.arg for a in node.args.args]
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            callee = dotted_name(node.func).rsplit(".", 1)[-1]
            ps = params.get(callee)
            if not ps:
                continue
            for i, a in enumerate(node.args):
                if i < len(ps) and not isinstance(a, ast.Starred) and _words(a) & out:
                    out.add(ps[i].lower())
            for kw in node.keywords:
                if kw.arg and kw.arg in ps and _words(kw.value) & out:
                    out.add(kw.arg.lower())
    return out


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def layers(texts: Iterable[str], names: Collection[str], value: float,
           known: Mapping[str, float] | None = None) -> list[Layer]:
    """Every layer constructor call in `texts` with its compute per sample at the current width (the knob read
    under `names` has `value`; a config object's fields as `known` says, see `model_layers`); a size the code does
    not show stands at the knob's value."""
    fields = attribute_sizes(known or {})
    out: list[Layer] = []
    for text in texts:
        tree = _parse(text)
        if tree is None:
            continue
        consts = {**fields, **_constants(tree)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = dotted_name(node.func)
            leaf = name.rsplit(".", 1)[-1]
            kind = _LAYERS.get(leaf)
            if kind is None or (name != leaf and not name.startswith(("nn.", "torch.nn."))):
                continue
            layer = _layer(node, leaf, kind, set(names), value, consts)
            if layer is not None:
                out.append(layer)
    return out


def _layer(call: ast.Call, leaf: str, kind: LayerKind, names: set[str], value: float,
           consts: Mapping[str, float]) -> Layer | None:
    def size(node: ast.AST | None) -> tuple[float, int]:
        """(size, 1 if it moves with the knob)."""
        if node is None:
            return value, 0
        moves = int(bool(_words(node) & names))
        got = _evaluate(node, names, value, consts)
        return (got if got is not None and got > 0 else value), moves

    line = getattr(call, "lineno", 0)
    if kind == LayerKind.LINEAR:
        a, pa = size(_arg(call, 0, "in_features"))
        b, pb = size(_arg(call, 1, "out_features"))
        return Layer(kind, line, (Term(kind, a * b, pa + pb),))
    if kind == LayerKind.CONV:
        a, pa = size(_arg(call, 0, "in_channels"))
        b, pb = size(_arg(call, 1, "out_channels"))
        k = _arg(call, 2, "kernel_size")
        dims = int(leaf[-2]) if leaf[-2].isdigit() else 2
        if isinstance(k, ast.Tuple):
            ks = [_evaluate(e, (), 0.0, consts) or 3.0 for e in k.elts]
            area = math.prod(ks)
        else:
            area = (_evaluate(k, (), 0.0, consts) or 3.0) ** dims
        return Layer(kind, line, (Term(kind, a * b * area * DEFAULT_POSITIONS, pa + pb),))
    if kind == LayerKind.ATTENTION:
        d, pd = size(_arg(call, 0, "embed_dim" if leaf == "MultiheadAttention" else "d_model"))
        terms = [Term(kind, 4 * d * d, 2 * pd)]
        if leaf != "MultiheadAttention":
            ff, pf = size(_arg(call, 2, "dim_feedforward"))
            ff = ff if _arg(call, 2, "dim_feedforward") is not None else 2048.0
            terms.append(Term(kind, 2 * d * ff, pd + pf))
        return Layer(kind, line, tuple(terms))
    if kind == LayerKind.RECURRENT:
        a, pa = size(_arg(call, 0, "input_size"))
        h, ph = size(_arg(call, 1, "hidden_size"))
        g = _GATES.get(leaf, 1)
        return Layer(kind, line, (Term(kind, g * h * a, ph + pa), Term(kind, g * h * h, 2 * ph)))
    d, pd = size(_arg(call, 1, "embedding_dim"))
    return Layer(kind, line, (Term(kind, d, pd),))


def step_cost(found: Sequence[Layer], r: float, call: float) -> float:
    """The compute of one sample's pass through `found` with the width moved by `r`, each layer also paying `call`
    (its fixed cost per call, per sample)."""
    return sum(call + sum(t.cost * r ** t.power for t in layer.terms) for layer in found)


def width_factor(found: Sequence[Layer], r: float, batch: float = DEFAULT_BATCH,
                 call: float | None = None) -> float | None:
    """How much the compute of a training step grows when the width moves by `r`; None when no layer the width
    sizes was found. Each layer also pays a fixed cost per call (`call` per sample; CALL_COST per batch unless
    measured runs said otherwise, see `fit_call_cost`) that the width does not move."""
    if not any(t.power for layer in found for t in layer.terms):
        return None
    c = CALL_COST / max(1.0, batch) if call is None else call
    now = step_cost(found, 1.0, c)
    return step_cost(found, r, c) / now if now > 0 else None


def fit_call_cost(found: Sequence[Layer], ra: float, rb: float, measured: float) -> float | None:
    """The fixed cost per layer call (per sample) under which moving the width from `ra` to `rb` (relative to the
    layers' current width) costs `measured` times the time: the ratio falls from the pure-arithmetic one (no fixed
    cost) towards 1 as the fixed cost grows, so one measured pair pins it. None when the pair cannot say (it did
    not widen, or it was measured at or below 1 — timing noise); 0 when it grew at least as fast as arithmetic."""
    if rb <= ra or measured <= 1.0:
        return None

    def ratio(call: float) -> float:
        return step_cost(found, rb, call) / step_cost(found, ra, call)

    if measured >= ratio(0.0):
        return 0.0
    lo, hi = 0.0, max(1.0, step_cost(found, rb, 0.0))
    while ratio(hi) > measured and hi < 1e15:
        hi *= 10
    for _ in range(60):
        mid = (lo + hi) / 2
        if ratio(mid) > measured:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# ----------------------------------------------------------------------------------------------- a whole model

DEFAULT_SIZE = 64.0  # a layer size the code does not show (a parameter passed from elsewhere, a config lookup)


def _range_count(node: ast.AST, consts: Mapping[str, float]) -> float | None:
    """How many times `for _ in range(...)` goes round, when its bounds can be read."""
    if not (isinstance(node, ast.Call) and dotted_name(node.func) == "range") or not 1 <= len(node.args) <= 3:
        return None
    got = [_evaluate(a, (), 0.0, consts) for a in node.args]
    if any(g is None for g in got):
        return None
    vals = [float(g) for g in got if g is not None]
    start, stop, step = (0.0, vals[0], 1.0) if len(vals) == 1 else (vals[0], vals[1], vals[2] if len(vals) > 2 else 1.0)
    return max(0.0, math.ceil((stop - start) / step)) if step > 0 else None


def _bindings(trees: Sequence[ast.Module]) -> dict[str, dict[str, float]]:
    """{callable: {parameter (lowercase): number}}: a function's or class's parameters as its defaults say, or as
    every call in the code passes them (one number everywhere: `build(DEPTH)`, `Net(hidden=256)`)."""
    params: dict[str, list[str]] = {}
    defaults: dict[str, dict[str, float]] = {}
    for tree in trees:
        consts = _constants(tree)
        for node in ast.walk(tree):
            fn: ast.FunctionDef | None = None
            owner = ""
            if isinstance(node, ast.ClassDef):
                fn = next((x for x in node.body if isinstance(x, ast.FunctionDef) and x.name == "__init__"), None)
                owner = node.name
                skip_self = 1
            elif isinstance(node, ast.FunctionDef) and node.name != "__init__":
                fn, owner, skip_self = node, node.name, 0
            if fn is None or owner in params:
                continue
            names = [a.arg.lower() for a in fn.args.args[skip_self:]]
            params[owner] = names
            given = {}
            pairs: list[tuple[ast.arg, ast.expr | None]] = [
                *zip(fn.args.args[len(fn.args.args) - len(fn.args.defaults):], fn.args.defaults, strict=True),
                *zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True)]
            for param, d in pairs:
                v = _evaluate(d, (), 0.0, consts)
                if v is not None:
                    given[param.arg.lower()] = v
            defaults[owner] = given
    passed: dict[str, dict[str, set[float | None]]] = {}
    for tree in trees:
        consts = _constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            callee = dotted_name(node.func).rsplit(".", 1)[-1]
            ps = params.get(callee)
            if ps is None:
                continue
            seen = passed.setdefault(callee, {})
            for i, given_arg in enumerate(node.args):
                if i < len(ps) and not isinstance(given_arg, ast.Starred):
                    seen.setdefault(ps[i], set()).add(_evaluate(given_arg, (), 0.0, consts))
            for kw in node.keywords:
                if kw.arg and kw.arg.lower() in ps:
                    seen.setdefault(kw.arg.lower(), set()).add(_evaluate(kw.value, (), 0.0, consts))
    out: dict[str, dict[str, float]] = {}
    for owner, given in defaults.items():
        got = dict(given)
        for name, values in passed.get(owner, {}).items():
            if len(values) == 1 and None not in values:
                got[name] = next(v for v in values if v is not None)
            else:
                got.pop(name, None)  # passed different or unreadable values: not known
        out[owner] = got
    return out


def model_layers(texts: Iterable[str], unread_size: float = DEFAULT_SIZE, unread_count: float = 1.0,
                 known: Mapping[str, float] | None = None) -> list[tuple[Layer, float]] | None:
    """Every layer constructor call in `texts`, with its sizes read from module constants, parameter defaults, what
    the code's calls pass and the fields of a config object `known` names (`config.n_embd` as the setting
    `n_embd` takes effect: nanoGPT's sizes live in an exec'd config file), else `unread_size`; and how many times it
    is built: inside `for _ in range(n)`, a comprehension over `range(n)`, or `[...] * n`, with `n` read the same
    way (else `unread_count`), times how many times the class or function it is built in is itself built by the
    code (`nn.ModuleList([Block(config) for _ in range(config.n_layer)])` builds Block's layers n_layer times; see
    `_multiplicity`). None when a text does not parse."""
    fields = attribute_sizes(known or {})
    trees = []
    for text in texts:
        tree = _parse(text)
        if tree is None:
            return None
        trees.append(tree)
    bound = _bindings(trees)
    defs = {n.name for tree in trees for n in tree.body
            if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)}
    found: list[tuple[Layer, float, str]] = []  # (layer, times within its scope, the scope: a top-level def or "")
    sites: list[tuple[str, str, float]] = []  # (callee, the scope calling it, times within that scope)

    def visit(node: ast.AST, consts: Mapping[str, float], times: float, owner: str, scope: str) -> None:
        if isinstance(node, ast.ClassDef):
            owner = node.name
            scope = scope or node.name
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            consts = {**consts, **bound.get(owner if node.name == "__init__" and owner else node.name, {})}
            scope = scope or node.name
        elif isinstance(node, ast.For):
            n = _range_count(node.iter, consts)
            for stmt in node.body:
                visit(stmt, consts, times * (n if n is not None else unread_count), owner, scope)
            for stmt in node.orelse:
                visit(stmt, consts, times, owner, scope)
            return
        elif isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp):
            n = 1.0
            for gen in node.generators:
                got = _range_count(gen.iter, consts)
                n *= got if got is not None else unread_count
            visit(node.elt, consts, times * n, owner, scope)
            return
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and isinstance(node.left, ast.List):
            n = _evaluate(node.right, (), 0.0, consts)
            visit(node.left, consts, times * (n if n is not None and n >= 0 else unread_count), owner, scope)
            return
        elif isinstance(node, ast.Call):
            name = dotted_name(node.func)
            leaf = name.rsplit(".", 1)[-1]
            kind = _LAYERS.get(leaf)
            if kind is not None and (name == leaf or name.startswith(("nn.", "torch.nn."))):
                layer = _layer(node, leaf, kind, set(), unread_size, consts)
                if layer is not None:
                    found.append((layer, times, scope))
            elif leaf in defs and leaf != scope:
                sites.append((leaf, scope, times))
        for sub in ast.iter_child_nodes(node):
            visit(sub, consts, times, owner, scope)

    for tree in trees:
        visit(tree, {**fields, **_constants(tree)}, 1.0, "", "")
    times_of = _multiplicity(sites)
    return [(layer, times * times_of(scope)) for layer, times, scope in found]


def _multiplicity(sites: Sequence[tuple[str, str, float]]) -> Callable[[str], float]:
    """How many times the code builds each top-level class or function, from its call sites (callee, caller scope,
    times within the caller): the sum over the sites inside other definitions of the caller's own count times the
    site's (a Block built n_layer times by a GPT built once: n_layer), plus the most any one module-level site
    builds it (a script that builds its model twice, say for an evaluation copy, does not train twice as much);
    one where nothing in the code builds it. A call cycle counts once."""
    by_callee: dict[str, list[tuple[str, float]]] = {}
    for callee, caller, times in sites:
        by_callee.setdefault(callee, []).append((caller, times))
    memo: dict[str, float] = {"": 1.0}

    def count(name: str, seen: frozenset[str] = frozenset()) -> float:
        if name in memo:
            return memo[name]
        if name in seen:
            return 1.0
        got = by_callee.get(name, [])
        inside = sum(t * count(caller, seen | {name}) for caller, t in got if caller)
        top = max((t for caller, t in got if not caller), default=0.0)
        memo[name] = inside + top if got else 1.0
        return memo[name]

    return count


def model_cost(texts: Iterable[str], batch: float = DEFAULT_BATCH, unread_size: float = DEFAULT_SIZE,
               unread_count: float = 1.0, known: Mapping[str, float] | None = None) -> float | None:
    """The compute of one sample's training step through every layer the code builds (each also paying its fixed
    cost per call); None when the code does not parse or builds no layer the cost model knows."""
    found = model_layers(texts, unread_size, unread_count, known)
    if not found:
        return None
    call = CALL_COST / max(1.0, batch)
    return sum(times * (call + sum(t.cost for t in layer.terms)) for layer, times in found)


def code_factor(before: Iterable[str], after: Iterable[str], batch: float = DEFAULT_BATCH,
                known: Mapping[str, float] | None = None,
                known_after: Mapping[str, float] | None = None) -> float | None:
    """How much a change of the code scales a training step: the model's cost after it over its cost before (a
    hidden layer as wide as the one before it about doubles a two-layer MLP's); None when either cannot be read,
    or when the change shows no cost while the code has sizes or layer counts it cannot read (a config object's
    field no setting names, `range(config.n_layer)` with no `n_layer` known): the change may be hidden there, so an
    unchanged cost is not an answer. `known` / `known_after`: the settings' values as they take effect before and
    after the change (the knobs', read where they are finally set), which a config object's fields read as."""
    before, after = list(before), list(after)
    if known_after is None:
        known_after = known
    a, b = model_cost(before, batch, known=known), model_cost(after, batch, known=known_after)
    if a is None or b is None or a <= 0:
        return None
    if math.isclose(a, b):  # read again with the unread sizes and counts doubled: a cost that moves hides some
        probe = 2.0 * DEFAULT_SIZE, 2.0
        if not (math.isclose(a, model_cost(before, batch, *probe, known=known) or 0.0)
                and math.isclose(b, model_cost(after, batch, *probe, known=known_after) or 0.0)):
            return None
    return b / a


# ----------------------------------------------------------------------------------------------- measured runs


@dataclass(frozen=True)
class Timing:
    """A run that ended: its wall-clock seconds, the knob values it ran with, and of its seconds those that do not
    grow with the training length where the progress hook timed them (None: not timed)."""

    seconds: float
    values: Mapping[str, Any]
    fixed: float | None = None


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)) or float(v) <= 0:
        return None
    return float(v)


def _pairs(timings: Sequence[Timing]) -> list[tuple[str, float, Timing, Timing]]:
    """(knob, ratio new/old, old, new) for every two runs that differ in exactly one numeric knob."""
    out = []
    for i, a in enumerate(timings):
        for b in timings[i + 1:]:
            diff = [k for k in a.values if k in b.values and a.values[k] != b.values[k]]
            if len(diff) != 1 or set(a.values) != set(b.values):
                continue
            va, vb = _num(a.values[diff[0]]), _num(b.values[diff[0]])
            if va is None or vb is None:
                continue
            if vb < va:
                a, b, va, vb = b, a, vb, va  # always from the smaller value to the larger
            out.append((diff[0], vb / va, a, b))
    return out


@dataclass
class RunTimeModel:
    """Run-time predictions for a project.

    `kinds` says each knob's kind; `layers(key)` the layers a width knob sizes, read from the code at its current
    value (None or []: the code says nothing); `batch` the batch size; `timings` the runs measured so far."""

    kinds: Mapping[str, str]
    timings: Sequence[Timing] = ()
    layers: Callable[[str], Sequence[Layer] | None] | None = None
    batch: float = DEFAULT_BATCH
    _pairs: list[tuple[str, float, Timing, Timing]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._pairs = [p for p in _pairs([t for t in self.timings if t.seconds > 0])
                       if abs(math.log(p[1])) >= _MIN_LOG_RATIO]

    def overhead(self, seconds: float) -> float:
        """The start-up of a run taking `seconds` (what does not grow with its training length): as the progress hook
        timed it on the runs measured (the seconds before the first optimizer step and after the last, median), else
        from runs that differ only in the training length (t = a + b·L through both), else the usual share (30%, at
        most 3 s)."""
        timed = [t.fixed for t in self.timings if t.fixed is not None and 0 <= t.fixed <= t.seconds]
        if timed:  # timed to the step: only a sliver is left to scale where that is what the runs showed
            return min(statistics.median(timed), 0.98 * seconds)
        got = []
        for key, r, a, b in self._pairs:
            if self.kinds.get(key) in _LENGTH_KINDS:
                slope = (b.seconds - a.seconds) / (r - 1.0)  # per unit of a's length
                if slope > 0:
                    got.append(min(max(a.seconds - slope, 0.0), 0.9 * min(a.seconds, b.seconds)))
        if got:
            return min(statistics.median(got), 0.9 * seconds)
        return min(3.0, 0.3 * seconds)

    def _measured(self, key: str) -> Iterator[tuple[float, Timing, Timing, float]]:
        """(ratio, smaller run, larger run, measured time ratio of their scaling parts) for runs that moved only
        `key`."""
        for k, r, a, b in self._pairs:
            if k != key:
                continue
            over = self.overhead(min(a.seconds, b.seconds))
            if a.seconds > over and b.seconds > over:
                yield r, a, b, (b.seconds - over) / (a.seconds - over)

    def _layers(self, key: str) -> Sequence[Layer]:
        found = self.layers(key) if self.layers is not None else None
        return found if found and any(t.power for layer in found for t in layer.terms) else ()

    def prior(self, key: str, r: float) -> float:
        """What the code and the knob's kind say a change by `r` does to the scaling part of the run time."""
        kind = self.kinds.get(key, "")
        if kind in _LENGTH_KINDS or kind == "depth":
            return r
        if kind == "width":
            found = self._layers(key)
            got = width_factor(found, r, self.batch) if found else None
            return got if got is not None else max(1.0, r) ** DEFAULT_WIDTH_EXPONENT
        if kind == "batch_size":
            if self.counts_steps():
                return r
            return max(1.0, 1.0 / r) ** 0.5
        return 1.0

    def counts_steps(self) -> bool:
        """Whether the training length is counted in optimizer steps (a steps knob, no epochs knob): a batch then
        adds samples to every step instead of taking fewer steps."""
        kinds = set(self.kinds.values())
        return "steps" in kinds and "epochs" not in kinds

    def factor(self, key: str, r: float, current: float | None = None) -> float:
        """How a change by `r` scales the run's scaling part, corrected by runs that moved only this knob.

        A width whose layers the code shows is corrected through the one thing the code cannot know, the fixed cost
        of a layer call on this machine (`_width_factor`); any other knob by
        bending its prior to agree with the measurements (log f = log f_prior · s, s the median over pairs of
        log f_measured / log f_prior at their ratio)."""
        prior = self.prior(key, r)
        kind = self.kinds.get(key)
        if kind in _LENGTH_KINDS:
            return prior  # the training length is the yardstick the start-up is measured with
        found = self._layers(key) if kind == "width" else ()
        if found and current:
            return self._width_factor(key, found, r, current)
        scales = []
        for rm, _a, _b, measured in self._measured(key):
            expect = self.prior(key, rm)
            if expect > 0 and abs(math.log(expect)) > 0.05 and measured > 0:
                s = math.log(measured) / math.log(expect)
                if s > 0:  # a larger setting measured faster than the smaller one is timing noise
                    scales.append(s)
        if not scales or prior <= 0:
            return prior
        return float(math.exp(math.log(prior) * max(0.0, min(3.0, statistics.median(scales)))))

    def _width_factor(self, key: str, found: Sequence[Layer], r: float, current: float) -> float:
        """A width's factor from the code's layers, with the fixed cost per layer call fitted to the runs that moved
        only this width — over the widths those runs spanned. Beyond them the code's own fixed cost holds: the
        ratio measured between 16 and 32 channels says how the time grows there, not between 32 and 64 (small
        layers run in another regime, where fixed costs hide the arithmetic)."""
        prior_call = CALL_COST / max(1.0, self.batch)
        calls, lo, hi = [], math.inf, 0.0
        for _rm, a, b, measured in self._measured(key):
            va, vb = _num(a.values.get(key)), _num(b.values.get(key))
            if va is None or vb is None:
                continue
            got = fit_call_cost(found, va / current, vb / current, measured)
            if got is not None:
                calls.append(got)
                lo, hi = min(lo, va), max(hi, vb)
        start, end = sorted((current, current * r))
        if not calls or hi <= start or lo >= end:
            return width_factor(found, r, self.batch) or 1.0
        call = statistics.median(calls)
        c1, c2 = min(max(lo, start), end), max(min(hi, end), start)

        def grow(x: float, y: float, c: float) -> float:
            return step_cost(found, y / current, c) / step_cost(found, x / current, c)

        up = grow(start, c1, prior_call) * grow(c1, c2, call) * grow(c2, end, prior_call)
        return up if r >= 1 else 1.0 / up

    def predict(self, seconds: float, current: Mapping[str, Any], changes: Mapping[str, Any]) -> float:
        """Seconds of a run that applies `changes` to one that took `seconds` with the knob values `current`."""
        total = 1.0
        for key, new in changes.items():
            old, nv = _num(current.get(key)), _num(new)
            if old is None or nv is None:
                continue
            total *= self.factor(key, nv / old, old)
        return self.scaled(seconds, total)

    def scaled(self, seconds: float, factor: float) -> float:
        """Seconds of a run whose scaling part is `factor` times that of a run that took `seconds` (its start-up,
        `overhead`, unchanged)."""
        over = self.overhead(seconds)
        return over + (seconds - over) * factor


__all__ = ["CALL_COST", "DEFAULT_SIZE", "Layer", "LayerKind", "RunTimeModel", "Term", "Timing", "aliases",
           "code_factor", "fit_call_cost", "layers", "model_cost", "model_layers", "step_cost", "width_factor"]
