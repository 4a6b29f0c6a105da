"""Runs that fail on a resource or a numeric limit: out of memory, out of time, NaN -- and the classic shape slip.

Out of memory halves the batch and, where the training loop is recognised with certainty, accumulates the gradients
of two half batches before each optimizer step, so the effective batch (and with it the learning dynamics) stays the
same in half the activation memory. Where the loop is not recognised the batch is only halved, and the rationale says
the effective batch changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import libcst as cst

from nightlab.agent.policy import transforms as tf
from nightlab.agent.policy.catalogue.code import Source, call_name, dotted
from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms
from nightlab.agent.states import FailureClass, RunResult

__all__ = ["grad_accumulation", "recognise_linear_in", "recognise_nan", "recognise_oom", "recognise_timeout",
           "repair_linear_in", "repair_nan", "repair_oom", "repair_timeout"]

ACCUM_NAME = "GRAD_ACCUM_STEPS"
COUNTER = "_micro_step"
_GUARDED_CALLS = ("clip_grad_norm_", "clip_grad_value_", "unscale_", "update")


# ----------------------------------------------------------------------------------------------------- OOM


def recognise_oom(sym: Symptoms) -> Match | None:
    if sym.cls != FailureClass.OOM:
        return None
    m = sym.says(r"Tried to allocate [\d.]+ ?[KMGT]i?B", r"can't allocate memory[^\n]*", r"out of memory[^\n]*")
    return Match(f"the run ran out of memory ({m.group(0).strip() if m else sym.exception or 'killed'}): the "
                 "activations of one batch do not fit")


def _stmt_call(stmt: cst.CSTNode) -> cst.Call | None:
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr) \
            and isinstance(stmt.body[0].value, cst.Call):
        return stmt.body[0].value
    return None


def _method(call: cst.Call | None) -> tuple[str, str]:
    """(receiver, method) of `receiver.method(...)`; ('', '') otherwise."""
    if call is None or not isinstance(call.func, cst.Attribute):
        return "", ""
    return dotted(call.func.value) or "", call.func.attr.value


def grad_accumulation(text: str, path: str, steps: int) -> str | None:
    """Accumulate gradients over `steps` micro-batches in the script's one training loop, or None when the loop is
    not recognised with certainty: one `.backward()` statement, its optimizer's `step()` after it in the same loop
    body, `zero_grad()` in that body too."""
    src = Source(path, text)
    if not src.ok or src.binds(COUNTER) or src.binds(ACCUM_NAME):
        return None
    backs = [c for c in src.calls() if isinstance(c.func, cst.Attribute) and c.func.attr.value == "backward"]
    if len(backs) != 1:
        return None
    back_stmt = src.statement_of(backs[0])
    if back_stmt is None or _stmt_call(back_stmt) is not backs[0] or backs[0].args:
        return None
    block = src.parent(back_stmt)
    if not isinstance(block, cst.IndentedBlock):
        return None
    loop = src.parent(block)
    if not isinstance(loop, cst.For):
        return None
    body = list(block.body)
    i_back = body.index(back_stmt)
    steps_at = [i for i, s in enumerate(body) if _method(_stmt_call(s))[1] == "step"
                and "sched" not in _method(_stmt_call(s))[0].lower()]
    zero_at = [i for i, s in enumerate(body) if _method(_stmt_call(s))[1] == "zero_grad"]
    if len(steps_at) != 1 or steps_at[0] < i_back or len(zero_at) != 1:
        return None
    guard = f"{COUNTER} % {ACCUM_NAME} == 0"
    # after the backward pass: what acts on the accumulated gradient runs once per effective batch
    grouped: list[list[cst.SimpleStatementLine]] = []
    run: list[cst.SimpleStatementLine] = []
    for s in body[i_back + 1:]:
        meth = _method(_stmt_call(s))[1]
        fn = call_name(_stmt_call(s)) if _stmt_call(s) is not None else ""  # type: ignore[arg-type]
        acts = meth in ("step", "zero_grad") or meth in _GUARDED_CALLS or fn.split(".")[-1] in _GUARDED_CALLS
        if acts and isinstance(s, cst.SimpleStatementLine):
            run.append(s)
            continue
        if run:
            grouped.append(run)
            run = []
    if run:
        grouped.append(run)
    if not any(body.index(g[0]) <= steps_at[0] <= body.index(g[-1]) for g in grouped):
        return None

    def guarded(stmts: list[cst.SimpleStatementLine]) -> cst.If:
        inner = [s.with_changes(leading_lines=[]) if k == 0 else s for k, s in enumerate(stmts)]
        return cst.If(test=cst.parse_expression(guard), body=cst.IndentedBlock(body=inner),
                      leading_lines=stmts[0].leading_lines)

    for g in grouped:
        src.replace_statement(g[0], guarded(g))
        for s in g[1:]:
            src.remove_statement(s)
    if zero_at[0] < i_back:
        src.replace_statement(body[zero_at[0]], guarded([body[zero_at[0]]]))  # type: ignore[list-item]
    # scale the loss so the accumulated gradient is the mean over the effective batch
    back = backs[0]
    target = back.func.value  # type: ignore[attr-defined]
    if isinstance(target, cst.Call) and _method(target)[1] == "scale" and len(target.args) == 1:
        inner = src.code(target.args[0].value).strip()
        src.replace(target.args[0].value, f"{inner} / {ACCUM_NAME}")
    else:
        src.replace(target, f"({src.code(target).strip()} / {ACCUM_NAME})")
    src.patch.after.setdefault(id(back_stmt), []).append(cst.parse_statement(f"{COUNTER} += 1\n"))
    # the counter starts before the outermost loop around the training step (in the same function)
    outer: cst.CSTNode = loop
    assert src.script is not None
    for a in src.script.ancestors(loop):
        if isinstance(a, (cst.FunctionDef, cst.ClassDef, cst.Module)):
            break
        if isinstance(a, (cst.For, cst.While)):
            outer = a
    host = src.parent(outer)
    if not isinstance(host, (cst.IndentedBlock, cst.Module)):
        return None
    src.patch.before.setdefault(id(outer), []).append(cst.parse_statement(f"{COUNTER} = 0\n"))
    src.insert_after_imports(f"{ACCUM_NAME} = {steps}  # micro-batches per optimizer step (out-of-memory fix)\n")
    return src.render()


def _double_accumulation(text: str, path: str) -> tuple[str, int] | None:
    """A script that already accumulates (an earlier fix): its step count doubled."""
    m = re.search(rf"^{ACCUM_NAME} = (\d+)\b", text, re.M)
    if m is None or f"{COUNTER} % {ACCUM_NAME}" not in text:
        return None
    n = int(m.group(1)) * 2
    return text[:m.start(1)] + str(n) + text[m.end(1):], n


def repair_oom(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    change = site.scale("batch_size", 0.5)
    if change is None:
        return
    exact = isinstance(change.old, int) and isinstance(change.new, int) and change.new * 2 == change.old
    if exact:
        training = [p for p, t in site.python().items() if ".backward(" in t]
        if len(training) == 1:
            path = training[0]
            doubled = _double_accumulation(site.files[path], path)
            if doubled is not None:
                new, steps = doubled
            else:
                steps = 2
                new = grad_accumulation(site.files[path], path, steps)  # type: ignore[assignment]
            if new is not None:
                yield Fix(title=f"halve {change.key} ({change.old} -> {change.new}) and accumulate gradients over "
                                f"{steps} steps: the same effective batch in less memory",
                          rationale=f"The run failed because {match.diagnosis}. Half the batch needs about half the "
                                    f"activation memory; the gradients of {steps} micro-batches are summed (each loss "
                                    f"divided by {steps}) before every optimizer step, so each step still sees "
                                    f"{change.new * steps} examples and the learning rate stays right.",
                          changes={change.key: change.new}, texts={path: new})
    yield Fix(title=f"lower {change.key} from {change.old} to {change.new}",
              rationale=f"The run failed because {match.diagnosis}. Half the batch needs about half the activation "
                        "memory. The training loop was not recognised with certainty, so gradients are not "
                        "accumulated: the effective batch is halved too.",
              changes={change.key: change.new})


# ----------------------------------------------------------------------------------------------------- time, NaN


def recognise_timeout(sym: Symptoms) -> Match | None:
    if sym.cls != FailureClass.TIMEOUT and sym.result != RunResult.TIMED_OUT:
        return None
    return Match("the run hit the time limit before it finished")


def repair_timeout(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    for kind in ("epochs", "steps"):
        for factor in (0.5, 0.7):  # 0.5 may just undo the change that made it slow: then a milder cut
            change = site.scale(kind, factor)
            if change is not None:
                yield Fix(title=f"lower {change.key} from {change.old} to {change.new}",
                          rationale="The run hit the time limit; a shorter training fits the budget and still "
                                    "shows whether the change helps.", changes={change.key: change.new})


def recognise_nan(sym: Symptoms) -> Match | None:
    if sym.cls not in (FailureClass.NAN_LOSS, FailureClass.NAN_METRIC):
        return None
    m = sym.says(r"loss[^\n]{0,40}?\b(nan|inf)\b")
    return Match(f"the loss became non-finite{' (' + m.group(0).strip() + ')' if m else ''}: the updates are "
                 "too large for this model")


def repair_nan(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    change = site.scale("lr", 0.1)
    if change is not None:
        yield Fix(title=f"lower {change.key} from {change.old} to {change.new}",
                  rationale="The loss became NaN/inf: the learning rate is too high for this model; a tenfold "
                            "smaller step keeps training finite.", changes={change.key: change.new})
    yield Fix(title="", rationale="The loss blew up; clipping the gradient norm bounds every update.",
              transform="grad_clip")


# ----------------------------------------------------------------------------------------------------- shapes


def recognise_linear_in(sym: Symptoms) -> Match | None:
    mm = tf.parse_matmul_mismatch(sym.message) or tf.parse_matmul_mismatch(sym.log)
    if mm is None:
        return None
    got, expected = mm
    return Match(f"a Linear layer expects {expected} input features but receives {got}: it was sized for other "
                 "inputs", {"got": got, "expected": expected})


def repair_linear_in(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    got, expected = int(match.facts["got"]), int(match.facts["expected"])
    frame = next((f for f in reversed(site.frames) if f.path in site.files), None)
    order = sorted(site.files, key=lambda p: (frame is None or p != frame.path, p))
    for path in order:
        if not path.endswith(".py"):
            continue
        hint = None
        if frame is not None and frame.path == path:
            lines = site.files[path].splitlines()
            hint = lines[frame.line - 1] if 0 < frame.line <= len(lines) else None
        r = tf.fix_linear_in_features(site.files[path], path, got, expected, hint)
        if r is not None:
            yield Fix(title=r.title, rationale=r.rationale, texts={path: r.new_text}, expected=r.expected_effect)
            return
