"""The `nightlab` command line. Imports stay lazy so `nightlab --help` starts in well under 0.3 s.

Every user-facing failure is a NightlabError: printed as one line `nightlab: <message>` with a non-zero exit code,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
commands:
  init [PATH]          detect the training command and metric, run the baseline once, write nightlab.toml
  run                  run the experiment loop (step mode asks before each run)
  plan                 the session's plan: phases, budgets, estimates; --approve, --drop, --budget, --order, --edit
  status [--json]      the experiment tree, best result, running jobs, pending approvals
  projects [--json]    every project you have run: mode, engine, best vs baseline, jobs, approvals
  diff ID              the change an experiment makes (against its parent, or --base)
  log ID [-f]          an experiment's training log (-f follows it)
  promote ID           review the diff and commit it onto your branch
  approve ID / reject ID --why TEXT   answer a pending approval from any shell
  stop ID              stop a running job (asks first)
  wake [PATH]          resume a hibernating session (jobs call this; safe from cron)
  doctor               check the store, the worktrees and the sandbox; repair what is safe to repair
  memory [WORDS]       the record of hypotheses and outcomes (what the policies read)
  report [SESSION]     the morning report: plots, ranked table, decisions, best diff (HTML + Markdown)
  export trajectories  every decision step as JSONL for fine-tuning (--format sft|prompt-completion|rewards)
  export mlflow        every experiment as an MLflow run (nested under its session); reruns update
  export tensorboard   a session's TensorBoard event files, one folder per experiment, for `tensorboard --logdir`
  learn                train the learned policy (search.policy = "learned") on your projects' experience
  explore [PATH ...]   sessions that sample diverse moves, to grow the experience store
  demo                 copy the bundled example into a temp repo and improve it
  tui                  open the terminal UI (also: `nightlab` with no command)

Run `nightlab COMMAND --help` for the options of one command."""


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line naming the argument, like every other nightlab error (not a usage dump)."""

    def error(self, message: str) -> Any:  # argparse declares NoReturn
        sub = self.prog.removeprefix("nightlab").strip()
        print(f"nightlab: {sub + ': ' if sub else ''}{message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def seconds(text: str) -> float:
    """A positive, finite number of seconds (argparse turns the ValueError into one usage line)."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise ValueError(text)
    return value


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="nightlab",
        description="An ML engineering agent for the terminal: it forms hypotheses, edits your training code in "
                    "isolated git worktrees, runs the jobs, reads the metric and iterates. Nothing reaches your "
                    "branch until you have reviewed the diff.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-C", "--project", default=".", metavar="PATH", help="the project: PATH or the folder above it "
                   "that holds nightlab.toml (else the git work tree's top), as git finds its repository "
                   "(default: .)")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Subcommand)

    s = sub.add_parser("init", help="set up a project: detect command and metric, run the baseline")
    s.add_argument("path", nargs="?", default=None)
    s.add_argument("--command", help="training command (use {seed} where the seed goes)")
    s.add_argument("--metric", help="the metric's name as printed")
    s.add_argument("--metric-regex", help="Python regex whose group 1 is the metric value")
    s.add_argument("--goal", choices=["maximize", "minimize"])
    s.add_argument("--metric-source", choices=["log", "tensorboard"], help="read the metric from the output (log) "
                   "or from the TensorBoard event files the run writes (default: detect; --metric is then the tag)")
    s.add_argument("--timeout", type=seconds, help="wall-clock seconds per run (default: 5x the baseline, >= 60)")
    s.add_argument("--yes", "-y", action="store_true", help="accept the detected choices without asking")
    s.add_argument("--no-run", action="store_true", help="do not run the baseline (needs --metric and --goal)")
    s.add_argument("--force", action="store_true", help="overwrite an existing nightlab.toml")
    s.add_argument("--unsafe-no-sandbox", action="store_true", help="run the baseline with layer 0 only (no "
                   "bwrap/landlock), like `run --unsafe-no-sandbox`")

    s = sub.add_parser("run", help="run the experiment loop")
    s.add_argument("--mode", choices=["step", "autonomous"], help="step asks before each run (default: the "
                   "session's last mode, else step)")
    s.add_argument("--budget", type=_positive_int, help="training runs this invocation may start (at least 1)")
    s.add_argument("--detach", action="store_true", help="hibernate and exit while jobs run; they wake nightlab")
    when = s.add_mutually_exclusive_group()
    when.add_argument("--hours", type=_positive_hours, help="end the session within this many hours: no run "
                      "starts that could not end in time (predicted from measured runs)")
    when.add_argument("--until", type=_clock_time, metavar="HH:MM", help="end the session by this local time "
                      "(the next time the clock shows it)")
    s.add_argument("--policy", choices=["builtin", "llm", "learned"])
    s.add_argument("--model", help="litellm model name, e.g. openai/gpt-4o-mini or ollama/qwen2.5-coder")
    s.add_argument("--api-base", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    s.add_argument("--unsafe-no-sandbox", action="store_true", help="run jobs with layer 0 only (no bwrap/landlock)")
    s.add_argument("--yes", "-y", action="store_true", help="step mode: approve every proposal (for scripts)")

    s = sub.add_parser("wake", help="resume a hibernating session (idempotent)")
    s.add_argument("path", nargs="?", default=None)
    s.add_argument("--quiet", "-q", action="store_true")

    s = sub.add_parser("doctor", help="check the store, worktrees and sandbox; repair what is safe to repair")
    s.add_argument("--no-sandbox-probe", action="store_true", help="skip probing the sandbox layers")

    s = sub.add_parser("plan", help="draft, edit and approve the session's plan (phases with budgets in runs)")
    s.add_argument("--approve", action="store_true", help="approve the plan (after the edits given with it): "
                   "`nightlab run` then follows it")
    s.add_argument("--drop", action="append", default=[], metavar="PHASE", help="drop a phase (repeatable)")
    s.add_argument("--budget", action="append", default=[], metavar="PHASE=N", help="a phase's budget in runs "
                   "(repeatable; 0 drops it)")
    s.add_argument("--order", metavar="A,B,C", help="run these phases first, in this order")
    s.add_argument("--edit", action="store_true", help="edit the plan as TOML in $VISUAL / $EDITOR")
    s.add_argument("--redraft", action="store_true", help="draft the plan again from the latest runs (the "
                   "approved one stays followed until the new draft is approved)")
    when = s.add_mutually_exclusive_group()
    when.add_argument("--hours", type=_positive_hours, help="the session will have this many hours: trim the "
                      "phases' budgets to what can run in them (kept with the plan; `nightlab run` ends by then)")
    when.add_argument("--until", type=_clock_time, metavar="HH:MM", help="the session ends by this local time "
                      "(the next time the clock shows it): trim the budgets to fit")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("status", help="experiments, best, jobs, approvals")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("projects", help="every project you have run on this machine, at a glance")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("diff", help="show an experiment's change")
    s.add_argument("id", type=int)
    s.add_argument("--base", action="store_true", help="against your branch (the whole chain), not the parent")
    s.add_argument("--stat", action="store_true")

    s = sub.add_parser("log", help="show an experiment's training log")
    s.add_argument("id", type=int)
    s.add_argument("-f", "--follow", action="store_true")
    s.add_argument("-n", "--lines", type=int, default=0, help="only the last N lines")

    s = sub.add_parser("promote", help="commit an experiment's change onto your branch after review")
    s.add_argument("id", type=int)
    s.add_argument("--yes", "-y", action="store_true", help="do not ask (the diff is still printed)")

    s = sub.add_parser("approve", help="approve a pending proposal (by experiment id), `budget` to extend the "
                       "model cost budget, or `compute` to go over the compute budget")
    s.add_argument("id", help="experiment id, `budget` or `compute`")
    s = sub.add_parser("reject", help="reject a pending proposal with feedback (or `budget` / `compute`: stop "
                       "spending)")
    s.add_argument("id", help="experiment id, `budget` or `compute`")
    s.add_argument("--why", default="", help="feedback the policy reads")

    s = sub.add_parser("stop", help="stop a running job")
    s.add_argument("id", type=int)
    s.add_argument("--yes", "-y", action="store_true")

    s = sub.add_parser("memory", help="what was tried and what came of it (optionally matching words)")
    s.add_argument("query", nargs="*", help="words that must all appear, e.g. `lr` or `weight decay`")

    s = sub.add_parser("report", help="write a session's report: plots, tables, decisions, the best diff")
    s.add_argument("session", nargs="?", type=int, default=None, help="session id (default: the latest)")
    s.add_argument("-o", "--output", metavar="DIR", help="folder to write report.html, report.md and the PNGs "
                   "into (default: .nightlab/reports/session-N/)")
    s.add_argument("--open", action="store_true", help="open the HTML report in a browser ($BROWSER)")

    s = sub.add_parser("export", help="export data: trajectories (JSONL) or every run to MLflow")
    s.add_argument("what", choices=["trajectories", "mlflow", "tensorboard"])
    s.add_argument("-o", "--output", help="trajectories: file to write (default: stdout)")
    s.add_argument("--format", default="sft", choices=["sft", "prompt-completion", "rewards"],
                   help="trajectories: sft (messages), prompt-completion, or rewards (prompt-completion with the "
                        "reward, its parts, stage, duration); one format per file")
    s.add_argument("--tracking-uri", help="mlflow: where to write (default: [mlflow] tracking_uri, else "
                   "$MLFLOW_TRACKING_URI), e.g. sqlite:///mlflow.db or http://127.0.0.1:5000")
    s.add_argument("--experiment", help="mlflow: the MLflow experiment (default: [mlflow] experiment, else "
                   "nightlab-<project folder>)")
    s.add_argument("--session", type=int, help="tensorboard: the session whose runs to gather (default: the latest)")

    s = sub.add_parser("learn", help="train the learned policy on the experience of your projects")
    s.add_argument("--store", metavar="PATH", help="the experience store to learn from (default: "
                   "$XDG_DATA_HOME/nightlab/experience.db, every project that shares its steps)")
    s.add_argument("-o", "--output", metavar="PATH", help="where to write the model (default: "
                   "$XDG_DATA_HOME/nightlab/policy.json, where search.policy = \"learned\" looks)")
    s.add_argument("--epochs", type=int, default=300, help="full-batch optimiser steps (default: 300)")
    s.add_argument("--entropy", type=float, default=0.01, help="the exploration bonus: weight of the policy's "
                   "entropy (default: 0.01)")
    s.add_argument("--clip", type=float, default=0.5, help="how far (a factor 1 ± this) a step may move its move's "
                   "probability from the builtin's order before its gradient stops (default: 0.5)")
    s.add_argument("--no-duration", action="store_true", help="weight every step alike instead of by its run's "
                   "duration (for comparison)")

    s = sub.add_parser("explore", help="run sessions that sample diverse moves, to grow the experience store")
    s.add_argument("paths", nargs="*", metavar="PATH", help="nightlab projects to explore (default: this one)")
    s.add_argument("--budget", type=_positive_int, help="training runs per project (default: search.budget)")
    s.add_argument("--temperature", type=float, default=1.0, help="how far from the preferred order moves are "
                   "drawn (default: 1.0; the learned policy's own default is 0.3)")
    s.add_argument("--unsafe-no-sandbox", action="store_true", help="run jobs with layer 0 only (no bwrap/landlock)")

    s = sub.add_parser("demo", help="improve the bundled example in a temporary repo")
    s.add_argument("--headless", action="store_true", help="no TUI even on a terminal")
    s.add_argument("--budget", type=_positive_int, default=14, help="training runs (at least 1; default: 14)")
    s.add_argument("--dir", help="where to create the demo repo (default: a new temp folder)")
    s.add_argument("--mode", choices=["step", "autonomous"], default="autonomous")
    s.add_argument("--unsafe-no-sandbox", action="store_true", help="where no sandbox layer works (`nightlab "
                   "doctor` says): run the bundled example's jobs with layer 0 only (no bwrap/landlock)")

    sub.add_parser("tui", help="open the terminal UI")
    return p


class _Subcommand(_Parser):
    """A subcommand's parser: it takes `-C PATH` after the subcommand too (`nightlab run -C ~/proj`), not only before
    it as git has it, since people type it either way. Its copy has no default, so it never overrides a `-C` given
    before the subcommand. Subcommands of subcommands (`export trajectories`) are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("-C", "--project", default=argparse.SUPPRESS, metavar="PATH",
                          help="the project (as before the subcommand)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        from nightlab import __version__

        print(f"nightlab {__version__}")
        return 0
    from nightlab.errors import NightlabError

    try:
        return _dispatch(args)
    except NightlabError as err:
        print(f"nightlab: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("nightlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:
        import sqlite3

        if isinstance(err, sqlite3.DatabaseError):  # the store broke under us after it opened (a truncated file)
            print(f"nightlab: the store .nightlab/nightlab.db is damaged ({err}); run `nightlab doctor` to move it "
                  "aside and start afresh (nothing is deleted), or put back a copy from a backup", file=sys.stderr)
            return 2
        raise


def _positive_hours(text: str) -> float:
    """A duration in hours, more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of hours, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of hours above 0, got {text}")
    return value


def _clock_time(text: str) -> tuple[int, int]:
    """HH:MM on a 24-hour clock."""
    hh, sep, mm = text.strip().partition(":")
    if sep and hh.isdigit() and mm.isdigit() and len(mm) == 2 and 0 <= int(hh) <= 23 and 0 <= int(mm) <= 59:
        return int(hh), int(mm)
    raise argparse.ArgumentTypeError(f"expected a time of day as HH:MM (24-hour clock), got {text!r}")


def _positive_int(text: str) -> int:
    """A count of training runs: a whole number of at least 1 (0 would start a session that can never run)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of runs, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _dispatch(args: argparse.Namespace) -> int:
    from nightlab import commands
    from nightlab.agent.project_root import discover_root

    cmd = args.cmd or "tui"
    explicit = getattr(args, "path", None)  # `init PATH`, `wake PATH`: that folder, exactly
    root = Path(explicit).resolve() if explicit else discover_root(Path(args.project))
    handler: Any = getattr(commands, f"cmd_{cmd}")
    return int(handler(root, args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

