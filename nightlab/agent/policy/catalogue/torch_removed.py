"""What torch 2 removed that older training code still uses: `torch._six`, and the schedulers' `verbose=`.

`torch._six` (Python 2/3 compatibility names: `inf`, `string_classes`, `int_classes`, `container_abcs`) went in
torch 2.0; code copied from apex, DETR or an old timm still imports it and dies with `No module named 'torch._six'`.
Each name is bound again to what it stood for. The learning-rate schedulers' `verbose=` (it printed the rate at each
step) was deprecated in 2.2 and is gone: `StepLR(opt, 30, verbose=True)` raises `TypeError: StepLR.__init__() got
an unexpected keyword argument 'verbose'`. Dropping it changes nothing the schedule computes.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from nightlab.agent.policy.catalogue.code import Source, call_name, dotted, keyword, rewrite_files, without_keyword
from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms

__all__ = ["recognise_scheduler_verbose", "recognise_torch_six", "repair_scheduler_verbose", "repair_torch_six"]

SCHEDULERS = frozenset({
    "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau", "CyclicLR", "OneCycleLR",
    "CosineAnnealingWarmRestarts", "LambdaLR", "MultiplicativeLR", "LinearLR", "ConstantLR", "SequentialLR",
    "ChainedScheduler", "PolynomialLR",
})
# what each torch._six name stood for, as a statement binding the same name
_SIX: dict[str, str] = {
    "inf": "from torch import inf\n",
    "nan": "from torch import nan\n",
    "string_classes": "string_classes = (str, bytes)\n",
    "int_classes": "int_classes = int\n",
    "container_abcs": "import collections.abc as container_abcs\n",
    "PY3": "PY3 = True\n",
    "PY37": "PY37 = True\n",
}


def _bound(name: str, alias: str | None) -> str:
    """The statement that binds `alias` (or `name`) to what torch._six's `name` stood for."""
    code = _SIX[name]
    if alias is None or alias == name:
        return code
    if code.startswith(("from ", "import ")):
        return code.replace(f" {name}\n", f" {name} as {alias}\n") if " as " not in code else \
            code.replace(f" as {name}\n", f" as {alias}\n")
    return code.replace(f"{name} = ", f"{alias} = ", 1)


def recognise_scheduler_verbose(sym: Symptoms) -> Match | None:
    m = sym.says(r"(\w+)\.__init__\(\) got an unexpected keyword argument 'verbose'")
    if m is None or m.group(1) not in SCHEDULERS:
        return None
    return Match(f"torch removed the learning-rate schedulers' verbose= ({m.group(1)}(..., verbose=...)): it only "
                 "printed the rate", {"scheduler": m.group(1)})


def repair_scheduler_verbose(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    def plan(src: Source) -> str:
        n = 0
        for c in src.calls():
            if call_name(c).split(".")[-1] in SCHEDULERS and keyword(c, "verbose") is not None:
                src.replace(c, without_keyword(c, "verbose"))
                n += 1
        return f"verbose= dropped from {n} scheduler(s)" if n else ""

    texts, words = rewrite_files(site.python(), plan)
    if not texts:
        return
    yield Fix(title="drop the schedulers' verbose= (removed in torch 2)",
              rationale=f"The run failed because {match.diagnosis}. The schedule is the same without it; only the "
                        f"per-step print of the rate goes ({'; '.join(words)}).", texts=texts)


def recognise_torch_six(sym: Symptoms) -> Match | None:
    if sym.says(r"No module named 'torch\._six'") is None:
        return None
    return Match("torch._six (Python 2 compatibility names) was removed in torch 2.0 and the code still imports it")


def repair_torch_six(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    unknown: list[str] = []

    def plan(src: Source) -> str:
        done: list[str] = []
        for imp in src.walk(cst.ImportFrom):
            if imp.module is None or dotted(imp.module) != "torch._six" or isinstance(imp.names, cst.ImportStar):
                continue
            stmt = src.statement_of(imp)
            names = [(dotted(a.name) or "", a.asname.name.value if a.asname is not None
                      and isinstance(a.asname.name, cst.Name) else None) for a in imp.names]
            if stmt is None or any(n not in _SIX for n, _ in names):
                unknown.extend(n for n, _ in names if n not in _SIX)
                continue
            lines = [_bound(n, alias) for n, alias in names]
            src.replace_statement(stmt, cst.parse_statement(lines[0]))
            for line in lines[1:]:  # one statement per name, where the import stood
                src.patch.after.setdefault(id(stmt), []).append(cst.parse_statement(line))
            done.append(f"line {src.line(imp)} from torch._six import {', '.join(n for n, _ in names)}")
        for ref in list(src.attribute_refs({"torch._six"}, "inf")) + list(src.attribute_refs({"torch._six"}, "nan")):
            src.replace(ref, cst.parse_expression(f"torch.{ref.attr.value}"))
            done.append(f"line {src.line(ref)} torch._six.{ref.attr.value} -> torch.{ref.attr.value}")
        return ", ".join(done)

    texts, words = rewrite_files(site.python(), plan)
    if not texts:
        what = f" (it imports {', '.join(sorted(set(unknown)))}, which nightlab cannot map)" if unknown else ""
        yield NoFix(f"{match.diagnosis}{what}: replace the import by what the names stood for")
        return
    yield Fix(title="bind torch._six's names to what they stood for (torch._six is gone in torch 2)",
              rationale=f"The run failed because {match.diagnosis}. Each name is bound to its Python 3 meaning "
                        f"(inf -> torch.inf, string_classes -> (str, bytes), container_abcs -> collections.abc): "
                        f"{'; '.join(words)}.", texts=texts)
