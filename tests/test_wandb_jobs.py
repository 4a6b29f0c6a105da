"""A training script that logs to Weights & Biases, as most research repositories do, run by nightlab.

A job has no network and never an API key (secrets are filtered out of its environment), and `wandb.init()` without
a key fails: every run of such a repository crashed ("No API key configured"), the baseline of `nightlab init`
too. Jobs now run W&B offline unless the project says otherwise, and the offline run is kept with nightlab's run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import make_repo

wandb = pytest.importorskip("wandb", reason="wandb is in the dev extra: `make test` installs it")

TRAIN = '''\
import argparse

import wandb

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.parse_args()
run = wandb.init(project="demo", config={"learning_rate": 0.02, "epochs": 3})
for epoch in range(wandb.config.epochs):
    wandb.log({"val_loss": 1.0 / (epoch + 1)})
print("val_loss", round(1.0 / wandb.config.epochs, 4))
run.finish()
'''


def _env(home: Path) -> dict[str, str]:
    # the user's own shell may hold a key and a mode: the job sees neither (a key is a secret; the mode is not
    # passed unless the project asks for it)
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "NO_COLOR": "1",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "XDG_DATA_HOME": str(home / "data"),
            "XDG_CACHE_HOME": str(home / "cache"), "GIT_CONFIG_GLOBAL": "/dev/null",
            "WANDB_API_KEY": "x" * 40, "WANDB_MODE": "online"}


def _init_and_run(root: Path, env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`nightlab init` (val_loss, minimised) and a one-run session in `root`; the CLI runner, for what follows."""
    def nl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nightlab", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=300)

    for args in (("init", "--yes", "--command", f"{sys.executable} train.py --seed {{seed}}", "--metric", "val_loss",
                  "--goal", "minimize"), ("run", "--mode", "autonomous", "--budget", "1")):
        p = nl(*args)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    return nl


def test_a_wandb_script_runs_offline_and_its_run_is_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    root = make_repo(tmp_path / "p", {"train.py": TRAIN})
    env = _env(home)
    nl = _init_and_run(root, env)
    assert "val_loss" in (root / "nightlab.toml").read_text()
    status = json.loads(nl("status", "--json").stdout)
    ran = [e for e in status["experiments"] if e.get("metric") is not None]
    assert ran and ran[0]["metric"] == pytest.approx(1 / 3, abs=1e-3), (status["experiments"],
                                                                        nl("log", "1").stdout[-3000:])
    # the offline run is with nightlab's run, for `wandb sync`; the worktree (which goes) holds none
    kept = list((root / ".nightlab" / "runs").glob("*/out/wandb/offline-run-*"))
    assert kept, sorted(str(x) for x in (root / ".nightlab" / "runs").rglob("*"))[:40]
    assert not list((root / ".nightlab").glob("worktrees/*/wandb"))


def test_a_project_may_run_wandb_its_own_way(tmp_path: Path) -> None:
    """`[sandbox] env = {WANDB_MODE = "disabled"}` wins over the offline default."""
    from nightlab.sandbox import isolate

    env = isolate.job_environment({"WANDB_MODE": "online", "PATH": "/bin"}, {}, [])
    assert env["WANDB_MODE"] == "offline"
    assert isolate.job_environment({}, {"WANDB_MODE": "disabled"}, [])["WANDB_MODE"] == "disabled"
    assert isolate.job_environment({"WANDB_MODE": "online"}, {}, ["WANDB_MODE"])["WANDB_MODE"] == "online"


NEPTUNE_TRAIN = '''\
import argparse

import neptune

p = argparse.ArgumentParser()
p.add_argument("--seed", type=int, default=0)
p.parse_args()
run = neptune.init_run(project="me/demo")
for epoch in range(3):
    run["val/loss"].append(1.0 / (epoch + 1))
run.stop()
print("val_loss", round(1.0 / 3, 4))
'''


def test_a_neptune_script_runs_offline_and_its_run_is_kept(tmp_path: Path) -> None:
    """ClearML gets the same treatment (`CLEARML_OFFLINE_MODE=1`, its session zip in `out/clearml/offline/`),
    checked by hand under bubblewrap with clearml 2.1.12; its offline `Task.init()` analyses the installed packages
    for up to minutes on a loaded machine, too slow for this suite, so only its environment is asserted here."""
    pytest.importorskip("neptune", reason="neptune is in the dev extra: `make test` installs it")
    tracker = "neptune"
    home = tmp_path / "home"
    home.mkdir()
    root = make_repo(tmp_path / "p", {"train.py": NEPTUNE_TRAIN})
    env = {**_env(home), "NEPTUNE_API_TOKEN": "x" * 40, "NEPTUNE_MODE": "async"}
    nl = _init_and_run(root, env)
    status = json.loads(nl("status", "--json").stdout)
    ran = [e for e in status["experiments"] if e.get("metric") is not None]
    assert ran and ran[0]["metric"] == pytest.approx(1 / 3, abs=1e-3), nl("log", "1").stdout[-3000:]
    # the offline run is with nightlab's run, to upload later
    out = root / ".nightlab" / "runs" / "1" / "out"
    kept = list(out.glob("neptune/**/*"))
    assert kept, sorted(str(x) for x in out.rglob("*"))[:40]
    assert isolate_env_default(tracker) and isolate_env_default("clearml")


def isolate_env_default(tracker: str) -> bool:
    """The project may run its tracker its own way: `sandbox.env` / `pass_env` win over the offline default."""
    from nightlab.sandbox import isolate

    name, offline, own = {"clearml": ("CLEARML_OFFLINE_MODE", "1", "0"),
                          "neptune": ("NEPTUNE_MODE", "offline", "debug")}[tracker]
    assert isolate.job_environment({name: own}, {}, [])[name] == offline
    assert isolate.job_environment({}, {name: own}, [])[name] == own
    return isolate.job_environment({name: own}, {}, [name])[name] == own
