"""How a run gets another seed: the seed noise and confirming re-runs need one even when the command has no `{seed}`.

The engine measures the seed noise on the baseline and confirms a new best with another seed. A command with
``{seed}`` says how; most real commands do not, yet most real code takes a seed somewhere. In order:

1. ``{seed}`` in the command: replaced by the run's seed (as always);
2. a seed setting on the command line or one the command line can set: an argparse ``--seed`` option, a ``seed``
   global under configurator-style ``--key=value`` parsing, a ``seed`` key of a Hydra / OmegaConf config:
   re-runs pass ``--seed=N`` (or ``seed=N``), or change the value already on the command line;
3. a seed fixed in the code the command runs — ``torch.manual_seed(1337 + rank)``, ``SEED = 42`` read by
   ``np.random.seed(SEED)``: a re-run's commit changes that literal (its own branch; it is never promoted);
4. none of these: re-runs are plain re-runs. The first one tells which case it is: an identical output means the
   program is deterministic (noise floor 0, no confirmation needed: a re-run would repeat it), a different one that
   it is seeded from entropy (the plain re-runs measure its noise).

Seeding calls inside evaluation or data functions (a fixed data split, a generator that builds the dataset) are
never changed: they decide what is measured, not how training goes. Nor is a seed that also decides a split
(``SEED`` read by ``np.random.seed(SEED)`` and by ``train_test_split(..., random_state=SEED)``, a
``torch.Generator().manual_seed(0)`` handed to ``random_split``), nor one in a protected file.

For routes 2 and 3 the value passed is the code's own seed plus the re-run's offset from `search.seed`, so the
baseline (offset 0) runs exactly the code as committed.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from nightlab.agent.edits import matches_any
from nightlab.agent.policy import effective as eff
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.evaluation import SPLIT_CALLS, evaluation_functions

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
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) is int and node.lineno == lit.line \
                and node.value == lit.value and node.end_col_offset is not None:
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


def _code_literals(files: Mapping[str, str], run: set[str], skip_functions: set[str],
                   protected: Sequence[str] = (), split_held: list[str] | None = None) -> list[_Literal]:
    """The int literals the seeding calls of the files the command runs are built on. `split_held` collects the
    seeds left alone because they also decide a data split ("train.py: SEED")."""
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
    return out


def plan_seeding(command: str, read: Callable[[str], str], exists: Callable[[str], bool],
                 tracked: Sequence[str] = (), metric: str = "", protected: Sequence[str] = ()) -> SeedPlan:
    """How re-runs of `command` (on the files `read` gives) get another seed; see the module docstring. A file
    in `protected` (paths or globs) is never edited for it."""
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
    # 2. on the command line, or settable there
    for k in seeds:
        if k.style == eff.CLI_STYLE and k.path == eff.COMMAND_PATH and isinstance(k.value, int):
            arg = k.name.split(":", 1)[1]
            return SeedPlan(SeedRoute.ARGUMENT, f"re-runs change {arg} on the command line (now {k.value})",
                            argument=arg, default=k.value, program=program)
    for k in seeds:
        if res.why_not(k.name) or isinstance(k.value, bool):
            continue
        route = eff.cli_route(program, k)
        if route is not None:
            default = k.value if isinstance(k.value, int) else None
            where = f"{k.path}" + (f", default {default}" if default is not None else "")
            return SeedPlan(SeedRoute.ARGUMENT, f"re-runs pass {route}=N on the command line (the seed setting in "
                                                f"{where})", argument=route, default=default, program=program)
    # 3. fixed in the code
    skip = evaluation_functions({p: t for p, t in files.items() if p.endswith(".py")}, metric)
    held: list[str] = []
    literals = _code_literals(files, program.run_files, skip, protected, held)
    if literals:
        first = literals[0]
        where = "; ".join(f"{posixpath.basename(x.path)}:{x.line} `{x.what}`" for x in literals[:3])
        return SeedPlan(SeedRoute.CODE, f"the seed is fixed in the code ({where}); re-runs change that literal "
                                        f"(the code's {first.value} plus the re-run's offset) on their own commit",
                        default=first.value, literals=literals)
    if held:
        return SeedPlan(SeedRoute.NONE, f"the code's seed ({'; '.join(held)}) also fixes the data split, so re-runs "
                                        "leave it as it is and repeat the command (changing it would change what is "
                                        "measured)")
    return SeedPlan(SeedRoute.NONE, "the code takes no seed nightlab can pass or change: re-runs repeat the command "
                                    "as it is (an identical result means the runs are deterministic)")
