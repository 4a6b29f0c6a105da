"""Opt-in static instrumentation: stage markers printed by a copy of the training code, for what the hook cannot see.

The sitecustomize hook (`nightlab.sandbox.instrument`) observes torch from the outside. Code it cannot observe — a
hand-written numpy loop, JAX, a framework that hides its optimiser — can still report its stages if nightlab
inserts markers into a *copy* of the code, placed in the run dir and never committed:

    [nightlab-stage] imports_done     after the module's last top-level import
    [nightlab-stage] data_ready       before the first loop that calls `.backward(` or `.step(`
    [nightlab-stage] first_step       inside that loop, after the statement that steps (printed once)
    [nightlab-stage] training         the same marker's 10th pass (the loop is sustained)
    [nightlab-stage] evaluating       before a call whose name contains eval / test / validat, once a step was done

Markers go through a small helper inserted at the top of each file (after the docstring and `__future__`
imports); it remembers, process-wide, which stages were printed, so each prints once however many files are
instrumented, and `evaluating` before the first step (a teacher model's `.eval()`, a data split) prints nothing.

The insertion is line-based, guided by `ast`: a marker goes only where a statement starts its own line, at that
statement's exact indentation, and the result is parsed again; a file that cannot be instrumented safely is copied
unchanged. The source tree is only read.
"""

from __future__ import annotations

import ast
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from nightlab.sandbox.stages import MARKER_PREFIX, stages_from_markers

__all__ = ["HELPER_NAME", "instrument_copy", "instrument_source", "stages_from_markers"]

HELPER_NAME = "_nightlab_stage"
TRAINING_AFTER = 10  # passes through the step marker that count as sustained training (same as the hook)

_HELPER = f'''def {HELPER_NAME}(stage, after=None):  # inserted by nightlab: prints stage markers, each once
    import sys
    seen = sys.__dict__.setdefault("_nightlab_stages", {{}})
    if stage == "step":
        n = seen["step"] = seen.get("step", 0) + 1
        stage = "first_step" if n == 1 else "training" if n == {TRAINING_AFTER} else ""
    if not stage or stage in seen or (after and after not in seen):
        return
    seen[stage] = True
    print("{MARKER_PREFIX} " + stage, file=sys.__stdout__ or sys.stdout, flush=True)
'''
_EVAL_NAME_RE = re.compile(r"(?i)eval|test|validat")
_NOT_EVAL = {"eval", "exec"}  # the builtins, called by bare name, are no evaluation (`model.eval()` is)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_LINE_RE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


@dataclass(frozen=True)
class _Insert:
    line: int  # 0-based index of the source line the marker goes before
    order: int  # among inserts at the same line: lower first
    text: str  # the statement, without indentation
    indent: str


def instrument_copy(src_root: Path, files: list[str], dest: Path) -> Path:
    """Copy `files` (paths relative to `src_root`) into `dest`, keeping their relative layout, with stage markers
    inserted into the Python ones. Returns `dest`. Never writes under `src_root` unless `dest` is there, and refuses
    any layout where a copy would overwrite its own source."""
    src_root = Path(src_root).resolve()
    dest = Path(dest).resolve()
    for rel in files:
        src = (src_root / rel).resolve()
        if not src.is_relative_to(src_root):
            raise ValueError(f"{rel!r} is outside {src_root}")
        target = dest / src.relative_to(src_root)
        if target.resolve() == src:
            raise ValueError(f"instrumenting {rel!r} into {dest} would overwrite the source")
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix != ".py":
            shutil.copy2(src, target)
            continue
        data = src.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            shutil.copy2(src, target)
            continue
        target.write_bytes(instrument_source(text).encode("utf-8"))
        shutil.copymode(src, target)
    return dest


def instrument_source(source: str) -> str:
    """The source with stage markers inserted, or the source unchanged if it does not parse or cannot be
    instrumented without risk."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return source
    lines = _LINE_RE.findall(source)  # not str.splitlines: it also splits at form feeds, which ast does not
    if not lines:
        return source
    newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
    inserts: list[_Insert] = []

    # 1. the helper, before the first statement that is not the docstring or a __future__ import
    body = tree.body
    first = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        first = 1
    while first < len(body) and _is_future_import(body[first]):
        first += 1
    if first < len(body):
        at = _before(body[first], lines)
        if at is None:
            return source
        helper_line = at[0]
    else:
        helper_line = _after_line(body[-1]) if body else len(lines)
    for i, text in enumerate([*_HELPER.splitlines(), ""]):
        inserts.append(_Insert(helper_line, -100 + i, text, ""))

    # 2. after the last top-level import
    imports = [s for s in body[first:] if isinstance(s, (ast.Import, ast.ImportFrom))]
    if imports:
        inserts.append(_Insert(_after_line(imports[-1]), 0, f'{HELPER_NAME}("imports_done")', ""))
    else:
        inserts.append(_Insert(helper_line, 0, f'{HELPER_NAME}("imports_done")', ""))

    # 3. before the first training loop, and once inside it after the step
    loop = _first_training_loop(body)
    if loop is not None:
        at = _before(loop, lines)
        if at is not None:
            inserts.append(_Insert(at[0], 1, f'{HELPER_NAME}("data_ready")', at[1]))
        step_at = _step_statement(loop, lines)
        if step_at is not None:
            inserts.append(_Insert(_after_line(step_at[0]), 2, f'{HELPER_NAME}("step")', step_at[1]))

    # 4. before calls that look like evaluation
    for stmt in _statements(body):
        if _calls_eval(stmt):
            at = _before(stmt, lines)
            if at is not None:
                inserts.append(_Insert(at[0], 3, f'{HELPER_NAME}("evaluating", after="first_step")', at[1]))

    out = list(lines)
    if not out[-1].endswith(("\n", "\r")):
        out[-1] += newline
    for ins in sorted(inserts, key=lambda i: (i.line, i.order), reverse=True):
        out.insert(ins.line, ins.indent + ins.text + newline)
    result = "".join(out)
    try:
        ast.parse(result)
    except (SyntaxError, ValueError):
        return source
    return result


# ---------------------------------------------------------------------------------------------- helpers
def _is_future_import(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"


def _start_line(stmt: ast.stmt) -> int:
    """1-based first line of a statement, its decorators included."""
    decorators = getattr(stmt, "decorator_list", None) or []
    return min([stmt.lineno, *(d.lineno for d in decorators)])


def _indent_of(stmt: ast.stmt, lines: list[str]) -> str | None:
    """The statement's indentation if it starts its own line (not after `if x:` or `a;` on the same line)."""
    line = lines[_start_line(stmt) - 1]
    if _start_line(stmt) == stmt.lineno:
        prefix = line.encode("utf-8")[: stmt.col_offset].decode("utf-8", "replace")
    else:  # decorated: the decorator line carries the indentation
        prefix = line[: len(line) - len(line.lstrip())]
        if not line.lstrip().startswith("@"):
            return None
    return prefix if prefix.strip() == "" else None


def _before(stmt: ast.stmt, lines: list[str]) -> tuple[int, str] | None:
    """Where a marker goes so that it runs just before `stmt`: (0-based line index, indentation), or None."""
    indent = _indent_of(stmt, lines)
    if indent is None:
        return None
    return _start_line(stmt) - 1, indent


def _after_line(stmt: ast.stmt) -> int:
    """0-based index of the line just after the statement."""
    return stmt.end_lineno if stmt.end_lineno is not None else stmt.lineno


def _children_bodies(stmt: ast.stmt) -> list[list[ast.stmt]]:
    bodies: list[list[ast.stmt]] = []
    for name in ("body", "orelse", "finalbody"):
        value = getattr(stmt, name, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            bodies.append(value)
    for handler in getattr(stmt, "handlers", None) or []:
        bodies.append(handler.body)
    for case in getattr(stmt, "cases", None) or []:
        bodies.append(case.body)
    return bodies


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Every statement, in source order, nested ones included."""
    out: list[ast.stmt] = []
    for stmt in body:
        out.append(stmt)
        for child in _children_bodies(stmt):
            out.extend(_statements(child))
    return out


def _is_step_call(node: ast.AST, names: tuple[str, ...]) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names


def _contains_call(node: ast.AST, names: tuple[str, ...]) -> bool:
    return any(_is_step_call(n, names) for n in ast.walk(node))


def _first_training_loop(body: list[ast.stmt]) -> ast.stmt | None:
    """The outermost, earliest loop whose body calls `.backward(` or `.step(`."""
    for stmt in body:
        if isinstance(stmt, _LOOPS) and _contains_call(stmt, ("backward", "step")):
            return stmt
        for child in _children_bodies(stmt):
            found = _first_training_loop(child)
            if found is not None:
                return found
    return None


def _own_nodes(stmt: ast.stmt) -> list[ast.AST]:
    """The statement's expressions that are not inside its nested statement bodies (a compound header)."""
    nested = {id(s) for b in _children_bodies(stmt) for s in b}
    out: list[ast.AST] = []
    for _name, value in ast.iter_fields(stmt):
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, ast.AST) and id(v) not in nested and not isinstance(v, (ast.stmt, ast.excepthandler)):
                out.append(v)
    return out


def _step_statement(loop: ast.stmt, lines: list[str]) -> tuple[ast.stmt, str] | None:
    """The innermost statement in `loop` that calls `.step(` (else `.backward(`) and starts its own line; the marker
    goes right after it. Walks up to an enclosing statement when the call sits on a compound header's line."""
    for names in (("step",), ("backward",)):
        path = _path_to_call(loop, names)
        if not path:
            continue
        for stmt in reversed(path[1:]):  # innermost first, never the loop itself
            indent = _indent_of(stmt, lines)
            if indent is not None:
                return stmt, indent
    return None


def _path_to_call(stmt: ast.stmt, names: tuple[str, ...]) -> list[ast.stmt]:
    """Statements from `stmt` down to the innermost one whose own expressions make the call (first in source order)."""
    if any(_contains_call(n, names) for n in _own_nodes(stmt)) and not isinstance(stmt, _LOOPS):
        return [stmt]
    for body in _children_bodies(stmt):
        for child in body:
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue  # a definition inside the loop does not run there
            sub = _path_to_call(child, names)
            if sub:
                return [stmt, *sub]
    return []


def _calls_eval(stmt: ast.stmt) -> bool:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return False
    for node in _own_nodes(stmt):
        for n in ast.walk(node):
            if not isinstance(n, ast.Call):
                continue
            if isinstance(n.func, ast.Name):
                name = n.func.id
                if name in _NOT_EVAL:
                    continue
            elif isinstance(n.func, ast.Attribute):
                name = n.func.attr
            else:
                continue
            if _EVAL_NAME_RE.search(name):
                return True
    return False
