"""Checkpoints that no longer fit the model they are loaded into.

Two cases are certain enough to repair: a checkpoint saved from a `DataParallel` / `DistributedDataParallel` wrapper
(every key carries a `module.` prefix the plain model lacks), and a checkpoint whose shapes stopped matching because
nightlab itself changed the model's width or depth in this branch -- then the tensors that still fit are loaded and
the resized layers start fresh. A mismatch nightlab did not cause means the checkpoint belongs to another model; that
is reported, not papered over.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import libcst as cst

from nightlab.agent.policy.catalogue.code import Source, with_keyword
from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms

__all__ = ["recognise_module_prefix", "recognise_resized_model", "repair_module_prefix", "repair_resized_model"]

_HEADER = "Error(s) in loading state_dict"


def _keys(text: str, which: str) -> list[str]:
    m = re.search(rf"{which} key\(s\) in state_dict: ((?:\"[^\"]*\"(?:, )?)+)", text)
    return re.findall(r"\"([^\"]*)\"", m.group(1)) if m else []


def recognise_module_prefix(sym: Symptoms) -> Match | None:
    text = sym.message or sym.log
    if _HEADER not in text and _HEADER not in sym.log:
        return None
    unexpected, missing = _keys(sym.log, "Unexpected"), _keys(sym.log, "Missing")
    if not unexpected or not all(k.startswith("module.") for k in unexpected):
        return None
    if missing and not all("module." + k in unexpected or len(unexpected) < len(missing) for k in missing):
        return None
    return Match("the checkpoint was saved from a DataParallel-wrapped model: its keys carry a 'module.' prefix "
                 f"the plain model does not have ({unexpected[0]!r} for {unexpected[0][7:]!r})")


def recognise_resized_model(sym: Symptoms) -> Match | None:
    if _HEADER not in sym.log:
        return None
    m = re.search(r"size mismatch for ([\w.]+): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) from "
                  r"checkpoint, the shape in current model is torch\.Size\(\[([\d, ]*)\]\)", sym.log)
    if m is not None:
        return Match(f"the checkpoint's tensors were saved for another shape of the model ({m.group(1)}: "
                     f"[{m.group(2)}] in the checkpoint, [{m.group(3)}] now)")
    missing = _keys(sym.log, "Missing")
    if missing:
        return Match(f"the model has parameters the checkpoint lacks ({', '.join(missing[:3])}"
                     f"{', ...' if len(missing) > 3 else ''})")
    return None


def _failing_load(site: Site) -> tuple[Source, cst.Call] | None:
    for fr in reversed(site.frames):
        if fr.path not in site.files:
            continue
        src = Source(fr.path, site.files[fr.path])
        if not src.ok:
            continue
        calls = [c for c in src.calls_at(fr.line)
                 if isinstance(c.func, cst.Attribute) and c.func.attr.value == "load_state_dict"]
        if len(calls) == 1 and calls[0].args and calls[0].args[0].keyword is None:
            return src, calls[0]
    return None


def repair_module_prefix(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    found = _failing_load(site)
    if found is None:
        return
    src, call = found
    arg = call.args[0].value
    state = src.code(arg).strip()
    stripped = f'{{k.removeprefix("module."): v for k, v in {state}.items()}}'
    src.replace(arg, stripped)
    new = src.render()
    if new is not None:
        yield Fix(title="strip DataParallel's 'module.' prefix from the checkpoint's keys before loading",
                  rationale=f"The run failed because {match.diagnosis}. The same tensors are loaded under the names "
                            f"the model uses ({src.path}:{src.line(call)}).",
                  texts={src.path: new})


_HELPER = '''\
def _compatible_state(model, state):
    """The checkpoint tensors whose name and shape still match `model` (resized layers start fresh)."""
    own = model.state_dict()
    return {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
'''


def repair_resized_model(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    resized = {k: v for k, v in site.changed.items() if v[0] in ("width", "depth")}
    found = _failing_load(site)
    if not resized:
        where = f" at {found[0].path}:{found[0].line(found[1])}" if found else ""
        yield NoFix(f"the checkpoint loaded{where} does not fit the model ({match.diagnosis}), and nightlab did not "
                    "change the model's shape in this branch: the checkpoint belongs to another model or another "
                    "configuration; point the code at the right checkpoint")
        return
    if found is None:
        return
    src, call = found
    if not isinstance(call.func, cst.Attribute):
        return
    model = src.code(call.func.value).strip()
    arg = call.args[0].value
    if not src.binds("_compatible_state"):
        src.insert_after_imports(_HELPER)
    new_call = call.with_changes(args=[call.args[0].with_changes(
        value=cst.parse_expression(f"_compatible_state({model}, {src.code(arg).strip()})")), *call.args[1:]])
    src.replace(call, with_keyword(new_call, "strict", "False"))
    new = src.render()
    if new is None:
        return
    what = ", ".join(f"{k} {old} -> {now}" for k, (_kind, old, now) in resized.items())
    yield Fix(title=f"load the checkpoint tensors that still fit after resizing the model ({what})",
              rationale=f"The run failed because {match.diagnosis}: this branch resized the model ({what}), so the "
                        "layers it changed no longer match the checkpoint. The tensors whose shapes still match are "
                        "loaded (strict=False) and the resized layers start from their fresh initialisation, which "
                        "is what a wider or deeper model means here.",
              texts={src.path: new})
