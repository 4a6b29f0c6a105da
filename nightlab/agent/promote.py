"""Promote: moved to the front desk (`actions.FrontDesk.preview_promote / promote`).

These functions keep the old names importable for code written before the desk; each one asks the desk.
"""

from __future__ import annotations

from pathlib import Path

from nightlab.agent.actions import FrontDesk, Preview
from nightlab.agent.store import Experiment, Store

__all__ = ["Preview", "chain_base", "promote_experiment", "promote_preview"]


def chain_base(store: Store, e: Experiment) -> str | None:
    return store.chain_base(e)


def promote_preview(root: Path, store: Store, e: Experiment) -> Preview:
    return FrontDesk(root, store=store).preview_promote(e.id)


def promote_experiment(root: Path, store: Store, e: Experiment, who: str) -> str:
    return FrontDesk(root, store=store, who=who).promote(e.id).commit
