"""The repair of a Linear layer sized for other inputs: the matmul error's shapes read from the log, and the layer's
`in_features` rewritten to what the data gives it (where the value is a constant the code computes)."""

from __future__ import annotations

import re
from collections.abc import Collection

import libcst as cst

from nightlab.agent.policy.transforms.script import Patch, TransformResult, dotted, parse, render

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
    patch = Patch()
    patch.replace[id(call.args[0].value)] = cst.Integer(str(got))
    new = render(script, patch)
    if new is None:
        return None
    built = old_src if old_src == str(expected) else f"{old_src} = {expected}"  # never "built for 2 = 2"
    return TransformResult(
        name="fix_linear_in", path=path, new_text=new, title=f"fix the Linear layer's in_features: {old_src} → {got}",
        rationale=f"The run crashed because the flattened activations have {got} features but the Linear layer "
                  f"was built for {built}; setting in_features to {got} matches the actual shape.",
        expected_effect="the script runs",
    )
