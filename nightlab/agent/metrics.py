"""The metric contract: the final value and the curves of a run, parsed from its output log or metrics file.

Training scripts print their metric in many shapes (`acc=0.9`, `acc: 0.9`, a JSON line, `| val_bpc 3.66 |`,
`INFO test_acc: 0.31`, `{'eval_loss': np.float64(0.4)}`, fastai's table of columns, a coloured rich log, a progress
bar redrawn with `\r`). Rather than asking every project to adopt a format, the agent reads all the common ones and
accepts a configured regex for the rest. The rules are deliberately strict, because the metric is the only thing
deciding whether a change is kept:

- the last occurrence wins (scripts print intermediate values before the final one);
- NaN / inf / missing are failures with a one-line error, never a value that could be compared or ranked;
- names match as whole words, so `acc` never picks up `test_acc` or `accuracy`, and `loss` never `val_loss`.

Logs can be tens of MB and the agent reads one after every run, so the parsers scan the lower-cased text once with
patterns that begin with a literal (the regex engine then skips ahead like str.find) instead of running a regex per
line, and a curve keeps at most MAX_CURVE_POINTS points (evenly spaced, the last and the first NaN always kept), so
per-point work is bounded however often a value is printed. Patterns built from a name are compiled once
(functools.lru_cache).
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Candidate",
    "MetricReading",
    "find_candidates",
    "guess_goal",
    "parse_loss_curve",
    "parse_metric",
    "parse_metrics_file",
    "parse_named_curve",
]

# --- the grammar ------------------------------------------------------------------------------------------------

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# nan / inf are parsed (so they can be reported as failures) but only as whole words: `nano`, `info` are no values
_NONFINITE = r"[-+]?(?:[nN][aA][nN]|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)(?![A-Za-z0-9_])"
# `tensor(0.31, grad_fn=...)` is what printing a torch scalar gives; a quoted number is what some JSON writers give
# A count out of a total is its ratio: PyTorch's MNIST example prints `Accuracy: 9894/10000 (99%)`, which is 0.9894,
# not 9894 (nor the rounded 99 %).
_RATIO = r"/[1-9]\d*(?![\d.])"
# A wrapped scalar is its number: torch's `tensor(0.31)` / `tensor([0.31], device='cuda:0')`, NumPy 2's
# `np.float64(0.31)` (what scikit-learn's metrics print since NumPy 2), JAX's `Array(0.31, dtype=float32)`. Matched on
# lower-cased text. Without them the value after the name was no number, and an older plain print won.
_WRAPPED = r"(?:(?:tensor|array|(?:np\.|numpy\.|jnp\.)?(?:float|int)\d*)\(\s*(?:\[\s*(?=[^\],]*\]))?)?"  # ([one])
# `Acc@1  81.250 ( 79.512)`: an AverageMeter's current batch, then its running average in parentheses (timm, the
# PyTorch ImageNet example, most repositories that copy it): the average is the value, the last batch is noise
_AVERAGE = r"(?:\s*\(\s*(?P<avg>\d+\.\d+(?:[eE][-+]?\d+)?)\s*\))?"  # unsigned, with decimals: `(+0.004)` is a delta
_VALUE = rf"{_WRAPPED}[\"']?(?P<value>{_NUM}(?:{_RATIO})?|{_NONFINITE}){_AVERAGE}"
# a number that is itself the end of a longer name (`mAP@0.5:0.95 = 0.41` read as `mAP@0.5` is `0.95`): what
# follows it is a separator and another number
_NOT_A_NAME = r"(?![\d.]*\s*[:=]\s*[-+]?\.?\d)"
# `name=value`, `name = value`, `name: value`, `"name": value`, `name value` (at least one space), or a table's
# cell border between them (`│ test_acc │ 0.98 │`: the table PyTorch Lightning prints after `trainer.test()`)
_SEP = r"(?:\s*[:=]\s*|\s*[│┃|]\s*|\s+)"
# whole-word edges: `.`, `/` and `-` count as part of a name so `val/loss`, `model.acc`, `top-acc` stay distinct
_WORDISH = r"[\w./-]"
_AFTER = r"(?![\w/-])"

_NUM_PREFIX_RE = re.compile(rf"\s*[\"']?({_NUM}|{_NONFINITE})")

# Step markers: `step 100`, `Step [100/600]`, `"step": 5`, `iter=3`, `Epoch 3/10`, `global_step: 7`. A fractional
# epoch (`'epoch': 0.5`) is no step: the digits must not run on into a decimal part. Applied to lower-cased text; the
# lookbehinds come after the keyword so every alternative starts with a literal (fast scanning).
_STEP_SCAN_RE = re.compile(
    r"(?:global_step(?<![\w./-]global_step)|step(?<![\w./-]step)|iteration(?<![\w./-]iteration)"
    r"|iter(?<![\w./-]iter)|epoch(?<![\w./-]epoch))"
    r"(?![\w/-])[\"']?\s*[:=#]?\s*\[?\s*(\d+)(?!\d|\.\d)"
)
# `[3, 20] loss: 0.4` -- the (epoch, batch) pair of the PyTorch tutorials
_PAIR_RE = re.compile(r"\[\s*(\d+)\s*,\s*(\d+)\s*\]")
# A curve keeps at most this many points, evenly spaced over the run (plus the last and the first non-finite one):
# plenty for a plot or a diagnosis, and it bounds the per-point work on a log that prints every step.
MAX_CURVE_POINTS = 5000


@dataclass
class MetricReading:
    """The outcome of reading one metric from a run.

    `value` is None whenever the run has no usable metric (never printed, NaN, inf, not a number); `error` then says
    why in one line, so the failure can be shown and classified without guessing.
    """

    value: float | None
    curve: list[tuple[int, float]] = field(default_factory=list)
    error: str | None = None
    raw: str | None = None

    @property
    def ok(self) -> bool:
        """True when the run produced a finite final value."""
        return self.value is not None and self.error is None


@dataclass
class Candidate:
    """A numeric `name → value` pair seen in a log; `nightlab init` offers the best-ranked ones as the metric.

    `regex` is set for values printed inside a sentence (`Accuracy of the network on the 360 test images: 0.98`):
    the name alone cannot find those again, so the candidate carries a regex that does (group 1 is the value).
    """

    name: str
    value: float  # the last value printed (may be nan/inf: a broken run still shows which names exist)
    count: int
    last_line_index: int
    form: str  # "name=value" | "name: value" | "json" | "name value" | "sentence" | "table"
    regex: str | None = None


@dataclass(slots=True)
class _Hit:
    line: int  # index of the line (\n and \r both break lines, as tqdm redraws with \r)
    pos: int  # offset of the match in the text, -1 when it came from a JSON document
    value: float | None  # None: the text captured by a configured regex is not a number
    text: str  # the captured value text
    raw: str  # the whole matched text
    epoch: int | None = None
    step: int | None = None
    row: int = -1  # the \n-line it sits on where the log redraws lines with \r (a progress bar), else -1


# --- helpers ----------------------------------------------------------------------------------------------------

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")  # (OSC: rich's links end in ESC \)


def _plain(text: str) -> str:
    """The log without terminal colour and cursor codes (`\x1b[1mval_loss\x1b[0m: \x1b[32m0.401\x1b[0m`): a rich
    logger's value is otherwise no `name: value` pair, and an older plain print would be taken as the metric."""
    return _ANSI_RE.sub("", text) if "\x1b" in text else text



@functools.lru_cache(maxsize=256)
def _name_re(needle: str) -> re.Pattern[str]:
    """The common forms for one (lower-cased) metric name, as a whole word, to run over lower-cased text.

    The whole-word check before the name is a lookbehind placed after it, so the pattern starts with the literal
    name and the engine can skip through the text as fast as str.find.
    """
    esc = re.escape(needle)
    return re.compile(rf"{esc}(?<!{_WORDISH}{esc}){_AFTER}[\"']?{_SEP}{_VALUE}{_NOT_A_NAME}")


@functools.lru_cache(maxsize=64)
def _name_re_unicode(name: str) -> re.Pattern[str]:
    """Fallback for a non-ASCII metric name: case-insensitive over the original text (slower, rarely used)."""
    return re.compile(rf"(?<!{_WORDISH}){re.escape(name)}{_AFTER}[\"']?{_SEP}{_VALUE}{_NOT_A_NAME}", re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def _user_re(regex: str) -> re.Pattern[str]:
    """A configured regex. MULTILINE so `^`/`$` anchor at line edges, which is what people mean in a log."""
    return re.compile(regex, re.MULTILINE)


def _lowered(text: str) -> tuple[str, str]:
    """(text, text.lower()) with equal lengths, so offsets found in one are valid in the other.

    A few non-ASCII characters change length when lower-cased; then every non-ASCII character is replaced by `?`
    first. Names and numbers are ASCII, so nothing a parser looks for is lost.
    """
    low = text.lower()
    if len(low) != len(text):
        text = text.encode("ascii", "replace").decode("ascii")
        low = text.lower()
    return text, low


def _line_at(text: str, pos: int, has_cr: bool) -> str:
    """The line around offset `pos` (bounded searches: never quadratic over a long log)."""
    a = text.rfind("\n", 0, pos) + 1
    b = text.find("\n", pos)
    if b < 0:
        b = len(text)
    if has_cr:
        a = text.rfind("\r", a, pos) + 1 or a
        c = text.find("\r", pos, b)
        if c >= 0:
            b = c
    return text[a:b]


def _to_float(text: str) -> float | None:
    """Parse a captured value leniently (`0.98.` at a sentence end, `93%`, `'0.5'`); None if it is not a number."""
    s = text.strip().strip("\"'")
    try:
        return float(s)
    except ValueError:
        pass
    count, slash, total = s.partition("/")
    if slash:
        try:
            return float(count) / float(total)
        except (ValueError, ZeroDivisionError):
            return None
    m = _NUM_PREFIX_RE.match(s)
    if m is None:
        return None
    try:
        return float(m.group(1))
    except ValueError:  # pragma: no cover - the regex only admits float syntax
        return None


def _line_steps(line: str) -> tuple[int | None, int | None]:
    """(epoch, step) visible on one line, either may be None; the first marker of each kind counts."""
    low = line.lower()
    if len(low) != len(line):
        line, low = _lowered(line)
    epoch: int | None = None
    step: int | None = None
    for m in _STEP_SCAN_RE.finditer(low):
        if low.startswith("epoch", m.start()):
            if epoch is None:
                epoch = int(m.group(1))
        elif step is None:
            step = int(m.group(1))
    if epoch is None and step is None and "[" in line:
        pair = _PAIR_RE.search(line)
        if pair is not None:
            epoch, step = int(pair.group(1)), int(pair.group(2))
    return epoch, step


def _attach_steps(text: str, hits: list[_Hit], has_cr: bool) -> None:
    """Fill each hit's (epoch, step) from the line it sits on (hits are at most MAX_CURVE_POINTS, so line by line
    is cheap; one scan of a whole long log for step markers would cost more)."""
    cache: dict[int, tuple[int | None, int | None]] = {}
    for h in hits:
        if h.pos < 0:
            continue
        got = cache.get(h.line)
        if got is None:
            got = cache[h.line] = _line_steps(_line_at(text, h.pos, has_cr))
        h.epoch, h.step = got


def _thin(n: int, keep: int | None = None) -> list[int]:
    """Indices of at most MAX_CURVE_POINTS of n points, evenly spaced, always with the first, the last and `keep`."""
    if n <= MAX_CURVE_POINTS:
        return list(range(n))
    k = MAX_CURVE_POINTS - 2
    idx = {round(i * (n - 1) / k) for i in range(k + 1)}
    if keep is not None:
        idx.add(keep)
    return sorted(idx)


def _first_nonfinite(values: list[str]) -> int | None:
    """Index of the first nan/inf among captured value texts (numbers never contain an n)."""
    for i, v in enumerate(values):
        if "n" in v or "N" in v:
            return i
    return None


def _hits_from(text: str, low: str, matches: list[re.Match[str]], group: str | int, has_cr: bool) -> list[_Hit]:
    """Hits for the (thinned) matches, in order, with line indices and steps; `low` is what was scanned (offsets
    in it are offsets in `text`). The last hit's raw text is kept for the reading."""
    if group == "value" and matches and "avg" in matches[0].re.groupindex:
        averaged = [m for m in matches if m.group("avg") is not None]
    else:
        averaged = []
    values = [m.group(group) or "" for m in matches]
    keep = _first_nonfinite(values) if len(matches) > MAX_CURVE_POINTS else None
    hits: list[_Hit] = []
    line = prev = row = 0
    count = low.count
    for i in _thin(len(matches), keep):
        m = matches[i]
        s = m.start()
        rows = count("\n", prev, s)
        row += rows
        line += rows + (count("\r", prev, s) if has_cr else 0)
        prev = s
        vs, ve = m.span("avg" if averaged and m.group("avg") is not None else group)
        vt = text[vs:ve]
        hits.append(_Hit(line, s, _to_float(vt), vt, "", row=row if has_cr else -1))
    if hits:
        m = matches[-1]
        rs = m.start() - 1 if m.start() > 0 and text[m.start() - 1] in "\"'" else m.start()
        hits[-1].raw = text[rs:m.end()].strip()
    _attach_steps(text, hits, has_cr)
    return hits


def _filled(vals: list[int | None]) -> list[int] | None:
    """Steps if they are usable: known for at least half the points and strictly increasing once the gaps
    (a final line without a step) are filled with previous+1. Otherwise None, and the caller tries another axis."""
    known = sum(v is not None for v in vals)
    if known == 0 or known * 2 < len(vals):
        return None
    out: list[int] = []
    prev: int | None = None
    for v in vals:
        if v is None:
            v = 0 if prev is None else prev + 1
        if prev is not None and v <= prev:
            return None
        out.append(v)
        prev = v
    return out


def _assign_steps(infos: list[tuple[int | None, int | None]]) -> list[int]:
    """Pick the x axis of a curve: explicit steps, else epoch×batch composed, else epochs, else the occurrence index.

    Steps that restart every epoch (`Epoch [2/5], Step [100/600]`, `[2, 2000]`) are composed into one increasing
    axis as (epoch - first) * stride + step, where stride is the largest in-epoch step (plus one print interval when
    the in-epoch count starts at 0).
    """
    n = len(infos)
    if n == 0:
        return []
    steps = _filled([s for _e, s in infos])
    if steps is not None:
        return steps
    both = [(e, s) for e, s in infos if e is not None and s is not None]
    if both and len(both) * 2 >= n:
        emin = min(e for e, _s in both)
        in_epoch = sorted({s for _e, s in both})
        gaps = [b - a for a, b in itertools.pairwise(in_epoch) if b > a]
        stride = max(in_epoch[-1] + (min(gaps) if in_epoch[0] == 0 and gaps else 0), 1)
        composed = _filled([(e - emin) * stride + s if e is not None and s is not None else None for e, s in infos])
        if composed is not None:
            return composed
    epochs = _filled([e for e, _s in infos])
    if epochs is not None:
        return epochs
    return list(range(n))


def _last_redraws(hits: list[_Hit]) -> list[_Hit]:
    """One point per progress-bar epoch: Lightning's and Keras' bars redraw a line with `\r` at every refresh
    (`Epoch 3: 40%|...| val_loss=0.401`), and the last redraw of an epoch is its value. As redraws, a 4-epoch run was a
    22-point curve on a redraw-count axis, which early stopping compares by x. Lines printed one by one (PyTorch's
    MNIST example repeats `Train Epoch: 1` per batch) are kept."""
    if len(hits) < 2 or hits[0].row < 0 or not any(_redrawn(a, b) for a, b in itertools.pairwise(hits)):
        return hits
    out: list[_Hit] = []
    for h in hits:
        if out and _redrawn(out[-1], h):
            out[-1] = h
        else:
            out.append(h)
    return out


_FIRST_WORD = re.compile(r"[A-Za-z]+")


def _same_kind(hits: list[_Hit], text: str) -> list[_Hit]:
    """The hits on lines of the same kind as the last one (the value's), where a log prints the name on lines of
    several kinds: PyTorch's ImageNet example prints `Acc@1` on every training batch (`Epoch: [3][100/5005] ...`, a
    running average), on every test batch (`Test: [10/196] ...`) and once per epoch in its summary (` * Acc@1
    76.130`), the value; its MNIST example prints `Loss:` per training batch and `Average loss:` per test. A line's
    kind is its first word (nothing for a line that starts with a number or a sign), so the summaries alone are the
    curve, the one early stopping compares, as they are the value. Where the value's kind was printed only once (a
    final `Test set: acc=0.83` after the epochs' `epoch 3: acc=0.81`), every hit stays: one point is no curve."""
    if len(hits) < 3 or any(h.pos < 0 for h in hits):
        return hits
    kinds = []
    for h in hits:
        start = max(text.rfind("\n", 0, h.pos), text.rfind("\r", 0, h.pos)) + 1
        first = _FIRST_WORD.search(text, start, h.pos)
        kinds.append(first.group(0).lower() if first is not None else "")
    if len(set(kinds)) < 2:
        return hits
    same = [h for h, k in zip(hits, kinds, strict=True) if k == kinds[-1]]
    return same if len(same) >= 2 else hits


def _redrawn(a: _Hit, b: _Hit) -> bool:
    """Whether `b` redraws `a`: on the same line up to its `\n`, at the same epoch and step (a bar kept over the whole
    run, as Lightning 2's is, redraws each epoch in turn; `step 1 ...\rstep 2 ...` are two points)."""
    return a.row >= 0 and a.row == b.row and a.epoch == b.epoch and a.step == b.step


def _fmt_nonfinite(v: float) -> str:
    if math.isnan(v):
        return "nan"
    return "inf" if v > 0 else "-inf"


# --- hits -------------------------------------------------------------------------------------------------------


def _name_hits(text: str, name: str) -> list[_Hit]:
    """Every occurrence of `name` in the common forms, in log order (thinned to MAX_CURVE_POINTS)."""
    has_cr = "\r" in text
    if not name.isascii():
        return _hits_from(text, text, list(_name_re_unicode(name).finditer(text)), "value", has_cr)
    needle = name.lower()
    text, low = _lowered(text)
    if needle not in low:
        return []
    return _hits_from(text, low, list(_name_re(needle).finditer(low)), "value", has_cr)


_COLUMN_NAME = re.compile(r"[A-Za-z][\w./@-]*")
_NUM_CELL = re.compile(rf"{_NUM}|{_NONFINITE}")
_ROWS = re.compile(r"\r\n|\n|\r")


# a progress bar drawn at the end of a table's line (Ultralytics' validation header ends `mAP50-95): 100%|###| 4/4
# [00:01<00:00, 2.50it/s]`, its training rows `640: 100%|...`): not a cell
_BAR_TAIL = re.compile(r":?\s+\d{1,3}%\|.*$")


def _header_cells(line: str) -> list[str]:
    """The column names of a table's header line, a progress bar after it left out, and a name qualified by a group
    read as the name (`Box(P` is `P`, `mAP50-95):` is `mAP50-95`)."""
    cells = []
    for tok in _BAR_TAIL.sub("", line).split():
        tok = tok.rstrip("):,")
        cells.append(tok.rsplit("(", 1)[1] if "(" in tok else tok)
    return cells


def _table_hits(text: str, name: str) -> list[_Hit]:
    """The column `name` of a results table printed as a header of names over rows of values — fastai's
    `epoch  train_loss  valid_loss  accuracy  time`, Ultralytics' `Class  Images  Instances  Box(P  R  mAP50
    mAP50-95)` over `all  128  929  0.701 …` — one hit per row of numbers, its epoch from an `epoch` column. Where
    rows are labelled (a name in the first cell: `all`, then one row per class) only the first row under each
    header counts: the aggregate. No `name value` pair exists in such a log, so it is read only when the common
    forms find nothing."""
    needle = name.lower()
    if not _COLUMN_NAME.fullmatch(name) or needle not in text.lower():
        return []
    hits: list[_Hit] = []
    column: tuple[int, int | None, int] | None = None  # (the name's column, the epoch column, the number of columns)
    labelled = False  # a labelled row was read under this header already
    for i, line in enumerate(_ROWS.split(text)):
        cells = _header_cells(line)
        if len(cells) >= 3 and all(_COLUMN_NAME.fullmatch(t) for t in cells):
            low = [t.lower() for t in cells]
            column = (low.index(needle), low.index("epoch") if "epoch" in low else None, len(cells)) \
                if needle in low else None
            labelled = False
            continue
        toks = _BAR_TAIL.sub("", line).split()
        if column is None or len(toks) != column[2] or sum(bool(_NUM_CELL.fullmatch(t)) for t in toks) < len(toks) - 1:
            column = None if toks else column
            continue
        at, epoch_at, _n = column
        if not _NUM_CELL.fullmatch(toks[0]):
            if labelled:
                continue
            labelled = True
        epoch = int(toks[epoch_at]) if epoch_at is not None and toks[epoch_at].isdigit() else None
        hits.append(_Hit(i, -1, _to_float(toks[at]), toks[at], line.strip(), epoch=epoch))
    return hits[-MAX_CURVE_POINTS:]


_RULE = re.compile(r"^[ \t]*-{2,}(?:[ \t]+-{2,})+[ \t]*$")  # `---  ------  ----------`: a rule under a header


def _column_key(name: str) -> str:
    return re.sub(r"[\s_-]+", "_", name.strip().lower())


def _ruled_table_hits(text: str, name: str) -> list[_Hit]:
    """The column `name` of a table whose header sits over a rule of dashes, a run per column — spaCy's training
    table, `E    #       LOSS TEXTCAT  CATS_SCORE  SCORE` over `---  ------  ------------  ----------  ------`. A
    header's name may hold a space (`LOSS TEXTCAT`), so the rule's runs give the columns, not the words; a column
    is `name` when its header reads the same, case and `_` / space aside (`loss_textcat`). One hit per row of
    numbers, its epoch from an `E` or `epoch` column."""
    needle = _column_key(name)
    if not needle or needle.replace("_", " ") not in text.lower().replace("_", " ").replace("-", " "):
        return []
    lines = _ROWS.split(text)
    hits: list[_Hit] = []
    for r in range(1, len(lines)):
        if not _RULE.match(lines[r]):
            continue
        starts = [m.start() for m in re.finditer(r"-+", lines[r])]
        header = lines[r - 1]
        names = [_column_key(header[s:(starts[n + 1] if n + 1 < len(starts) else len(header))])
                 for n, s in enumerate(starts)]
        if needle not in names:
            continue
        at = names.index(needle)
        epoch_at = next((n for n, c in enumerate(names) if c in ("e", "epoch")), None)
        for i in range(r + 1, len(lines)):
            toks = lines[i].split()
            if len(toks) != len(starts) or not all(_NUM_CELL.fullmatch(t) for t in toks):
                break
            epoch = int(toks[epoch_at]) if epoch_at is not None and toks[epoch_at].isdigit() else None
            hits.append(_Hit(i, -1, _to_float(toks[at]), toks[at], lines[i].strip(), epoch=epoch))
    return hits[-MAX_CURVE_POINTS:]


_PIPE_RULE = re.compile(r":?-{2,}:?")


def _pipe_cells(line: str) -> list[str] | None:
    """The cells of a Markdown table's line (`| AP | AP50 |`), None for a line that is not one."""
    row = line.strip()
    if len(row) < 3 or not (row.startswith("|") and row.endswith("|")):
        return None
    return [c.strip() for c in row[1:-1].split("|")]


def _pipe_tables(lines: Sequence[str], indices: Iterable[int]) -> Iterator[tuple[list[str], int, list[str]]]:
    """(header, line index, cells) for each row of numbers of each Markdown table whose rule (`|:------:|`) is among
    `indices`: Detectron2's `|   AP   |  AP50  | …` over the rule and `| 40.215 | 61.012 | …`. Rows that hold
    names (its per-category tables, `| category | AP | …`) are no values and are left out."""
    for r in indices:
        rule = _pipe_cells(lines[r]) if r > 0 else None
        if not rule or not all(_PIPE_RULE.fullmatch(c) for c in rule):
            continue
        header = _pipe_cells(lines[r - 1]) or []
        if len(header) != len(rule):
            continue
        for i in range(r + 1, len(lines)):
            cells = _pipe_cells(lines[i])
            if cells is None or len(cells) != len(header):
                break
            if all(_NUM_CELL.fullmatch(c) for c in cells):
                yield header, i, cells


def _pipe_table_hits(text: str, name: str) -> list[_Hit]:
    """The column `name` of a Markdown table (`_pipe_tables`), one hit per row of numbers."""
    needle = name.lower()
    if needle not in text.lower() or "|" not in text:
        return []
    lines = _ROWS.split(text)
    hits: list[_Hit] = []
    for header, i, cells in _pipe_tables(lines, range(len(lines))):
        low = [c.lower() for c in header]
        if needle in low:
            at = low.index(needle)
            hits.append(_Hit(i, -1, _to_float(cells[at]), cells[at], lines[i].strip()))
    return hits[-MAX_CURVE_POINTS:]


def _regex_hits(text: str, regex: str) -> list[_Hit]:
    """Every match of a configured regex (group 1 is the value), thinned to MAX_CURVE_POINTS."""
    pat = _user_re(regex)
    if pat.groups < 1:
        return []
    matches = [m for m in pat.finditer(text) if m.group(1) is not None]
    return _hits_from(text, text, matches, 1, "\r" in text)


def _similar_names(text: str, name: str) -> list[str]:
    """Printed names that contain `name` (`test_acc`, `accuracy` for `acc`): a hint when the metric is missing."""
    needle = name.lower()
    found: list[str] = []
    for line in text.splitlines()[-5000:]:
        if needle not in line.lower():
            continue
        for m in _CAND_RE.finditer(line):
            n = m.group("name")
            if needle in n.lower() and n not in found:
                found.append(n)
    return found[-3:]


def _reading(name: str, hits: list[_Hit], regex: str | None, text: str | None = None) -> MetricReading:
    if not hits:
        if regex:
            how = f" (regex {regex!r} did not match)"
        else:
            similar = _similar_names(text, name) if text else []
            how = f" (seen: {', '.join(similar)})" if similar else ""
            proposal = propose_regex(text, name) if text else None
            if proposal is not None:
                regex_line, proposed = proposal
                how += (f" in a form nightlab reads; the line {regex_line[:120]!r} holds it: set metric.regex = "
                        f"{proposed!r}")
        return MetricReading(None, [], f"metric {name!r} never printed{how}", None)
    last = hits[-1]
    hits = _last_redraws(hits)
    if regex is None and text is not None:
        hits = _same_kind(hits, text)
    steps = _assign_steps([(h.epoch, h.step) for h in hits])
    curve = [(s, h.value) for s, h in zip(steps, hits, strict=True) if h.value is not None and math.isfinite(h.value)]
    if last.value is None:
        return MetricReading(None, curve, f"metric {name!r} is not a number: {last.text!r}", last.raw)
    if not math.isfinite(last.value):
        return MetricReading(None, curve, f"metric {name!r} is {_fmt_nonfinite(last.value)}", last.raw)
    return MetricReading(last.value, curve, None, last.raw)


# --- proposing a regex ------------------------------------------------------------------------------------------

# a value starts where no name does: not the 32 of `np.float32(`, the 50 of `AP50` or the 1 of `dataloader_idx_1`
_VALUE_RE = re.compile(rf"(?<![\w.])(?:{_NUM}|{_NONFINITE})(?![\w.(])")


def propose_regex(text: str, name: str) -> tuple[str, str] | None:
    """(line, regex) for a metric the common forms miss: built from the last line that mentions the name (any case;
    spaces, `_` and `-` alike; a whole word, so `acc` is not read out of `test_acc` or `accuracy`) with a number
    after it. The value is the first number after the first `:` or `=`
    that follows the name, else the first number after the name; numbers in between (`on the 540 test images`)
    become `\\d+`. None when no line qualifies or the regex would not read the same value back."""
    words = [w for w in re.split(r"[\s_\-]+", name.strip()) if w]
    if not words:
        return None
    # whole words as the common forms count them: `loss` is not read out of `train/loss` nor `val.loss`
    name_pat = re.compile(r"(?<![\w./-])" + r"[\s_\-]*".join(re.escape(w) for w in words) + r"(?![\w/-])", re.I)
    for line in reversed(_plain(text).splitlines()[-5000:]):
        if len(line) > 400:
            continue
        m = name_pat.search(line)
        if m is None:
            continue
        rest = line[m.end():]
        sep = re.search(r"[:=]", rest)
        value = _VALUE_RE.search(rest, sep.end() if sep else 0)
        if value is None:
            continue
        between = rest[: value.start()]
        gap = "".join(r"\d+" if part.isdigit() else r"\s+" if part.isspace() else re.escape(part)
                      for part in re.findall(r"\d+|\s+|[^\d\s]+", between))
        regex = "(?i)" + name_pat.pattern + gap + r"([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?|nan|inf)"
        want = _to_float(value.group(0))
        got = parse_metric(text, name, regex).value
        if want is not None and got is not None and got == want:
            return line.strip(), regex
        return None
    return None


# --- public API: the metric -------------------------------------------------------------------------------------


def parse_metric(text: str, name: str, regex: str | None = None) -> MetricReading:
    """Read metric `name` from a job's output: by `regex` (group 1 is the value) when configured, else by the
    common forms. The last occurrence is the value; all finite occurrences, with steps, are the curve."""
    text = _plain(text)
    hits = _regex_hits(text, regex) if regex else \
        _name_hits(text, name) or _table_hits(text, name) or _ruled_table_hits(text, name) \
        or _pipe_table_hits(text, name)
    return _reading(name, hits, regex, text)


def parse_named_curve(text: str, name: str) -> list[tuple[int, float]]:
    """Every printed value of `name` as (step, value), non-finite values kept: diagnosis needs to see the NaN."""
    text = _plain(text)
    hits = _last_redraws(_name_hits(text, name)) or _table_hits(text, name) or _ruled_table_hits(text, name) \
        or _pipe_table_hits(text, name)
    steps = _assign_steps([(h.epoch, h.step) for h in hits])
    return [(s, h.value) for s, h in zip(steps, hits, strict=True) if h.value is not None]


METRICS_FILE_LIMIT = 64 << 20


def parse_metrics_file(path: Path, name: str, root: Path | None = None) -> MetricReading:
    """Read metric `name` from a file the job wrote: one JSON document (`{"acc": 0.9}`, `{"acc": [..curve..]}`, a
    list of records), JSON lines, a CSV with a `name` column, or `name=value` lines. A missing file is a failure
    like a missing print.

    The job wrote it, so it is read as a regular file only, never through a link (with `root`, the worktree, no
    folder on the way may be a link either), and at most 64 MB of it (head and tail)."""
    from nightlab.sandbox import safeio

    path = Path(path)
    try:
        fd = safeio.open_beneath(root, path.relative_to(root)) if root is not None else safeio.open_regular(path)
        text = safeio.read_head_tail_fd(fd, METRICS_FILE_LIMIT).decode("utf-8", "replace")
    except FileNotFoundError:
        return MetricReading(None, [], f"metric {name!r}: metrics file {path} was not written", None)
    except OSError as e:
        return MetricReading(None, [], f"metric {name!r}: metrics file {path} unreadable: {e.strerror or e}", None)
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None  # JSON lines, or not JSON at all: the text forms below handle both
        if data is not None:
            reading = _from_json(data, name)
            if reading is not None:
                return reading
    reading = _from_csv(text, name)
    if reading is not None:
        return reading
    return parse_metric(text, name)


_STEP_COLUMNS = ("step", "global_step", "iter", "iteration")


def _from_csv(text: str, name: str) -> MetricReading | None:
    """A CSV file with a header naming `name` as a column: Keras' CSVLogger (`epoch,accuracy,loss,val_accuracy,
    val_loss`), PyTorch Lightning's CSVLogger (`metrics.csv`, where the validation columns are empty on training
    rows). The column is the curve and its last value the metric; None when the header has no such column."""
    head, _, _ = text.partition("\n")
    if "," not in head and "\t" not in head:
        return None
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter="\t" if "\t" in head and "," not in head else ","))
    except csv.Error:
        return None
    if len(rows) < 2:
        return None
    cols = [c.strip() for c in rows[0]]
    if name not in cols:
        return None
    at = cols.index(name)
    step_at = next((cols.index(c) for c in _STEP_COLUMNS if c in cols), None)
    epoch_at = cols.index("epoch") if "epoch" in cols else None
    hits: list[_Hit] = []
    for i, row in enumerate(rows[1:], 1):
        cell = row[at].strip() if at < len(row) else ""
        if not cell:
            continue

        def whole(j: int | None, row: list[str] = row) -> int | None:
            v = _to_float(row[j]) if j is not None and j < len(row) and row[j].strip() else None
            return int(v) if v is not None and math.isfinite(v) and v == int(v) else None

        hits.append(_Hit(i, -1, _to_float(cell), cell, f"{name}: {cell} (row {i})", whole(epoch_at), whole(step_at)))
    if not hits:
        return None
    return _reading(name, hits, None)


def _json_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        return _to_float(v)
    return None


def _json_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _from_json(data: Any, name: str) -> MetricReading | None:
    """A whole-file JSON document; None when it does not hold `name` at the top level (the caller falls back)."""
    hits: list[_Hit] = []
    if isinstance(data, dict) and name in data:
        v = data[name]
        if isinstance(v, list):
            for i, item in enumerate(v):
                hits.append(_Hit(i, -1, _json_number(item), str(item), f"{name}[{i}]: {item}", None, i))
        else:
            hits.append(_Hit(0, -1, _json_number(v), str(v), f"{name}: {v}"))
    elif isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        for i, rec in enumerate(data):
            if name in rec:
                step = rec.get("step", rec.get("global_step", rec.get("iter")))
                hits.append(_Hit(i, -1, _json_number(rec[name]), str(rec[name]), json.dumps(rec)[:200],
                                 _json_int(rec.get("epoch")), _json_int(step)))
    if not hits:
        return None
    return _reading(name, hits, None)


# --- public API: the training loss ------------------------------------------------------------------------------

# `loss` followed by a value, over lower-cased text; what precedes it (train_, val_, `Test set: Average`) is judged
# in Python, which is both faster and clearer than one pattern with every prefix in it
# Lightning's `self.log("train_loss", on_step=True, on_epoch=True)` prints `train_loss_step` and `train_loss_epoch`
_LOSS_RE = re.compile(rf"loss(?P<suffix>_step|_epoch)?{_AFTER}[\"']?{_SEP}{_VALUE}")
_TRAIN_PREFIXES = {
    "train": "train", "training": "train", "trn": "train", "running": "running", "avg": "avg", "average": "avg",
    "mean": "avg", "total": "total", "batch": "batch", "epoch": "epoch", "step": "step", "iter": "step",
}
_EVAL_WORDS = frozenset({"val", "valid", "validation", "test", "testing", "eval", "evaluation", "dev", "holdout"})
_EVAL_WORDS_RE = re.compile(r"(?<![a-z])(?:val|valid|validation|test|testing|eval|evaluation|dev|holdout)(?![a-z])")
_TRAIN_WORD_RE = re.compile(r"(?<![a-z])train(?:ing)?(?![a-z])")
_FIELD_SEP_RE = re.compile(r"[|,;\t{}\n\r]| - ")
_EVAL_TAG_RE = re.compile(r"\[(?:valid|validation|val|test|dev|eval)\]")  # fairseq-hydra's `[valid][INFO] - ...`


def _loss_key(low: str, s: int) -> str | None:
    """Which loss series the `loss` at offset `s` belongs to ("train", "", "avg", ...), or None when it is not the
    training loss: an evaluation loss (`val_loss`, `test loss`, `Test set: Average loss`) or a component or metric
    with its own name (`kl_loss`, `logloss`)."""
    k = s - 1 if s > 0 and low[s - 1] in " _/.-" else s
    w = k
    while w > 0 and "a" <= low[w - 1] <= "z":
        w -= 1
    word = low[w:k]
    joined = k == s or low[k] != " "
    start = s
    if word:
        if word in _EVAL_WORDS:
            return None
        if word in _TRAIN_PREFIXES:
            start = w
        elif joined:
            return None  # logloss, kl_loss, recon-loss
    if start > 0 and (low[start - 1].isalnum() or low[start - 1] in "_./-"):
        return None  # the name continues to the left: my_train_loss, top5_loss
    key = _TRAIN_PREFIXES.get(word, "") if start == w and word else ""
    lo = max(0, start - 400)  # bounded: never a scan back to the log's start per match
    line_start = max(low.rfind("\n", lo, start), low.rfind("\r", lo, start), lo - 1) + 1
    if "|" in low[line_start:start] and any(f.strip() in _EVAL_WORDS or _EVAL_TAG_RE.match(f.strip())
                                             for f in _FIELD_SEP_RE.split(low[line_start:start])):
        return None  # a line tagged as an evaluation's (fairseq's `| valid | epoch 003 | ... | loss 4.123 |`)
    if key != "train":
        # the words just before, within the same field, may say this is an evaluation loss
        seg = low[max(0, start - 120):start]
        if "val" in seg or "test" in seg or "dev" in seg or "holdout" in seg:  # cheap filter first
            field_text = _FIELD_SEP_RE.split(seg)[-1]
            if _EVAL_WORDS_RE.search(field_text) and not _TRAIN_WORD_RE.search(field_text):
                return None
    return key


def parse_loss_curve(text: str) -> list[tuple[int, float]]:
    """The training loss over the log as (step, value), non-finite values kept (they are what diagnosis looks for).

    Validation / test losses are ignored, both by name (`val_loss`, `eval loss`) and by context
    (`Test set: Average loss: 0.03`). When a log prints the training loss under two names (`loss` per step and
    `train_loss` per epoch), the name printed most often is the curve, so the two series are never interleaved.
    """
    text, low = _lowered(_plain(text))
    if "loss" not in low:
        return []
    groups: dict[str, list[re.Match[str]]] = {}
    for m in _LOSS_RE.finditer(low):
        key = _loss_key(low, m.start())
        if key is not None:  # the per-step and per-epoch series of one name are two series
            groups.setdefault(key + (m.group("suffix") or ""), []).append(m)
    if not groups:  # fastai's results table: its train_loss column
        table = _table_hits(text, "train_loss")
        return [(s, h.value) for s, h in zip(_assign_steps([(h.epoch, h.step) for h in table]), table, strict=True)
                if h.value is not None]
    order = {"train": 0, "": 1}
    matches = groups[max(groups, key=lambda k: (len(groups[k]), -order.get(k, 2)))]
    hits = _last_redraws(_hits_from(text, low, matches, "value", "\r" in text))
    steps = _assign_steps([(h.epoch, h.step) for h in hits])
    return [(s, h.value) for s, h in zip(steps, hits, strict=True) if h.value is not None]


# --- public API: goals and candidates ---------------------------------------------------------------------------

# the split a metric is measured on, written as a word of its own: nanoGPT's `train loss 1.97, val loss 2.07` names
# its metric `val loss` (a plain `loss` there is each iteration's minibatch loss)
_SPLIT_WORD = r"(?:(?i:val|valid|validation|test|eval|dev|train|training)\s(?=[A-Za-z]))?"

# a range that ends a name, `mAP@0.5:0.95 = 0.41` (COCO's AP over IoU 0.5 to 0.95): only where a value follows it
_RANGED_NAME = re.compile(r"(.*\d)[-:]\d*\.?\d+")  # a name that ends in a range of thresholds: `mAP50-95`
_RANGE_TAIL = r"(?::\d*\.?\d+(?=\s*[:=]\s*[-+]?\.?\d))?"
_CAND_RE = re.compile(
    rf"(?<!{_WORDISH})(?P<q>[\"']?)(?P<name>{_SPLIT_WORD}[A-Za-z][\w./@-]*{_RANGE_TAIL})(?P=q)"
    rf"(?:\s*(?P<sep>[:=])\s*|(?P<ws>\s*[│┃|]\s*|\s+))"
    rf"(?i:{_WRAPPED})[\"']?(?P<value>{_NUM}(?:{_RATIO})?|{_NONFINITE}){_AVERAGE}{_NOT_A_NAME}"
)
# a value at the very end of a line after `:` or `=`, for sentences such as `Accuracy of the network ...: 0.98`
_TAIL_VALUE_RE = re.compile(rf"(?P<sep>\s*[:=]\s*)(?P<value>{_NUM}|{_NONFINITE})\s*%?\s*\.?\s*$")
_TOKEN_SPLIT_RE = re.compile(r"[^a-z0-9]+")

_MAXIMIZE = frozenset({
    "acc", "accuracy", "f1", "auc", "auroc", "roc", "r2", "score", "precision", "recall", "map", "bleu", "rouge",
    "iou", "miou", "dice", "ndcg", "mrr", "psnr", "ssim", "top1", "top5", "kappa", "mcc", "corr", "spearman",
    "pearson", "reward", "return", "likelihood", "loglikelihood", "elbo", "hit", "hits", "sharpe", "ap",
})
_MINIMIZE = frozenset({
    "loss", "error", "err", "bpc", "bpb", "ppl", "perplexity", "mse", "rmse", "mae", "mape", "nll", "wer", "cer",
    "logloss", "fid", "kl", "regret", "cost", "ece", "brier", "xent", "crossentropy", "entropy",
})
# counters, clocks and knobs: printed as numbers, never a metric
_NOT_METRICS = frozenset({
    "time", "elapsed", "epoch", "epochs", "step", "steps", "iter", "iters", "iteration", "iterations", "lr",
    "seed", "fold", "folds", "batch", "seconds", "sec", "secs", "s", "ms", "duration", "eta", "it", "pid", "rank",
    "version", "took", "wd", "momentum", "size", "workers", "threads", "gpu", "mem", "memory", "rss", "port", "speed",
    "throughput", "samples", "tokens", "params", "parameters", "usage", "timestamp", "date", "warmup", "patience",
    "dropout", "hidden", "layers", "dim", "images", "instances", "examples", "count", "num",
})
# whole names only (`total_loss` is a metric): CatBoost's clocks, `total: 500ms  remaining: 1s`
_NOT_METRIC_NAMES = frozenset({"learning_rate", "learning-rate", "weight_decay", "batch_size", "total", "remaining"})
_EVAL_PREFIXES = frozenset({
    "test", "val", "valid", "validation", "eval", "evaluation", "cv", "holdout", "dev", "final", "best", "oof",
})
_TRAIN_TOKENS = frozenset({"train", "training", "trn", "running", "batch", "learn"})  # `learn`: CatBoost's
# an evaluation set by its index (XGBoost's `validation_0-rmse`, `validation_1-rmse` for `eval_set=[train, valid]`)
_EVAL_SET = re.compile(r"(?P<word>[A-Za-z]+)_(?P<index>\d+)(?P<rest>[-_:.].+)")
# a long log is scanned at its head and tail only: the final metric is printed at the end
_CAND_HEAD, _CAND_TAIL = 2_000, 30_000


def _tokens(name: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT_RE.split(name.lower()) if t]


def _token_goal(tok: str) -> Literal["maximize", "minimize"] | None:
    if tok not in _MAXIMIZE | _MINIMIZE and tok[-1:].isdigit() and tok.rstrip("0123456789") in _MAXIMIZE:
        tok = tok.rstrip("0123456789")  # at a threshold or a cut: `mAP50`, `AP75`, `bleu4`, `ndcg10`, `hits10`
    if tok in _MAXIMIZE:
        return "maximize"
    if tok in _MINIMIZE:
        return "minimize"
    if tok.endswith(("loss", "error", "err")) or tok.startswith(("mse", "rmse", "mae", "ppl")):
        return "minimize"
    if tok.startswith(("acc", "top1", "top5")) or tok.endswith(("acc", "accuracy", "score", "auc", "f1")):
        return "maximize"
    return None


def guess_goal(name: str) -> Literal["maximize", "minimize"] | None:
    """Whether a metric named like this is maximised or minimised; None if the name does not say.

    The last telling token decides (`loss_acc` → maximize); `neg_` flips it, as in sklearn's `neg_mean_squared_error`
    (maximize) and `neg_log_likelihood` (minimize).
    """
    toks = _tokens(name)
    for i in range(len(toks) - 1, -1, -1):
        goal = _token_goal(toks[i])
        if goal is None:
            continue
        if any(t in ("neg", "negative") for t in toks[:i]):
            return "minimize" if goal == "maximize" else "maximize"
        return goal
    return None


def _is_metric_like(toks: list[str]) -> bool:
    return any(_token_goal(t) is not None for t in toks)


def _excluded(name: str, toks: list[str]) -> bool:
    return not toks or name.lower() in _NOT_METRIC_NAMES or any(t in _NOT_METRICS for t in toks)


def _sentence_candidate(line: str) -> tuple[str, str, int, str] | None:
    """(name, value text, value offset, regex) for a line that ends in a value after prose naming a metric."""
    if len(line) > 300:
        return None
    m = _TAIL_VALUE_RE.search(line)
    if m is None:
        return None
    words = line[: m.start()].split()
    prose = [w for w in words if w.isalpha()]
    if len(prose) < 3:
        return None  # `[1, 10] loss: 0.4` and `INFO test_acc: 0.3` are plain name: value forms
    metric_words = [w for w in words[:-1] if _is_metric_like(_tokens(w)) and not _excluded(w, _tokens(w))]
    if not metric_words:
        return None
    name = re.sub(r"[^\w./-]", "", metric_words[0]) or metric_words[0]
    tail = [re.sub(r"\\d+|\d+", r"\\d+", re.escape(w)) for w in words[-2:]]
    regex = r"\s+".join(tail) + re.escape(m.group("sep").strip()) + r"\s*([0-9.eE+-]+|nan|inf)"
    return name, m.group("value"), m.start("value"), regex


def find_candidates(text: str) -> list[Candidate]:
    """Every numeric name → value pair in a log, best metric candidate first.

    Ranking (a heuristic for "this is the final metric"): metric-like names (acc, loss, f1, bpc, ...), held-out
    prefixes (test_/val_/eval_/cv_), printed few times and near the end rank first; train_* ranks low; counters and
    clocks (time, elapsed, epoch, step, lr, ...) are never candidates. A bare `name value` pair (no `:` or `=`) only
    counts when the name looks like a metric or an identifier, so prose like `the 1000` is not a candidate; prose
    that ends in a value (`Accuracy of ... images: 0.98`) gives one "sentence" candidate with a regex.
    Logs over 32k lines are scanned at the head (2k) and tail (30k); counts add a plain substring count of the
    middle, so they are approximate there.
    """
    lines = _plain(text).splitlines()
    n = len(lines)
    skipped: tuple[int, int] | None = None
    indices: Sequence[int] = range(n)  # the lines read (a long log's head and tail), read once per form below
    if n > _CAND_HEAD + _CAND_TAIL:
        skipped = (_CAND_HEAD, n - _CAND_TAIL)
        indices = [*range(_CAND_HEAD), *range(n - _CAND_TAIL, n)]
    seen: dict[str, Candidate] = {}
    col: dict[str, int] = {}

    def add(name: str, value: float, i: int, form: str, at: int, regex: str | None = None) -> None:
        c = seen.get(name)
        if c is None:
            seen[name] = Candidate(name, value, 1, i, form, regex)
            col[name] = at
            return
        if c.last_line_index != i:
            col[name] = at
        c.value, c.count, c.last_line_index, c.form = value, c.count + 1, i, form
        c.regex = regex or c.regex

    for i in indices:
        line = lines[i]
        if not any(ch.isdigit() for ch in line):
            continue
        sentence = _sentence_candidate(line)
        sentence_at = -1
        if sentence is not None:
            sname, svalue, sentence_at, sregex = sentence
            sv = _to_float(svalue)
            if sv is not None:
                add(sname, sv, i, "sentence", sentence_at, sregex)
        for m in _CAND_RE.finditer(line):
            name = m.group("name").rstrip("./-")
            toks = _tokens(name)
            if _excluded(name, toks):
                continue
            metric_like = _is_metric_like(toks)
            if m.start("value") == sentence_at and not metric_like:
                continue  # `images: 0.98` is the tail of the sentence already taken
            if m.group("q"):
                form = "json"
            elif m.group("sep") == "=":
                form = "name=value"
            elif m.group("sep") == ":":
                form = "name: value"
            else:
                form = "name value"
                if not metric_like and not re.search(r"[_/-]", name):
                    continue
            value = _to_float(m.group("avg") or m.group("value"))
            if value is not None:
                add(name, value, i, form, m.start())
    header: list[str] = []
    labelled = False
    for i in indices:
        cells = _header_cells(lines[i])  # a results table (fastai's, Ultralytics'): a header of names over rows
        toks = _BAR_TAIL.sub("", lines[i]).split()  # of as many values (`_table_hits`)
        if len(cells) >= 3 and all(_COLUMN_NAME.fullmatch(t) for t in cells):
            header, labelled = cells, False
        elif header and len(toks) == len(header) and not (labelled and not _NUM_CELL.fullmatch(toks[0])) \
                and sum(bool(_NUM_CELL.fullmatch(t)) for t in toks) >= len(toks) - 1:
            labelled = labelled or not _NUM_CELL.fullmatch(toks[0])
            for at, (name, cell) in enumerate(zip(header, toks, strict=True)):
                value = _to_float(cell) if _NUM_CELL.fullmatch(cell) else None
                known = seen.get(name)
                if value is not None and not _excluded(name, _tokens(name)) \
                        and (known is None or known.form == "table"):
                    add(name, value, i, "table", at)
        elif toks:
            header = []
    for header, j, row in _pipe_tables(lines, indices):  # a Markdown table's columns (Detectron2's `| AP |`)
        if not all(_COLUMN_NAME.fullmatch(c) for c in header):
            continue
        for at, (name, cell) in enumerate(zip(header, row, strict=True)):
            value = _to_float(cell)
            known = seen.get(name)
            if value is not None and not _excluded(name, _tokens(name)) and (known is None or known.form == "table"):
                add(name, value, j, "table", at)
    if skipped is not None:
        middle = "\n".join(lines[skipped[0]:skipped[1]])
        for c in seen.values():
            if c.form != "sentence":
                c.count += middle.count(c.name)
    last_line = max(n - 1, 1)

    def ranged(c: Candidate) -> bool:
        """`mAP50-95` beside `mAP50`, `mAP@0.5:0.95` beside `mAP@0.5`: the average over a range of thresholds, the
        headline figure (COCO's AP, what Ultralytics picks its best weights by) where the log prints both."""
        m = _RANGED_NAME.fullmatch(c.name)
        return m is not None and m.group(1) in seen

    last_sets: dict[tuple[str, str], int] = {}  # (set's word, metric) -> the highest set index printed
    for name in seen:
        es = _EVAL_SET.fullmatch(name)
        if es is not None and es["word"].lower() in _EVAL_PREFIXES:
            key = (es["word"].lower(), es["rest"])
            last_sets[key] = max(last_sets.get(key, 0), int(es["index"]))

    def later_set(c: Candidate) -> bool:
        """Of `validation_0-rmse` and `validation_1-rmse`, the last: XGBoost stops early on its last evaluation
        set, and `eval_set=[(X_train, y_train), (X_val, y_val)]` puts the held-out one there."""
        m = _EVAL_SET.fullmatch(c.name)
        return m is not None and last_sets.get((m["word"].lower(), m["rest"]), 0) > 0 and \
            int(m["index"]) == last_sets[(m["word"].lower(), m["rest"])]

    def score(c: Candidate) -> float:
        toks = _tokens(c.name)
        s = 0.0
        if _is_metric_like(toks):
            s += 4
        if later_set(c):
            s += 0.5
        # `test: 0.4` beside `learn: 0.3` (CatBoost's per-iteration line): the evaluation set's value by its name
        if any(t in _EVAL_PREFIXES for t in toks[:-1]) or (len(toks) == 1 and toks[0] in _EVAL_PREFIXES) or \
                (c.form == "sentence" and c.regex and any(
                w in c.regex.lower() for w in ("test", "val", "eval"))):
            s += 3
        if any(t in _TRAIN_TOKENS for t in toks):
            s -= 3
        s += 2 if c.count == 1 else (1 if c.count <= 3 else 0)
        s += 2 * c.last_line_index / last_line
        if n - c.last_line_index <= 5:
            s += 1
        if not math.isfinite(c.value):
            s -= 0.5
        if ranged(c):
            s += 0.5
        return s

    return sorted(seen.values(), key=lambda c: (-score(c), -c.last_line_index, col.get(c.name, 0)))
