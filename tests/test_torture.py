"""Kill -9 at random moments (engine and job wrappers), resume each time: nothing lost, nothing run twice.

The fast version of bench/torture.py (which prints the figures for a longer run).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.torture import torture


def test_sigkill_torture_loses_nothing(tmp_path: Path) -> None:
    rep = torture(tmp_path, kills=6, budget=7, seed=3, timeout=240)
    assert rep.kills_engine + rep.kills_wrapper >= 2, rep
    assert rep.integrity == "ok"
    assert not rep.ran_twice, rep
    assert rep.ran_once + rep.lost_rerun_once + rep.lost_given_up == rep.experiments
    assert not rep.orphan_processes, rep.orphan_commands
    assert not rep.orphan_worktrees, rep
    assert rep.best is not None and rep.best == rep.reference_best, rep
