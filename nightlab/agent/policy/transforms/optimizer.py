"""Transforms of how the model is optimised: SGD → AdamW, gradient clipping, a warm-up + cosine schedule over the
computable length of the training loop."""

from __future__ import annotations

import re
from collections.abc import Collection

import libcst as cst

from nightlab.agent.policy.transforms.script import (
    _ADAMW_KWARGS,
    _SGD_POSITIONAL,
    Patch,
    Script,
    TransformResult,
    _helper_insertion,
    _num,
    _stmt,
    _torch_import,
    parse,
    render,
)


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
    patch = Patch()
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
    new = render(script, patch)
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
    patch = Patch()
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
    new = render(script, patch)
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
    patch = Patch()
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
    new = render(script, patch)
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
