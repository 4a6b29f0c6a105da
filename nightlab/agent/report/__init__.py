"""The morning report: what a session did, as pictures a person takes in at a glance and a page they can share.

`write_session_report` reads the store and the ledger (facts.py), draws the plots (plots.py, matplotlib imported
only then) and writes one self-contained HTML page (page.py) and the same as Markdown with the PNGs beside it
(markdown.py), by default into `.nightlab/reports/session-N/`. The engine writes it when a session ends; front-ends
(`nightlab report`, the TUI's key) ask for it through the same function and never build one themselves. Importing
this package is cheap: `nightlab status` uses `existing_report` to say where the last report is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from nightlab.agent.config import ProjectConfig
from nightlab.agent.paths import StatePaths
from nightlab.agent.store import Session, Store
from nightlab.errors import NightlabError

HTML_NAME = "report.html"
MARKDOWN_NAME = "report.md"
IMAGE_NAMES = ("progress.png", "curves.png", "seeds.png")


@dataclass
class ReportFiles:
    dir: Path
    html: Path
    markdown: Path
    images: list[Path] = field(default_factory=list)


def report_dir(root: Path, session_id: int) -> Path:
    """Where a session's report is written unless `-o DIR` says otherwise."""
    return StatePaths.of(root).report(session_id)


def existing_report(root: Path, session_id: int) -> Path | None:
    """The HTML report of a session if one has been written to its default place."""
    path = report_dir(root, session_id) / HTML_NAME
    return path if path.is_file() else None


def write_session_report(root: Path, cfg: ProjectConfig, store: Store, session_id: int | None = None,
                         out_dir: Path | None = None) -> ReportFiles:
    """Write the report of a session (default: the latest) as HTML, Markdown and PNGs, and return where. An empty or
    crashed session gets a short report, never an error; a session that does not exist is one clear error."""
    session = _session(store, session_id)
    from nightlab.agent.report import markdown, page, plots
    from nightlab.agent.report.facts import gather

    facts = gather(root, cfg, store, session)
    images = plots.draw_all(facts)
    out = Path(out_dir) if out_dir is not None else report_dir(root, session.id)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(dir=out, html=out / HTML_NAME, markdown=out / MARKDOWN_NAME)
    for name in IMAGE_NAMES:
        path = out / name
        if name in images:
            _write(path, images[name])
            files.images.append(path)
        elif path.exists():
            path.unlink()  # a picture of an earlier write that this one does not have
    _write(files.markdown, markdown.render(facts, images).encode("utf-8"))
    _write(files.html, page.render(facts, images).encode("utf-8"))
    return files


def _session(store: Store, session_id: int | None) -> Session:
    latest = store.latest_session()
    if latest is None:
        raise NightlabError("no session to report on yet: `nightlab run` starts one")
    if session_id is None:
        return latest
    try:
        return store.session(session_id)
    except KeyError:
        raise NightlabError(f"no session {session_id} (sessions are 1–{latest.id})") from None


def _write(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename: a reader never sees half a report."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


__all__ = ["ReportFiles", "existing_report", "report_dir", "write_session_report"]
