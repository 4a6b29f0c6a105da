"""Environment instrumentation for training jobs: a `sitecustomize` that reports progress through a side channel.

The runner wires it into a job by prepending `hook_dir()` to the job's PYTHONPATH and setting
NIGHTLAB_JOB_PROGRESS to `<run dir>/progress.jsonl` (see `job_env`). Nothing in the user's code changes; processes
that are not Python, or Python started with -I / -E / -S, simply write no progress and the agent falls back to
stages inferred from the log (`nightlab.sandbox.stages`).

Importing this package never activates the hook: `sitecustomize.py` acts only when imported under that name.
"""

from __future__ import annotations

import os

from nightlab.sandbox.instrument.sitecustomize import ENV_PROGRESS, ENV_ROOT, STAGES

__all__ = ["ENV_PROGRESS", "ENV_ROOT", "STAGES", "hook_dir", "job_env"]


def hook_dir() -> str:
    """The folder to prepend to a job's PYTHONPATH: it holds the `sitecustomize.py` that Python imports at start."""
    return os.path.dirname(os.path.abspath(__file__))


def job_env(env: dict[str, str], progress_path: str) -> dict[str, str]:
    """A copy of `env` with the hook wired in: our folder first on PYTHONPATH (the user's entries kept after it),
    the progress file named, and no inherited root marker (the job's first Python process claims it)."""
    out = dict(env)
    existing = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and p != hook_dir()]
    out["PYTHONPATH"] = os.pathsep.join([hook_dir(), *existing])
    out[ENV_PROGRESS] = progress_path
    out.pop(ENV_ROOT, None)
    return out
