"""Project configuration: `nightlab.toml` at the project root, or `[tool.nightlab]` in pyproject.toml.

Pydantic models with unknown keys forbidden, so a typo is an error that names the key and the file instead of a
setting silently ignored.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nightlab.agent.goal import Goal
from nightlab.errors import ConfigError

CONFIG_FILE = "nightlab.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class MetricConfig(_Strict):
    name: str = Field(min_length=1, description="the metric's name as printed")
    goal: Goal
    regex: str | None = Field(default=None, description="Python regex whose group 1 is the value; last match wins")
    file: str | None = Field(default=None, description="a metrics file the job writes (JSON, JSON lines, a CSV with a "
                                                       "column of that name, or name=value), relative to the worktree; "
                                                       "a glob reads its newest match")
    source: Literal["log", "tensorboard"] = Field(
        default="log", description="where the value is read: `log` (what the job prints, or `file`) or "
                                   "`tensorboard` (scalars in the event files the job writes)")
    tag: str | None = Field(default=None, min_length=1,
                            description="tensorboard: the scalar tag (default: `name`)")
    reduce: Literal["last", "min", "max"] = Field(
        default="last", description="tensorboard: which value of the tag's series is the run's metric")
    logdir: str | None = Field(default=None, min_length=1,
                               description="tensorboard: the folder, relative to the worktree, holding the event "
                                           "files (default: anywhere in the worktree)")

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            pat = re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regex: {e}") from None
        if pat.groups < 1:
            raise ValueError("the regex needs a capturing group for the value")
        return v

    @field_validator("logdir")
    @classmethod
    def _logdir_inside(cls, v: str | None) -> str | None:
        # the sandbox lets a job write its worktree (and its run dir) only, and runs go in parallel: a folder
        # outside the worktree could neither be written nor tell one run's events from another's
        if v is not None and (Path(v).is_absolute() or ".." in Path(v).parts):
            raise ValueError("must be a folder inside the worktree (a relative path without `..`): the job can "
                             "only write there")
        return v

    @model_validator(mode="after")
    def _source_keys(self) -> MetricConfig:
        if self.source != "tensorboard":
            given = [k for k in ("tag", "logdir") if getattr(self, k) is not None]
            if self.reduce != "last":
                given.append("reduce")
            if given:
                raise ValueError(f"{', '.join(given)} only apply to source = \"tensorboard\"")
        elif self.regex is not None or self.file is not None:
            raise ValueError("regex and file apply to source = \"log\", not to \"tensorboard\"")
        return self

    @property
    def tb_tag(self) -> str:
        """The TensorBoard scalar tag that holds the metric."""
        return self.tag or self.name


class SearchConfig(_Strict):
    policy: Literal["builtin", "llm", "learned"] = "builtin"
    budget: int = Field(default=12, ge=1, description="training runs one `nightlab run` may start")
    noise_seeds: int = Field(default=2, ge=1, le=10, description="baseline runs (different seeds) to measure noise")
    confirm: bool = Field(default=True, description="re-run a new best with another seed before calling it best")
    min_improvement: float = Field(default=0.0, ge=0, description="absolute floor under the measured noise")
    debug_depth: int = Field(default=2, ge=0, le=10, description="fix attempts on a failed branch before abandoning")
    seed: int = Field(default=0, description="the default seed put in {seed}")
    parallel: int = Field(default=0, ge=0, description="max concurrent jobs; 0 = one per free slot")


class LLMConfig(_Strict):
    model: str = ""
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, description="name of the env var holding the key (not the key)")
    temperature: float = Field(default=0.2, ge=0, le=2)
    max_tokens: int = Field(default=4096, ge=64)
    max_cost: float = Field(default=5.0, ge=0, description="USD per session; reaching it asks for approval")
    timeout: float = Field(default=120.0, gt=0, allow_inf_nan=False)
    context_chars: int = Field(default=60_000, ge=2_000, description="budget for file contents in the prompt")


class SandboxConfig(_Strict):
    isolation: Literal["auto", "bwrap", "landlock", "none"] = "auto"
    network: bool = False
    writable: list[str] = Field(default_factory=list)
    readable: list[str] = Field(default_factory=list)
    memory_mb: int = Field(default=0, ge=0, description="0 = no cap")
    cpu_seconds: int = Field(default=0, ge=0, description="0 = no cap")
    max_log_mb: int = Field(default=64, ge=1)
    env: dict[str, str] = Field(default_factory=dict, description="extra variables set for every job")
    pass_env: list[str] = Field(default_factory=list, description="variables copied from nightlab's environment")


class SlotsConfig(_Strict):
    cpus: int = Field(default=0, ge=0, description="CPU slots; 0 = auto (cores - 1, at least 1)")
    threads_per_job: int = Field(default=1, ge=1)
    gpus: list[int] | Literal["auto"] = "auto"
    gpus_per_job: int | Literal["auto"] = Field(
        default="auto", description='GPUs a job needs; "auto" = one on a machine with GPUs, none (CPU jobs) without')

    @field_validator("gpus_per_job")
    @classmethod
    def _gpus_not_negative(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError('must be 0 or more, or "auto"')
        return v


class ArtifactsConfig(_Strict):
    max_mb: int = Field(default=2048, ge=0, description="disk for the files kept experiments' runs wrote in their "
                                                        "worktrees (checkpoints), all experiments together; 0 = none")


class NotifyConfig(_Strict):
    command: str = Field(default="", description="run with the message as its last argument when input is needed")
    bell: bool = True


class MlflowConfig(_Strict):
    tracking_uri: str = Field(default="", description="log runs live to this MLflow tracking server or store as "
                                                      "they settle (e.g. sqlite:///mlflow.db, http://host:5000)")
    experiment: str = Field(default="", description="the MLflow experiment (default: nightlab-<project folder>)")


class ExperienceConfig(_Strict):
    share: bool = Field(default=True, description="add this project's decision steps (features and outcomes only, "
                                                   "never code) to the user's experience store for `nightlab learn`")


class LearnedConfig(_Strict):
    """search.policy = "learned": the builtin policy's moves in the order a model trained by `nightlab learn`
    prefers (without a model file: exactly the builtin policy)."""

    model: str = Field(default="", description="the model file (default: $XDG_DATA_HOME/nightlab/policy.json)")
    temperature: float = Field(default=0.3, ge=0, le=10, description="softmax temperature over the candidates' "
                                                                     "scores (0: always the top-scored move)")
    online_lr: float = Field(default=0.05, ge=0, le=1, description="step size of the updates within a session as "
                                                                   "rewards arrive (0: none)")
    min_support: int = Field(default=5, ge=0, description="a move overtakes the builtin's order only when its class "
                                                          "of move was taken at least this often in the model's "
                                                          "data (0: every move may)")


class BackendConfig(_Strict):
    """Where jobs run. `local`: this machine's slots. `slurm` / `ray`: a cluster's scheduler; the project folder
    must be on a file system the nodes share, and nightlab installed on them (see README, "Scaling out")."""

    kind: Literal["local", "slurm", "ray"] = "local"
    partition: str = Field(default="", description="SLURM partition (sbatch --partition)")
    account: str = Field(default="", description="SLURM account (sbatch --account)")
    time_limit: str = Field(default="", description="SLURM time limit (sbatch --time, e.g. '2:00:00'); default: the "
                                                    "run's timeout plus 5 minutes")
    cpus_per_job: int = Field(default=1, ge=1, description="CPUs per job (sbatch --cpus-per-task, Ray num_cpus)")
    memory: str = Field(default="", description="SLURM memory per job (sbatch --mem, e.g. '8G')")
    gpus_per_job: int = Field(default=0, ge=0, description="GPUs per job (sbatch --gres=gpu:N, Ray num_gpus)")
    sbatch_args: list[str] = Field(default_factory=list, description="extra sbatch arguments, e.g. ['--qos=low']")
    address: str = Field(default="", description="the Ray dashboard's address (Jobs API), e.g. http://head:8265; "
                                                 "default $RAY_ADDRESS")
    resources: dict[str, float] = Field(default_factory=dict, description="Ray custom resources per job")
    runtime_env: dict[str, Any] = Field(default_factory=dict, description="Ray runtime_env (env_vars, ...)")
    max_jobs: int = Field(default=0, ge=0, description="jobs submitted at once (0 = search.parallel, else 4)")
    watch_s: float = Field(default=60.0, gt=0, description="while the session hibernates with jobs on the "
                                                            "scheduler, how often a small watch asks it whether one "
                                                            "ended with no wrapper left to wake nightlab (a node "
                                                            "that went away)")
    python: str = Field(default="", description="the interpreter on the nodes with nightlab installed "
                                                "(default: the path of the one running nightlab)")

    def settings(self) -> Any:
        """The sandbox's view of these settings (`nightlab.sandbox.backends.BackendSettings`)."""
        from nightlab.sandbox.backends import BackendKind, BackendSettings

        return BackendSettings(
            kind=BackendKind(self.kind), partition=self.partition, account=self.account, time_limit=self.time_limit,
            cpus_per_job=self.cpus_per_job, memory=self.memory, gpus_per_job=self.gpus_per_job,
            sbatch_args=list(self.sbatch_args), address=self.address, resources=dict(self.resources),
            runtime_env=dict(self.runtime_env), max_jobs=self.max_jobs, python=self.python)


class AutonomyConfig(_Strict):
    """What the engine may decide on its own while it runs unattended."""

    early_stop: bool = Field(default=True, description="stop a run whose learning curve is clearly worse than its "
                                                       "parent's at the same step (early_stop.py)")
    early_stop_after: float = Field(default=0.5, gt=0, le=1, description="the fraction of the parent's run a run "
                                                                         "must have done before it can be stopped")
    early_stop_until: float = Field(default=0.8, gt=0, le=1, description="the fraction of the parent's run past "
                                                                        "which no run is stopped (the last part "
                                                                        "saves little, and a schedule's end can "
                                                                        "still turn a run around)")
    early_stop_margin: float = Field(default=3.0, gt=0, description="how far behind, in seed-noise units, now and "
                                                                    "projected to the parent's end, stops a run")
    early_stop_check_s: float = Field(default=5.0, gt=0, description="seconds between two readings of a running "
                                                                     "job's curve")
    max_cpu_hours: float | None = Field(default=None, gt=0, description="compute budget of a session: CPU-hours "
                                                                         "(run seconds x threads per job)")
    max_gpu_hours: float | None = Field(default=None, gt=0, description="compute budget of a session: GPU-hours "
                                                                         "(run seconds x GPUs per job)")
    ask_runs_over_min: float | None = Field(default=None, gt=0, description="checkpoint: ask before a run predicted "
                                                                             "to take longer than this many minutes "
                                                                             "(checkpoints.py)")
    ask_structural: bool = Field(default=False, description="checkpoint: ask before a change to the code's "
                                                           "structure (a transformation, a model edit), not a value")
    ask_over_budget: bool = Field(default=False, description="checkpoint: when the next run would pass "
                                                             "max_cpu_hours / max_gpu_hours, ask to go on (each yes "
                                                             "grants one budget more, from what was spent) instead "
                                                             "of ending")
    ask_phase_change: bool = Field(default=True, description="checkpoint: with an approved plan (`nightlab plan`), "
                                                             "ask before a move in a phase the plan does not hold")


class ProjectConfig(_Strict):
    command: str = Field(min_length=1, description="how to run training from the project root; {seed} is replaced")
    metric: MetricConfig
    timeout: float = Field(default=900.0, gt=0, allow_inf_nan=False, description="wall-clock seconds per run")
    editable: list[str] = Field(default_factory=list, description="files or globs the agent may edit")
    protected: list[str] = Field(default_factory=list, description="files or globs hashed before/after each run")
    links: list[str] = Field(default_factory=list, description="untracked paths (data) linked into each worktree")
    brief: str | None = Field(default=None, description="a program.md-style file of instructions for the agent")
    python: str | None = Field(default=None, description="interpreter for `python` in the command")
    instrument: Literal["hook", "static", "off"] = Field(
        default="hook", description="progress markers: the import hook; `static` also prints markers from an "
                                    "instrumented copy of the code in the run dir (never committed)")
    search: SearchConfig = Field(default_factory=SearchConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    slots: SlotsConfig = Field(default_factory=SlotsConfig)
    artifacts: ArtifactsConfig = Field(default_factory=ArtifactsConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    backend: BackendConfig = Field(default_factory=BackendConfig)
    experience: ExperienceConfig = Field(default_factory=ExperienceConfig)
    learned: LearnedConfig = Field(default_factory=LearnedConfig)
    autonomy: AutonomyConfig = Field(default_factory=AutonomyConfig)


def _format_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key is missing"
    more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {key}: {msg}{more}"


def parse_config(data: dict[str, Any], source: str) -> ProjectConfig:
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(source, e)) from None


def find_config(root: Path) -> Path | None:
    """The file holding this project's config, or None."""
    p = root / CONFIG_FILE
    if p.is_file():
        return p
    pp = root / "pyproject.toml"
    if pp.is_file():
        try:
            if "nightlab" in tomllib.loads(pp.read_text()).get("tool", {}):
                return pp
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return None
    return None


def load_config(root: Path) -> ProjectConfig:
    """Load and validate the project's config; every problem is a one-line ConfigError naming the file and key."""
    path = find_config(root)
    if path is None:
        raise ConfigError(f"{root}: no {CONFIG_FILE} (or [tool.nightlab] in pyproject.toml); run `nightlab init` first")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if path.name == "pyproject.toml":
        raw = raw["tool"]["nightlab"]
        source = f"{path} [tool.nightlab]"
    else:
        source = str(path)
    return parse_config(raw, source)


def set_command(path: Path, command: str) -> None:
    """Rewrite the `command` value of the config at `path` (nightlab.toml, or [tool.nightlab] in pyproject.toml) in
    place, every other byte kept. ConfigError when the value is not a one-line string nightlab can find."""
    import json
    import re

    text = path.read_text()
    in_pyproject = path.name == "pyproject.toml"
    table = ""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        head = re.match(r"\s*\[([^\[\]]+)\]\s*(?:#.*)?$", line)
        if head:
            table = head.group(1).strip()
            continue
        wanted = "tool.nightlab" if in_pyproject else ""
        m = re.match(r"(\s*command\s*=\s*)(\"(?:[^\"\\]|\\.)*\"|'[^']*')(\s*(?:#.*)?)$", line.rstrip("\r\n"))
        if table == wanted and m:
            end = line[len(line.rstrip("\r\n")):]
            lines[i] = f"{m.group(1)}{json.dumps(command)}{m.group(3)}{end}"
            new = "".join(lines)
            raw = tomllib.loads(new)
            got = raw["tool"]["nightlab"]["command"] if in_pyproject else raw.get("command")
            if got != command:
                break
            path.write_text(new)
            return
    raise ConfigError(f"{path}: cannot find a one-line `command = \"...\"` to update; set it by hand to: {command}")


def dump_config(cfg: ProjectConfig) -> str:
    """TOML for a config, leaving out sections that only hold defaults so the file stays short."""
    data = cfg.model_dump(exclude_none=True)
    if data.get("instrument") == "hook":
        data.pop("instrument")
    metric = data.get("metric", {})
    if metric.get("source") == "log":
        metric.pop("source")
    if metric.get("reduce") == "last":
        metric.pop("reduce")
    defaults: dict[str, Any] = {
        "search": SearchConfig().model_dump(exclude_none=True),
        "llm": LLMConfig().model_dump(exclude_none=True),
        "sandbox": SandboxConfig().model_dump(exclude_none=True),
        "slots": SlotsConfig().model_dump(exclude_none=True),
        "artifacts": ArtifactsConfig().model_dump(exclude_none=True),
        "notify": NotifyConfig().model_dump(exclude_none=True),
        "mlflow": MlflowConfig().model_dump(exclude_none=True),
        "backend": BackendConfig().model_dump(exclude_none=True),
        "experience": ExperienceConfig().model_dump(exclude_none=True),
        "learned": LearnedConfig().model_dump(exclude_none=True),
        "autonomy": AutonomyConfig().model_dump(exclude_none=True),
    }
    for key, default in defaults.items():
        section = {k: v for k, v in data.get(key, {}).items() if default.get(k) != v}
        if section:
            data[key] = section
        else:
            data.pop(key, None)
    order = ["command", "timeout", "editable", "protected", "links", "brief", "python", "instrument", "metric"]
    ordered = {k: data[k] for k in order if k in data}
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    return "# nightlab project config: see README.md, 'Config reference'\n" + tomli_w.dumps(ordered)
