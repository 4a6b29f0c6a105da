"""The training script as the transforms see it (`parse` → `Script`: its optimizers, loops, models, the code that
measures), how a transform patches it (`Patch`, `render`: node replacements and statements inserted, re-parsed
before they count), and how a new text becomes the exact `Edit`s the engine validates (`diff_edits`)."""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

from nightlab.agent.policy.evaluation import fixed_lines
from nightlab.agent.proposal import Edit


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


class Patch(cst.CSTTransformer):
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


def render(script: Script, patch: Patch) -> str | None:
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


def _stmt(code: str) -> cst.BaseStatement:
    return cst.parse_statement(code)


def _helper_insertion(script: Script, patch: Patch, helper: str) -> bool:
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


def _torch_import(script: Script, patch: Patch) -> bool:
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
