"""What one Python file says about the program, read from its syntax tree: imports, exec'd files, config files
it opens, argparse / absl / typer / fire options and their defaults, Hydra's entry, and whether it lets the command
line or a config overwrite its settings."""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import yaml

from nightlab.agent.code_reach import beside_file

_CONFIG_EXTS = (".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".gin")


@dataclass
class _Option:
    strings: tuple[str, ...]
    dest: str
    takes_value: bool
    type_name: str | None
    many: bool = False  # `nargs="+"` / `"*"` / `argparse.REMAINDER`: it takes every word that follows
    abbrev: bool = False  # argparse's: the command may write any unique prefix of its long form (`--epoch`)


def find_option(options: Iterable[_Option], name: str) -> _Option | None:
    """The option a command-line word names, as the parser reads it: one of its strings, else (argparse, unless
    `allow_abbrev=False`) the one option whose long form it begins — `--epoch 3` sets `--epochs`. None for a word no
    option or several begin with (argparse stops there: ambiguous)."""
    opts = list(options)
    hit = next((o for o in opts if name in o.strings), None)
    if hit is not None or not name.startswith("--") or len(name) < 4 or "=" in name:
        return hit
    begun = {o.dest: o for o in opts if o.abbrev and any(s.startswith("--") and s.startswith(name) for s in o.strings)}
    return next(iter(begun.values())) if len(begun) == 1 else None


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
    no_abbrev: bool = False  # `ArgumentParser(allow_abbrev=False)`: only whole option strings are read
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
    config_fromfile: bool = False  # mmengine's `Config.fromfile(path)`, Detectron2's `LazyConfig.load`: a .py config
    config_flags: set[str] = field(default_factory=set)  # ml_collections' `config_flags.DEFINE_config_file("config")`
    # a loaded config read only under a key a variable picks (`yaml.safe_load(f)[args.env]`)
    picks_section: bool = False
    # a loaded config read only under one literal key (`yaml.safe_load(f)["train"]`): its other sections are unread
    fixed_section: str = ""


@functools.lru_cache(maxsize=64)
def parsed(text: str) -> ast.Module | None:
    """A file's syntax tree, parsed once for the readers of this package (each only reads it); None for text that
    is not Python this interpreter parses."""
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None


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
    f.picks_section, f.fixed_section = _section_reads(tree)
    if "typer" in text:  # typer's `@app.command()` on a `typer.Typer()` app
        f.cli_functions |= {d.name for d in ast.walk(tree) if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)
                            and any(isinstance(x, ast.Call) and isinstance(x.func, ast.Attribute)
                                    and x.func.attr == "command" for x in d.decorator_list)}
    f.options += _signature_options(tree, f.cli_functions, typer="typer" in text)
    if f.no_abbrev:
        f.options = [dataclasses.replace(o, abbrev=False) for o in f.options]
    return f


def _signature_options(tree: ast.Module, functions: set[str], typer: bool) -> list[_Option]:
    """The command-line options of functions whose parameters are the options (`cli_functions`): `--batch-size`
    for typer (its own names where `typer.Option(32, "--bs")` gives them), `--batch_size` and `--batch-size` for
    fire; a bool parameter is a switch."""
    out: list[_Option] = []
    inits = [i for c in ast.walk(tree) if isinstance(c, ast.ClassDef) and c.name in functions for i in c.body
             if isinstance(i, ast.FunctionDef) and i.name == "__init__"]  # jsonargparse's `CLI(Trainer)`
    for d in [*(d for d in ast.walk(tree) if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef)
                and d.name in functions), *inits]:
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


def _section_reads(tree: ast.Module) -> tuple[bool, str]:
    """How the code reads a loaded YAML / JSON document: whether every read takes one top-level key that a variable
    picks (``yaml.safe_load(f)[args.env]``, or ``hp = json.load(f)`` read only as ``hp[env_id]``), and the key where
    every read takes the same literal one (``yaml.safe_load(f)["train"]``); a whole use, a document handed on whole,
    or reads of two keys say neither."""
    parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
    loaded: set[str] = set()
    keys: set[object] = set()
    variable = whole = False
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and dotted(n.func).split(".")[-1] in
                 _CONFIG_LOADS and dotted(n.func).split(".")[0] in ("yaml", "json")):
        up = parents.get(id(call))
        if isinstance(up, ast.Subscript) and up.value is call:
            if isinstance(up.slice, ast.Constant):
                keys.add(up.slice.value)
            else:
                variable = True
        elif isinstance(up, ast.Assign) and len(up.targets) == 1 and isinstance(up.targets[0], ast.Name):
            loaded.add(up.targets[0].id)
        else:
            whole = True  # `cfg.update(yaml.safe_load(f))`, `Config(**json.load(f))`
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in loaded and isinstance(node.ctx, ast.Load):
            up = parents.get(id(node))
            if isinstance(up, ast.Subscript) and up.value is node:
                if isinstance(up.slice, ast.Constant):
                    keys.add(up.slice.value)
                else:
                    variable = True
            else:
                whole = True
    only = next(iter(keys)) if len(keys) == 1 and not variable and not whole else None
    return variable and not whole and not keys, only if isinstance(only, str) else ""


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
    `add_argument("--wd", "--weight-decay", dest="weight_decay")`, and for `--weight` where no other option begins
    so (`find_option`). None when `text` declares no such option."""
    declared = _declared_options(text)
    hit = find_option((o for o, _, _ in declared), option)
    return next(((o.dest, first, end) for o, first, end in declared if o is hit), None)


@functools.lru_cache(maxsize=64)
def _declared_options(text: str) -> tuple[tuple[_Option, int, int], ...]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return ()
    out = []
    no_abbrev = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and dotted(node.func).split(".")[-1] in ("add_argument", "option",
                                                                                 "ArgumentParser", *_ABSL_DEFINES):
            f = _PyFacts()
            _call_facts(node, f)
            no_abbrev |= f.no_abbrev
            if f.options:
                out.append((f.options[0], node.lineno, node.end_lineno or node.lineno))
    if no_abbrev:
        out = [(dataclasses.replace(o, abbrev=False), a, b) for o, a, b in out]
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
    elif (last == "fromfile" and name.split(".")[-2:-1] and name.split(".")[-2].endswith("Config")) or \
            (last == "load" and name.split(".")[-2:-1] == ["LazyConfig"]):  # Detectron2's lazy Python configs
        f.config_fromfile = True
    elif last == "DEFINE_config_file" and node.args and _str(node.args[0]):
        f.config_flags.add(str(_str(node.args[0])))
    elif last == "ArgumentParser" and any(k.arg == "allow_abbrev" and isinstance(k.value, ast.Constant)
                                          and k.value.value is False for k in node.keywords):
        f.no_abbrev = True
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
        f.options.append(_Option(strings, dest, takes, typ.id if isinstance(typ, ast.Name) else None, many,
                                 abbrev=last == "add_argument"))
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
    elif last == "LightningCLI":
        f.signature_cli = True
    elif name in ("jsonargparse.CLI", "jsonargparse.auto_cli", "auto_cli", "CLI") and (
            name != "CLI" or any(m.split(".")[0] == "jsonargparse" for m, _, _ in f.imports)):
        # jsonargparse's `CLI(train)`: `--lr` and a `--config` file's top-level `lr:` set `def train(lr=...)` (for a
        # class, its `__init__`'s parameters)
        f.signature_cli = True
        f.cli_functions |= {a.id for a in node.args[:1] if isinstance(a, ast.Name)}
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
