"""Code written for one kind of machine, run on another.

CUDA-only code (`.cuda()`, `device="cuda"`, a checkpoint saved on a GPU and loaded without `map_location`) fails on a
machine without a GPU; the repair makes the device choice portable -- CUDA where there is one, else the CPU -- so
the same diff still uses the GPU on the user's GPU machine. The reverse: code that pins itself to the CPU in a job
that was given a GPU, and runs out of time; the repair lets it pick the GPU.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from nightlab.agent.policy.catalogue.code import (
    Source,
    call_name,
    dotted,
    keyword,
    rewrite_files,
    string_value,
    with_keyword,
)
from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms
from nightlab.agent.policy.catalogue.torch_load import torch_calls
from nightlab.agent.states import FailureClass, RunResult

__all__ = ["recognise_cpu_pinned", "recognise_cuda_checkpoint", "recognise_no_cuda", "repair_cpu_pinned",
           "repair_portable_device"]

PORTABLE = '"cuda" if torch.cuda.is_available() else "cpu"'
_NO_CUDA = (
    r"Found no NVIDIA driver on your system", r"Torch not compiled with CUDA enabled", r"No CUDA GPUs are available",
    r"no CUDA-capable device is detected", r"CUDA driver initialization failed", r"CUDA driver version is insufficient",
)
# torch.cuda functions that fail without a GPU when called as a statement of their own
_CUDA_STATEMENTS = frozenset({"synchronize", "set_device", "reset_peak_memory_stats", "reset_max_memory_allocated"})


def recognise_no_cuda(sym: Symptoms) -> Match | None:
    m = sym.says(*_NO_CUDA)
    if m is None:
        return None
    where = f" ({sym.frame.code})" if sym.frame is not None and sym.frame.code else ""
    return Match(f"the code asks for a CUDA GPU{where} but this machine has none: {m.group(0)}")


def recognise_cuda_checkpoint(sym: Symptoms) -> Match | None:
    if sym.says(r"Attempting to deserialize object on a CUDA device") is None:
        return None
    return Match("the checkpoint was saved on a GPU and torch.load maps it back to CUDA, which this machine does not "
                 "have (no map_location)")


def _device_literal(node: cst.BaseExpression, want: str) -> bool:
    v = string_value(node)
    return v is not None and (v == want or (want == "cuda" and v.startswith("cuda:")))


def _devicey(name: str) -> bool:
    return "device" in name.lower()


def _device_literals(src: Source, want: str) -> list[cst.SimpleString]:
    """String literals naming device `want` ("cuda" or "cpu") where the code chooses a device: torch.device(...),
    a device-named variable, dict key, parameter or command-line option default, and for "cuda" also device= and
    map_location= arguments and `.to(...)`."""
    out: list[cst.SimpleString] = []

    def take(node: cst.BaseExpression | None) -> None:
        if node is not None and isinstance(node, cst.SimpleString) and _device_literal(node, want):
            out.append(node)

    for c in src.calls():
        name = call_name(c)
        # "cpu" in a call's device= or .to("cpu") is often a deliberate copy back (to numpy, for a metric): only
        # where a device is chosen once (a variable, an option, torch.device) is "cpu" a choice of machine
        for a in c.args:
            if want == "cuda" and a.keyword is not None and a.keyword.value in ("device", "map_location"):
                take(a.value)
        first = c.args[0] if c.args and c.args[0].keyword is None else None
        if first is not None and (name.endswith(".device") or name == "device" or (
                want == "cuda" and name.split(".")[-1] == "to")):
            take(first.value)
        if name.split(".")[-1] == "add_argument" and any(
                _devicey(string_value(a.value) or "") for a in c.args if a.keyword is None):
            d = keyword(c, "default")
            take(d.value if d is not None else None)
    for asg in src.walk(cst.Assign):
        if any(_devicey(dotted(t.target) or "") for t in asg.targets):
            take(asg.value)
    for asg in src.walk(cst.AnnAssign):
        if _devicey(dotted(asg.target) or "") and asg.value is not None:
            take(asg.value)
    for el in src.walk(cst.DictElement):
        if _devicey(string_value(el.key) or ""):
            take(el.value)
    for p in src.walk(cst.Param):
        if _devicey(p.name.value) and p.default is not None:
            take(p.default)
    seen: set[int] = set()
    return [n for n in out if not (id(n) in seen or seen.add(id(n)))]  # type: ignore[func-returns-value]


def _module_device_name(src: Source, literals: list[cst.SimpleString]) -> str | None:
    """A module-level `DEVICE = "cuda"` that `.cuda()` calls can be pointed at instead of a new name."""
    for stmt in src.module.body:
        if isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.Assign):
            asg = stmt.body[0]
            t = asg.targets[0].target
            if len(asg.targets) == 1 and isinstance(t, cst.Name) and any(asg.value is n for n in literals):
                return t.value
    return None


def _portable(src: Source) -> list[str]:
    """Plan the portable rewrite of one file; the list of what changed, in words."""
    what: list[str] = []
    literals = _device_literals(src, "cuda")
    for n in literals:
        src.replace(n, PORTABLE)
    if literals:
        what.append(f"{len(literals)} hard-coded \"cuda\" device{'s' if len(literals) > 1 else ''}")
    cuda_calls = [c for c in src.calls() if isinstance(c.func, cst.Attribute) and c.func.attr.value == "cuda"
                  and (dotted(c.func.value) or "") not in src.aliases("torch")]
    if cuda_calls:
        dev = _module_device_name(src, literals)
        if dev is None:
            dev = "_DEVICE" if not src.binds("_DEVICE") else None
            if dev is None:
                return []
            src.insert_after_imports(f"{dev} = {PORTABLE}\n")
        for c in cuda_calls:
            nb = keyword(c, "non_blocking")
            args = f"{dev}, non_blocking={src.code(nb.value)}" if nb is not None else dev
            assert isinstance(c.func, cst.Attribute)
            src.replace(c, cst.parse_expression(f"{src.code(c.func.value)}.to({args})"))
        what.append(f"{len(cuda_calls)} .cuda() call{'s' if len(cuda_calls) > 1 else ''}")
    for c in torch_calls(src, "load"):
        if keyword(c, "map_location") is None:
            src.replace(c, with_keyword(c, "map_location", 'None if torch.cuda.is_available() else "cpu"'))
            what.append("torch.load without map_location")
    torch_names = src.aliases("torch")
    for stmt in src.walk(cst.SimpleStatementLine):
        if len(stmt.body) != 1 or not isinstance(stmt.body[0], cst.Expr) or not isinstance(stmt.body[0].value,
                                                                                              cst.Call):
            continue
        name = call_name(stmt.body[0].value)
        head, _, fn = name.rpartition(".")
        if fn in _CUDA_STATEMENTS and head.endswith(".cuda") and head[:-5] in torch_names:
            guarded = cst.If(test=cst.parse_expression(f"{head}.is_available()"),
                             body=cst.IndentedBlock(body=[stmt.with_changes(leading_lines=[])]),
                             leading_lines=stmt.leading_lines)
            src.replace_statement(stmt, guarded)
            what.append(f"{name}() guarded")
    if what and not torch_names and src.ensure_import("torch") is None:
        return []
    return what


def repair_portable_device(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    texts, words = rewrite_files(site.python(), lambda src: ", ".join(dict.fromkeys(_portable(src))))
    if not texts:
        return
    yield Fix(
        title="choose the device at run time: CUDA where there is a GPU, else the CPU",
        rationale=f"The run failed because {match.diagnosis}. The device is now chosen when the script starts "
                  f"(\"cuda\" if torch.cuda.is_available() else \"cpu\"), so this diff runs here and still uses the "
                  f"GPU on a machine that has one. Changed: {'; '.join(words)}.",
        texts=texts)


def recognise_cpu_pinned(sym: Symptoms) -> Match | None:
    if sym.result != RunResult.TIMED_OUT and sym.cls != FailureClass.TIMEOUT:
        return None
    return Match("the run ran out of time on the CPU: the code pins its device to \"cpu\" although the job was "
                 "given a GPU")


def repair_cpu_pinned(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    if site.gpus <= 0:
        return  # the user did not ask for GPUs: the timeout entry handles it
    py = {p: Source(p, t) for p, t in site.python().items()}
    if any("cuda" in t for t in site.python().values()):
        return  # the code already knows about CUDA: pinning is deliberate or partial; not certain
    texts, count = {}, 0
    for path, src in py.items():
        if not src.ok:
            continue
        lits = _device_literals(src, "cpu")
        for n in lits:
            src.replace(n, PORTABLE)
        new = src.render() if lits else None
        if new is not None:
            texts[path] = new
            count += len(lits)
    if not texts:
        return
    yield Fix(title="use the GPU the job was given: choose CUDA when it is available instead of a fixed \"cpu\"",
              rationale=f"The run timed out on the CPU while the job had {site.gpus} GPU(s) reserved "
                        f"(slots.gpus_per_job); {count} device setting(s) in {', '.join(texts)} pinned it to \"cpu\". "
                        "They now choose \"cuda\" when torch sees a GPU, and still the CPU where there is none.",
              texts=texts, expected="the run finishes within the time limit")
