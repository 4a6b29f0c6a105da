"""Small, format-preserving libcst edits the catalogue's repairs are written with.

A `Source` is one parsed file plus the edits planned on it; `render()` returns the new text only when every planned
edit landed and the result compiles (never a half-applied fix). Everything not edited keeps its exact formatting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import libcst as cst

from nightlab.agent.policy import transforms as tf

__all__ = ["Source", "call_name", "dotted", "keyword", "rewrite_files", "string_value", "with_keyword",
           "without_keyword"]

dotted = tf.dotted


class _Edits(tf.Patch):
    """transforms.Patch (replace, insert before / after statements) plus removal of whole statements."""

    def __init__(self) -> None:
        super().__init__()
        self.remove: set[int] = set()

    def expected(self) -> int:
        return super().expected() + len(self.remove)

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> Any:
        if id(original_node) in self.remove:
            self.applied += 1
            return cst.RemovalSentinel.REMOVE
        if id(original_node) in self.replace:
            self.applied += 1
            updated_node = self.replace[id(original_node)]
        if isinstance(updated_node, (cst.IndentedBlock, cst.Module)):
            assert isinstance(original_node, (cst.IndentedBlock, cst.Module))
            kept = iter(updated_node.body)
            body: list[Any] = []
            for orig in original_node.body:
                for s in self.before.get(id(orig), []):
                    body.append(s)
                    self.applied += 1
                if id(orig) not in self.remove:
                    body.append(next(kept))
                for s in self.after.get(id(orig), []):
                    body.append(s)
                    self.applied += 1
            if not body and isinstance(updated_node, cst.IndentedBlock):
                body = [cst.SimpleStatementLine(body=[cst.Pass()])]
            return updated_node.with_changes(body=body)
        return updated_node


def call_name(call: cst.Call) -> str:
    """`torch.load`, `model.load_state_dict`, `DataLoader`; '' for calls of anything else (a subscript, a call)."""
    return dotted(call.func) or ""


def keyword(call: cst.Call, name: str) -> cst.Arg | None:
    for a in call.args:
        if a.keyword is not None and a.keyword.value == name:
            return a
    return None


def string_value(node: cst.BaseExpression | None) -> str | None:
    """The value of a plain string literal (no f-string, no concatenation), else None."""
    if isinstance(node, cst.SimpleString):
        v = node.evaluated_value
        return v if isinstance(v, str) else None
    return None


class Source:
    """One file, parsed, with the edits planned on it."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.script = tf.parse(text)
        self.patch = _Edits()
        self._inserted: set[str] = set()

    @property
    def ok(self) -> bool:
        return self.script is not None

    @property
    def module(self) -> cst.Module:
        assert self.script is not None
        return self.script.module

    # ---- finding
    def walk(self, cls: type[cst.CSTNode] | tuple[type[cst.CSTNode], ...]) -> list[Any]:
        return self.script.walk(cls) if self.script is not None else []

    def calls(self) -> list[cst.Call]:
        return self.walk(cst.Call)

    def line(self, node: cst.CSTNode) -> int:
        assert self.script is not None
        return self.script.line(node)

    def spans(self, node: cst.CSTNode, line: int) -> bool:
        assert self.script is not None
        return self.script.line(node) <= line <= self.script.end_line(node)

    def calls_at(self, line: int) -> list[cst.Call]:
        """Calls whose source spans `line` (a traceback's line is where the call starts, or inside it)."""
        return [c for c in self.calls() if self.spans(c, line)]

    def code(self, node: cst.CSTNode) -> str:
        assert self.script is not None
        return self.script.code(node)

    def is_fixed(self, node: cst.CSTNode) -> bool:
        """In the script's fixed parts (evaluation, data loading, regions marked do-not-edit)."""
        return self.script is not None and self.script.is_fixed(node)

    def aliases(self, module: str) -> set[str]:
        """Names bound to `module` at module level: `import numpy as np` -> {'np'}, `import numpy` -> {'numpy'}."""
        out: set[str] = set()
        for imp in self.walk(cst.Import):
            for a in imp.names:
                name = dotted(a.name) or ""
                if a.asname is not None and name == module and isinstance(a.asname.name, cst.Name):
                    out.add(a.asname.name.value)
                elif a.asname is None and (name == module or name.startswith(module + ".")):
                    out.add(module.split(".")[0] if name != module else module)
        return out

    def imported_from(self, module: str) -> dict[str, cst.ImportAlias]:
        """`from module import a, b as c` -> {'a': alias, 'c': alias} (the names they bind)."""
        out: dict[str, cst.ImportAlias] = {}
        for imp in self.walk(cst.ImportFrom):
            if imp.module is None or dotted(imp.module) != module or isinstance(imp.names, cst.ImportStar):
                continue
            for a in imp.names:
                bound = a.asname.name if a.asname is not None else a.name
                if isinstance(bound, cst.Name):
                    out[bound.value] = a
        return out

    def attribute_refs(self, bases: set[str], attr: str) -> Iterator[cst.Attribute]:
        """Every `<base>.<attr>` where base is one of `bases` (a dotted prefix such as 'torch.cuda' counts)."""
        for node in self.walk(cst.Attribute):
            if node.attr.value == attr and (dotted(node.value) or "") in bases:
                yield node

    def binds(self, name: str) -> bool:
        """The name is assigned, imported or defined anywhere in the file."""
        assert self.script is not None
        return name in self.script.assigned_in(self.module) or name in self.imported_names() or any(
            isinstance(d, (cst.FunctionDef, cst.ClassDef)) and d.name.value == name
            for d in self.walk((cst.FunctionDef, cst.ClassDef)))

    def imported_names(self) -> set[str]:
        out: set[str] = set()
        for imp in self.walk((cst.Import, cst.ImportFrom)):
            if isinstance(imp.names, cst.ImportStar):
                continue
            for a in imp.names:
                bound = a.asname.name if a.asname is not None else a.name
                name = dotted(bound) or ""
                out.add(name.split(".")[0])
        return out

    # ---- editing
    def replace(self, node: cst.CSTNode, new: cst.CSTNode | str) -> None:
        if isinstance(new, str):
            new = cst.parse_expression(new)
        self.patch.replace[id(node)] = new

    def replace_statement(self, stmt: cst.CSTNode, new: cst.BaseStatement) -> None:
        self.patch.replace[id(stmt)] = new

    def remove_statement(self, stmt: cst.CSTNode) -> None:
        self.patch.remove.add(id(stmt))

    def statement_of(self, node: cst.CSTNode) -> cst.SimpleStatementLine | None:
        assert self.script is not None
        return self.script.statement_of(node)

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        assert self.script is not None
        return self.script.parent(node)

    def insert_after_imports(self, code: str) -> bool:
        """Plan a module-level statement (or def) after the last top-level import; once per text."""
        if code in self._inserted:
            return True
        body = self.module.body
        anchor = None
        for s in body:
            if isinstance(s, cst.SimpleStatementLine) and all(isinstance(x, (cst.Import, cst.ImportFrom))
                                                              for x in s.body):
                anchor = s
        stmt = cst.parse_statement(code)
        if anchor is None:
            if not body:
                return False
            self.patch.before.setdefault(id(body[0]), []).append(stmt)
        else:
            blank = 2 if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) else 1
            stmt = stmt.with_changes(leading_lines=[cst.EmptyLine()] * blank)
            self.patch.after.setdefault(id(anchor), []).append(stmt)
        self._inserted.add(code)
        return True

    def ensure_import(self, module: str, alias: str | None = None) -> str | None:
        """The name `module` is reachable by in this file, planning `import module [as alias]` when it is not;
        None when the wanted name is already bound to something else."""
        have = self.aliases(module)
        if have:
            return (alias if alias in have else sorted(have)[0])
        name = alias or module
        if self.binds(name.split(".")[0]):
            return None
        self.insert_after_imports(f"import {module} as {alias}\n" if alias else f"import {module}\n")
        return name

    def ensure_from_import(self, module: str, name: str) -> bool:
        """`name` is bound by `from module import name`, planning that import when it is not; False when the name
        is already bound to something else."""
        if name in self.imported_from(module):
            return True
        if self.binds(name):
            return False
        return self.insert_after_imports(f"from {module} import {name}\n")

    def render(self) -> str | None:
        """The edited text; None when nothing is planned, an edit did not land, or the result does not compile."""
        if self.script is None or not self.patch.expected():
            return None
        new = tf.render(self.script, self.patch)
        self.patch = _Edits()  # a Source renders once: planning again starts from the original text
        self._inserted = set()
        return new if new != self.text else None


def with_keyword(call: cst.Call, name: str, value: str) -> cst.Call:
    """`call` with keyword `name=value` set: the existing argument's value replaced, or one appended after the
    last argument in the call's own style (a trailing comma stays trailing)."""
    expr = cst.parse_expression(value)
    args = list(call.args)
    for i, a in enumerate(args):
        if a.keyword is not None and a.keyword.value == name:
            args[i] = a.with_changes(value=expr)
            return call.with_changes(args=args)
    new = cst.Arg(value=expr, keyword=cst.Name(name), equal=cst.AssignEqual(
        whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    if isinstance(last.comma, cst.Comma):  # a trailing comma: the new argument goes after it, in the same layout
        closing = last.comma.whitespace_after
        prev = args[-2].comma if len(args) >= 2 else None
        between = prev.whitespace_after if isinstance(prev, cst.Comma) else call.whitespace_before_args
        if isinstance(between, cst.SimpleWhitespace) and not between.value:
            between = cst.SimpleWhitespace(" ")
        args[-1] = last.with_changes(comma=last.comma.with_changes(whitespace_after=between))
        args.append(new.with_changes(comma=cst.Comma(whitespace_after=closing)))
        return call.with_changes(args=args)
    args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
                                 whitespace_after_arg=cst.SimpleWhitespace(""))
    args.append(new.with_changes(whitespace_after_arg=last.whitespace_after_arg))
    return call.with_changes(args=args)


def without_keyword(call: cst.Call, name: str) -> cst.Call:
    """`call` without its keyword argument `name` (the comma layout of the remaining ones kept)."""
    args = list(call.args)
    idx = next((i for i, a in enumerate(args) if a.keyword is not None and a.keyword.value == name), None)
    if idx is None:
        return call
    removed = args.pop(idx)
    if args and idx == len(args):  # it was the last: the new last takes its comma (or none)
        args[-1] = args[-1].with_changes(comma=removed.comma)
    return call.with_changes(args=args)


def rewrite_files(files: Mapping[str, str], plan: Callable[[Source], str]) -> tuple[dict[str, str], list[str]]:
    """Run `plan` (edits planned on one file; what changed in words, '' for nothing) on every file: the new texts
    and, per changed file, `path: what`."""
    texts: dict[str, str] = {}
    words: list[str] = []
    for path, text in files.items():
        src = Source(path, text)
        if not src.ok:
            continue
        what = plan(src)
        new = src.render() if what else None
        if new is not None:
            texts[path] = new
            words.append(f"{path}: {what}")
    return texts, words
