"""Telling a human that nightlab needs them (`notify.command`: notify-send, a webhook script, ...).

The command runs detached with the message as its last argument; it never blocks the engine and never sees stdin.
"""

from __future__ import annotations

import shlex
import subprocess


def notify_human(command: str, message: str) -> str | None:
    """Run the notify command with `message`; None when it started (or none is configured), else why not."""
    if not command:
        return None
    try:
        subprocess.Popen([*shlex.split(command), message], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as err:
        return f"notify command failed: {err}"
    return None


__all__ = ["notify_human"]
