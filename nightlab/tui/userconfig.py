"""The user's own TUI settings: `$XDG_CONFIG_HOME/nightlab/tui.toml` (default `~/.config/nightlab/tui.toml`).

    theme = "light"

    [keys]
    approve = "y"          # binding id = key (see `?` in the TUI for every id)
    toggle_mode = "ctrl+a"

The file belongs to the user: a bad file never stops the TUI, but nothing in it is ignored silently — every value
that cannot apply (an unknown theme or setting, a key name no terminal sends, a key another binding of the same
screen already uses) is reported with the file and key, and its default stays. Remembering the theme
rewrites only the `theme = ...` line so comments and key overrides survive.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

FILE_NAME = "tui.toml"
_THEME_LINE = re.compile(r'^\s*theme\s*=.*$', re.M)
_TABLE_HEADER = re.compile(r'^\s*\[', re.M)


def config_dir() -> Path:
    """XDG config dir for nightlab; read on every call so tests (and users) can point XDG_CONFIG_HOME elsewhere."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nightlab"


def config_path() -> Path:
    return config_dir() / FILE_NAME


def display_path(path: Path) -> str:
    """The path as a person would type it: under the home folder it starts with `~`."""
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


@dataclass
class UserConfig:
    theme: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def load_user_config(path: Path | None = None) -> UserConfig:
    """Read the user's settings; a missing file is the defaults, a broken one is the defaults plus a problem."""
    path = path or config_path()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return UserConfig()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        return UserConfig(problems=[f"{display_path(path)}: ignored ({err})"])
    from nightlab.tui.keymap import check_overrides
    from nightlab.tui.themes import available_themes

    where = display_path(path)
    cfg = UserConfig()
    for name in sorted(set(raw) - {"theme", "keys"}):
        cfg.problems.append(f"{where}: unknown setting {name!r} (there are `theme` and [keys])")
    theme = raw.get("theme")
    if theme is not None:
        themes = available_themes()
        if not isinstance(theme, str):
            cfg.problems.append(f"{where}: theme must be a string, one of {', '.join(themes)}")
        elif theme not in themes:
            cfg.problems.append(f"{where}: theme = {theme!r} is not a theme (there are {', '.join(themes)})")
        else:
            cfg.theme = theme
    keys = raw.get("keys", {})
    if not isinstance(keys, dict):
        cfg.problems.append(f"{where}: [keys] must be a table of id = \"key\"")
        keys = {}
    wanted: dict[str, str] = {}
    for k, v in keys.items():
        if isinstance(v, str) and v.strip():
            wanted[str(k)] = v.strip()
        else:
            cfg.problems.append(f"{where}: keys.{k} must be a key name such as \"ctrl+a\"")
    cfg.keys, problems = check_overrides(wanted)
    cfg.problems.extend(f"{where}: {p}; the default key stays" for p in problems)
    return cfg


def save_theme(name: str, path: Path | None = None) -> Path:
    """Remember the theme: replace the `theme = ...` line (or add one at the top), leaving the rest untouched."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = ""
    line = f'theme = "{name}"'
    table = _TABLE_HEADER.search(text)
    head, tail = (text[: table.start()], text[table.start():]) if table else (text, "")
    head = _THEME_LINE.sub(line, head, count=1) if _THEME_LINE.search(head) else line + "\n" + head
    text = head + tail
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
