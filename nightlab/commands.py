"""The CLI's command handlers: thin glue between argparse, the agent's front desk (agent/actions.py to act,
agent/views.py to read) and the console. Each handler imports what it needs when it runs, so one command never pays
for another's imports; none opens the store, git or the sandbox itself (tests/test_layers.py)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from nightlab import console
from nightlab.agent.config import load_config
from nightlab.agent.metric_text import fmt_metric
from nightlab.agent.states import ApprovalState, Mode, SessionState
from nightlab.errors import NightlabError


def _tty() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


# ----------------------------------------------------------------------------------------------- init
def cmd_init(root: Path, args: argparse.Namespace) -> int:
    from nightlab.agent.actions import InitOptions

    opts = InitOptions(command=args.command, metric=args.metric, metric_regex=args.metric_regex, goal=args.goal,
                       timeout=args.timeout, yes=args.yes, run=not args.no_run, force=args.force,
                       unsafe_no_sandbox=args.unsafe_no_sandbox, metric_source=args.metric_source)
    progress = console.Progress("baseline") if sys.stderr.isatty() else None

    def ask_after_progress(question: str, choices: list[str]) -> str:
        if progress is not None:
            progress.break_line()  # the baseline's last line stays; the question starts on a line of its own
        return console.ask_choice(question, choices)

    ask = ask_after_progress if _tty() and not args.yes else None
    try:
        res = _desk(root, who="console").init(opts, ask=ask, progress=progress.update if progress else None)
    finally:
        if progress:
            progress.close()
    for n in res.notes:
        print(n)
    print(f"wrote {res.path}: metric {res.config.metric.name} ({res.config.metric.goal}), "
          f"{len(res.config.editable)} editable and {len(res.config.protected)} protected file(s), "
          f"timeout {res.config.timeout:g} s")
    print("next: `nightlab run` (step mode asks before each run) or `nightlab` for the TUI")
    return 0


# ----------------------------------------------------------------------------------------------- run / wake
def _apply_overrides(cfg: Any, args: argparse.Namespace) -> None:
    if getattr(args, "policy", None):
        cfg.search.policy = args.policy
    if getattr(args, "model", None):
        cfg.llm.model = args.model
        if not getattr(args, "policy", None):
            cfg.search.policy = "llm"
    if getattr(args, "api_base", None):
        cfg.llm.api_base = args.api_base


def deadline_of(hours: float | None, until: tuple[int, int] | None, now: float | None = None) -> float | None:
    """`run --hours H` / `--until HH:MM` as epoch seconds: H hours from now, or the next time the local clock
    shows HH:MM (today, else tomorrow)."""
    import datetime as dt
    import time

    now = time.time() if now is None else now
    if hours is not None:
        return now + hours * 3600
    if until is None:
        return None
    start = dt.datetime.fromtimestamp(now)
    target = start.replace(hour=until[0], minute=until[1], second=0, microsecond=0)
    if target <= start:
        target += dt.timedelta(days=1)
    return target.timestamp()


def cmd_run(root: Path, args: argparse.Namespace) -> int:
    from nightlab.agent.actions import FrontDesk
    from nightlab.errors import Interrupted

    cfg = load_config(root)
    _apply_overrides(cfg, args)
    desk = FrontDesk(root, cfg=cfg, who="console")
    mode = args.mode or desk.resume_mode()
    if mode == Mode.STEP and not _tty() and not args.yes and not args.detach:
        raise NightlabError("step mode asks on the terminal, but there is none; use --detach (approve with "
                            "`nightlab approve ID`), --mode autonomous, --yes, or the TUI")
    printer = console.EventPrinter(cfg)
    if args.yes:
        approver = console.auto_approver
    elif mode == Mode.STEP and not args.detach:
        approver = console.ConsoleApprover(printer)
    else:
        approver = None  # detached: proposals wait in the approval queue (TUI, `nightlab approve`)
    engine = desk.start(cfg, mode=mode, budget=args.budget, detach=args.detach,
                        unsafe_no_sandbox=args.unsafe_no_sandbox, approver=approver, on_event=printer,
                        deadline=deadline_of(getattr(args, "hours", None), getattr(args, "until", None)))
    printer.engine = engine
    try:
        summary = engine.run()
    except KeyboardInterrupt:
        raise Interrupted("interrupted: running jobs were stopped and recorded; `nightlab run` resumes them") \
            from None
    finally:
        printer.close()
    if summary.state == SessionState.HIBERNATING:
        print("hibernating: jobs are running detached; they wake nightlab when they end. "
              "`nightlab status` shows progress.")
        return 0
    console.print_table(cfg, summary)
    if engine.report_files is not None:
        print(f"\nreport: {engine.report_files.html}")
    return 0


def cmd_wake(root: Path, args: argparse.Namespace) -> int:
    from nightlab.agent.actions import FrontDesk

    printer = None if args.quiet else console.EventPrinter()
    try:
        said = FrontDesk(root, who="wake").wake(on_event=printer)
    finally:
        if printer is not None:
            printer.close()
    if said and not args.quiet:
        print(said)
    return 0


# ----------------------------------------------------------------------------------------------- doctor
def cmd_doctor(root: Path, args: argparse.Namespace) -> int:
    from nightlab.agent.actions import PROBLEM

    findings = _desk(root).doctor(sandbox=not args.no_sandbox_probe)
    for f in findings:
        print(f.line())
    return 1 if any(f.state == PROBLEM for f in findings) else 0


# ----------------------------------------------------------------------------------------------- status
def cmd_status(root: Path, args: argparse.Namespace) -> int:
    from nightlab.agent.views import DeskReads

    data = DeskReads(root, cfg=load_config(root)).status()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        console.print_status(data)
    return 0


# ----------------------------------------------------------------------------------------------- plan
def cmd_plan(root: Path, args: argparse.Namespace) -> int:
    import tempfile

    desk = _desk(root)
    if desk.open_project() is None:
        raise NightlabError(f"{root}: no nightlab.toml here (run `nightlab init` first)")
    deadline = deadline_of(getattr(args, "hours", None), getattr(args, "until", None))
    data = desk.draft_plan(redraft=args.redraft, deadline=deadline)
    text = None
    if args.edit:
        with tempfile.TemporaryDirectory(prefix="nightlab-plan-") as tmp:
            path = Path(tmp) / "plan.toml"
            path.write_text(desk.plan_toml())
            if console.run_editor([path]) != 0:
                raise NightlabError("the editor failed; the plan is unchanged")
            text = path.read_text()
    if text is not None or args.drop or args.budget or args.order or args.approve:
        data = desk.edit_plan(drop=args.drop, budgets=args.budget, order=args.order, toml_text=text,
                              approve=args.approve, deadline=deadline)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        console.print_plan(data)
    return 0


# ----------------------------------------------------------------------------------------------- projects
def cmd_projects(root: Path, args: argparse.Namespace) -> int:
    from nightlab.agent.views import projects_overview

    rows = projects_overview()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        console.print_projects(rows)
    return 0


# ----------------------------------------------------------------------------------------------- diff / log
def _desk(root: Path, who: str | None = None) -> Any:
    """The front desk of the project (imported here: it brings the engine, which `--help` must not load)."""
    from nightlab.agent.actions import FrontDesk, who_cli

    return FrontDesk(root, who=who or who_cli())


def cmd_diff(root: Path, args: argparse.Namespace) -> int:
    desk = _desk(root)
    change = desk.command_change(args.id, against_base=args.base)
    text = desk.diff(args.id, against_base=args.base, stat=args.stat)
    if args.stat:
        print(text + (" (and the command)" if change else ""))
        return 0
    if change:
        console.print_diff(f"command:\n- {change[0]}\n+ {change[1]}\n")
    console.print_diff(text)
    return 0


def cmd_log(root: Path, args: argparse.Namespace) -> int:
    from nightlab.agent.terminal_text import TerminalFilter

    log = _desk(root).run_log(args.id)
    # to a terminal, what draws and nothing that acts beyond the screen (terminal_text.py); to a file, every byte
    screen = TerminalFilter() if sys.stdout.isatty() else None

    def write(chunk: bytes, final: bool = False) -> None:
        sys.stdout.buffer.write(screen.feed(chunk, final) if screen is not None else chunk)
        sys.stdout.flush()

    with log.open() as f:  # the wrapper's file: never a link or FIFO someone put in its place
        if args.lines:
            lines = log.last_lines(args.lines)
            write(("\n".join(lines) + ("\n" if lines else "")).encode("utf-8", "surrogateescape"), final=True)
            f.seek(0, os.SEEK_END)
        else:
            while chunk := f.read(65536):
                write(chunk)
            write(b"", final=not args.follow)
        if not args.follow:
            return 0
        while True:
            chunk = f.read(65536)
            if chunk:
                write(chunk)
                continue
            if log.ended():
                write(f.read(), final=True)
                return 0
            time.sleep(0.2)


# ----------------------------------------------------------------------------------------------- promote
def cmd_promote(root: Path, args: argparse.Namespace) -> int:
    desk = _desk(root, who="console")
    e = desk.experiment(args.id)
    preview = desk.preview_promote(e.id)
    if preview.command:
        console.print_diff(preview.command_text())
        print("promote also sets this command in the project config (your training runs with it from now on)")
    console.print_diff(preview.diff)
    print(f"\npromote #{e.id} onto {preview.branch}: {preview.stat}  —  {e.title}")
    if not args.yes:
        if not _tty():
            raise NightlabError("promote asks for confirmation on a terminal; pass --yes to promote without asking")
        if not console.confirm("Commit this onto your branch?"):
            print("not promoted")
            return 1
    done = desk.promote(e.id)
    print(f"committed {done.commit[:10]} on {done.branch}: {e.title}")
    if preview.artifacts is not None and preview.artifacts.on_disk:
        print(f"the files its run wrote stay in {preview.artifacts.describe()}: copy what you need")
    elif preview.artifacts is not None:
        print(f"the files its run wrote were {preview.artifacts.describe()}")
    return 0


# ----------------------------------------------------------------------------------------------- approvals
def _decide(root: Path, target: str, state: ApprovalState, feedback: str | None = None) -> int:
    desk = _desk(root)
    if target == "budget":
        desk.decide_budget(state, feedback)
        print(f"{state} the model cost budget extension")
        return 0
    if target == "compute":
        from nightlab.agent.states import ApprovalKind

        desk.decide_budget(state, feedback, ApprovalKind.COMPUTE)
        print(f"{state} going over the compute budget")
        return 0
    if not target.isdigit():
        raise NightlabError(f"{target!r}: expected an experiment id, `budget` or `compute`")
    e = desk.experiment(int(target))
    if state == ApprovalState.APPROVED:
        desk.approve(e.id)
    else:
        desk.reject(e.id, feedback)
    print(f"{state} #{e.id}: {e.title}")
    return 0


def cmd_approve(root: Path, args: argparse.Namespace) -> int:
    return _decide(root, args.id, ApprovalState.APPROVED)


def cmd_reject(root: Path, args: argparse.Namespace) -> int:
    return _decide(root, args.id, ApprovalState.REJECTED, args.why or None)


def cmd_stop(root: Path, args: argparse.Namespace) -> int:
    desk = _desk(root)
    e = desk.experiment(args.id)
    if desk.running_job(e.id) is None:
        raise NightlabError(f"experiment #{e.id} has no running job")
    if not args.yes:
        if not _tty():
            raise NightlabError("stop asks for confirmation on a terminal; pass --yes")
        if not console.confirm(f"Stop the running job of #{e.id} ({e.title})?"):
            return 1
    desk.stop_job(e.id)
    print(f"stopping the job of #{e.id}")
    return 0


# ----------------------------------------------------------------------------------------------- memory
def cmd_memory(root: Path, args: argparse.Namespace) -> int:
    load_config(root)
    print(_desk(root).memory(" ".join(args.query)))
    return 0


# ----------------------------------------------------------------------------------------------- report
def cmd_report(root: Path, args: argparse.Namespace) -> int:
    load_config(root)
    files = _desk(root).write_report(args.session, Path(args.output).resolve() if args.output else None)
    print(f"markdown: {files.markdown}" + (f" (with {len(files.images)} PNG(s) beside it)" if files.images else ""))
    print(f"report: {files.html}")
    if args.open:
        import webbrowser

        if not webbrowser.open(files.html.as_uri()):
            raise NightlabError(f"no browser could be started; open {files.html} yourself")
    return 0


# ----------------------------------------------------------------------------------------------- export
def cmd_export(root: Path, args: argparse.Namespace) -> int:
    if args.what == "mlflow":
        return _export_mlflow(root, args)
    if args.what == "tensorboard":
        return _export_tensorboard(root, args)
    load_config(root)
    lines = _desk(root).export_trajectories(args.format)
    text = "".join(json.dumps(x) + "\n" for x in lines)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {len(lines)} step(s) ({args.format}) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# ----------------------------------------------------------------------------------------------- learn / explore
def cmd_learn(root: Path, args: argparse.Namespace) -> int:
    from nightlab.agent.actions import LearnOptions, learn, paying_moves
    from nightlab.agent.config import LearnedConfig

    try:
        import torch  # noqa: F401  (the trainer's only heavy dependency: say so before reading anything)
    except ImportError:
        raise NightlabError("nightlab learn trains with torch, which is not installed: "
                            "pip install 'nightlab[learn]'") from None
    progress = console.Progress("learn") if sys.stderr.isatty() else None
    t0 = time.monotonic()
    try:
        res, out = learn(
            Path(args.store).expanduser() if args.store else None,
            LearnOptions(epochs=args.epochs, entropy=args.entropy, clip=args.clip,
                         duration_aware=not args.no_duration),
            Path(args.output).expanduser() if args.output else None,
            progress=(lambda i, loss: progress.update(time.monotonic() - t0,
                                                      f"epoch {i}/{args.epochs} loss {loss:.4f}"))
            if progress else None)
    finally:
        if progress:
            progress.close()
    print(f"trained on {res.steps} step(s) from {res.projects} project(s) in {res.seconds:.1f} s "
          f"({'duration-weighted' if not args.no_duration else 'every step alike'}); "
          f"loss {res.losses[0]:.4f} -> {res.losses[-1]:.4f}")
    floor = LearnedConfig().min_support
    backed = sorted((n, k) for k, n in res.scorer.support.items() if n >= floor)
    print(f"it may reorder {len(backed)} of {len(res.scorer.support)} classes of move, each taken at least {floor} "
          f"times ([learned] min_support)" + (f": {', '.join(k for _, k in reversed(backed))}" if backed else "")
          + "; the others keep the builtin's order")
    pays = [f"{k} ({mean:+.2f}, {n} steps)" for k, n, mean, _ in paying_moves(res, floor)]
    print("moves that paid confidently in these data, by the best run's regime (mean advantage over the project's "
          f"mean reward, less a standard error, above zero; {floor}+ steps): "
          + (f"{', '.join(pays)}; where the builtin's own first move has not done better, the policy takes a "
             "winning step once more (a move the builtin never makes) in those" if pays else "none"))
    print(f"model: {out} ({out.stat().st_size / 1024:.1f} kB); use it with search.policy = \"learned\"")
    return 0


def cmd_explore(root: Path, args: argparse.Namespace) -> int:
    """Autonomous sessions with the explore policy in each project, one after the other."""
    from nightlab.agent.actions import FrontDesk, explore_policy

    roots = [Path(p).resolve() for p in args.paths] or [root]
    for r in roots:
        cfg = load_config(r)
        printer = console.EventPrinter(cfg)
        desk = FrontDesk(r, cfg=cfg, who="console")
        engine = desk.start(cfg, mode="autonomous", budget=args.budget, unsafe_no_sandbox=args.unsafe_no_sandbox,
                            policy=explore_policy(args.temperature), on_event=printer)
        printer.engine = engine
        try:
            summary = engine.run()
        finally:
            printer.close()
        steps = desk.steps_recorded(summary.session_id)
        print(f"{r}: explored {summary.runs_started} run(s); {steps} decision step(s) "
              f"recorded" + ("" if cfg.experience.share else " (this project does not share them)"))
    return 0


# ----------------------------------------------------------------------------------------------- demo / tui
def cmd_demo(root: Path, args: argparse.Namespace) -> int:
    from nightlab.agent.actions import InitOptions, make_demo_project
    from nightlab.agent.config import ProjectConfig

    repo = make_demo_project(Path(args.dir) if args.dir else None)
    print(f"demo project: {repo}")
    progress = console.Progress("baseline") if sys.stderr.isatty() else None
    try:
        res = _desk(repo, who="console").init(InitOptions(yes=True, goal="maximize",
                                                          unsafe_no_sandbox=args.unsafe_no_sandbox),
                                              progress=progress.update if progress else None)
    finally:
        if progress:
            progress.close()
    cfg: ProjectConfig = res.config
    cfg.search.budget = args.budget
    from nightlab.agent.config import dump_config

    (repo / "nightlab.toml").write_text(dump_config(cfg))
    if _tty() and not args.headless and not os.environ.get("NIGHTLAB_NO_TUI"):
        from nightlab.tui.app import run_tui

        return int(run_tui(repo, mode=args.mode, budget=args.budget, start=True,
                           unsafe_no_sandbox=args.unsafe_no_sandbox))
    print(f"running {args.budget} training runs in {args.mode} mode with the builtin policy (no LLM, no network)")
    desk = _desk(repo, who="console")
    printer = console.EventPrinter(cfg)
    engine = desk.start(cfg, mode=args.mode, budget=args.budget, on_event=printer,
                        unsafe_no_sandbox=args.unsafe_no_sandbox,
                        approver=console.ConsoleApprover(printer) if args.mode == Mode.STEP else None)
    printer.engine = engine
    try:
        summary = engine.run()
    finally:
        printer.close()
    console.print_table(cfg, summary)
    base = desk.baseline()
    if summary.best_id is not None and summary.baseline is not None and base is not None \
            and summary.best_id != base.id:
        print(f"\nbest: #{summary.best_id} {cfg.metric.name} {fmt_metric(summary.best)} "
              f"vs baseline {fmt_metric(summary.baseline)}\n")
        console.print_diff(desk.diff(summary.best_id, against_base=True))
        print(f"\nreview and keep it: nightlab -C {repo} promote {summary.best_id}")
    if engine.report_files is not None:
        print(f"\nreport: {engine.report_files.html}")
    return 0


def cmd_tui(root: Path, args: argparse.Namespace) -> int:
    try:
        from nightlab.tui.app import run_tui
    except ImportError as err:
        raise NightlabError(f"the TUI is not available: {err}") from None
    return int(run_tui(root))


def _export_mlflow(root: Path, args: argparse.Namespace) -> int:
    desk = _desk(root)
    progress = console.Progress("mlflow") if sys.stderr.isatty() else None
    t0 = time.monotonic()
    try:
        res = desk.export_mlflow(args.tracking_uri, experiment=args.experiment, progress=(
            lambda i, n: progress.update(time.monotonic() - t0, f"run {i}/{n}")) if progress else None)
    finally:
        if progress:
            progress.close()
    print(f"{res.runs} run(s) in MLflow experiment {res.experiment!r} (id {res.experiment_id}) at {res.uri}: "
          f"{res.created} created, {res.updated} updated, {res.unchanged} unchanged")
    return 0


def _export_tensorboard(root: Path, args: argparse.Namespace) -> int:
    n, sid, dest = _desk(root).export_tensorboard(args.session, Path(args.output) if args.output else None)
    print(f"{n} run(s) of session {sid} in {dest}")
    print(f"open them: tensorboard --logdir {shlex.quote(str(dest))}")
    return 0
