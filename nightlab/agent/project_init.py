"""`nightlab init`: find how a repo trains, run it once, learn what it reports, and write nightlab.toml.

Detection is heuristic but never silent: every guess is shown, ambiguous ones are asked (or need a flag in
scripts), and nothing is written unless the whole setup succeeded.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightlab.agent import metrics, run_metrics, tbevents
from nightlab.agent.config import CONFIG_FILE, MetricConfig, ProjectConfig, dump_config, find_config
from nightlab.agent.workspace import STATE_DIR, Workspace
from nightlab.errors import ConfigError, GitError, NightlabError

ENTRY_NAMES = ("train.py", "main.py", "run.py", "train_model.py", "fit.py")
ENTRY_DIRS = ("", "src", "scripts", "tools")
CONFIG_EXT = (".yaml", ".yml", ".json", ".toml", ".cfg", ".ini")
DATA_EXT = (".csv", ".tsv", ".npz", ".npy", ".pt", ".pth", ".pkl", ".pickle", ".parquet", ".h5", ".hdf5", ".arrow",
            ".bin", ".idx", ".gz", ".zip", ".tar", ".jsonl", ".txt")
PROTECT_NAME = re.compile(r"(^|/)(eval|evaluate|evaluation|metrics?|scor(e|ing)|test_?data|data(set)?s?)(\.py|/|$)",
                          re.I)
IGNORE_LINKS = {".venv", "venv", "env", ".git", STATE_DIR, "__pycache__", ".mypy_cache", ".pytest_cache",
                ".ruff_cache", "node_modules", ".idea", ".vscode", CONFIG_FILE, "wandb", "runs", "outputs",
                "checkpoints", "lightning_logs", ".ipynb_checkpoints"}


@dataclass
class InitOptions:
    command: str | None = None
    metric: str | None = None
    metric_regex: str | None = None
    goal: str | None = None
    timeout: float | None = None
    metric_source: str | None = None  # "log" | "tensorboard" | None (detect)
    yes: bool = False
    run: bool = True
    force: bool = False
    unsafe_no_sandbox: bool = False  # run the baseline with layer 0 only, like `run --unsafe-no-sandbox`


@dataclass
class InitResult:
    config: ProjectConfig
    path: Path
    baseline: float | None
    seconds: float | None
    notes: list[str] = field(default_factory=list)


Ask = Callable[[str, list[str]], str]  # question, choices -> answer (one of the choices)
Progress = Callable[[float, str], None]  # elapsed seconds, last log line


def find_entry(root: Path, tracked: list[str]) -> str | None:
    """The training script: a conventional name at a conventional place, else a tracked *train*.py with a main."""
    tset = set(tracked)
    for d in ENTRY_DIRS:
        for name in ENTRY_NAMES:
            rel = f"{d}/{name}" if d else name
            if rel in tset:
                return rel
    cands = [p for p in tracked if p.endswith(".py") and "train" in Path(p).name.lower()]
    cands = [p for p in cands if "__main__" in _read(root / p)]
    cands.sort(key=lambda p: (p.count("/"), len(p)))
    return cands[0] if cands else None


def _read(p: Path) -> str:
    try:
        return p.read_text(errors="replace")
    except OSError:
        return ""


def has_seed_flag(text: str) -> bool:
    return bool(re.search(r"""add_argument\(\s*['"]--seed['"]""", text))


def guess_command(root: Path, entry: str) -> str:
    cmd = f"python {entry}"
    if has_seed_flag(_read(root / entry)):
        cmd += " --seed {seed}"
    return cmd


def editable_files(root: Path, entry: str, tracked: list[str], protected: list[str]) -> list[str]:
    """The entry script, local modules it imports, and config files it names — minus protected files."""
    from nightlab.agent.edits import matches_any

    text = _read(root / entry)
    out = [entry]
    entry_dir = str(Path(entry).parent) if "/" in entry else ""
    for mod in re.findall(r"^\s*(?:from|import)\s+([A-Za-z_][\w.]*)", text, re.M):
        first = mod.split(".")[0]
        for cand in (f"{first}.py", f"{entry_dir}/{first}.py" if entry_dir else "", f"{first}/__init__.py"):
            if cand and cand in tracked and cand not in out:
                out.append(cand)
    for p in tracked:
        if p.endswith(CONFIG_EXT) and Path(p).name in text and p not in out:
            out.append(p)
    # config files living next to the entry with a telling name (config.yaml, hparams.json, ...)
    for p in tracked:
        name = Path(p).name.lower()
        if p.endswith((".yaml", ".yml", ".json")) and any(k in name for k in ("config", "hparam", "param")) \
                and str(Path(p).parent) in (entry_dir or ".", ".") and p not in out:
            out.append(p)
    return [p for p in out if not matches_any(p, protected)]


def protected_files(root: Path, tracked: list[str], entry: str) -> list[str]:
    """Evaluation and data files: hashed around every run and never edited."""
    out = []
    for p in tracked:
        if p == entry:
            continue
        if PROTECT_NAME.search(p):
            out.append(p)
            continue
        if p.endswith(DATA_EXT):
            try:
                big = (root / p).stat().st_size > 100_000
            except OSError:
                big = False
            if big or not p.endswith((".txt", ".jsonl")):
                out.append(p)
    return out


def untracked_links(ws: Workspace) -> list[str]:
    """Top-level untracked or ignored entries (typically data folders) that each worktree needs a link to."""
    tracked_top = {p.split("/")[0] for p in ws.tracked_files()}
    out = []
    for entry in sorted(os.listdir(ws.root)):
        if entry in tracked_top or entry in IGNORE_LINKS or entry.startswith("."):
            continue
        if entry.endswith((".log", ".pyc")):
            continue
        out.append(entry)
    return out


def run_once(root: Path, ws: Workspace, command: str, links: list[str], timeout: float,
             progress: Progress | None, python: str, unsafe: bool = False,
             inspect: Callable[[Path, float], None] | None = None) -> tuple[str, int | None, float, bool]:
    """Run the committed code once in a temporary copy (never in the user's tree), through the same detached wrapper
    and sandbox as every experiment (`unsafe`: layer 0 only, as `--unsafe-no-sandbox`). Returns log, rc, secs,
    timed_out. A missing sandbox layer is a NightlabError naming it, before anything runs.

    `inspect(copy, started)` looks at what the run left in its copy (event files) before the copy is removed."""
    from nightlab.sandbox import isolate, runner
    from nightlab.sandbox.spec import JobSpec

    isolation = "none" if unsafe else "auto"
    isolate.check(isolation)
    tmp = Path(tempfile.mkdtemp(prefix="nightlab-init-"))
    wt, run_dir = tmp / "wt", tmp / "run"
    try:
        wt.mkdir()
        archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", "HEAD"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(wt)], input=archive, check=True)
        for rel in links:
            src = root / rel
            if src.exists() and not (wt / rel).exists():
                os.symlink(src, wt / rel)
        env = isolate.job_environment(dict(os.environ), {}, [])
        env["PATH"] = str(Path(python).parent) + os.pathsep + env.get("PATH", os.defpath)
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("MKL_NUM_THREADS", "1")
        env["PYTHONUNBUFFERED"] = "1"
        spec = JobSpec(job_id="init-baseline", argv=["/bin/sh", "-c", command.replace("{seed}", "0")], cwd=str(wt),
                       run_dir=str(run_dir), env=env, timeout_s=timeout, isolation=isolation,
                       readable=[str(root / rel) for rel in links], instrument=False)
        status = runner.run_to_end(spec, on_tick=None if progress is None else (
            lambda elapsed: progress(elapsed, runner.last_log_line(run_dir))))
        log = runner.read_log(run_dir)
        if status.state == "failed" and status.reason and status.exit_code is None:
            log += f"\n[nightlab: {status.reason}]"
        if inspect is not None:
            inspect(wt, status.started_at)
        return log, status.exit_code, status.seconds, status.state == "timed_out"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def regex_for(log: str, name: str) -> str | None:
    """A regex for the metric when the common forms don't find it: built from the last line that mentions it."""
    if metrics.parse_metric(log, name).value is not None:
        return None
    for line in reversed(log.splitlines()):
        if name in line:
            m = re.search(re.escape(name) + r"(\W{1,4})([-+0-9.eE]+|nan|inf)", line)
            if m:
                return re.escape(name) + re.escape(m.group(1)) + r"([-+0-9.eE]+|nan|inf)"
    return None


def init_project(root: Path, opts: InitOptions, ask: Ask | None = None, progress: Progress | None = None,
                 say: Callable[[str], None] = print) -> InitResult:
    """Detect, run the baseline once, and write nightlab.toml. Nothing is written if anything fails."""
    ws = Workspace(root)
    existing = find_config(ws.root)
    if existing is not None and not opts.force:
        raise ConfigError(f"{existing}: already configured (use --force to overwrite)")
    tracked = ws.tracked_files()
    notes: list[str] = []
    command = opts.command
    entry = None
    if command is None:
        entry = find_entry(ws.root, tracked)
        if entry is None:
            raise NightlabError(f"{ws.root}: no training script found (looked for {', '.join(ENTRY_NAMES)}); "
                                "pass --command")
        command = guess_command(ws.root, entry)
        say(f"training command: {command}")
    else:
        m = re.search(r"([\w./-]+\.py)\b", command)
        entry = m.group(1) if m and m.group(1) in tracked else None
    first = command.replace("{seed}", "0").split()[0]
    from nightlab.agent.engine import python_for

    probe_cfg = ProjectConfig(command=command, metric=MetricConfig(name="x", goal="maximize"))
    python = python_for(ws.root, probe_cfg)
    if first != "python" and shutil.which(first) is None and not (ws.root / first).exists():
        raise NightlabError(f"command not found: {first!r} (from the training command {command!r})")
    protected = protected_files(ws.root, tracked, entry or "")
    editable = editable_files(ws.root, entry, tracked, protected) if entry else [
        p for p in tracked if p.endswith(".py") and p not in protected]
    dirty = ws.dirty_paths(editable)
    if dirty:
        raise GitError(f"uncommitted changes in {', '.join(sorted(dirty))}: nightlab edits these files, so commit "
                       "or stash them first")
    links = untracked_links(ws)
    if links:
        notes.append(f"linked into each experiment (untracked): {', '.join(links)}")
    baseline: float | None = None
    seconds: float | None = None
    name, goal, regex = opts.metric, opts.goal, opts.metric_regex
    tb: TensorBoardFindings | None = None
    if opts.run:
        say("running the baseline once (the committed code, in a temporary copy, sandboxed like every job) ...")
        events = TensorBoardFindings()
        log, rc, seconds, timed_out = run_once(ws.root, ws, command, links, opts.timeout or 3600, progress, python,
                                               unsafe=opts.unsafe_no_sandbox, inspect=events.inspect)
        if timed_out:
            raise NightlabError(f"the baseline run exceeded {opts.timeout or 3600:g} s; pass a larger --timeout")
        if events.found:
            tb = events
            say(events.summary())
        tb_choice = _tensorboard_choice(opts, tb, log, name, ask)
        if tb_choice is not None:
            metric_cfg, baseline = tb_choice
            say(f"metric: {metric_cfg['name']} = {baseline:.6g} (TensorBoard scalar; baseline, {seconds:.1f} s)")
            return _write(ws, opts, command, metric_cfg, goal, ask, seconds, baseline, editable, protected, links,
                          notes, say)
        if opts.metric_source == "tensorboard":
            raise NightlabError(tb.error if tb is not None and tb.error else
                                "--metric-source tensorboard: the baseline wrote no TensorBoard event files")
        if name is None:
            cands = metrics.find_candidates(log)
            if not cands:
                tail = log.strip().splitlines()[-1:] or ["(no output)"]
                why = f"it exited with code {rc}" if rc else "it printed no name=value metric"
                hint = f" ({tb.error})" if tb is not None and tb.error else ""
                raise NightlabError(f"could not detect a metric: {why}{hint}; last line: {tail[0][:120]!r}; "
                                    "pass --metric (and --metric-regex if needed)")
            strong = [c for c in cands if metrics.guess_goal(c.name) is not None]
            if len(cands) == 1 or opts.yes or ask is None or (len(strong) == 1 and strong[0] is cands[0]):
                if ask is None and not opts.yes and len(strong) != 1 and len(cands) > 1:
                    names = ", ".join(c.name for c in cands[:5])
                    raise NightlabError(f"several metrics printed ({names}); pass --metric NAME or --yes to take "
                                        f"{cands[0].name!r}")
                name = cands[0].name
            else:
                name = ask("Which printed value is the metric to optimise?", [c.name for c in cands[:8]])
        if regex is None:
            chosen = next((c for c in metrics.find_candidates(log) if c.name == name), None)
            if chosen is not None and chosen.regex:
                regex = chosen.regex
        reading = metrics.parse_metric(log, name, regex)
        if reading.value is None and regex is None:
            regex = regex_for(log, name)
            if regex:
                reading = metrics.parse_metric(log, name, regex)
        if reading.value is None:
            if rc:
                raise NightlabError(f"the baseline failed (exit code {rc}) before printing {name!r}; fix it or pass "
                                    "--no-run with --metric and --goal so nightlab can debug it")
            raise NightlabError(f"metric {name!r} was not found in the baseline output ({reading.error}); "
                                "pass --metric-regex")
        baseline = reading.value
        say(f"metric: {name} = {baseline:.6g} (baseline, {seconds:.1f} s)")
    elif name is None or goal is None:
        raise NightlabError("--no-run needs --metric and --goal")
    assert name is not None
    source = {"source": "tensorboard"} if opts.metric_source == "tensorboard" else {}
    metric_cfg = {"name": name, "regex": regex, **source} if regex else {"name": name, **source}
    return _write(ws, opts, command, metric_cfg, goal, ask, seconds, baseline, editable, protected, links, notes, say)


def _write(ws: Workspace, opts: InitOptions, command: str, metric: dict[str, Any], goal: str | None, ask: Ask | None,
           seconds: float | None, baseline: float | None, editable: list[str], protected: list[str],
           links: list[str], notes: list[str], say: Callable[[str], None]) -> InitResult:
    """Settle the goal and the timeout, validate the whole config, and write nightlab.toml."""
    name = str(metric["name"])
    if goal is None:
        goal = metrics.guess_goal(name)
        if goal is None:
            if ask is not None and not opts.yes:
                goal = ask(f"Should {name} go up or down?", ["maximize", "minimize"])
            else:
                raise NightlabError(f"cannot tell whether {name!r} should go up or down; pass --goal")
    timeout = opts.timeout or (max(60.0, round((seconds or 60) * 5, -1)))
    try:
        cfg = ProjectConfig(command=command, metric=MetricConfig.model_validate({**metric, "goal": goal}),
                            timeout=timeout, editable=editable, protected=protected, links=links)
    except Exception as err:
        raise ConfigError(f"invalid setup: {err}") from None
    path = ws.root / CONFIG_FILE
    path.write_text(dump_config(cfg))
    ws.ensure_state_dir()
    return InitResult(cfg, path, baseline, seconds, notes)


@dataclass
class TensorBoardFindings:
    """The scalars of the event files the baseline wrote in its temporary copy (read before the copy goes)."""

    found: bool = False
    series: list[tbevents.Series] = field(default_factory=list)
    error: str | None = None  # events written but unreadable (the tensorboard package missing, a corrupt file)

    def inspect(self, copy: Path, started: float) -> None:
        folders = tbevents.event_folders(copy, since=started)
        self.found = bool(folders)
        if folders:
            try:
                self.series = tbevents.read_folders(copy, folders)
            except NightlabError as err:
                self.error = str(err)

    def summary(self) -> str:
        if self.error:
            return f"the baseline wrote TensorBoard event files: {self.error}"
        tags = sorted({s.tag for s in self.series})
        return f"the baseline wrote TensorBoard event files: {len(tags)} scalar tag(s) ({', '.join(tags[:6])}" \
               f"{', ...' if len(tags) > 6 else ''})"

    def candidates(self) -> list[tbevents.Series]:
        """Series worth offering as the metric, best first (ranked as printed candidates are)."""
        def score(s: tbevents.Series) -> float:
            toks = [t for t in re.split(r"[^a-z0-9]+", f"{s.folder} {s.tag}".lower()) if t]
            v = 4.0 if metrics.guess_goal(s.tag) is not None else 0.0
            v += 3.0 if any(t in ("val", "valid", "validation", "test", "eval", "dev", "holdout") for t in toks) \
                else 0.0
            v -= 3.0 if any(t in ("train", "training", "trn") for t in toks) else 0.0
            v -= 5.0 if any(t in ("lr", "learning", "rate", "time", "epoch", "step", "grad", "norm") for t in toks) \
                else 0.0
            return v

        usable = [s for s in self.series if s.points and math.isfinite(s.points[-1][1])]
        return sorted(usable, key=lambda s: (-score(s), s.label))


def _tensorboard_choice(opts: InitOptions, tb: TensorBoardFindings | None, log: str, name: str | None,
                        ask: Ask | None) -> tuple[dict[str, Any], float] | None:
    """The metric config and baseline value when the metric is to come from the baseline's event files: asked for
    (--metric-source tensorboard), named by --metric but never printed, picked when asked, or the only choice."""
    if tb is None or not tb.series or opts.metric_source == "log":
        return None
    cands = tb.candidates()
    if not cands:
        return None
    chosen: tbevents.Series | None = None
    if name is not None:
        if opts.metric_source != "tensorboard" and metrics.parse_metric(log, name, opts.metric_regex).ok:
            return None  # printed: the log it is
        hits = [s for s in tb.series if s.tag == name]
        if not hits:
            return None
        chosen = hits[0]
    else:
        printed = metrics.find_candidates(log)
        if printed and opts.metric_source != "tensorboard":
            if ask is None or opts.yes:
                return None  # the printed metric wins without a question, as before
            label = {f"{s.label} (TensorBoard)": s for s in cands[:4]}
            answer = ask("Which value is the metric to optimise?", [c.name for c in printed[:6]] + list(label))
            chosen = label.get(answer)
            if chosen is None:
                return None
        elif len(cands) == 1 or opts.yes or ask is None:
            chosen = cands[0]
        else:
            label = {f"{s.label} (TensorBoard)": s for s in cands[:8]}
            chosen = label[ask("Which TensorBoard scalar is the metric to optimise?", list(label))]
    assert chosen is not None
    metric: dict[str, Any] = {"name": chosen.tag, "source": "tensorboard"}
    if len([s for s in tb.series if s.tag == chosen.tag]) > 1:
        metric["logdir"] = chosen.folder or "."
    mcfg = MetricConfig.model_validate({**metric, "goal": metrics.guess_goal(chosen.tag) or "maximize"})
    reading = run_metrics.tensorboard_reading(mcfg, [s for s in tb.series if s.folder == chosen.folder])
    if reading.value is None:
        raise NightlabError(f"the baseline's TensorBoard metric is unusable: {reading.error}")
    return metric, reading.value
