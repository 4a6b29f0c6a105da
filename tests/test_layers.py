"""The house's floors, read from the source: `tui → agent → sandbox` with no arrow back, and inside agent/ no arrow
running back up from a lower floor to a higher one (README, Architecture). Function-local imports count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nightlab"

# agent/'s floors, bottom first: a module may import its own floor and the ones below, never one above
AGENT_FLOORS: list[tuple[str, set[str]]] = [
    ("vocabulary", {"states", "goal", "metric_text", "records", "lock", "paths", "config", "project_root", "proposal",
                    "demo"}),
    ("materials", {"store", "workspace", "edits", "memory", "metrics", "run_metrics", "tbevents", "diagnose",
                   "reward", "instrument_static", "code_reach", "data_links", "notify"}),
    ("policies", {"policy"}),
    ("rooms", {"ledger", "analysis", "launcher", "costs", "policy_view", "status", "trajectories", "projects",
               "project_init", "artifacts", "remote", "report", "mlflow_runs", "mlflow_sync", "experience", "learn",
               "early_stop", "rollout", "seeding", "sentinel", "checkpoints", "measuring", "verdict", "sessions",
               "plan", "reruns", "admission", "dispatch", "steps", "time_keeper"}),
    ("engine", {"engine"}),
    ("front desk", {"actions", "views", "approvals", "promote"}),
]
DEFAULT_FLOOR = 1  # a module not listed yet is taken for one of the materials


def floor_of(module: str) -> int:
    """The floor of an agent module; a subpackage's modules (policy.catalogue.code, report.facts) share its floor."""
    name = module.removeprefix("nightlab.agent.")
    for i, (_, names) in enumerate(AGENT_FLOORS):
        if name in names or name.split(".")[0] in names or ".".join(name.split(".")[:2]) in names:
            return i
    return DEFAULT_FLOOR


def modules() -> list[tuple[str, Path]]:
    out = []
    for f in sorted(PACKAGE.rglob("*.py")):
        rel = f.relative_to(PACKAGE.parent).with_suffix("")
        if "examples" in rel.parts:
            continue
        out.append((".".join(rel.parts).removesuffix(".__init__"), f))
    return out


def imports_of(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import, function-local ones included, `if TYPE_CHECKING:` blocks not."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = module.split(".")[: -child.level] if path.name != "__init__.py" else \
                        module.split(".")[: len(module.split(".")) - child.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                found.append((base, child.lineno))
                # `from nightlab.agent import memory`: the names are modules too
                found.extend((f"{base}.{a.name}", child.lineno) for a in child.names
                             if (PACKAGE.parent / f"{base}.{a.name}".replace(".", "/")).with_suffix(".py").exists())
            visit(child)

    visit(tree)
    return found


def test_the_floors_point_one_way() -> None:
    rules = {"nightlab.sandbox": ("nightlab.agent", "nightlab.tui", "nightlab.commands", "nightlab.console"),
             "nightlab.agent": ("nightlab.tui", "nightlab.commands", "nightlab.console", "nightlab.cli"),
             "nightlab.tui": ("nightlab.commands", "nightlab.console", "nightlab.cli")}
    wrong = []
    for module, path in modules():
        for floor, forbidden in rules.items():
            if module.startswith(floor + ".") or module == floor:
                wrong += [f"{module}:{line} imports {name}" for name, line in imports_of(module, path)
                          if name.startswith(forbidden)]
    assert not wrong, "\n".join(wrong)


def test_no_arrow_runs_back_up_inside_agent() -> None:
    wrong = []
    for module, path in modules():
        if not module.startswith("nightlab.agent."):
            continue
        mine = floor_of(module)
        for name, line in imports_of(module, path):
            if not name.startswith("nightlab.agent.") or name == module:
                continue
            if floor_of(name) > mine:
                wrong.append(f"{module}:{line} ({AGENT_FLOORS[mine][0]}) imports {name} "
                             f"({AGENT_FLOORS[floor_of(name)][0]})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("front_end", ["nightlab.commands", "nightlab.console", "nightlab.tui"])
def test_front_ends_leave_git_and_the_engine_to_the_agent(front_end: str) -> None:
    """The front-ends ask the front desk (agent/actions.py): they import neither git nor the workspace, and reach
    the engine only through the desk."""
    wrong = []
    for module, path in modules():
        if module != front_end and not module.startswith(front_end + "."):
            continue
        for name, line in imports_of(module, path):
            if name in ("git", "nightlab.agent.workspace", "nightlab.agent.promote", "nightlab.agent.approvals") or \
                    (name == "nightlab.agent.engine" and module != "nightlab.console"):
                wrong.append(f"{module}:{line} imports {name}")
    assert not wrong, "\n".join(wrong)


FRONT_ENDS = ("nightlab.tui", "nightlab.console", "nightlab.cli", "nightlab.commands")
# what a front-end may import from nightlab.agent (see the test's docstring for why each)
FRONT_DESK = {"actions", "views"}
FRONT_END_VOCABULARY = {"states", "goal", "metric_text", "terminal_text", "records", "config", "project_root"}


def front_end_may_import(name: str) -> bool:
    """Whether a front-end may import the module `name` (non-nightlab modules are not this rule's business)."""
    if name == "nightlab.sandbox" or name.startswith("nightlab.sandbox."):
        return False
    if name == "nightlab.agent":
        return True  # the package itself: `from nightlab.agent import views` names its module, checked on its own
    if not name.startswith("nightlab.agent."):
        return True
    return name.removeprefix("nightlab.agent.").split(".")[0] in FRONT_DESK | FRONT_END_VOCABULARY


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_front_ends_ask_only_the_front_desk(front_end: str) -> None:
    """A front-end (the TUI, the console, the CLI and its command handlers) reaches the agent only through the front
    desk: actions.py to act and views.py to read (snapshots, a run's log, live jobs, GPUs, a watch that wakes when
    the project changes). Besides the desk it may import the agent's vocabulary that the desk speaks:

    - states (the named states: statuses, modes, approval and engine states, a human's `Decision`),
    - goal (which way a metric is better), metric_text (how a metric value is written, so every front-end writes
      it the same way), terminal_text (what of a job's or a model's text is safe to write to a terminal, the rule
      the store keeps text by), records (the store's records as frozen values the desk hands out),
    - config (the user's nightlab.toml: the CLI reads it to apply its flags, `demo` writes the budget into it),
    - project_root (which folder a command means, found upward as git does; it reads only config file names).

    Everything else is the agent's business, and a front-end that imports it does domain work of its own: the store,
    the ledger, the lock and the state folder's paths (reading a half-written state, or the engine's own), the
    workspace and git helpers, the engine, the policies and the rooms (init, doctor, status, exports, learning),
    demo (it makes a git repository), the old approvals/promote shims (they take a Store). And never
    nightlab.sandbox: jobs, slots, GPUs, logs and leases are read through the desk. Imports under
    `if TYPE_CHECKING:` are names for the type checker (an `Engine` the desk handed over), not arrows, and are
    not counted."""
    wrong = []
    for module, path in modules():
        if module != front_end and not module.startswith(front_end + "."):
            continue
        wrong += [f"{module}:{line} imports {name}" for name, line in imports_of(module, path)
                  if not front_end_may_import(name)]
    assert not wrong, "\n".join(wrong)


HANDLES = {"store", "_store", "ws", "_ws"}  # the desk's store connection and git workspace


def handles_reached(path: Path) -> list[tuple[str, int]]:
    """(`x.store`-like expression, line) for every attribute access that reaches a store or a workspace through
    some object (a desk, an engine); `args.store` (the `learn --store PATH` flag) is a path, not a handle."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in HANDLES and \
                not (isinstance(node.value, ast.Name) and node.value.id == "args"):
            found.append((ast.unparse(node), node.lineno))
    return found


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_front_ends_never_reach_through_the_desk(front_end: str) -> None:
    """Importing only the desk is not enough if a front-end then takes the desk's (or the engine's) store or
    workspace and works on it: `desk.store.latest_job(...)` is the store read by a front-end all the same. What a
    front-end needs from them is a desk method (views.py to read, actions.py to act)."""
    wrong = []
    for module, path in modules():
        if module == front_end or module.startswith(front_end + "."):
            wrong += [f"{module}:{line} uses {expr}" for expr, line in handles_reached(path)]
    assert not wrong, "\n".join(wrong)


def test_the_front_end_rule_can_fail(tmp_path: Path) -> None:
    """The rule above sees a front-end that opens the store, reads a job through the sandbox or asks a room."""
    f = tmp_path / "screen.py"
    f.write_text("from nightlab.agent.views import Snapshot\nfrom nightlab.agent.states import Mode\n"
                 "def f():\n    from nightlab.agent.store import Store\n"
                 "    from nightlab.sandbox import gpustats\n    from nightlab.agent import status\n")
    names = imports_of("nightlab.tui.screens.screen", f)
    assert [n for n, _ in names if not front_end_may_import(n)] == [
        "nightlab.agent.store", "nightlab.sandbox", "nightlab.sandbox.gpustats", "nightlab.agent.status"]
    g = tmp_path / "handler.py"
    g.write_text("def f(desk, engine, args):\n    desk.store.latest_job(1)\n    engine.ws.diff()\n"
                 "    return args.store\n")
    assert handles_reached(g) == [("desk.store", 2), ("engine.ws", 3)]


def test_the_checker_sees_a_wrong_arrow(tmp_path: Path) -> None:
    """The rules above can fail: a store that imported the engine would be reported."""
    f = tmp_path / "store.py"
    f.write_text("def f():\n    from nightlab.agent.engine import Engine\n")
    names = imports_of("nightlab.agent.store", f)
    assert names == [("nightlab.agent.engine", 2)]
    assert floor_of(names[0][0]) > floor_of("nightlab.agent.store")


def private_imports(path: Path) -> list[tuple[str, int]]:
    """(what, line) for every import of another library's private part: a module or name whose dotted path has a
    part after the library's own name that starts with one underscore (`libcst._nodes.internal`,
    `from torch.utils.data import _utils`). Function-local imports and `if TYPE_CHECKING:` ones count: a private
    path moves without notice whoever imports it. `__future__`, dunders (`__version__`) and relative imports (ours)
    are not private."""
    found: list[tuple[str, int]] = []

    def private(parts: list[str]) -> bool:
        return any(p.startswith("_") and not p.startswith("__") for p in parts)

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names
                      if a.name.split(".")[0] != "nightlab" and private(a.name.split(".")[1:])]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            parts = node.module.split(".")
            if parts[0] in ("nightlab", "__future__"):
                continue
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names
                      if private([*parts[1:], a.name])]
    return found


def test_no_private_imports_of_other_libraries() -> None:
    """No module of nightlab imports another library's private modules or names (the house's rule): they change
    without notice in any release, and the code that leans on them breaks without a line of ours changing."""
    wrong = [f"{module}:{line} imports {name}" for module, path in modules() for name, line in private_imports(path)]
    assert not wrong, "\n".join(wrong)


def test_the_private_import_rule_can_fail(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("from __future__ import annotations\nimport libcst._nodes.internal\nimport os.path\n"
                 "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from torch.utils.data import _utils\n"
                 "def f():\n    from libcst._nodes.internal import CodegenState\n"
                 "    from nightlab.agent import _private_ok\n    from yaml import __version__\n"
                 "    from . import _ours\n")
    assert private_imports(f) == [("libcst._nodes.internal", 2), ("torch.utils.data._utils", 6),
                                  ("libcst._nodes.internal.CodegenState", 8)]


def privates_reached(path: Path) -> list[tuple[str, int]]:
    """(`x._name` expression, line) for every private attribute reached on another object than `self`, `cls` or
    `super()` (`engine._collect()`, `engine._stop`: the engine's own business)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = ast.unparse(node.value)
            if base not in ("self", "cls", "super()"):
                found.append((ast.unparse(node), node.lineno))
    return found


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_front_ends_never_touch_another_objects_privates(front_end: str) -> None:
    """A front-end calls the desk's and the engine's public methods only: the engine's `_collect`, `_stop` or
    `_base_id`, the desk's `_tell`, are theirs to change without telling anyone."""
    wrong = []
    for module, path in modules():
        if module == front_end or module.startswith(front_end + "."):
            wrong += [f"{module}:{line} uses {expr}" for expr, line in privates_reached(path)]
    assert not wrong, "\n".join(wrong)


def test_the_privates_rule_can_fail(tmp_path: Path) -> None:
    f = tmp_path / "handler.py"
    f.write_text("def f(engine, desk):\n    engine._collect()\n    desk._tell()\n    engine.__class__\n")
    assert privates_reached(f) == [("engine._collect", 2), ("desk._tell", 3)]
