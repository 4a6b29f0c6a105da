"""Which project a command run in some folder means, found upward the way git finds its repository.

From a subfolder of a project (`src/`, `configs/`), nightlab acts on the project, not on the subfolder: the
nearest folder upward that holds nightlab's config (`nightlab.toml`, or `[tool.nightlab]` in pyproject.toml) is the
project root; without one, the root of the enclosing git work tree (where `nightlab init` would set one up); with
neither, the folder itself (so the message about what is missing names the folder the user is in).
"""

from __future__ import annotations

from pathlib import Path

from nightlab.agent.config import find_config
from nightlab.errors import NightlabError


def discover_root(start: Path) -> Path:
    """The project root for a command started in `start` (see the module docstring)."""
    start = Path(start).expanduser().resolve()
    if not start.exists():
        raise NightlabError(f"{start}: no such folder")
    if not start.is_dir():
        raise NightlabError(f"{start}: not a folder")
    chain = [start, *start.parents]
    for folder in chain:
        if find_config(folder) is not None:
            return folder
        if (folder / ".git").exists():
            return folder  # the work tree's top: a project is never set up above its own repository
    return start
