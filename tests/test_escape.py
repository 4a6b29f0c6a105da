"""Hostile jobs against the machinery around them, in every layer, as root and as an unprivileged user.

bench/escape.py holds the attempts (issue 14's attacks: capabilities, remount, unix sockets, /dev/shm, other
processes' command lines, control files in the run dir, a module beside a protected script...) and the expected
gaps with their reasons; here its matrix runs cell by cell. A cell is one confinement layer run as the user running
the tests and, when that is root, once more as an unprivileged user made for the purpose (`nightlab-escape`). Every
attempt must come out blocked or contained, except the gaps bench/escape.py lists (and those must still be gaps:
otherwise the README's table is stale). A layer this machine lacks skips with the probe's reason.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

import pytest

from helpers import load_bench

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox tests need Linux (/proc, namespaces)")


def _load() -> ModuleType:
    return load_bench("escape")


escape = _load()
CELLS = [(layer, who) for layer in escape.LAYERS for who in ("root", "user")]


@pytest.fixture(autouse=True)
def _probe_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "isolation-cache"))


@pytest.mark.parametrize(("layer", "who"), CELLS, ids=[f"{layer}-{who}" for layer, who in CELLS])
def test_escape_attempts(layer: str, who: str) -> None:
    if who == "root" and os.geteuid() != 0:
        pytest.skip("not running as root: the user cell is this user's run")
    cell = escape.run_cell(layer, who)
    if cell.skipped:
        pytest.skip(cell.skipped)
    wrong = []
    for attempt, what in escape.ATTEMPTS:
        got = cell.verdicts.get(attempt)
        gap_expected = bool(escape.expected_gap(attempt, layer, who))
        if got is None or (got == escape.GAP) != gap_expected:
            detail = cell.details.get(attempt) or cell.details.get("probe", "")
            want = "a documented gap" if gap_expected else "blocked or contained"
            wrong.append(f"{attempt} ({what}): {got}, expected {want}; {detail[:400]}")
    assert not wrong, "\n".join(wrong)


def test_the_table_names_every_attempt_and_gap_reason() -> None:
    """What the README shows comes from here: every attempt has a description, every gap a reason."""
    names = [a for a, _ in escape.ATTEMPTS]
    assert len(names) == len(set(names))
    for (attempt, layer, who), why in escape.EXPECTED_GAPS.items():
        assert attempt in names and layer in escape.LAYERS and who in ("root", "user", "*") and why
