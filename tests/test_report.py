"""The morning report: a real session through the engine (kept, discarded, refused, failed and fixed, re-run on a
second seed) writes HTML + Markdown + PNGs whose numbers are the store's; empty and crashed sessions get a short
report; the page renders in a real headless Chromium with every picture loaded."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nightlab.agent.config import NotifyConfig, load_config
from nightlab.agent.engine import Engine, EngineOptions, Summary
from nightlab.agent.metric_text import fmt_change, fmt_metric, fmt_noise
from nightlab.agent.policy.base import Edit, ExperimentView, PolicyBase, PolicyContext, Proposal
from nightlab.agent.report import ReportFiles, write_session_report
from nightlab.agent.report.outcomes import LOOKS, Outcome, experiment_outcome
from nightlab.agent.store import Experiment, Store

from helpers import TINY_TRAIN, git, make_repo, write_config

SECTIONS = ("headline", "waiting", "progress", "curves", "seeds", "best", "ranked", "tree", "failures", "decisions")
CRASH = "raise SystemExit('planted crash')\n"


class MorningPolicy(PolicyBase):
    """A night in miniature: a worse LR, a better one (confirmed on a second seed), the same change again from the
    baseline (refused as a repeat), a change that crashes, and a fix for it."""

    name = "scripted"

    def __init__(self) -> None:
        self.steps = ["0.01", "0.3", "0.3@base", "crash"]

    def propose(self, ctx: PolicyContext) -> Proposal | None:
        if not self.steps:
            return None
        step = self.steps.pop(0)
        parent = ctx.best_id
        if step == "crash":
            return Proposal(title="LR = 0.2 and a planted crash", rationale="a change whose script dies",
                            edits=[Edit("train.py", "LR = 0.3\nEPOCHS", f"LR = 0.2\n{CRASH}EPOCHS")], parent_id=parent)
        if step.endswith("@base"):
            step, parent = step[:-5], ctx.baseline_id
        line = next(ln for ln in ctx.read_file(parent, "train.py").splitlines() if ln.startswith("LR = "))
        return Proposal(title=f"LR = {step}", rationale="the learning rate is far from its best",
                        edits=[Edit("train.py", line, f"LR = {step}")], knobs={"LR": float(step)}, parent_id=parent)

    def fix(self, ctx: PolicyContext, failed: ExperimentView) -> Proposal | None:
        return Proposal(title="remove the planted crash", rationale="the script exits before training", kind="fix",
                        edits=[Edit("train.py", CRASH, "")], parent_id=failed.id)


@dataclass
class Night:
    root: Path
    summary: Summary
    report: ReportFiles | None
    store: Store
    inbox: Path

    @property
    def dir(self) -> Path:
        return self.root / ".nightlab" / "reports" / f"session-{self.summary.session_id}"


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Night:
    base = tmp_path_factory.mktemp("night")
    inbox = base / "inbox.txt"
    notifier = base / "notify.sh"
    notifier.write_text(f'#!/bin/sh\necho "$1" >> {inbox}\n')
    notifier.chmod(0o755)
    root = make_repo(base / "proj", {"train.py": TINY_TRAIN})
    write_config(root, notify=NotifyConfig(command=str(notifier)))
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "nightlab config")
    engine = Engine(root, load_config(root), options=EngineOptions(mode="autonomous", budget=9),
                    policy=MorningPolicy())
    summary = engine.run()
    return Night(root, summary, engine.report_files, engine.store, inbox)


def _png_ok(data: bytes) -> tuple[int, int]:
    """Decode a PNG fully; its size. Fails on a truncated or invalid file, and on a blank picture."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.verify()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.format == "PNG"
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 20, "a blank or nearly blank picture"
        return im.size


# ------------------------------------------------------------------------------------------------ the full report
def test_the_session_end_writes_a_report_with_every_section_and_valid_pictures(night: Night) -> None:
    assert night.report is not None and night.report.html == night.dir / "report.html"
    html = (night.dir / "report.html").read_text()
    md = (night.dir / "report.md").read_text()
    for section in SECTIONS:
        assert f'id="{section}"' in html, section
    for heading in ("## Waiting for you", "## Progress", "## Learning curves", "## Seeds", "## The best change",
                    "## Ranked", "## Experiment tree", "## Failures", "## Decisions"):
        assert heading in md, heading
    pictures = {p.name: p.read_bytes() for p in night.dir.glob("*.png")}
    assert set(pictures) == {"progress.png", "curves.png", "seeds.png"}
    for name, data in pictures.items():
        width, height = _png_ok(data)
        assert width >= 400 and height >= 250, name
        assert f"]({name})" in md  # the Markdown shows the picture beside it
    # the page carries the same pictures inside it, and nothing it would have to fetch
    embedded = [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]
    assert sorted(embedded) == sorted(pictures.values())
    assert "<script" not in html.lower() and not re.search(r'(src|href)="(https?:)?//', html)


def test_the_reports_numbers_are_the_stores(night: Night) -> None:
    store, s = night.store, night.summary
    exps = store.experiments()
    base = next(e for e in exps if e.kind == "baseline")
    base_runs = [e.metric for e in exps if e.id == base.id or e.rerun_of == base.id]
    assert s.baseline == pytest.approx(statistics.fmean([m for m in base_runs if m is not None]))
    assert s.best is not None and s.best_id is not None
    best = store.experiment(s.best_id)
    assert best.title == "LR = 0.3" and best.status == "kept"
    md = (night.dir / "report.md").read_text()
    html = (night.dir / "report.html").read_text()
    # the headline: baseline -> best, the change in absolute and relative terms, and against the noise floor
    noise = store.session(s.session_id).noise_floor
    assert noise is not None and noise > 0
    delta = s.best - s.baseline
    assert f"**acc {fmt_metric(s.baseline)} → {fmt_metric(s.best)}**" in md
    assert f"{fmt_change(delta)} (+{100 * delta / s.baseline:.3g} %)" in md
    assert f"{delta / noise:.1f}× the measured noise floor ({fmt_noise(noise)})" in md
    ran = [e for e in exps if e.run_result is not None]
    assert len(ran) == 7  # baseline + noise run, 0.01, 0.3 + its confirmation, the crash, its fix
    assert f"{len(ran)} run(s)" in md
    seconds = sum(e.seconds or 0.0 for e in ran)
    assert f"{seconds:.1f} s of training" in md
    # the ranked table: one row per experiment (seed re-runs fold into theirs), metric = the seed mean
    ranked = [ln for ln in md.split("## Ranked")[1].split("##")[0].splitlines() if re.match(r"\| \d+ \|", ln)]
    assert len(ranked) == len([e for e in exps if e.kind != "rerun"])
    assert ranked[0].startswith(f"| 1 | #{s.best_id} ★ | kept | {fmt_metric(s.best)} | 2 |")
    # every run is in the HTML's list of plotted points, in launch order
    progress = html.split('id="progress"')[1].split("</section>")[0]
    plotted = re.findall(r'<tr><td class="n">(\d+)</td><td class="n">#(\d+)</td>', progress)
    assert [int(i) for i, _ in plotted] == list(range(1, len(ran) + 1))
    assert {int(e) for _, e in plotted} == {e.id for e in ran}
    # failures grouped by class, with the fix that followed
    crash = next(e for e in exps if e.title.startswith("LR = 0.2"))
    fix = next(e for e in exps if e.parent_id == crash.id)
    failures = md.split("## Failures")[1].split("## Decisions")[0]
    assert f"### {crash.failure_class} (1)" in failures
    assert f"#{crash.id} LR = 0.2 and a planted crash (failed)" in failures
    assert f"fix #{fix.id} remove the planted crash: **{experiment_outcome(fix).value}**" in failures
    # each decision with its reason, as the engine recorded it
    decisions = md.split("## Decisions")[1]
    for label in ("noise measured", "discarded", "re-run to confirm", "kept", "refused: a repeat", "failed"):
        assert f"| {label} |" in decisions, label
    assert "no improvement" in decisions and "it repeats" in decisions
    # the best change against the user's branch, highlighted, with the command that promotes it
    assert f"nightlab promote {s.best_id}" in md and "+LR = 0.3" in md and "-LR = 0.05" in md
    assert f"nightlab promote {s.best_id}" in html
    assert 'background-color: #DCECF7">+LR = 0.3' in html  # highlighted by pygments, inline


def test_the_path_is_in_the_final_line_the_notification_and_status(night: Night) -> None:
    report = str(night.dir / "report.html")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (night.inbox.exists() and "report:" in night.inbox.read_text()):
        time.sleep(0.1)
    assert f"report: {report}" in night.inbox.read_text()
    events = [ev for ev in night.store.events(limit=-1) if ev["kind"] == "report"]
    assert [ev["message"] for ev in events] == [f"report: {report}"]
    status = subprocess.run([sys.executable, "-m", "nightlab", "status"], cwd=night.root, capture_output=True,
                            text=True, timeout=120)
    assert status.returncode == 0 and f"report: {report}" in status.stdout


def test_nightlab_report_writes_elsewhere_and_opens_it(night: Night, tmp_path: Path) -> None:
    seen = tmp_path / "browser.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {seen}\n')
    browser.chmod(0o755)
    out = tmp_path / "shared"
    p = subprocess.run([sys.executable, "-m", "nightlab", "report", str(night.summary.session_id), "-o", str(out),
                        "--open"], cwd=night.root, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "BROWSER": str(browser)})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == f"report: {out / 'report.html'}"
    assert sorted(x.name for x in out.iterdir()) == ["curves.png", "progress.png", "report.html", "report.md",
                                                    "seeds.png"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not seen.exists():
        time.sleep(0.1)
    assert seen.read_text().strip() == (out / "report.html").as_uri()
    bad = subprocess.run([sys.executable, "-m", "nightlab", "report", "99"], cwd=night.root, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and bad.stderr.strip() == "nightlab: no session 99 (sessions are 1–1)"


# ------------------------------------------------------------------------------------------------ short reports
def test_an_empty_session_gets_a_short_report(tiny_project: Path) -> None:
    engine = Engine(tiny_project, load_config(tiny_project), options=EngineOptions(mode="autonomous", budget=0),
                    policy=MorningPolicy())
    engine.run()
    assert engine.report_files is not None
    html = engine.report_files.html.read_text()
    md = engine.report_files.markdown.read_text()
    assert "Nothing ran in this session" in html and "Nothing ran in this session" in md
    assert "<img" not in html and not engine.report_files.images and not list(engine.report_files.dir.glob("*.png"))
    assert "acc: no result yet" in md and "nothing has run yet" in md


def test_a_crashed_session_gets_a_short_report_not_an_error(tiny_project: Path) -> None:
    """The engine was killed while the baseline ran: the session is still `active`, no engine holds the lock."""
    store = Store(tiny_project / ".nightlab" / "nightlab.db")
    session = store.create_session(str(tiny_project), "autonomous", "builtin", 5, None, "main")
    e = store.add_experiment(session_id=session.id, title="baseline: the code as committed", kind="baseline",
                             status="running")
    run_dir = tiny_project / ".nightlab" / "runs" / str(e.id)
    run_dir.mkdir(parents=True)
    store.add_job(e.id, str(run_dir), str(run_dir / "output.log"), "cpu0")
    p = subprocess.run([sys.executable, "-m", "nightlab", "report"], cwd=tiny_project, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    md = (tiny_project / ".nightlab" / "reports" / f"session-{session.id}" / "report.md").read_text()
    assert "stopped without finishing" in md and "`nightlab wake` resumes it" in md
    assert "1 still running" in md and "Nothing ran in this session" in md


def test_no_session_is_one_clear_line(tiny_project: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "nightlab", "report"], cwd=tiny_project, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.strip() == f"nightlab: {tiny_project}: no session to report on yet (run `nightlab run` first)"


# ------------------------------------------------------------------------------------------------ outcomes
def test_every_outcome_has_its_own_shape_and_colour() -> None:
    looks = [(look.marker, look.filled, look.color) for look in LOOKS.values()]
    assert len(set(looks)) == len(looks)
    drawn = [o for o in Outcome if o not in (Outcome.REFUSED, Outcome.WAITING)]
    shapes = {(LOOKS[o].marker, LOOKS[o].filled) for o in drawn}
    assert len(shapes) == len(drawn)  # told apart without colour too (a grey print)


@pytest.mark.parametrize(("status", "run_result", "error", "expect"), [
    ("kept", "succeeded", None, Outcome.KEPT),
    ("unconfirmed", "succeeded", None, Outcome.UNCONFIRMED),
    ("promoted", "succeeded", None, Outcome.KEPT),
    ("discarded", "succeeded", "within noise", Outcome.DISCARDED),
    ("failed", "failed", None, Outcome.FAILED),
    ("timed_out", "timed_out", None, Outcome.FAILED),
    ("no_effect", "succeeded", None, Outcome.NO_EFFECT),
    ("stopped_early", "stopped_early", None, Outcome.STOPPED_EARLY),
    ("rejected", None, "repeats #4", Outcome.REFUSED),
    ("running", None, None, Outcome.WAITING),
])
def test_outcomes_from_the_stores_statuses(status: str, run_result: str | None, error: str | None,
                                           expect: Outcome) -> None:
    e = Experiment(id=3, status=status, run_result=run_result, error=error, kind="hyperparameter")
    assert experiment_outcome(e) == expect


def test_no_effect_and_stopped_early_runs_are_drawn_and_named(tiny_project: Path) -> None:
    """Verdicts other parts of the engine record (a run identical to its parent, a run stopped while losing) get
    their own marker in the progress plot and their name in the tables."""
    from nightlab.agent.report import plots
    from nightlab.agent.report.facts import gather

    cfg = load_config(tiny_project)
    store = Store(tiny_project / ".nightlab" / "nightlab.db")
    session = store.create_session(str(tiny_project), "autonomous", "builtin", 5, None, "main")
    rows = [("baseline", "kept", "succeeded", 0.6), ("hyperparameter", "no_effect", "succeeded", 0.6),
            ("hyperparameter", "stopped_early", "stopped_early", None), ("hyperparameter", "kept", "succeeded", 0.7)]
    for kind, status, result, metric in rows:
        store.add_experiment(session_id=session.id, title=f"{status} run", kind=kind, status=status,
                             run_result=result, metric=metric, parent_id=1 if kind != "baseline" else None,
                             seconds=1.0)
    facts = gather(tiny_project, cfg, store, store.session(session.id))
    fig = plots.progress_figure(facts)
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    for name in ("baseline (1)", "kept (1)", "no effect (1)", "stopped early (1)"):
        assert name in labels, labels
    md = write_session_report(tiny_project, cfg, store, session.id).markdown.read_text()
    assert "| no effect |" in md and "| stopped early |" in md


# ------------------------------------------------------------------------------------------------ in a browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHECK_IMAGES = ('<script>window.addEventListener("load", () => { const bad = [...document.images].filter('
                'i => !i.complete || i.naturalWidth === 0).length; document.body.setAttribute("data-images", '
                'document.images.length + ":" + bad); });</script>')


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test-deps.sh installs it with "
                    "apt-get when run as root)")
def test_the_page_renders_in_headless_chromium(night: Night, tmp_path: Path) -> None:
    """One browser start: a screenshot (not blank: text, plots and tables drew) and the DOM after the load event,
    where a script added to a copy of the page (the report itself has none) counts the pictures that did not
    decode."""
    assert CHROMIUM is not None
    probe = tmp_path / "probe.html"
    probe.write_text((night.dir / "report.html").read_text().replace("</body>", CHECK_IMAGES + "</body>"))
    shot = tmp_path / "shot.png"
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                        "--window-size=1100,1400", f"--screenshot={shot}", "--dump-dom", probe.as_uri()],
                       capture_output=True, text=True, timeout=60)
    assert 'data-images="3:0"' in p.stdout, (p.stdout[-500:], p.stderr[-2000:])
    assert _png_ok(shot.read_bytes()) == (1100, 1400)
