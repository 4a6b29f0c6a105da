"""Knobs in configuration files: YAML (PyYAML's composer marks), JSON (a position-aware scanner), TOML, gin bindings
and INI-style files (configparser's, spaCy's config.cfg), each value found with its exact span so that a rewrite
splices only that span."""

from __future__ import annotations

import ast
import functools
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from nightlab.agent.policy.knobs.kinds import (
    _ELEMENT_KIND,
    _TUNABLE_KNOWN,
    _choice_group,
    _choices,
    _hydra_key,
    classify_path,
)
from nightlab.agent.policy.knobs.knob import _MAX_CONFIG_SCALARS, Value, _Found, _knob_at, _line_starts
from nightlab.agent.policy.knobs.literals import _INT_TEXT, _parse_number


@dataclass
class _Leaf:
    """A scalar in a config file: its key path, exact character span and value."""

    path: tuple[str | int, ...]
    start: int
    end: int
    value: Value | None
    quoted: bool


def _yaml_leaves(text: str) -> list[_Leaf]:
    loader = yaml.SafeLoader("")
    out: list[_Leaf] = []

    def scalar(node: yaml.ScalarNode, path: tuple[str | int, ...]) -> None:
        s, e = node.start_mark.index, node.end_mark.index
        raw = text[s:e]
        if node.style is None:
            if raw != node.value:  # multi-line plain scalar: no single span to splice
                return
            try:
                v = loader.construct_object(node)
            except yaml.YAMLError:
                return
            if isinstance(v, str):
                num = _parse_number(v)
                v = num if num is not None and not v.isdigit() else v  # "1e-3" is a str to PyYAML, a float to us
            if isinstance(v, float) and not math.isfinite(v):
                return
            if isinstance(v, bool | int | float | str):
                out.append(_Leaf(path, s, e, v, False))
        elif node.style in ("'", '"') and len(raw) >= 2 and raw[0] == raw[-1] == node.style:
            out.append(_Leaf(path, s, e, node.value, True))

    for i, doc in enumerate(yaml.compose_all(text, Loader=yaml.SafeLoader)):
        if doc is not None:
            for node, path in _places(doc, (f"doc{i}",) if i else ()).values():
                if isinstance(node, yaml.ScalarNode) and path:
                    scalar(node, path)
    return out


def _places(doc: yaml.Node, root: tuple[str | int, ...] = ()) -> dict[int, tuple[yaml.Node, tuple[str | int, ...]]]:
    """Every node of a YAML document once, at its own place (an alias's node is the anchor's, reported where the
    anchor is; a merge key `<<` is no place), in document order: id -> (node, key path)."""
    out: dict[int, tuple[yaml.Node, tuple[str | int, ...]]] = {}

    def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
        if id(node) in out:
            return
        out[id(node)] = (node, path)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                    walk(v, (*path, str(k.value)))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    walk(doc, root)
    return out


def yaml_merged(text: str, section: str) -> tuple[set[str], dict[str, str]]:
    """What a top-level section takes from elsewhere through YAML merge keys, named where the values are set: the
    scalars it reads (under ``small: {<<: *defaults, lr: 0.05}``, `defaults.epochs`), and those it sets itself over
    the merge, each with the key that does (`defaults.lr` -> `small.lr`). Merges nested in the section and merges of
    merged mappings count too."""
    try:
        docs = [d for d in yaml.compose_all(text, Loader=yaml.SafeLoader) if d is not None]
    except (yaml.YAMLError, ValueError, RecursionError):
        return set(), {}
    if len(docs) != 1 or not isinstance(docs[0], yaml.MappingNode):
        return set(), {}
    where = {key: path for key, (_node, path) in _places(docs[0]).items()}
    read: set[str] = set()
    overridden: dict[str, str] = {}

    def scalars(node: yaml.Node, into: Callable[[str], None]) -> None:
        if isinstance(node, yaml.ScalarNode) and where.get(id(node)):
            into(_leaf_name(where[id(node)]))
        elif isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            for item in node.value:
                for v in (item if isinstance(item, tuple) else (item,)):
                    scalars(v, into)

    def take(node: yaml.MappingNode, outer: Mapping[str, str], depth: int = 0) -> None:
        here = where.get(id(node), ())
        own = {**outer, **{str(k.value): _leaf_name((*here, str(k.value))) for k, _ in node.value
                           if isinstance(k, yaml.ScalarNode) and k.value != "<<"}}
        # the section's own nested mappings first: the key that sets a value is named where it is most specific
        # (`tuned.optim.momentum` rather than `tuned.optim`, which replaces the merged `optim` as a whole)
        for k, v in sorted(node.value, key=lambda kv: isinstance(kv[0], yaml.ScalarNode) and kv[0].value == "<<"):
            if not isinstance(k, yaml.ScalarNode) or depth > 8:
                continue
            if k.value == "<<":
                for source in (v.value if isinstance(v, yaml.SequenceNode) else [v]):
                    if not isinstance(source, yaml.MappingNode):
                        continue
                    for mk, mv in source.value:
                        if not isinstance(mk, yaml.ScalarNode) or mk.value == "<<":
                            continue
                        by = own.get(str(mk.value))
                        if by is None:
                            scalars(mv, read.add)
                        else:
                            scalars(mv, functools.partial(_set_once, overridden, value=by))
                    take(source, own, depth + 1)
            elif isinstance(v, yaml.MappingNode):
                take(v, {}, depth + 1)

    top = next((v for k, v in docs[0].value if isinstance(k, yaml.ScalarNode) and str(k.value) == section), None)
    if isinstance(top, yaml.MappingNode):
        take(top, {})
    return read, {name: by for name, by in overridden.items() if name not in read}


def _set_once(into: dict[str, str], key: str, value: str) -> None:
    into.setdefault(key, value)


# TOML, read line by line for the spans (tomllib gives values, not positions) and checked against tomllib: a
# `[table]` header, then `key = value` lines whose value is a number, a boolean, a one-line string or a one-line
# array of numbers. What the line reader cannot place (multi-line strings and arrays, inline tables, arrays of
# tables) is left out, never guessed.
_TOML_TABLE = re.compile(r"^[ \t]*\[(?!\[)[ \t]*([^\]\n]+?)[ \t]*\][ \t]*(?:#.*)?$")
_TOML_ARRAY_TABLE = re.compile(r"^[ \t]*\[\[")
_TOML_KEY = r'(?:[A-Za-z0-9_-]+|"[^"\n]*"|\'[^\'\n]*\')'
_TOML_PAIR = re.compile(rf"^[ \t]*({_TOML_KEY}(?:[ \t]*\.[ \t]*{_TOML_KEY})*)[ \t]*=[ \t]*")
_TOML_SCALAR = re.compile(r'[-+]?(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?|true|false|"(?:[^"\\\n]|\\.)*"|'
                          r"'[^'\n]*'")
_TOML_END = re.compile(r"[ \t]*(?:#.*)?$")
_TOML_SKIP = frozenset({"pyproject.toml", "nightlab.toml", "cargo.toml", "poetry.toml", "uv.toml", "ruff.toml"})


def _toml_keys(dotted: str) -> tuple[str, ...]:
    parts = re.findall(_TOML_KEY, dotted)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _toml_leaves(text: str) -> list[_Leaf]:
    """The scalars of a TOML file with their spans (see `_TOML_TABLE`); raises ValueError when it is no TOML."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(str(err)) from None

    def lookup(path: tuple[str | int, ...]) -> Any:
        node: Any = data
        for p in path:
            inside = (isinstance(p, int) and isinstance(node, list) and p < len(node)) or (
                isinstance(p, str) and isinstance(node, dict) and p in node)
            if not inside:
                return None
            node = node[p]
        return node

    def leaf(path: tuple[str | int, ...], s: int, e: int) -> _Leaf | None:
        raw = text[s:e]
        quoted = raw[:1] in "\"'"
        want = lookup(path)
        if isinstance(want, bool) or quoted:
            value: Value | None = want if isinstance(want, bool | str) else None
        else:
            value = want if isinstance(want, int | float) and math.isfinite(want) else None
        return _Leaf(path, s, e, value, quoted) if value is not None else None

    out: list[_Leaf] = []
    table: tuple[str, ...] | None = ()
    at = 0
    for line in text.splitlines(keepends=True):
        start, body = at, line.rstrip("\r\n")
        at += len(line)
        if _TOML_ARRAY_TABLE.match(body):
            table = None  # an array of tables: its entries have no single key path
            continue
        head = _TOML_TABLE.match(body)
        if head:
            table = _toml_keys(head.group(1))
            continue
        pair = _TOML_PAIR.match(body)
        if pair is None or table is None:
            continue
        path: tuple[str | int, ...] = (*table, *_toml_keys(pair.group(1)))
        rest = pair.end()
        scalar = _TOML_SCALAR.match(body, rest)
        if scalar and _TOML_END.match(body, scalar.end()):
            got = leaf(path, start + scalar.start(), start + scalar.end())
            if got is not None:
                out.append(got)
            continue
        if body[rest:rest + 1] == "[" and isinstance(lookup(path), list):  # a one-line array of numbers
            close = body.find("]", rest)
            if close < 0 or not _TOML_END.match(body, close + 1):
                continue
            for i, m in enumerate(re.finditer(r"[^,\s\[\]]+", body[rest + 1:close])):
                s = start + rest + 1 + m.start()
                got = leaf((*path, i), s, s + len(m.group()))
                if got is not None:
                    out.append(got)
    return out


def _scan_toml(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    if path.replace("\\", "/").rsplit("/", 1)[-1].lower() in _TOML_SKIP:
        return []  # a project's or a tool's own settings, not the training's
    try:
        leaves = _toml_leaves(text)
    except ValueError:
        return []
    return _config_found(path, text, leaves, "toml", texts)


_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_JSON_WS = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.DOTALL)


class _JsonScanner:
    """A position-aware JSON reader (comments and trailing commas tolerated, as in most JSON config files):
    records every scalar's span so a rewrite can splice it."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.out: list[_Leaf] = []

    def ws(self) -> None:
        m = _JSON_WS.match(self.s, self.i)
        if m:
            self.i = m.end()

    def expect(self, c: str) -> None:
        self.ws()
        if self.s[self.i:self.i + 1] != c:
            raise ValueError(f"expected {c!r} at {self.i}")
        self.i += 1

    def string(self) -> str:
        s, end = json.decoder.scanstring(self.s, self.i + 1)  # type: ignore[attr-defined]
        self.i = end
        return str(s)

    def value(self, path: tuple[str | int, ...], depth: int = 0) -> None:
        if depth > 200:
            raise ValueError("too deep")
        self.ws()
        c = self.s[self.i:self.i + 1]
        start = self.i
        if c == "{":
            self.i += 1
            self.ws()
            while self.s[self.i:self.i + 1] != "}":
                self.ws()
                if self.s[self.i:self.i + 1] != '"':
                    raise ValueError(f"expected key at {self.i}")
                key = self.string()
                self.expect(":")
                self.value((*path, key), depth + 1)
                self.ws()
                if self.s[self.i:self.i + 1] == ",":
                    self.i += 1
                    self.ws()
                elif self.s[self.i:self.i + 1] != "}":
                    raise ValueError(f"expected , or }} at {self.i}")
            self.i += 1
        elif c == "[":
            self.i += 1
            self.ws()
            n = 0
            while self.s[self.i:self.i + 1] != "]":
                self.value((*path, n), depth + 1)
                n += 1
                self.ws()
                if self.s[self.i:self.i + 1] == ",":
                    self.i += 1
                    self.ws()
                elif self.s[self.i:self.i + 1] != "]":
                    raise ValueError(f"expected , or ] at {self.i}")
            self.i += 1
        elif c == '"':
            v = self.string()
            self.out.append(_Leaf(path, start, self.i, v, True))
        else:
            m = _JSON_NUMBER.match(self.s, self.i)
            if m and m.end() > self.i:
                raw = m.group()
                self.i = m.end()
                num: int | float = int(raw) if _INT_TEXT.fullmatch(raw) else float(raw)
                self.out.append(_Leaf(path, start, self.i, num, False))
                return
            for lit, val in (("true", True), ("false", False), ("null", None)):
                if self.s.startswith(lit, self.i):
                    self.i += len(lit)
                    if val is not None:
                        self.out.append(_Leaf(path, start, self.i, val, False))
                    return
            raise ValueError(f"unexpected {c!r} at {self.i}")

    def run(self) -> list[_Leaf]:
        self.value(())
        self.ws()
        if self.i != len(self.s):
            raise ValueError("trailing data")
        return self.out


def _leaf_name(path: tuple[str | int, ...]) -> str:
    name = ""
    for p in path:
        if isinstance(p, int):
            name += f"[{p}]"
        else:
            name = f"{name}.{p}" if name else p
    return name


def _config_found(path: str, text: str, leaves: list[_Leaf], style: str, texts: Sequence[str]) -> list[_Found]:
    """Turn config scalars into knobs. A file none of whose keys names a known hyperparameter is taken for data
    (label maps, results, vocabularies) and yields nothing."""
    if len(leaves) > _MAX_CONFIG_SCALARS:
        return []
    starts = _line_starts(text)
    out: list[_Found] = []
    known = False
    for leaf in leaves:
        if leaf.value is None or not leaf.path:
            continue
        keys = [p for p in leaf.path if isinstance(p, str)]
        if not keys:
            continue
        name = _leaf_name(leaf.path)
        v = leaf.value
        element = isinstance(leaf.path[-1], int)
        if isinstance(v, str):
            group = None if element else _choice_group(name, v)
            if group is None:
                continue
            known = True
            kind, choices = "choice", _choices(group, v, texts)
        else:
            base = classify_path(keys)
            if base == "split" or _hydra_key(keys[-1]):
                continue  # a split changes what is measured; Hydra's `_partial_: true` flipped breaks instantiation
            if element:
                elem = _ELEMENT_KIND.get(base)
                if elem is None or isinstance(v, bool):
                    continue
                base = elem
            known = known or base in _TUNABLE_KNOWN
            kind = "flag" if isinstance(v, bool) and base not in ("seed", "logging") else base
            choices = ()
            if leaf.quoted:
                continue  # numbers in quotes are strings to the code that reads them
        out.append(_Found(_knob_at(path, text, starts, name, v, kind, style, leaf.start, choices),
                          leaf.start, leaf.end))
    return out if known else []


def _scan_yaml(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    try:
        leaves = _yaml_leaves(text)
    except (yaml.YAMLError, ValueError, RecursionError):
        return []
    return _config_found(path, text, leaves, "yaml", texts)


def _scan_gin(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    """gin-config bindings (`train.learning_rate = 3e-4`, `scope/make_model.hidden = 256`) and macros (`LR = 3e-4`)
    whose value is one literal on its line; references (`@fn`, `%MACRO`) and containers are left alone."""
    return _config_found(path, text, gin_bindings(text), "gin", texts)


def gin_bindings(text: str) -> list[_Leaf]:
    """The literal bindings of a .gin file as config leaves, keyed `fn.param` (a scope stays in the name:
    `train/make_model.hidden`)."""
    out: list[_Leaf] = []
    at = 0
    for line in text.splitlines(keepends=True):
        m = _GIN_BINDING.match(line)
        if m is not None:
            raw = m.group("value")
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                value = None
            if isinstance(value, bool | int | float | str):
                key = m.group("key")
                parts: tuple[str | int, ...] = tuple(key.rsplit(".", 1)) if "." in key else (key,)
                start = at + m.start("value")
                out.append(_Leaf(parts, start, start + len(raw), value, False))
        at += len(line)
    return out


_GIN_BINDING = re.compile(r"[ \t]*(?P<key>[A-Za-z_][\w./]*)[ \t]*=[ \t]*(?P<value>[^#\n]*?)[ \t]*(?:#.*)?$")


# INI-style configs: Python's configparser files (`config.read("config.ini")`, then `cfg.getfloat("optim", "lr")`)
# and spaCy / thinc's config.cfg (`[training.optimizer]` then `learn_rate = 0.001`, values written as JSON). A
# `[section]` header (dots in it nest: `training.optimizer`), then `key = value` or `key: value` lines; the value is
# a number, a boolean (`true`, `yes`, `on`), a JSON string or a plain word. Left out, never guessed: a value that
# continues on indented lines, an interpolation (`${paths.train}`, `%(base)s`), a list, `null`, and a registry
# reference (`@optimizers = "Adam.v1"`, which names a function, not a setting). The tools' own files (setup.cfg,
# tox.ini, ...) are no training's settings.
_INI_SECTION = re.compile(r"^\[[ \t]*([^\]\n]+?)[ \t]*\][ \t]*(?:[#;].*)?$")
_INI_PAIR = re.compile(r"^([^\s=:#;\[][^=:\n]*?)[ \t]*[=:][ \t]*")
_INI_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_INI_TRUE = frozenset({"true", "yes", "on"})
_INI_FALSE = frozenset({"false", "no", "off"})
_INI_WORD = re.compile(r"[A-Za-z_][\w.\-]*")
_INI_SKIP = frozenset({"setup.cfg", "tox.ini", "pytest.ini", "mypy.ini", "alembic.ini", "flake8.cfg", ".flake8",
                       "pylintrc", ".pylintrc", "uwsgi.ini", "pip.ini", ".bumpversion.cfg", "bumpversion.cfg",
                       "versioneer.cfg", "nose.cfg", "pep8.ini", "pycodestyle.cfg", "tslint.ini", "supervisord.ini"})


def ini_settings(text: str) -> list[_Leaf]:
    """The scalars of an INI-style config (see `_INI_SECTION`) as config leaves keyed by section and key
    (`training.optimizer.learn_rate`), each with the span of its value."""
    out: list[_Leaf] = []
    section: tuple[str, ...] | None = None
    last: _Leaf | None = None
    at = 0
    for line in text.splitlines(keepends=True):
        start, body = at, line.rstrip("\r\n")
        at += len(line)
        if body[:1] in (" ", "\t") and body.strip() and not body.lstrip().startswith(("#", ";")):
            if last is not None and out and out[-1] is last:
                out.pop()  # the value goes on over indented lines: a multi-line value, not a scalar
            last = None
            continue
        last = None
        if not body.strip() or body.lstrip().startswith(("#", ";")):
            continue
        head = _INI_SECTION.match(body)
        if head:
            section = tuple(p.strip() for p in head.group(1).split("."))
            continue
        pair = _INI_PAIR.match(body)
        if pair is None or section is None:
            continue
        key = pair.group(1).strip()
        raw = body[pair.end():].rstrip()  # (configparser keeps a `; comment` after a value: no scalar then)
        if not raw or key.startswith("@") or "${" in raw or "%(" in raw:
            continue
        value: Value | None = None
        quoted = False
        low = raw.lower()
        if _INI_NUMBER.fullmatch(raw):
            number = float(raw)
            value = int(raw) if re.fullmatch(r"[-+]?\d+", raw) else number
            if isinstance(value, float) and not math.isfinite(value):
                value = None
        elif low in _INI_TRUE or low in _INI_FALSE:
            value = low in _INI_TRUE
        elif raw[:1] == '"' and raw[-1:] == '"' and len(raw) > 1:
            try:
                loaded = json.loads(raw)
            except ValueError:
                loaded = None
            value, quoted = (loaded, True) if isinstance(loaded, str) else (None, False)
        elif _INI_WORD.fullmatch(raw) and low != "null" and low != "none":
            value = raw
        if value is None:
            continue
        s = start + pair.end()
        last = _Leaf((*section, key), s, s + len(raw), value, quoted)
        out.append(last)
    return out


def _scan_ini(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    if path.replace("\\", "/").rsplit("/", 1)[-1].lower() in _INI_SKIP:
        return []
    return _config_found(path, text, ini_settings(text), "ini", texts)


def _scan_json(path: str, text: str, texts: Sequence[str]) -> list[_Found]:
    # JSON is read with our own scanner first: it follows JSON's rules exactly (``1e-3`` is a number, keys need no
    # space after the colon, tabs are whitespace) where PyYAML's YAML 1.1 rules differ. The composer is the fallback
    # for JSON-ish files the scanner rejects.
    try:
        leaves = _JsonScanner(text).run()
    except (ValueError, IndexError, RecursionError):
        try:
            leaves = _yaml_leaves(text)
        except (yaml.YAMLError, ValueError, RecursionError):
            return []
    return _config_found(path, text, leaves, "json", texts)
