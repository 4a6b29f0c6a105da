"""The report as Markdown with the PNGs beside it: for a pull request, an issue, a wiki or a chat that renders it."""

from __future__ import annotations

from nightlab import __version__
from nightlab.agent.report import wording as w
from nightlab.agent.report.facts import Facts, TreeNode


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def render(f: Facts, images: dict[str, bytes]) -> str:
    h = w.headline(f)
    lines = [f"# {f.root.name}: what happened in session {f.session.id}", "",
             f"`{f.root}` · metric **{f.metric}** ({w.goal_words(f.goal)}) · started {w.stamp(f.session.created)}",
             "", f"**{h.big}**", "", f"- {h.change}", f"- {h.runs}", f"- {h.compute}", f"- {h.state}", "",
             "## Waiting for you", ""]
    lines += [f"- {x.what}: `{x.command}`" for x in f.waiting] or ["Nothing."]
    if f.short:
        lines += ["", "Nothing ran in this session, so there is nothing to plot yet."]
    else:
        lines += _progress(f, images) + _curves(f, images) + _seeds(f, images) + _best(f) + _ranked(f) + \
            _tree(f) + _failures(f) + _decisions(f)
    lines += ["", "---", f"Written by nightlab {__version__} on {w.stamp(f.written)}; "
              f"`nightlab report {f.session.id}` writes it again.", ""]
    return "\n".join(lines)


def _progress(f: Facts, images: dict[str, bytes]) -> list[str]:
    return ["", "## Progress", "", "![every run's metric in launch order, the best so far and the noise band]"
            "(progress.png)", "", w.progress_caption(f)]


def _curves(f: Facts, images: dict[str, bytes]) -> list[str]:
    if "curves.png" not in images:
        return ["", "## Learning curves", "", "No run logged a curve (only a final metric was printed)."]
    return ["", "## Learning curves", "", "![learning curves of the best run, its parent and the baseline]"
            "(curves.png)", "", "The best run (solid), its parent (dashed) and the baseline (dotted)."]


def _seeds(f: Facts, images: dict[str, bytes]) -> list[str]:
    if "seeds.png" not in images:
        return []
    rows = [[f"#{g.exp.id}", g.exp.title, g.outcome.value, ", ".join(f"seed {s}: {w.num(v)}" for s, v in g.values),
             w.num(g.mean)] for g in f.seeds]
    return ["", "## Seeds", "", "![metric per seed](seeds.png)", "",
            *_table(["exp.", "hypothesis", "outcome", "seeds", "mean"], rows)]


def _best(f: Facts) -> list[str]:
    b = f.best_change
    if b is None:
        return ["", "## The best change", "", "No change beat the baseline, so there is nothing to promote."]
    e = b.exp
    action = "It is already on your branch (promoted)." if b.promoted else \
        f"Review it and commit it onto your branch with `nightlab promote {e.id}`."
    out = ["", f"## The best change: #{e.id} {e.title}", ""]
    if e.rationale:
        out += [e.rationale, ""]
    out += [f"{b.stat}. {action}" if b.stat else action, ""]
    if b.note:
        out += [f"_{b.note}_", ""]
    fence = "````" if "```" in b.diff else "```"
    return [*out, f"{fence}diff", (b.diff or "(empty diff)").rstrip("\n"), fence]


def _ranked(f: Facts) -> list[str]:
    rows = []
    for rank, r in enumerate(f.standing.ranked, 1):
        mark = " ★" if r["id"] == f.standing.best_id else ""
        fail = f" [{r['failure_class']}]" if r.get("failure_class") else ""
        rows.append([str(rank), f"#{r['id']}{mark}", f.outcome(r["id"]).value, w.num(r["metric"]), str(r["runs"]),
                     w.signed(r["delta"]), r["title"] + fail])
    return ["", "## Ranked", "", *_table(["rank", "exp.", "outcome", f.metric, "runs", "vs baseline", "hypothesis"],
                                         rows)]


def _tree(f: Facts) -> list[str]:
    out = ["", "## Experiment tree", ""]

    def node(n: TreeNode, depth: int) -> None:
        vs = f", {w.signed(n.vs_parent)} vs parent" if n.vs_parent is not None else ""
        seeds = f" over {n.runs} seeds" if n.runs > 1 else ""
        note = f" — {n.note}" if n.note else ""
        score = f" ({w.num(n.score)}{seeds}{vs})" if n.score is not None else ""
        out.append(f"{'  ' * depth}- **{n.outcome.value}** #{n.exp.id} {n.exp.title}{score}{note}")
        for c in n.children:
            node(c, depth + 1)

    for n in f.tree:
        node(n, 0)
    return out


def _failures(f: Facts) -> list[str]:
    out = ["", "## Failures", ""]
    if not f.failures:
        return [*out, "No run failed."]
    for g in f.failures:
        out += [f"### {g.cls} ({len(g.runs)})", ""]
        for fr in g.runs:
            diag = " ".join((fr.exp.diagnosis or fr.exp.error or "").split())[:400]
            out.append(f"- #{fr.exp.id} {fr.exp.title} ({fr.exp.run_result}): {diag}")
            out += [f"  - fix #{x.exp.id} {x.exp.title}: **{x.outcome.value}** {x.note}".rstrip() for x in fr.fixes]
            if fr.given_up:
                out.append(f"  - {fr.given_up}")
            if not fr.fixes and not fr.given_up:
                out.append("  - no fix attempted")
        out.append("")
    return out


def _decisions(f: Facts) -> list[str]:
    out = ["", "## Decisions", ""]
    if not f.decisions:
        return [*out, "No decision was recorded."]
    rows = [[w.clock(d.t), f"#{d.exp_id}" if d.exp_id else "", d.label, d.reason] for d in f.decisions]
    return out + _table(["time", "exp.", "decision", "reason"], rows)
