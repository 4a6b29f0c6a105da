"""What a training command reaches: the code it runs and the paths that code names.

`nightlab init` needs two answers a real repository does not state anywhere: which tracked files decide the run's
effective configuration (so the agent may edit them), and which untracked files the run reads (so each worktree gets
a link to them). Both are read from the code, statically, the way a person would read it:

- the scripts the command runs (`python train.py`, `python -m pkg.train`, `torchrun … train.py`, a shell script's
  own commands, `cd sub && …`), and every tracked file named on the command line (`config/x.py`, `--config a.yaml`,
  `--key=path`, Hydra `group=option` overrides);
- the local modules those scripts import, followed transitively at any depth (`from src.model import make` reaches
  `src/model.py`; relative imports; `sys.path.insert(0, "lib")` roots), files they `exec`, `runpy`, or
  `importlib.import_module` with a literal name, YAML/JSON/TOML files whose path the code or a config names, and the
  config directories of Hydra-style `config_path=` arguments;
- every string in that code and those configs that may be a path, with whether the code writes there (an
  `out_dir = …`, `os.makedirs(…)`, `torch.save(…, path)`, `open(…, "w")`) — data links must never point at outputs.

Nothing here keys on folder names or on a particular repository's layout; names of variables and calls are the
only vocabulary, and they are the common ones of Python training code.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import posixpath
import re
import shlex
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nightlab.agent import task_runners

CONFIG_EXT = (".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".gin")
# how a shell script names its own folder: `$(dirname "$0")`, `$(dirname "${BASH_SOURCE[0]}")`, `${0%/*}`
SCRIPT_DIR = re.compile(r"\$\(\s*dirname\s+\"?\$(?:0|\{0\}|\{?BASH_SOURCE(?:\[0\])?\}?)\"?\s*\)|\$\{0%/\*\}")
_PY_RUNNERS = re.compile(r"^(?:python[\d.]*|pypy[\d.]*|.*/python[\d.]*)$")
_ENV_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# environment runners whose `run` runs a command in the project's environment: `uv run -m pkg.train`, `poetry run
# mytrain`, `conda run -n env python train.py`
RUNNERS = frozenset({"uv", "poetry", "pipenv", "pdm", "hatch", "conda", "rye", "pixi"})
# launchers that run a Python module or script themselves: `accelerate launch -m pkg.train`, `torchrun ... -m ...`
LAUNCHERS = frozenset({"accelerate", "torchrun", "deepspeed", *RUNNERS})
# runner options (`uv run --extra cpu`, `conda run -n env`, `poetry run -C dir`) that take the next word as value
_RUNNER_VALUE_OPTS = frozenset({"--with", "--with-editable", "--with-requirements", "--extra", "--group", "--no-group",
                                "--only-group", "--package", "--python", "-p", "--env-file", "--directory",
                                "--project", "--index", "--default-index", "--index-url", "--extra-index-url",
                                "--find-links", "-f", "--index-strategy", "--config-file", "--cache-dir", "--color",
                                "-n", "--name", "--prefix", "--cwd", "-C", "-P", "-e", "--env", "--environment"})
# interpreter options between `python` and `-m` / the script that take a value (`python -W ignore -m pkg`)
PY_VALUE_OPTS = frozenset({"-W", "-X", "-c", "--check-hash-based-pycs"})
# shell separators; a single `&` (a background job) only where it is no part of `&&`, `2>&1` or `&>`
_SHELL_SPLIT = re.compile(r"&&|\|\||;|\||(?<![<>&])&(?![&>])")
# calls whose path arguments the code writes to, and calls whose path arguments it reads from
_WRITE_CALLS = frozenset({
    "makedirs", "mkdir", "save", "savez", "savez_compressed", "savetxt", "savefig", "save_pretrained",
    "save_model", "save_checkpoint", "save_state_dict", "to_csv", "to_parquet", "to_json", "to_pickle",
    "write_text", "write_bytes", "SummaryWriter", "dump", "copyfile", "copy", "copytree", "rmtree",
})
# names (variables, keywords, argparse options, dict keys) that hold where a run writes
_OUTPUT_NAME = re.compile(
    r"(?:^|_)(?:out|outs|output|outputs|save|saved|saves|ckpt|ckpts|checkpoint|checkpoints|log|logs|logdir|"
    r"logging|results?|export|exports|wandb|tensorboard|tb|runs?|dump|artifacts?|artefacts?|sample|samples|"
    r"cache)(?:_|$|dir|path|file|folder|root)", re.I)
_MAX_PATTERN_CONFIGS = 32  # a formatted config path matching more files than this names no particular one
_CONFIG_NAME = re.compile(r"conf|cfg|config|hparam|param|setting|option", re.I)
_FMT_FIELD = re.compile(r"\{[^{}]*\}|%[-#0 +]*\d*(?:\.\d+)?[sdifgex]")
_TOKEN = re.compile(r"[\w][\w.\-/]*")


@dataclass(frozen=True)
class PathRef:
    """A string the code or a config holds that may name a path: normalised, with `*` where it is formatted."""

    text: str
    where: str  # "train.py:120" or "conf/config.yaml"
    output: bool = False  # the code writes there
    role: str = ""  # the variable / keyword / option the string is assigned to, when known

    @property
    def parts(self) -> list[str]:
        return [p for p in self.text.split("/") if p and p != "."]


@dataclass
class Reach:
    """The tracked files a command reaches, each with why, and the path-like strings found in them."""

    files: dict[str, str] = field(default_factory=dict)  # path -> why, in discovery order
    refs: list[PathRef] = field(default_factory=list)
    entry: str | None = None  # the script the command trains with: the first it runs, or a later one (`not_training`)
    cwd: str = ""  # the folder it runs in (`cd sub && python train.py`), where the code's relative paths start

    def add(self, path: str, why: str) -> bool:
        if path in self.files:
            return False
        self.files[path] = why
        return True


def normalise(text: str) -> str:
    """A path-like string as a repo-relative POSIX path (no `./`, no trailing `/`), or "" when it is not one."""
    t = text.strip().replace("\\", "/")
    if not t or len(t) > 300 or "\n" in t or t.startswith(("http://", "https://", "/", "~")):
        return ""
    t = posixpath.normpath(t)
    if t in (".", "") or t.startswith("../"):
        return ""
    return t


class _Tree:
    """The tracked files as a set, with directories derived, for resolving names the way Python and a shell would."""

    def __init__(self, root: Path, tracked: Iterable[str]) -> None:
        self.root = root
        self.files = set(tracked)
        self.dirs: set[str] = set()
        for f in self.files:
            parent = posixpath.dirname(f)
            while parent and parent not in self.dirs:
                self.dirs.add(parent)
                parent = posixpath.dirname(parent)

    def file(self, rel: str, *bases: str) -> str | None:
        """`rel` resolved against each base directory in turn: the tracked file it names, or None."""
        return self._find(rel, bases, self.files)

    def dir(self, rel: str, *bases: str) -> str | None:
        """`rel` resolved against each base directory in turn: the tracked folder it names, or None."""
        return self._find(rel, bases, self.dirs)

    @staticmethod
    def _find(rel: str, bases: tuple[str, ...], within: set[str]) -> str | None:
        for base in bases or ("",):
            p = normalise(posixpath.join(base, rel))
            if p and p in within:
                return p
        return None

    def module(self, name: str, roots: Iterable[str]) -> list[str]:
        """Files that importing `name` (dotted) runs, found under one of the roots: each package's __init__.py on
        the way, then the module itself (`a/b/c.py` or `a/b/c/__init__.py`). Empty when it is not local."""
        parts = name.split(".")
        for root in roots:
            base = root.rstrip("/")
            out: list[str] = []
            for i in range(1, len(parts)):
                init = posixpath.join(base, *parts[:i], "__init__.py")
                if init in self.files:
                    out.append(init)
            stem = posixpath.join(base, *parts)
            for cand in (stem + ".py", stem + "/__init__.py"):
                if cand in self.files:
                    return [*out, cand]
        return []

    def read(self, rel: str) -> str:
        try:
            return (self.root / rel).read_text(errors="replace")
        except OSError:
            return ""


# --- the command ------------------------------------------------------------------------------------------------


def _split_segment(seg: str) -> list[str]:
    try:
        return shlex.split(seg, posix=True)
    except ValueError:
        return seg.split()


# what a script does by its name, when a command chains several (`python prepare.py && python train.py --lr 0.05`):
# the training run is the entry, not the data preparation before it or the evaluation after it
_NOT_TRAINING = frozenset({"prepare", "prep", "preprocess", "preprocessing", "download", "setup", "prepare_data",
                           "make_data", "make_dataset", "build_dataset", "data_prep", "eval", "evaluate", "evaluation",
                           "test", "score", "predict", "inference", "infer", "export", "plot", "visualize", "sample",
                           "featurize", "featurization", "build_features",  # (a DVC pipeline's feature stage)
                           "convert"})  # (spaCy's `convert` step, which writes the corpus the training reads)


def console_scripts(pyproject: str) -> dict[str, str]:
    """The console scripts a pyproject.toml installs, from `[project.scripts]` and Poetry's `[tool.poetry.scripts]`:
    command name → the module it runs (`mytrain = "mypkg.cli:main"`, `mytrain = {reference = "mypkg.cli:main"}`)."""
    try:
        data = tomllib.loads(pyproject)
    except (tomllib.TOMLDecodeError, ValueError):
        return {}
    project = data.get("project")
    tool = data.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    out: dict[str, str] = {}
    for owner in (poetry, project):
        table = owner.get("scripts") if isinstance(owner, dict) else None
        if not isinstance(table, dict):
            continue
        for name, target in table.items():
            ref = target.get("reference", target.get("callable")) if isinstance(target, dict) else target
            if isinstance(ref, str) and ref.strip():
                out[str(name)] = ref.split(":", 1)[0].strip()
    return out


def program_index(words: Sequence[str]) -> int:
    """Index of the word naming the program a command segment runs: past `VAR=value` words, `env`, and an
    environment runner's `run` with its options (`uv run --extra cpu mytrain` → `mytrain`, `poetry run mytrain`);
    `len(words)` when there is none."""
    i = 0
    while i < len(words):
        w = words[i]
        if _ENV_WORD.match(w) or w == "env":
            i += 1
            continue
        if posixpath.basename(w) in RUNNERS:
            j = _past_runner_options(words, i + 1)  # global options first: `uv --directory proj run …`
            if j < len(words) and words[j] == "run":
                i = _past_runner_options(words, j + 1)
                continue
        return i
    return i


def _past_runner_options(words: Sequence[str], i: int) -> int:
    while i < len(words) and words[i].startswith("-") and words[i] != "-m":
        i += 2 if words[i] in _RUNNER_VALUE_OPTS else 1
    return i


def runner_directory(words: Sequence[str]) -> str:
    """The folder an environment runner runs its command in, relative to where the line runs ('' for there):
    `uv run --directory proj python train.py`, `uv --directory=proj run …`, `poetry -C proj run …`."""
    end = program_index(words)
    runner = next((posixpath.basename(w) for w in words[:end] if posixpath.basename(w) in RUNNERS), "")
    for i, w in enumerate(words[:end]):
        opt, eq, value = w.partition("=")
        if opt == "--directory" or (opt == "-C" and runner == "poetry"):
            value = value if eq else (words[i + 1] if i + 1 < end else "")
            return "" if value.startswith(("/", "~", "$")) else value
    return ""


def python_path(value: str, cwd: str = "") -> list[str]:
    """The repository folders a `PYTHONPATH=a:b` value puts on the import path, repo-relative ("" for the top).
    Relative entries count from where the command runs (`$PWD/lib` too); `$PYTHONPATH`, absolute and home paths
    name nothing in the repository."""
    out: list[str] = []
    for part in value.split(":"):
        rel = re.sub(r"^(?:\$\{?PWD\}?|\$\(pwd\))/?", "", part)
        if not part or "$" in rel or rel.startswith(("/", "~")):
            continue
        p = posixpath.normpath(posixpath.join(cwd, rel))
        if p != ".." and not p.startswith("../"):
            out.append("" if p == "." else p)
    return out


def not_training(path: str) -> bool:
    """Whether a script's name says it prepares data or evaluates rather than trains (`prepare.py`, `eval.py`)."""
    return posixpath.splitext(posixpath.basename(path))[0].lower() in _NOT_TRAINING


def _command_targets(command: str, tree: _Tree, reach: Reach, roots: list[str], depth: int = 0,
                     cwd: str = "") -> list[str]:
    """Record what a shell command line runs and names; returns the Python scripts it runs (to analyse). `cwd` is
    where the line starts; a `cd` moves it for the rest of the line, and a subshell `( … )` brings it back.
    `PYTHONPATH=…` entries are added to `roots` (the folders imports resolve from)."""
    scripts: list[str] = []
    installed = console_scripts(tree.read("pyproject.toml")) if "pyproject.toml" in tree.files else {}
    outer: list[str] = []
    for raw in _SHELL_SPLIT.split(command.replace("{seed}", "0")):
        seg, opens, closes = _subshell(raw)
        outer.extend([cwd] * opens)
        cwd = _segment_targets(_split_segment(seg), tree, reach, roots, scripts, installed, cwd, depth)
        for _ in range(closes):
            cwd = outer.pop() if outer else cwd
    return scripts


def _subshell(seg: str) -> tuple[str, int, int]:
    """A segment without the parentheses of a subshell around it: `(cd src` → (`cd src`, 1 opened, 0 closed)."""
    s = seg.strip()
    opens = len(s) - len(s.lstrip("("))
    s = s[opens:]
    closes = 0
    while s.endswith(")") and s.count(")") > s.count("("):
        s = s[:-1].rstrip()
        closes += 1
    return s, opens, closes


def _segment_targets(toks: list[str], tree: _Tree, reach: Reach, roots: list[str], scripts: list[str],
                     installed: dict[str, str], cwd: str, depth: int) -> str:
    """Record what one command segment runs (see `_command_targets`); returns the folder the next one runs in."""
    if not toks:
        return cwd
    if toks[0] in ("cd", "pushd") and len(toks) > 1:
        return tree.dir(toks[1], cwd) or normalise(posixpath.join(cwd, toks[1])) or ""
    at = program_index(toks)
    _add_python_path(toks[:at] + (toks[1:] if toks[0] == "export" else []), cwd, roots)
    outer, moved = cwd, runner_directory(toks)
    if moved:  # `uv run --directory proj python train.py`: this command (only) runs in proj
        cwd = tree.dir(moved, cwd) or normalise(posixpath.join(cwd, moved)) or ""
    if depth < 3 and _recipe_targets(toks, tree, reach, roots, scripts, cwd, depth):
        return outer
    module = installed.get(toks[at]) if at < len(toks) else None
    if module is not None:  # a console script the package installs (`mytrain fit`): it runs that module
        toks = [*toks[:at], "python", "-m", module, *toks[at + 1:]]
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok == "-m" and i + 1 < len(toks) and _module_flag(toks, i):
            mods = tree.module(toks[i + 1], [cwd, *roots])
            if mods:
                main = mods[-1]
                if main.endswith("/__init__.py") and posixpath.dirname(main) + "/__main__.py" in tree.files:
                    main = posixpath.dirname(main) + "/__main__.py"
                if reach.add(main, "the command runs it") and reach.entry is None:
                    reach.entry, reach.cwd = main, cwd
                scripts.append(main)
                for init in mods[:-1]:
                    scripts.append(init)
            i += 2
            continue
        for value in _token_values(tok):
            _command_value(value, tree, reach, scripts, cwd, roots, depth)
        i += 1
    return outer


def _add_python_path(words: list[str], cwd: str, roots: list[str]) -> None:
    """Put the folders of a `PYTHONPATH=…` among `words` first in `roots`: imports resolve there before anywhere."""
    for word in words:
        if word.startswith("PYTHONPATH="):
            roots[:0] = [r for r in python_path(word.split("=", 1)[1], cwd) if r not in roots]


def _module_flag(toks: list[str], i: int) -> bool:
    """Whether the `-m` at `toks[i]` is Python's: the interpreter's option (its other options, `-u`, `-W ignore`,
    may stand between: `python3 -u -m trainer`) or a launcher's or runner's (`torchrun … -m`, `uv run -m`)."""
    j = i - 1
    while j >= 0:
        t = toks[j]
        if _PY_RUNNERS.match(posixpath.basename(t)):
            return True
        if t.startswith("-"):
            j -= 1
        elif j >= 1 and toks[j - 1] in PY_VALUE_OPTS:
            j -= 2
        else:
            break
    return any(posixpath.basename(t) in LAUNCHERS for t in toks[:i])


def _recipe_targets(toks: list[str], tree: _Tree, reach: Reach, roots: list[str], scripts: list[str], cwd: str,
                    depth: int) -> bool:
    """Record what a task runner's recipe runs (`make train`, `just train`, `tox -e train`: `task_runners`); the
    target's own recipe first, its prerequisites only while no Python script is found. False when the segment runs
    no task runner nightlab reads."""
    recipes = task_runners.recipes_for(_without_redirections(toks), tree.read, lambda p: p in tree.files, cwd)
    if not recipes:
        return False
    reach.add(recipes[0].source, "the command runs it")
    for recipe in recipes:
        _add_python_path(recipe.environment(), recipe.cwd, roots)  # `export PYTHONPATH := src` in the Makefile
        found: list[str] = []
        for k, (start, end) in enumerate(recipe.lines):
            line, _ = recipe.expand(start, end)
            found += _command_targets(line, tree, reach, roots, depth + 1, recipe.line_cwd(k))
        scripts.extend(found)
        if any(p.endswith(".py") for p in found):
            break
    return True


def _without_redirections(toks: list[str]) -> list[str]:
    """A segment's words without its redirections (`> log`, `2>&1`, `&>log`): `make train > log` names no target
    `>`."""
    words: list[str] = []
    names_file = False
    for tok in toks:
        if names_file:
            names_file = False
        elif re.fullmatch(r"\d*(?:>>?|<)|&>>?", tok):
            names_file = True  # a bare operator: the next word is its file
        elif not re.match(r"\d*[<>]|&>", tok):
            words.append(tok)
    return words


def _token_values(tok: str) -> list[str]:
    """The parts of one argument that may name a file: itself, and the value of `--key=value` / `key=value`."""
    vals = [tok] if not tok.startswith("-") else []
    if "=" in tok:
        vals.append(tok.split("=", 1)[1])
    return [v for v in vals if v]


def _command_value(value: str, tree: _Tree, reach: Reach, scripts: list[str], cwd: str, roots: list[str],
                   depth: int) -> None:
    path = tree.file(value, cwd)
    if path is None:
        return
    if path.endswith(".py"):
        first = reach.entry is None
        if reach.add(path, "the command runs it" if first else "named on the command line"):
            if first or (not_training(reach.entry or "") and not not_training(path)):
                reach.entry, reach.cwd = path, cwd
                reach.files[path] = "the command runs it"
            scripts.append(path)
    elif path.endswith(CONFIG_EXT):
        reach.add(path, "named on the command line")
    elif path.endswith(".sh") and depth < 3:
        reach.add(path, "the command runs it")
        text = SCRIPT_DIR.sub(posixpath.dirname(path) or ".", tree.read(path))
        lines = [ln.split("#", 1)[0] for ln in text.replace("\\\n", " ").splitlines()]
        scripts.extend(_command_targets("\n".join(lines).replace("\n", ";"), tree, reach, roots, depth + 1, cwd))
    reach.refs.append(PathRef(path, "the command"))


# --- python files -----------------------------------------------------------------------------------------------


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return ""


def dotted_name(node: ast.AST) -> str:
    """`a.b.c` for a name or attribute chain ("" for anything else): how code names a module, a class, a call."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted_name(node.value)
        return f"{inner}.{node.attr}" if inner else node.attr
    return ""


def _target_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    return ""


def _string_pattern(node: ast.expr) -> str | None:
    """A string constant, or an f-string / `"…{}…".format(…)` / `"…%s…" % …` as a glob with `*` for each field."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for v in node.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                out.append(v.value)
            else:
                out.append("*")
        return "".join(out)
    if isinstance(node, ast.Call) and _call_name(node) == "format" and isinstance(node.func, ast.Attribute):
        base = node.func.value
        if isinstance(base, ast.Constant) and isinstance(base.value, str):
            return _FMT_FIELD.sub("*", base.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) \
            and isinstance(node.left.value, str):
        return _FMT_FIELD.sub("*", node.left.value)
    return None


def _path_expr(node: ast.expr) -> str | None:
    """`os.path.join("data", name, "train.bin")` or `Path(root) / "data" / "x.csv"` as a glob (`data/*/train.bin`);
    None unless it joins at least two parts and one of them is a string."""
    parts: list[ast.expr] = []

    def flatten(n: ast.expr) -> None:
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div):
            flatten(n.left)
            flatten(n.right)
        elif isinstance(n, ast.Call) and _call_name(n) in ("Path", "PurePath", "PosixPath") and len(n.args) == 1:
            flatten(n.args[0])
        else:
            parts.append(n)

    if isinstance(node, ast.Call) and _call_name(node) == "join" and dotted_name(node.func).endswith("path.join"):
        for a in node.args:
            flatten(a)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        flatten(node)
    else:
        return None
    texts = [_string_pattern(p) for p in parts]
    if len(texts) < 2 or not any(t is not None for t in texts):
        return None
    return "/".join(t.strip("/") if t is not None else "*" for t in texts)


_PATH_CALLS = frozenset({"Path", "PurePath", "PosixPath"})
_SAME_PATH = frozenset({"abspath", "realpath", "normpath", "resolve", "absolute", "expanduser"})


def _this_file(node: ast.expr) -> bool:
    """`__file__` itself, or wrapped without changing which file it names: `os.path.abspath(__file__)`,
    `Path(__file__).resolve()`."""
    if isinstance(node, ast.Name):
        return node.id == "__file__"
    if isinstance(node, ast.Call) and (_call_name(node) in _PATH_CALLS | _SAME_PATH):
        inner = node.args[0] if node.args else node.func.value if isinstance(node.func, ast.Attribute) else None
        return inner is not None and _this_file(inner)
    return False


def _folder_up(node: ast.expr) -> int | None:
    """How many folders above the file's own folder an expression names: 0 for `os.path.dirname(__file__)` and
    `Path(__file__).parent`, 1 for `Path(__file__).parent.parent` or `parents[1]`; None when it does not start at
    `__file__`."""
    if isinstance(node, ast.Call) and _call_name(node) == "dirname" and len(node.args) == 1:
        arg = node.args[0]
        if _this_file(arg):
            return 0
        up = _folder_up(arg)
        return None if up is None else up + 1
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        if _this_file(node.value):
            return 0
        up = _folder_up(node.value)
        return None if up is None else up + 1
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents" \
            and _this_file(node.value.value) and isinstance(node.slice, ast.Constant) \
            and isinstance(node.slice.value, int):
        return node.slice.value
    if isinstance(node, ast.Call) and _call_name(node) in _PATH_CALLS | _SAME_PATH:
        inner = node.args[0] if node.args else node.func.value if isinstance(node.func, ast.Attribute) else None
        return None if inner is None else _folder_up(inner)
    return None


def beside_file(node: ast.expr) -> str | None:
    """The path an expression builds from the folder of the file it is written in, relative to that folder:
    `os.path.join(os.path.dirname(__file__), "configurator.py")` and `Path(__file__).parent / "configurator.py"`
    give "configurator.py", `Path(__file__).resolve().parents[1] / "configs" / "a.yaml"` "../configs/a.yaml",
    `Path(__file__).with_name("x.py")` "x.py". None when the expression is not anchored at `__file__` or a part of
    it is not a string."""
    if isinstance(node, ast.Call) and _call_name(node) in _PATH_CALLS | _SAME_PATH and len(node.args) < 2:
        inner = node.args[0] if node.args else node.func.value if isinstance(node.func, ast.Attribute) else None
        return None if inner is None else beside_file(inner)
    if isinstance(node, ast.Call) and _call_name(node) == "with_name" and isinstance(node.func, ast.Attribute) \
            and _this_file(node.func.value) and len(node.args) == 1:
        return _str_const(node.args[0])
    parts: list[ast.expr] = []
    if isinstance(node, ast.Call) and (dotted_name(node.func).endswith("path.join")
                                       or _call_name(node) in _PATH_CALLS) and node.args:
        parts = list(node.args)  # os.path.join(here, "a.py"), Path(here, "a.py")
    else:
        while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts.insert(0, node.right)
            node = node.left
        parts.insert(0, node)
    if len(parts) < 2:
        return None
    up = _folder_up(parts[0])
    rest = [_str_const(p) for p in parts[1:]]
    if up is None or any(r is None for r in rest):
        return None
    return posixpath.normpath(posixpath.join(*([".."] * up), *(r for r in rest if r is not None)))


def _str_const(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _open_mode(node: ast.Call) -> str:
    for i, a in enumerate(node.args):
        if i == 1 and isinstance(a, ast.Constant) and isinstance(a.value, str):
            return a.value
    for kw in node.keywords:
        if kw.arg == "mode" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            return kw.value.value
    return "r"


class _PyScan(ast.NodeVisitor):
    """One Python file: its imports, exec'd / run / imported-by-name files, and path-like strings with roles."""

    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.imports: list[tuple[str, int, int, list[str]]] = []  # module, level, line, imported names
        self.code_refs: list[tuple[str, int, str]] = []  # (literal, line, how): exec / runpy / import_module
        self.strings: list[tuple[str, int, bool, str]] = []  # (pattern, line, output, role)
        self.sys_paths: list[str] = []
        self.config_dirs: list[tuple[str, int]] = []
        self._output: list[bool] = [False]
        self._role: list[str] = [""]

    # context: whether strings below are written to, and the name they are assigned to
    def _with(self, node: ast.AST, output: bool | None = None, role: str | None = None) -> None:
        self._output.append(self._output[-1] if output is None else output)
        self._role.append(self._role[-1] if role is None else role)
        try:
            self.generic_visit(node)
        finally:
            self._output.pop()
            self._role.pop()

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self.imports.append((a.name, 0, node.lineno, []))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.imports.append((node.module or "", node.level, node.lineno, [a.name for a in node.names]))

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a docstring or a bare string: prose, not a path
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        name = next((n for n in (_target_name(t) for t in node.targets) if n), "")
        self._with(node, output=bool(_OUTPUT_NAME.search(name)) if name else None, role=name or None)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        name = _target_name(node.target)
        self._with(node, output=bool(_OUTPUT_NAME.search(name)) if name else None, role=name or None)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg and node.arg not in ("default", "const", "value", "type", "help"):
            self._with(node, output=bool(_OUTPUT_NAME.search(node.arg)), role=node.arg)
        else:
            self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for k, v in zip(node.keys, node.values, strict=True):
            if k is not None:
                self.visit(k)
            key = k.value if isinstance(k, ast.Constant) and isinstance(k.value, str) else ""
            self._output.append(bool(_OUTPUT_NAME.search(key)) if key else self._output[-1])
            self._role.append(key or self._role[-1])
            try:
                self.visit(v)
            finally:
                self._output.pop()
                self._role.pop()

    def visit_BinOp(self, node: ast.BinOp) -> None:
        joined = _path_expr(node)
        if joined:
            self.strings.append((joined, node.lineno, self._output[-1], self._role[-1]))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        joined = _path_expr(node)
        if joined:
            self.strings.append((joined, node.lineno, self._output[-1], self._role[-1]))
        name = _call_name(node)
        dotted = dotted_name(node.func)
        first = _string_pattern(node.args[0]) if node.args else None
        if name == "exec" and node.args:
            inner = node.args[0]
            # exec(open("configurator.py").read()) and exec(Path("x.py").read_text()); a path built from the
            # file's own folder (`os.path.join(os.path.dirname(__file__), "configurator.py")`) counts from there
            for sub in ast.walk(inner):
                if isinstance(sub, ast.Call) and _call_name(sub) in ("open", "Path", "read_text") and sub.args:
                    beside = beside_file(sub.args[0])
                    if beside is not None:
                        self.code_refs.append((posixpath.join(posixpath.dirname(self.rel), beside), node.lineno,
                                               "exec'd (beside the file)"))
                        break
                    lit = _string_pattern(sub.args[0]) or _path_expr(sub.args[0])
                    if lit:
                        self.code_refs.append((lit, node.lineno, "exec'd"))
        elif name in ("run_path", "run_module") and first:
            self.code_refs.append((first, node.lineno, "run" if name == "run_path" else "module"))
        elif name in ("import_module", "__import__") and first:
            self.code_refs.append((first, node.lineno, "module"))
        elif dotted in ("sys.path.insert", "sys.path.append") and node.args:
            lit = _string_pattern(node.args[-1])
            if lit:
                self.sys_paths.append(lit)
        if name == "add_argument" and node.args:
            opts = [o for o in (_string_pattern(a) for a in node.args) if o]
            dest = next((kw.value.value for kw in node.keywords if kw.arg == "dest"
                         and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str)), "")
            role = dest or max(opts, key=len, default="").lstrip("-").replace("-", "_")  # "-o", "--out-dir": out_dir
            self._with(node, output=bool(_OUTPUT_NAME.search(role)), role=role)
            return
        for kw in node.keywords:
            if kw.arg in ("config_path", "config_dir") and kw.value is not None:
                lit = _string_pattern(kw.value)
                if lit:
                    self.config_dirs.append((lit, node.lineno))
        if name == "open":
            mode = _open_mode(node)
            self._with(node, output=any(c in mode for c in "wax+"))
            return
        if name in _WRITE_CALLS:
            self._with(node, output=True)
            return
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            self.strings.append((node.value, node.lineno, self._output[-1], self._role[-1]))

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        pat = _string_pattern(node)
        if pat:
            self.strings.append((pat, node.lineno, self._output[-1], self._role[-1]))
        for v in node.values:
            if isinstance(v, ast.FormattedValue):
                self.visit(v.value)


def _resolve_import(mod: str, level: int, names: list[str], rel: str, tree: _Tree, roots: list[str]) -> list[str]:
    """Files an import statement in `rel` runs: the module (and its packages' inits), and for `from pkg import x`
    the submodule `pkg/x.py` when x is one."""
    if level:
        base = posixpath.dirname(rel)
        for _ in range(level - 1):
            base = posixpath.dirname(base)
        search = [base]
    else:
        search = roots
    out: list[str] = []
    if mod:
        out += tree.module(mod, search)
    for n in names:
        if n == "*":
            continue
        full = f"{mod}.{n}" if mod else n
        sub = tree.module(full, search)
        if sub and sub[-1] not in out:
            out.append(sub[-1])
    return out


# --- config files -----------------------------------------------------------------------------------------------


def _config_strings(text: str, rel: str) -> list[tuple[str, bool, str]]:
    """(string, output, key) for the values of a YAML / JSON / TOML / INI config: the keys tell outputs apart."""
    out: list[tuple[str, bool, str]] = []
    if rel.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if data is not None:
            def walk(x: object, key: str) -> None:
                if isinstance(x, dict):
                    for k, v in x.items():
                        walk(v, str(k))
                elif isinstance(x, list):
                    for v in x:
                        walk(v, key)
                elif isinstance(x, str):
                    out.append((x, bool(_OUTPUT_NAME.search(key)), key))
            walk(data, "")
            return out
    key = ""
    for line in text.splitlines():
        line = line.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        m = re.match(r"\s*(?:-\s*)?([\w.\-]+)\s*[:=]\s*(.*)$", line)
        if m:
            key, value = m.group(1), m.group(2)
            out.append((key, False, ""))  # Hydra defaults (`- model: resnet`): the group name is a path part
        else:
            value = line.strip().lstrip("-").strip()
        value = value.strip().strip("'\"")
        for tok in _TOKEN.findall(value):
            out.append((tok, bool(_OUTPUT_NAME.search(key)), key))
    return out


# --- the walk ---------------------------------------------------------------------------------------------------


def reach(root: Path, tracked: Iterable[str], command: str) -> Reach:
    """Everything `command` reaches in the repository at `root` (see the module docstring)."""
    tree = _Tree(Path(root), tracked)
    result = Reach()
    roots = [""]
    if "src" in tree.dirs:
        roots.append("src")
    queue = _command_targets(command, tree, result, roots)
    if result.entry is not None:
        edir = posixpath.dirname(result.entry)
        if edir not in roots:
            roots.insert(0, edir)
    seen: set[str] = set()
    configs: list[str] = [p for p in result.files if p.endswith(CONFIG_EXT)]
    while queue:
        rel = queue.pop(0)
        if rel in seen or not rel.endswith(".py"):
            continue
        seen.add(rel)
        text = tree.read(rel)
        try:
            node = ast.parse(text, filename=rel)
        except (SyntaxError, ValueError):
            continue
        scan = _PyScan(rel)
        scan.visit(node)
        here = posixpath.dirname(rel)
        for p in scan.sys_paths:
            d = tree.dir(p, result.cwd, here)
            if d and d not in roots:
                roots.append(d)
        for mod, level, line, names in scan.imports:
            for f in _resolve_import(mod, level, names, rel, tree, [here, *roots] if not level else roots):
                if f.endswith("__init__.py") and not _substantial(tree.read(f)):
                    queue.append(f)  # followed for its imports, not listed: an empty package marker
                    continue
                result.add(f, f"imported by {rel}:{line}")
                queue.append(f)
        for lit, line, how in scan.code_refs:
            if how == "module":
                for f in tree.module(lit, roots)[-1:]:
                    result.add(f, f"imported by name in {rel}:{line}")
                    queue.append(f)
                continue
            target = tree.file(lit) if how.endswith("(beside the file)") else tree.file(lit, result.cwd, here)
            if target is not None:
                result.add(target, f"{how} by {rel}:{line}")
                queue.append(target)
        for lit, line in scan.config_dirs:
            d = tree.dir(lit, here, result.cwd)
            if d is None:
                continue
            for f in sorted(tree.files):
                if f.startswith(d + "/") and f.endswith(CONFIG_EXT) and result.add(f, f"config dir of {rel}:{line}"):
                    configs.append(f)
        for lit, line, output, role in scan.strings:
            named = tree.file(lit, result.cwd, here)
            if named is not None and named != rel and not output:
                if named.endswith(".py"):
                    if result.add(named, f"named in {rel}:{line}"):
                        queue.append(named)
                elif named.endswith(CONFIG_EXT) and result.add(named, f"loaded by {rel}:{line}"):
                    configs.append(named)
            elif named is None and "*" in lit and lit.endswith(CONFIG_EXT) and not output:
                # `open(f"hyperparams/{args.algo}.yml")` (rl-zoo): each tracked config the pattern may name
                for base in (result.cwd, here):
                    matched = sorted(f for f in tree.files if fnmatch.fnmatchcase(f, normalise(
                        posixpath.join(base, lit)) or lit))
                    if 0 < len(matched) <= _MAX_PATTERN_CONFIGS:
                        configs += [m for m in matched if result.add(m, f"may be loaded by {rel}:{line} ({lit})")]
                        break
            norm = normalise(posixpath.join(result.cwd, lit))
            if norm and _pathish(norm):
                result.refs.append(PathRef(norm, f"{rel}:{line}", output, role))
    for cfg in configs:
        for s, output, key in _config_strings(tree.read(cfg), cfg):
            other = tree.file(s, result.cwd, posixpath.dirname(cfg))
            if other is not None and other.endswith(CONFIG_EXT) and other != cfg and result.add(other,
                                                                                                  f"named in {cfg}"):
                configs.append(other)
            norm = normalise(posixpath.join(result.cwd, s))
            if norm and _pathish(norm):
                result.refs.append(PathRef(norm, cfg, output, key))
    return result


def _substantial(text: str) -> bool:
    """Whether a package's __init__.py holds anything beyond a docstring and imports (then it is worth editing)."""
    try:
        body = ast.parse(text).body
    except (SyntaxError, ValueError):
        return False
    return any(not isinstance(n, (ast.Import, ast.ImportFrom)) and not (
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)) for n in body)


def _pathish(text: str) -> bool:
    """A string that could be (part of) a path: no spaces, not only wildcards, and some plain characters."""
    if " " in text or len(text) > 200:
        return False
    plain = text.replace("*", "").replace("/", "").replace(".", "")
    return len(plain) >= 2 and not text.startswith("%")


def config_like(path: str) -> bool:
    """A tracked file whose name says it configures (used for `editable` when nothing else reaches it)."""
    return path.endswith(CONFIG_EXT) and bool(_CONFIG_NAME.search(posixpath.basename(path)))
