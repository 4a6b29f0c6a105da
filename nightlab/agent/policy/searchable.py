"""Which of a program's knobs the builtin policy may search, and, for the others, the reason it may not.

A knob is searched only when changing it changes what is learned and nothing else: not a seed, a logging cadence, an
evaluation or data-splitting setting, where the program runs (ZeRO stages, devices, ports), a value in fixed
evaluation code or handed to it, a sentinel such as `max_steps=-1`, or a literal the training code no longer reads.
The reasons are shown to the person (`nightlab knobs`), so each is a sentence, not a code.
"""

from __future__ import annotations

import ast
import functools
import itertools
import math
import re
from collections.abc import Mapping
from typing import Any

from nightlab.agent.policy import effective as eff
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.evaluation import names_the_measurement

# name words of knobs that never change what is learned, or that change what is measured: never searched.
# (`random` is not one: `random_state` / `random_seed` are caught by their second word and a bare `random` is a seed
# by `knobs.classify`, while `random_erase`, `random_rotation`, `random_crop_scale` are augmentation strengths)
_NEVER_WORDS = frozenset({
    "seed", "rng", "state", "log", "logging", "print", "verbose", "verbosity", "report", "display", "plot",
    "save", "ckpt", "checkpoint", "workers", "threads", "thread", "device", "gpu", "gpus", "cuda", "port", "rank",
    "world", "debug", "eval", "evaluate", "evaluation", "every", "interval", "freq", "frequency", "test", "valid",
    "validation", "val", "split", "fold", "folds", "holdout", "metric", "metrics", "dir", "path", "file", "name",
    "cache", "profile", "profiler", "nproc", "nprocs", "processes", "procs", "nnodes", "ngpu", "ngpus", "cpus",
    "njobs", "jobs", "shards", "timeout",
})

# sections of a config that say how the program runs, not what it learns: DeepSpeed's ZeRO stage and buckets, its
# and Accelerate's mixed-precision loss scaling, FSDP / DDP settings
_RUNTIME_SECTIONS = frozenset({"zero_optimization", "fp16", "bf16", "amp", "fsdp", "fsdp_config", "ddp", "distributed",
                               "deepspeed", "deepspeed_config", "activation_checkpointing", "flops_profiler",
                               "comms_logger", "aio", "compile", "torch_compile", "dynamo"})
# phrases that name where the program runs, not what it learns: Lightning's `num_nodes` (a graph's or a tree's
# `max_leaf_nodes` is a setting)
_NEVER_PHRASES = frozenset({("num", "nodes"), ("n", "nodes"), ("num", "machines"), ("n", "machines")})

# phrases in which a never-word means something else: HF's `per_device_train_batch_size` (the batch, per device),
# Lightning's `gradient_clip_val` (the clipping value), timm's `drop_path_rate` (stochastic depth), a tree's
# `min_samples_split` / `min_split_gain` (what a node needs to split, not a data split)
_NOT_NEVER = frozenset({("per", "device"), ("per", "gpu"), ("clip", "val"), ("drop", "path"), ("samples", "split"),
                        ("min", "split")})

# kinds never searched: knobs/ marks seeds / logging / data shapes untunable; flags may switch evaluation modes
NEVER_KINDS = frozenset({"seed", "logging", "fixed", "split", "flag"})

# an environment variable's default in the code (`int(os.getenv("EPOCHS", 10))`) is searched only where its name says
# it is a training setting: the others are where the program runs (`$RANK`, `$TASK_THREADS`, `$MASTER_PORT`)
_ENV_KINDS = frozenset({"lr", "batch_size", "epochs", "steps", "width", "depth", "dropout", "weight_decay", "momentum",
                        "warmup", "clip", "seq_len"})
_SPLAT_RE = re.compile(r"[(,]\s*\*\*\s*[A-Za-z_]")  # `f(**cfg)`: every key may be read

# code that hands a whole config to a library, which reads its keys by name: Hydra's `instantiate(cfg.optimizer)`
# (the `_target_`'s arguments), HF's `HfArgumentParser(...).parse_json_file`, LightningCLI / jsonargparse; a key the
# code never names is still used there (a lightning-hydra-template repository had no searchable knob left)
# code that reads a Python file as a config and builds the run from its keys (mmengine / mmcv, Detectron2's
# LazyConfig): a key of that file no code names is still used
# a yacs / fvcore config merged from the YAML and the command's `KEY VALUE` words (`cfg.merge_from_file(...)`,
# `cfg.merge_from_list(args.opts)`) and handed whole to a library's trainer: Detectron2's `DefaultTrainer(cfg)`
# reads `SOLVER.BASE_LR` where the repository's code never names it (its canonical train_net.py had no searchable
# knob left)
_PY_CONFIG_READERS = re.compile(r"\bConfig\.fromfile\s*\(|\bRunner\.from_cfg\s*\(|\bLazyConfig\.load\s*\(")
_CONFIG_CONSUMERS = re.compile(r"\binstantiate\s*\(|HfArgumentParser|LightningCLI|jsonargparse|parse_(?:json|yaml)_file"
                               r"|parse_args_into_dataclasses|deepspeed\.initialize\s*\(|HfDeepSpeedConfig|"
                               r"\.merge_from_(?:file|list)\s*\(|\bfrom\s+detectron2\b|"
                               + _PY_CONFIG_READERS.pattern)
EVAL_WORDS = frozenset({"eval", "evaluate", "evaluation", "val", "valid", "validation", "test"})
_EVAL_DATA = EVAL_WORDS | {"dev", "holdout"}  # what a held-out loader's data is called
_LOADER_WORDS = frozenset({"data", "dataset", "datasets", "dataloader", "dataloaders", "loader", "loaders"})
_SHOW_CALLS = frozenset({"print", "pprint", "log", "info", "debug", "warning", "write", "dump", "dumps", "str", "repr",
                         "len", "format", "log_params", "log_hyperparams", "update_config", "save_hyperparameters"})

# what a model class derives from: torch's and Flax's `Module`, Lightning's, Keras' `Model` / `Layer`, HF's
# `PreTrainedModel`, a `Sequential`; a class defining `forward` is one too
_MODEL_BASES = frozenset({"Module", "LightningModule", "Model", "Layer", "PreTrainedModel", "Sequential"})
_MODEL_FACTORY = re.compile(r"(?:^|_)model$")  # build_model(...), create_model(...), get_model(...)


def may_search(k: knobmod.Knob, kind: str, space: knobmod.Space | None, files: Mapping[str, str],
                fixed: Mapping[str, set[int]], fixed_fns: set[str]) -> tuple[bool, str]:
    """Whether the search may change a knob: numeric, with a space, not a seed / logging / evaluation setting, not in
    fixed code, and still used by the training code."""
    name = str(k.name)
    leaf = leaf_name(re.sub(r"(?:\[\d+\])+$", "", name))  # `betas[1]` is read as `betas`, never as the word `1`
    if k.style == eff.CLI_STYLE and isinstance(k.value, str) and k.value.startswith("$"):
        return False, f"set from the shell variable {k.value} in {k.path}, not a literal nightlab edits"
    if kind in NEVER_KINDS or not k.tunable:
        return False, f"{kind} knobs are never searched"
    seq = [w for w in re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", leaf).lower()) if w]
    words = set(seq) - {b for a, b in itertools.pairwise(seq) if (a, b) in _NOT_NEVER}
    if {p.lower() for p in re.split(r"[.:]", name)[:-1]} & _RUNTIME_SECTIONS:
        return False, "how the program runs (ZeRO, mixed precision, sharding), not what it learns"
    if (k.style == "env" and kind not in _ENV_KINDS) or words & _NEVER_WORDS or \
            any(pair in _NEVER_PHRASES for pair in itertools.pairwise(seq)):
        return False, "logging, evaluation, environment or bookkeeping setting"
    if k.style in ("yaml", "json", "toml", "ini", "gin") and names_the_measurement(re.sub(r"(?:\[\d+\])+$", "", name)):
        return False, "a setting of the measurement (`cv.gap`): the edit guard holds it"
    if k.style == "dict" and any(names_the_measurement(p) for p in re.split(r"[.:]", name)[:-1]):
        return False, "a part of the measurement's settings (`val_dataloader.batch_size`): the edit guard holds it"
    if space is None or isinstance(k.value, bool) or not (is_numeric(k.value) or space.choices):
        return False, "no search space"
    if type(k.value) is int and k.value < 0 and not space.choices:  # tfds' `batch_size=-1`, HF's `max_steps=-1`
        return False, "a sentinel (a negative count means all, or none), not a size to move"
    if k.style == "call" and kind == "batch_size" and _evaluation_loader(str(k.context), k.value):
        return False, "an evaluation loader's batch size: it changes how fast the metric is read, not what is learned"
    path = str(k.path)
    line = int(getattr(k, "line", 0) or 0)
    if path in fixed and line in fixed[path]:
        return False, "defined in fixed code"
    if path.endswith(".py") and line:
        # a module-level constant passed to an evaluation function changes what is measured
        text = files[path]
        read_as, declared = leaf, range(line, line + 1)
        if k.style == "argparse":  # the code reads an option by its dest (`--wd ... dest="weight_decay"`)
            got = eff.option_dest(text, name.split("#")[0].rsplit(":", 1)[-1])
            if got is not None:
                read_as, declared = got[0], range(got[1], got[2] + 1)
        tok = re.compile(rf"\b{re.escape(read_as)}\b")
        used = 0
        for n, ln in enumerate(text.splitlines(), 1):
            if n == line or n in declared or not tok.search(ln):
                continue
            used += 1
            passed = [f for f in fixed_fns if re.search(rf"\b{re.escape(f)}\s*\(", ln)
                      and not (kind == "batch_size" and _builds_loaders(f))]
            if (n in fixed.get(path, set()) or passed) and _builds_model(text, n, ln, read_as, files):
                continue  # `MLP(hidden=HIDDEN).apply(params, x)` in an eval step: the trained model, rebuilt
            if n in fixed.get(path, set()) and all(re.match(r"\s*=(?!=)", ln[m.end():]) for m in tok.finditer(ln)):
                continue  # only a keyword of that name there (`DataLoader(train, batch_size=train_batch_size)`)
            if n in fixed.get(path, set()):
                return False, "used by fixed (evaluation / data) code"
            if passed:
                return False, "passed to an evaluation / data function"
        if used == 0 and k.style not in ("call", "signature", "env", "getattr"):  # an env default is read where it is
            # defined but read nowhere else (for example momentum after SGD became AdamW): searching it is a waste
            others = sum(len(tok.findall(t)) for p, t in files.items() if p != path and p.endswith(".py"))
            if others == 0 and not _SPLAT_RE.search(text) and not _handed_whole(name, files) and not any(
                    _PY_CONFIG_READERS.search(t) for p, t in files.items() if p != path and p.endswith(".py")):
                return False, "not used by the code"
    elif not path.endswith(".py"):  # (a command's flags too: a wrapper's `--timeout` on the command is no setting of
        # the training; a flag a library parses is kept by `_CONFIG_CONSUMERS`)
        pys = {p: t for p, t in files.items() if p.endswith(".py")}
        if pys and not _read_by_code(name, leaf, pys) and not any(_SPLAT_RE.search(t) for t in pys.values()) \
                and not any(_CONFIG_CONSUMERS.search(t) for t in pys.values()):
            return False, "not used by the code"
    return True, ""


def _read_by_code(name: str, leaf: str, pys: Mapping[str, str]) -> bool:
    """Whether the Python code reads a setting given outside it (a command's `--learning-rate 0.05`, a config key):
    an option the code declares is read by its dest (`add_argument("--lr", "--learning-rate", dest="lr")` is read as
    `args.lr`; its own declaration does not count), anything else by its name."""
    flag = name.split(":", 1)[1] if ":" in name else name
    if flag.startswith("-"):
        for path, text in pys.items():
            got = eff.option_dest(text, flag)
            if got is None:
                continue
            dest, first, last = got
            tok = re.compile(rf"\b{re.escape(dest)}\b")
            return any(tok.search(line) for p, t in pys.items()
                       for n, line in enumerate(t.splitlines(), 1) if p != path or not first <= n <= last)
    tok = re.compile(rf"\b{re.escape(leaf)}\b")
    return any(tok.search(t) for t in pys.values())


def leaf_name(name: str) -> str:
    return (re.split(r"[.:/\[\]\"']", name.strip("\"'[]"))[-1] or name).lstrip("-").replace("-", "_")


def is_numeric(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def leaf_call(key: str) -> tuple[str, str, str]:
    """(`OneCycleLR`, ".", `total_steps`) for a call keyword's knob (`OneCycleLR.total_steps`, `#2` dropped)."""
    head, dot, leaf = key.split(":")[-1].split("#")[0].rpartition(".")
    return head.rsplit(".", 1)[-1], dot, leaf


def _call_spans(line: str) -> list[tuple[int, int]]:
    """(open, close) of each call on the line outside any other: `DataLoader(train, 64), DataLoader(val, 512)`; a
    call left open at the end of the line closes there."""
    out: list[tuple[int, int]] = []
    depth, start = 0, -1
    for i, ch in enumerate(line):
        if ch == "(":
            if depth == 0 and re.search(r"\w\s*$", line[:i]):
                start = i
            depth += 1
        elif ch == ")" and depth > 0:
            depth -= 1
            if depth == 0 and start >= 0:
                out.append((start, i))
                start = -1
    if depth > 0 and start >= 0:  # a call continued on the next line: `DataLoader(val_ds, batch_size=1,`
        out.append((start, len(line)))
    return out


def _evaluation_loader(line: str, value: object = None) -> bool:
    """Whether a loader call's line reads held-out data and no training data: `val_loader = DataLoader(val_ds,
    batch_size=256)`, `DataLoader(TensorDataset(d["x_val"], d["y_val"]), ...)`, `DataLoader(datasets.MNIST("data",
    train=False), ...)` (the call's arguments whole, nested calls and subscripts included, and the name it is
    assigned to). Of several calls on the line (`return DataLoader(train, 64), DataLoader(val, 512)`) the one that
    holds `value`, else the first."""
    spans = _call_spans(line)
    if not spans:
        return False
    start, end = spans[0]
    if value is not None and len(spans) > 1:
        lit = re.compile(rf"(?<![\w.]){re.escape(str(value))}(?![\w.])")
        start, end = next(((a, b) for a, b in spans if lit.search(line[a + 1:b])), spans[0])
    head = line[:start] if start == spans[0][0] else ""
    if re.search(r"\b(?:fit|fit_generator|train)\s*$", head):  # Keras' `fit(x, y, batch_size=32, validation_split=.1)`
        return False
    args = re.sub(r"\btrain\s*=\s*False\b", " test ", line[start + 1:end])
    target = head.split("=")[0] if re.search(r"[^=!<>]=[^=]", head + "(") else ""
    words = {w for name in re.findall(r"[A-Za-z_]\w*", f"{target} {args}") for w in knobmod.name_words(name)}
    return bool(words & _EVAL_DATA) and "train" not in words


def _builds_loaders(function: str) -> bool:
    """Whether a fixed function's name says it builds the data loaders and nothing says evaluation: the batch size
    handed to `get_data_loaders(batch_size=BATCH_SIZE)` is the training batch (the split inside stays fixed)."""
    words = set(knobmod.name_words(function))
    return bool(words & _LOADER_WORDS) and not words & (_EVAL_DATA | {"score", "metric", "metrics", "validate"})


def _handed_whole(name: str, files: Mapping[str, str]) -> bool:
    """Whether the dict a key knob sits in (`params.eta`) is handed whole to a call (`xgb.train(params, dtrain)`,
    `lgb.train(params=params)`): the library reads its keys, so a key the code never names is still used."""
    root, dot, rest = name.partition(".")
    if not dot or not root.isidentifier():
        return False
    inline = f"{root}.{rest.partition('.')[0]}"  # `lgb.train(params=dict(num_leaves=31))`: its knob `train.params.…`
    return any(root in names or inline in dicts
               for p, t in files.items() if p.endswith(".py") and root in t for names, dicts in [_handed_to_calls(t)])


@functools.lru_cache(maxsize=64)
def _handed_to_calls(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """The names passed whole as an argument to a call that is not a print or a log (`xgb.train(params, dtrain)`),
    and `callee.keyword` for each dict literal given as a keyword to a library's call (`lgb.train(params={...})`):
    the library reads its keys. Not W&B's `wandb.init(config={...})`, whose keys the code reads back by name, nor a
    function of the file's own (its body reads the keys, by name)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return frozenset(), frozenset()
    own = {d.name for d in ast.walk(tree) if isinstance(d, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    names: set[str] = set()
    dicts: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        callee = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if callee in _SHOW_CALLS:
            continue
        names.update(a.id for a in [*node.args, *(k.value for k in node.keywords)] if isinstance(a, ast.Name))
        if callee and callee not in own and callee != "init":
            dicts.update(f"{callee}.{k.arg}" for k in node.keywords if k.arg and (
                isinstance(k.value, ast.Dict) or (isinstance(k.value, ast.Call) and isinstance(k.value.func, ast.Name)
                                                  and k.value.func.id == "dict")))
    return frozenset(names), frozenset(dicts)


@functools.lru_cache(maxsize=16)
def _model_classes(texts: tuple[str, ...]) -> frozenset[str]:
    """Names of the model classes the project defines (see `_MODEL_BASES`), through its own base classes."""
    bases: dict[str, set[str]] = {}
    found: set[str] = set()
    for t in texts:
        try:
            tree = ast.parse(t)
        except (SyntaxError, ValueError, RecursionError):
            continue
        for cls in ast.walk(tree):
            if isinstance(cls, ast.ClassDef):
                names = {b.attr if isinstance(b, ast.Attribute) else b.id if isinstance(b, ast.Name) else ""
                         for b in cls.bases}
                bases.setdefault(cls.name, set()).update(names)
                if names & _MODEL_BASES or any(isinstance(d, ast.FunctionDef) and d.name == "forward"
                                               for d in cls.body):
                    found.add(cls.name)
    grew = True
    while grew:
        grew = False
        for name, b in bases.items():
            if name not in found and b & found:
                found.add(name)
                grew = True
    return frozenset(found)


@functools.lru_cache(maxsize=16)
def _model_arguments(text: str, texts: tuple[str, ...]) -> dict[str, frozenset[tuple[int, int]]]:
    """Where each name is written inside the arguments of a call that builds a model (a project model class,
    `build_model(...)`): name -> {(line, column)}; the names of keyword arguments count (`MLP(hidden=cfg.hidden)`)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return {}
    models = _model_classes(texts)
    inside: dict[str, set[tuple[int, int]]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        callee = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if callee not in models and not _MODEL_FACTORY.search(callee.lower()):
            continue
        for kw in node.keywords:
            if kw.arg:
                inside.setdefault(kw.arg, set()).add((kw.lineno, kw.col_offset))
        for arg in [*node.args, *(kw.value for kw in node.keywords)]:
            for sub in ast.walk(arg):
                if isinstance(sub, ast.Name):
                    inside.setdefault(sub.id, set()).add((sub.lineno, sub.col_offset))
                elif isinstance(sub, ast.Attribute) and sub.end_col_offset is not None:
                    inside.setdefault(sub.attr, set()).add((sub.end_lineno or sub.lineno,
                                                            sub.end_col_offset - len(sub.attr)))
                elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    inside.setdefault(sub.value, set()).add((sub.lineno, sub.col_offset + 1))
    return {k: frozenset(v) for k, v in inside.items()}


def _builds_model(text: str, n: int, ln: str, name: str, files: Mapping[str, str]) -> bool:
    """Whether every use of `name` on line `n` (`ln`) of `text` is an argument of a call that builds a model: such a
    use configures the model even inside an evaluation function, as Flax's older examples rebuild
    `MLP(hidden=HIDDEN)` in their `eval_step` to apply the trained parameters. Searching it changes the trained
    model, not how it is measured."""
    if not ln.isascii():  # (ast's columns count bytes)
        return False
    inside = _model_arguments(text, tuple(t for p, t in files.items() if p.endswith(".py"))).get(name)
    cols = [m.start() for m in re.finditer(rf"\b{re.escape(name)}\b", ln)]
    return inside is not None and bool(cols) and all((n, c) in inside for c in cols)
