"""A repository whose command names an absolute output folder, run by nightlab end to end.

`python train.py --out /scratch/run1` ran on the user's machine; in a job the file system outside the worktree is
read-only, so the baseline failed, and the fix catalogue only looked for the path in the code. Now the fix rewrites
the command's word, the next run succeeds, writes into its worktree, and nothing is written where the command said.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from helpers import make_repo, write_config

TRAIN = '''\
import argparse
import os

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.add_argument("--out", default="runs")
args = p.parse_args()
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "model.txt"), "w") as f:
    f.write("weights")
print("acc=0.75")
'''


def _confined() -> None:
    from nightlab.sandbox.probe import probe

    caps = probe()
    if not (caps.bwrap_ok or caps.landlock_ok):
        pytest.skip(f"no confinement here to refuse the write ({caps.bwrap_reason or 'no bubblewrap'}; "
                    f"{caps.landlock_reason or 'no Landlock'})")


def test_an_output_folder_on_the_command_is_moved_into_the_worktree(tmp_path: Path) -> None:
    _confined()
    outside = Path("/var/tmp") / f"nightlab-test-{uuid.uuid4().hex[:12]}"
    root = make_repo(tmp_path / "p", {"train.py": TRAIN})
    command = f"{sys.executable} train.py --seed {{seed}} --out {outside}/run1"
    write_config(root, command=command)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data"), "NO_COLOR": "1"}

    def nl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=300)

    try:
        p = nl("run", "--mode", "autonomous", "--budget", "2")
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
        exps = json.loads(nl("status", "--json").stdout)["experiments"]
        base, fixed = exps[0], exps[1]
        assert base["metric"] is None and str(outside) in (base.get("diagnosis") or ""), base
        # the fix runs its own command, the output folder relative (in its worktree); the project's is unchanged
        assert fixed["kind"] == "fix" and fixed["metric"] == pytest.approx(0.75), (fixed, nl("log", "2").stdout)
        assert fixed["command"] == command.replace(f"--out {outside}", f"--out {str(outside).lstrip('/')}"), fixed
        assert f"--out {str(outside).lstrip('/')}/run1" in nl("diff", "2").stdout
        assert (root / "nightlab.toml").read_text().count(f"--out {outside}/run1") == 1
        assert not outside.exists()
    finally:
        if outside.exists():
            import shutil

            shutil.rmtree(outside)
