"""Comparing two experiments seed by seed: the noise of a same-seed difference, not of a seed.

The noise floor is the spread of one configuration across seeds. Much of that spread is the seed itself — the
initialisation and the order of the batches — and two configurations run with the same seed share it: on nanoGPT
(shakespeare_char, CPU config), raising `min_lr` moved val loss by −0.0119, −0.0137, −0.0142 at seeds 1337–1339,
while one configuration's runs spread by 0.0115 across the same seeds. Judged against the seed spread, that real
gain sits inside the noise; judged seed by seed, it is ten times the noise. Deterministic code with a fixed seed is
the extreme case: everything but the change is shared.

How much a change keeps of the seed's share differs: on the same nanoGPT runs a learning-rate change kept most of it
(same-seed differences spread 0.006) and a change of width or of the schedule's length almost none (0.014, 0.016).
So nothing here assumes it: `consistent` tests the per-seed gains against their own spread.

The engine runs a candidate at its parent's seed first and confirms it at the seed the best's own confirmation (or
the baseline's noise run) used, so the two almost always share seeds.

* `gains`: the per-seed gains of one experiment over another at the seeds both ran;
* `consistent`: at least two common seeds, every gain positive, and the mean gain a one-sided 90 % t-test away from
  zero given the gains' own spread — for two seeds, the two gains agree within about a third of their mean.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

__all__ = ["consistent", "gains"]

# one-sided 90 % quantiles of Student's t by degrees of freedom (n − 1 for n seeds)
_T90 = {1: 3.078, 2: 1.886, 3: 1.638, 4: 1.533, 5: 1.476, 6: 1.440, 7: 1.415, 8: 1.397, 9: 1.383}


def gains(mine: Mapping[int, float], best: Mapping[int, float], sign: float) -> list[float]:
    """sign × (mine − best) at every seed both were run with, in seed order (positive = better)."""
    return [sign * (mine[s] - best[s]) for s in sorted(set(mine) & set(best))]


def consistent(values: Sequence[float], floor: float = 0.0) -> bool:
    """Whether per-seed gains show a real improvement: two or more, all positive, their mean above `floor` and
    significant against their own spread (one-sided t-test at 90 %)."""
    if len(values) < 2 or min(values) <= 0:
        return False
    mean = statistics.fmean(values)
    sd = statistics.stdev(values)
    t = _T90.get(len(values) - 1, 1.282)
    return mean > floor and mean > t * sd / math.sqrt(len(values))
