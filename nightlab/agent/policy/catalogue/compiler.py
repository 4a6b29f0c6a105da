"""`torch.compile` that cannot build here: no C++ compiler, no triton, or a graph dynamo refuses.

`torch.compile` is an optimisation: the model computes the same thing without it, only slower per step. When the
machine cannot build the compiled kernels (a slim container without g++, a CPU box without triton, a Python newer
than the installed torch's dynamo) or `fullgraph=True` meets a graph break, the run dies at its first forward pass.
The repair runs the model as it is: the `torch.compile(...)` call is dropped (the statement `model =
torch.compile(model)` goes, and an `if compile:` left with nothing to do goes with it; elsewhere the call becomes its
argument), `@torch.compile` decorators go, and Hugging Face's `torch_compile=True` becomes False. The edit is made
in the code rather than through the repository's compile flag (nanoGPT's `compile`): where that flag's effective value
comes from (a default, a config file, the command line) does not matter then.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from nightlab.agent.policy.catalogue.code import Source, dotted, keyword, rewrite_files, with_keyword
from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms
from nightlab.agent.policy.catalogue.torch_load import torch_calls
from nightlab.agent.states import FailureClass

__all__ = ["recognise_compile", "repair_compile"]

_WHY = (
    (r"No working C\+\+ compiler found[^\n]*", "there is no working C++ compiler"),
    (r"Cannot find a working triton installation[^\n]*", "triton is not installed"),
    (r"Dynamo is not supported on Python [\d.+]+", "this torch's dynamo does not support this Python"),
    (r"torch\._dynamo\.exc\.Unsupported[^\n]*", "dynamo cannot trace the model as one graph"),
)


def recognise_compile(sym: Symptoms) -> Match | None:
    if sym.cls != FailureClass.COMPILE_ERROR and sym.says(r"Dynamo is not supported on Python") is None:
        return None
    why = next(((m.group(0).strip(), words) for pat, words in _WHY if (m := sym.says(pat))), None)
    if why is None:
        return Match("torch.compile could not build the model on this machine", {})
    return Match(f"torch.compile could not build the model on this machine: {why[1]} ({why[0]})",
                 {"evidence": why[0]})


def _decorator_is_compile(src: Source, dec: cst.Decorator) -> bool:
    node = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
    name = dotted(node) or ""
    head, _, last = name.rpartition(".")
    bare = {n for n, a in src.imported_from("torch").items() if (dotted(a.name) or "") == "compile"}
    return (last == "compile" and head in src.aliases("torch")) or (not head and name in bare)


def _flag_of(src: Source, stmt: cst.CSTNode) -> str | None:
    """The condition's code when `stmt` sits directly in an `if <flag>:` (nanoGPT's `if compile:`)."""
    block = src.parent(stmt)
    owner = src.parent(block) if block is not None else None
    if isinstance(owner, cst.If) and isinstance(owner.test, (cst.Name, cst.Attribute, cst.Subscript)):
        return src.code(owner.test).strip()
    return None


def _plan(src: Source) -> str:
    done: list[str] = []
    for call in torch_calls(src, "compile"):
        if src.is_fixed(call):
            continue
        args = [a for a in call.args if a.keyword is None and not a.star]
        target = args[0].value if args else (keyword(call, "model") or keyword(call, "fn") or None)
        target = target.value if isinstance(target, cst.Arg) else target
        if target is None:
            continue
        what = src.code(target).strip()
        stmt = src.statement_of(call)
        assign = stmt.body[0] if stmt is not None and len(stmt.body) == 1 else None
        if isinstance(assign, cst.Assign) and assign.value is call and len(assign.targets) == 1 and \
                src.code(assign.targets[0].target).strip() == what:
            assert stmt is not None
            flag = _flag_of(src, stmt)
            block = src.parent(stmt)
            owner = src.parent(block) if block is not None else None
            if flag is not None and isinstance(block, cst.IndentedBlock) and len(block.body) == 1 and \
                    isinstance(owner, cst.If) and owner.orelse is None:
                src.remove_statement(owner)  # `if compile: model = torch.compile(model)`: nothing left to do
                done.append(f"line {src.line(owner)} `if {flag}: {what} = torch.compile({what})` removed")
            else:
                src.remove_statement(stmt)
                under = f" (under `if {flag}:`)" if flag is not None else ""
                done.append(f"line {src.line(call)} {what} = torch.compile({what}) removed{under}")
        else:
            src.replace(call, target)
            done.append(f"line {src.line(call)} torch.compile({what}) -> {what}")
    for fn in src.walk(cst.FunctionDef):
        kept = [d for d in fn.decorators if not _decorator_is_compile(src, d)]
        if len(kept) != len(fn.decorators) and not src.is_fixed(fn):
            src.replace_statement(fn, fn.with_changes(decorators=kept))
            done.append(f"line {src.line(fn)} @torch.compile removed from {fn.name.value}")
    for call in src.calls():
        a = keyword(call, "torch_compile")
        if a is not None and isinstance(a.value, cst.Name) and a.value.value == "True":
            src.replace(call, with_keyword(call, "torch_compile", "False"))
            done.append(f"line {src.line(call)} torch_compile=True -> False")
    return ", ".join(done)


def repair_compile(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    texts, words = rewrite_files(site.python(), _plan)
    if not texts:
        yield NoFix(f"{match.diagnosis}, and no torch.compile call, decorator or torch_compile=True was found in the "
                    "repository's editable code to run without; install a C++ compiler (and triton) for the jobs, "
                    "or turn compilation off in the configuration")
        return
    yield Fix(title="run the model without torch.compile: it cannot be built on this machine",
              rationale=f"The run failed because {match.diagnosis}. torch.compile only speeds the model up: without it "
                        "the model computes the same function, each step may take longer. Changed: "
                        f"{'; '.join(words)}. On a machine that can compile, reverting this change compiles again.",
              texts=texts)
