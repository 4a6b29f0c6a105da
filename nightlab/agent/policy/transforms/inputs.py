"""Input standardisation: the training inputs scaled by statistics of the training set alone, applied inside the
model so that evaluation sees the same scaling and no statistic of held-out data leaks in."""

from __future__ import annotations

import re
from collections.abc import Collection

import libcst as cst

from nightlab.agent.policy.transforms.script import (
    _TRAIN_X_RE,
    Patch,
    Script,
    TransformResult,
    _helper_insertion,
    _stmt,
    dotted,
    parse,
    render,
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
    patch = Patch()
    if not _helper_insertion(script, patch, _STANDARDIZE_HELPER.strip() + "\n"):
        return None
    patch.before[id(outer)] = [_stmt(f"_standardize_inputs({model}, {x})\n")]
    new = render(script, patch)
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
