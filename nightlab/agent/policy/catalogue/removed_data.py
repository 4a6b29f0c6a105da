"""A dataset the installed library no longer ships: scikit-learn's `load_boston` (removed in 1.2), `fetch_mldata`
(removed in 0.22, its server is gone), torchtext's legacy datasets.

Unlike a renamed API there is no equivalent call to write: another dataset (California housing for Boston) is
another task, and the metric measured on it cannot be compared with the baseline's, so no policy may make that
switch (it would move the number without making the model any better). The entry's work is to say so, name the
line, and give the two ways past it: run the job in an environment that still ships the dataset (scikit-learn
< 1.2), or change the dataset yourself and start a new session, whose baseline is measured on it.
"""

from __future__ import annotations

from collections.abc import Iterator

from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms

__all__ = ["recognise_removed_dataset", "repair_removed_dataset"]

# (pattern, what was removed, where the job would still find it)
_REMOVED = (
    (r"cannot import name 'load_boston' from 'sklearn\.datasets'|load_boston\b.*has been removed",
     "scikit-learn 1.2 removed the Boston housing dataset (load_boston)", "scikit-learn<1.2"),
    (r"cannot import name 'fetch_mldata' from 'sklearn\.datasets'",
     "scikit-learn 0.22 removed fetch_mldata (mldata.org is gone; fetch_openml serves other copies)",
     "scikit-learn<0.22 and a cached copy of the data"),
    (r"No module named 'torchtext\.legacy'|cannot import name '\w+' from 'torchtext\.legacy",
     "torchtext 0.12 removed its legacy datasets and fields (torchtext.legacy)", "torchtext<0.12"),
)


def recognise_removed_dataset(sym: Symptoms) -> Match | None:
    for pattern, what, pin in _REMOVED:
        if sym.says(pattern) is not None:
            return Match(f"{what}: the dataset itself is gone from the installed library", {"pin": pin})
    return None


def repair_removed_dataset(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    fr = site.frames[-1] if site.frames else None
    where = f" (at {fr.path}:{fr.line}{': ' + fr.code if fr.code else ''})" if fr else ""
    yield NoFix(f"{match.diagnosis}{where}. Another dataset would be another task whose metric cannot be compared "
                f"with the baseline's, so nightlab does not switch it: run the job where {match.facts['pin']} is "
                "installed, or replace the dataset yourself and start a new session (its baseline is measured on the "
                "new data). This branch is stopped")
