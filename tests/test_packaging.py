"""A wheel (what `pip install .` builds) carries the shipped data, and an installed nightlab finds it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from helpers import REPO_ROOT


def test_wheel_ships_themes_examples_and_hook(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO_ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("nightlab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("nightlab/themes/dark.tcss", "nightlab/themes/light.tcss", "nightlab/examples/spirals/train.py",
                   "nightlab/examples/spirals/data.py", "nightlab/sandbox/instrument/sitecustomize.py",
                   "nightlab/py.typed"):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    probe = (
        "import nightlab, nightlab.commands as c\n"
        "from importlib import resources\n"
        "print(nightlab.__file__)\n"
        "print(c.example_dir() / 'train.py')\n"
        "print(resources.files('nightlab') / 'themes' / 'dark.tcss')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert all(line.startswith(str(target)) for line in out), out
    assert all(Path(p).exists() for p in out), out
