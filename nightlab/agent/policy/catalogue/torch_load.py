"""`torch.load` after torch 2.6 changed its `weights_only` default to True.

A file that holds pickled Python objects (numpy arrays, a dataclass, a whole model) no longer loads. Passing
`weights_only=False` restores the old behaviour -- and with it the ability of the file to run arbitrary code -- so the
repair is made only for files whose origin is the repository itself: a file it ships (tracked by git) or one its
own code writes with `torch.save`. Anything else (a download, a path given on the command line) is refused with the
reason, never "fixed" blindly.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import libcst as cst

from nightlab.agent.policy.catalogue.code import Source, call_name, dotted, keyword, string_value, with_keyword
from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms

__all__ = ["recognise_weights_only", "repair_weights_only", "torch_calls"]


def recognise_weights_only(sym: Symptoms) -> Match | None:
    if "Weights only load failed" not in sym.message and "Weights only load failed" not in sym.log:
        return None
    g = sym.says(r"Unsupported global: GLOBAL ([\w.]+)")
    what = f" ({g.group(1)})" if g else ""
    return Match(f"torch >= 2.6 loads with weights_only=True by default, and the file holds pickled Python "
                 f"objects{what} that only a full unpickle restores", {"global": g.group(1) if g else ""})


def torch_calls(src: Source, fn: str) -> list[cst.Call]:
    """Calls of `torch.<fn>` in a file, under any import style (`torch.load`, `th.load`, `from torch import load`)."""
    torch_names = src.aliases("torch")
    bare = {n for n, a in src.imported_from("torch").items() if (dotted(a.name) or "") == fn}
    out = []
    for c in src.calls():
        name = call_name(c)
        head, _, last = name.rpartition(".")
        if (last == fn and head in torch_names) or (not head and name in bare):
            out.append(c)
    return out


def _path_arg(call: cst.Call, pos: int, kw: str) -> cst.BaseExpression | None:
    a = keyword(call, kw)
    if a is not None:
        return a.value
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return positional[pos].value if len(positional) > pos else None


@dataclass
class _Resolver:
    """Static value of a path expression in one file, where it is certain: literals, module constants (also
    imported from another module of the repository), argparse defaults, os.path.join / pathlib joins,
    `Path(__file__).parent`, `open(path, 'rb')`."""

    src: Source
    others: Mapping[str, Source] | None = None  # the repository's other Python files, by path

    def path(self, node: cst.BaseExpression | None, depth: int = 0) -> str | None:
        if node is None or depth > 6:
            return None
        s = string_value(node)
        if s is not None:
            return s
        if isinstance(node, cst.FormattedString):
            if all(isinstance(p, cst.FormattedStringText) for p in node.parts):
                return "".join(p.value for p in node.parts if isinstance(p, cst.FormattedStringText))
            return None
        if isinstance(node, cst.Name):
            if node.value == "__file__":
                return self.src.path
            home = _imported_from(self.src, node.value, self.others or {})
            if home is not None:
                return _Resolver(home, self.others).path(cst.Name(node.value), depth + 1)
            return self._assigned(node.value, depth)
        if isinstance(node, cst.Attribute):
            if node.attr.value == "parent":
                base = self.path(node.value, depth + 1)
                return posixpath.dirname(base) if base is not None else None
            return self._argparse_default(node.attr.value)
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide):
            a, b = self.path(node.left, depth + 1), self.path(node.right, depth + 1)
            return posixpath.join(a, b) if a is not None and b is not None else None
        if isinstance(node, cst.Call):
            name = call_name(node)
            args = [a.value for a in node.args if a.keyword is None and not a.star]
            if name.endswith("path.join") and args:
                parts = [self.path(a, depth + 1) for a in args]
                return posixpath.join(*parts) if all(p is not None for p in parts) else None  # type: ignore[arg-type]
            if name.split(".")[-1] in ("Path", "PurePath", "open", "fspath", "abspath", "realpath",
                                        "expanduser", "str") and args:
                return self.path(args[0], depth + 1)
            if name.endswith("path.dirname") and args:
                base = self.path(args[0], depth + 1)
                return posixpath.dirname(base) if base is not None else None
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in ("resolve", "absolute") \
                    and not node.args:
                return self.path(node.func.value, depth + 1)
        return None

    def _assigned(self, name: str, depth: int) -> str | None:
        values = []
        for asg in self.src.walk(cst.Assign):
            for t in asg.targets:
                if isinstance(t.target, cst.Name) and t.target.value == name:
                    values.append(asg.value)
        for asg in self.src.walk(cst.AnnAssign):
            if isinstance(asg.target, cst.Name) and asg.target.value == name and asg.value is not None:
                values.append(asg.value)
        for p in self.src.walk(cst.Param):
            if p.name.value == name and p.default is not None:
                values.append(p.default)
        found = {self.path(v, depth + 1) for v in values}
        return found.pop() if len(found) == 1 else None

    def _argparse_default(self, dest: str) -> str | None:
        for c in self.src.calls():
            if call_name(c).split(".")[-1] != "add_argument":
                continue
            opts = [string_value(a.value) for a in c.args if a.keyword is None]
            dests = {o.lstrip("-").replace("-", "_") for o in opts if o}
            d = keyword(c, "dest")
            if d is not None and string_value(d.value):
                dests = {string_value(d.value) or ""}
            if dest in dests:
                default = keyword(c, "default")
                return self.path(default.value) if default is not None else None
        return None


def _imported_from(src: Source, name: str, others: Mapping[str, Source]) -> Source | None:
    """The repository file a name is imported from (`from prepare import CACHE` -> prepare.py)."""
    for mod in src.walk(cst.ImportFrom):
        if mod.module is None or isinstance(mod.names, cst.ImportStar):
            continue
        bound = [a.asname.name if a.asname else a.name for a in mod.names]
        if any(isinstance(b, cst.Name) and b.value == name for b in bound):
            path = (dotted(mod.module) or "").replace(".", "/") + ".py"
            for p, other in others.items():
                if p == path or p.endswith("/" + path):
                    return other
    return None


def _symbol(src: Source, expr: cst.BaseExpression, others: Mapping[str, Source]) -> str:
    """Where a path expression's value comes from: `prepare.py:CACHE` for a name imported from prepare.py, else
    this file and the expression's text (a variable, an attribute, a config lookup)."""
    if isinstance(expr, cst.Name):
        home = _imported_from(src, expr.value, others)
        if home is not None:
            return f"{home.path}:{expr.value}"
    return f"{src.path}:{src.code(expr).strip()}"


def _norm(path: str, src_path: str) -> str:
    """A repo-relative form of a resolved path: paths built from `__file__` are relative to the script's folder
    already; others are relative to the working directory, which is the repository root when nightlab runs it."""
    p = posixpath.normpath(path.replace(os.sep, "/"))
    return p[2:] if p.startswith("./") else p


@dataclass
class _Origin:
    """Why nightlab trusts a loaded file: it is shipped, or written by the repository's own code."""

    how: str  # "shipped" | "written"
    words: str


def _origin(site: Site, load_src: Source, expr: cst.BaseExpression, saves: list[tuple[Source, cst.Call]],
            sources: Mapping[str, Source], depth: int = 0) -> _Origin | None:
    """Why the file `expr` names is trusted, or None. A path that is a parameter of the enclosing function is
    followed to the function's callers: every one of them must pass a trusted path."""
    resolved = _Resolver(load_src, sources).path(expr)
    if resolved is not None:
        rel = _norm(resolved, load_src.path)
        if rel in site.tracked:
            return _Origin("shipped", f"{rel} is shipped in the repository (tracked by git)")
    symbol = _symbol(load_src, expr, sources)
    for src, call in saves:
        target = _path_arg(call, 1, "f")
        if target is None:
            continue
        where = f"{src.path}:{src.line(call)}"
        same_text = _symbol(src, target, sources) == symbol
        got = _Resolver(src, sources).path(target)
        same_path = resolved is not None and got is not None and _norm(got, src.path) == _norm(resolved, load_src.path)
        if same_text or same_path:
            shown = _norm(got, src.path) if got is not None else load_src.code(expr).strip()
            return _Origin("written", f"{shown} is written by the repository's own code (torch.save at {where})")
    if depth < 3:
        args = _callers(load_src, expr, sources)
        found = [_origin(site, src, arg, saves, sources, depth + 1) for src, arg in args]
        if found and all(found):
            return found[0]
    return None


def _callers(src: Source, expr: cst.BaseExpression, sources: Mapping[str, Source]
             ) -> list[tuple[Source, cst.BaseExpression]]:
    """When `expr` is a parameter of its function: what each call of that function in the repository passes for it
    ([] otherwise, and for a call that passes nothing)."""
    assert src.script is not None
    fn = src.script.function_of(expr)
    if not isinstance(expr, cst.Name) or fn is None:
        return []
    params = [p.name.value for p in fn.params.params]
    if expr.value not in params or expr.value in src.script.assigned_in(fn):
        return []
    pos = params.index(expr.value) - (1 if params[0] in ("self", "cls") else 0)
    method = src.script.class_of(fn) is not None
    out = []
    for other in sources.values():
        for c in other.calls():
            name = call_name(c)
            if name != fn.name.value and not (method and name.endswith("." + fn.name.value)):
                continue
            arg = _path_arg(c, pos, expr.value)
            if arg is not None:
                out.append((other, arg))
    return out


def _describe(src: Source, expr: cst.BaseExpression, sources: Mapping[str, Source], depth: int = 0) -> str:
    """The path a load reads, as far as it can be told: resolved here or at a caller, else the expression."""
    resolved = _Resolver(src, sources).path(expr)
    if resolved is not None:
        return _norm(resolved, src.path)
    if depth < 3:
        for other, arg in _callers(src, expr, sources):
            shown = _describe(other, arg, sources, depth + 1)
            if shown:
                return shown
    return src.code(expr).strip()


def repair_weights_only(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    sources = {p: Source(p, t) for p, t in site.python().items()}
    sources = {p: s for p, s in sources.items() if s.ok}
    saves = [(s, c) for s in sources.values() for c in torch_calls(s, "save")]
    frames = [f for f in reversed(site.frames) if f.path in sources]
    failing: tuple[Source, cst.Call] | None = None
    for fr in frames:
        src = sources[fr.path]
        calls = [c for c in torch_calls(src, "load") if src.spans(c, fr.line)]
        if len(calls) == 1:
            failing = (src, calls[0])
            break
    if failing is None:
        return  # the failing torch.load is not in the repository's code (a library loads it): nothing certain
    src, call = failing
    expr = _path_arg(call, 0, "f")
    if expr is None:
        return
    resolved = _Resolver(src, sources).path(expr)
    origin = _origin(site, src, expr, saves, sources)
    shown = _describe(src, expr, sources)
    where = f"{src.path}:{src.line(call)}"
    if origin is None:
        g = match.facts.get("global") or "the classes it names"
        yield NoFix(f"torch.load({src.code(expr)}) at {where} refuses pickled objects since torch 2.6, and nightlab "
                    f"cannot tell that the repository ships or writes {shown}: it does not turn weights_only off for "
                    "a file of unknown origin (that would let the file run code). If you trust it, pass "
                    f"weights_only=False there, or allow {g} with torch.serialization.add_safe_globals")
        return
    wo = keyword(call, "weights_only")
    if wo is not None and (dotted(wo.value) or "") == "False":
        return  # already off: this failure has another cause
    # the same trusted file may be loaded elsewhere too; each such call would fail next
    edited: dict[str, Source] = {}
    for s in sources.values():
        for c in torch_calls(s, "load"):
            if keyword(c, "weights_only") is not None and c is not call:
                continue
            e = _path_arg(c, 0, "f")
            if e is None:
                continue
            same = c is call or (s.code(e).strip() == src.code(expr).strip() and s.path == src.path)
            if not same and resolved is not None:
                r = _Resolver(s, sources).path(e)
                same = r is not None and _norm(r, s.path) == _norm(resolved, src.path)
            if same:
                s.replace(c, with_keyword(c, "weights_only", "False"))
                edited[s.path] = s
    texts = {p: t for p, s in edited.items() if (t := s.render()) is not None}
    if src.path not in texts:
        return
    yield Fix(
        title=f"load {shown} with weights_only=False: torch 2.6+ refuses the pickled objects in it",
        rationale=f"torch.load at {where} failed because torch 2.6 changed weights_only to True by default and the "
                  f"file holds pickled Python objects; {origin.words}, so it is trusted: loading it with "
                  "weights_only=False restores the behaviour the code was written for. "
                  "Files of other origins are left alone.",
        texts=texts)

