"""Paired comparison of nightlab with each peer over seeds, for bench/search.py.

Seed s of every method trains with the same training seed s and starts from the same committed configuration, so
the natural unit is the pair (task, seed): d = gap closed by nightlab − gap closed by the peer. Per task this gives
the mean of d, how many seeds nightlab is ahead / tied / behind, an exact two-sided sign test over the seeds that
are not tied, and an exact two-sided Wilcoxon signed-rank test (zero differences dropped, tied magnitudes given
their average rank; exact by enumerating all 2^n sign patterns, which is instant for the 8 seeds this is run with).
Over all tasks it gives the share of task-seeds where nightlab is ahead of each peer.

Both tests are stdlib-only. With 8 seeds the smallest two-sided p either test can give is 2/256 = 0.0078, and a
sign test of 6 ahead, 2 behind gives p = 0.29: eight seeds separate only large, consistent differences.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Any

TIE = 1e-9  # gap differences smaller than this are ties (both at the baseline, or the same run)


def sign_test_p(ahead: int, behind: int) -> float | None:
    """Exact two-sided binomial p of `ahead` vs `behind` under p = 1/2 (ties already dropped); None when n = 0."""
    n = ahead + behind
    if n == 0:
        return None
    k = min(ahead, behind)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def wilcoxon_p(diffs: Iterable[float], exact_max: int = 20) -> float | None:
    """Two-sided Wilcoxon signed-rank p of paired differences: exact up to `exact_max` non-zero differences, the
    normal approximation beyond; None when every difference is zero."""
    d = [x for x in diffs if abs(x) > TIE]
    n = len(d)
    if n == 0:
        return None
    ranks = _ranks([abs(x) for x in d])
    w_plus = sum(r for r, x in zip(ranks, d, strict=True) if x > 0)
    total = sum(ranks)
    observed = abs(w_plus - total / 2)
    if n <= exact_max:
        extreme = sum(1 for signs in itertools.product((0, 1), repeat=n)
                      if abs(sum(r for r, s in zip(ranks, signs, strict=True) if s) - total / 2) >= observed - 1e-12)
        return extreme / 2 ** n
    var = sum(r * r for r in ranks) / 4
    z = observed / math.sqrt(var) if var else 0.0
    return math.erfc(z / math.sqrt(2))


def compare(results: Iterable[Any], methods: Sequence[str], ref: str = "nightlab") -> dict[str, Any]:
    """Per task and peer, and per peer over all tasks: `ref` against every other method on the seeds both ran.

    `results` are bench/search.py's ComboResults (anything with .task, .method, .seed, .gap, .error)."""
    gaps: dict[tuple[str, str], dict[int, float]] = {}
    for r in results:
        if r.error is None:
            gaps.setdefault((r.task, r.method), {})[r.seed] = float(r.gap)
    tasks = sorted({t for t, _ in gaps})
    rows: list[dict[str, Any]] = []
    overall: dict[str, dict[str, Any]] = {}
    if ref not in methods:
        return {"rows": rows, "overall": overall}
    for peer in (m for m in methods if m != ref):
        tot = {"task_seeds": 0, "ahead": 0, "tied": 0, "behind": 0}
        for task in tasks:
            mine, theirs = gaps.get((task, ref), {}), gaps.get((task, peer), {})
            seeds = sorted(set(mine) & set(theirs))
            if not seeds:
                continue
            diffs = [mine[s] - theirs[s] for s in seeds]
            ahead = sum(1 for x in diffs if x > TIE)
            behind = sum(1 for x in diffs if x < -TIE)
            tied = len(diffs) - ahead - behind
            rows.append({"task": task, "peer": peer, "seeds": len(seeds), "mean_diff": statistics.fmean(diffs),
                         "ahead": ahead, "tied": tied, "behind": behind, "sign_p": sign_test_p(ahead, behind),
                         "wilcoxon_p": wilcoxon_p(diffs), "diffs": diffs})
            tot["task_seeds"] += len(seeds)
            tot["ahead"] += ahead
            tot["tied"] += tied
            tot["behind"] += behind
        if tot["task_seeds"]:
            overall[peer] = {**tot, "share_ahead": tot["ahead"] / tot["task_seeds"]}
    return {"rows": rows, "overall": overall}


def _p(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}" if x >= 0.001 else "<0.001"


def markdown(paired: dict[str, Any], ref: str = "nightlab", goal_share: float = 0.8,
             goal_for: Callable[[str], bool] = lambda peer: True) -> list[str]:
    """The paired table and one line per peer: the share of task-seeds where `ref` is ahead, and whether that meets
    the goal for the peers `goal_for` holds it for (not for another version of `ref` itself)."""
    if not paired["rows"]:
        return []
    lines = [
        f"Paired over seeds (d = gap closed by {ref} − by the peer at the same seed; sign test and Wilcoxon "
        "signed-rank, exact, two-sided):", "",
        f"| task | peer | seeds | mean d | {ref} ahead / tied / behind | sign p | Wilcoxon p |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in paired["rows"]:
        lines.append(f"| {r['task']} | {r['peer']} | {r['seeds']} | {r['mean_diff']:+.3f} | "
                     f"{r['ahead']} / {r['tied']} / {r['behind']} | {_p(r['sign_p'])} | {_p(r['wilcoxon_p'])} |")
    lines.append("")
    for peer, o in paired["overall"].items():
        verdict = "meets" if o["share_ahead"] >= goal_share else "misses"
        goal = f"; {verdict} the {100 * goal_share:.0f} % goal" if goal_for(peer) else ""
        lines.append(f"{ref} ahead of {peer} on {o['ahead']} of {o['task_seeds']} task-seeds "
                     f"({100 * o['share_ahead']:.0f} %; tied {o['tied']}, behind {o['behind']}{goal}).")
    return lines
