"""What pandas 3 removed that tabular training scripts still write, from the errors the installed release raises.

`df.fillna(method="ffill")` raises `TypeError: NDFrame.fillna() got an unexpected keyword argument 'method'`,
`pd.read_csv(path, delim_whitespace=True)` the same for `delim_whitespace`, `df.applymap(f)` an AttributeError.
Each has a documented replacement that computes the same frame. Once one is recognised, every removal below written
literally in the repository is rewritten in one fix (the next run would only stop at the next one); a method
removed by name (`pad`, `swapaxes`) is rewritten only where the error named it, since other libraries use the name,
and one whose name torch and numpy share (`.bool()`, `.ravel()`) or that is rewritten into an expression
(`.mad()`) only on the line the traceback points at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import libcst as cst

from nightlab.agent.policy.catalogue.code import (
    Source,
    call_name,
    keyword,
    rewrite_files,
    string_value,
    with_keyword,
    without_keyword,
)
from nightlab.agent.policy.catalogue.entry import Fix, Frame, Match, NoFix, Site, Symptoms

__all__ = ["recognise_pandas_removed", "repair_pandas_removed"]

_READERS = frozenset({"read_csv", "read_table", "read_fwf"})
_KEYWORDS = {  # call -> removed keywords
    "fillna": ("method",),
    **{r: ("delim_whitespace", "error_bad_lines", "warn_bad_lines", "squeeze") for r in _READERS},
    "to_csv": ("line_terminator",),
}
_METHODS = {"applymap": "map", "pad": "ffill", "backfill": "bfill", "swapaxes": "transpose"}
# removed with no method of the same name to call instead: the expression that computes the same value, rewritten
# only at the traceback's line (`x.bool()` is torch's cast too, `x.ravel()` numpy's)
_AT_LINE = {"mad": "(x - x.mean()).abs().mean()", "bool": "bool(x.squeeze())", "ravel": "x.to_numpy().ravel()"}
_FILL = {"ffill": "ffill", "pad": "ffill", "bfill": "bfill", "backfill": "bfill"}


def recognise_pandas_removed(sym: Symptoms) -> Match | None:
    m = sym.says(r"(\w+)\(\) got an unexpected keyword argument '(\w+)'")
    if m is not None:
        fn = m.group(1).rsplit(".", 1)[-1]
        if m.group(2) in _KEYWORDS.get(fn, ()) and ("pandas" in sym.log or "NDFrame" in m.group(1)):
            return Match(f"pandas 3 removed {fn}({m.group(2)}=...)", {"kw": m.group(2)})
    m = sym.says(r"'(DataFrame|Series)' object has no attribute '(applymap|pad|backfill|swapaxes|mad|bool|ravel)'")
    if m is not None:
        now = _METHODS.get(m.group(2)) or _AT_LINE[m.group(2)]
        return Match(f"pandas removed {m.group(1)}.{m.group(2)} ({now} replaces it)", {"method": m.group(2)})
    m = sym.says(r"'(DataFrame|Series|Index)' object has no attribute 'is_monotonic'")
    if m is not None:
        return Match(f"pandas removed {m.group(1)}.is_monotonic (is_monotonic_increasing replaces it)",
                     {"method": "is_monotonic"})
    return None


def _keywords(src: Source, call: cst.Call, fn: str) -> tuple[cst.BaseExpression, list[str]]:
    """The call (or the expression replacing it) with the removed keywords rewritten; what changed."""
    new: cst.BaseExpression = call
    done: list[str] = []
    if fn == "fillna":
        a = keyword(call, "method")
        how = _FILL.get(string_value(a.value) or "") if a is not None else None
        if a is None or how is None or keyword(call, "value") is not None or \
                [x for x in call.args if x.keyword is None]:
            return call, []
        rest = without_keyword(call, "method").args
        assert isinstance(call.func, cst.Attribute)
        new = cst.Call(func=call.func.with_changes(attr=cst.Name(how)), args=rest)
        return new, [f"fillna(method={string_value(a.value)!r}) -> {how}()"]
    assert isinstance(new, cst.Call)
    if fn in _READERS:
        if keyword(new, "delim_whitespace") is not None:
            new = with_keyword(without_keyword(new, "delim_whitespace"), "sep", 'r"\\s+"')
            done.append('delim_whitespace=True -> sep=r"\\s+"')
        bad = keyword(new, "error_bad_lines")
        warn = keyword(new, "warn_bad_lines")
        if bad is not None or warn is not None:
            skip = bad is not None and src.code(bad.value).strip() == "False"
            warned = warn is not None and src.code(warn.value).strip() == "True"
            new = without_keyword(without_keyword(new, "error_bad_lines"), "warn_bad_lines")
            how = '"warn"' if skip and warned else '"skip"' if skip else '"error"'
            new = with_keyword(new, "on_bad_lines", how)
            done.append(f"error_bad_lines / warn_bad_lines -> on_bad_lines={how}")
        sq = keyword(new, "squeeze")
        if sq is not None:
            new = without_keyword(new, "squeeze")
            if src.code(sq.value).strip() == "True":
                new = cst.Call(func=cst.Attribute(value=new, attr=cst.Name("squeeze")),
                               args=[cst.Arg(cst.SimpleString('"columns"'))])
                done.append('squeeze=True -> .squeeze("columns")')
            else:
                done.append("squeeze=False dropped")
    if fn == "to_csv" and keyword(new, "line_terminator") is not None:
        new = _rename(new, "line_terminator", "lineterminator")
        done.append("line_terminator= -> lineterminator=")
    return new, done


def _rename(call: cst.Call, old: str, now: str) -> cst.Call:
    return call.with_changes(args=[a.with_changes(keyword=cst.Name(now)) if a.keyword is not None
                                   and a.keyword.value == old else a for a in call.args])


def _at_line(src: Source, call: cst.Call, fn: str, at: Frame | None) -> str | None:
    """The expression replacing a `.mad()` / `.bool()` / `.ravel()` call on the traceback's line, or None: another
    line, arguments it cannot carry over, or a receiver that is itself a call (`.mad()` would compute it twice)."""
    if at is None or at.path != src.path or not src.spans(call, at.line):
        return None
    assert isinstance(call.func, cst.Attribute)
    x = src.code(call.func.value)
    if fn == "ravel":
        return f"{x}.to_numpy().ravel({src.code(call)[len(src.code(call.func)) + 1:-1]})"
    if call.args or (fn == "mad" and "(" in x):
        return None
    return f"({x} - {x}.mean()).abs().mean()" if fn == "mad" else f"bool({x}.squeeze())"


def _plan(src: Source, method: str | None, at: Frame | None = None) -> str:
    done: list[str] = []
    for attr in src.walk(cst.Attribute):  # a property, not a call: `s.index.is_monotonic`
        if attr.attr.value == "is_monotonic":
            src.replace(attr, attr.with_changes(attr=cst.Name("is_monotonic_increasing")))
            done.append(f"line {src.line(attr)} .is_monotonic -> .is_monotonic_increasing")
    for call in src.calls():  # (the method's own name: `df.drop(...).applymap(f)` has no dotted name)
        fn = call.func.attr.value if isinstance(call.func, cst.Attribute) else call_name(call)
        if fn in _KEYWORDS and isinstance(call.func, cst.Attribute) and any(
                keyword(call, k) is not None for k in _KEYWORDS[fn]):
            new, words = _keywords(src, call, fn)
            if words:
                src.replace(call, new)
                done += [f"line {src.line(call)} {w}" for w in words]
        elif isinstance(call.func, cst.Attribute) and fn in _METHODS and (fn == "applymap" or fn == method):
            if fn in ("pad", "backfill") and [a for a in call.args if a.keyword is None]:
                continue  # `np.pad(a, 1)`, `F.pad(x, (1, 1))`: another library's pad, which takes its input
            if fn == "swapaxes" and not re.fullmatch(r"\(\s*(0\s*,\s*1|1\s*,\s*0)\s*\)", src.code(call)[
                    len(src.code(call.func)):].strip()):
                continue
            args = [] if fn == "swapaxes" else list(call.args)
            src.replace(call, call.with_changes(func=call.func.with_changes(attr=cst.Name(_METHODS[fn])),
                                                args=args))
            done.append(f"line {src.line(call)} .{fn}() -> .{_METHODS[fn]}()")
        elif isinstance(call.func, cst.Attribute) and fn in _AT_LINE and fn == method:
            new_code = _at_line(src, call, fn, at)
            if new_code is not None:
                src.replace(call, new_code)
                done.append(f"line {src.line(call)} .{fn}() -> {new_code}")
    return ", ".join(done)


def repair_pandas_removed(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    method = match.facts.get("method")
    at = site.frames[-1] if site.frames else None
    texts, words = rewrite_files(site.python(), lambda src: _plan(src, str(method) if method else None, at))
    if not texts:
        yield NoFix(f"{match.diagnosis}, and no call nightlab can rewrite is written literally in the editable code")
        return
    yield Fix(title="update the pandas calls pandas 3 removed (same frames, current names)",
              rationale=f"The run failed because {match.diagnosis}. Every removal nightlab knows is rewritten at "
                        f"once: {'; '.join(words)}.", texts=texts)
