"""The console front-end in step mode: a real `nightlab run` on a terminal (a pseudo-terminal here).

The question about a proposal is asked on a thread of its own, so the engine goes on while it waits: an approved run
starts, ends and is collected while the next proposal's question is still unanswered, and Ctrl+C still stops and
records the session as it did when the question held the engine.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nightlab.agent.config import SearchConfig, SlotsConfig
from nightlab.agent.paths import StatePaths
from nightlab.agent.states import ApprovalKind, ApprovalState, JobState, Kind, Status
from nightlab.agent.store import Store

from helpers import TINY_TRAIN, git, make_repo, until, write_config

PROMPT = "run it? [y]es"


class Terminal:
    """A pseudo-terminal a process runs on: what it wrote so far, and keys typed into it."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.text = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            self.text += data.decode(errors="replace")

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        os.close(self.slave)
        os.close(self.master)


def test_an_approved_run_is_collected_while_the_next_question_waits(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "p", {"train.py": TINY_TRAIN})
    write_config(root, slots=SlotsConfig(cpus=2), search=SearchConfig(parallel=2, budget=6))
    git(root, "add", "nightlab.toml")
    git(root, "commit", "-q", "-m", "nightlab config")
    term = Terminal()
    # SIGINT's default back, as a terminal's foreground job has it (see test_interrupt.py)
    proc = subprocess.Popen([sys.executable, "-m", "nightlab", "run", "--mode", "step"], cwd=root, stdin=term.slave,
                            stdout=term.slave, stderr=term.slave,
                            env={**os.environ, "NO_COLOR": "1", "NIGHTLAB_NO_TUI": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    store: Store | None = None
    try:
        until(lambda: term.text.count(PROMPT) == 1, "the first proposal is asked", timeout=90)
        store = Store(StatePaths.of(root).db)
        [first] = [e for e in store.experiments() if e.status == Status.PROPOSED]
        term.type("y\n")
        until(lambda: term.text.count(PROMPT) == 2, "the next proposal is asked while the first one runs", timeout=90)
        [second] = [e for e in store.experiments() if e.status == Status.PROPOSED]
        assert second.id != first.id and second.kind != Kind.RERUN
        # the first run ends and is settled by the engine while the second question is still open
        until(lambda: store.experiment(first.id).settled == 1, "the approved run is collected", timeout=90)
        ran = store.experiment(first.id)
        assert ran.status not in (Status.QUEUED, Status.RUNNING) and ran.metric is not None
        assert all(j.state == JobState.ENDED for j in store.jobs(experiment_id=first.id))
        assert store.experiment(second.id).status == Status.PROPOSED
        pending = store.pending_approval(kind=ApprovalKind.HYPOTHESIS, experiment_id=second.id)
        assert pending is not None and pending.state == ApprovalState.PENDING
        assert term.text.count(PROMPT) == 2  # asked once: the waiting question is not asked again
        # Ctrl+C while the question waits: the session is recorded and nightlab exits as a shell does for SIGINT
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, term.text[-2000:]
        until(lambda: "nightlab: interrupted" in term.text, "Ctrl+C is said", timeout=5)
        assert "Traceback" not in term.text and "Fatal Python error" not in term.text
        assert store.experiment(second.id).status == Status.PROPOSED  # it is asked again by the next run
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if store is not None:
            store.close()
        term.close()


def test_an_editor_opened_from_the_question_holds_the_event_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`e` opens $EDITOR on the terminal while the engine goes on: its event lines wait until the editor is closed
    rather than being written over the editor's screen."""
    from nightlab import console

    printer = console.EventPrinter()
    approver = console.ConsoleApprover(printer)
    seen: list[str] = []
    editor = tmp_path / "ed.sh"
    editor.write_text("#!/bin/sh\necho editing\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    try:
        with printer.held():
            printer("finished", "#3 finished: acc = 0.9", {})
            seen.append(capsys.readouterr().out)
        assert approver._edit([tmp_path / "train.py"]) == 0  # the approver's editor runs held too
    finally:
        printer.close()
    assert "#3 finished" not in seen[0]
    assert "#3 finished" in capsys.readouterr().out


def test_a_question_on_its_own_thread_reads_the_terminal_without_holding_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """The question thread reads its line from the descriptor, not through input(): from Python 3.12 on, a daemon
    thread waiting in input() on a terminal keeps the process from exiting after Ctrl+C until a line is typed (the
    test above hung so on 3.12 and 3.13). The line comes back as input() would give it; end of input is EOFError."""
    from nightlab.console import terminal_line

    master, slave = pty.openpty()
    try:
        monkeypatch.setattr(sys, "stdin", os.fdopen(slave, "r", closefd=False))
        monkeypatch.setattr("builtins.input", lambda *_: pytest.fail("input() was called"))
        os.write(master, "yés, with feedback\n".encode())
        assert terminal_line("run it? ") == "yés, with feedback"
        os.write(master, b"\x04")  # ^D on an empty line: end of input
        with pytest.raises(EOFError):
            terminal_line("run it? ")
    finally:
        os.close(slave)
        os.close(master)


def test_the_question_waits_for_its_line_on_a_terminal_left_non_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    """A program run before (or beside) nightlab can leave the terminal in non-blocking mode; the question then
    waits for the line instead of dying with BlockingIOError and leaving the approval unasked."""
    import fcntl
    import time

    from nightlab.console import terminal_line

    master, slave = pty.openpty()
    try:
        fcntl.fcntl(slave, fcntl.F_SETFL, fcntl.fcntl(slave, fcntl.F_GETFL) | os.O_NONBLOCK)
        monkeypatch.setattr(sys, "stdin", os.fdopen(slave, "r", closefd=False))
        got: list[str] = []
        t = threading.Thread(target=lambda: got.append(terminal_line("run it? ")), daemon=True)
        t.start()
        time.sleep(0.3)  # the reader finds nothing yet
        os.write(master, b"y\n")
        t.join(10)
        assert got == ["y"]
    finally:
        os.close(slave)
        os.close(master)
