"""Themes are `.tcss` files shipped in `nightlab/themes/` and read through importlib.resources, so an installed
wheel finds them as well as a checkout does.

Each file starts with a header comment naming the Textual base theme (for the colours of built-in widgets such as
the footer and the command palette) and the Pygments style used to colour code in diffs:

    /* nightlab-theme: base=textual-dark syntax=monokai */
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

DEFAULT_THEME = "dark"
_HEADER = re.compile(r"/\*\s*nightlab-theme:(?P<body>[^*]*)\*/")


@dataclass(frozen=True)
class ThemeInfo:
    name: str
    css: str
    base: str = "textual-dark"
    syntax: str = "monokai"

    @property
    def dark(self) -> bool:
        return "light" not in self.base


def _theme_dir() -> Traversable:
    return resources.files("nightlab").joinpath("themes")


def available_themes() -> list[str]:
    """Theme names (file stems), sorted with the default first so cycling starts from it."""
    names = sorted(p.name[: -len(".tcss")] for p in _theme_dir().iterdir() if p.name.endswith(".tcss"))
    return sorted(names, key=lambda n: (n != DEFAULT_THEME, n))


def load_theme(name: str) -> ThemeInfo:
    """Read one theme; KeyError for a name that has no file (the caller falls back to the default)."""
    if name not in available_themes():
        raise KeyError(name)
    css = _theme_dir().joinpath(f"{name}.tcss").read_text(encoding="utf-8")
    opts: dict[str, str] = {}
    m = _HEADER.search(css)
    if m:
        for part in m.group("body").split():
            k, _, v = part.partition("=")
            if v:
                opts[k] = v
    return ThemeInfo(name=name, css=css, base=opts.get("base", "textual-dark"), syntax=opts.get("syntax", "monokai"))
