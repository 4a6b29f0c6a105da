"""Which knobs take effect (`resolve`): for each knob found in the program's files, whether a config file or the
command line overrides it (and by what), or whether nothing reads it (and why), by the precedence the package
docstring gives."""

from __future__ import annotations

import ast
import functools
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence

from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.commandline import COMMAND_PATH
from nightlab.agent.policy.effective import lazy_configs
from nightlab.agent.policy.effective.program import (
    _OVERRIDABLE_STYLES,
    CLI_STYLE,
    ConfigFile,
    Program,
    Resolution,
    _norm,
)
from nightlab.agent.policy.effective.python_facts import _CONFIG_EXTS, _str, dotted, parsed
from nightlab.agent.policy.evaluation import CV_SEARCHES
from nightlab.agent.policy.knobs import config_files


def _given_as_word(knob: knobmod.Knob, program: Program) -> str | None:
    """The option of an argparse default that the command gives a value, where that value is no knob of its own
    (a string no search space holds): the default in the code is not what runs."""
    if knob.style != "argparse" or program.invocation is None:
        return None
    opt = program.option_for(_local(knob).split("#")[0])
    if opt is None or not opt.takes_value:
        return None
    return next((a.name for a in program.invocation.args
                 if a.value is not None and (a.name in opt.strings or program.option_for(a.name) is opt)), None)


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


@functools.lru_cache(maxsize=64)
def _merged_into(text: str, section: str) -> tuple[frozenset[str], Mapping[str, str]]:
    """What a section of a YAML config takes through merge keys (`<<: *defaults`), named where it is set: read
    though it sits outside the section, or set again by the section's own key (config_files.yaml_merged)."""
    if "<<" not in text:
        return frozenset(), {}
    read, overridden = config_files.yaml_merged(text, section)
    return frozenset(read), overridden


def _leaf(knob: knobmod.Knob) -> str:
    name = knob.name.split(":", 1)[1] if knob.name.startswith(f"{knob.path}:") else knob.name
    if knob.style == CLI_STYLE:
        name = name.split(":", 1)[1] if ":" in name else name
    name = re.split(r"#", name)[0]
    last = re.split(r"[.\[\]]", name.strip("[]"))
    parts = [p for p in last if p and not p.isdigit()]
    return (parts[-1] if parts else name).lstrip("-$+~").replace("-", "_").lower()


def _later_write(k: knobmod.Knob, files: Mapping[str, str], run: set[str]) -> str | None:
    """The statement that sets a dict literal's key or a class's field default to a literal after `k` is written
    (`_written_later`): in `k`'s own file after its line, or (a field default: `cfg = TrainConfig()` then
    `cfg.lr = 0.05`) in any file the command runs."""
    owner, _, key = _local(k).split("#")[0].rpartition(".")
    owner = owner.rsplit(".", 1)[-1]
    if not owner:
        return None
    for p in sorted(run):
        if not p.endswith(".py"):
            continue
        hit = _written_later(files.get(p, "")).get((owner, key))
        if hit is not None and (p != k.path or hit[0] > k.line):
            return hit[1]
    return None


def _attribute(knob: knobmod.Knob, program: Program) -> str:
    """The attribute of the parsed arguments an argparse option or a dataclass field is read as (lower case): the
    option's dest (`--wd ... dest="weight_decay"`), else the knob's own leaf name."""
    opt = program.option_for(_local(knob).split("#")[0]) if knob.style == "argparse" else None
    return (opt.dest if opt is not None else _leaf(knob)).lower()


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


def _explicit_fields(files: Mapping[str, str], run: set[str] | None,
                     loaded_known: bool = False) -> dict[str, set[str] | None]:
    """Class / function name -> the keyword names every call passes explicitly (``#i`` for positional ones); None
    when every call passes an unknown ``**mapping`` (anything may be passed). A call with an unknown mapping counts
    as passing everything: a default that may be overridden there is not worth a run. Calls are counted in the files
    the command runs. With `loaded_known` (the program reads a YAML / JSON config nightlab has read too), a
    ``**yaml.safe_load(f)`` splat (`Config(**yaml.safe_load(f))`) passes that config's keys, which override the
    defaults of their names on their own: it passes no other field."""
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
                keys = set() if loaded_known and _config_load(node.value) else _mapping_keys(node.value)
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
                        else set() if loaded_known and _config_load(v) else _mapping_keys(v)
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


def _config_load(node: ast.AST) -> bool:
    """Whether `node` is a YAML / JSON document loaded from a file, or one section of it (``yaml.safe_load(f)``,
    ``json.load(f)["train"]``)."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if not isinstance(node, ast.Call):
        return False
    parts = dotted(node.func).split(".")
    return parts[0] in ("yaml", "json") and parts[-1] in ("safe_load", "load", "full_load", "unsafe_load")


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
            cf = config_paths[p]
            if not cf.section or _local(k).split(".", 1)[0] == cf.section:
                continue
            taken, overridden = _merged_into(files.get(p, ""), cf.section)
            if _local(k) in taken:
                continue
            if _local(k) in overridden:  # `small: {<<: *defaults, lr: 0.05}` reads its own lr, not the default's
                res.shadowed[k.name] = f"overridden by {overridden[_local(k)]} (set over the `<<` merge that reads " \
                                       f"the rest of {_local(k).rsplit('.', 1)[0]})"
                continue
            res.unused[k.name] = f"{p} is read under {cf.section} only (" + \
                ("the key the code reads it under)" if cf.section_literal else "the section the command picks)")
            continue
        if p.endswith(".py"):
            if p not in run:
                res.unused[k.name] = f"{p} is not run by `{_short(program.command)}`"
        elif p.endswith(_CONFIG_EXTS) and p not in program.possible_configs:
            res.unused[k.name] = f"{p} is not read by `{_short(program.command)}`"
    res.unused.update(lazy_configs.unimported(knobs, files, program.lazy_imports, program.lazy_only))
    # 2. the command line overrides everything with the same name (below, knob by knob: `_cli_override`)
    # 3. config files override code defaults; later configs override earlier ones
    cfg_by_leaf: dict[str, knobmod.Knob] = {}
    cfg_by_path: dict[str, knobmod.Knob] = {}
    for c in program.configs:
        for k in knobs:
            if k.path == c.path and k.name not in res.unused:
                full = _config_key(c, k)
                cfg_by_path[full.lower()] = k
                cfg_by_leaf[_leaf(k)] = k
    explicit = _explicit_fields(files, run, loaded_known=any(
        c.path.endswith((".yaml", ".yml", ".json")) for c in program.configs))
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
    literal = {a: where for p in sorted(run) if p.endswith(".py") for a, where in
               _literal_after_parsing(files.get(p, "")).items()}
    set_defaults = {_local(k).split("#")[0].split(".", 1)[1].lower(): k for k in knobs
                    if k.style == "call" and _local(k).startswith("set_defaults.") and k.path in run}
    fixed = _fixed_argv(files.get(inv.entry, "")) if inv.entry else None
    listed: set[str] = set()
    if fixed is not None:  # the entry parses a literal list: the command's options are never read
        for flag in cli:
            if flag.path == COMMAND_PATH and flag.name not in res.unused:
                res.unused[flag.name] = f"{inv.entry} parses a fixed list ({fixed[0]}), not the command line"
        cli = [c for c in cli if c.name not in res.unused]  # a word the code never reads overrides nothing
        listed = {o.dest for w in fixed[1] if w.startswith("-")
                  and (o := program.option_for(w.split("=", 1)[0])) is not None}
    lazy = lazy_configs.overrides(knobs, files, program.lazy_imports,
                                  [c.path for c in program.configs if c.path.endswith(".py")], cli)
    for k in knobs:
        if k.name in res.unused or k.style == CLI_STYLE:
            continue
        if k.name in lazy:  # a lazy config's later write of what this literal sets (Detectron2, detrex)
            by = lazy[k.name]
            written = _local(by).split("#")[0]
            res.shadowed[k.name] = (f"overridden by {written.split(':', 1)[-1]} on the command line"
                                    if by.path == COMMAND_PATH else f"overridden by `{written}` in {by.path}")
            res.by[k.name] = by.name
            continue
        leaf = _leaf(k)
        in_config = k.path in config_paths
        attr = _attribute(k, program) if k.style in ("dataclass", "argparse") else ""
        if attr in computed:
            res.shadowed[k.name] = f"set by the code after the arguments are parsed ({computed[attr]})"
            continue
        if attr in literal:
            res.shadowed[k.name] = f"overridden by `{literal[attr]}` after the arguments are parsed"
            continue
        if k.style in ("dict", "dataclass") and k.path.endswith(".py"):
            rewritten = _later_write(k, files, run)
            if rewritten is not None:
                res.shadowed[k.name] = f"overridden by `{rewritten}` later in the code"
                continue
        if k.style == "env":  # `os.environ.get("LR", 0.1)` under the command's (or its script's) `LR=0.01`
            env_word = next((c for c in cli if c.name.split(":", 1)[1] == _local(k).lstrip("$")), None)
            if env_word is not None:
                res.shadowed[k.name] = f"overridden by {env_word.name.split(':', 1)[1]}=… on {_written_on(env_word)}"
                res.by[k.name] = env_word.name
                continue
        if k.style == "argparse" and fixed is not None and k.path == inv.entry and attr in listed:
            res.shadowed[k.name] = f"overridden by {fixed[0]}: the code parses that list"
            continue
        if k.style == "argparse" and attr in set_defaults and not _cli_override(k, leaf, False, cli, program,
                                                                                 config_paths):
            sd = set_defaults[attr]
            res.shadowed[k.name] = f"overridden by `{sd.context}` (set_defaults wins over add_argument's default)"
            res.by[k.name] = sd.name
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
        word = _given_as_word(k, program) if fixed is None else None
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
            over_sig = _signature_setting(k, cli, cfg_by_path, program.cli_functions)
            if over_sig is not None:
                cli_name = "jsonargparse's CLI" if _cli_function(k, program.cli_functions) else "LightningCLI"
                where = "" if over_sig.path == COMMAND_PATH else f" in {over_sig.path}"
                res.shadowed[k.name] = f"overridden by {over_sig.name.split(':', 1)[-1]}{where} ({cli_name} sets it)"
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
    for flag in cli:  # the code sets the parsed arguments' attribute itself: the command's value is never read
        if flag.name in res.shadowed or flag.name in res.unused:
            continue
        opt = program.option_for(flag.name.split(":", 1)[1])
        attr = opt.dest.lower() if opt is not None else ""
        sd_knob = set_defaults.get(attr)
        if sd_knob is not None and sd_knob.name not in res.shadowed:  # the command beats set_defaults
            res.shadowed[sd_knob.name] = f"overridden by {flag.name.split(':', 1)[1]} on {_written_on(flag)}"
            res.by[sd_knob.name] = flag.name
        if attr in literal:
            res.shadowed[flag.name] = f"overridden by `{literal[attr]}` after the arguments are parsed"
        elif attr in computed:
            res.shadowed[flag.name] = f"set by the code after the arguments are parsed ({computed[attr]})"
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
    return {attr: ast.unparse(st)[:80] for attr, st in _set_after_parsing(text)
            if not isinstance(st.value, ast.Constant | ast.Name)
            and not any(isinstance(n, ast.Attribute) and n.attr == attr for n in ast.walk(st.value))}


@functools.lru_cache(maxsize=64)
def _literal_after_parsing(text: str) -> dict[str, str]:
    """{attribute (lower case): the statement} of the parsed arguments that straight-line code sets to a literal
    after parsing (``args = parser.parse_args()`` then ``args.lr = 0.02``): neither the option's default nor the
    command's value is read; the statement is the setting (a knob of its own). Under a condition (``if
    args.dry_run: args.epochs = 1``) it is not."""
    return {attr: ast.unparse(st)[:80] for attr, st in _set_after_parsing(text)
            if _is_literal(st.value)}


def _is_literal(node: ast.expr) -> bool:
    """A literal value: a number, a string, True / False / None, or a signed number (`-1`)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    return isinstance(node, ast.Constant)


@functools.lru_cache(maxsize=64)
def _fixed_argv(text: str) -> tuple[str, tuple[str, ...]] | None:
    """(the call, its words) where the code parses a literal list instead of the command line
    (`parser.parse_args(["--lr", "0.05"])`, `parse_args(args=[])` in a script exported from a notebook) and never
    parses the command line itself: the command's options are not read, and the listed ones override their
    defaults. None when the code parses the command line (or any list not written out)."""
    tree = parsed(text)
    if tree is None:
        return None
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr in ("parse_args", "parse_known_args")]
    fixed: list[tuple[str, tuple[str, ...]]] = []
    for call in calls:
        given = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "args"), None)
        if not isinstance(given, ast.List | ast.Tuple) or not all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in given.elts):
            return None  # the command line (no list), or a list built at run time (`sys.argv[2:]`)
        fixed.append((ast.unparse(call)[:80], tuple(str(e.value) for e in given.elts)))  # type: ignore[attr-defined]
    return fixed[0] if len(fixed) == 1 else None


@functools.lru_cache(maxsize=64)
def _written_later(text: str) -> dict[tuple[str, str], tuple[int, str]]:
    """{(owner, key): (line, statement)} of straight-line code that sets one key of a dict, or one attribute of an
    object, to a literal: `C["lr"] = 0.05` and `C.update(lr=0.05)` over `C = {"lr": 0.1, ...}`, `cfg.lr = 0.05`
    over `cfg = TrainConfig()`'s field default (owner `TrainConfig` as well as `cfg`). The value written before
    that line is not the one that runs. Under a condition (`if debug: C["epochs"] = 1`) it is not recorded."""
    tree = parsed(text)
    if tree is None:
        return {}
    main_guards = [st.body for st in tree.body if isinstance(st, ast.If) and "__name__" in ast.unparse(st.test)]
    bodies = [tree.body, *main_guards,
              *(d.body for d in ast.walk(tree) if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef))]
    out: dict[tuple[str, str], tuple[int, str]] = {}
    for body in bodies:
        made: dict[str, str] = {}  # name -> the class it was made from, in this body
        for st in body:
            said = (st.lineno, ast.unparse(st)[:80])
            if isinstance(st, ast.Assign) and len(st.targets) == 1:
                target = st.targets[0]
                if isinstance(target, ast.Name) and isinstance(st.value, ast.Call):
                    made[target.id] = dotted(st.value.func).split(".")[-1]
                elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and \
                        isinstance(target.slice, ast.Constant) and isinstance(target.slice.value, str) and \
                        _is_literal(st.value):
                    out[(target.value.id, target.slice.value)] = said
                elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and \
                        _is_literal(st.value):
                    out[(target.value.id, target.attr)] = said
                    if target.value.id in made:
                        out[(made[target.value.id], target.attr)] = said
            elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) and \
                    isinstance(st.value.func, ast.Attribute) and st.value.func.attr == "update" and \
                    isinstance(st.value.func.value, ast.Name):
                owner, call = st.value.func.value.id, st.value
                pairs = [(k.arg, k.value) for k in call.keywords if k.arg]
                if call.args and isinstance(call.args[0], ast.Dict):
                    pairs += [(k.value, v) for k, v in zip(call.args[0].keys, call.args[0].values, strict=True)
                              if isinstance(k, ast.Constant) and isinstance(k.value, str)]
                for key, value in pairs:
                    if _is_literal(value):
                        out[(owner, str(key))] = said
    return out


def _set_after_parsing(text: str) -> list[tuple[str, ast.Assign]]:
    """(attribute in lower case, statement) for each straight-line assignment to an attribute of the parsed
    arguments (`args = parser.parse_args()` / `tyro.cli(...)`) in the module, its `__main__` guard or a function."""
    tree = parsed(text)
    if tree is None:
        return []
    parsed_args = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                   and dotted(n.value.func).split(".")[-1] in _PARSING_CALLS
                   for t in n.targets if isinstance(t, ast.Name)}
    main_guards = [st.body for st in tree.body if isinstance(st, ast.If) and "__name__" in ast.unparse(st.test)]
    bodies = [tree.body, *main_guards,
              *(d.body for d in ast.walk(tree) if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef))]
    out = []
    for st in (st for body in bodies for st in body):
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Attribute) and \
                isinstance(st.targets[0].value, ast.Name) and st.targets[0].value.id in parsed_args:
            out.append((st.targets[0].attr.lower(), st))
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
    trees = {p: t for p in sorted(program.run_files) if p.endswith(".py") and (t := parsed(files.get(p, "")))}
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


def _cli_function(k: knobmod.Knob, functions: frozenset[str]) -> bool:
    """Whether signature knob `k` is a parameter of a function (or class) the command line calls by its parameters
    (jsonargparse's `CLI(train)`, fire, typer)."""
    owner = _local(k).split("#")[0].rpartition(".")[0]
    return bool(set(owner.split(".")) & functions)


def _signature_setting(k: knobmod.Knob, cli: Sequence[knobmod.Knob], cfg_by_path: Mapping[str, knobmod.Knob],
                       functions: frozenset[str] = frozenset()) -> knobmod.Knob | None:
    """Under LightningCLI, the flag or config key that sets constructor argument `k` (`LitModel.learning_rate` by
    `--model.learning_rate` or a config's `model: {learning_rate: ...}` / `model.init_args.learning_rate`); under
    jsonargparse's `CLI(train)`, the `--config` file's top-level key of `train`'s parameter (`lr: 0.01`)."""
    owner, _, param = _local(k).split("#")[0].rpartition(".")
    param = param.lower()
    if _cli_function(k, functions):
        return cfg_by_path.get(param)
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
            if opt is not None and (name in opt.strings or name.lstrip("-").replace("-", "_") == opt.dest
                                    or program.option_for(name) is opt):
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
