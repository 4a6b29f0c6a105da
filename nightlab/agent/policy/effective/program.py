"""The program a command runs (`analyse`): its entry point, the files it imports at any depth and execs, the config
files it reads (named on the command line, loaded by the code, Hydra's composed defaults, inherited bases), and how
the command line reaches its settings."""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from nightlab.agent.policy.commandline import LIBRARY_TRAINERS, Invocation, parse_command
from nightlab.agent.policy.effective.lazy_configs import imported_names
from nightlab.agent.policy.effective.python_facts import (
    _CONFIG_EXTS,
    _Option,
    _py_facts,
    _PyFacts,
    _section_of,
    _str,
    find_option,
)

CLI_STYLE = "cli"
_OVERRIDABLE_STYLES = frozenset({"constant", "argparse", "dataclass", "dict", "env", "signature", "getattr"})
_MAX_FILES = 400


@dataclass(frozen=True)
class ConfigFile:
    """A config file the program reads: its path, the key prefix its keys get (Hydra groups), and how it is read."""

    path: str
    prefix: str = ""
    how: str = ""
    # leading parts of a knob's name that are no part of its key: 2 in an ml_collections config file, whose keys
    # are set on the ConfigDict `get_config()` returns (`get_config.config.num_epochs` is `num_epochs`)
    scope_parts: int = 0
    # the top-level key the program reads the file under, where it picks one by a setting (rl-baselines3-zoo's
    # `yaml.safe_load(f)[args.env]` with `--env CartPole-v1`): the other sections are never read
    section: str = ""
    section_literal: bool = False  # the code names that key itself (`yaml.safe_load(f)["train"]`)


@dataclass
class Program:
    """What a command runs. `run_files` is None when the entry point is unknown (then nothing is ruled out)."""

    command: str
    invocation: Invocation | None
    run_files: set[str] | None
    configs: list[ConfigFile]
    options: list[_Option]
    exec_configs: bool = False  # config .py files named on the command line are exec'd over the entry's globals
    argv_globals: bool = False  # --k=v arguments set the entry's globals (configurator.py)
    dotlist: bool = False  # k=v arguments set config keys (Hydra, OmegaConf.from_cli)
    config_over_cli: bool = False  # the code overwrites the parsed arguments from a config: the config wins
    signature_cli: bool = False  # LightningCLI: `model.lr` in a config or `--model.lr` sets `__init__(lr=...)`
    cli_functions: frozenset[str] = frozenset()  # typer / fire: `--lr` sets `def main(lr=...)`
    library: str = ""  # a library's trainer runs (`spacy`): it reads the config's keys, no code of the repository's
    possible_configs: list[str] = field(default_factory=list)  # config-like files the code may read (pattern)
    exists: Callable[[str], bool] = field(default=lambda _p: False, repr=False)
    takes_value: Callable[[str], bool | None] = field(default=lambda _n: None, repr=False)
    read: Callable[[str], str] | None = field(default=None, repr=False)  # the repository's files, as `analyse` read
    pairs: tuple[str, ...] | None = None  # the command's `KEY VALUE` words set config keys (see `parse_command`)
    # Python configs read as data (Detectron2's LazyConfig, mmengine) and the repository files they import: each
    # file's imported names -> (the file they come from, their name there); see lazy_configs.py
    lazy_imports: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    lazy_only: frozenset[str] = frozenset()  # of those, the files only configs import (no code of the run does)

    def config(self, path: str) -> ConfigFile | None:
        return next((c for c in self.configs if c.path == path), None)

    def option_for(self, name: str) -> _Option | None:
        """The declared option a name means: one of its strings or its dest, else the option a command-line word
        abbreviates (argparse's prefixes: `find_option`)."""
        key = name.lstrip("-").replace("-", "_")
        for o in self.options:
            if name in o.strings or o.dest == key:
                return o
        return find_option(self.options, name)


@dataclass
class Resolution:
    """For each knob name: why it does not take effect (absent = effective); the command-line knobs."""

    program: Program
    shadowed: dict[str, str] = field(default_factory=dict)  # knob name -> "overridden by ..."
    unused: dict[str, str] = field(default_factory=dict)  # knob name -> "not run by the command", ...
    by: dict[str, str] = field(default_factory=dict)  # shadowed knob name -> the knob name that overrides it

    def why_not(self, name: str) -> str:
        return self.shadowed.get(name) or self.unused.get(name) or ""


def _resolve_module(module: str, level: int, names: tuple[str, ...], importer: str, roots: Sequence[str],
                    exists: Callable[[str], bool]) -> list[str]:
    """Repo files an import statement loads (packages' __init__ files included), [] for outside modules."""
    if level:
        base = posixpath.dirname(importer)
        for _ in range(level - 1):
            base = posixpath.dirname(base)
        bases = [base]
    else:
        bases = list(roots)
    out: list[str] = []
    for b in bases:
        rel = module.replace(".", "/") if module else ""
        stem = posixpath.join(b, rel) if rel else b
        stem = posixpath.normpath(stem) if stem else ""
        hits = []
        if stem and exists(f"{stem}.py"):
            hits.append(f"{stem}.py")
        if exists(posixpath.join(stem, "__init__.py") if stem else "__init__.py"):
            hits.append(posixpath.join(stem, "__init__.py") if stem else "__init__.py")
        for n in names:
            sub = posixpath.join(stem, n) if stem else n
            if exists(f"{sub}.py"):
                hits.append(f"{sub}.py")
            elif exists(f"{sub}/__init__.py"):
                hits.append(f"{sub}/__init__.py")
        if hits:
            # parent packages run their __init__ too
            parts = rel.split("/") if rel else []
            for i in range(1, len(parts)):
                init = posixpath.normpath(posixpath.join(b, *parts[:i], "__init__.py"))
                if exists(init):
                    hits.append(init)
            out.extend(hits)
            break
    return out


def _norm(p: str) -> str:
    p = posixpath.normpath(p)
    return "" if p == "." else p


def analyse(command: str, read: Callable[[str], str], exists: Callable[[str], bool],
            tracked: Sequence[str] = ()) -> Program:
    """The program `command` runs, read from the repository (`read(path)` gives a tracked file's text, "" if none;
    `exists(path)` whether a tracked file exists; `tracked` all tracked paths, for config-file patterns)."""
    facts: dict[str, _PyFacts | None] = {}

    def fx(path: str) -> _PyFacts | None:
        if path not in facts:
            facts[path] = _py_facts(read(path)) if path.endswith(".py") else None
        return facts[path]

    def takes_value(name: str) -> bool | None:
        hit = find_option((o for f in facts.values() if f is not None for o in f.options), name)
        return hit.takes_value if hit is not None else None

    # the entry point's argparse options tell which options take values; parse once to find the entry, then again
    inv = parse_command(command, exists, read)
    pairs: tuple[str, ...] | None = None
    if inv is not None and inv.entry:
        pairs = _pair_options(fx(inv.entry))
        inv = parse_command(command, exists, read, takes_value, pairs)
    if inv is not None and inv.entry is None and inv.module in LIBRARY_TRAINERS:
        # a library's trainer (`spacy train config.cfg --training.max_epochs 5`): no file of the repository's runs;
        # the config its command line names holds the settings, and a dotted flag overrides the key it names
        named = [ConfigFile(p, "", f"named on the command line ({inv.module} {LIBRARY_TRAINERS[inv.module]})")
                 for p in inv.files if p.endswith(_CONFIG_EXTS)]
        return Program(command=command, invocation=inv, run_files=set(), configs=named[:1], options=[],
                       library=inv.module, exists=exists, takes_value=takes_value, read=read)
    if inv is None or inv.entry is None:
        return Program(command=command, invocation=inv, run_files=None, configs=[], options=[], exists=exists,
                       takes_value=takes_value, read=read)
    entry = inv.entry
    # where imports resolve from: the script's folder, the one it runs in (-m), PYTHONPATH, the top, src/
    roots = list(dict.fromkeys([posixpath.dirname(entry), inv.cwd, *inv.paths, "", "src"]))
    run: list[str] = []
    queue = [entry]
    exec_targets: set[str] = set()
    while queue and len(run) < _MAX_FILES:
        path = queue.pop(0)
        if path in run:
            continue
        run.append(path)
        f = fx(path)
        if f is None:
            continue
        for mod, level, names in f.imports:
            for hit in _resolve_module(mod, level, names, path, roots, exists):
                if hit not in run:
                    queue.append(hit)
        here = posixpath.dirname(path)
        tries: list[tuple[str, ...]] = [(_norm(lit), _norm(posixpath.join(here, lit))) for lit in f.exec_paths]
        tries += [(_norm(posixpath.join(here, lit)),) for lit in f.exec_beside]  # from the file's folder only
        for cands in tries:
            for cand in cands:
                if cand and exists(cand):
                    exec_targets.add(cand)
                    if cand not in run:
                        queue.append(cand)
                    break
    run_set = set(run)
    # the configurator pattern: code exec'd into the entry (or the entry itself) that reads sys.argv and exec's
    # what it names, and/or writes globals() from it
    scope = [entry, *sorted(exec_targets)]
    exec_configs = any((f := fx(p)) is not None and f.dynamic_exec and f.reads_argv for p in scope)
    argv_globals = any((f := fx(p)) is not None and f.sets_globals and f.reads_argv for p in scope)
    options = [o for p in run if (f := fx(p)) is not None for o in f.options]
    configs: list[ConfigFile] = []
    cli_values = {str(a.value) for a in inv.args if isinstance(a.value, str)}
    possible: list[str] = []
    # config files the code names (literals), except argparse defaults the command line replaces
    given = {a.name for a in inv.args}
    for p in run:
        f = fx(p)
        if f is None:
            continue
        for lit in f.literals:
            if not lit.endswith(_CONFIG_EXTS) or (lit in f.option_defaults and f.option_defaults[lit] in given):
                continue
            # a path in code counts from where the command runs (`cd exp && python train.py`), else the file's folder
            for cand in (_norm(posixpath.join(inv.cwd, lit)), _norm(lit),
                         _norm(posixpath.join(posixpath.dirname(p), lit))):
                if cand and exists(cand) and cand not in inv.files:
                    if not any(c.path == cand for c in configs):
                        configs.append(ConfigFile(cand, "", f"read by {p}"))
                    break
        for pat in f.patterns:
            for cand_pat in (pat, posixpath.join(posixpath.dirname(p), pat)):
                matched = [t for t in tracked if fnmatch.fnmatch(t, _norm(cand_pat))]
                chosen = [t for t in matched if posixpath.splitext(posixpath.basename(t))[0] in cli_values]
                for t in chosen:
                    if not any(c.path == t for c in configs):
                        configs.append(ConfigFile(t, "", f"read by {p}, named by the command line"))
                if not chosen:
                    possible.extend(matched)
        if f.hydra is not None:
            configs.extend(_hydra_configs(p, f.hydra, inv, read, exists))
    fromfile = any((f := fx(p)) is not None and f.config_fromfile for p in run)
    config_flags = {n for p in run if (f := fx(p)) is not None for n in f.config_flags}
    for path in inv.files:
        opt = inv.file_options.get(path)
        if path.endswith(".py") and not exec_configs and not opt and not fromfile:
            continue  # a Python file named on the command line but not exec'd: a module the entry imports
        flag = (opt or "").lstrip("-")
        if path.endswith(".py") and flag in config_flags:
            # ml_collections: `--config=configs/default.py` runs its get_config(), `--config.num_epochs=5` sets a key
            configs.append(ConfigFile(path, flag, f"named on the command line ({opt}) and built by its get_config() "
                                      "(ml_collections)", scope_parts=2))
            continue
        how = " and exec'd over the entry's globals" if exec_configs else " and read by Config.fromfile"
        configs.append(ConfigFile(path, "", f"named on the command line{f' ({opt})' if opt else ''}"
                                  + (how if path.endswith(".py") else "")))
    configs = _with_bases(configs, read, exists)
    lazy_imports = _config_imports([c.path for c in configs if c.path.endswith(".py")] if fromfile else [],
                                   read, exists, roots) if fromfile else {}
    lazy_only = frozenset(p for p in lazy_imports if p not in run_set and p not in {c.path for c in configs})
    run_set |= lazy_only
    picking = [p for p in run if (f := fx(p)) is not None and f.picks_section]
    if picking and read is not None:  # `yaml.safe_load(f)[args.env]`: the section `--env CartPole-v1` names
        values = cli_values | {lit for p in run if (f := fx(p)) is not None
                               for lit, opt in f.option_defaults.items() if opt not in given}
        configs = [dataclasses.replace(c, section=_section_of(read(c.path), c.path, values))
                   if c.path.endswith((".yaml", ".yml", ".json")) and any(c.how.startswith(f"read by {p}")
                                                                          for p in picking) else c for c in configs]
    for p in run:  # `yaml.safe_load(f)["train"]`: the one key every read of the file takes
        key = f.fixed_section if (f := fx(p)) is not None else ""
        if key:
            configs = [dataclasses.replace(c, section=key, section_literal=True)
                       if c.path.endswith((".yaml", ".yml", ".json")) and c.how.startswith(f"read by {p}")
                       and not c.section and _section_of(read(c.path), c.path, [key]) == key else c
                       for c in configs]
    dotlist = any((f := fx(p)) is not None and (f.from_cli or f.hydra is not None) for p in run)
    config_over_cli = bool(configs) and bool(options) and any(
        (f := fx(p)) is not None and f.args_overwritten for p in run)
    signature_cli = any((f := fx(p)) is not None and f.signature_cli for p in run)
    cli_functions = frozenset(n for p in run if (f := fx(p)) is not None for n in f.cli_functions)
    return Program(command=command, invocation=inv, run_files=run_set, configs=configs, options=options,
                   exec_configs=exec_configs, argv_globals=argv_globals, dotlist=dotlist, possible_configs=possible,
                   config_over_cli=config_over_cli, signature_cli=signature_cli, exists=exists,
                   takes_value=takes_value, read=read, pairs=pairs, cli_functions=cli_functions,
                   lazy_imports=lazy_imports, lazy_only=lazy_only)


def _config_imports(configs: Sequence[str], read: Callable[[str], str], exists: Callable[[str], bool],
                    roots: Sequence[str]) -> dict[str, dict[str, tuple[str, str]]]:
    """The Python configs and every repository file they import, at any depth (reading a config executes it, so
    what it imports runs), with each file's imported names and where they come from."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    queue = list(configs)
    while queue and len(out) < _MAX_FILES:
        path = queue.pop(0)
        if path in out:
            continue
        names: dict[str, tuple[str, str]] = {}
        for module, level, name, bound in imported_names(read(path)):
            own = _resolve_module(module, level, (), path, roots, exists)  # the module itself, its packages
            hits = _resolve_module(module, level, (name,), path, roots, exists)
            if own and len(hits) == len(own):  # not a submodule of that name: a name the module defines
                names[bound] = (own[0], name)
            queue.extend(h for h in hits if h not in out)
        out[path] = names
    return out


def _pair_options(facts: _PyFacts | None) -> tuple[str, ...] | None:
    """When the entry merges the command's words into its config (detectron2's ``cfg.merge_from_list(args.opts)``,
    mmengine's ``cfg.merge_from_dict(args.cfg_options)``), the options that take those words (``--opts``,
    ``--cfg-options``); None when it does not, so bare words stay positional arguments."""
    if facts is None or not facts.merges_words:
        return None
    return tuple(s for o in facts.options if o.many for s in o.strings)


# keys by which a config names the config it extends (`defaults: base.yaml`, mmengine's `_base_`, `extends:`)
_BASE_KEYS = frozenset({"defaults", "_base_", "__base__", "base", "inherit", "inherits", "extends", "include",
                        "includes", "parent"})


def _with_bases(configs: list[ConfigFile], read: Callable[[str], str],
                exists: Callable[[str], bool]) -> list[ConfigFile]:
    """`configs` with the files each YAML / JSON / Python config names as its base before it (applied first, so the
    config's own keys override the base's): a repository's own loader merging `defaults: base.yaml` under a small
    config, or mmengine's `_base_ = [...]`, makes the base's other settings the ones in effect (they had been "not
    read")."""
    out: list[ConfigFile] = []

    def add(c: ConfigFile, depth: int) -> None:
        if any(o.path == c.path for o in out):
            return
        if depth < 4 and c.path.endswith((".yaml", ".yml", ".json", ".py")) and not c.how.startswith("Hydra"):
            exts = (*_CONFIG_EXTS, ".py") if c.path.endswith(".py") else _CONFIG_EXTS  # mmengine bases its .py
            for ref in _base_names(c.path, read(c.path)):
                for cand in (_norm(posixpath.join(posixpath.dirname(c.path), ref)), _norm(ref)):
                    if cand and cand != c.path and cand.endswith(exts) and exists(cand):
                        add(ConfigFile(cand, c.prefix, f"the base {c.path} names"), depth + 1)
                        break
        out.append(c)

    for c in configs:
        add(c, 0)
    return out


def _base_names(path: str, text: str) -> list[str]:
    """The files a config names as its bases, in order: a YAML / JSON config's `defaults:` / `_base_:` /
    `extends:` value (detectron2 writes `_BASE_:`), a Python config's module-level ``_base_ = '…'`` or ``_base_ =
    ['…', …]`` (mmengine, mmcv)."""
    if path.endswith(".py"):
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError):
            return []
        values = [n.value for n in tree.body if isinstance(n, ast.Assign) and len(n.targets) == 1
                  and isinstance(n.targets[0], ast.Name) and n.targets[0].id in ("_base_", "__base__")]
        elts = [e for v in values for e in (v.elts if isinstance(v, ast.List | ast.Tuple) else [v])]
        return [str(x) for e in elts if (x := _str(e)) is not None]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    names = [v for k, v in data.items() if str(k).lower() in _BASE_KEYS] if isinstance(data, dict) else []
    return [x for v in names for x in (v if isinstance(v, list) else [v]) if isinstance(x, str)]


def _hydra_configs(path: str, hydra: tuple[str | None, str | None], inv: Invocation, read: Callable[[str], str],
                   exists: Callable[[str], bool]) -> list[ConfigFile]:
    """The YAML files Hydra composes: the primary config, then its defaults list (groups get their package prefix);
    ``group=option`` on the command line selects another option of a group, ``+group=option`` adds the group to the
    primary config's defaults, and ``override /group: option`` in any composed file (an experiment) selects that
    group's option (the command line's choice still wins)."""
    cpath, cname = hydra
    for a in inv.args:  # Hydra's own flags choose another primary config: `--config-name exp1`, `-cp conf2`
        if a.value is not None and a.name in ("--config-name", "-cn"):
            cname = str(a.value)
        elif a.value is not None and a.name in ("--config-path", "-cp"):
            cpath = str(a.value)
    if cpath is None or cname is None:
        return []
    composer = _HydraComposer(_norm(posixpath.join(posixpath.dirname(path), cpath)), read, exists)
    primary = composer.yaml_path(cname)
    if primary is None:
        return []
    groups = [a for a in inv.args if a.style == "dotlist" and "." not in a.key and a.value is not None]
    cli = {a.key: str(a.value) for a in groups}
    composer.added = [(a.key, str(a.value)) for a in groups if a.name.startswith("+")]
    # Hydra collects the `override` entries of every composed file first, then builds the list: a selection can
    # bring in a file with overrides of its own, so repeat until the choice is stable
    selected = dict(cli)
    out: list[ConfigFile] = []
    for _ in range(4):
        out, overrides = composer.compose(ConfigFile(primary, "", f"Hydra config of {path}"), selected)
        merged = {**selected, **overrides, **cli}
        if merged == selected:
            break
        selected = merged
    return out


@dataclass
class _HydraComposer:
    """Walks a Hydra defaults tree under the config folder `base` for one choice of group options."""

    base: str
    read: Callable[[str], str]
    exists: Callable[[str], bool]
    added: list[tuple[str, str]] = field(default_factory=list)  # `+group=option` on the command line

    def yaml_path(self, *parts: str) -> str | None:
        stem = _norm(posixpath.join(self.base, *parts))
        if stem.endswith((".yaml", ".yml")):  # `config_name="train.yaml"`, as the lightning-hydra-template writes it
            return stem if self.exists(stem) else None
        for ext in (".yaml", ".yml"):
            if self.exists(stem + ext):
                return stem + ext
        return None

    def compose(self, primary: ConfigFile, selected: Mapping[str, str]) -> tuple[list[ConfigFile], dict[str, str]]:
        """The files in the order Hydra applies them for the group choices `selected`, and the `override /group:
        option` choices the composed files make."""
        out: list[ConfigFile] = []
        overrides: dict[str, str] = {}
        self._walk(primary, "", selected, out, overrides, 0)
        return out, overrides

    def _walk(self, config: ConfigFile, group: str, selected: Mapping[str, str], out: list[ConfigFile],
              overrides: dict[str, str], depth: int) -> None:
        """A config file in the order Hydra applies it: its defaults list, the file's own values where `_self_`
        stands (at the end when it is absent, as since Hydra 1.1: a config overrides its defaults). A config named
        whole (`- config` in an experiment chosen with `--config-name exp1`) brings its own defaults along, and so
        does a group's option (`model/small.yaml` choosing `- encoder: tiny` picks `model/encoder/tiny.yaml`)."""
        try:
            data = yaml.safe_load(self.read(config.path)) or {}
        except yaml.YAMLError:
            data = {}
        defaults = data.get("defaults", []) if isinstance(data, dict) else []
        items: list[Any] = list(defaults) if isinstance(defaults, list) else []
        if "_self_" not in items:
            items.append("_self_")
        if depth == 0:
            items.extend({g: o} for g, o in self.added)  # `+experiment=small`: after the primary's own values
        for item in items:
            if item == "_self_":
                out.append(config)
            elif isinstance(item, str):
                p = self.yaml_path(item)
                if p and depth < 4 and all(c.path != p for c in out):
                    self._walk(ConfigFile(p, "", f"Hydra defaults of {config.path}"), "", selected, out, overrides,
                               depth + 1)
            elif isinstance(item, dict):
                for key, option in item.items():
                    self._entry(config, group, str(key), option, selected, out, overrides, depth)

    def _entry(self, config: ConfigFile, parent: str, key: str, option: Any, selected: Mapping[str, str],
               out: list[ConfigFile], overrides: dict[str, str], depth: int) -> None:
        """One ``group: option`` entry of a defaults list: an ``override`` records its choice (it adds no file of
        its own); any other entry composes the selected option's file (the command line's or an override's first)."""
        words = key.split()
        is_override = "override" in words[:-1]
        name = words[-1] if words else key
        # a group named absolutely (`/model`) counts from the config folder; otherwise from the including group's
        group = name.lstrip("/") if name.startswith("/") or not parent else f"{parent}/{name}"
        group = group.split("@", 1)[0]  # `model@net: small` puts the option under another package
        if is_override:
            if option is not None and not isinstance(option, list | dict):
                overrides.setdefault(group.replace("/", "."), str(option))
            return
        option = selected.get(group.replace("/", "."), option)
        if option is None or depth >= 4:
            return
        for opt in option if isinstance(option, list) else [option]:
            p = self.yaml_path(group, str(opt))
            if p is None or any(c.path == p for c in out):
                continue
            header = self.read(p).lstrip().splitlines()[:1]
            package = header[0].split("@package", 1)[1].strip() if header and "@package" in header[0] else ""
            prefix = "" if package == "_global_" else (package or group.replace("/", "."))
            self._walk(ConfigFile(p, prefix, f"Hydra group {group} of {config.path}"), group, selected, out,
                       overrides, depth + 1)
