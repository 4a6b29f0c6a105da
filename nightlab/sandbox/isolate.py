"""Confinement layers for a training job. Layer 0 (always): own session, scrubbed env, rlimits.

This first version implements layer 0 only; bubblewrap (layer 1) and Landlock+seccomp (layer 2) plug in through
`prepare`, which returns the argv to exec and the layers that will be active.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import dataclass, field

from nightlab.sandbox.procs import die_with_parent
from nightlab.sandbox.spec import JobSpec

SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
ALLOWED_ENV = (
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR",
    "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHASHSEED", "PYTHONUNBUFFERED",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "TASK_THREADS",
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LD_LIBRARY_PATH", "NVIDIA_VISIBLE_DEVICES",
)
ALLOWED_PREFIXES = ("CUDA_", "NCCL_", "NIGHTLAB_JOB_", "LC_")


def is_secret_name(name: str) -> bool:
    up = name.upper()
    return any(m in up for m in SECRET_MARKERS)


def job_environment(base: dict[str, str], extra: dict[str, str], pass_env: list[str]) -> dict[str, str]:
    """An environment from an allow-list: never a variable whose name looks like a secret, whatever asked for it."""
    env = {k: v for k, v in base.items() if k in ALLOWED_ENV or k.startswith(ALLOWED_PREFIXES)}
    for name in pass_env:
        if name in base:
            env[name] = base[name]
    env.update(extra)
    return {k: v for k, v in env.items() if not is_secret_name(k)}


@dataclass
class Launch:
    argv: list[str]
    layers: list[str]
    preexec: Callable[[], None] | None = None
    notes: list[str] = field(default_factory=list)


def _limits(spec: JobSpec) -> Callable[[], None]:
    def apply() -> None:
        die_with_parent()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if spec.cpu_seconds:
            resource.setrlimit(resource.RLIMIT_CPU, (spec.cpu_seconds, spec.cpu_seconds + 5))
        if spec.memory_mb:
            cap = spec.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        try:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
        except (ValueError, OSError):
            pass
        os.umask(0o022)

    return apply


def prepare(spec: JobSpec) -> Launch:
    """How to start the job: argv, a preexec hook for rlimits, and which layers will be active."""
    return Launch(argv=list(spec.argv), layers=["session", "env", "rlimits"], preexec=_limits(spec))
