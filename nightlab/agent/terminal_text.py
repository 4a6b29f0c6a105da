"""A job's output made safe to write to the user's terminal.

`nightlab log` shows what a training job printed, and the job is untrusted: besides colours (SGR) and the carriage
returns and cursor moves of progress bars (tqdm, rich), a terminal obeys escape sequences that act beyond the screen
— OSC 52 writes the clipboard, OSC 0/2 the window title, OSC 8 makes a link say one thing and open another, a
device status or window report (`ESC [6n`, `ESC [21t`) makes the terminal type its answer into the shell's input,
and DCS / APC / PM / SOS strings reach terminal-specific handlers. Written to a terminal, the log keeps what draws
(SGR, cursor moves and line erases, showing and hiding the cursor, `\\r`, `\\b`, tabs) and loses everything else:
other control sequences, lone escapes, C0 controls such as BEL and the charset shifts SO/SI that garble the screen,
and the C1 controls (U+0080–U+009F, which some terminals read as 8-bit CSI / OSC). Written to a file or a pipe the
log is passed on byte for byte: that is the record, and `less -R` or a later `cat` is the reader's choice.

`printable` is the same for a line of text shown anywhere (a hypothesis, an error, a log's tail in the store, which
every front-end shows — Textual writes a widget's text to the terminal as it is): nothing that acts, no colours
or backspaces, and of a line redrawn with carriage returns its last drawing; newlines and tabs stay.

`TerminalFilter` works on a stream (`nightlab log --follow`): a sequence cut between two reads is held until its
end arrives, and one that never ends within `MAX_HELD` bytes is dropped.
"""

from __future__ import annotations

import re

MAX_HELD = 4096  # an unterminated control string longer than this is dropped, not held for ever

# CSI sequences that only draw: SGR (m), cursor moves (A–H, f), erase in line / display (K, J), scroll (S, T), and
# the cursor shown or hidden (?25h / ?25l)
_KEEP_CSI = re.compile(rb"\x1b\[[0-9;]*[mABCDEFGHJKSTf]|\x1b\[\?25[hl]")
_SEQUENCE = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC, ended by BEL or ST
    rb"|\x1b[PX^_].*?\x1b\\"  # DCS, SOS, PM, APC, ended by ST
    rb"|\x1b[ -/]*[0-~]"  # any other escape (RIS `ESC c`, charsets `ESC ( 0`, `ESC 7` / `ESC 8`)
    rb"|\x1b"  # an escape that starts nothing whole
    rb"|[\x00-\x07\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]"  # C0 controls but \b \t \n \r (ESC is above)
    rb"|\xc2[\x80-\x9f]",  # C1 controls, UTF-8 encoded
    re.DOTALL,
)


def _keep(m: re.Match[bytes]) -> bytes:
    return m.group(0) if _KEEP_CSI.fullmatch(m.group(0)) else b""


def printable(text: str) -> str:
    """`text` without control sequences or control characters other than newlines and tabs (see above)."""
    if not _ANY_CONTROL.search(text):
        return text
    data = _SEQUENCE.sub(b"", text.encode("utf-8", "surrogatepass")).replace(b"\b", b"")
    # of a line a progress bar redrew with `\r`, what a terminal shows: its last drawing
    lines = [next((part for part in reversed(line.split(b"\r")) if part), b"") for line in data.split(b"\n")]
    return b"\n".join(lines).decode("utf-8", "replace")


_ANY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class TerminalFilter:
    """Feed a job's output in chunks; each call returns what is safe to write to a terminal so far."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, data: bytes, final: bool = False) -> bytes:
        data = self._held + data
        self._held = b""
        if not final:
            cut = _incomplete_tail(data)
            if cut is None and data.endswith(b"\xc2"):  # maybe the first byte of a C1 control
                cut = len(data) - 1
            if cut is not None:
                data, held = data[:cut], data[cut:]
                self._held = held if len(held) <= MAX_HELD else b""
        return _SEQUENCE.sub(_keep, data)


def _incomplete_tail(data: bytes) -> int | None:
    """Where a control sequence begins that the data ends inside of (None when it ends outside one): a control
    string (OSC, DCS, SOS, PM, APC) not yet ended by its terminator, else an escape or CSI cut short."""
    opener = max(data.rfind(b"\x1b" + c) for c in (b"]", b"P", b"X", b"^", b"_"))
    if opener >= 0:
        rest = data[opener + 2:]
        ends = rest.endswith(b"\x1b") or not (b"\x1b" in rest or (data[opener + 1] == 0x5D and b"\x07" in rest))
        if ends:  # (an escape inside it ends it, as a terminal aborts it; a last lone one may be its ST's start)
            return opener
    start = data.rfind(b"\x1b")
    if start < 0:
        return None
    tail = data[start:]
    if len(tail) == 1:
        return start
    if tail[1:2] == b"[":
        return None if re.match(rb"\x1b\[[0-?]*[ -/]*[@-~]", tail) else start
    if tail[1:2] in (b"]", b"P", b"X", b"^", b"_", b"\\"):
        return None  # a control string found ended above, or its terminator
    return None if re.match(rb"\x1b[ -/]*[0-~]", tail) else start
