"""One exception type for everything the user can fix: the CLI prints its message as one line and exits non-zero."""

from __future__ import annotations


class NightlabError(Exception):
    """A problem the user can act on. `str(err)` is the whole message: one line, naming what and where."""

    exit_code = 2


class ConfigError(NightlabError):
    """nightlab.toml (or [tool.nightlab]) is missing or invalid."""


class GitError(NightlabError):
    """The repository is not usable: not a git repo, dirty files the agent would edit, a refused promote."""


class EditError(NightlabError):
    """A proposed edit cannot be applied: search text not found or ambiguous, protected or unknown path."""


class Interrupted(NightlabError):
    """Ctrl+C: state was recorded; exit like a shell does for SIGINT."""

    exit_code = 130
