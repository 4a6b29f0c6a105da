"""Where the metric is printed: the statements that print, log or write its name, and the values they report right
after it (an f-string's `{val_loss}`, a `%` format's argument, a logged dict's entry), never a file's path that
happens to contain it."""


from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field


def _metric_pattern(metric: str) -> re.Pattern[str] | None:
    """The metric's name as code writes it (`val_acc`, `val/acc`, `val acc`); a summary of it (`best_val_acc`,
    `final_val_loss`) also matches the measurement it summarises (Ray Tune's trainable reports `{"val_acc": acc}`
    and the driver prints `best_val_acc`)."""
    words = [w for w in re.split(r"[\s_\-/.]+", metric.strip()) if w]
    if not words:
        return None
    sep = r"[\s_\-/.]?"
    summary = ""
    if len(words) > 1 and words[0].lower() in _SUMMARY_WORDS:
        summary, words = f"(?:{re.escape(words[0])}{sep})?", words[1:]
    return re.compile(r"(?<![A-Za-z0-9])" + summary + sep.join(map(re.escape, words)) + r"(?![A-Za-z0-9])",
                      re.IGNORECASE)


_SUMMARY_WORDS = frozenset({"best", "final", "last", "max", "min", "mean", "avg", "average", "top"})


def _mentions(node: ast.AST, pat: re.Pattern[str]) -> bool:
    """Whether a string in `node` names the metric; a file's path does not (`torch.save(model.state_dict(),
    "best_metric_model.pth")` saves a checkpoint, it reports no `best_metric`)."""
    return any(isinstance(n, ast.Constant) and isinstance(n.value, str) and pat.search(n.value)
               and not _a_file_path(n.value) for n in ast.walk(node))


_FILE_PATH = re.compile(r"^[\w.\-/{}]*\.(?:pth?|pt|ckpt|bin|safetensors|h5|hdf5|keras|pkl|pickle|joblib|json|ya?ml|"
                        r"csv|tsv|npz|npy|txt|log|png|jpe?g|svg|pdf|onnx|msgpack|parquet)$", re.IGNORECASE)


def _a_file_path(text: str) -> bool:
    """A string that is a file's name (`best_metric_model.pth`, `runs/{name}/val_loss.csv`): no words around it."""
    return bool(_FILE_PATH.match(text.strip()))


def _printed(st: ast.stmt, pat: re.Pattern[str]) -> list[ast.AST]:
    """The values a statement that mentions the metric reports: the arguments of the call that prints or logs it
    (``print(...)``, ``logger.info(...)``, ``report(value, "val_loss")`` — that call is the reporter, not the
    evaluator), or the value assigned / returned. Where the metric names one entry of a dict or one keyword
    (``wandb.log({"val/loss": losses["val"], "lr": lr})``, a checkpoint ``{"best_val_loss": best, "optimizer":
    optimizer.state_dict()}``, ``log(val_loss=v, lr=lr)``), only that entry is its value."""
    value = st.value if isinstance(st, ast.Expr | ast.Assign | ast.Return | ast.AnnAssign) else None
    if isinstance(value, ast.Call):
        named: list[ast.AST] = [k.value for k in value.keywords if k.arg is not None and pat.search(k.arg)]
        values: list[ast.AST] = named or _labelled(_call_pieces(value), pat) \
            or [*value.args, *(k.value for k in value.keywords)]
    else:
        values = (_labelled(_pieces(value), pat) or [value]) if value is not None else [st]
    return [v for d in values for v in _entries_named(d, pat)]


# a printf-style placeholder (`%.4f`, `%(loss)s`; `%%` is a literal percent sign) and a str.format field
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")

_BRACES = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


@dataclass
class _Message:
    """What a statement prints, in order; `labelled` when its text names its values (a format string, or text
    arguments between values) rather than standing beside one."""
    pieces: list[Piece] = field(default_factory=list)
    labelled: bool = False

    def __iadd__(self, other: _Message) -> _Message:
        self.pieces += other.pieces
        self.labelled = self.labelled or other.labelled
        return self


def _labelled(msg: _Message, pat: re.Pattern[str]) -> list[ast.AST]:
    """The values a message prints right after the metric's name: `{val_loss}` in f"val_loss {val_loss:.4f} lr
    {config.lr}", not the learning rate beside it (whose config is no evaluation code: followed, it froze every
    setting of a get_config()). Empty where the message labels nothing or never names the metric (then every value
    counts, as for ``report(value, "val_loss", step)``)."""
    if not msg.labelled:
        # `print("val_acc", acc, EPOCHS)`: one text piece names the metric, the value right after it is the metric
        texts = [i for i, p in enumerate(msg.pieces) if isinstance(p, str) and pat.search(p)]
        if texts == [0] and len(msg.pieces) > 1 and not isinstance(msg.pieces[1], str):  # (`report(v, "val_loss",
            # step)` names it after its value: every value counts there)
            after = msg.pieces[1]
            assert not isinstance(after, str)
            return [after]
        return []
    out: list[ast.AST] = []
    armed = False
    for p in msg.pieces:
        if isinstance(p, str):
            armed = armed or bool(pat.search(p))
        elif armed:
            out.append(p)
            armed = False
    return out


def _pieces(node: ast.AST) -> _Message:
    """A value as printed: the text and the values of an f-string, a `%` format or a `.format(...)` call; a string
    is text; anything else is one value."""
    if isinstance(node, ast.JoinedStr):
        return _Message([v.value if isinstance(v, ast.Constant) and isinstance(v.value, str)
                         else v.value if isinstance(v, ast.FormattedValue) else v for v in node.values], True)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _Message([node.value])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) \
            and isinstance(node.left.value, str):
        args = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
        return _percent(node.left.value, list(args))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format" \
            and isinstance(node.func.value, ast.Constant) and isinstance(node.func.value.value, str):
        return _braces(node.func.value.value, node)
    return _Message([node])


def _call_pieces(call: ast.Call) -> _Message:
    """A print or log call's message: its format string's text and the arguments it formats (``logger.info("val_loss
    %.4f lr %g", v, lr)``), or its arguments in order, each as printed (labelled when two or more are text)."""
    args = list(call.args)
    if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str) and len(args) > 1 \
            and _PERCENT.search(args[0].value):
        return _percent(args[0].value, args[1:])
    out = _Message(labelled=sum(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args) >= 2)
    for a in args:
        out += _pieces(a)
    return out


def _percent(fmt: str, args: list[ast.expr]) -> _Message:
    out = _Message(labelled=True)
    i, at = 0, 0
    for m in _PERCENT.finditer(fmt):
        out.pieces.append(fmt[at:m.start()])
        at = m.end()
        if m.group(1) == "%":
            continue
        if i < len(args):
            out.pieces.append(args[i])
        i += 1
    out.pieces.append(fmt[at:])
    return out


def _braces(fmt: str, call: ast.Call) -> _Message:
    out = _Message(labelled=True)
    keywords = {k.arg: k.value for k in call.keywords if k.arg is not None}
    auto, at = 0, 0
    for m in _BRACES.finditer(fmt):
        if m.group(1) is None:  # an escaped brace
            continue
        out.pieces.append(fmt[at:m.start()])
        at = m.end()
        name = re.split(r"[.\[!:]", m.group(1), maxsplit=1)[0]
        if name == "":
            name, auto = str(auto), auto + 1
        value = call.args[int(name)] if name.isdigit() and int(name) < len(call.args) else keywords.get(name)
        if value is not None:
            out.pieces.append(value)
    out.pieces.append(fmt[at:])
    return out


def _entries_named(node: ast.AST, pat: re.Pattern[str]) -> list[ast.AST]:
    """A dict's values under keys that mention the metric, when some key does; else the node itself."""
    if isinstance(node, ast.Dict):
        named: list[ast.AST] = [v for k, v in zip(node.keys, node.values, strict=True)
                 if isinstance(k, ast.Constant) and isinstance(k.value, str) and pat.search(k.value)]
        if named:
            return named
    return [node]


Piece = str | ast.AST  # the text of a message, or a value formatted into it, in the order printed
