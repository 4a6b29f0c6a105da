"""One more hidden layer: depth as a remedy for under-fitting, where the model's structure is certain.

Depth is changed in one of two ways, and only where the code leaves no doubt about what a layer is:

- a depth knob (`n_layer`, `depth`, `num_layers`: a count the code builds its layers from) is raised by one — the
  builtin policy moves it like any knob (`BuiltinPolicy._deepen`);
- an `nn.Sequential(...)` written out layer by layer, or a list literal of layers, whose last two `nn.Linear`
  layers are joined by a hidden width the code spells the same way on both sides (`nn.Linear(d, H), nn.ReLU(),
  nn.Linear(H, 2)`) gets one more hidden layer of that width, followed by a copy of the modules that already sit
  between the two (the activation, and dropout or a normalisation of that width if there is one):
  `nn.Linear(d, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(), nn.Linear(H, 2)`.

Anything else is left alone: two such containers in a file (which one is the model?), a starred element, a layer
between the two that is not elementwise (its shape would have to be understood), a width written differently on the
two sides, code in the evaluation functions. As with every transform, the change applies whole or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import libcst as cst

from nightlab.agent.policy import transforms as tf

NAME = "deepen"
# modules that act element by element (or over the hidden width only): safe to repeat after the new layer
_ELEMENTWISE = frozenset({"ReLU", "GELU", "SiLU", "Tanh", "LeakyReLU", "ELU", "Mish", "Sigmoid", "Softplus", "PReLU",
                          "Dropout", "LayerNorm", "BatchNorm1d"})
_ACTIVATIONS = _ELEMENTWISE - {"Dropout", "LayerNorm", "BatchNorm1d"}
_NN = ("nn", "torch.nn")


def _module(node: cst.BaseExpression) -> str | None:
    """`Linear` for `nn.Linear(...)` / `torch.nn.Linear(...)`, None for anything that is not such a call."""
    if not isinstance(node, cst.Call):
        return None
    name = tf.dotted(node.func) or ""
    prefix, _, leaf = name.rpartition(".")
    return leaf if prefix in _NN else None


def _size_args(call: cst.Call) -> tuple[cst.BaseExpression, cst.BaseExpression] | None:
    """(in_features, out_features) of an `nn.Linear` call, positional or by keyword."""
    pos = [a.value for a in call.args if a.keyword is None and a.star == ""]
    kw = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
    got_in = pos[0] if pos else kw.get("in_features")
    got_out = pos[1] if len(pos) > 1 else kw.get("out_features")
    if got_in is None or got_out is None or any(a.star for a in call.args):
        return None
    return got_in, got_out


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node).strip()


def _plan(values: Sequence[cst.BaseExpression]) -> tuple[int, int, str] | None:
    """(index after which the new layer goes, index of the last Linear, the hidden width's code) for a container's
    elements, or None when its structure is not the certain one."""
    linears = [i for i, v in enumerate(values) if _module(v) == "Linear"]
    if len(linears) < 2:
        return None
    j, last = linears[-2], linears[-1]
    a, b = values[j], values[last]
    assert isinstance(a, cst.Call) and isinstance(b, cst.Call)
    sa, sb = _size_args(a), _size_args(b)
    if sa is None or sb is None:
        return None
    width = _code(sa[1])
    if width != _code(sb[0]):
        return None
    between = values[j + 1:last]
    names = [_module(v) for v in between]
    if not between or any(n not in _ELEMENTWISE for n in names) or not any(n in _ACTIVATIONS for n in names):
        return None
    for v, n in zip(between, names, strict=True):
        if n in ("LayerNorm", "BatchNorm1d"):
            assert isinstance(v, cst.Call)
            first = next((x.value for x in v.args if x.keyword is None), None)
            if first is None or _code(first) != width:
                return None
    return last - 1, last, width


def add_hidden_layer(text: str, path: str, evaluation: Collection[str] = ()) -> tf.TransformResult | None:
    """One more hidden layer in the file's only layer-by-layer `nn.Sequential` (or list of layers); None when there
    is no such container, or more than one."""
    script = tf.parse(text, evaluation)
    if script is None:
        return None
    found: list[tuple[cst.CSTNode, list[Any], list[cst.BaseExpression], tuple[int, int, str]]] = []
    for node in script.walk((cst.List, cst.Call)):
        if isinstance(node, cst.List):
            elems: list[Any] = list(node.elements)
            if any(isinstance(e, cst.StarredElement) for e in elems):
                continue
        elif tf.dotted(node.func) in ("nn.Sequential", "torch.nn.Sequential"):
            elems = list(node.args)
            if any(a.keyword is not None or a.star for a in elems):
                continue
        else:
            continue
        values = [e.value for e in elems]
        plan = _plan(values)
        if plan is not None:
            if script.is_fixed(node):
                return None
            found.append((node, elems, values, plan))
    if len(found) != 1:
        return None
    node, elems, values, (after, last, width) = found[0]
    first_linear = next(i for i, v in enumerate(values) if _module(v) == "Linear")
    hidden = sum(1 for v in values[first_linear:last] if _module(v) == "Linear")
    prev_linear = max(i for i, v in enumerate(values[:last]) if _module(v) == "Linear")
    linear = values[prev_linear]
    assert isinstance(linear, cst.Call)
    prefix = (tf.dotted(linear.func) or "nn.Linear").rsplit(".", 1)[0]
    new_values: list[cst.BaseExpression] = [cst.parse_expression(f"{prefix}.Linear({width}, {width})")]
    new_values += [v.deep_clone() for v in values[prev_linear + 1:last]]
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    out: list[Any] = []
    for i, e in enumerate(elems):
        if i != after:
            out.append(e)
            continue
        out.append(e.with_changes(comma=comma))
        for k, v in enumerate(new_values):
            tail = e.comma if k == len(new_values) - 1 else comma
            out.append(cst.Element(value=v, comma=tail) if isinstance(node, cst.List) else cst.Arg(value=v, comma=tail))
    patch = tf.Patch()
    patch.replace[id(node)] = node.with_changes(elements=out) if isinstance(node, cst.List) \
        else node.with_changes(args=out)
    new = tf.render(script, patch)
    if new is None:
        return None
    acts = ", ".join(_code(v) for v in values[prev_linear + 1:last])
    return tf.TransformResult(
        name=NAME, path=path, new_text=new,
        title=f"add a hidden layer: Linear({width}, {width}) + {acts} before the output layer",
        rationale=f"The model is a stack of {hidden} hidden Linear layer(s) of width {width} in one container; a "
                  f"further hidden layer of the same width (followed by the same {acts}) adds capacity by "
                  "composing features, which a single wide layer can only approximate with many more units.",
        expected_effect="lower training loss and a better held-out metric",
    )


__all__ = ["NAME", "add_hidden_layer"]
