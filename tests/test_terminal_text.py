"""A hostile job's output on the user's terminal. `nightlab log` wrote what the job printed byte for byte, so a job
printing `ESC ]52;c;…` set the user's clipboard, `ESC ]0;…` the window title, and `ESC [6n` / `ESC [21t` made the
terminal type its answer into the shell — found by running this file's job against the code before. To a terminal
the log now keeps what draws (colours, a progress bar's carriage returns and cursor moves) and drops the rest;
to a pipe or a file it stays the exact record."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from nightlab.agent.terminal_text import MAX_HELD, TerminalFilter

from helpers import make_repo, write_config

COLOURS = b"\x1b[32mok\x1b[0m \x1b[1;31mred\x1b[0m"
BAR = b"\r 40%|\x1b[32m####\x1b[0m | 4/10\x1b[K\x1b[1A\x1b[2K\x1b[?25l\x1b[?25h"
ACTING = [
    b"\x1b]52;c;cHduZWQ=\x07",  # OSC 52: the clipboard
    b"\x1b]0;PWNED-TITLE\x1b\\",  # OSC 0: the window title, ended by ST
    b"\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",  # OSC 8: a link that says another thing
    b"\x1b[6n", b"\x1b[21t", b"\x1b[>c",  # reports the terminal types into the shell's input
    b"\x1bP$q\"p\x1b\\",  # DCS: DECRQSS
    b"\x1b_payload\x1b\\", b"\x1b^pm\x1b\\", b"\x1bXsos\x1b\\",  # APC, PM, SOS
    b"\x1bc", b"\x1b(0", b"\x1b7",  # RIS (reset), a charset that garbles the screen, save cursor
    b"\x07\x0e\x0f\x00\x7f",  # BEL, SO / SI, NUL, DEL
    "\u009b31m\u009d0;t\u0007".encode(),  # C1 CSI and OSC, as UTF-8
]
TEXT = COLOURS + b"\n" + BAR + b"\n" + b"acc=0.5 " + b" mid ".join(ACTING) + b" end\n\xce\xb1=1\n"


def _clean(data: bytes) -> bytes:
    return TerminalFilter().feed(data, final=True)


def test_what_draws_stays_and_what_acts_beyond_the_screen_goes() -> None:
    out = _clean(TEXT)
    assert out.startswith(COLOURS + b"\n" + BAR + b"\n")
    assert b"acc=0.5 " in out and out.endswith(b" end\n\xce\xb1=1\n")  # text and UTF-8 untouched
    assert b"\x1b]" not in out and b"\x1bP" not in out and b"\x1b_" not in out and b"\x1bc" not in out
    for seq in (b"[6n", b"[21t", b"[>c", b"\x07", b"\x0e", b"\x0f", b"\x00", b"\x7f", b"\xc2\x9b", b"\xc2\x9d"):
        assert seq not in out, seq
    assert b"cHduZWQ=" not in out and b"PWNED-TITLE" not in out and b"evil.example" not in out
    assert out.count(b"\x1b") == (COLOURS + BAR).count(b"\x1b")  # every escape left is one that draws


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_a_stream_cut_anywhere_reads_as_the_whole(size: int) -> None:
    f = TerminalFilter()
    out = b"".join(f.feed(TEXT[i:i + size]) for i in range(0, len(TEXT), size)) + f.feed(b"", final=True)
    assert out == _clean(TEXT)


def test_a_control_string_that_never_ends_is_not_held_for_ever() -> None:
    f = TerminalFilter()
    shown = f.feed(b"before \x1b]52;c;" + b"A" * (MAX_HELD + 10))
    assert shown == b"before "
    shown += f.feed(b"after\n", final=True)
    assert b"\x1b" not in shown and b"after\n" in shown


def test_nightlab_log_to_a_terminal_and_to_a_pipe(tmp_path: Path) -> None:
    script = "import sys\nsys.stdout.buffer.write(open('printed.bin', 'rb').read())\n"
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "printed.bin").write_bytes(TEXT)  # what the job prints, NUL and all
    repo = make_repo(tmp_path / "p", {"train.py": script})
    write_config(repo, timeout=30)
    env = {**os.environ, "NO_COLOR": "1"}
    run = subprocess.run([sys.executable, "-m", "nightlab", "run", "--mode", "autonomous", "--budget", "1"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    exp = json.loads(subprocess.run([sys.executable, "-m", "nightlab", "status", "--json"], cwd=repo, env=env,
                                    capture_output=True, text=True, timeout=60).stdout)["experiments"][0]["id"]
    piped = subprocess.run([sys.executable, "-m", "nightlab", "log", str(exp)], cwd=repo, env=env,
                           capture_output=True, timeout=60).stdout
    assert TEXT in piped  # the record, byte for byte
    for args in (["log", str(exp)], ["log", str(exp), "--lines", "5"]):
        shown = _through_a_terminal([sys.executable, "-m", "nightlab", *args], repo, env)
        assert b"acc=0.5" in shown and b"\x1b[32mok" in shown
        for seq in ACTING[:7]:
            assert seq not in shown, seq
        assert b"\x1b]" not in shown and b"cHduZWQ=" not in shown


def _through_a_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> bytes:
    """What `argv` writes when its output is a terminal (a pseudo-terminal read here)."""
    main, sub = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sub, stderr=sub)
    os.close(sub)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([main], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other side closed (EIO)
                break
            if not chunk:
                break
            out += chunk
    finally:
        proc.wait(timeout=60)
        os.close(main)
    return out


def test_text_every_front_end_shows_is_stored_printable(tmp_path: Path) -> None:
    """A job's error line and log tail, and a model's hypothesis (a reply a job's log may have steered), are shown by
    the TUI — which writes a widget's text to the terminal as it is — and the console: the store keeps them
    printable. The log file itself is untouched (above)."""
    from nightlab.agent.states import EventKind
    from nightlab.agent.store import Store
    from nightlab.agent.terminal_text import printable

    assert printable("boom \x1b]52;c;ZXZpbA==\x07 \x1b[31mred\x1b[0m \x1b[6n\n10%\r20%\r30%\nok\tx\r\n") == \
        "boom  red \n30%\nok\tx\n"
    store = Store(tmp_path / "db.sqlite")
    e = store.add_experiment(title="raise lr \x1b]0;PWNED\x07", rationale="because\x1b[21t", seed=0)
    store.update_experiment(e.id, error="RuntimeError: boom \x1b]52;c;ZXZpbA==\x07",
                            log_tail="step 1\nRuntimeError: boom \x1bP$q\"p\x1b\\\n", diagnosis="\x9b31mbad")
    got = store.experiment(e.id)
    for text in (got.title, got.rationale, got.error, got.log_tail, got.diagnosis):
        assert text is not None and "\x1b" not in text and "\x9b" not in text and "\x07" not in text, text
    assert got.title == "raise lr " and got.error == "RuntimeError: boom "
    assert got.log_tail == "step 1\nRuntimeError: boom \n"
    store.event(EventKind.EDITED, "edited \x1b]8;;https://evil.example/\x1b\\here\x1b]8;;\x1b\\", experiment_id=e.id)
    assert store.events()[-1]["message"] == "edited here"


def test_the_tui_log_views_show_a_line_as_a_terminal_would_draw_it() -> None:
    """The TUI's log pane and log viewer (which Textual writes to the terminal as text): the same rule, so an OSC's
    payload is not left on screen either (it had shown `0;PWNED-TITLE`), and a redrawn line shows its last drawing."""
    from nightlab.tui.widgets.logpane import clean

    assert clean("loss 0.5\x1b]0;PWNED-TITLE\x07 \x1b[32mok\x1b[0m\tend") == "loss 0.5 ok" + " " * 5 + "end"
    assert clean(" 10%|#   |\r 50%|#####|\r100%|##########|") == "100%|##########|"
