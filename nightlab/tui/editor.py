"""Which editor `e` / `E` hand the terminal to: $VISUAL, then $EDITOR, then the first of a few common ones installed.

A missing editor is a problem the user can fix in one line (set $EDITOR), so it is a NightlabError that says so,
never a `FileNotFoundError` from deep inside the suspend.
"""

from __future__ import annotations

import os
import shlex
import shutil

from nightlab.errors import NightlabError

FALLBACKS = ("sensible-editor", "editor", "nano", "vim", "vi")


def editor_command(files: list[str], env: dict[str, str] | None = None) -> list[str]:
    """The argv that opens `files` in the user's editor, or a NightlabError naming what to set."""
    env = dict(os.environ) if env is None else env
    for var in ("VISUAL", "EDITOR"):
        value = env.get(var, "").strip()
        if not value:
            continue
        try:
            argv = shlex.split(value)
        except ValueError as err:
            raise NightlabError(f"${var} is {value!r}, which cannot be parsed ({err}); "
                                "set it to an editor command, e.g. `export EDITOR=nano`") from None
        if not argv or shutil.which(argv[0], path=env.get("PATH")) is None:
            raise NightlabError(f"${var} is {value!r}, which is not installed here; "
                                "set it to an editor you have, e.g. `export EDITOR=nano`")
        return [*argv, *files]
    for name in FALLBACKS:
        if shutil.which(name, path=env.get("PATH")) is not None:
            return [name, *files]
    raise NightlabError("no editor found: set $EDITOR (or $VISUAL), e.g. `export EDITOR=nano`")
