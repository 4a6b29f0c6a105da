"""Regularisers for a model that over-fits: dropout after the hidden activations, weight decay on the optimizer,
label smoothing on a training criterion that does not also measure."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import libcst as cst

from nightlab.agent.policy.transforms.script import Patch, Script, TransformResult, _num, dotted, parse, render


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
    patch = Patch()
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
    new = render(script, patch)
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
    patch = Patch()
    patch.replace[id(opt.call)] = opt.call.with_changes(args=args)
    new = render(script, patch)
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
    patch = Patch()
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
    new = render(script, patch)
    if new is None:
        return None
    return TransformResult(
        name="label_smoothing", path=path, new_text=new, title=f"train with label smoothing {_num(eps)}",
        rationale="Label smoothing stops the classifier from pushing logits to extremes on the training set, a "
                  "regulariser that usually helps held-out accuracy when the model over-fits.",
        expected_effect="better held-out accuracy",
    )
