"""APIs removed or renamed in current releases of numpy, pandas and torch.

Each pattern is the error the removal raises (an AttributeError naming the attribute, an ImportError naming the
name); the repair rewrites every use of the removed API in the repository's code to its documented replacement,
since each of them would fail next. Some of these APIs still work (with a warning) on the versions installed with
nightlab -- the README's catalogue says which -- and their entries fire where a project's own environment is newer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import libcst as cst

from nightlab.agent.policy.catalogue.code import Source, call_name, dotted, keyword, rewrite_files, without_keyword
from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms

__all__ = [
    "recognise_functional", "recognise_numpy_alias", "recognise_pandas_append", "recognise_torch_cuda_amp",
    "recognise_variable", "recognise_zero_dim_index", "repair_functional", "repair_numpy_alias",
    "repair_pandas_append", "repair_torch_cuda_amp", "repair_variable", "repair_zero_dim_index",
]


def _rewrite_files(site: Site, plan: Callable[[Source], str]) -> tuple[dict[str, str], list[str]]:
    return rewrite_files(site.python(), plan)


# ----------------------------------------------------------------------------------------------------- numpy


@dataclass(frozen=True)
class _Alias:
    new: str  # the replacement; {np} is the module's alias
    removed: str  # the numpy release that removed it
    needs: str = "1.0"  # the numpy release the replacement needs


_NUMPY: dict[str, _Alias] = {
    **{a: _Alias(b, "1.24") for a, b in (("float", "float"), ("int", "int"), ("object", "object"), ("str", "str"),
                                         ("complex", "complex"), ("bool", "bool"), ("long", "int"),
                                         ("unicode", "str"))},
    **{a: _Alias(b, "2.0") for a, b in (
        ("product", "{np}.prod"), ("cumproduct", "{np}.cumprod"), ("sometrue", "{np}.any"), ("alltrue", "{np}.all"),
        ("NaN", "{np}.nan"), ("NAN", "{np}.nan"), ("Inf", "{np}.inf"), ("Infinity", "{np}.inf"),
        ("infty", "{np}.inf"), ("PINF", "{np}.inf"), ("NINF", "(-{np}.inf)"), ("float_", "{np}.float64"),
        ("complex_", "{np}.complex128"), ("unicode_", "{np}.str_"), ("string_", "{np}.bytes_"),
        ("round_", "{np}.round"), ("int0", "{np}.intp"), ("uint0", "{np}.uintp"), ("bool8", "{np}.bool_"),
        ("object0", "{np}.object_"), ("cfloat", "{np}.complex128"), ("singlecomplex", "{np}.complex64"),
        ("longfloat", "{np}.longdouble"), ("longcomplex", "{np}.clongdouble"), ("clongfloat", "{np}.clongdouble"),
        ("mat", "{np}.asmatrix"), ("issubsctype", "{np}.issubdtype"))},
    "in1d": _Alias("{np}.isin", "2.4"),
    "trapz": _Alias("{np}.trapezoid", "2.4", needs="2.0"),
}
_REINTRODUCED = frozenset({"bool", "long"})  # numpy 2 has them again (as numpy scalar types)


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def recognise_numpy_alias(sym: Symptoms) -> Match | None:
    m = sym.says(r"module 'numpy' has no attribute '(\w+)'", r"`np\.(\w+)` was removed in the NumPy")
    if m is None or m.group(1) not in _NUMPY:
        return None
    name = m.group(1)
    alias = _NUMPY[name]
    return Match(f"np.{name} was removed in NumPy {alias.removed}; the code predates it "
                 f"(use {alias.new.format(np='np').strip('()')})", {"name": name})


def repair_numpy_alias(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    failing = str(match.facts["name"])
    floor = _version(_NUMPY[failing].removed)  # the run's numpy is at least this new
    todo = {a: x for a, x in _NUMPY.items()
            if a == failing or ((_version(x.removed) <= floor or a not in _REINTRODUCED)
                                and _version(x.needs) <= floor and (a not in _REINTRODUCED or floor < (2, 0)))}
    found: list[str] = []

    def plan(src: Source) -> str:
        names = src.aliases("numpy")
        hits = []
        for attr, alias in todo.items():
            for ref in src.attribute_refs(names, attr):
                np = dotted(ref.value) or "numpy"
                src.replace(ref, alias.new.format(np=np))
                hits.append(f"np.{attr}")
        found.extend(hits)
        return ", ".join(dict.fromkeys(hits))

    texts, words = _rewrite_files(site, plan)
    if not texts:
        return
    uses = ", ".join(f"{a} -> {_NUMPY[a.removeprefix('np.')].new.format(np='np').strip('()')}"
                     for a in dict.fromkeys(found))
    yield Fix(title=f"replace NumPy aliases removed in current releases ({uses})",
              rationale=f"The run failed because {match.diagnosis}. Each removed alias is replaced by what it "
                        f"stood for, which behaves the same: {'; '.join(words)}.",
              texts=texts)


# ----------------------------------------------------------------------------------------------------- pandas

_PANDAS_RENAMED = {"iteritems": "items"}


def recognise_pandas_append(sym: Symptoms) -> Match | None:
    m = sym.says(r"'(DataFrame|Series)' object has no attribute '(append|iteritems)'")
    if m is None:
        return None
    if m.group(2) == "append":
        return Match(f"{m.group(1)}.append was removed in pandas 2.0 (use pd.concat)",
                     {"kind": m.group(1), "attr": "append"})
    return Match(f"{m.group(1)}.{m.group(2)} was removed in pandas 2.0 (use .{_PANDAS_RENAMED[m.group(2)]})",
                 {"kind": m.group(1), "attr": m.group(2)})


def _kind_of(src: Source, expr: cst.BaseExpression, pd: str, scope: cst.CSTNode | None) -> str:
    """'dict', 'frame', 'series' or '' for an appended value, from its literal or its one assignment."""
    if isinstance(expr, cst.Dict) or (isinstance(expr, cst.Call) and call_name(expr) == "dict"):
        return "dict"
    if isinstance(expr, cst.Call):
        name = call_name(expr)
        if name in (f"{pd}.DataFrame",) or name.startswith(f"{pd}.read_"):
            return "frame"
        if name == f"{pd}.Series":
            return "series"
        return ""
    if isinstance(expr, cst.Name) and scope is not None:
        values = [a.value for a in src.walk(cst.Assign) if any(
            isinstance(t.target, cst.Name) and t.target.value == expr.value for t in a.targets)
                  and _within(src, a, scope)]
        kinds = {_kind_of(src, v, pd, None) for v in values}
        return kinds.pop() if len(kinds) == 1 else ""
    return ""


def _within(src: Source, node: cst.CSTNode, scope: cst.CSTNode) -> bool:
    assert src.script is not None
    return src.script.function_of(node) is scope or (scope is src.module and src.script.function_of(node) is None)


def repair_pandas_append(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    attr = str(match.facts["attr"])
    frames = [f for f in reversed(site.frames) if f.path in site.files]
    for fr in frames:
        src = Source(fr.path, site.files[fr.path])
        if not src.ok:
            continue
        at = [c for c in src.calls_at(fr.line) if isinstance(c.func, cst.Attribute) and c.func.attr.value == attr]
        if len(at) != 1:
            continue
        receiver = src.code(at[0].func.value).strip()  # type: ignore[attr-defined]
        # every call on the same receiver in the file fails the same way
        same = [c for c in src.calls() if isinstance(c.func, cst.Attribute) and c.func.attr.value == attr
                and src.code(c.func.value).strip() == receiver]
        if attr != "append":
            for c in same:
                src.replace(c.func, cst.Attribute(value=c.func.value, attr=cst.Name(_PANDAS_RENAMED[attr])))  # type: ignore[attr-defined]
            new = src.render()
            if new is not None:
                yield Fix(title=f"{receiver}.{attr}() -> .{_PANDAS_RENAMED[attr]}(): removed in pandas 2.0",
                          rationale=f"The run failed because {match.diagnosis}; .{_PANDAS_RENAMED[attr]}() "
                                    "iterates the same pairs.", texts={fr.path: new})
            return
        pd = next(iter(sorted(src.aliases("pandas"))), None) or src.ensure_import("pandas", "pd")
        if pd is None:
            return
        assert src.script is not None
        for c in same:
            pos = [a for a in c.args if a.keyword is None and not a.star]
            if len(pos) != 1 or any(a.star for a in c.args):
                return
            other = pos[0].value
            scope = src.script.function_of(c) or src.module
            kind = _kind_of(src, other, pd, scope)
            o = src.code(other).strip()
            wrapped = {"dict": f"{pd}.DataFrame([{o}])", "frame": o, "series": f"{o}.to_frame().T"}.get(
                kind, f"{pd}.DataFrame([{o}]) if isinstance({o}, (dict, {pd}.Series)) else {o}")
            kws = ", ".join(src.code(a).strip().rstrip(",") for a in c.args if a.keyword is not None)
            src.replace(c, f"{pd}.concat([{receiver}, {wrapped}]{', ' + kws if kws else ''})")
        new = src.render()
        if new is not None:
            yield Fix(title=f"{receiver}.append(...) -> {pd}.concat(...): DataFrame.append was removed in pandas 2.0",
                      rationale=f"The run failed because {match.diagnosis}. pd.concat of the frame and the appended "
                                "rows (a dict or Series becomes a one-row frame) builds the same table, with the same "
                                f"keyword arguments; {len(same)} call(s) in {fr.path}.",
                      texts={fr.path: new})
        return


# ----------------------------------------------------------------------------------------------------- torch


def recognise_torch_cuda_amp(sym: Symptoms) -> Match | None:
    if sym.says(r"module 'torch\.cuda' has no attribute 'amp'", r"No module named 'torch\.cuda\.amp'",
                r"cannot import name '\w+' from 'torch\.cuda\.amp'",
                r"module 'torch\.cuda\.amp' has no attribute '(?:autocast|GradScaler)'") is None:
        return None
    return Match("torch.cuda.amp (autocast, GradScaler) was deprecated in torch 2.4 for torch.amp, and this torch "
                 "no longer has it")


_AMP = ("autocast", "GradScaler")


def repair_torch_cuda_amp(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    def plan(src: Source) -> str:
        torch_names = src.aliases("torch")
        hits = 0
        for c in src.calls():
            name = call_name(c)
            head, _, fn = name.rpartition(".")
            bare = not head and fn in src.imported_from("torch.cuda.amp")
            if fn not in _AMP or not (bare or (head.endswith(".cuda.amp") and head[:-9] in torch_names)):
                continue
            if any(a.keyword is None for a in c.args):
                return ""  # a positional argument: its meaning moved, not certain
            dev = cst.Arg(value=cst.SimpleString('"cuda"'), comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(
                " ")) if c.args else cst.MaybeSentinel.DEFAULT)
            func = c.func if bare else cst.parse_expression(f"{head[:-9]}.amp.{fn}")
            src.replace(c, c.with_changes(func=func, args=[dev, *c.args]))
            hits += 1
        for imp in src.walk(cst.ImportFrom):
            if imp.module is not None and dotted(imp.module) == "torch.cuda.amp":
                src.replace(imp.module, cst.parse_expression("torch.amp"))
                hits += 1
        return f"{hits} use(s) of torch.cuda.amp" if hits else ""

    texts, words = _rewrite_files(site, plan)
    if texts:
        yield Fix(title="torch.cuda.amp -> torch.amp with device \"cuda\"",
                  rationale=f"The run failed because {match.diagnosis}. torch.amp.autocast(\"cuda\", ...) and "
                            f"torch.amp.GradScaler(\"cuda\", ...) are the same objects under their current name (and "
                            f"disable themselves where there is no GPU, as before): {'; '.join(words)}.",
                  texts=texts)


def recognise_functional(sym: Symptoms) -> Match | None:
    m = sym.says(r"module 'torch\.nn\.functional' has no attribute '(sigmoid|tanh)'")
    if m is None:
        return None
    return Match(f"torch.nn.functional.{m.group(1)} is gone from this torch (torch.{m.group(1)} is the function)",
                 {"fn": m.group(1)})


def repair_functional(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    def plan(src: Source) -> str:
        bases = src.aliases("torch.nn.functional") | {f"{t}.nn.functional" for t in src.aliases("torch")}
        refs = [r for fn in ("sigmoid", "tanh") for r in src.attribute_refs(bases, fn)]
        if not refs:
            return ""
        torch = src.ensure_import("torch")
        if torch is None:
            return ""
        for r in refs:
            src.replace(r, f"{torch}.{r.attr.value}")
        return ", ".join(sorted({f"F.{r.attr.value} -> torch.{r.attr.value}" for r in refs}))

    texts, words = _rewrite_files(site, plan)
    if texts:
        yield Fix(title="F.sigmoid / F.tanh -> torch.sigmoid / torch.tanh",
                  rationale=f"The run failed because {match.diagnosis}; torch.sigmoid and torch.tanh compute the "
                            f"same: {'; '.join(words)}.", texts=texts)


def recognise_variable(sym: Symptoms) -> Match | None:
    if sym.says(r"cannot import name 'Variable' from 'torch\.autograd'",
                r"module 'torch\.autograd' has no attribute 'Variable'") is not None:
        return Match("torch.autograd.Variable is gone: tensors have carried autograd themselves since torch 0.4")
    if sym.says(r"unexpected keyword argument 'volatile'") is not None:
        return Match("volatile=True is gone (it did nothing since torch 0.4; torch.no_grad() replaced it)")
    return None


def repair_variable(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    def plan(src: Source) -> str:
        names = {n for n, a in src.imported_from("torch.autograd").items() if (dotted(a.name) or "") == "Variable"}
        names |= {f"{t}.autograd.Variable" for t in src.aliases("torch")}
        names |= {f"{a}.Variable" for a in src.aliases("torch.autograd")}
        hits = 0
        for c in src.calls():
            if call_name(c) not in names:
                continue
            pos = [a for a in c.args if a.keyword is None and not a.star]
            if len(pos) != 1 or any(a.keyword is not None and a.keyword.value not in ("volatile", "requires_grad")
                                    for a in c.args):
                return ""
            x = src.code(pos[0].value).strip()
            rg = keyword(c, "requires_grad")
            if rg is not None and (dotted(rg.value) or "") != "False":
                src.replace(c, f"{x}.requires_grad_({'' if dotted(rg.value) == 'True' else src.code(rg.value)})")
            else:
                src.replace(c, pos[0].value if not isinstance(pos[0].value, cst.BinaryOperation) else f"({x})")
            hits += 1
        for imp in src.walk(cst.ImportFrom):
            if imp.module is None or dotted(imp.module) != "torch.autograd" or isinstance(imp.names, cst.ImportStar):
                continue
            keep = [a for a in imp.names if (dotted(a.name) or "") != "Variable"]
            if len(keep) == len(imp.names):
                continue
            stmt = src.statement_of(imp)
            if not keep and stmt is not None and len(stmt.body) == 1:
                src.remove_statement(stmt)
            elif keep:
                keep[-1] = keep[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                src.replace(imp, imp.with_changes(names=keep))
            hits += 1
        # volatile=True on anything else (a tensor factory of old code)
        for c in src.calls():
            if keyword(c, "volatile") is not None and call_name(c) not in names:
                src.replace(c, without_keyword(c, "volatile"))
                hits += 1
        return f"{hits} use(s) of Variable / volatile" if hits else ""

    texts, words = _rewrite_files(site, plan)
    if texts:
        yield Fix(title="drop torch.autograd.Variable and volatile=: plain tensors do the same",
                  rationale=f"The run failed because {match.diagnosis}. Variable(x) is x itself (x.requires_grad_() "
                            f"where it asked for gradients), and volatile had no effect: {'; '.join(words)}.",
                  texts=texts)


def recognise_zero_dim_index(sym: Symptoms) -> Match | None:
    if sym.says(r"invalid index of a 0-dim tensor") is None:
        return None
    code = sym.frame.code if sym.frame is not None else ""
    return Match(f"indexing a 0-dim tensor ({code or 'loss.data[0]'}) stopped working in torch 0.4: a scalar loss "
                 "is read with .item()")


def _zero_index(node: cst.Subscript) -> bool:
    if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return False
    v = node.slice[0].slice.value
    return isinstance(v, cst.Integer) and v.value == "0"


def repair_zero_dim_index(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    fr = next((f for f in reversed(site.frames) if f.path in site.files), None)
    if fr is None:
        return
    src = Source(fr.path, site.files[fr.path])
    if not src.ok:
        return
    at = [s for s in src.walk(cst.Subscript) if _zero_index(s) and src.spans(s, fr.line)]
    data = [s for s in at if isinstance(s.value, cst.Attribute) and s.value.attr.value == "data"]
    chosen = data or at
    if len(chosen) != 1 and not data:
        return  # several [0] on the failing line: which one is the 0-dim tensor is not certain
    bases = {src.code(s.value.value if s in data else s.value).strip() for s in chosen}
    n = 0
    for s in src.walk(cst.Subscript):
        if not _zero_index(s):
            continue
        if isinstance(s.value, cst.Attribute) and s.value.attr.value == "data" and \
                src.code(s.value.value).strip() in bases:
            src.replace(s, f"{src.code(s.value.value).strip()}.item()")
            n += 1
        elif s in chosen and s not in data:
            src.replace(s, f"{src.code(s.value).strip()}.item()")
            n += 1
    new = src.render()
    if new is not None:
        shown = ", ".join(sorted(bases))
        yield Fix(title=f"read the scalar {shown} with .item() instead of indexing it",
                  rationale=f"The run failed because {match.diagnosis}. {shown} is a 0-dim tensor; .item() returns "
                            f"its value as a Python number ({n} place(s) in {fr.path}).",
                  texts={fr.path: new})

