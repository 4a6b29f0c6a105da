"""The launcher: everything a training run needs before the job wrapper starts it — the worktree at the
experiment's commit, a fresh run folder, the job's environment, the hashes of protected files, the sandbox settings,
and (opt-in) the statically instrumented copy of the code.

It prepares a `JobSpec` and starts it; what is recorded about the launch, and when, is the engine's business (the
store is written before the process starts, so a crash in between is found by `reconcile`).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from nightlab.agent import download_caches
from nightlab.agent.config import ProjectConfig
from nightlab.agent.edits import matches_any
from nightlab.agent.instrument_static import instrument_copy
from nightlab.agent.paths import StatePaths
from nightlab.agent.store import Experiment
from nightlab.agent.workspace import Workspace
from nightlab.errors import NightlabError
from nightlab.sandbox import instrument, isolate, runner, slots
from nightlab.sandbox.spec import OUT_DIR, PROGRESS_FILE, SPEC_FILE, JobSpec

JOB_GIT_DIR = "git"  # in the run folder: the job's read-only git folder of its own commit (Workspace.job_git)


class Launcher:
    def __init__(self, root: Path, cfg: ProjectConfig, ws: Workspace, *, unsafe_no_sandbox: bool = False) -> None:
        self.root = Path(root)
        self.cfg = cfg
        self.ws = ws
        self.paths = StatePaths.of(self.root)
        self.unsafe_no_sandbox = unsafe_no_sandbox

    def check_sandbox(self) -> str:
        """The confinement layer jobs will get; one clear error before anything runs if it is not available."""
        wanted = self.cfg.sandbox.isolation
        if self.unsafe_no_sandbox:
            return "none"
        if wanted == "none":
            raise NightlabError("sandbox.isolation = 'none' runs untrusted code with layer 0 only; pass "
                                "--unsafe-no-sandbox to confirm")
        return isolate.check(wanted)

    def wake_argv(self) -> list[str]:
        """What a job's wrapper runs when the job ends and no engine holds the project (or a slot is given back)."""
        return [sys.executable, "-m", "nightlab", "wake", "--quiet", str(self.root)]

    def prepare(self, e: Experiment, slot: slots.Slot, attempt: int, *, leases: list[str] | None = None,
                lease_run: str = "", command: str | None = None) -> JobSpec:
        """The worktree, an empty run folder and the job spec for this attempt of the experiment's run; `leases`
        and `lease_run` are the machine-wide slot lease the job's wrapper holds while it runs; `command` is the
        shell command it runs (the engine applies the experiment's own command and its seed; default: the
        project's command with `{seed}` replaced)."""
        assert e.commit_sha is not None
        wt = self.ws.checkout(e.id, e.commit_sha, self.cfg.links)
        run_dir = self.paths.run_dir(e.id, attempt)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        if self.cfg.instrument == "static":
            wt = self._static_copy(e, wt, run_dir)
        protected = {p: runner.hash_file(wt / p) for p in self._protected_files(wt)}
        cfg = self.cfg
        env = self._job_env(slot, e, run_dir)
        git_env, git_readable = self.ws.job_git(wt, e.commit_sha, run_dir / JOB_GIT_DIR)
        for name, value in git_env.items():
            env.setdefault(name, value)
        return JobSpec(
            job_id=str(e.id), argv=["/bin/sh", "-c", command or cfg.command.replace("{seed}", str(e.seed))],
            cwd=str(wt), run_dir=str(run_dir), env=env, timeout_s=cfg.timeout,
            isolation="none" if self.unsafe_no_sandbox else cfg.sandbox.isolation,
            writable=list(cfg.sandbox.writable),
            # linked data lives outside the worktree: the engine made those links, so their targets may be read
            readable=list(cfg.sandbox.readable) + [str(self.root / p) for p in cfg.links]
            + ([] if cfg.instrument == "off" else [instrument.hook_dir()])
            + download_caches.read_only_dirs(os.environ) + git_readable,
            allow_network=cfg.sandbox.network, memory_mb=cfg.sandbox.memory_mb or None,
            cpu_seconds=cfg.sandbox.cpu_seconds or None, max_log_bytes=cfg.sandbox.max_log_mb << 20,
            protected=protected, lock_path=str(self.paths.lock), wake_argv=self.wake_argv(),
            leases=list(leases or []), lease_run=lease_run,
        )

    @staticmethod
    def lease_run_of(run_dir: str) -> str:
        """The slot-lease token a running job's spec names ("" when unreadable)."""
        try:
            return JobSpec.read(Path(run_dir) / SPEC_FILE).lease_run
        except (OSError, ValueError, TypeError):
            return ""

    @staticmethod
    def start(spec: JobSpec) -> dict[str, float | int]:
        """Start the detached job wrapper; its pids (and their start times, against pid reuse)."""
        return runner.launch(spec)

    def _static_copy(self, e: Experiment, wt: Path, run_dir: Path) -> Path:
        """Opt-in static instrumentation: run from a copy of the worktree whose editable Python files print stage
        markers. The copy lives in the run dir and is never committed."""
        dest = run_dir / "src"
        files = self.ws.tracked_files(e.commit_sha)
        marked = [f for f in files if f.endswith(".py") and matches_any(f, self.cfg.editable)
                  and not matches_any(f, self.cfg.protected)]
        instrument_copy(wt, marked, dest)
        for f in files:
            if f not in marked and (wt / f).is_file():
                (dest / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(wt / f, dest / f)
        self.ws.link(dest, self.cfg.links)
        return dest

    def _protected_files(self, wt: Path) -> list[str]:
        if not self.cfg.protected:
            return []
        return [p for p in self.ws.tracked_files() if matches_any(p, self.cfg.protected) and (wt / p).is_file()]

    def _job_env(self, slot: slots.Slot, e: Experiment, run_dir: Path) -> dict[str, str]:
        py = python_for(self.root, self.cfg)
        env = isolate.job_environment(dict(os.environ), dict(self.cfg.sandbox.env), list(self.cfg.sandbox.pass_env))
        bindir = str(Path(py).parent)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", os.defpath)
        if (Path(py).parent.parent / "pyvenv.cfg").exists():
            env["VIRTUAL_ENV"] = str(Path(py).parent.parent)
        env.update(slots.slot_env(slot, self.cfg.slots.threads_per_job))
        env["PYTHONUNBUFFERED"] = "1"
        env["NIGHTLAB_JOB_SEED"] = str(e.seed)
        env["NIGHTLAB_JOB_ID"] = str(e.id)
        mirror = download_caches.mirror_datasets_cache(os.environ, run_dir / OUT_DIR)
        for name, value in download_caches.job_env(os.environ, self.cfg.sandbox.network, mirror).items():
            env.setdefault(name, value)  # the project's `sandbox.env` says otherwise
        # an offline tracker's run is kept with the run, not in the worktree (nor the job's home), which go when the
        # experiment ends: `wandb sync .nightlab/runs/<id>/out/wandb/offline-run-*`, ClearML's session zip under
        # `out/clearml/offline/` (`clearml-task --import-offline-session`), Neptune's `out/neptune/` (`neptune sync`)
        env.setdefault("WANDB_DIR", str(run_dir / OUT_DIR))
        env.setdefault("CLEARML_CACHE_DIR", str(run_dir / OUT_DIR / "clearml"))
        env.setdefault("NEPTUNE_DATA_DIRECTORY", str(run_dir / OUT_DIR / "neptune"))
        if self.cfg.instrument == "off":
            return env
        return instrument.job_env(env, str(run_dir / OUT_DIR / PROGRESS_FILE))


def python_for(root: Path, cfg: ProjectConfig) -> str:
    """The interpreter that `python` means in the training command."""
    if cfg.python:
        p = Path(cfg.python)
        return str(p if p.is_absolute() else (root / p))
    for venv in (".venv", "venv", "env"):
        cand = Path(root) / venv / "bin" / "python"
        if cand.exists():
            return str(cand)
    return sys.executable


__all__ = ["Launcher", "python_for"]
