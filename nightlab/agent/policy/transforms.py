"""Known code transformations for PyTorch training scripts, written with libcst.

Each transform recognises one well-understood pattern (an SGD optimizer, a `loss.backward()` without clipping, a
training loop whose length is computable, raw un-standardised inputs, …) and rewrites it into the version that
usually trains better. The rules every transform follows, because the builtin policy applies them unattended:

- It either applies completely or not at all: any doubt (two optimizers, a conditional `step()`, a loop whose
  length cannot be computed, a name that might not be in scope) returns None instead of a half-applied change.
- It never edits code that measures rather than trains: the functions that compute the printed metric and those
  whose name says evaluation / test / scoring / data loading, unless they train (see `evaluation.py`; nothing is
  decided from comments or layout). Protected files are never handed to a transform at all.
- Everything it inserts is self-contained (helpers import what they need) so the result runs as it stands.

The result is the whole new file text; `diff_edits` turns old/new texts into the exact search/replace `Edit`s that
the engine validates with `apply_edits`.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

from nightlab.agent.policy.evaluation import fixed_lines
from nightlab.agent.proposal import Edit

# ----------------------------------------------------------------------------------------------- results


@dataclass
class TransformResult:
    """A transform that applied: the new text of `path` and what to tell the user about it."""

    name: str
    path: str
    new_text: str
    title: str
    rationale: str
    expected_effect: str = ""
    # source text of expressions the caller may want to resolve to knobs (e.g. {"lr": 'cfg["lr"]'})
    exprs: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- edits


def diff_edits(path: str, old: str, new: str) -> list[Edit]:
    """Exact search/replace edits turning `old` into `new`, one per changed hunk, applied in order.

    Each search is the hunk's old lines widened by whole context lines until it occurs exactly once in the text it
    will be applied to (earlier hunks already applied), so `apply_edits` accepts every edit and the result is `new`.
    """
    if old == new:
        return []
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    ops = [op for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if op[0] != "equal"]
    edits: list[Edit] = []
    cur = list(a)  # the text as it is after the edits produced so far
    shift = 0  # position of old line i in `cur` is i + shift
    for _tag, i1, i2, j1, j2 in ops:
        lo, hi = i1 + shift, i2 + shift
        repl = b[j1:j2]
        # widen by context until unique (a pure insertion needs at least one context line)
        before, after = 0, 0
        while True:
            search = "".join(cur[lo - before:hi + after])
            if search and "".join(cur).count(search) == 1:
                break
            can_up, can_down = lo - before > 0, hi + after < len(cur)
            if not can_up and not can_down:
                return [Edit(path=path, search=old, replace=new)] if old else [Edit(path=path, search="", replace=new)]
            # grow towards the side that keeps the edit small and local: alternate, preferring upwards
            if can_up and (before <= after or not can_down):
                before += 1
            else:
                after += 1
        replace = "".join(cur[lo - before:lo]) + "".join(repl) + "".join(cur[hi:hi + after])
        edits.append(Edit(path=path, search=search, replace=replace))
        cur[lo - before:hi + after] = cur[lo - before:lo] + repl + cur[hi:hi + after]
        shift += (j2 - j1) - (i2 - i1)
    return edits


# ----------------------------------------------------------------------------------------------- analysis

OPTIMIZER_CLASSES = frozenset({
    "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "ASGD", "Rprop",
    "SparseAdam", "LBFGS",
})
_ADAMW_KWARGS = ("params", "lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable",
                 "differentiable", "fused")
_SGD_POSITIONAL = ("params", "lr", "momentum", "dampening", "weight_decay", "nesterov")
_LOADER_RE = re.compile(r"loader|batches|dataloader", re.IGNORECASE)
_TRAIN_X_RE = re.compile(r"^(?:x|X|inputs?|features?|data_x)(?:_?(?:train|tr|trn|fit))?$|^(?:train|tr)_?(?:x|X)$")


def dotted(node: cst.CSTNode | None) -> str | None:
    """`torch.optim.SGD` for the corresponding Name/Attribute chain; None for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def _num(v: float) -> str:
    """A short literal for a float (3e-3 rather than 0.0030000000000000001)."""
    if v == 0:
        return "0.0"
    s = f"{v:.3g}"
    if "e" in s:
        mant, exp = s.split("e")
        return f"{mant}e{int(exp)}"
    return s if "." in s else s + ".0"


@dataclass
class _OptCall:
    stmt: cst.SimpleStatementLine | None  # None when the call is not a simple assignment statement
    call: cst.Call
    target: str  # source of the assignment target: "opt", "self.optimizer"
    cls: str  # SGD, AdamW, …
    prefix: str  # "torch.optim", "optim" or "" for a bare imported name


_CACHE: dict[str, Script] = {}


def parse(text: str, evaluation: Collection[str] = ()) -> Script | None:
    """A `Script` for `text` (cached: transforms and the policy ask about the same file many times), None if it
    does not parse. `evaluation` names the project's evaluation functions (`evaluation.evaluation_functions`): their
    bodies join the script's fixed lines."""
    hit = _CACHE.get(text)
    if hit is None:
        try:
            hit = Script(text)
        except (cst.ParserSyntaxError, RecursionError, ValueError):
            return None
        if len(_CACHE) >= 16:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[text] = hit
    if not evaluation:
        return hit
    script = copy.copy(hit)
    script.fixed = hit.fixed | fixed_lines(text, evaluation)
    return script


class Script:
    """A parsed training script with the facts every transform needs (positions, parents, optimizer, loops)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.module = cst.parse_module(text)
        self.wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
        self.pos = self.wrapper.resolve(PositionProvider)
        self.parents = self.wrapper.resolve(ParentNodeProvider)
        self.fixed = fixed_lines(text)
        self.imports_from_optim = self._names_imported_from("torch.optim")
        self.torch_bound = self._torch_bound()
        self.optimizers = self._find_optimizers()

    # ---- generic helpers
    def line(self, node: cst.CSTNode) -> int:
        return int(self.pos[node].start.line)

    def end_line(self, node: cst.CSTNode) -> int:
        return int(self.pos[node].end.line)

    def is_fixed(self, node: cst.CSTNode) -> bool:
        return any(n in self.fixed for n in range(self.line(node), self.end_line(node) + 1))

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self.parents.get(node)

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        p = self.parent(node)
        while p is not None:
            yield p
            p = self.parent(p)

    def function_of(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        for a in self.ancestors(node):
            if isinstance(a, cst.FunctionDef):
                return a
        return None

    def class_of(self, node: cst.CSTNode) -> cst.ClassDef | None:
        for a in self.ancestors(node):
            if isinstance(a, cst.ClassDef):
                return a
        return None

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def walk(self, cls: type[cst.CSTNode] | tuple[type[cst.CSTNode], ...],
             root: cst.CSTNode | None = None) -> list[Any]:
        """Every node of a type under `root` (the module by default), in source order."""
        found: list[Any] = []

        class _V(cst.CSTVisitor):
            def on_visit(self, node: cst.CSTNode) -> bool:
                if isinstance(node, cls):
                    found.append(node)
                return True

        (root or self.module).visit(_V())
        return found

    def statement_of(self, node: cst.CSTNode) -> cst.SimpleStatementLine | None:
        """The simple statement line holding `node`, when it sits in a block where statements can be inserted."""
        for a in self.ancestors(node):
            if isinstance(a, cst.SimpleStatementLine):
                blk = self.parent(a)
                return a if isinstance(blk, (cst.IndentedBlock, cst.Module)) else None
            if isinstance(a, (cst.BaseCompoundStatement, cst.SimpleStatementSuite)):
                return None
        return None

    def block_child(self, node: cst.CSTNode, block: cst.CSTNode) -> cst.CSTNode | None:
        """The ancestor of `node` (or `node` itself) that is a direct statement of `block`."""
        prev: cst.CSTNode = node
        for a in self.ancestors(node):
            if a is block:
                return prev
            prev = a
        return None

    def _names_imported_from(self, module: str) -> set[str]:
        out: set[str] = set()
        for imp in self.walk(cst.ImportFrom):
            if imp.module is not None and dotted(imp.module) == module and not isinstance(imp.names, cst.ImportStar):
                for alias in imp.names:
                    if alias.asname is None and isinstance(alias.name, cst.Name):
                        out.add(alias.name.value)
        return out

    def _torch_bound(self) -> bool:
        for imp in self.walk(cst.Import):
            for alias in imp.names:
                name = dotted(alias.name) or ""
                if alias.asname is None and name.split(".")[0] == "torch":
                    return True
                if alias.asname is not None and name == "torch" and isinstance(alias.asname.name, cst.Name) \
                        and alias.asname.name.value == "torch":
                    return True
        return False

    # ---- optimizer facts
    def _optimizer_cls(self, call: cst.Call) -> tuple[str, str] | None:
        name = dotted(call.func)
        if not name:
            return None
        parts = name.split(".")
        cls = parts[-1]
        if cls not in OPTIMIZER_CLASSES:
            return None
        prefix = ".".join(parts[:-1])
        if prefix in ("torch.optim", "optim") or (prefix == "" and cls in self.imports_from_optim):
            return cls, prefix
        return None

    def _find_optimizers(self) -> list[_OptCall]:
        out: list[_OptCall] = []
        for call in self.walk(cst.Call):
            info = self._optimizer_cls(call)
            if info is None:
                continue
            stmt = self.statement_of(call)
            target = None
            if stmt is not None and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Assign):
                asg = stmt.body[0]
                if asg.value is call and len(asg.targets) == 1:
                    target = dotted(asg.targets[0].target)
            out.append(_OptCall(stmt=stmt, call=call, target=target or "", cls=info[0], prefix=info[1]))
        return out

    def step_statements(self, target: str) -> list[cst.SimpleStatementLine]:
        """Statements `target.step()` (no arguments: an optimizer step, not a scheduler given a metric)."""
        out = []
        for call in self.walk(cst.Call):
            f = call.func
            if isinstance(f, cst.Attribute) and f.attr.value == "step" and dotted(f.value) == target:
                stmt = self.statement_of(call)
                if stmt is not None and isinstance(stmt.body[0], cst.Expr) and stmt.body[0].value is call:
                    out.append(stmt)
        return out

    def backward_calls(self) -> list[cst.Call]:
        return [c for c in self.walk(cst.Call)
                if isinstance(c.func, cst.Attribute) and c.func.attr.value == "backward"]

    def params_model(self, opt: _OptCall) -> str | None:
        """`model` when the optimizer is built from `model.parameters()` (or `list(model.parameters())`)."""
        arg = None
        for a in opt.call.args:
            if a.keyword is None or a.keyword.value == "params":
                arg = a.value
                break
        if isinstance(arg, cst.Call) and dotted(arg.func) == "list" and arg.args:
            arg = arg.args[0].value
        if isinstance(arg, cst.Call) and isinstance(arg.func, cst.Attribute) and arg.func.attr.value == "parameters" \
                and not arg.args:
            return dotted(arg.func.value)
        return None

    def same_scope(self, a: cst.CSTNode, b: cst.CSTNode) -> bool:
        return self.function_of(a) is self.function_of(b)

    def single_optimizer(self) -> _OptCall | None:
        """The one optimizer of the script, assigned to a name or attribute; None when there are several or none.

        Alternatives assigned to the same variable in one function (`if name == "sgd": opt = SGD(...) elif …:
        opt = Adam(...)`) count as one optimizer, provided they all optimise the same parameters.
        """
        opts = [o for o in self.optimizers if o.target and o.stmt is not None]
        if not opts or len(opts) != len(self.optimizers):
            return None
        first = opts[0]
        for o in opts[1:]:
            if o.target != first.target or not self.same_scope(o.call, first.call) \
                    or self.params_model(o) != self.params_model(first):
                return None
        return first

    # ---- training loop facts
    def training_loops(self, opt: _OptCall, step: cst.SimpleStatementLine) -> list[cst.For] | None:
        """The for-loops around `step` that start after the optimizer exists (outermost first).

        None when the step is conditional inside them (if/while), when the optimizer is created inside one of them,
        or when it is created in another function.
        """
        if opt.stmt is None or not self.same_scope(opt.stmt, step):
            return None
        opt_anc = set(map(id, self.ancestors(opt.stmt)))
        loops: list[cst.For] = []
        for a in self.ancestors(step):
            if isinstance(a, (cst.FunctionDef, cst.ClassDef, cst.Module)):
                break
            if id(a) in opt_anc:
                break
            if isinstance(a, cst.For):
                loops.append(a)
            elif isinstance(a, (cst.While, cst.If)):
                return None  # a condition or while-loop around the step: the number of steps is unknown
        if not loops:
            return None
        loops.reverse()
        outer = loops[0]
        if self.line(opt.stmt) >= self.line(outer) or self.line(opt.call) in self.fixed:
            return None
        return loops

    def loop_count(self, loop: cst.For) -> str | None:
        """Source of an expression giving the number of iterations of `loop`, or None if it is not computable."""
        return self._count(loop.iter)

    def _count(self, it: cst.BaseExpression) -> str | None:
        if isinstance(it, cst.Call):
            fn = dotted(it.func)
            if fn == "range" and it.args and all(a.keyword is None and a.star == "" for a in it.args):
                return f"len({self.code(it)})"
            if fn in ("enumerate", "tqdm", "tqdm.tqdm", "tqdm.auto.tqdm") and it.args and it.args[0].keyword is None:
                return self._count(it.args[0].value)
            return None
        name = dotted(it)
        if name and _LOADER_RE.search(name.split(".")[-1]):
            return f"len({name})"
        return None

    def names_in(self, node: cst.CSTNode) -> set[str]:
        return {n.value for n in self.walk(cst.Name, node)}

    def assigned_in(self, node: cst.CSTNode) -> set[str]:
        """Names (re)bound anywhere inside `node`: assignment and loop targets."""
        out: set[str] = set()
        for n in self.walk((cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For), node):
            tgt = n.target
            out |= {x.value for x in self.walk(cst.Name, tgt)} if not isinstance(tgt, cst.Attribute) else set()
        return out

    def enclosing_block(self, node: cst.CSTNode) -> cst.CSTNode | None:
        p = self.parent(node)
        return p if isinstance(p, (cst.IndentedBlock, cst.Module)) else None


# ----------------------------------------------------------------------------------------------- patching


class _Patch(cst.CSTTransformer):
    """Replace nodes and insert statements before/after statements, matched by identity with the analysed tree."""

    def __init__(self) -> None:
        super().__init__()
        self.replace: dict[int, cst.CSTNode] = {}
        self.before: dict[int, list[cst.BaseStatement]] = {}
        self.after: dict[int, list[cst.BaseStatement]] = {}
        self.applied = 0

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> Any:
        if id(original_node) in self.replace:
            self.applied += 1
            updated_node = self.replace[id(original_node)]
        if isinstance(updated_node, (cst.IndentedBlock, cst.Module)):
            assert isinstance(original_node, (cst.IndentedBlock, cst.Module))
            body: list[Any] = []
            for orig, upd in zip(original_node.body, updated_node.body, strict=True):
                for s in self.before.get(id(orig), []):
                    body.append(s)
                    self.applied += 1
                body.append(upd)
                for s in self.after.get(id(orig), []):
                    body.append(s)
                    self.applied += 1
            return updated_node.with_changes(body=body)
        return updated_node

    def expected(self) -> int:
        return len(self.replace) + sum(map(len, self.before.values())) + sum(map(len, self.after.values()))


def _render(script: Script, patch: _Patch) -> str | None:
    """The patched source, or None when not every planned change landed (never half-apply)."""
    new = script.module.visit(patch)
    if patch.applied != patch.expected():
        return None
    code = new.code
    try:
        compile(code, "<transform>", "exec")
    except SyntaxError:
        return None
    return code


# public names for other editing code (the fix catalogue plans its edits the same way)
Patch = _Patch
render = _render


def _stmt(code: str) -> cst.BaseStatement:
    return cst.parse_statement(code)


def _helper_insertion(script: Script, patch: _Patch, helper: str) -> bool:
    """Plan the insertion of a module-level helper def after the imports (idempotent by name)."""
    name = re.search(r"def (\w+)", helper)
    if name and re.search(rf"\bdef {name.group(1)}\b", script.text):
        return True
    body = script.module.body
    anchor = None
    for s in body:
        if isinstance(s, cst.SimpleStatementLine) and all(isinstance(x, (cst.Import, cst.ImportFrom)) for x in s.body):
            anchor = s
        elif isinstance(s, cst.SimpleStatementLine) and isinstance(s.body[0], cst.Expr) and anchor is None \
                and isinstance(s.body[0].value, (cst.SimpleString, cst.ConcatenatedString)):
            continue
        else:
            break
    fn = _stmt(helper)
    assert isinstance(fn, cst.FunctionDef)
    fn = fn.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])
    if anchor is None:
        if not body:
            return False
        patch.before.setdefault(id(body[0]), []).append(fn.with_changes(leading_lines=[]))
        return True
    patch.after.setdefault(id(anchor), []).append(fn)
    return True


def _torch_import(script: Script, patch: _Patch) -> bool:
    """Make sure `torch` is bound at module level (plan `import torch` after the imports if it is not)."""
    if script.torch_bound:
        return True
    body = script.module.body
    anchor = None
    for s in body:
        if isinstance(s, cst.SimpleStatementLine) and all(isinstance(x, (cst.Import, cst.ImportFrom)) for x in s.body):
            anchor = s
    if anchor is None:
        return False
    patch.after.setdefault(id(anchor), []).append(_stmt("import torch\n"))
    return True


# ----------------------------------------------------------------------------------------------- transforms


def sgd_to_adamw(text: str, path: str, lr: float | None = None, weight_decay: float = 0.01,
                 evaluation: Collection[str] = ()) -> TransformResult | None:
    """Replace `torch.optim.SGD(params, lr=…, momentum=…)` by AdamW; SGD-only arguments are dropped.

    `lr=None` keeps the learning-rate expression (the caller re-tunes the knob it reads); a float puts that literal
    in. A missing weight decay becomes `weight_decay` (decoupled, so it is a mild regulariser rather than an L2 term
    fighting the adaptive step). Every SGD call outside the fixed regions changes, or nothing does.
    """
    script = parse(text, evaluation)
    if script is None:
        return None
    sgds = [o for o in script.optimizers if o.cls == "SGD" and not script.is_fixed(o.call)]
    if not sgds:
        return None
    patch = _Patch()
    exprs: dict[str, str] = {}
    for o in sgds:
        if o.prefix:
            func: cst.BaseExpression = cst.parse_expression(f"{o.prefix}.AdamW")
        elif script.torch_bound:
            func = cst.parse_expression("torch.optim.AdamW")
        else:
            if not _torch_import(script, patch):
                return None
            func = cst.parse_expression("torch.optim.AdamW")
        kw: dict[str, cst.BaseExpression] = {}
        for i, a in enumerate(o.call.args):
            if a.star:
                return None  # **kwargs: unknown contents, cannot drop the SGD-only ones safely
            if a.keyword is None:
                if i >= len(_SGD_POSITIONAL):
                    return None
                kw[_SGD_POSITIONAL[i]] = a.value
            else:
                kw[a.keyword.value] = a.value
        if "params" not in kw:
            return None
        if "lr" in kw:
            exprs.setdefault("lr", script.code(kw["lr"]))
        if lr is not None or "lr" not in kw:
            kw["lr"] = cst.parse_expression(_num(lr if lr is not None else 1e-3))
        if "momentum" in kw:
            exprs.setdefault("momentum", script.code(kw["momentum"]))
        if "weight_decay" in kw:
            exprs.setdefault("weight_decay", script.code(kw["weight_decay"]))
        else:
            kw["weight_decay"] = cst.parse_expression(_num(weight_decay))
        args: list[cst.Arg] = [cst.Arg(value=kw["params"])]
        for k in _ADAMW_KWARGS[1:]:
            if k in kw:
                args.append(cst.Arg(keyword=cst.Name(k), value=kw[k],
                                    equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
        patch.replace[id(o.call)] = o.call.with_changes(func=func, args=args)
    new = _render(script, patch)
    if new is None:
        return None
    return TransformResult(
        name="sgd_to_adamw", path=path, new_text=new, title="switch the optimizer from SGD to AdamW",
        rationale="Plain SGD with a hand-set learning rate converges slowly on small models; AdamW adapts the step "
                  "size per parameter and decouples weight decay, which on small networks is usually the single "
                  "largest improvement for a fixed budget of epochs. Momentum/dampening/nesterov are SGD-only and "
                  "are dropped.",
        expected_effect="faster convergence, better final metric", exprs=exprs,
    )


def gradient_clipping(text: str, path: str, max_norm: float = 1.0,
                      evaluation: Collection[str] = ()) -> TransformResult | None:
    """Insert `torch.nn.utils.clip_grad_norm_(<model>.parameters(), max_norm)` right after `loss.backward()`.

    Needs exactly one optimizer and one backward call in one scope, no mixed-precision scaler (clipping scaled
    gradients would be wrong without `unscale_`) and no clipping already.
    """
    script = parse(text, evaluation)
    if script is None:
        return None
    if re.search(r"clip_grad|GradScaler|\.scale\(", text):
        return None
    opt = script.single_optimizer()
    backs = script.backward_calls()
    if opt is None or len(backs) != 1:
        return None
    stmt = script.statement_of(backs[0])
    if stmt is None or opt.stmt is None or script.is_fixed(stmt):
        return None
    same = script.same_scope(opt.stmt, stmt) or (
        opt.target.startswith("self.") and script.class_of(opt.stmt) is not None
        and script.class_of(opt.stmt) is script.class_of(stmt))
    if not same:
        return None
    model = script.params_model(opt)
    if model is not None:
        params = f"{model}.parameters()"
    else:
        params = f'[p for group in {opt.target}.param_groups for p in group["params"]]'
    patch = _Patch()
    if not _torch_import(script, patch):
        return None
    clip = _stmt(f"torch.nn.utils.clip_grad_norm_({params}, {_num(max_norm)})\n")
    at = _small_statement_index(script, stmt, backs[0])
    if at is None or at == len(stmt.body) - 1:
        patch.after[id(stmt)] = [clip]
    else:  # `loss.backward(); opt.step()` on one line: the clip goes between them, not after the step
        assert isinstance(clip, cst.SimpleStatementLine)
        small = clip.body[0].with_changes(semicolon=stmt.body[at].semicolon)
        patch.replace[id(stmt)] = stmt.with_changes(body=[*stmt.body[:at + 1], small, *stmt.body[at + 1:]])
    new = _render(script, patch)
    if new is None:
        return None
    return TransformResult(
        name="grad_clip", path=path, new_text=new, title=f"clip the gradient norm at {_num(max_norm)}",
        rationale="A few large gradients (early in training, or at a high learning rate) can throw the weights far "
                  "off and cause loss spikes or divergence; clipping the global gradient norm bounds each update "
                  "without changing the direction, and usually allows a higher learning rate.",
        expected_effect="more stable loss, fewer spikes",
    )


def _small_statement_index(script: Script, line: cst.SimpleStatementLine, node: cst.CSTNode) -> int | None:
    """Which of the `;`-separated statements of `line` holds `node` (None when it is not inside the line)."""
    for i, small in enumerate(line.body):
        if small is node or any(a is small for a in script.ancestors(node)):
            return i
    return None


_WARMUP_COSINE_HELPER = '''
def _warmup_cosine(total_steps, warmup_frac=0.05):
    """Learning-rate factor for LambdaLR: linear warm-up, then cosine decay to zero (added by nightlab)."""
    import math

    total_steps = max(1, int(total_steps))
    warmup = max(1, int(total_steps * warmup_frac))

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
'''


def warmup_cosine(text: str, path: str, evaluation: Collection[str] = ()) -> TransformResult | None:
    """Add a warm-up + cosine learning-rate schedule stepped after every optimizer step.

    Applies only when the total number of optimizer steps is computable before the training loop starts (a product
    of `len(range(...))` and `len(loader)` over the loops around `optimizer.step()`), so the schedule ends exactly
    when training does; the expression is evaluated at run time, so later changes of epochs or batch size stay
    consistent with the schedule.
    """
    script = parse(text, evaluation)
    if script is None:
        return None
    if re.search(r"lr_scheduler|\bscheduler\b|OneCycle|CosineAnnealing|\[\s*[\"']lr[\"']\s*\]\s*=", text):
        return None
    opt = script.single_optimizer()
    if opt is None or opt.stmt is None:
        return None
    steps = script.step_statements(opt.target)
    if len(steps) != 1 or script.is_fixed(steps[0]):
        return None
    loops = script.training_loops(opt, steps[0])
    if not loops:
        return None
    outer = loops[0]
    if script.is_fixed(outer) or script.enclosing_block(outer) is None:
        return None
    counts = [script.loop_count(lp) for lp in loops]
    if any(c is None for c in counts):
        return None
    rebound = script.assigned_in(outer)
    for lp in loops:
        if script.names_in(lp.iter) & rebound:
            return None
    total = " * ".join(c for c in counts if c)
    patch = _Patch()
    if not _torch_import(script, patch) or not _helper_insertion(script, patch, _WARMUP_COSINE_HELPER.strip() + "\n"):
        return None
    sched, n_steps = "scheduler", "num_training_steps"
    if re.search(rf"\b{n_steps}\b", text):
        return None
    patch.before[id(outer)] = [
        _stmt(f"{n_steps} = {total}\n"),
        _stmt(f"{sched} = torch.optim.lr_scheduler.LambdaLR({opt.target}, _warmup_cosine({n_steps}))\n"),
    ]
    patch.after[id(steps[0])] = [_stmt(f"{sched}.step()\n")]
    new = _render(script, patch)
    if new is None:
        return None
    return TransformResult(
        name="warmup_cosine", path=path, new_text=new, title="add a warm-up + cosine learning-rate schedule",
        rationale="A constant learning rate has to be small enough for the end of training and is then too small "
                  "for the start; a short linear warm-up followed by cosine decay to zero uses a higher rate early "
                  "and anneals at the end, which typically lowers the final loss for the same number of steps. "
                  f"The schedule spans the whole run ({total} optimizer steps, computed at run time).",
        expected_effect="lower final loss at the same budget",
    )


_STANDARDIZE_HELPER = '''
def _standardize_inputs(model, x_train):
    """Standardise the model's input with statistics of the training inputs only (added by nightlab).

    A forward pre-hook shifts and scales every float input the same way at training and at evaluation time, so
    held-out data is transformed with training statistics and the evaluation code stays untouched.
    """
    import torch

    try:
        x = torch.as_tensor(x_train)
    except (TypeError, ValueError, RuntimeError):
        return model
    if not torch.is_floating_point(x) or x.dim() < 2:
        return model
    x = x.detach().float()
    dims = (0, *range(2, x.dim()))  # per feature (2-D) or per channel (images, sequences)
    mean = x.mean(dim=dims, keepdim=True)[0]
    std = x.std(dim=dims, keepdim=True)[0]
    std = torch.where(std > 1e-8, std, torch.ones_like(std))

    def hook(_module, args):
        if args and torch.is_tensor(args[0]) and torch.is_floating_point(args[0]):
            inp = args[0]
            return ((inp - mean.to(inp.device, inp.dtype)) / std.to(inp.device, inp.dtype), *args[1:])
        return None

    model.register_forward_pre_hook(hook)
    return model
'''


def _train_input(script: Script, model: str, loops: list[cst.For]) -> str | None:
    """The name of the training-input tensor fed to `model` inside the training loops, if it can be found."""
    outer = loops[0]
    rebound = script.assigned_in(outer)
    cands: list[str] = []
    for call in script.walk(cst.Call, outer):
        if dotted(call.func) != model or not call.args or call.args[0].keyword is not None:
            continue
        arg: cst.BaseExpression = call.args[0].value
        for _ in range(4):  # follow `xb = X[idx]` style aliases inside the loop
            if isinstance(arg, cst.Subscript):
                arg = arg.value
            name = dotted(arg)
            if name is None:
                break
            if name in rebound:
                src = _assigned_value(script, outer, name)
                if src is None:
                    break
                arg = src
                continue
            cands.append(name)
            break
    cands = list(dict.fromkeys(c for c in cands if "." not in c))
    if len(cands) == 1:
        return cands[0]
    if cands:
        return None
    # the loop gets its batches from a loader: use the training-input tensor visible in the same scope
    scope = script.function_of(outer)
    visible: list[str] = []
    if scope is not None:
        visible += [p.name.value for p in scope.params.params]
    scope_node: cst.CSTNode = scope if scope is not None else script.module
    for asg in script.walk(cst.AssignTarget, scope_node):
        if script.line(asg) < script.line(outer) and script.function_of(asg) is scope:
            visible += [n.value for n in script.walk(cst.Name, asg.target)]
    named = [v for v in dict.fromkeys(visible) if _TRAIN_X_RE.match(v) and v not in rebound]
    trainish = [v for v in named if re.search(r"tr", v, re.IGNORECASE)]
    if len(trainish) == 1:
        return trainish[0]
    return None


def _assigned_value(script: Script, within: cst.CSTNode, name: str) -> cst.BaseExpression | None:
    vals = [a for a in script.walk(cst.Assign, within)
            if len(a.targets) == 1 and dotted(a.targets[0].target) == name]
    return vals[0].value if len(vals) == 1 else None


def standardize_inputs(text: str, path: str, evaluation: Collection[str] = ()) -> TransformResult | None:
    """Standardise the model's float inputs with mean/std of the training inputs (a forward pre-hook on the model).

    The statistics come from the tensor the training loop feeds the model (followed through `xb = X[idx]`, or the
    training tensor in scope when batches come from a loader), computed on the training part only; the hook makes
    evaluation apply the same transform without touching the fixed evaluation code.
    """
    script = parse(text, evaluation)
    if script is None:
        return None
    if re.search(r"StandardScaler|_standardize_inputs|Embedding\(|\bnormali[sz]e\b|Normalize\(", text):
        return None
    opt = script.single_optimizer()
    if opt is None:
        return None
    model = script.params_model(opt)
    if model is None or "." in model:
        return None
    steps = script.step_statements(opt.target)
    if len(steps) != 1:
        return None
    loops = script.training_loops(opt, steps[0])
    if not loops:
        return None
    outer = loops[0]
    if script.is_fixed(outer) or script.enclosing_block(outer) is None:
        return None
    x = _train_input(script, model, loops)
    if x is None:
        return None
    if re.search(rf"\b{re.escape(x)}\b[^\n]*\.std\(|\.std\([^\n]*\b{re.escape(x)}\b", text):
        return None  # already standardised by hand
    scope = script.function_of(outer)
    if scope is None:
        others = {n.value for n in script.walk(cst.Name) if re.match(r"^[xX]_?(?:test|val|valid|te|dev)$", n.value)}
        if others and not re.search(r"tr", x, re.IGNORECASE):
            return None  # a module-level `X` next to an `X_test`: probably the full data set, not the training part
    patch = _Patch()
    if not _helper_insertion(script, patch, _STANDARDIZE_HELPER.strip() + "\n"):
        return None
    patch.before[id(outer)] = [_stmt(f"_standardize_inputs({model}, {x})\n")]
    new = _render(script, patch)
    if new is None:
        return None
    return TransformResult(
        name="standardize", path=path, new_text=new, title=f"standardise the inputs ({x}) with training statistics",
        rationale="Raw input features on different or large scales make the loss surface badly conditioned, so the "
                  "optimizer needs a tiny learning rate; shifting to zero mean and unit variance (statistics from "
                  f"the training inputs `{x}` only, applied by a hook on `{model}` so evaluation sees the same "
                  "transform) usually speeds up training and improves the result.",
        expected_effect="faster, more stable training",
    )


def _act_call(node: cst.BaseExpression) -> bool:
    name = (dotted(node.func) if isinstance(node, cst.Call) else None) or ""
    parts = name.split(".")
    return len(parts) >= 2 and parts[-1] in {"ReLU", "GELU", "SiLU", "Tanh", "LeakyReLU", "ELU", "Mish"} \
        and parts[0] in {"nn", "torch"}


def add_dropout(text: str, path: str, p: float = 0.1, evaluation: Collection[str] = ()) -> TransformResult | None:
    """Insert `nn.Dropout(p)` after each hidden activation listed in an `nn.Sequential(...)` or a layer list.

    Only activation modules written as elements of a list / Sequential call are touched (the forward function is
    left alone), and only when the script has no dropout yet.
    """
    script = parse(text, evaluation)
    if script is None:
        return None
    if re.search(r"[Dd]ropout", text):
        return None
    patch = _Patch()
    prefix = None
    for node in script.walk((cst.List, cst.Call)):
        if script.is_fixed(node):
            continue
        if isinstance(node, cst.List):
            elems = list(node.elements)
            values = [e.value for e in elems]
        elif dotted(node.func) in ("nn.Sequential", "torch.nn.Sequential"):
            elems = list(node.args)
            values = [a.value for a in elems]
        else:
            continue
        if not any(_act_call(v) for v in values):
            continue
        new_elems: list[Any] = []
        for e, v in zip(elems, values, strict=True):
            new_elems.append(e)
            if _act_call(v):
                assert isinstance(v, cst.Call)
                prefix = (dotted(v.func) or "nn.ReLU").rsplit(".", 1)[0]
                drop = cst.parse_expression(f"{prefix}.Dropout({_num(p)})")
                comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
                if isinstance(node, cst.List):
                    new_elems[-1] = e.with_changes(comma=comma)
                    new_elems.append(cst.Element(value=drop, comma=e.comma))
                else:
                    new_elems[-1] = e.with_changes(comma=comma)
                    new_elems.append(cst.Arg(value=drop, comma=e.comma))
        if isinstance(node, cst.List):
            patch.replace[id(node)] = node.with_changes(elements=new_elems)
        else:
            patch.replace[id(node)] = node.with_changes(args=new_elems)
    if not patch.replace:
        return None
    # nested lists: replacing an outer and an inner node would lose the inner change; refuse rather than half-apply
    replaced = set(patch.replace)
    for node in script.walk((cst.List, cst.Call)):
        if id(node) in replaced and any(id(a) in replaced for a in script.ancestors(node)):
            return None
    new = _render(script, patch)
    if new is None:
        return None
    return TransformResult(
        name="dropout", path=path, new_text=new, title=f"add dropout {_num(p)} after the hidden activations",
        rationale="The model fits the training data much better than held-out data; dropout after hidden "
                  "activations is a cheap regulariser that narrows that gap.",
        expected_effect="smaller generalisation gap",
    )


def add_weight_decay(text: str, path: str, value: float = 0.05,
                     evaluation: Collection[str] = ()) -> TransformResult | None:
    """Add (or raise a literal) `weight_decay` in the optimizer call when no knob controls it."""
    script = parse(text, evaluation)
    if script is None:
        return None
    opt = script.single_optimizer()
    if opt is None or script.is_fixed(opt.call) or opt.cls in ("LBFGS", "SparseAdam"):
        return None
    args = list(opt.call.args)
    for i, a in enumerate(args):
        if a.star:
            return None
        if a.keyword is not None and a.keyword.value == "weight_decay":
            try:
                cur = float(script.code(a.value))
            except ValueError:
                return None  # an expression: a knob the search handles
            if cur >= value:
                return None
            args[i] = a.with_changes(value=cst.parse_expression(_num(value)))
            break
    else:
        if any(a.keyword is None for a in args[1:]):
            return None
        last = args[-1]
        args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        args.append(cst.Arg(keyword=cst.Name("weight_decay"), value=cst.parse_expression(_num(value)),
                            equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
    patch = _Patch()
    patch.replace[id(opt.call)] = opt.call.with_changes(args=args)
    new = _render(script, patch)
    if new is None:
        return None
    return TransformResult(
        name="weight_decay", path=path, new_text=new, title=f"add weight decay {_num(value)} to the optimizer",
        rationale="The held-out metric lags the training loss (over-fitting); weight decay keeps the weights small "
                  "and is the simplest regulariser to add to the optimizer.",
        expected_effect="smaller generalisation gap",
    )


def _criterion_measures(script: Script, call: cst.Call, evaluation: Collection[str]) -> bool:
    """Whether the loss object `call` builds (`criterion = nn.CrossEntropyLoss()`) is also what the metric is computed
    with: read in fixed code, or handed to an evaluation function (`evaluate(model, loader, criterion)`). Smoothing
    it would change the measured loss's definition, not the model."""
    stmt = script.statement_of(call)
    target = stmt.body[0] if stmt is not None and stmt.body else None
    if not isinstance(target, cst.Assign) or len(target.targets) != 1:
        return False
    name = script.code(target.targets[0].target).strip()
    tok = re.compile(rf"(?<![\w.]){re.escape(name)}\b")
    lines = script.text.splitlines()
    for n, line in enumerate(lines, 1):
        if n == script.line(call) or not tok.search(line):
            continue
        if n in script.fixed or any(re.search(rf"\b{re.escape(f)}\s*\(", line) for f in evaluation):
            return True
    return False


def label_smoothing(text: str, path: str, eps: float = 0.1, evaluation: Collection[str] = ()) -> TransformResult | None:
    """Add `label_smoothing` to the cross-entropy used for training (never the one used for evaluation)."""
    script = parse(text, evaluation)
    if script is None:
        return None
    if "label_smoothing" in text:
        return None
    patch = _Patch()
    for call in script.walk(cst.Call):
        name = dotted(call.func) or ""
        if name.split(".")[-1] not in ("cross_entropy", "CrossEntropyLoss") or script.is_fixed(call):
            continue
        if name.split(".")[-1] == "cross_entropy":
            # only the training loss: a call inside a loop of a scope that also calls backward
            if not any(isinstance(a, cst.For) for a in script.ancestors(call)):
                continue
            fn = script.function_of(call)
            if ".backward(" not in script.code(fn if fn is not None else script.module):
                continue
        elif _criterion_measures(script, call, evaluation):
            continue
        if any(a.star for a in call.args):
            return None
        args = list(call.args)
        new_arg = cst.Arg(keyword=cst.Name("label_smoothing"), value=cst.parse_expression(_num(eps)),
                          equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
        if args:
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        patch.replace[id(call)] = call.with_changes(args=[*args, new_arg])
    if len(patch.replace) != 1:
        return None
    new = _render(script, patch)
    if new is None:
        return None
    return TransformResult(
        name="label_smoothing", path=path, new_text=new, title=f"train with label smoothing {_num(eps)}",
        rationale="Label smoothing stops the classifier from pushing logits to extremes on the training set, a "
                  "regulariser that usually helps held-out accuracy when the model over-fits.",
        expected_effect="better held-out accuracy",
    )


# ----------------------------------------------------------------------------------------------- shape fix

_MATMUL_RE = re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")


def parse_matmul_mismatch(log: str) -> tuple[int, int] | None:
    """(actual features B, expected in_features C) from torch's "mat1 and mat2 shapes cannot be multiplied"."""
    hits = _MATMUL_RE.findall(log)
    if not hits:
        return None
    _a, b, c, _d = (int(v) for v in hits[-1])
    return b, c


def _const_eval(expr: cst.BaseExpression, consts: dict[str, int]) -> int | None:
    """Evaluate integer arithmetic of literals and known module constants; None for anything else."""
    if isinstance(expr, cst.Integer):
        return int(expr.evaluated_value)
    if isinstance(expr, cst.Name):
        return consts.get(expr.value)
    if isinstance(expr, cst.BinaryOperation):
        lft, rgt = _const_eval(expr.left, consts), _const_eval(expr.right, consts)
        if lft is None or rgt is None:
            return None
        op = expr.operator
        if isinstance(op, cst.Multiply):
            return lft * rgt
        if isinstance(op, cst.Add):
            return lft + rgt
        if isinstance(op, cst.Subtract):
            return lft - rgt
        if isinstance(op, cst.FloorDivide) and rgt:
            return lft // rgt
        if isinstance(op, cst.Power) and 0 <= rgt < 8:
            return int(lft**rgt)
        return None
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        v = _const_eval(expr.expression, consts)
        return -v if v is not None else None
    return None


def fix_linear_in_features(text: str, path: str, got: int, expected: int,
                           line_hint: str | None = None, evaluation: Collection[str] = ()) -> TransformResult | None:
    """Change the `in_features` of the `nn.Linear` expecting `expected` inputs to the `got` it receives.

    The layer is the one called on the failing line (`self.fc1(x)` → `self.fc1 = nn.Linear(...)`) when that is
    known, else the only Linear whose first argument evaluates to `expected`.
    """
    script = parse(text, evaluation)
    if script is None:
        return None
    consts: dict[str, int] = {}
    for s in script.module.body:
        if isinstance(s, cst.SimpleStatementLine) and isinstance(s.body[0], cst.Assign):
            asg = s.body[0]
            if len(asg.targets) == 1 and isinstance(asg.targets[0].target, cst.Name):
                v = _const_eval(asg.value, {})
                if v is not None:
                    consts[asg.targets[0].target.value] = v
    linears: list[tuple[cst.Call, str | None]] = []
    for call in script.walk(cst.Call):
        if (dotted(call.func) or "").split(".")[-1] != "Linear" or not call.args:
            continue
        first = call.args[0]
        if first.keyword is not None and first.keyword.value != "in_features":
            continue
        stmt = script.statement_of(call)
        target = None
        if stmt is not None and isinstance(stmt.body[0], cst.Assign) and stmt.body[0].value is call:
            target = dotted(stmt.body[0].targets[0].target)
        linears.append((call, target))
    chosen: list[cst.Call] = []
    if line_hint:
        called = set(re.findall(r"(self\.\w+)\s*\(", line_hint))
        chosen = [c for c, t in linears if t in called and _const_eval(c.args[0].value, consts) in (expected, None)]
    if len(chosen) != 1:
        chosen = [c for c, _ in linears if _const_eval(c.args[0].value, consts) == expected]
    if len(chosen) != 1:
        return None
    call = chosen[0]
    old_src = script.code(call.args[0].value)
    patch = _Patch()
    patch.replace[id(call.args[0].value)] = cst.Integer(str(got))
    new = _render(script, patch)
    if new is None:
        return None
    built = old_src if old_src == str(expected) else f"{old_src} = {expected}"  # never "built for 2 = 2"
    return TransformResult(
        name="fix_linear_in", path=path, new_text=new, title=f"fix the Linear layer's in_features: {old_src} → {got}",
        rationale=f"The run crashed because the flattened activations have {got} features but the Linear layer "
                  f"was built for {built}; setting in_features to {got} matches the actual shape.",
        expected_effect="the script runs",
    )


def add_hidden_layer(text: str, path: str, evaluation: Collection[str] = ()) -> TransformResult | None:
    """One more hidden layer in a layer-by-layer `nn.Sequential` (see depth.py, which builds on this module)."""
    from nightlab.agent.policy import depth

    return depth.add_hidden_layer(text, path, evaluation)


TRANSFORMS: dict[str, Callable[..., TransformResult | None]] = {
    "sgd_to_adamw": sgd_to_adamw,
    "warmup_cosine": warmup_cosine,
    "standardize": standardize_inputs,
    "grad_clip": gradient_clipping,
    "dropout": add_dropout,
    "weight_decay": add_weight_decay,
    "label_smoothing": label_smoothing,
    "deepen": add_hidden_layer,
}


def applicable(text: str, path: str, names: Sequence[str] | None = None,
               evaluation: Collection[str] = ()) -> list[TransformResult]:
    """All transforms (by name, default every one) that apply to a file; a failing transform is just skipped."""
    out = []
    for name in names or list(TRANSFORMS):
        try:
            r = TRANSFORMS[name](text, path, evaluation=evaluation)
        except Exception:  # a transform bug must never take the policy down; the script is left alone
            r = None
        if r is not None:
            out.append(r)
    return out
