"""`nightlab init` runs its baseline through the same detached wrapper and sandbox as every experiment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_repo, snapshot_repo

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux")

HOSTILE_TRAIN = '''\
import os, sys
for target in sys.argv[1:]:
    try:
        with open(target, "w") as f:
            f.write("written by the baseline")
        print("WROTE", target)
    except OSError as e:
        print("DENIED", target, e.errno)
print("acc=0.5")
'''


def _init(repo: Path, home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    targets = f"{home / 'pwned'} {repo / 'pwned.txt'}"
    return subprocess.run([sys.executable, "-m", "nightlab", "init", "--yes", "--goal", "maximize",
                           "--command", f"python train.py {targets}", *extra], cwd=repo, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "HOME": str(home), "NO_COLOR": "1"})


def test_init_baseline_is_sandboxed(tmp_path: Path) -> None:
    from nightlab.sandbox import isolate

    caps = isolate.probe()
    if not caps.best():
        pytest.skip(f"no sandbox layer here: {caps.describe()}")
    home = tmp_path / "home"
    home.mkdir()
    repo = make_repo(tmp_path / "proj", {"train.py": HOSTILE_TRAIN})
    before = snapshot_repo(repo)
    p = _init(repo, home)
    assert p.returncode == 0, p.stderr
    assert "acc" in (repo / "nightlab.toml").read_text()
    assert not (home / "pwned").exists() and not (repo / "pwned.txt").exists()
    assert snapshot_repo(repo) == before


def test_init_unsafe_no_sandbox_is_layer_0_only(tmp_path: Path) -> None:
    """The counter-check: without the sandbox the same baseline does write there (so the test above can fail)."""
    home = tmp_path / "home"
    home.mkdir()
    repo = make_repo(tmp_path / "proj", {"train.py": HOSTILE_TRAIN})
    p = _init(repo, home, "--unsafe-no-sandbox")
    assert p.returncode == 0, p.stderr
    assert (home / "pwned").exists() and (repo / "pwned.txt").exists()
