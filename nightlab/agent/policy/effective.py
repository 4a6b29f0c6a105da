"""Where a setting takes effect: the files a command runs, the config files they read, and what overrides what.

Real training code sets one hyperparameter in several places at once. nanoGPT's ``train.py`` holds defaults as
module globals, ``configurator.py`` (exec'd by train.py) executes the config file named on the command line over
them, and ``--key=value`` arguments override both. An argparse default is dead when the command passes the flag; a
dataclass default is dead when every place that builds the dataclass passes the field; a YAML file nobody loads,
or a script the command does not run, changes nothing at all. Editing such a location costs a training run and
teaches nothing, so the builtin policy must see, for every knob, whether it takes effect — and if not, where the
setting does.

`analyse` reads the program a command runs (entry point, imports at any depth, exec'd files, config files named on
the command line or loaded by the code, Hydra's config directory and defaults list, argparse options) from the
repository's files; `resolve` takes the knobs found in those files plus the settings on the command line and says,
for each knob, that it is effective, shadowed (by what), or unused (why). Precedence, lowest first:

1. defaults in code: module globals, argparse defaults, dataclass fields, config dicts, function defaults;
2. config files, in the order they are applied (Hydra's defaults list, then files named on the command line);
3. settings on the command line (``--k v``, ``--k=v``, ``k=v``).

Everything is decided from the code's structure (imports, calls, assignments, the command's words), never from
comments or file names. Where the analysis cannot see (a command that runs no Python file it can find), nothing is
declared unused or shadowed: knobs stay as discovered.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import functools
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from nightlab.agent.code_reach import beside_file
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.commandline import COMMAND_PATH, LIBRARY_TRAINERS, Arg, Invocation, parse_command
from nightlab.agent.policy.evaluation import CV_SEARCHES

__all__ = [
    "CLI_STYLE",
    "COMMAND_PATH",
    "ConfigFile",
    "Program",
    "Resolution",
    "analyse",
    "cli_knobs",
    "cli_route",
    "dotted",
    "option_dest",
    "resolve",
    "rewrite_cli",
    "virtual_cli_knob",
]

CLI_STYLE = "cli"
_CONFIG_EXTS = (".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".gin")
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


@dataclass
class _Option:
    strings: tuple[str, ...]
    dest: str
    takes_value: bool
    type_name: str | None
    many: bool = False  # `nargs="+"` / `"*"` / `argparse.REMAINDER`: it takes every word that follows


_ABSL_DEFINES = frozenset({"DEFINE_float", "DEFINE_integer", "DEFINE_string", "DEFINE_bool", "DEFINE_boolean",
                           "DEFINE_enum"})


@dataclass
class _PyFacts:
    imports: list[tuple[str, int, tuple[str, ...]]] = field(default_factory=list)  # (module, level, names)
    exec_paths: list[str] = field(default_factory=list)
    exec_beside: list[str] = field(default_factory=list)  # exec'd paths built from the file's own folder (`__file__`)
    dynamic_exec: bool = False
    reads_argv: bool = False
    sets_globals: bool = False
    literals: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)  # f-string paths with holes: "configs/*.yaml"
    options: list[_Option] = field(default_factory=list)
    option_defaults: dict[str, str] = field(default_factory=dict)  # argparse default literal -> option string
    hydra: tuple[str | None, str | None] | None = None  # (config_path, config_name)
    from_cli: bool = False
    fire: bool = False
    # functions whose parameters are the command line's options: typer's `typer.run(main)` / `@app.command()`,
    # python-fire's `fire.Fire(main)` (`def main(lr: float = 1e-3)` is `--lr`)
    cli_functions: set[str] = field(default_factory=set)
    args_overwritten: bool = False  # `vars(args).update(cfg)`, `args.__dict__.update(...)`, `setattr(args, k, v)`
    parsed: set[str] = field(default_factory=set)  # names bound to `parser.parse_args()` / `parse_known_args()[0]`
    overwritten: set[str] = field(default_factory=set)  # names whose attributes are set from a mapping
    signature_cli: bool = False  # LightningCLI / jsonargparse's CLI: constructor arguments set from configs and flags
    merges_words: bool = False  # yacs' `cfg.merge_from_list(args.opts)`, mmengine's `cfg.merge_from_dict(...)`
    config_fromfile: bool = False  # mmengine / mmcv's `Config.fromfile(path)`: a Python config file read as data
    config_flags: set[str] = field(default_factory=set)  # ml_collections' `config_flags.DEFINE_config_file("config")`
    # a loaded config read only under a key a variable picks (`yaml.safe_load(f)[args.env]`)
    picks_section: bool = False


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

    def config(self, path: str) -> ConfigFile | None:
        return next((c for c in self.configs if c.path == path), None)

    def option_for(self, name: str) -> _Option | None:
        key = name.lstrip("-").replace("-", "_")
        for o in self.options:
            if name in o.strings or o.dest == key:
                return o
        return None


@dataclass
class Resolution:
    """For each knob name: why it does not take effect (absent = effective); the command-line knobs."""

    program: Program
    shadowed: dict[str, str] = field(default_factory=dict)  # knob name -> "overridden by ..."
    unused: dict[str, str] = field(default_factory=dict)  # knob name -> "not run by the command", ...
    by: dict[str, str] = field(default_factory=dict)  # shadowed knob name -> the knob name that overrides it

    def why_not(self, name: str) -> str:
        return self.shadowed.get(name) or self.unused.get(name) or ""


# ----------------------------------------------------------------------------------------------- python facts


def dotted(node: ast.AST) -> str:
    """`a.b.c` for a name or attribute chain, through calls (`np.random.default_rng(0).permutation` →
    `np.random.default_rng.permutation`); "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted(node.value)
        return f"{inner}.{node.attr}" if inner else node.attr
    if isinstance(node, ast.Call):
        return dotted(node.func)
    return ""


def _str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _open_literal(node: ast.AST) -> str | None:
    """The literal path in ``open("x").read()`` / ``open("x")``, else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "read":
        node = node.func.value
    if isinstance(node, ast.Call) and dotted(node.func) in ("open", "io.open") and node.args:
        return _str(node.args[0])
    return None


def _opened_beside(node: ast.AST) -> str | None:
    """The path, from the file's own folder, that ``open(os.path.join(os.path.dirname(__file__), "x.py")).read()``
    or ``(Path(__file__).parent / "x.py").read_text()`` reads (`code_reach.beside_file`), else None. A package's
    entry exec's its configurator this way, so that it is found wherever the command runs from."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "read_text":
        return beside_file(node.func.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "read":
        node = node.func.value
    if isinstance(node, ast.Call) and dotted(node.func) in ("open", "io.open") and node.args:
        return beside_file(node.args[0])
    return None


def _py_facts(text: str) -> _PyFacts | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None
    f = _PyFacts()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            v = node.value.value if isinstance(node.value, ast.Subscript) else node.value  # parse_known_args()[0]
            if isinstance(v, ast.Call) and dotted(v.func).split(".")[-1] in ("parse_args", "parse_known_args"):
                f.parsed.add(node.targets[0].id)
        if isinstance(node, ast.Import):
            for a in node.names:
                f.imports.append((a.name, 0, ()))
        elif isinstance(node, ast.ImportFrom):
            f.imports.append((node.module or "", node.level, tuple(a.name for a in node.names)))
        elif isinstance(node, ast.Attribute) and node.attr == "argv" and dotted(node.value) == "sys":
            f.reads_argv = True
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 300:
            f.literals.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            pat = "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "*"
                          for v in node.values)
            if "*" in pat and pat.endswith((*_CONFIG_EXTS, ".py")):
                f.patterns.append(pat)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) \
                and dotted(node.value) == "globals":
            f.sets_globals = True
        elif isinstance(node, ast.Call):
            _call_facts(node, f)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for d in node.decorator_list:
                if isinstance(d, ast.Call) and dotted(d.func).split(".")[-1] == "main" \
                        and "hydra" in dotted(d.func).split(".")[0]:
                    kw = {k.arg: _str(k.value) for k in d.keywords if k.arg}
                    pos = [_str(a) for a in d.args]
                    f.hydra = (kw.get("config_path", pos[0] if pos else None),
                               kw.get("config_name", pos[1] if len(pos) > 1 else None))
    # the parsed arguments themselves overwritten from a mapping, not any object's attributes (`self.__dict__`)
    f.args_overwritten = bool(f.parsed & f.overwritten)
    f.picks_section = _picks_section(tree)
    if "typer" in text:  # typer's `@app.command()` on a `typer.Typer()` app
        f.cli_functions |= {d.name for d in ast.walk(tree) if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)
                            and any(isinstance(x, ast.Call) and isinstance(x.func, ast.Attribute)
                                    and x.func.attr == "command" for x in d.decorator_list)}
    f.options += _signature_options(tree, f.cli_functions, typer="typer" in text)
    return f


def _signature_options(tree: ast.Module, functions: set[str], typer: bool) -> list[_Option]:
    """The command-line options of functions whose parameters are the options (`cli_functions`): `--batch-size`
    for typer (its own names where `typer.Option(32, "--bs")` gives them), `--batch_size` and `--batch-size` for
    fire; a bool parameter is a switch."""
    out: list[_Option] = []
    for d in (d for d in ast.walk(tree) if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)
              and d.name in functions):
        a = d.args
        positional = [*a.posonlyargs, *a.args]
        pairs = [*zip(positional[len(positional) - len(a.defaults):], a.defaults, strict=True),
                 *((x, v) for x, v in zip(a.kwonlyargs, a.kw_defaults, strict=True) if v is not None)]
        for arg, default in pairs:
            value = default
            named: tuple[str, ...] = ()
            if isinstance(default, ast.Call) and dotted(default.func).split(".")[-1] in ("Option", "Argument"):
                value = default.args[0] if default.args else ast.Constant(None)
                named = tuple(s for x in default.args[1:] if (s := _str(x)) is not None and s.startswith("-"))
            dashed = "--" + arg.arg.replace("_", "-")
            strings = named or ((dashed,) if typer else tuple(dict.fromkeys((f"--{arg.arg}", dashed))))
            switch = isinstance(value, ast.Constant) and isinstance(value.value, bool)
            out.append(_Option(strings, arg.arg, not switch, None))
    return out


_CONFIG_LOADS = frozenset({"safe_load", "load", "full_load", "unsafe_load"})


def _picks_section(tree: ast.Module) -> bool:
    """Whether every read of a loaded YAML / JSON document takes one top-level key that a variable picks:
    ``yaml.safe_load(f)[args.env]``, or ``hp = json.load(f)`` read only as ``hp[env_id]`` (a constant key, a whole
    use, or a document handed on whole says otherwise)."""
    parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    loaded: set[str] = set()
    picked = whole = False
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and dotted(n.func).split(".")[-1] in
                 _CONFIG_LOADS and dotted(n.func).split(".")[0] in ("yaml", "json")):
        up = parents.get(id(call))
        if isinstance(up, ast.Subscript) and up.value is call:
            keyed = isinstance(up.slice, ast.Constant)
            picked, whole = picked or not keyed, whole or keyed
        elif isinstance(up, ast.Assign) and len(up.targets) == 1 and isinstance(up.targets[0], ast.Name):
            loaded.add(up.targets[0].id)
        else:
            whole = True  # `cfg.update(yaml.safe_load(f))`, `Config(**json.load(f))`
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in loaded and isinstance(node.ctx, ast.Load):
            up = parents.get(id(node))
            if isinstance(up, ast.Subscript) and up.value is node and not isinstance(up.slice, ast.Constant):
                picked = True
            else:
                whole = True
    return picked and not whole


def _section_of(text: str | None, path: str, values: Iterable[str]) -> str:
    """The top-level key of a YAML / JSON config that one of `values` (the command's words, the defaults of options
    it does not give) names, where exactly one does; "" otherwise."""
    if not text:
        return ""
    try:
        doc = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, RecursionError):
        return ""
    if not isinstance(doc, dict):
        return ""
    hits = {str(k) for k in doc if str(k) in set(values)}
    return next(iter(hits)) if len(hits) == 1 else ""


def _default_dest(node: ast.Call, strings: tuple[str, ...], last: str) -> str:
    """The attribute an option is read as when no `dest=` is given: argparse's and click's first long option
    (`"--wd", "--weight-decay"` is `args.wd`), else the first short one; click's name without dashes
    (`option("--lr", "learning_rate")`) wins."""
    if last == "option":
        bare = next((s for a in node.args if (s := _str(a)) is not None and s.isidentifier()), None)
        if bare is not None:
            return bare
    first = next((s for s in strings if s.startswith("--")), strings[0])
    return first.lstrip("-").replace("-", "_")


def option_dest(text: str, option: str) -> tuple[str, int, int] | None:
    """The attribute the parsed arguments hold an argparse / click option in (its `dest=`, else the name the library
    derives), with the first and last line of the call that declares it: the code reads `args.weight_decay` for
    `add_argument("--wd", "--weight-decay", dest="weight_decay")`. None when `text` declares no such option."""
    for strings, dest, first, end in _declared_options(text):
        if option in strings:
            return dest, first, end
    return None


@functools.lru_cache(maxsize=64)
def _declared_options(text: str) -> tuple[tuple[tuple[str, ...], str, int, int], ...]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return ()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and dotted(node.func).split(".")[-1] in ("add_argument", "option",
                                                                                 *_ABSL_DEFINES):
            f = _PyFacts()
            _call_facts(node, f)
            if f.options:
                o = f.options[0]
                out.append((o.strings, o.dest, node.lineno, node.end_lineno or node.lineno))
    return tuple(out)


def _call_facts(node: ast.Call, f: _PyFacts) -> None:
    name = dotted(node.func)
    last = name.split(".")[-1]
    if last == "exec" and node.args:
        inner = node.args[0]
        if isinstance(inner, ast.Call) and dotted(inner.func) == "compile" and inner.args:
            inner = inner.args[0]  # exec(compile(open(path).read(), path, "exec"))
        lit = _open_literal(inner)
        beside = _opened_beside(inner) if lit is None else None
        if lit is not None:
            f.exec_paths.append(lit)
        elif beside is not None:
            f.exec_beside.append(beside)
        else:
            f.dynamic_exec = True
    elif name in ("runpy.run_path", "run_path") and node.args and _str(node.args[0]):
        f.exec_paths.append(str(_str(node.args[0])))
    elif name in ("runpy.run_path", "run_path") and node.args and (beside := beside_file(node.args[0])) is not None:
        f.exec_beside.append(beside)
    elif last == "update" and isinstance(node.func, ast.Attribute) and dotted(node.func.value) == "globals":
        f.sets_globals = True
    elif last == "update" and isinstance(node.func, ast.Attribute):  # `vars(args).update(cfg)`, `args.__dict__...`
        target = node.func.value
        if isinstance(target, ast.Call) and dotted(target.func) == "vars" and target.args \
                and isinstance(target.args[0], ast.Name):
            f.overwritten.add(target.args[0].id)
        elif isinstance(target, ast.Attribute) and target.attr == "__dict__" and isinstance(target.value, ast.Name):
            f.overwritten.add(target.value.id)
    elif name == "setattr" and len(node.args) == 3 and isinstance(node.args[0], ast.Name) \
            and not isinstance(node.args[1], ast.Constant):
        f.overwritten.add(node.args[0].id)
    elif last in ("merge_from_list", "merge_from_dict"):
        f.merges_words = True
    elif last == "fromfile" and name.split(".")[-2:-1] and name.split(".")[-2].endswith("Config"):
        f.config_fromfile = True
    elif last == "DEFINE_config_file" and node.args and _str(node.args[0]):
        f.config_flags.add(str(_str(node.args[0])))
    elif last in ("add_argument", "option"):
        strings = tuple(s for a in node.args if (s := _str(a)) is not None and s.startswith("-"))
        if not strings:
            return
        kws = {k.arg: k.value for k in node.keywords if k.arg}
        longest = max(strings, key=lambda s: (s.startswith("--"), len(s)))
        dest = _str(kws.get("dest")) or _default_dest(node, strings, last)
        action = _str(kws.get("action")) or ""
        takes = not (action.startswith("store_") and action != "store") and action not in ("count", "help", "version")
        if isinstance(kws.get("is_flag"), ast.Constant) and getattr(kws.get("is_flag"), "value", None) is True:
            takes = False
        typ = kws.get("type")
        nargs = kws.get("nargs")
        many = _str(nargs) in ("+", "*") or (isinstance(nargs, ast.Attribute) and nargs.attr == "REMAINDER")
        f.options.append(_Option(strings, dest, takes, typ.id if isinstance(typ, ast.Name) else None, many))
        default = _str(kws.get("default"))
        if default is not None:
            f.option_defaults[default] = longest
    elif last in _ABSL_DEFINES and node.args and (flag := _str(node.args[0])) is not None and flag.isidentifier():
        # absl's `flags.DEFINE_float("learning_rate", 0.1, "help")`: `--learning_rate=0.01` sets it, `FLAGS.<name>`
        # reads it; a bool is set with a value too (`--flag=false`), or bare (`--flag` / `--noflag`)
        type_name = {"DEFINE_float": "float", "DEFINE_integer": "int"}.get(last)
        f.options.append(_Option((f"--{flag}",), flag, last not in ("DEFINE_bool", "DEFINE_boolean"), type_name))
        default = _str(node.args[1]) if len(node.args) > 1 else None
        if default is not None:
            f.option_defaults[default] = f"--{flag}"
    elif name.endswith(("from_cli", "from_dotlist")):
        f.from_cli = True
    elif last == "LightningCLI" or name in ("jsonargparse.CLI", "jsonargparse.auto_cli", "auto_cli"):
        f.signature_cli = True
    elif last == "Fire" or name == "fire.Fire":
        f.fire = True
        f.cli_functions |= {a.id for a in node.args[:1] if isinstance(a, ast.Name)}
    elif name == "typer.run":
        f.cli_functions |= {a.id for a in node.args[:1] if isinstance(a, ast.Name)}
    elif last == "initialize" and any(k.arg == "config_path" for k in node.keywords):
        f.hydra = (_str(next(k.value for k in node.keywords if k.arg == "config_path")), f.hydra[1] if f.hydra
                   else None)
    elif last == "compose" and f.hydra is not None:
        kw = {k.arg: _str(k.value) for k in node.keywords if k.arg}
        f.hydra = (f.hydra[0], kw.get("config_name") or (_str(node.args[0]) if node.args else None))


# ----------------------------------------------------------------------------------------------- the program


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
        for p, f in facts.items():
            del p
            if f is None:
                continue
            for o in f.options:
                if name in o.strings:
                    return o.takes_value
        return None

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
    picking = [p for p in run if (f := fx(p)) is not None and f.picks_section]
    if picking and read is not None:  # `yaml.safe_load(f)[args.env]`: the section `--env CartPole-v1` names
        values = cli_values | {lit for p in run if (f := fx(p)) is not None
                               for lit, opt in f.option_defaults.items() if opt not in given}
        configs = [dataclasses.replace(c, section=_section_of(read(c.path), c.path, values))
                   if c.path.endswith((".yaml", ".yml", ".json")) and any(c.how.startswith(f"read by {p}")
                                                                          for p in picking) else c for c in configs]
    dotlist = any((f := fx(p)) is not None and (f.from_cli or f.hydra is not None) for p in run)
    config_over_cli = bool(configs) and bool(options) and any(
        (f := fx(p)) is not None and f.args_overwritten for p in run)
    signature_cli = any((f := fx(p)) is not None and f.signature_cli for p in run)
    cli_functions = frozenset(n for p in run if (f := fx(p)) is not None for n in f.cli_functions)
    return Program(command=command, invocation=inv, run_files=run_set, configs=configs, options=options,
                   exec_configs=exec_configs, argv_globals=argv_globals, dotlist=dotlist, possible_configs=possible,
                   config_over_cli=config_over_cli, signature_cli=signature_cli, exists=exists,
                   takes_value=takes_value, read=read, pairs=pairs, cli_functions=cli_functions)


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


# ----------------------------------------------------------------------------------------------- command-line knobs


def _cli_name(source: str, arg: Arg) -> str:
    return f"{'command' if source == COMMAND_PATH else source}:{arg.name}"


def cli_knobs(program: Program) -> list[knobmod.Knob]:
    """The settings on the command line as knobs (style ``cli``, path `COMMAND_PATH` or the shell script's path),
    typed as the program reads them (an argparse ``type=float`` option written ``1`` is the float 1.0)."""
    inv = program.invocation
    if inv is None:
        return []
    out: list[knobmod.Knob] = []
    seen: dict[str, int] = {}
    for a in inv.args:
        if a.style == "switch" or a.value is None or _names_file(inv, a):
            continue
        seen[a.name] = seen.get(a.name, 0) + 1
    counted: dict[str, int] = {}
    for a in inv.args:
        if a.style == "switch" or _names_file(inv, a):
            continue
        counted[a.name] = counted.get(a.name, 0) + 1
        if a.value is not None and counted[a.name] < seen.get(a.name, 0):
            continue  # an earlier occurrence that a later one overrides
        opt = program.option_for(a.name)
        leaf = opt.dest if opt is not None else a.key.split(".")[-1]
        value: Any = a.value
        if a.seed_placeholder:
            kind = "seed"
            value = "{seed}"
        elif isinstance(value, bool):
            kind = "flag"
        elif isinstance(value, int | float):
            kind = knobmod.classify(leaf)
            if kind == "split":
                continue
            if opt is not None and opt.type_name == "float" and isinstance(value, int):
                value = float(value)
        elif isinstance(value, str) and value.startswith(("$", "{{")):
            kind = "fixed"  # `--lr $LR` in a script (`$(LR)`, `{{lr}}` in a recipe): set there, from a variable
            # nightlab does not edit, yet it overrides the argparse default all the same (which would otherwise be
            # searched, and change nothing)
        else:
            group = knobmod.choice_group(a.key, str(value))
            if group is None:
                continue
            kind = "choice"
        text, where = inv.text_of(a), inv.where(a)
        line = text.count("\n", 0, a.start) + 1
        out.append(knobmod.Knob(_cli_name(where, a), where, value, kind, CLI_STYLE, line,
                                text.splitlines()[line - 1].strip() if text else "",
                                knobmod.choices_for(a.key, str(value), [program.command]) if kind == "choice"
                                else ()))
    return out


def _names_file(inv: Invocation, a: Arg) -> bool:
    """Whether an argument's value is a file the command names (`--config configs/a.yaml`, counted from its cwd)."""
    return str(a.value) in inv.files or _norm(posixpath.join(inv.cwd, str(a.value))) in inv.files


def cli_route(program: Program, knob: knobmod.Knob) -> str | None:
    """The command-line argument that sets `knob`'s setting, where the program reads one: the option of an argparse
    default, ``--name`` for the entry's globals (and an exec'd config's) under configurator-style ``--k=v`` parsing,
    the dotted key of a YAML config under Hydra / ``OmegaConf.from_cli``; None where the command line cannot."""
    inv = program.invocation
    if inv is None or program.run_files is None or knob.style == CLI_STYLE:
        return None
    local = _local(knob).split("#")[0]
    if knob.style == "argparse":
        opt = program.option_for(local)
        return max(opt.strings, key=len) if opt is not None and opt.takes_value else None
    owner, _, param = local.rpartition(".")
    if knob.style == "signature" and owner.split(".")[-1] in program.cli_functions:
        opt = program.option_for(param)
        return opt.strings[0] if opt is not None and opt.takes_value else None
    cfg = program.config(knob.path)
    if program.argv_globals and knob.style == "constant" and "." not in local and (
            knob.path == inv.entry or (cfg is not None and knob.path.endswith(".py"))):
        return f"--{local}"
    if program.dotlist and cfg is not None and knob.style in ("yaml", "json"):
        return ".".join(x for x in (cfg.prefix, local) if x)
    if cfg is not None and cfg.scope_parts and knob.style == "constant" and len(local.split(".")) > cfg.scope_parts:
        return f"--{_config_key(cfg, knob)}"  # ml_collections' `--config.num_epochs=5`
    return None


def virtual_cli_knob(program: Program, knob: knobmod.Knob) -> knobmod.Knob | None:
    """`knob`'s setting as a command-line knob that is not on the command line yet (its value is `knob`'s); editing
    it appends ``route=value`` to the invocation. None where the command line cannot set it."""
    route = cli_route(program, knob)
    inv = program.invocation
    if route is None or inv is None:
        return None
    name = f"{'command' if inv.source == COMMAND_PATH else inv.source}:{route}"
    return knobmod.Knob(name, inv.source, knob.value, knob.kind, CLI_STYLE, 0, f"{route}=… (not on the command yet)",
                        knob.choices)


def rewrite_cli(text: str, knob: knobmod.Knob, new_value: Any, program: Program) -> str:
    """`text` (the command, or the shell script or task file holding the setting) with `knob`'s value replaced in
    the style of the old value, or ``name=value`` appended to the invocation when the setting is not there yet
    (after its last argument, before any redirection). KeyError when `text` runs no Python invocation."""
    inv = _invocation_in(text, knob.path, program)
    if inv is None:
        raise KeyError(knob.name)
    name = knob.name.split(":", 1)[1] if ":" in knob.name else knob.name
    hit = inv.arg(name, knob.path)
    if hit is None or hit.style == "switch":
        if hit is not None or inv.source != knob.path:
            raise KeyError(knob.name)
        if isinstance(new_value, str) and not re.fullmatch(r"[\w.+\-/]+", new_value):
            raise KeyError(knob.name)
        new = knobmod.format_value(new_value, repr(knob.value) if not isinstance(knob.value, str) else knob.value)
        return f"{text[:inv.end]} {name}={new}{text[inv.end:]}"
    new = knobmod.format_value(new_value, hit.text)
    return text[:hit.start] + new + text[hit.end:]


def _invocation_in(text: str, path: str, program: Program) -> Invocation | None:
    """The program's invocation as `text` (the current text of `path`) now writes it. The command is read as a
    command; a script or task file is read through the command that runs it (a Makefile's variables come from the
    command's `VAR=value` words), or, without the repository at hand, as a script of its own."""
    read = program.read
    if path == COMMAND_PATH:
        return parse_command(text, program.exists, read, program.takes_value, program.pairs)
    if read is not None:
        inv = parse_command(program.command, program.exists, lambda p: text if p == path else read(p),
                            program.takes_value, program.pairs)
        if inv is not None and (inv.source == path or any(inv.where(a) == path for a in inv.args)):
            return inv
    return parse_command(text, program.exists, takes_value=program.takes_value, pairs=program.pairs)


# ----------------------------------------------------------------------------------------------- resolution


def _given_as_word(knob: knobmod.Knob, program: Program) -> str | None:
    """The option of an argparse default that the command gives a value, where that value is no knob of its own
    (a string no search space holds): the default in the code is not what runs."""
    if knob.style != "argparse" or program.invocation is None:
        return None
    opt = program.option_for(_local(knob).split("#")[0])
    if opt is None or not opt.takes_value:
        return None
    return next((a.name for a in program.invocation.args if a.name in opt.strings and a.value is not None), None)


_DEFAULTS_ENTRY = re.compile(r"^defaults\[\d+\]\.(?P<group>[^\s.]+)$")


def _hydra_choice_replaced(knob: knobmod.Knob, program: Program) -> str | None:
    """Why a Hydra defaults-list entry (`defaults[2].optimizer: sgd`) takes no effect: another option of its group
    is composed instead — an experiment's `override /optimizer: adamw` or the command's `optimizer=adamw` chose it —
    so moving this choice changes nothing. None where the entry's own option is the one composed."""
    m = _DEFAULTS_ENTRY.match(_local(knob))
    if m is None or not isinstance(knob.value, str) or not knob.path.endswith((".yaml", ".yml")):
        return None
    group = m.group("group").split("@", 1)[0]
    primary = next((c.path for c in program.configs if c.how.startswith("Hydra config of")), None)
    if group.startswith("/"):
        if primary is None:
            return None
        folder = _norm(posixpath.join(posixpath.dirname(primary), group.lstrip("/")))
    else:
        folder = _norm(posixpath.join(posixpath.dirname(knob.path), group))
    composed = [c.path for c in program.configs if posixpath.dirname(c.path) == folder]
    own = {f"{folder}/{knob.value}{ext}" for ext in (".yaml", ".yml")}
    if not composed or own & set(composed):
        return None
    return f"{composed[0]} is composed for {group.lstrip('/')} instead (chosen by an override or the command line)"


def _leaf(knob: knobmod.Knob) -> str:
    name = knob.name.split(":", 1)[1] if knob.name.startswith(f"{knob.path}:") else knob.name
    if knob.style == CLI_STYLE:
        name = name.split(":", 1)[1] if ":" in name else name
    name = re.split(r"#", name)[0]
    last = re.split(r"[.\[\]]", name.strip("[]"))
    parts = [p for p in last if p and not p.isdigit()]
    return (parts[-1] if parts else name).lstrip("-$+~").replace("-", "_").lower()


def _local(knob: knobmod.Knob) -> str:
    return knob.name.split(":", 1)[1] if knob.name.startswith(f"{knob.path}:") else knob.name


def _config_key(cf: ConfigFile | None, knob: knobmod.Knob) -> str:
    """The dotted key a config file's knob sets, as the command line names it: the file's prefix (a Hydra group's
    package, ml_collections' flag name) and the knob's name without the parts that only say where it is written
    (ml_collections' `get_config.config.`)."""
    local = _local(knob)
    if cf is None:
        return local
    parts = local.split(".")
    if cf.scope_parts and len(parts) > cf.scope_parts:
        local = ".".join(parts[cf.scope_parts:])
    return ".".join(x for x in (cf.prefix, local) if x)


def _sacred_configs(files: Mapping[str, str], run: set[str] | None) -> set[str]:
    """Functions whose local variables are a sacred experiment's configuration (decorated `@ex.config` /
    `@ex.named_config`): `python train.py with lr=0.01` sets them, as a command line sets an argparse default."""
    out: set[str] = set()
    for path, text in files.items():
        if not path.endswith(".py") or (run is not None and path not in run) or "sacred" not in text:
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError):
            continue
        out |= {d.name for d in ast.walk(tree) if isinstance(d, ast.FunctionDef) and any(
            isinstance(x, ast.Attribute) and x.attr in ("config", "named_config") for x in d.decorator_list)}
    return out


def _explicit_fields(files: Mapping[str, str], run: set[str] | None) -> dict[str, set[str] | None]:
    """Class / function name -> the keyword names every call passes explicitly (``#i`` for positional ones); None
    when every call passes an unknown ``**mapping`` (anything may be passed). A call with an unknown mapping counts
    as passing everything: a default that may be overridden there is not worth a run. Calls are counted in the files
    the command runs."""
    out: dict[str, set[str] | None] = {}
    project = {part for p in files if p.endswith(".py") for part in p[:-3].split("/")}
    for path, text in files.items():
        if not path.endswith(".py") or (run is not None and path not in run):
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError):
            continue
        # names bound to a mapping whose keys are all known (a dict literal, dict(...), plus ``d["k"] = ...``);
        # a name also bound to anything else has unknown keys
        dict_keys: dict[str, set[str]] = {}
        opaque: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                keys = _mapping_keys(node.value)
                if keys is None:
                    opaque.add(node.targets[0].id)
                else:
                    dict_keys.setdefault(node.targets[0].id, set()).update(keys)
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Subscript) and isinstance(node.targets[0].value, ast.Name):
                sub = _str(node.targets[0].slice)
                if sub is not None:
                    dict_keys.setdefault(node.targets[0].value.id, set()).add(sub)
        # a library's class of the same name is another class: `torch.Generator().manual_seed(0)` beside a GAN's
        # own `Generator(z_dim=args.z_dim)` passes no `z_dim`, and does not make the default of the project's live
        libraries = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                     for a in n.names} - project
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            path_parts = dotted(node.func).split(".")
            name = path_parts[-1]
            if not name or (len(path_parts) > 1 and path_parts[0] in libraries):
                continue
            passed: set[str] | None = {kw.arg for kw in node.keywords if kw.arg}
            for kw in node.keywords:
                if kw.arg is None:
                    v = kw.value
                    keys = (dict_keys.get(v.id) if v.id not in opaque else None) if isinstance(v, ast.Name) \
                        else _mapping_keys(v)
                    if keys is None:
                        passed = None  # an unknown ``**mapping``: it may pass any field
                        break
                    assert passed is not None
                    passed |= keys
            if passed is not None:
                passed |= {f"#{i}" for i in range(len(node.args))}
            prev = out.get(name, ...)
            if prev is ... or prev is None:
                out[name] = passed
            elif passed is not None:
                out[name] = prev & passed
    return out


def _mapping_keys(node: ast.AST) -> set[str] | None:
    if isinstance(node, ast.Dict):
        keys = [_str(k) if k is not None else None for k in node.keys]
        return None if any(k is None for k in keys) else {str(k) for k in keys}
    if isinstance(node, ast.Call) and dotted(node.func) == "dict" and not node.args:
        return None if any(k.arg is None for k in node.keywords) else {str(k.arg) for k in node.keywords}
    return None


def _positions(files: Mapping[str, str]) -> dict[str, list[str]]:
    """Function name -> its parameter names in order (for positional arguments at call sites)."""
    out: dict[str, list[str]] = {}
    for path, text in files.items():
        if not path.endswith(".py"):
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                out.setdefault(node.name, [a.arg for a in (*node.args.posonlyargs, *node.args.args)])
            elif isinstance(node, ast.ClassDef):
                init = next((b for b in node.body if isinstance(b, ast.FunctionDef) and b.name == "__init__"), None)
                if init is not None:
                    out.setdefault(node.name, [a.arg for a in (*init.args.posonlyargs, *init.args.args)][1:])
    return out


def resolve(program: Program, knobs: Sequence[knobmod.Knob], files: Mapping[str, str]) -> Resolution:
    """Which of `knobs` (found in `files`, plus `cli_knobs(program)`) take effect for `program`'s command."""
    res = Resolution(program)
    run = program.run_files
    if run is None:
        return res
    config_paths = {c.path: c for c in program.configs}
    inv = program.invocation
    assert inv is not None
    cli = [k for k in knobs if k.style == CLI_STYLE]
    # 1. knobs in files the command never runs or reads
    for k in knobs:
        if k.style == CLI_STYLE:
            continue
        p = k.path
        if p in config_paths:
            section = config_paths[p].section
            if section and _local(k).split(".", 1)[0] != section:
                res.unused[k.name] = f"{p} is read under {section} only (the section the command picks)"
            continue
        if p.endswith(".py"):
            if p not in run:
                res.unused[k.name] = f"{p} is not run by `{_short(program.command)}`"
        elif p.endswith(_CONFIG_EXTS) and p not in program.possible_configs:
            res.unused[k.name] = f"{p} is not read by `{_short(program.command)}`"
    # 2. the command line overrides everything with the same name
    cli_by_key: dict[str, knobmod.Knob] = {}
    for k in cli:
        cli_by_key[_leaf(k)] = k
    # 3. config files override code defaults; later configs override earlier ones
    cfg_by_leaf: dict[str, knobmod.Knob] = {}
    cfg_by_path: dict[str, knobmod.Knob] = {}
    for c in program.configs:
        for k in knobs:
            if k.path == c.path and k.name not in res.unused:
                full = _config_key(c, k)
                cfg_by_path[full.lower()] = k
                cfg_by_leaf[_leaf(k)] = k
    explicit = _explicit_fields(files, run)
    params = _positions({p: t for p, t in files.items() if p in run})
    # gin-config: a .gin file binds `fn.param` over the default of `@gin.configurable def fn(param=...)`, and the
    # command's `--gin_bindings='fn.param=v'` binds over both
    gin_bound = {str(a.value).split("=", 1)[0].strip(): a.name for a in
                 (program.invocation.args if program.invocation is not None else [])
                 if "gin_binding" in a.name and isinstance(a.value, str) and "=" in a.value}
    gin_set = {_local(k): k for k in knobs if k.path.endswith(".gin") and k.path in config_paths}
    sacred = _sacred_configs(files, run) if " with " in f" {program.command} " else set()
    computed = {a: where for p in sorted(run) if p.endswith(".py") for a, where in
                _computed_after_parsing(files.get(p, "")).items()}
    for k in knobs:
        if k.name in res.unused or k.style == CLI_STYLE:
            continue
        leaf = _leaf(k)
        in_config = k.path in config_paths
        if k.style in ("dataclass", "argparse") and leaf in computed:
            res.shadowed[k.name] = f"set by the code after the arguments are parsed ({computed[leaf]})"
            continue
        if (in_config or k.style == "signature") and _local(k) in gin_bound:
            res.shadowed[k.name] = f"overridden by {gin_bound[_local(k)]} on the command line"
            continue
        gin = gin_set.get(_local(k)) if k.style == "signature" else None
        if gin is not None:
            res.shadowed[k.name] = f"overridden by {gin.path} (gin binds it)"
            res.by[k.name] = gin.name
            continue
        if in_config and (replaced := _hydra_choice_replaced(k, program)) is not None:
            res.shadowed[k.name] = replaced
            continue
        if in_config:
            over = None if program.config_over_cli else _cli_override(k, leaf, True, cli, program, config_paths)
            later = cfg_by_leaf.get(leaf)
            if over is not None:
                res.shadowed[k.name] = f"overridden by {over.name.split(':', 1)[-1]} on {_written_on(over)}"
                res.by[k.name] = over.name
            elif later is not None and later.name != k.name and _config_index(program, later.path) > \
                    _config_index(program, k.path) and _same_setting(later, k, program):
                res.shadowed[k.name] = f"overridden by {later.path} ({later.path} is applied later)"
                res.by[k.name] = later.name
            continue
        if k.style == "call" and k.path.endswith(".py"):
            made_by, _, param = _local(k).split("#")[0].rpartition(".")
            grid = _grid_searched(files.get(k.path, ""))
            key = grid.get((made_by.rsplit(".", 1)[-1], param)) or grid.get(("", param))
            if key is not None:
                res.shadowed[k.name] = f"overridden by the search grid ({key}): every value in it is fitted"
                continue
        node_key = _cfg_node_key(k, files)
        if node_key is not None:  # yacs' `_C.SOLVER.BASE_LR = 0.01`: a YAML's `SOLVER: BASE_LR:` or the command's
            # `SOLVER.BASE_LR 0.005` words set it
            by_cli = next((c for c in cli if c.name.split(":", 1)[-1] == node_key), None)
            by_cfg = cfg_by_path.get(node_key.lower())
            if by_cli is not None:
                res.shadowed[k.name] = f"overridden by {node_key} on {_written_on(by_cli)}"
                res.by[k.name] = by_cli.name
            elif by_cfg is not None:
                res.shadowed[k.name] = f"overridden by {by_cfg.path} ({config_paths[by_cfg.path].how})"
                res.by[k.name] = by_cfg.name
            continue
        if k.style not in _OVERRIDABLE_STYLES or (k.style == "constant" and "." in _local(k).split("#")[0] and
                                                   _local(k).split(".")[0] not in sacred):
            continue  # literals in calls and function bodies are not defaults anything overrides
        over = _cli_override(k, leaf, False, cli, program, config_paths)
        if over is not None:
            res.shadowed[k.name] = f"overridden by {over.name.split(':', 1)[-1]} on {_written_on(over)}"
            res.by[k.name] = over.name
            continue
        word = _given_as_word(k, program)
        if word is not None:  # a value the command gives that is no knob of its own (`--mixed_precision fp16`)
            res.shadowed[k.name] = f"overridden by {word} on the command line"
            continue
        if k.style != "signature":
            over_cfg = cfg_by_leaf.get(leaf)
            if over_cfg is not None and _config_overrides_code(k, over_cfg, program):
                c = config_paths[over_cfg.path]
                res.shadowed[k.name] = f"overridden by {over_cfg.path} ({c.how})"
                res.by[k.name] = over_cfg.name
                continue
        if k.style == "signature" and program.signature_cli:
            over_sig = _signature_setting(k, cli, cfg_by_path)
            if over_sig is not None:
                res.shadowed[k.name] = f"overridden by {over_sig.name.split(':', 1)[-1]} (LightningCLI sets it)"
                res.by[k.name] = over_sig.name
                continue
        if k.style in ("dataclass", "signature"):
            owner = _local(k).split("#")[0].rsplit(".", 1)
            if len(owner) == 2:
                cls_or_fn, fld = owner[0].split(".")[-1], owner[1]
                if cls_or_fn not in explicit:
                    continue
                passed = explicit[cls_or_fn]
                pos = params.get(cls_or_fn, [])
                given = passed if passed is not None else set()
                positional = {pos[int(x[1:])] for x in given if x.startswith("#") and int(x[1:]) < len(pos)}
                if passed is None or fld in passed or fld in positional:
                    res.shadowed[k.name] = f"every call of {cls_or_fn}(...) passes {fld}"
    _architecture_defaults(program, [k for k in knobs if k.style == "getattr" and k.name not in res.unused
                                     and k.name not in res.shadowed], files, res)
    _switched_off(program, [k for k in knobs if k.name not in res.unused and k.name not in res.shadowed], res)
    if program.config_over_cli:  # `vars(args).update(yaml.safe_load(...))` after parse_args: the config wins
        for flag in cli:
            over_cfg = cfg_by_leaf.get(_flag_key(flag.name.split(":", 1)[1], program).split(".")[-1])
            if over_cfg is not None and over_cfg.name not in res.unused:
                res.shadowed[flag.name] = (f"overridden by {over_cfg.path} (the code updates the parsed arguments "
                                           "from it after reading the command line)")
                res.by[flag.name] = over_cfg.name
    return res


_CFG_NODE = re.compile(r"^(\w+)\s*=\s*(?:\w+\.)*(?:CN|CfgNode|ConfigNode)\(", re.MULTILINE)


def _cfg_node_key(k: knobmod.Knob, files: Mapping[str, str]) -> str | None:
    """The config key a yacs default sets (`_C.SOLVER.BASE_LR = 0.01` of `_C = CN()` sets `SOLVER.BASE_LR`, which
    `cfg.merge_from_file(...)` and `cfg.merge_from_list(args.opts)` override); None for any other knob."""
    if k.style != "constant":
        return None
    root, _, key = _local(k).split("#")[0].partition(".")
    if not key or root not in _CFG_NODE.findall(files.get(k.path, "")):
        return None
    return key


_PARSING_CALLS = frozenset({"parse_args", "parse_known_args", "cli", "parse"})


@functools.lru_cache(maxsize=64)
def _computed_after_parsing(text: str) -> dict[str, str]:
    """{attribute (lower case): the statement} of the parsed arguments that straight-line code sets from other
    settings right after parsing (CleanRL's ``args = tyro.cli(Args)`` then ``args.batch_size = int(args.num_envs *
    args.num_steps)``): the field's default is never read. Not a value that reads the attribute itself (``args.lr =
    args.lr * world_size`` scales the setting), nor one set under a condition (the `__main__` guard is none)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return {}
    parsed = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
              and dotted(n.value.func).split(".")[-1] in _PARSING_CALLS for t in n.targets if isinstance(t, ast.Name)}
    out: dict[str, str] = {}
    main_guards = [st.body for st in tree.body if isinstance(st, ast.If) and "__name__" in ast.unparse(st.test)]
    bodies = [tree.body, *main_guards,
              *(d.body for d in ast.walk(tree) if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef))]
    for st in (st for body in bodies for st in body):
        if not (isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Attribute)):
            continue
        target = st.targets[0]
        if not (isinstance(target.value, ast.Name) and target.value.id in parsed) or \
                isinstance(st.value, ast.Constant | ast.Name):
            continue
        if any(isinstance(n, ast.Attribute) and n.attr == target.attr for n in ast.walk(st.value)):
            continue
        out[target.attr.lower()] = ast.unparse(st)[:80]
    return out


_GRID_KWS = ("param_grid", "param_distributions", "search_spaces")


@functools.lru_cache(maxsize=32)
def _grid_searched(text: str) -> dict[tuple[str, str], str]:
    """The estimator parameters a scikit-learn search refits over: (estimator class, parameter) -> the grid's key.
    `GridSearchCV(pipe, {"clf__C": [0.1, 1, 10]})` fits every C in the list, so `LogisticRegression(C=1.0)` in the
    pipeline's `("clf", ...)` step changes nothing. The class is "" where the key's step cannot be told (then
    any estimator's parameter of that name counts); names are followed to the literal they are assigned."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return {}
    assigned: dict[str, ast.expr] = {}
    steps: dict[str, str] = {}  # a pipeline step's name -> its estimator's class
    searches: list[ast.Call] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            assigned[node.targets[0].id] = node.value
        elif isinstance(node, ast.Tuple) and len(node.elts) >= 2 and _str(node.elts[0]) is not None \
                and isinstance(node.elts[1], ast.Call):  # Pipeline([("clf", LogisticRegression(...))])
            steps[str(_str(node.elts[0]))] = dotted(node.elts[1].func).split(".")[-1]
        elif isinstance(node, ast.Call):
            last = dotted(node.func).split(".")[-1]
            if last in CV_SEARCHES:  # scikit-learn's (and scikit-optimize's) searches: estimator, then grid
                searches.append(node)
            elif last == "make_pipeline":  # steps named by their lowercased class
                for a in node.args:
                    if isinstance(a, ast.Call):
                        cls = dotted(a.func).split(".")[-1]
                        steps[cls.lower()] = cls

    def value(n: ast.expr | None) -> ast.expr | None:
        return assigned.get(n.id) if isinstance(n, ast.Name) else n

    out: dict[tuple[str, str], str] = {}
    for call in searches:
        kws = {k.arg: k.value for k in call.keywords if k.arg}
        est = value(call.args[0] if call.args else kws.get("estimator"))
        grid = value(call.args[1] if len(call.args) > 1 else next((kws[g] for g in _GRID_KWS if g in kws), None))
        est_cls = dotted(est.func).split(".")[-1] if isinstance(est, ast.Call) else ""
        grids = [value(g) for g in grid.elts] if isinstance(grid, ast.List | ast.Tuple) else [grid]
        for g in grids:
            if not isinstance(g, ast.Dict):
                continue
            for key_node in g.keys:
                key = _str(key_node) if key_node is not None else None
                if not key:
                    continue
                *path, param = key.split("__")
                if path:
                    out[(steps.get(path[-1], ""), param)] = key
                elif est_cls and est_cls not in ("Pipeline", "make_pipeline"):
                    out[(est_cls, param)] = key
    return out


_SWITCH_KEYS = ("enable", "enabled", "use", "active")
# sections a library reads only when switched on, off where nothing says `enable`: mmengine's `auto_scale_lr =
# dict(base_batch_size=128)` scales the learning rate only with `enable=True` (`tools/train.py --auto-scale-lr`)
_OFF_UNLESS_ENABLED = frozenset({"auto_scale_lr"})


def _switched_off(program: Program, knobs: Sequence[knobmod.Knob], res: Resolution) -> None:
    """A config section switched off (`ema: {enabled: false, decay: 0.999}`, mmengine's `auto_scale_lr` without
    `enable=True`): its other settings take no effect, so moving them is no trial."""
    by_name = {_local(k): k for k in knobs}
    command = program.command.replace("-", "_")
    for k in knobs:
        if k.style not in ("dict", "yaml", "json", "toml") or k.kind == "flag":
            continue
        section, _, leaf = _local(k).rpartition(".")
        if not section or leaf in _SWITCH_KEYS:
            continue
        switch = next((by_name[f"{section}.{w}"] for w in _SWITCH_KEYS if f"{section}.{w}" in by_name), None)
        on_command = f"{section}.enable" in command or f"__{section}" in command  # `--auto-scale-lr`
        if switch is not None and switch.path == k.path and switch.value is False and not on_command:
            res.unused[k.name] = f"{section}.{_local(switch).rsplit('.', 1)[1]} is off: {section} takes no effect"
        elif switch is None and section.rsplit(".", 1)[-1] in _OFF_UNLESS_ENABLED and not on_command:
            res.unused[k.name] = f"{section} is read only when switched on ({section}.enable), and nothing does"


def _architecture_defaults(program: Program, knobs: Sequence[knobmod.Knob], files: Mapping[str, str],
                           res: Resolution) -> None:
    """fairseq's architectures: `@register_model_architecture("lm", "lm_big") def lm_big(args)` fills each setting
    the command leaves out with `args.x = getattr(args, "x", 1024)` and then calls the base architecture, whose
    `getattr` finds x set already. Only the function `--arch` names (or the option's default) runs, and in it the
    first `getattr` of a setting wins: the fallbacks of another architecture, or of the base one for a setting the
    chosen one fills first, change nothing."""
    inv = program.invocation
    if not knobs or inv is None or program.run_files is None:
        return
    trees = {p: t for p in sorted(program.run_files) if p.endswith(".py") and (t := _parse(files.get(p, "")))}
    functions: dict[str, ast.FunctionDef] = {}
    arches: dict[str, str] = {}  # architecture name -> the function registered for it
    for tree in trees.values():
        for d in tree.body:
            if isinstance(d, ast.FunctionDef):
                functions.setdefault(d.name, d)
                for dec in d.decorator_list:
                    names = [x for a in getattr(dec, "args", []) if (x := _str(a))]
                    if isinstance(dec, ast.Call) and dotted(dec.func).endswith("architecture") and names:
                        arches[names[-1]] = d.name
    selected = next((str(a.value) for a in inv.args if _flag_key(a.name, program) == "arch"), None)
    if selected is None:
        selected = next((default for t in trees.values() for n in ast.walk(t) if isinstance(n, ast.Call)
                         and dotted(n.func).split(".")[-1] == "add_argument"
                         and any(_str(a) in ("--arch", "-a") for a in n.args)
                         for kw in n.keywords if kw.arg == "default" and (default := _str(kw.value))), None)
    if selected is None or selected not in arches:
        return
    first: dict[str, str] = {}  # setting -> the function whose getattr fills it
    visited: list[str] = []

    def walk(name: str) -> None:
        fn = functions.get(name)
        if fn is None or name in visited:
            return
        visited.append(name)
        calls = sorted((n for n in ast.walk(fn) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset))
        for c in calls:
            if isinstance(c.func, ast.Name) and c.func.id == "getattr" and len(c.args) == 3 and _str(c.args[1]):
                first.setdefault(str(_str(c.args[1])), name)
            elif isinstance(c.func, ast.Name) and c.func.id in functions:
                walk(c.func.id)

    walk(arches[selected])
    chosen = f"--arch {selected}"
    reachable = set(arches.values()) | {c.func.id for n in arches.values() if n in functions
                                        for c in ast.walk(functions[n]) if isinstance(c, ast.Call)
                                        and isinstance(c.func, ast.Name) and c.func.id in functions}
    for k in knobs:
        owner, _, attr = _local(k).split("#")[0].rpartition(".")
        fname = owner.rsplit(".", 1)[-1]
        if fname not in reachable:
            continue
        if fname not in visited:
            res.unused[k.name] = f"{fname}() is another architecture's: {chosen} does not run it"
        elif first.get(attr, fname) != fname:
            res.shadowed[k.name] = f"overridden by {first[attr]}() ({chosen} fills {attr} there first)"


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None


def _flag_key(name: str, program: Program) -> str:
    """The setting a command-line argument names, normalised: an option the code declares counts by its dest, so a
    short alias (`-b 64` for `--batch-size`) names the same setting as a config's `batch_size`."""
    opt = program.option_for(name) if name.startswith("-") and not name.startswith("--") else None
    return (opt.dest if opt is not None else name.lstrip("-+~")).replace("-", "_").lower()


def _written_on(knob: knobmod.Knob) -> str:
    """Where a command-line knob is written, as a reason names it: "the command line" or the file's path."""
    return "the command line" if knob.path == COMMAND_PATH else knob.path


def _short(command: str, n: int = 60) -> str:
    return command if len(command) <= n else command[:n - 1] + "…"


def _signature_setting(k: knobmod.Knob, cli: Sequence[knobmod.Knob],
                       cfg_by_path: Mapping[str, knobmod.Knob]) -> knobmod.Knob | None:
    """Under LightningCLI, the flag or config key that sets constructor argument `k` (`LitModel.learning_rate` by
    `--model.learning_rate` or a config's `model: {learning_rate: ...}` / `model.init_args.learning_rate`)."""
    owner, _, param = _local(k).split("#")[0].rpartition(".")
    param = param.lower()
    role = "data" if "data" in owner.rsplit(".", 1)[-1].lower() else "model"  # a LightningDataModule's, or the model's
    for c in cli:
        key = c.name.split(":", 1)[-1].lstrip("-").replace("-", "_").lower()
        if key.split(".")[0] == role and key.rsplit(".", 1)[-1] == param:
            return c
    for full, c in cfg_by_path.items():
        parts = full.split(".")
        if len(parts) >= 2 and parts[-1] == param and parts[0] == role:
            return c
    return None


def _config_index(program: Program, path: str) -> int:
    return next((i for i, c in enumerate(program.configs) if c.path == path), -1)


def _same_setting(a: knobmod.Knob, b: knobmod.Knob, program: Program) -> bool:
    """Two config knobs with the same leaf name set the same setting when their full paths agree."""
    ca, cb = program.config(a.path), program.config(b.path)
    full_a = _config_key(ca, a).lower()
    full_b = _config_key(cb, b).lower()
    return full_a == full_b


def _config_overrides_code(k: knobmod.Knob, cfg: knobmod.Knob, program: Program) -> bool:
    """Whether a config file's key overrides a default in code of the same name.

    An exec'd Python config overrides the entry's module globals (configurator.py); a YAML / JSON config overrides
    argparse defaults, dataclass fields, config dicts and module constants of the same name (the common
    ``vars(args).update(yaml.safe_load(...))``, ``Config(**yaml)``, ``OmegaConf.merge(structured, yaml)``).
    """
    if cfg.path.endswith(".py"):
        inv = program.invocation
        return k.style == "constant" and inv is not None and k.path == inv.entry and program.exec_configs
    return True


def _cli_override(k: knobmod.Knob, leaf: str, in_config: bool, cli: Iterable[knobmod.Knob], program: Program,
                  config_paths: Mapping[str, ConfigFile]) -> knobmod.Knob | None:
    """The command-line knob that overrides `k`, if any."""
    for c in cli:
        name = c.name.split(":", 1)[1]
        if k.style == "argparse":
            opt = program.option_for(_local(k).split("#")[0])
            if opt is not None and (name in opt.strings or name.lstrip("-").replace("-", "_") == opt.dest):
                return c
            continue
        key = _flag_key(name, program)
        if "." in key:  # a dotted override names one key of a composed config
            if in_config:
                cf = config_paths[k.path]
                full = _config_key(cf, k).replace("-", "_").lower()
                if full == key:
                    return c
            elif key.split(".")[-1] == leaf and k.style in ("dataclass", "dict"):
                return c
            continue
        if leaf == key:
            return c
    return None
