"""`nightlab init`: find how a repo trains, run it once, learn what it reports, and write nightlab.toml.

Detection is heuristic but never silent: every guess is shown, ambiguous ones are asked (or need a flag in
scripts), and nothing is written unless the whole setup succeeded.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightlab.agent import (
    code_reach,
    data_links,
    diagnose,
    download_caches,
    measuring,
    metrics,
    run_metrics,
    tbevents,
)
from nightlab.agent.code_reach import CONFIG_EXT
from nightlab.agent.config import CONFIG_FILE, MetricConfig, ProjectConfig, dump_config, find_config
from nightlab.agent.edits import matches_any
from nightlab.agent.goal import Goal
from nightlab.agent.launcher import python_for
from nightlab.agent.metric_text import fmt_metric
from nightlab.agent.states import FailureClass
from nightlab.agent.task_runners import TASK_FILES
from nightlab.agent.workspace import Workspace
from nightlab.errors import ConfigError, GitError, NightlabError
from nightlab.sandbox import isolate, runner, slots
from nightlab.sandbox.spec import OUT_DIR, JobEnd, JobSpec

ENTRY_NAMES = ("train.py", "main.py", "run.py", "train_model.py", "fit.py")
ENTRY_DIRS = ("", "src", "scripts", "tools")


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
    crashed: str | None = None  # why the baseline failed, when the config was written anyway


Ask = Callable[[str, list[str]], str]  # question, choices -> answer (one of the choices)
Progress = Callable[[float, str], None]  # elapsed seconds, last log line


# what a script that trains contains: a backward pass, an optimizer, a trainer's fit (a generic `main.py` or `run.py`
# is the entry only with one of them)
_TRAINS = re.compile(r"\.backward\(|\boptim\.|\.fit\(|Trainer\(|\.train\(|LightningCLI\(|\bcli\("
                     r"|(?<![\w.])train\(|(?<![\w.])fit\(")


def find_entry(root: Path, tracked: list[str]) -> str | None:
    """The training script: a conventional name at a conventional place, else a tracked *train*.py with a main."""
    tset = set(tracked)
    for name in ENTRY_NAMES:  # the name first: `src/train.py` before a root `main.py` (a demo app, often)
        for d in ENTRY_DIRS:
            rel = f"{d}/{name}" if d else name
            if rel in tset and ("train" in name or _TRAINS.search(_read(root / rel))):
                return rel
    cands = [p for p in tracked if p.endswith(".py") and "train" in Path(p).name.lower()]
    cands = [p for p in cands if "__main__" in _read(root / p)]
    cands.sort(key=lambda p: (p.count("/"), len(p)))
    if cands:
        return cands[0]
    # a generic name that shows no training itself (it calls into a package): still the likeliest entry
    return next((f"{d}/{n}" if d else n for n in ENTRY_NAMES for d in ENTRY_DIRS if (f"{d}/{n}" if d else n) in tset),
                None)


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


def editable_files(root: Path, tracked: list[str], reached: code_reach.Reach,
                   protected: list[str]) -> dict[str, str]:
    """The files that decide the run's effective configuration, each with why: the scripts the command runs, every
    local module they import (at any depth), files they exec or load, config files named on the command line or
    in the code — minus protected files. Config files next to the entry with a telling name are added last."""
    out: dict[str, str] = {}
    for p, why in reached.files.items():
        task_file = posixpath.basename(p) in TASK_FILES  # the Makefile / justfile whose recipe the command runs
        if (p.endswith((".py", ".sh", *CONFIG_EXT)) or task_file) and not matches_any(p, protected):
            out[p] = why
    entry_dir = posixpath.dirname(reached.entry) if reached.entry else ""
    for p in tracked:
        if p not in out and code_reach.config_like(p) and posixpath.dirname(p) in (entry_dir, "") \
                and not matches_any(p, protected):
            out[p] = "a config file next to the entry (not seen loaded)"
    return out


def run_once(root: Path, ws: Workspace, command: str, links: list[str], timeout: float,
             progress: Progress | None, python: str, unsafe: bool = False,
             inspect: Callable[[Path, float], None] | None = None) -> tuple[str, int | None, float, bool]:
    """Run the committed code once in a temporary copy (never in the user's tree), through the same detached wrapper
    and sandbox as every experiment (`unsafe`: layer 0 only, as `--unsafe-no-sandbox`). Returns log, rc, secs,
    timed_out. A missing sandbox layer is a NightlabError naming it, before anything runs.

    `inspect(copy, started)` looks at what the run left in its copy (event files) before the copy is removed."""
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
                (wt / rel).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(src, wt / rel)
        env = isolate.job_environment(dict(os.environ), {}, [])
        env["PATH"] = str(Path(python).parent) + os.pathsep + env.get("PATH", os.defpath)
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("MKL_NUM_THREADS", "1")
        env["PYTHONUNBUFFERED"] = "1"
        mirror = download_caches.mirror_datasets_cache(os.environ, run_dir / OUT_DIR)
        env.update(download_caches.job_env(os.environ, network=False, datasets_mirror=mirror))
        git_env, git_readable = ws.job_git(wt, "HEAD", tmp / "git")
        env.update(git_env)
        spec = JobSpec(job_id="init-baseline", argv=["/bin/sh", "-c", command.replace("{seed}", "0")], cwd=str(wt),
                       run_dir=str(run_dir), env=env, timeout_s=timeout, isolation=isolation,
                       readable=[str(root / rel) for rel in links] + download_caches.read_only_dirs(os.environ)
                       + git_readable,
                       instrument=False)
        status = runner.run_to_end(spec, on_tick=None if progress is None else (
            lambda elapsed: progress(elapsed, runner.last_log_line(run_dir))))
        log = runner.read_log(run_dir)
        if status.state == JobEnd.FAILED and status.reason and status.exit_code is None:
            log += f"\n[nightlab: {status.reason}]"
        if inspect is not None:
            inspect(wt, status.started_at)
        return log, status.exit_code, status.seconds, status.state == JobEnd.TIMED_OUT
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_MISSING_RE = re.compile(r"(?:No such file or directory|does not exist|not found|cannot find|can't open file)"
                         r"[^'\"\n]*?['\"]([^'\"\n]+)['\"]", re.I)


def missing_paths(log: str) -> list[str]:
    """Repo-relative paths a failed run says it could not open (absolute paths inside init's temporary copy are
    made relative again)."""
    out: list[str] = []
    for m in _MISSING_RE.finditer(log[-20_000:]):
        raw = m.group(1)
        tmp = re.search(r"/nightlab-init-[^/]+/(?:wt/)?(.*)$", raw)  # run_once's copy
        rel = code_reach.normalise(tmp.group(1) if tmp else raw)
        if rel and rel not in out:
            out.append(rel)
    return out


def failure_report(log: str, rc: int | None, lines: int = 12) -> str:
    """Why a baseline failed: the classified one-line reason and the last lines of its output, indented."""
    failure = diagnose.classify_failure(log, rc, "failed" if rc else "succeeded", "", None)
    summary = _INIT_COPY_RE.sub("", failure.summary)  # paths in run_once's copy, repo-relative again
    if failure.cls == FailureClass.NETWORK:  # the way past it in full, on a line of its own (the summary is cut)
        summary = summary.split(f": {diagnose.NETWORK_HINT[:24]}")[0] + f"\n  {diagnose.NETWORK_HINT}"
    return f"{summary}\n{_quoted_tail(log, lines)}"


_INIT_COPY_RE = re.compile(r"/\S*?/nightlab-init-[^/\s]+/wt/")


def _quoted_tail(log: str, lines: int) -> str:
    """The last non-blank lines of a run's output, quoted (`  | `) so they never read as nightlab's own."""
    tail = [ln for ln in log.rstrip().splitlines() if ln.strip()][-lines:] or ["(no output)"]
    return "  last lines of its output:\n" + "\n".join(f"  | {ln[:200]}" for ln in tail)


def _missing_program(command: str, root: Path) -> str | None:
    """The first program of the command's segments that is neither on PATH nor in the repository (None if all
    are found). Shell builtins and `VAR=value` prefixes are skipped."""
    for seg in re.split(r"&&|\|\||;|\|", command.replace("{seed}", "0")):
        toks = seg.strip().lstrip("(").split()  # `(cd src && python train.py)`: the subshell runs `cd`
        while toks and re.match(r"^[A-Za-z_]\w*=", toks[0]):
            toks = toks[1:]
        if not toks or toks[0] in _SHELL_BUILTINS:
            continue
        prog = toks[0]
        if prog == "python" or shutil.which(prog) is not None or (root / prog).exists():
            continue
        return prog
    return None


_SHELL_BUILTINS = frozenset({"cd", "export", "set", "source", ".", "exec", "env", "time", "nice", "true", "echo",
                             "unset", "ulimit", "umask"})


_CRASH_HINT = "fix it, or pass --command, --metric and --goal: init then writes the config anyway and `nightlab run` " \
              "starts by debugging the baseline"


def _list(title: str, items: dict[str, str]) -> str:
    return title + "".join(f"\n  {p} — {why}" for p, why in items.items())


def init_project(root: Path, opts: InitOptions, ask: Ask | None = None, progress: Progress | None = None,
                 say: Callable[[str], None] = print) -> InitResult:
    """Detect, run the baseline once, and write nightlab.toml. Nothing is written if anything fails, except that
    a crashing baseline still gets its config when command, metric and goal were all given (`run` debugs it)."""
    ws = Workspace(root)
    existing = find_config(ws.root)
    if existing is not None and not opts.force:
        raise ConfigError(f"{existing}: already configured (use --force to overwrite)")
    tracked = ws.tracked_files()
    notes: list[str] = []
    command = opts.command
    if command is None:
        found = find_entry(ws.root, tracked)
        if found is None:
            raise NightlabError(f"{ws.root}: no training script found (looked for {', '.join(ENTRY_NAMES)}); "
                                "pass --command")
        command = guess_command(ws.root, found)
        say(f"training command: {command}")
    probe_cfg = ProjectConfig(command=command, metric=MetricConfig(name="x", goal=Goal.MAXIMIZE))
    python = python_for(ws.root, probe_cfg)
    missing = _missing_program(command, ws.root)
    if missing is not None:
        raise NightlabError(f"command not found: {missing!r} (from the training command {command!r})")
    reached = code_reach.reach(ws.root, tracked, command)
    # what measures the model or provides its data (measuring.py); traced from the metric once its name is known
    protected = measuring.protected_files(str(ws.root), tracked, reached, opts.metric)
    if reached.entry is not None:
        editable = editable_files(ws.root, tracked, reached, list(protected))
    else:
        editable = {p: "tracked Python (the command names no script nightlab can read)" for p in tracked
                    if p.endswith(".py") and p not in protected}
    dirty = ws.dirty_paths(list(editable))
    if dirty:
        raise GitError(f"uncommitted changes in {', '.join(sorted(dirty))}: nightlab edits these files, so commit "
                       "or stash them first")
    cands = data_links.candidates(ws)
    link_plan = data_links.plan(cands, reached.refs)
    links = {ln.path: ln.why for ln in link_plan.links}
    skipped = {ln.path: ln.why for ln in link_plan.skipped}
    baseline: float | None = None
    seconds: float | None = None
    name, goal, regex = opts.metric, opts.goal, opts.metric_regex
    tb: TensorBoardFindings | None = None
    crashed: str | None = None

    def write(metric_cfg: dict[str, Any]) -> InitResult:
        if metric_cfg["name"] != opts.metric:  # the metric was found in the baseline's output: trace it now
            protected.update(measuring.protected_files(str(ws.root), tracked, reached, str(metric_cfg["name"])))
            for p in protected:
                editable.pop(p, None)
        notes.append(_list("editable (the files that decide the run's configuration):", editable))
        if protected:
            notes.append(_list("protected (measure the model or provide its data; never edited, checked around "
                               "every run):", protected))
        if links:
            notes.append(_list("linked into each experiment (untracked data the code reads):", links))
        if skipped:
            notes.append(_list("not linked (the code writes there; each run gets its own):", skipped))
        gpus = slots.gpu_list()
        if gpus:
            notes.append(f"GPUs found: {', '.join(map(str, gpus))}; each job gets one (slots.gpus_per_job = "
                         "\"auto\")")
        res = _write(ws, opts, command, metric_cfg, goal, ask, None if crashed else seconds, baseline,
                     list(editable), list(protected), list(links), notes, say)
        if crashed is not None:
            res.crashed = crashed
            notes.append(f"{crashed}\nwrote the config anyway (command, metric and goal were given): `nightlab run` "
                         "starts by debugging the baseline")
        return res

    if opts.run:
        say("running the baseline once (the committed code, in a temporary copy, sandboxed like every job) ...")
        for _attempt in range(4):
            events = TensorBoardFindings()
            log, rc, seconds, timed_out = run_once(ws.root, ws, command, list(links), opts.timeout or 3600, progress,
                                                   python, unsafe=opts.unsafe_no_sandbox, inspect=events.inspect)
            if timed_out or not rc:
                break
            more = [c for p in missing_paths(log) for c in data_links.for_missing(p, cands, links)]
            if not more:
                break
            for c in more:
                links[c.path] = f"{c.origin()}; the baseline could not open it without a link"
            say(f"the baseline could not open {', '.join(c.path for c in more)} (untracked here): linked, "
                "running it again ...")
        if timed_out:
            raise NightlabError(f"the baseline run exceeded {opts.timeout or 3600:g} s; pass a larger --timeout\n"
                                f"{_quoted_tail(log, 8)}")
        if events.found:
            tb = events
            say(events.summary())
        tb_choice = _tensorboard_choice(opts, tb, log, name, ask)
        if tb_choice is not None:
            metric_cfg, baseline = tb_choice
            say(f"metric: {metric_cfg['name']} = {fmt_metric(baseline)} "
                f"(TensorBoard scalar; baseline, {seconds:.1f} s)")
            return write(metric_cfg)
        if opts.metric_source == "tensorboard":
            raise NightlabError(tb.error if tb is not None and tb.error else
                                "--metric-source tensorboard: the baseline wrote no TensorBoard event files")
        if name is None:
            cands_m = metrics.find_candidates(log)
            if not cands_m:
                if rc:
                    raise NightlabError(f"the baseline failed (exit code {rc}): {failure_report(log, rc)}\n"
                                        f"{_CRASH_HINT}")
                tail = log.strip().splitlines()[-1:] or ["(no output)"]
                hint = f" ({tb.error})" if tb is not None and tb.error else ""
                raise NightlabError(f"could not detect a metric: it printed no name=value metric{hint}; last line: "
                                    f"{tail[0][:120]!r}; pass --metric (and --metric-regex if needed)")
            strong = [c for c in cands_m if metrics.guess_goal(c.name) is not None]
            if len(cands_m) == 1 or opts.yes or ask is None or (len(strong) == 1 and strong[0] is cands_m[0]):
                if ask is None and not opts.yes and len(strong) != 1 and len(cands_m) > 1:
                    names = ", ".join(c.name for c in cands_m[:5])
                    raise NightlabError(f"several metrics printed ({names}); pass --metric NAME or --yes to take "
                                        f"{cands_m[0].name!r}")
                name = cands_m[0].name
            else:
                name = ask("Which printed value is the metric to optimise?", [c.name for c in cands_m[:8]])
        if regex is None:
            chosen = next((c for c in metrics.find_candidates(log) if c.name == name), None)
            if chosen is not None and chosen.regex:
                regex = chosen.regex
        reading = metrics.parse_metric(log, name, regex)
        if reading.value is None and regex is None:
            proposal = metrics.propose_regex(log, name)
            if proposal is not None:
                line, regex = proposal
                reading = metrics.parse_metric(log, name, regex)
                notes.append(f"metric.regex {regex!r}: {name!r} is printed only as {line[:120]!r}")
        if reading.value is None or rc:
            if rc:
                # a value printed before the crash (the first epoch's loss) is no baseline: the engine fails the run
                printed = f"before printing {name!r}" if reading.value is None else \
                    f"after printing {name} = {fmt_metric(reading.value)}"
                report = f"the baseline failed (exit code {rc}) {printed}: {failure_report(log, rc)}"
                if opts.command is None or opts.metric is None or opts.goal is None:
                    raise NightlabError(f"{report}\n{_CRASH_HINT}")
                crashed = report
            else:
                raise NightlabError(f"metric {name!r} was not found in the baseline output ({reading.error}); "
                                    "pass --metric-regex")
        else:
            baseline = reading.value
            say(f"metric: {name} = {fmt_metric(baseline)} (baseline, {seconds:.1f} s)")
    elif name is None or goal is None:
        raise NightlabError("--no-run needs --metric and --goal")
    assert name is not None
    source = {"source": "tensorboard"} if opts.metric_source == "tensorboard" else {}
    return write({"name": name, "regex": regex, **source} if regex else {"name": name, **source})


def _write(ws: Workspace, opts: InitOptions, command: str, metric: dict[str, Any], goal: str | None, ask: Ask | None,
           seconds: float | None, baseline: float | None, editable: list[str], protected: list[str],
           links: list[str], notes: list[str], say: Callable[[str], None]) -> InitResult:
    """Settle the goal and the timeout (5x the baseline's run time, at least a minute; the default when no
    baseline finished), validate the whole config, and write nightlab.toml."""
    name = str(metric["name"])
    if goal is None:
        goal = metrics.guess_goal(name)
        if goal is None:
            if ask is not None and not opts.yes:
                goal = ask(f"Should {name} go up or down?", ["maximize", "minimize"])
            else:
                raise NightlabError(f"cannot tell whether {name!r} should go up or down; pass --goal")
    timeout = opts.timeout or (max(60.0, round(seconds * 5, -1)) if seconds is not None
                               else ProjectConfig.model_fields["timeout"].default)
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
