"""A job that could not reach the network: a dataset or weights downloaded at run time.

Jobs run without network unless `sandbox.network` is on (and some machines have none at all), so no edit of the
training code can make the download work; the entry's work is to say so -- which host, which line -- and how to get
past it: fetch the files once outside nightlab (files the repository does not track are linked into every run), or
allow the network. The branch stops with that reason instead of trying fixes that cannot work.
"""

from __future__ import annotations

from collections.abc import Iterator

from nightlab.agent.policy.catalogue.entry import Fix, Match, NoFix, Site, Symptoms

__all__ = ["recognise_network", "repair_network"]


def recognise_network(sym: Symptoms) -> Match | None:
    if sym.cls != "network":
        return None
    m = sym.says(r"host='([^']+)'", r"https?://([A-Za-z0-9.\-]+)")
    host = m.group(1) if m else ""
    return Match(f"the job could not reach {host or 'the network'}: it downloads data or weights at run time",
                 {"host": host})


def repair_network(match: Match, site: Site) -> Iterator[Fix | NoFix]:
    fr = site.frames[-1] if site.frames else None
    where = f" (at {fr.path}:{fr.line}{': ' + fr.code if fr.code else ''})" if fr else ""
    host = match.facts.get("host") or "the network"
    yield NoFix(f"the job could not reach {host}{where}. Jobs run without network unless sandbox.network = true in "
                "nightlab.toml; or fetch the files once outside nightlab (run the download yourself in the "
                "repository: files it does not track are linked into every run). No code change can download them; "
                "this branch is stopped")
