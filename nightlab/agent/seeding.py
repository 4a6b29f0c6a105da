"""How a run gets another seed: the seed noise and confirming re-runs need one even when the command has no `{seed}`.

The engine measures the seed noise on the baseline and confirms a new best with another seed. A command with
``{seed}`` says how; most real commands do not, yet most real code takes a seed somewhere. In order:

1. ``{seed}`` in the command: replaced by the run's seed (as always);
2. a seed setting on the command line or one the command line can set: an argparse ``--seed`` option, a ``seed``
   global under configurator-style ``--key=value`` parsing, a ``seed`` key of a Hydra / OmegaConf config:
   re-runs pass ``--seed=N`` (or ``seed=N``), or change the value already on the command line. A seed held by a
   config system the command line reaches is passed the same way: LightningCLI's ``seed_everything`` in the
   ``--config`` file (``--seed_everything=N``), a ``seed`` field of the dataclass ``tyro.cli`` or
   ``HfArgumentParser`` parses (``--seed=N``), an ml_collections ``config.seed`` (``--config.seed=N``);
3. a seed fixed in the code the command runs — ``torch.manual_seed(1337 + rank)``, ``SEED = 42`` read by
   ``np.random.seed(SEED)``, or a seed entry of a config no command line reaches (``config = {"seed": 42}``, a
   dataclass field ``seed: int = 0``, ``seed: 42`` in a YAML file the code loads and a seeding call reads, unless
   another entry of that name or another stage's script may read it): a re-run's commit changes that literal (its
   own branch; it is never promoted);
4. none of these: re-runs are plain re-runs. The first one tells which case it is: an identical output means the
   program is deterministic (noise floor 0, no confirmation needed: a re-run would repeat it), a different one that
   it is seeded from entropy (the plain re-runs measure its noise).

Seeding calls inside evaluation or data functions (a fixed data split, a generator that builds the dataset) are
never changed: they decide what is measured, not how training goes. Nor is a seed that also decides a split
(``SEED`` read by ``np.random.seed(SEED)`` and by ``train_test_split(..., random_state=SEED)``, a
``torch.Generator().manual_seed(0)`` handed to ``random_split``), nor one in a protected file. What decides a split
is read from the code, whatever the files are called: a split that draws from a global generator
(``perm = np.random.permutation(n)`` cut into ``val_idx = perm[:k]``, ``train_test_split`` without
``random_state``, ``random_split`` without ``generator``) holds every seeding call of that generator
(``np.random.seed(42)``, ``set_seed(42)``) and the setting or constant it reads, while the seeds of the other
generators (``torch.manual_seed(42)``) are still varied.

For routes 2 and 3 the value passed is the code's own seed plus the re-run's offset from `search.seed`, so the
baseline (offset 0) runs exactly the code as committed.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from nightlab.agent.edits import matches_any
from nightlab.agent.policy import effective as eff
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.evaluation import (
    SPLIT_CALLS,
    evaluation_functions,
    held_out_data,
    held_out_name,
    names_the_measurement,
)

__all__ = ["SeedPlan", "SeedRoute", "plan_seeding"]

_SEED_CALLS = frozenset({"manual_seed", "manual_seed_all", "seed", "set_seed", "seed_everything", "set_random_seed",
                         "default_rng", "RandomState", "PRNGKey"})


class SeedRoute(StrEnum):
    """How re-runs get another seed (string values: they are stored with the session)."""

    PLACEHOLDER = "placeholder"  # {seed} in the command
    ARGUMENT = "argument"  # a command-line argument (--seed=N, seed=N)
    CODE = "code"  # a literal in the code the command runs
    NONE = "none"  # nothing to vary: plain re-runs tell deterministic from entropy-seeded


@dataclass(frozen=True)
class _Literal:
    path: str
    line: int
    value: int
    what: str  # the call as written, for the user
    col: int = field(default=-1, repr=False, compare=False)  # where on its line (a config entry), -1: the first


@dataclass
class SeedPlan:
    route: SeedRoute
    how: str  # one sentence for events and `nightlab status`
    argument: str = ""  # ARGUMENT: "--seed" or "seed" (dotlist)
    default: int | None = None  # the code's own seed, where known
    literals: list[_Literal] = field(default_factory=list)  # CODE: the literals re-runs change
    program: eff.Program | None = field(default=None, repr=False)  # ARGUMENT: parses the command to rewrite it

    @property
    def varies(self) -> bool:
        """Whether re-runs can change the seed (else they repeat the run exactly, unless it draws entropy)."""
        return self.route is not SeedRoute.NONE

    def value(self, seed: int, base_seed: int) -> int:
        """The seed a run with nightlab seed `seed` passes to the code: its own seed shifted by the offset."""
        return (self.default if self.default is not None else 0) + (seed - base_seed)

    def command(self, command: str, seed: int, base_seed: int) -> str:
        """`command` for a run with `seed` (unchanged for the baseline's seed on every route but the placeholder)."""
        if self.route is SeedRoute.PLACEHOLDER:
            return command.replace("{seed}", str(seed))
        program = self.program
        if self.route is not SeedRoute.ARGUMENT or seed == base_seed or program is None:
            return command
        knob = knobmod.Knob(f"command:{self.argument}", eff.COMMAND_PATH, self.default or 0, "seed", eff.CLI_STYLE,
                            0, "")
        try:
            return eff.rewrite_cli(command, knob, self.value(seed, base_seed), program)
        except (KeyError, ValueError, TypeError):
            return command

    def edits(self, read: Callable[[str], str], seed: int, base_seed: int) -> dict[str, str]:
        """New texts of the files whose seed literals a run with `seed` changes (CODE route), {} otherwise."""
        if self.route is not SeedRoute.CODE or seed == base_seed:
            return {}
        offset = seed - base_seed
        out: dict[str, str] = {}
        for lit in self.literals:
            text = out.get(lit.path, read(lit.path))
            new = _replace_literal(text, lit, lit.value + offset)
            if new is not None:
                out[lit.path] = new
        return out


def _replace_literal(text: str, lit: _Literal, value: int) -> str | None:
    """`text` with the integer literal `lit` (found again on its line) replaced by `value`."""
    if not lit.path.endswith(".py"):  # a YAML / JSON config: `seed: 42`, `"seed": 42,`
        lines = text.splitlines(keepends=True)
        if not 0 < lit.line <= len(lines):
            return None
        line = lines[lit.line - 1]
        sep = re.search(r"[:=]", line)
        hits = list(re.finditer(rf"(?<![\w.\-]){lit.value}(?![\w.])", line[sep.end():])) if sep else []
        if len(hits) != 1 or sep is None:
            return None
        at = sep.end() + hits[0].start()
        lines[lit.line - 1] = line[:at] + str(value) + line[at + len(str(lit.value)):]
        return "".join(lines)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) is int and node.lineno == lit.line \
                and node.value == lit.value and node.end_col_offset is not None and lit.col in (-1, node.col_offset):
            lines = text.splitlines(keepends=True)
            line = lines[node.lineno - 1]
            if node.end_lineno != node.lineno:
                return None
            lines[node.lineno - 1] = line[:node.col_offset] + str(value) + line[node.end_col_offset:]
            return "".join(lines)
    return None


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Attribute):
        return f.attr
    return f.id if isinstance(f, ast.Name) else ""


def _int_in(expr: ast.AST) -> ast.Constant | None:
    """The int literal a seed expression is built on: ``1337``, ``1337 + rank``, ``SEED * 2 + 1`` → None."""
    if isinstance(expr, ast.Constant) and type(expr.value) is int:
        return expr
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add | ast.Sub):
        for side in (expr.left, expr.right):
            if isinstance(side, ast.Constant) and type(side.value) is int:
                return side
    return None


def _module_constants(tree: ast.Module) -> dict[str, ast.Constant]:
    out: dict[str, ast.Constant] = {}
    counts: dict[str, int] = {}
    for st in tree.body:
        if isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name):
            name = st.targets[0].id
            counts[name] = counts.get(name, 0) + 1
            if isinstance(st.value, ast.Constant) and type(st.value.value) is int:
                out[name] = st.value
    return {k: v for k, v in out.items() if counts.get(k) == 1}


def _split_seeds(tree: ast.Module) -> tuple[set[str], set[int]]:
    """What decides a split in this file: the names handed to a split call (`random_state=SEED`, `generator=g`) and
    the ids of the seeding calls nested in one (`random_split(ds, [n, m], generator=Generator().manual_seed(0))`),
    with the names bound to such a seeded generator (`g = torch.Generator().manual_seed(0)`)."""
    names: set[str] = set()
    nested: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in SPLIT_CALLS:
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                for sub in ast.walk(arg):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
                    elif isinstance(sub, ast.Call) and _call_name(sub) in _SEED_CALLS:
                        nested.add(id(sub))
    for node in ast.walk(tree):  # `g = torch.Generator().manual_seed(SEED)` handed to the split as `generator=g`
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                _call_name(node.value) in _SEED_CALLS and any(t.id in names for t in node.targets
                                                              if isinstance(t, ast.Name)):
            nested.add(id(node.value))
            names.update(n.id for a in node.value.args for n in ast.walk(a) if isinstance(n, ast.Name))
    return names, nested


_ALL_GLOBALS = frozenset({"python", "numpy", "torch", "tf"})
_NP_RANDOM = ("np.random.", "numpy.random.")
_NOT_DRAWS = frozenset({"seed", "default_rng", "RandomState", "Generator", "SeedSequence", "get_state", "set_state",
                        "getstate", "setstate", "Random", "SystemRandom", "PCG64", "MT19937", "Philox", "SFC64",
                        "set_seed", "bit_generator"})
_TORCH_DRAWS = frozenset({"randperm", "rand", "randn", "randint", "multinomial", "bernoulli", "normal", "rand_like",
                          "randn_like", "randint_like"})
# sklearn splitters that shuffle by default (KFold and the stratified K-fold shuffle only with `shuffle=True`)
_SHUFFLING_SPLITS = frozenset({"train_test_split", "ShuffleSplit", "StratifiedShuffleSplit", "GroupShuffleSplit",
                               "RepeatedKFold", "RepeatedStratifiedKFold"})


def _seeded(call: ast.Call) -> frozenset[str] | None:
    """The global generators a seeding call seeds (``np.random.seed`` → numpy, ``torch.manual_seed`` → torch,
    ``set_seed`` / ``seed_everything`` → all of them); None for a generator object of its own (``default_rng(0)``,
    ``torch.Generator().manual_seed(0)``, ``PRNGKey(0)``)."""
    d, last = eff.dotted(call.func), _call_name(call)
    if last in ("default_rng", "RandomState", "PRNGKey", "Generator", "Random") or d.endswith("random.key"):
        return None
    if last in ("manual_seed", "manual_seed_all"):
        if "cuda" in d.split("."):
            return frozenset({"cuda"})
        return frozenset({"torch"}) if d in ("torch.manual_seed", "torch.random.manual_seed") else None
    if last == "seed":
        if d in ("np.random.seed", "numpy.random.seed"):
            return frozenset({"numpy"})
        if d == "random.seed":
            return frozenset({"python"})
        return _ALL_GLOBALS if isinstance(call.func, ast.Name) else None  # `rng.seed(0)`: its own object
    if last in ("set_seed", "set_random_seed") and d.split(".")[0] in ("tf", "tensorflow") and "utils" not in d:
        return frozenset({"tf"})
    return _ALL_GLOBALS  # seed_everything, transformers' / a project's set_seed, keras.utils.set_random_seed


def _is_generator(call: ast.Call) -> bool:
    """Whether a call builds a generator object of its own (seeded or not)."""
    last = _call_name(call)
    return (last in _SEED_CALLS or last in ("Generator", "Random") or eff.dotted(call.func).endswith("random.key")) \
        and _seeded(call) is None


def _draws(call: ast.Call) -> str | None:
    """The global generator a call draws from: ``np.random.permutation`` → numpy, ``random.shuffle`` → python,
    ``torch.randperm`` (no ``generator=``) → torch, ``train_test_split`` without ``random_state`` → numpy,
    ``random_split`` without ``generator=`` → torch, PyG's ``RandomNodeSplit`` → torch."""
    last = _call_name(call)
    d = eff.dotted(call.func) if not any(isinstance(n, ast.Call) for n in ast.walk(call.func)) else ""  # not a method
    # of an object built in place (`np.random.default_rng(0).shuffle(idx)` draws from that object)
    kws = {k.arg: k.value for k in call.keywords if k.arg}
    unset = {k for k, v in kws.items() if isinstance(v, ast.Constant) and v.value is None}
    if last in SPLIT_CALLS:
        if last == "random_split":
            return "torch" if "generator" not in kws or "generator" in unset else None
        if last in ("RandomNodeSplit", "RandomLinkSplit"):  # PyG's transforms draw the masks from torch's generator
            return "torch"
        shuffles = last in _SHUFFLING_SPLITS or (isinstance(kws.get("shuffle"), ast.Constant)
                                                  and getattr(kws.get("shuffle"), "value", None) is True)
        if isinstance(kws.get("shuffle"), ast.Constant) and getattr(kws.get("shuffle"), "value", None) is False:
            shuffles = False
        # HF datasets' `ds.train_test_split(test_size=0.1, seed=42)` draws from its own seed, as scikit-learn's from
        # `random_state`
        own = next((k for k in ("random_state", "seed", "generator") if k in kws and k not in unset), None)
        return "numpy" if shuffles and own is None else None
    if last in _NOT_DRAWS:
        return None
    if d.startswith(_NP_RANDOM):
        return "numpy"
    if d.startswith("random.") and d.count(".") == 1:
        return "python"
    if d in {f"torch.{x}" for x in _TORCH_DRAWS} and "generator" not in kws:
        return "torch"
    if d.startswith(("tf.random.", "tensorflow.random.")) and "stateless" not in last and "seed" not in kws:
        return "tf"
    return None


@dataclass
class _SplitDraws:
    """What the data split draws from in the files the command runs: global generators (process-wide), the
    generator objects of each file, and the expressions that decide a split (the seeds handed to split calls and to
    the seeding calls / generators a split draws from), to tell whether a seed setting also decides the split."""

    globals: set[str] = field(default_factory=set)
    objects: dict[str, set[str]] = field(default_factory=dict)  # path -> generator names a split draws from
    deciding: list[ast.AST] = field(default_factory=list)


def _targets(t: ast.AST) -> list[str]:
    return [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]


def _file_split_draws(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The global generators and the generator objects (by name, or ``line:column`` of a call that builds one in
    place) a split in this module draws from: a split call, or a held-out part (``val_idx``, ``X_val``) cut or drawn
    with a draw (``perm[:n_val]`` of ``perm = np.random.permutation(n)``, ``rng.choice(...)``,
    ``np.random.shuffle(idx)`` then ``idx[:k]``)."""
    objects = {n for node in ast.walk(tree) if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
               and _is_generator(node.value) for t in node.targets for n in _targets(t)}
    taint: dict[str, set[str]] = {n: {f"object:{n}"} for n in objects}

    def src(expr: ast.AST) -> set[str]:
        out: set[str] = set()
        for n in ast.walk(expr):
            if isinstance(n, ast.Call) and (g := _draws(n)) is not None:
                out.add(g)
            elif isinstance(n, ast.Call) and _is_generator(n):  # built in place: `default_rng(0).permutation(n)`
                out.add(f"call:{n.lineno}:{n.col_offset}")
            elif isinstance(n, ast.Name) and n.id in taint:
                out |= taint[n.id]
        return out

    flows: list[tuple[list[str], ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            flows.append(([n for t in node.targets for n in _targets(t)], node.value))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
            flows.append((_targets(node.target), node.value))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and _call_name(node.value) == "shuffle":
            flows.append(([a.id for a in node.value.args if isinstance(a, ast.Name)], node.value))  # in place
    for _ in range(3):
        for names, value in flows:
            got = src(value)
            for n in names:
                if got and not got <= taint.get(n, set()):
                    taint.setdefault(n, set()).update(got)
    drawn: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in SPLIT_CALLS:
            drawn |= {g for k in node.keywords for g in src(k.value)}  # `generator=g`, `random_state=rng`
            if (g := _draws(node)) is not None:
                drawn.add(g)
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, value = node.targets[0], node.value
        pairs = list(zip(target.elts, value.elts, strict=True)) if isinstance(target, ast.Tuple) and isinstance(
            value, ast.Tuple) and len(target.elts) == len(value.elts) else [(target, value)]
        for t, v in pairs:
            if not any(held_out_name(n) or held_out_data(n) for n in _targets(t)):  # `xv`, `X_te`, `val_idx`
                continue
            for sub in ast.walk(v):  # what the held-out part is cut with or drawn from; not what a measurement of it
                # is handed (`test_loss = apply_model(state, test_ds["image"])` reads a trained state)
                if isinstance(sub, ast.Subscript):  # `X[perm[800:]]`, `perm[:n_val]`; not `state["w"]` of a model
                    drawn |= src(sub.slice) | (set() if isinstance(sub.slice, ast.Constant) else src(sub.value))
                elif isinstance(sub, ast.Call) and ((g := _draws(sub)) is not None or _is_generator(sub)):
                    drawn.add(g if g is not None else f"call:{sub.lineno}:{sub.col_offset}")
                elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and \
                        isinstance(sub.func.value, ast.Name) and sub.func.value.id in objects:  # `rng.choice(X, 200)`
                    drawn |= taint.get(sub.func.value.id, set())
    return {g for g in drawn if ":" not in g}, {g.split(":", 1)[1] for g in drawn if ":" in g}


def _split_draws(files: Mapping[str, str], run: set[str]) -> _SplitDraws:
    out = _SplitDraws()
    trees: dict[str, ast.Module] = {}
    for path in sorted(run):
        if not path.endswith(".py") or not files.get(path):
            continue
        try:
            trees[path] = ast.parse(files[path])
        except (SyntaxError, ValueError, RecursionError):
            continue
        g, objs = _file_split_draws(trees[path])
        out.globals |= g
        out.objects[path] = objs
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if _call_name(node) in SPLIT_CALLS:
                out.deciding += [k.value for k in node.keywords]
            elif _call_name(node) in _SEED_CALLS:
                seeds = _seeded(node)
                if seeds is not None and seeds & out.globals:
                    out.deciding += node.args
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and _is_generator(node.value) and \
                    any(n in out.objects[path] for t in node.targets for n in _targets(t)):
                out.deciding += [a for c in ast.walk(node.value) if isinstance(c, ast.Call) for a in c.args]
            elif isinstance(node, ast.Call) and f"{node.lineno}:{node.col_offset}" in out.objects[path]:
                out.deciding += node.args
    return out


def _reads(expr: ast.AST, leaf: str) -> bool:
    """Whether an expression reads the setting `leaf`: ``args.seed``, ``cfg.seed``, ``config["seed"]``, ``seed``."""
    for n in ast.walk(expr):
        if isinstance(n, ast.Attribute) and n.attr.lower() == leaf:
            return True
        if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and \
                str(n.slice.value).lower() == leaf:
            return True
        if isinstance(n, ast.Name) and n.id == leaf:
            return True
    return False


def _code_literals(files: Mapping[str, str], run: set[str], skip_functions: set[str],
                   protected: Sequence[str] = (), split_held: list[str] | None = None,
                   draws: _SplitDraws | None = None) -> list[_Literal]:
    """The int literals the seeding calls of the files the command runs are built on. `split_held` collects the
    seeds left alone because they also decide a data split ("train.py: SEED"): one handed to a split, and one of a
    generator a split draws from (`draws`)."""
    out: list[_Literal] = []
    for path in sorted(run):
        text = files.get(path, "")
        if not path.endswith(".py") or not text or matches_any(path, protected):
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError):
            continue
        consts = _module_constants(tree)
        split_names, split_calls = _split_seeds(tree)
        if draws is not None:  # seeding calls of a generator the split draws from, and the constants they read
            bound = {id(n.value): {x for t in n.targets for x in _targets(t)} for n in ast.walk(tree)
                     if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)}
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or _call_name(node) not in _SEED_CALLS or not node.args:
                    continue
                seeds = _seeded(node)
                objects = draws.objects.get(path, set())
                if (seeds is not None and seeds & draws.globals) or (seeds is None and (
                        bound.get(id(node), set()) & objects or f"{node.lineno}:{node.col_offset}" in objects)):
                    split_calls.add(id(node))
                    arg = node.args[0]
                    if isinstance(arg, ast.Name) and arg.id in consts:
                        split_names.add(arg.id)
                        label = f"{path}: {arg.id}"
                    else:
                        label = f"{path}:{node.lineno} `{ast.unparse(node)}`"
                    literal = _int_in(arg) is not None or (isinstance(arg, ast.Name) and arg.id in consts)
                    if split_held is not None and literal and label not in split_held:
                        split_held.append(label)
        skip_lines: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in skip_functions:
                skip_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        lines = text.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _call_name(node) not in _SEED_CALLS or not node.args:
                continue
            if node.lineno in skip_lines or id(node) in split_calls:
                continue
            arg = node.args[0]
            const = _int_in(arg)
            if const is None and isinstance(arg, ast.Name) and arg.id in consts:
                if arg.id in split_names:  # the same constant fixes the split: changing it would move what is
                    if split_held is not None and f"{path}: {arg.id}" not in split_held:  # measured
                        split_held.append(f"{path}: {arg.id}")
                    continue
                const = consts[arg.id]
            if const is None:
                continue
            what = lines[node.lineno - 1].strip() if node.lineno <= len(lines) else ""
            value = const.value
            assert isinstance(value, int)
            lit = _Literal(path, const.lineno, value, what)
            if lit not in out:
                out.append(lit)
        # transformers' `TrainingArguments(..., seed=42)`: the Trainer seeds every generator with it when it starts,
        # over any `set_seed(...)` before
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _call_name(node) not in _HF_ARGUMENTS or node.lineno in skip_lines:
                continue
            for kw in (k for k in node.keywords if k.arg == "seed"):
                const = _int_in(kw.value) if not isinstance(kw.value, ast.Name) else None
                if isinstance(kw.value, ast.Name) and kw.value.id in consts and kw.value.id not in split_names:
                    const = consts[kw.value.id]
                if const is None or type(const.value) is not int:
                    continue
                line = lines[const.lineno - 1].strip() if const.lineno <= len(lines) else ""
                lit = _Literal(path, const.lineno, const.value, line, col=const.col_offset)
                if not any(x.path == lit.path and x.line == lit.line for x in out):
                    out.append(lit)
    return out


def _knob_local(k: knobmod.Knob) -> str:
    return (k.name.split(":", 1)[1] if k.name.startswith(f"{k.path}:") else k.name).split("#")[0]


def _knob_leaf(program: eff.Program, k: knobmod.Knob) -> str:
    """The name code reads a seed setting by: an argparse option's dest, a config key's last part."""
    local = _knob_local(k)
    if k.style == eff.CLI_STYLE:
        local = local.split(":", 1)[-1]
    if k.style in ("argparse", eff.CLI_STYLE):
        opt = program.option_for(local)
        if opt is not None:
            return opt.dest.lower()
    return local.rsplit(".", 1)[-1].lstrip("-").replace("-", "_").lower()


def _unset_seed_option(program: eff.Program, trees: Sequence[ast.Module], draws: _SplitDraws) -> str | None:
    """The command-line option a seeding call of the code reads (`set_seed(args.seed)`) that has no literal default
    to be a knob (`default=None`), the command does not give already, and no split or evaluation reads."""
    seeding = [a for t in trees for n in ast.walk(t) if isinstance(n, ast.Call) and _call_name(n) in _SEED_CALLS
               for a in [*n.args, *(k.value for k in n.keywords)]]
    given = {a.name for a in program.invocation.args} if program.invocation is not None else set()
    for opt in program.options:
        dest = opt.dest.lower()
        if not opt.takes_value or not opt.strings or "seed" not in dest or names_the_measurement(dest) or \
                any(s in given for s in opt.strings):
            continue
        if any(_reads(a, dest) for a in seeding) and not any(_reads(e, dest) for e in draws.deciding):
            return max(opt.strings, key=len)
    return None


def _decides_split(program: eff.Program, k: knobmod.Knob, draws: _SplitDraws) -> bool:
    """Whether seed setting `k` also decides the data split: it is handed to a split, to a generator a split draws
    from, or seeds a global generator a split draws from (LightningCLI's `seed_everything` seeds them all)."""
    leaf = _knob_leaf(program, k)
    if program.signature_cli and leaf == "seed_everything":
        return bool(draws.globals & _ALL_GLOBALS)
    return any(_reads(e, leaf) for e in draws.deciding)


def _trees(files: Mapping[str, str], run: set[str]) -> list[ast.Module]:
    out = []
    for path in sorted(run):
        if path.endswith(".py") and files.get(path):
            try:
                out.append(ast.parse(files[path]))
            except (SyntaxError, ValueError, RecursionError):
                continue
    return out


_HF_DEFAULT_SEED = 42  # transformers' TrainingArguments.seed
_HF_ARGUMENTS = frozenset({"TrainingArguments", "Seq2SeqTrainingArguments"})


def _hf_training_arguments(trees: Sequence[ast.Module]) -> bool:
    """Whether the code parses transformers' `TrainingArguments` from the command line with `HfArgumentParser` (its
    `--seed` is a field of the library's class, so no knob of the repository declares it) and trains or seeds with
    it (`Trainer(args=...)`, `set_seed(training_args.seed)`)."""
    calls = [n for t in trees for n in ast.walk(t) if isinstance(n, ast.Call)]
    parses = any(_call_name(c) == "HfArgumentParser" and c.args and any(
        isinstance(n, ast.Name) and n.id in _HF_ARGUMENTS for n in ast.walk(c.args[0])) for c in calls)
    from_cli = any(_call_name(c) == "parse_args_into_dataclasses" for c in calls)
    uses = any(_call_name(c) in ("Trainer", "Seq2SeqTrainer", "set_seed") for c in calls)
    return parses and from_cli and uses


def _config_route(program: eff.Program, k: knobmod.Knob, trees: Sequence[ast.Module]) -> str | None:
    """The command-line argument a config system takes seed setting `k` by: LightningCLI's keys of its `--config`
    file (``--seed_everything``), the fields of the dataclass `tyro.cli` parses (``--seed``, ``--data-seed``) or
    `HfArgumentParser` does (``--seed``), an ml_collections config file's entries (``--config.seed``)."""
    inv = program.invocation
    if inv is None:
        return None
    local = _knob_local(k)
    cfg = program.config(k.path)
    option = inv.file_options.get(k.path, "")
    if program.signature_cli and cfg is not None and k.style in ("yaml", "json") and option == "--config":
        return "--" + ".".join(x for x in (cfg.prefix, local) if x)
    if program.library and cfg is not None:  # spaCy's `spacy train config.cfg --system.seed 1`
        return "--" + local
    calls = [n for t in trees for n in ast.walk(t) if isinstance(n, ast.Call)]
    if k.style == "dataclass" and "." in local:
        owner, fld = local.rsplit(".", 1)
        owner = owner.split(".")[-1]

        def given(c: ast.Call) -> bool:
            return bool(c.args) and any(isinstance(n, ast.Name) and n.id == owner for n in ast.walk(c.args[0]))
        if any(eff.dotted(c.func) == "tyro.cli" and given(c) for c in calls):
            return f"--{fld.replace('_', '-')}"
        if any(_call_name(c) == "HfArgumentParser" and given(c) for c in calls) and \
                any(_call_name(c) == "parse_args_into_dataclasses" for c in calls):
            return f"--{fld}"
    if cfg is not None and k.path.endswith(".py") and k.style == "constant" and option.startswith("--"):
        flag = option[2:]
        parts = local.split(".")
        if len(parts) >= 3 and any(_call_name(c) in ("DEFINE_config_file", "DEFINE_config_dict") and c.args and
                                   isinstance(c.args[0], ast.Constant) and c.args[0].value == flag for c in calls):
            return f"--{flag}." + ".".join(parts[2:])
    return None


def _shared_config(program: eff.Program, k: knobmod.Knob, seeds: Sequence[knobmod.Knob],
                   read: Callable[[str], str], tracked: Sequence[str]) -> bool:
    """Whether a YAML / JSON seed entry may be read by more than this program: another seed entry of the file has
    the same name (`prepare.seed` beside `train.seed`: which one the code reads is not known), or a Python file the
    command does not run names the file (another stage, `prepare.py` of a DVC pipeline, may split with it)."""
    leaf = _knob_leaf(program, k)
    if sum(1 for x in seeds if x.path == k.path and _knob_leaf(program, x) == leaf) > 1:
        return True
    name = posixpath.basename(k.path)
    run = program.run_files or set()
    return any(p.endswith(".py") and p not in run and name in (read(p) or "") for p in tracked)


def _config_literal(k: knobmod.Knob, text: str) -> _Literal | None:
    """The literal of a seed entry in a config no command line reaches: ``"seed": 42`` in a dict, a dataclass field
    ``seed: int = 0``, ml_collections' ``config.seed = 0``, ``seed: 42`` in a YAML / JSON file the code loads."""
    value = k.value
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    local = _knob_local(k)
    leaf = local.rsplit(".", 1)[-1]
    lines = text.splitlines()
    what = lines[k.line - 1].strip() if 0 < k.line <= len(lines) else ""
    if k.style in ("yaml", "json"):
        return _Literal(k.path, k.line, value, what) if what else None
    if not (k.style in ("dict", "dataclass") or (k.style == "constant" and "." in local)):
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None

    def at(v: ast.AST | None) -> _Literal | None:
        if isinstance(v, ast.Constant) and type(v.value) is int and v.value == value and v.lineno == k.line:
            return _Literal(k.path, k.line, value, what, v.col_offset)
        return None
    for node in ast.walk(tree):
        found = None
        if isinstance(node, ast.Dict):
            found = next((x for key, v in zip(node.keys, node.values, strict=True)
                          if isinstance(key, ast.Constant) and key.value == leaf and (x := at(v))), None)
        elif isinstance(node, ast.Call) and _call_name(node) == "dict":
            found = next((x for kw in node.keywords if kw.arg == leaf and (x := at(kw.value))), None)
        elif isinstance(node, ast.AnnAssign | ast.Assign) and any(
                (isinstance(t, ast.Attribute) and t.attr == leaf) or (isinstance(t, ast.Name) and t.id == leaf)
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            found = at(node.value)
        if found is not None:
            return found
    return None


def plan_seeding(command: str, read: Callable[[str], str], exists: Callable[[str], bool],
                 tracked: Sequence[str] = (), metric: str = "", protected: Sequence[str] = ()) -> SeedPlan:
    """How re-runs of `command` (on the files `read` gives) get another seed; see the module docstring. A file
    in `protected` (paths or globs) is never edited for it. A seed argument the command cannot be rewritten to pass
    (`make train`, whose recipe runs the script) is no route: the code's literal is, or none, said so."""
    plan = _plan(command, read, exists, tracked, metric, protected, arguments=True)
    if plan.route is not SeedRoute.ARGUMENT or plan.command(command, 1, 0) != command:
        return plan
    inv = plan.program.invocation if plan.program is not None else None
    through = f" (it runs the script through {inv.source})" if inv is not None and inv.source != eff.COMMAND_PATH \
        else ""
    why = f"the command cannot be rewritten to pass {plan.argument}{through}"
    fallback = _plan(command, read, exists, tracked, metric, protected, arguments=False)
    if fallback.route is SeedRoute.NONE:
        return SeedPlan(SeedRoute.NONE, f"{why}, so re-runs repeat the command as it is")
    return replace(fallback, how=f"{fallback.how}; {why}")


def _plan(command: str, read: Callable[[str], str], exists: Callable[[str], bool], tracked: Sequence[str],
          metric: str, protected: Sequence[str], arguments: bool) -> SeedPlan:
    """`plan_seeding`; without `arguments`, no route through the command line."""
    if "{seed}" in command:
        return SeedPlan(SeedRoute.PLACEHOLDER, "re-runs replace {seed} in the command")
    program = eff.analyse(command, read, exists, tracked)
    inv = program.invocation
    if inv is None or program.run_files is None:
        return SeedPlan(SeedRoute.NONE, "the command runs no Python script nightlab can read, so it cannot pass "
                                        "a seed: re-runs repeat the command as it is")
    files = {p: read(p) for p in program.run_files | {c.path for c in program.configs}}
    knobs = knobmod.discover_files(files) + eff.cli_knobs(program)
    seeds = [k for k in knobs if k.kind == "seed"]
    res = eff.resolve(program, knobs, files)
    draws = _split_draws(files, program.run_files)
    held: list[str] = []

    def decides_split(k: knobmod.Knob) -> bool:
        """Whether re-runs must leave `k` as it is: it draws the data split (said in the plan), or its name says it
        is the evaluation's (`--eval-seed` of the episodes an RL agent is scored on; re-runs vary the training)."""
        if not _decides_split(program, k, draws):
            return names_the_measurement(re.split(r"[:.]", k.name)[-1].lstrip("-").replace("-", "_"))
        label = f"{'the command' if k.path == eff.COMMAND_PATH else k.path}: {_knob_local(k).split(':', 1)[-1]}"
        if label not in held:
            held.append(label)
        return True
    # 2. on the command line, or settable there
    for k in seeds if arguments else []:
        if k.style == eff.CLI_STYLE and k.path == eff.COMMAND_PATH and isinstance(k.value, int) and \
                not decides_split(k):
            arg = k.name.split(":", 1)[1]
            return SeedPlan(SeedRoute.ARGUMENT, f"re-runs change {arg} on the command line (now {k.value})",
                            argument=arg, default=k.value, program=program)
    for k in seeds if arguments else []:
        if res.why_not(k.name) or isinstance(k.value, bool) or decides_split(k):
            continue
        route = eff.cli_route(program, k)
        if route is not None:
            default = k.value if isinstance(k.value, int) else None
            where = f"{k.path}" + (f", default {default}" if default is not None else "")
            return SeedPlan(SeedRoute.ARGUMENT, f"re-runs pass {route}=N on the command line (the seed setting in "
                                                f"{where})", argument=route, default=default, program=program)
    # ... or an option with no literal default that the code seeds with (HF's and diffusers' example scripts:
    # `--seed` with `default=None`, then `if args.seed is not None: set_seed(args.seed)`)
    trees = _trees(files, program.run_files)
    if arguments:
        option = _unset_seed_option(program, trees, draws)
        if option is not None:
            return SeedPlan(SeedRoute.ARGUMENT, f"re-runs pass {option}=N on the command line (the option the code "
                                                "seeds with; it has no default, so the first run is unseeded)",
                            argument=option, default=None, program=program)
    # ... or held by a config system that takes it there (LightningCLI, tyro, HfArgumentParser, ml_collections)
    config_seeds = [k for k in seeds if not res.why_not(k.name) and type(k.value) is int and k.style != eff.CLI_STYLE
                    and not matches_any(k.path, protected) and not decides_split(k)]
    seeding_args = [a for t in trees for n in ast.walk(t) if isinstance(n, ast.Call) and (
        _call_name(n) in _SEED_CALLS or eff.dotted(n.func).endswith("random.key")) for a in n.args]
    fed = [k for k in config_seeds if any(_reads(a, _knob_leaf(program, k)) for a in seeding_args)]
    if fed:  # the settings a seeding call of the code reads come first (`seed` before an unread `data_seed`)
        config_seeds = fed + [k for k in config_seeds if k not in fed]
    for k in config_seeds if arguments else []:
        route = _config_route(program, k, trees)
        if route is not None:
            return SeedPlan(SeedRoute.ARGUMENT, f"re-runs pass {route}=N on the command line (the seed setting in "
                                                f"{k.path}, now {k.value})", argument=route, default=int(k.value),
                            program=program)
    # ... or a field of transformers' own TrainingArguments that HfArgumentParser parses from the command line
    given = program.invocation.tokens if program.invocation is not None else []  # `python run.py args.json`
    if arguments and _hf_training_arguments(trees) and \
            not any(t.value.endswith((".json", ".yaml", ".yml")) for t in given):
        return SeedPlan(SeedRoute.ARGUMENT, "re-runs pass --seed=N on the command line (TrainingArguments' seed, "
                                            f"now its default {_HF_DEFAULT_SEED})", argument="--seed",
                        default=_HF_DEFAULT_SEED, program=program)
    # 3. fixed in the code
    skip = evaluation_functions({p: t for p, t in files.items() if p.endswith(".py")}, metric)
    literals = _code_literals(files, program.run_files, skip, protected, held, draws)
    for k in fed or config_seeds:  # a config entry no command line reaches: its literal
        if not k.path.endswith(".py") and (k not in fed or _shared_config(program, k, seeds, read, tracked)):
            continue
        lit = _config_literal(k, files.get(k.path, ""))
        if lit is not None and not any(x.path == lit.path and x.line == lit.line for x in literals):
            literals.append(lit)
    if not arguments:  # the seed option's own default, where the command cannot pass the option (`make train`)
        for k in seeds:
            if k.path.endswith(".py") and type(k.value) is int and not res.why_not(k.name) and \
                    not decides_split(k) and not matches_any(k.path, protected) and \
                    not any(x.path == k.path and x.line == k.line for x in literals):
                literals.insert(0, _Literal(k.path, k.line, int(k.value), f"{_knob_local(k)} default {k.value}"))
                break
    if literals:
        first = literals[0]
        where = "; ".join(f"{posixpath.basename(x.path)}:{x.line} `{x.what}`" for x in literals[:3])
        kept = f"; {'; '.join(held)} also decides the data split and stays as it is" if held else ""
        return SeedPlan(SeedRoute.CODE, f"the seed is fixed in the code ({where}); re-runs change that literal "
                                        f"(the code's {first.value} plus the re-run's offset) on their own commit"
                                        f"{kept}", default=first.value, literals=literals)
    if held:
        return SeedPlan(SeedRoute.NONE, f"the code's seed ({'; '.join(held)}) also fixes the data split, so re-runs "
                                        "leave it as it is and repeat the command (changing it would change what is "
                                        "measured)")
    return SeedPlan(SeedRoute.NONE, "the code takes no seed nightlab can pass or change: re-runs repeat the command "
                                    "as it is (an identical result means the runs are deterministic)")
