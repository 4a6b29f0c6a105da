"""Headless console output: event lines, a live progress line with a loss sparkline, tables, diffs, prompts.

Used by `nightlab run`/`init`/`demo`/`status` when no TUI is open. Colour only on a terminal.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nightlab.agent.metric_text import fmt_change, fmt_metric, fmt_noise
from nightlab.agent.states import (
    QUIT,
    UNCONFIRMED_LABEL,
    ApprovalKind,
    ApprovalState,
    Decision,
    EventKind,
    Mode,
    SessionState,
    Status,
)
from nightlab.agent.terminal_text import printable
from nightlab.agent.views import plan_lines, plan_time_lines

if TYPE_CHECKING:  # names for the type checker only: what the front desk hands the console, never imported to run
    from nightlab.agent.actions import FrontDesk
    from nightlab.agent.config import ProjectConfig
    from nightlab.agent.engine import Engine
    from nightlab.agent.ledger import Summary
    from nightlab.agent.records import Approval, Experiment

SPARK = "▁▂▃▄▅▆▇█"


def _color() -> bool:
    return sys.stdout.isatty() and os.environ.get("NO_COLOR") is None and os.environ.get("TERM") != "dumb"


def style(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if _color() else text


def sparkline(values: list[float], width: int = 24) -> str:
    vals = [v for v in values if v == v and abs(v) != float("inf")]
    if not vals:
        return ""
    if len(vals) > width:
        step = len(vals) / width
        vals = [vals[int(i * step)] for i in range(width)]
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * (len(SPARK) - 1)))] for v in vals)


class Progress:
    """One updating line on stderr: elapsed time and the job's last log line."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = 0.0
        self.shown = False

    def update(self, elapsed: float, line: str) -> None:
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        width = shutil.get_terminal_size((100, 20)).columns
        text = f"  {self.label} {elapsed:5.1f}s  {line.strip()}"[: width - 1]
        sys.stderr.write("\r\033[K" + text)
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def break_line(self) -> None:
        """End the progress line (it stays readable) so what comes next, a question, starts on its own line."""
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.shown = False


KIND_STYLE: dict[str, str] = {
    EventKind.KEPT: "1;32", EventKind.FINISHED: "32", EventKind.FAILED: "31", EventKind.DISCARDED: "2",
    EventKind.STARTED: "36", EventKind.PROPOSED: "1", EventKind.LOST: "33", EventKind.POLICY_ERROR: "33",
    EventKind.DUPLICATE: "33", EventKind.DONE: "1", EventKind.HIBERNATE: "35", EventKind.INTERRUPTED: "33",
    EventKind.CONFIRM: "36", EventKind.NOISE: "2", EventKind.BASELINE: "36", EventKind.APPROVAL: "1;33",
    EventKind.NO_EFFECT: "33", EventKind.SEEDING: "2",
}


class EventPrinter:
    """Prints engine events as timestamped lines; on a terminal, also a live line for running jobs."""

    def __init__(self, cfg: ProjectConfig | None = None) -> None:
        self.cfg = cfg
        self.engine: Engine | None = None
        self._live = sys.stderr.isatty()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._asking = threading.Event()  # a question is open: no live line over the prompt
        self._held: list[str] | None = None  # an editor has the terminal: lines wait here
        if self._live:
            self._thread = threading.Thread(target=self._ticker, daemon=True)
            self._thread.start()

    def __call__(self, kind: str, message: str, data: dict[str, Any]) -> None:
        ts = time.strftime("%H:%M:%S")
        line = f"{style(ts, '2')} {style(message, KIND_STYLE.get(kind, '0'))}"
        with self._lock:
            if self._held is not None:
                self._held.append(line)
                return
            if self._live and not self._asking.is_set():
                sys.stderr.write("\r\033[K")
            print(line, flush=True)

    @contextlib.contextmanager
    def asking(self) -> Iterator[None]:
        """While a question waits for its answer: events still print, as lines, but no live line overwrites it."""
        self._asking.set()
        try:
            yield
        finally:
            self._asking.clear()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """While an editor has the terminal: events wait and print when it is given back."""
        with self._lock:
            self._held = []
        try:
            yield
        finally:
            with self._lock:
                lines, self._held = self._held or [], None
                for line in lines:
                    print(line, flush=True)

    def _ticker(self) -> None:
        while not self._stop.wait(0.5):
            eng = self.engine
            if eng is None or eng.session is None or self._asking.is_set() or self._held is not None:
                continue
            try:
                line = self._live_line(eng)
            except Exception:  # never let the progress line break the run
                continue
            if line:
                with self._lock:
                    width = shutil.get_terminal_size((100, 20)).columns
                    sys.stderr.write("\r\033[K" + line[: width - 1])
                    sys.stderr.flush()

    def _live_line(self, eng: Engine) -> str:
        """The running jobs as the desk reads them, on this ticker thread's own desk (closed after each look)."""
        from nightlab.agent.views import DeskReads

        desk = DeskReads(eng.root, cfg=eng.cfg)
        try:
            jobs = desk.live_jobs(limit=2)
        finally:
            desk.close()
        if not jobs:
            return ""
        return "  running " + " | ".join(f"#{j.experiment_id} {j.seconds:5.1f}s {sparkline(j.loss, 16)} "
                                         f"{j.last_line[:60]}" for j in jobs)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


# ----------------------------------------------------------------------------------------------- prompts
def ask_choice(question: str, choices: list[str]) -> str:
    print(question)
    for i, c in enumerate(choices, 1):
        print(f"  {i}) {c}")
    while True:
        ans = input(f"choose 1-{len(choices)} [1]: ").strip()
        if not ans:
            return choices[0]
        if ans.isdigit() and 1 <= int(ans) <= len(choices):
            return choices[int(ans) - 1]
        if ans in choices:
            return ans


def terminal_line(prompt: str) -> str:
    """input() for a question asked on a thread of its own. From Python 3.12 on, a process whose main thread ends
    (Ctrl+C) while a daemon thread waits in input() on a terminal does not exit until a line is typed: input() holds
    the interpreter's readline state while it waits (CPython issue 144892). Reading the descriptor holds nothing, so
    Ctrl+C ends the process at once. The terminal's line discipline edits the line (backspace, ^U) as it does for
    input(); a stdin without a descriptor (a test's StringIO) is read by input()."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return input(prompt)
    print(prompt, end="", flush=True)
    line = bytearray()
    while (byte := _read_byte(fd)) not in (b"", b"\n"):  # a terminal hands over a whole line at once
        line += byte
    if not byte and not line:
        raise EOFError
    return line.decode(getattr(sys.stdin, "encoding", None) or "utf-8", errors="replace").rstrip("\r")


def _read_byte(fd: int) -> bytes:
    """One byte of the descriptor, waiting for it even where an earlier program left the terminal non-blocking."""
    while True:
        try:
            return os.read(fd, 1)
        except BlockingIOError:
            select.select([fd], [], [])


def confirm(question: str) -> bool:
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def ask_proposal(desk: FrontDesk, appr: Approval, e: Experiment, left: int,
                 editor: Callable[[list[Path]], int] | None = None,
                 read: Callable[[str], str] | None = None) -> Decision:
    """The step-mode question on the console, blocking until its person answers: show hypothesis and diff; y / n
    (feedback) / e (edit in `editor`, $EDITOR by default, through the desk) / q. `left`: the runs the session may
    still start; `read`: how a line is asked for (input(); `terminal_line` on a thread of its own)."""
    read = read or input
    while True:
        print()
        print(style(f"#{e.id} {e.title}", "1"))
        if appr.payload.get("reason"):  # a checkpoint: a phase the plan did not foresee, a long run, a structure
            print(style(f"  checkpoint: {appr.payload['reason']}", "33"))
        if e.rationale:
            print(f"  why: {e.rationale}")
        if e.expected_effect:
            print(f"  expected: {e.expected_effect}")
        print_diff(e.patch or "(no change)")
        try:
            ans = read(f"run it? [y]es / [n]o with feedback / [e]dit / [q]uit  ({left} run(s) left) ").strip()
        except EOFError:
            return Decision(QUIT)
        key = ans[:1].lower()
        if key == "y":
            return Decision(ApprovalState.APPROVED)
        if key == "n":
            try:
                fb = ans[1:].strip(" :") or read("feedback for the policy (why not?): ").strip()
            except EOFError:
                fb = ""
            return Decision(ApprovalState.REJECTED, fb or None)
        if key == "q":
            return Decision(QUIT)
        if key == "e":
            desk.edit_patch(e.id, editor or run_editor)
            e = desk.experiment(e.id)


class ConsoleApprover:
    """Step mode on the console, asked on a thread of its own so that the engine keeps working while a question
    waits: approved runs start and finished ones are collected meanwhile. The answer goes through the front desk,
    as the TUI's does (`nightlab approve` from another shell answers the same approval); "quit" is handed back to
    the engine the next time it asks. Ctrl+C still reaches the engine's thread, which stops and records the jobs.

    One question at a time: while one waits, the engine's asks about others are answered None (not yet)."""

    def __init__(self, printer: EventPrinter | None = None) -> None:
        self.printer = printer  # the engine's event lines: no live line over the prompt, none over an editor
        self._thread: threading.Thread | None = None
        self._quit = False
        self._unreadable = False  # stdin could not be read: the questions wait for another front-end

    def __call__(self, engine: Engine, appr: Approval, e: Experiment) -> Decision | None:
        if self._quit:
            self._quit = False
            return Decision(QUIT)
        if self._unreadable or (self._thread is not None and self._thread.is_alive()):
            return None
        self._thread = threading.Thread(target=self._ask, args=(engine, appr, e, engine.budget_left()),
                                        name=f"nightlab-ask-{e.id}", daemon=True)
        self._thread.start()
        return None

    def _edit(self, paths: list[Path]) -> int:
        """$EDITOR on the terminal, the engine's event lines held until it is closed."""
        with self.printer.held() if self.printer is not None else contextlib.nullcontext():
            return run_editor(paths)

    def _ask(self, engine: Engine, appr: Approval, e: Experiment, left: int) -> None:
        from nightlab.agent.actions import FrontDesk
        from nightlab.errors import NightlabError

        if hasattr(signal, "pthread_sigmask"):  # Ctrl+C is the engine thread's to handle, at once
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        desk = FrontDesk(engine.root, cfg=engine.cfg, who=engine.options.who)  # this thread's store connection
        try:
            with self.printer.asking() if self.printer is not None else contextlib.nullcontext():
                try:
                    decision = ask_proposal(desk, appr, e, left, self._edit, read=terminal_line)
                except (OSError, RuntimeError) as err:  # no terminal to read (stdin closed, detached): said once
                    self._unreadable = True
                    why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    print(style(f"#{e.id} waits for approval, and this console cannot read an answer ({why}): "
                                f"answer with `nightlab approve {e.id}` or in the TUI", "33"), flush=True)
                    return
            if decision.state == QUIT:
                self._quit = True
            elif decision.state == ApprovalState.APPROVED:
                desk.approve(e.id)
            else:
                desk.reject(e.id, decision.feedback)
        except NightlabError as err:  # answered elsewhere meanwhile (the TUI, `nightlab approve`), say
            print(style(f"#{e.id}: {err}", "33"), flush=True)
        finally:
            desk.close()
            engine.poke()


def auto_approver(engine: Engine, appr: Approval, e: Experiment) -> Decision | None:
    return Decision(ApprovalState.APPROVED)


def run_editor(paths: list[Path]) -> int:
    """Open files in $VISUAL / $EDITOR (vi by default) on this terminal; its exit code."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return subprocess.call([*shlex.split(editor), *map(str, paths)])


# ----------------------------------------------------------------------------------------------- output
def print_diff(text: str) -> None:
    if not text.strip():
        print("(empty diff)")
        return
    if sys.stdout.isatty():  # code a model wrote may hold a raw escape: to a terminal, only what draws
        text = printable(text)
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            print(style(line, "1"))
        elif line.startswith("+"):
            print(style(line, "32"))
        elif line.startswith("-"):
            print(style(line, "31"))
        elif line.startswith("@@"):
            print(style(line, "36"))
        else:
            print(line)


def _fmt(v: float | None) -> str:
    return fmt_metric(v, "-")


def print_table(cfg: ProjectConfig, summary: Summary) -> None:
    rows = summary.ranked(cfg.metric.goal)
    print()
    print(style(f"ranked by {cfg.metric.name} ({cfg.metric.goal})", "1") +
          f"  baseline {_fmt(summary.baseline)}  best {_fmt(summary.best)}"
          + (f" (#{summary.best_id})" if summary.best_id is not None else ""))
    head = f"{'rank':>4} {'id':>4} {'parent':>6} {cfg.metric.name[:12]:>12} {'runs':>4} {'vs base':>9} " \
           f"{'status':<10} hypothesis"
    print(style(head, "2"))
    width = shutil.get_terminal_size((120, 20)).columns
    for i, r in enumerate(rows, 1):
        delta = fmt_change(r["delta"], "-")
        mark = "*" if r["id"] == summary.best_id else " "
        title = r["title"] if r["failure_class"] is None else f"{r['title']} [{r['failure_class']}]"
        status = UNCONFIRMED_LABEL if r.get("unconfirmed") else r["status"]
        line = f"{i:>4} {r['id']:>3}{mark} {r['parent'] if r['parent'] is not None else '-':>6} " \
               f"{_fmt(r['metric']):>12} {r['runs']:>4} {delta:>9} {status:<10} {title}"
        print(line[:width])
    if any(r.get("unconfirmed") for r in rows):
        print(style(f"{UNCONFIRMED_LABEL} = kept on one seed: the budget ran out before its confirming re-run; "
                    "the next `nightlab run` does that first", "2"))


def print_projects(rows: list[dict[str, Any]]) -> None:
    """`nightlab projects`: one block per project, most recently used first."""
    if not rows:
        print("no projects yet: `nightlab run` in a project lists it here")
        return
    for r in rows:
        if r["problem"]:
            print(style(r["path"], "1") + "  " + style(r["problem"], "33"))
            continue
        mode = (r["mode"] or "-").upper()
        best = "-" if r["best"] is None else f"{_fmt(r['best'])} (#{r['best_id']})"
        print(style(r["path"], "1") + f"  {mode}, engine {r['engine']}, {r['metric']} ({r['goal']}): "
              f"best {best} vs baseline {_fmt(r['baseline'])}")
        jobs = [f"#{j['experiment']} on {j['where'] or '?'}" for j in r["running"]]
        bits = []
        if jobs:
            bits.append("running " + ", ".join(jobs))
        if r["queued"]:
            bits.append(f"{r['queued']} queued")
        if r["approvals"]:
            bits.append(style(f"{r['approvals']} approval(s) waiting for you", "1;33"))
        if bits:
            print("  " + "; ".join(bits))


def print_gpus(gpus: list[dict[str, Any]]) -> None:
    """One line per GPU (utilisation, memory, the experiment holding it); nothing at all without GPUs."""
    from nightlab.agent.views import GpuStat, format_gpu

    for g in gpus:
        stat = GpuStat(g["index"], g["name"], g["util"], g["mem_used_mb"], g["mem_total_mb"])
        print(style(format_gpu(stat, g.get("held_by")), "36" if g.get("held_by") else "2"))


def print_plan(plan: dict[str, Any]) -> None:
    state = "approved" if plan["approved"] else "draft (not followed until `nightlab plan --approve`)"
    diag = ", ".join(plan["diagnosis"]) or "nothing to say (or no curve to read yet)"
    print(style(f"plan: {state}", "1"))
    print(f"baseline's diagnosis: {diag}")
    for line in plan_lines(plan):
        print(line)
    for line in plan_time_lines(plan):
        print(line)
    if not plan["approved"]:
        print("edit: --drop PHASE, --budget PHASE=N, --order A,B,C or --edit; then --approve")


def print_status(data: dict[str, Any]) -> None:
    s = data.get("session")
    print(style(f"{data['project']}", "1") + f"  metric {data['metric']} ({data['goal']})")
    print_gpus(data.get("gpus") or [])
    ml = data.get("mlflow")
    if ml:
        if ml.get("error"):
            print(style(ml["error"], "33"))
        elif ml.get("synced_at"):
            when = time.strftime("%H:%M:%S", time.localtime(ml["synced_at"]))
            print(f"MLflow: runs logged to {ml['uri']} (experiment {ml.get('experiment')!r}, last at {when})")
        else:
            print(f"MLflow: runs are logged to {ml['uri']} as they settle")
    if s is None:
        print("no session yet: `nightlab run` starts one")
        return
    mode = style(s["mode"].upper(), "1;35" if s["mode"] == Mode.AUTONOMOUS else "1;36")
    print(f"session {s['id']}: {mode}, {s['state']}, engine {s['engine']}, policy {s['policy']}, "
          f"{s['runs_started']}/{s['budget']} runs" + (f", noise floor {fmt_noise(s['noise_floor'])}"
                                                      if s.get("noise_floor") else "")
          + (f", model cost ${s['cost']:.4f}" if s.get("cost") else ""))
    if s["wake_conditions"] and s["state"] in (SessionState.HIBERNATING, SessionState.WAITING):
        print("  wakes when: " + "; ".join(s["wake_conditions"]))
    if s.get("seeding"):
        print(f"  seeds: {s['seeding']}")
    ran = [x for x in data["experiments"] if x.get("isolation")]
    if ran:
        layers = ran[-1]["isolation"]
        print(f"sandbox of the last run: {', '.join(layers)}"
              + ("  (UNSAFE: layer 0 only)" if not {"bwrap", "landlock"} & set(layers) else ""))
        if data.get("sandbox_gaps"):
            print("  not enforced in that layer: " + "; ".join(data["sandbox_gaps"]))
    plan = data.get("plan")
    if plan and plan.get("approved"):
        cur = next((p["title"] for p in plan["phases"] if p["state"] == "current"), None)
        print(f"plan: {'phase ' + repr(cur) if cur else 'every phase done'}")
        for line in plan_lines(plan):
            print(line)
    best = data.get("best")
    print(f"baseline {_fmt(data['baseline'])}   best {_fmt(best['metric']) if best else '-'}"
          + (f" (#{best['id']})" if best else ""))
    if data.get("report"):
        print(f"report: {data['report']}")
    for j in data["jobs"]:
        if j.get("state") == Status.QUEUED:
            print(style(f"  queued #{j['experiment']} {j['queued_s']:.0f}s [{j['where']}] {j['title']}", "36"))
            continue
        waited = f" (queued {j['queued_s']:.0f}s)" if j.get("queued_s") else ""
        print(style(f"  running #{j['experiment']} {j['running_s']:.0f}s{waited} [{j.get('where') or j['slot']}] "
                    f"{j['title']}", "36"))
        if j["last_line"]:
            print(f"      {j['last_line']}")
    for a in data["approvals"]:
        if a["kind"] == ApprovalKind.HYPOTHESIS:
            why = a["payload"].get("reason")  # a checkpoint says why it stopped
            text = (f"  waiting for you: {a['kind']} #{a['experiment']}" + (f": {why}" if why else "") +
                    f"  (nightlab approve {a['experiment']} / reject {a['experiment']} --why ...)")
        elif a["kind"] == ApprovalKind.COMPUTE:
            text = (f"  waiting for you: {a['payload'].get('reason', 'the compute budget is spent')} "
                    "(nightlab approve compute / reject compute)")
        elif a["kind"] == ApprovalKind.BUDGET:
            text = (f"  waiting for you: model cost ${a['payload'].get('spent', 0):.4f} reached the budget "
                    "(nightlab approve budget / reject budget)")
        else:
            text = f"  waiting for you: review #{a['experiment']} (nightlab promote {a['experiment']})"
        print(style(text, "33"))
    if data["experiments"]:
        print()
        print(style(f"{'id':>4} {'parent':>6} {'status':<10} {data['metric'][:10]:>10} {'stage':<15} "
                    f"{'reward':>6} hypothesis", "2"))
        for x in data["experiments"]:
            mark = "*" if best and x["id"] == best["id"] else " "
            title = x["hypothesis"] + (f" [{x['failure_class']}]" if x["failure_class"] else "")
            par = x["parent"] if x["parent"] is not None else "-"
            reward = "-" if x.get("reward") is None else f"{x['reward']:+.2f}"
            print(f"{x['id']:>3}{mark} {par:>6} {x['status']:<10} {_fmt(x['metric']):>10} "
                  f"{(x['stage'] or '-'):<15} {reward:>6} {title}")
    kept = [x for x in data["experiments"] if x.get("artifacts")]
    if kept:
        print()
        print(style("files the runs wrote (kept until the experiment is discarded; artifacts.max_mb):", "2"))
        for x in kept:
            print(f"  #{x['id']}: {x['artifacts']['summary']}")

