"""The report as one self-contained HTML page: pictures embedded as data URIs, styles inline, no script, no network.

It opens from a mail attachment or a chat upload as it does from disk, and prints on A4 without losing a section.
"""

from __future__ import annotations

import base64
from html import escape

from nightlab import __version__
from nightlab.agent.report import wording as w
from nightlab.agent.report.diffhtml import diff_html
from nightlab.agent.report.facts import Facts, TreeNode
from nightlab.agent.report.outcomes import LOOKS, Outcome

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1a1a1a;
       max-width: 1000px; margin: 24px auto; padding: 0 16px; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin: 0 0 16px; }
.headline { border: 2px solid #0072B2; border-radius: 6px; padding: 12px 16px; }
.big { font-size: 26px; font-weight: 700; }
.headline p { margin: 4px 0; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 13px; }
code { background: #f2f2f2; padding: 1px 4px; border-radius: 3px; }
pre.diff, div.diff pre { padding: 8px; overflow-x: auto; white-space: pre-wrap; border: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #e5e5e5; vertical-align: top; }
th { background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
.tree, .tree ul { list-style: none; padding-left: 18px; margin: 2px 0; } .tree { padding-left: 0; }
.tree li { margin: 2px 0; } .note { color: #555; }
.tag { display: inline-block; min-width: 76px; font-size: 12px; font-weight: 600; padding: 0 4px;
       border: 1px solid; border-radius: 3px; text-align: center; }
.waiting li { margin: 4px 0; }
@media print { body { margin: 0; max-width: none; } section { break-inside: avoid-page; }
               .headline { border-width: 1px; } }
"""


def render(f: Facts, images: dict[str, bytes]) -> str:
    parts = [_head(f), _headline(f), _waiting(f)]
    if f.short:
        parts.append("<section><p>Nothing ran in this session, so there is nothing to plot yet.</p></section>")
    else:
        parts += [_progress(f, images), _curves(f, images), _seeds(f, images), _best_change(f), _ranked(f),
                  _tree(f), _failures(f), _decisions(f)]
    parts.append(f'<footer class="sub"><p>Written by nightlab {escape(__version__)} on {w.stamp(f.written)}. '
                 f"<code>nightlab report {f.session.id}</code> writes it again.</p></footer></body></html>")
    return "\n".join(p for p in parts if p)


def _img(images: dict[str, bytes], name: str, alt: str) -> str:
    data = base64.b64encode(images[name]).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def _tag(o: Outcome) -> str:
    look = LOOKS[o]
    return f'<span class="tag" style="color:{look.color};border-color:{look.color}">{escape(o.value)}</span>'


def _head(f: Facts) -> str:
    title = f"nightlab report: {f.root.name}, session {f.session.id}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body>"
            f"<h1>{escape(f.root.name)}: what happened in session {f.session.id}</h1>"
            f'<p class="sub">{escape(str(f.root))} · metric <b>{escape(f.metric)}</b> '
            f"({escape(w.goal_words(f.goal))}) · started {w.stamp(f.session.created)}</p>")


def _headline(f: Facts) -> str:
    h = w.headline(f)
    return (f'<section class="headline" id="headline"><div class="big">{escape(h.big)}</div>'
            f"<p>{escape(h.change)}</p><p>{escape(h.runs)}</p><p>{escape(h.compute)}</p>"
            f"<p>{escape(h.state)}</p></section>")


def _waiting(f: Facts) -> str:
    if not f.waiting:
        return '<section id="waiting"><h2>Waiting for you</h2><p>Nothing.</p></section>'
    items = "".join(f"<li>{escape(x.what)}: <code>{escape(x.command)}</code></li>" for x in f.waiting)
    return f'<section id="waiting"><h2>Waiting for you</h2><ul class="waiting">{items}</ul></section>'


def _progress(f: Facts, images: dict[str, bytes]) -> str:
    st = f.standing
    alt = (f"Progress: {len(f.runs)} runs in launch order; baseline {w.num(st.baseline)}, best "
           f"{w.num(st.best)} (#{st.best_id}); noise floor {w.spread(st.noise_floor)}")
    rows = "".join(
        f'<tr><td class="n">{r.index}</td><td class="n">#{r.exp.id}</td><td class="n">{r.exp.seed}</td>'
        f'<td class="n">{w.num(r.metric)}</td><td>{_tag(r.outcome)}</td><td>{escape(r.exp.title)}</td></tr>'
        for r in f.runs)
    return (f'<section id="progress"><h2>Progress</h2>{_img(images, "progress.png", alt)}'
            f'<p class="note">{escape(w.progress_caption(f))}</p>'
            f"<details><summary>the plotted runs</summary><table><tr><th>run</th><th>exp.</th><th>seed</th>"
            f"<th>{escape(f.metric)}</th><th>outcome</th><th>hypothesis</th></tr>{rows}</table></details>"
            "</section>")


def _curves(f: Facts, images: dict[str, bytes]) -> str:
    if "curves.png" not in images:
        return ('<section id="curves"><h2>Learning curves</h2><p>No run logged a curve (only a final metric was '
                "printed).</p></section>")
    who = ", ".join(f"#{c.exp.id} ({c.role})" for c in f.curves)
    return (f'<section id="curves"><h2>Learning curves</h2>'
            f"{_img(images, 'curves.png', f'Learning curves of {who}')}"
            '<p class="note">The best run (solid), its parent (dashed) and the baseline (dotted), each on the seed '
            "it first ran with.</p></section>")


def _seeds(f: Facts, images: dict[str, bytes]) -> str:
    if "seeds.png" not in images:
        return ""
    rows = "".join(
        f'<tr><td class="n">#{g.exp.id}</td><td>{escape(g.exp.title)}</td><td>{_tag(g.outcome)}</td>'
        f'<td>{", ".join(f"seed {s}: {w.num(v)}" for s, v in g.values)}</td><td class="n">{w.num(g.mean)}</td></tr>'
        for g in f.seeds)
    return (f'<section id="seeds"><h2>Seeds</h2>'
            f"{_img(images, 'seeds.png', 'Metric per seed of every experiment run on several seeds')}"
            f"<table><tr><th>exp.</th><th>hypothesis</th><th>outcome</th><th>seeds</th><th>mean</th></tr>{rows}"
            "</table></section>")


def _best_change(f: Facts) -> str:
    b = f.best_change
    if b is None:
        return ('<section id="best"><h2>The best change</h2><p>No change beat the baseline, so there is nothing to '
                "promote.</p></section>")
    e = b.exp
    action = ("It is already on your branch (promoted)." if b.promoted else
              f"Review it and commit it onto your branch with <code>nightlab promote {e.id}</code>.")
    note = f'<p class="note">{escape(b.note)}</p>' if b.note else ""
    why = f"<p>{escape(e.rationale)}</p>" if e.rationale else ""
    stat = escape(b.stat) + ". " if b.stat else ""
    return (f'<section id="best"><h2>The best change: #{e.id} {escape(e.title)}</h2>{why}'
            f"<p>{stat}{action}</p>{note}{diff_html(b.diff or '(empty diff)')}</section>")


def _ranked(f: Facts) -> str:
    rows = []
    for rank, r in enumerate(f.standing.ranked, 1):
        mark = " ★" if r["id"] == f.standing.best_id else ""
        fail = f" [{escape(r['failure_class'])}]" if r.get("failure_class") else ""
        rows.append(f'<tr><td class="n">{rank}</td><td class="n">#{r["id"]}{mark}</td>'
                    f"<td>{_tag(f.outcome(r['id']))}</td><td class=\"n\">{w.num(r['metric'])}</td>"
                    f'<td class="n">{r["runs"]}</td><td class="n">{w.signed(r["delta"])}</td>'
                    f"<td>{escape(r['title'])}{fail}</td></tr>")
    return (f'<section id="ranked"><h2>Ranked</h2><table><tr><th>rank</th><th>exp.</th><th>outcome</th>'
            f"<th>{escape(f.metric)}</th><th>runs</th><th>vs baseline</th><th>hypothesis</th></tr>{''.join(rows)}"
            "</table><p class=\"note\">The metric is the mean over an experiment's seeds; ★ marks the best.</p>"
            "</section>")


def _tree(f: Facts) -> str:
    def node(n: TreeNode) -> str:
        vs = f", {w.signed(n.vs_parent)} vs parent" if n.vs_parent is not None else ""
        seeds = f" over {n.runs} seeds" if n.runs > 1 else ""
        note = f'<br><span class="note">{escape(n.note)}</span>' if n.note else ""
        kids = "".join(node(c) for c in n.children)
        score = f' <span class="note">{w.num(n.score)}{seeds}{vs}</span>' if n.score is not None else ""
        return (f"<li>{_tag(n.outcome)} <b>#{n.exp.id}</b> {escape(n.exp.title)}{score}{note}"
                f"{f'<ul>{kids}</ul>' if kids else ''}</li>")

    return (f'<section id="tree"><h2>Experiment tree</h2><ul class="tree">{"".join(node(n) for n in f.tree)}'
            "</ul></section>")


def _failures(f: Facts) -> str:
    if not f.failures:
        return '<section id="failures"><h2>Failures</h2><p>No run failed.</p></section>'
    out = []
    for g in f.failures:
        items = []
        for fr in g.runs:
            fixes = "".join(f"<li>fix #{x.exp.id} {escape(x.exp.title)}: {_tag(x.outcome)} "
                            f'<span class="note">{escape(x.note)}</span></li>' for x in fr.fixes)
            if fr.given_up:
                fixes += f'<li class="note">{escape(fr.given_up)}</li>'
            if not fixes:
                fixes = '<li class="note">no fix attempted</li>'
            diag = escape(" ".join((fr.exp.diagnosis or fr.exp.error or "").split())[:400])
            items.append(f"<li><b>#{fr.exp.id}</b> {escape(fr.exp.title)} ({escape(fr.exp.run_result or '')})"
                         f'<br><span class="note">{diag}</span><ul>{fixes}</ul></li>')
        out.append(f"<h3>{escape(g.cls)} ({len(g.runs)})</h3><ul>{''.join(items)}</ul>")
    return f'<section id="failures"><h2>Failures</h2>{"".join(out)}</section>'


def _decisions(f: Facts) -> str:
    if not f.decisions:
        return '<section id="decisions"><h2>Decisions</h2><p>No decision was recorded.</p></section>'
    rows = "".join(f'<tr><td class="n">{w.clock(d.t)}</td><td class="n">{"#" + str(d.exp_id) if d.exp_id else ""}'
                   f"</td><td>{escape(d.label)}</td><td>{escape(d.reason)}</td></tr>" for d in f.decisions)
    return (f'<section id="decisions"><h2>Decisions</h2><table><tr><th>time</th><th>exp.</th><th>decision</th>'
            f"<th>reason</th></tr>{rows}</table></section>")
