"""Which files a training command reaches only to measure the model or to provide its data: what `init` protects.

A protected file is hashed around every run and never edited, by any policy: changing how the metric is computed
(the evaluation batch, a clipping epsilon in the score) or which examples it is computed on (the split, the file a
loader reads) would move the number without making the model any better. A file is protected for what its code
does, never for its name or folder (an ``src/data/loader.py`` that builds the model is tuned like any other):

* it is reached from the command (`code_reach`), is not the script the command runs, and trains nothing (no
  ``.backward()``, optimizer ``.step()`` / ``.zero_grad()``, ``.fit()``): a module that trains holds what the
  search tunes, and its evaluation functions are left alone one by one by the policy (`policy/evaluation/`);
* every function and class it defines measures or provides data (helpers that only those call included), and it
  defines at least one (a file that defines none is protected only when its module-level code reads or splits
  data; a file of constants is a config the search may tune):

  - **measures**: a function the printed metric is traced back to (the statement that prints the metric's name,
    the names it prints and what assigns them: `policy.evaluation.metric_functions`); one that calls a metrics
    library (names imported from a ``…metrics`` module, ``torchmetrics``); or one that runs a model without
    gradients (``torch.no_grad()`` / ``inference_mode()``, ``model.eval()``) and returns what it computed;
  - **provides data**: a function that reads a dataset (``np.load``, ``pd.read_csv``, ``open(...)`` for reading,
    ``load_dataset``, a torchvision dataset…) or splits one (``train_test_split``, ``random_split``, a ``KFold``,
    ``train=False``, ``split="test"``), and a dataset class (``__getitem__`` with ``__len__``);
  - anything else (a model, a config class, an optimizer factory) is "other", and one "other" definition keeps
    the file editable: protecting a model file would freeze the architecture the search is there to tune.

Tracked data files (by extension: ``.npz``, ``.csv``, ``.pt``…; ``.txt`` / ``.jsonl`` only when large) are protected
too: they are the data, whatever code reads them.
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import shlex
import tomllib
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import yaml

from nightlab.agent import code_reach
from nightlab.agent.edits import matches_any
from nightlab.agent.policy.config_modules import declarative
from nightlab.agent.policy.edit_guard import evaluation_edits, measurement_only_options
from nightlab.agent.policy.evaluation import (
    SPLIT_CALLS,
    metric_functions,
    names_the_data,
    names_the_measurement,
    parse_python,
    trains,
)
from nightlab.agent.policy.knobs import gin_bindings, ini_settings
from nightlab.agent.task_runners import spacy_scripts

__all__ = ["DATA_EXT", "command_held", "command_measurement_changes", "command_protected_changes",
           "measurement_edits", "protected_files", "protected_keys", "script_measurement_changes"]

DATA_EXT = (".csv", ".tsv", ".npz", ".npy", ".pt", ".pth", ".pkl", ".pickle", ".parquet", ".h5", ".hdf5", ".arrow",
            ".bin", ".idx", ".gz", ".zip", ".tar", ".jsonl", ".txt")
_SMALL_TEXT_BYTES = 100_000  # a .txt / .jsonl this small is more likely notes or a vocabulary than a dataset

_READ_CALLS = frozenset({
    "load", "loadtxt", "genfromtxt", "fromfile", "memmap", "read_csv", "read_table", "read_parquet", "read_json",
    "read_pickle", "read_feather", "read_hdf", "read_excel", "load_dataset", "load_from_disk", "load_svmlight_file",
    "ImageFolder", "DatasetFolder", "imread",
})
_HELD_OUT = frozenset({"test", "val", "valid", "validation", "dev", "eval", "holdout"})
_NO_GRAD = frozenset({"no_grad", "inference_mode"})

MEASURES, DATA, OTHER = "measures", "data", "other"


def measurement_edits(read: Callable[[str], str | None], tracked: list[str], changes: Mapping[str, str],
                      metric: str, protected: Collection[str] = ()) -> list[str]:
    """What of the measurement `changes` would alter, whichever policy wrote them ("path: what"): the evaluation
    functions in editable files (a function that trains nothing and computes the printed metric, or measures without
    gradients, is held as fixed as a protected file: an `estimate_loss` beside nanoGPT's training loop), the
    statements and call sites that measure (`policy.edit_guard.evaluation_edits`), and in a YAML / JSON / TOML
    config the keys that set the measurement (`trainer.limit_val_batches`, `data.val_split`) or that only protected
    code reads (`protected`: the files or globs `init` protects; DVC's `prepare.seed`, which a protected
    prepare.py reads to draw its split). `read` gives a tracked file's text before the change."""
    configs = [p for p in sorted(changes) if p.endswith(_CONFIG_EXT) or posixpath.basename(p) in _YAML_TASK_FILES]
    held = protected_keys(read, tracked, protected) if configs else _nothing_held
    out = [f"{path}: {key} (a setting of the measurement)" for path in configs
           for key in _config_changes(read(path), changes[path], path, held)]
    guarded = [p for p in tracked if matches_any(p, protected)]
    out += [f"{path}: {what}" for path, text in sorted(changes.items()) if not path.endswith(".py")
            for what in _protected_mentions(read(path) or "", text, guarded, set(tracked) - set(guarded))]
    out += [f"{path}: {what}" for path, text in sorted(changes.items()) if not path.endswith(".py")
            for what in _seed_loop_changes(read(path) or "", text)]
    scripts = [p for p in sorted(changes) if p.endswith(_RUNNER_EXT) or posixpath.basename(p) in _TASK_FILES]
    if scripts:  # the command's flags written in a recipe or a script that runs the training
        held_flags = command_held(read, tracked, protected, metric)

        def lines(path: str, text: str) -> str:  # a spaCy project.yml's commands: their `script:` lines
            return spacy_scripts(text) if posixpath.basename(path) == "project.yml" else text
        out += [f"{path}: {key} (a setting of the measurement on a line that runs the program)" for path in scripts
                for key in script_measurement_changes(lines(path, read(path) or ""), lines(path, changes[path]),
                                                      held_flags)]
    if any(p.endswith(".py") for p in changes):
        before = {p: text for p in tracked if p.endswith(".py") and (text := read(p)) is not None}
        out = evaluation_edits(before, changes, metric) + out
    return out


# a shell loop over values (`for SEED in 0 1 2; do`), and a use of its variable as a seed (`--seed $SEED`,
# `--seed=${SEED}`, `SEED=$S python ...`)
_SHELL_LOOP = re.compile(r"^\s*for\s+([A-Za-z_]\w*)\s+in\s+([^;\n]*?)\s*(?:;\s*do\b|\n\s*do\b)", re.MULTILINE)


def _seed_loop_changes(before: str, after: str) -> list[str]:
    """The seeds a shell script runs the training over and then aggregates (`for SEED in 0 1 2; do python train.py
    --seed $SEED; done; python aggregate.py`), where an edit changes them: keeping the lucky one is no improvement."""
    def loops(text: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for m in _SHELL_LOOP.finditer(text):
            var = m.group(1)
            use = rf"\$\{{?{var}\}}?\b"
            if re.search(rf"seed[\w-]*(?:=|\s+)[\"']?{use}", text, re.IGNORECASE) or \
                    re.search(rf"\b\w*SEED\w*={use}", text):
                out[var] = " ".join(m.group(2).split())
        return out

    old, new = loops(before), loops(after)
    return [f"the seeds it runs over (for {var} in {old[var]})" for var in sorted(old) if new.get(var) != old[var]]


_CONFIG_EXT = (".yaml", ".yml", ".json", ".toml", ".gin", ".cfg", ".ini")
_RUNNER_EXT = (".sh", ".bash", ".mk", ".just")  # files whose lines run the program with its flags
_TASK_FILES = frozenset({"Makefile", "makefile", "GNUmakefile", "justfile", "Justfile", "tox.ini", "Taskfile",
                         "project.yml"})
_YAML_TASK_FILES = frozenset({"MLproject"})  # YAML without the extension: its parameters' defaults are settings


def _config_leaves(text: str | None, path: str) -> dict[str, str] | None:
    """{dotted key: value as text} of a config file; None when it does not parse (the run will say so)."""
    if text is None:
        return {}
    if path.endswith(".gin"):  # gin-config: `train.val_fraction = 0.2`
        return {".".join(str(p) for p in leaf.path): repr(leaf.value) for leaf in gin_bindings(text)}
    if path.endswith((".cfg", ".ini")):  # configparser, spaCy's config.cfg: `[paths]` then `dev = "corpus/dev.spacy"`
        return {".".join(str(p) for p in leaf.path): repr(leaf.value) for leaf in ini_settings(text)}
    try:
        if path.endswith(".toml"):
            docs: list[Any] = [tomllib.loads(text)]
        elif path.endswith(".json"):
            docs = [json.loads(text)]
        else:
            docs = list(yaml.safe_load_all(text))
    except (ValueError, yaml.YAMLError):
        return None
    out: dict[str, str] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list) and any(isinstance(x, dict | list) for x in node):
            for i, v in enumerate(node):
                walk(v, f"{key}.{i}")
        else:
            out[key] = repr(node)

    for i, doc in enumerate(docs):
        walk(doc, f"{i}." if i and len(docs) > 1 else "")
    return out


def _config_changes(before: str | None, after: str, path: str,
                    held: Callable[[str], bool] = lambda key: False) -> list[str]:
    """Keys of a config whose name sets the measurement (`names_the_measurement`), names the data by a string
    (`dataset: cifar10`, `names_the_data`) or that `held` says only protected code reads, and whose value `after`
    adds, changes or removes."""
    old, new = _config_leaves(before, path), _config_leaves(after, path)
    if old is None or new is None:
        return []
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and (names_the_measurement(k) or (
        names_the_data(k) and any(str(v).startswith(("'", '"')) for v in (old.get(k), new.get(k)))) or held(k)
        or any(v is not None and v[:1] in "'\"" and names_a_part(v[1:-1]) for v in (old.get(k), new.get(k)))))


def names_a_part(value: str) -> bool:
    """Whether a setting's value is the path of one part of the data, by its file's stem (`corpus/dev.spacy`,
    `data/test.jsonl`, `train.csv`): a key or flag whose value moves between parts (spaCy's `[paths] dev`,
    `--paths.dev corpus/test.spacy`) changes what is trained on or measured, whatever it is called."""
    if not _PATH_WORD.fullmatch(value):
        return False
    names = posixpath.basename(value).lower().split(".")
    ext = names[-1] if len(names) > 1 else ""
    if not ext or ext in _NOT_DATA_EXT or ("/" not in value and ext not in _DATA_EXT):
        # a folder (`--output_dir runs/test`), a config or a script (`configs/train.yaml`), or no path at all
        # (`-S train.seed=7`)
        return False
    # the part's name is the stem (`dev.spacy`) or fastText's extension (`data/cooking.valid`)
    return any(n in _HELD_OUT or n == "train" for n in (names[:-1] if ext in _DATA_EXT else names))


_PATH_WORD = re.compile(r"[\w./~+-]+")
_NOT_DATA_EXT = frozenset({"py", "yaml", "yml", "toml", "cfg", "ini", "gin", "sh", "jsonnet", "md", "log"})
_DATA_EXT = frozenset({"csv", "tsv", "json", "jsonl", "txt", "parquet", "spacy", "npy", "npz", "pt", "pkl", "h5",
                       "hdf5", "arrow", "tfrecord", "conll", "conllu", "iob", "feather", "bin", "gz", "zip", "tar"})


def _protected_mentions(before: str, after: str, guarded: Collection[str], free: Collection[str] = ()) -> list[str]:
    """What a changed Makefile, justfile, shell script, dvc.yaml or config does differently to the protected files
    it names: a line that runs a protected script (a recipe's or a stage's `python src/evaluate.py model.pkl
    data/prepared`) must stay as it is, letter for letter, and none may be added or dropped (the script's own
    arguments decide what it measures; a line that replaces it can print any number); elsewhere, the protected data
    files it names stay the ones it names (`--data data/train.csv` may not become `data/test.csv`), while the other
    words on those lines (`--lr 0.1`) stay free. A word is matched to a file by its path, or its tail (`cd src &&
    python evaluate.py`), unless it is the path of a `free` (unprotected) file itself."""
    scripts = [g for g in guarded if g.endswith(_SCRIPT_EXT)]

    def names(word: str, among: Collection[str]) -> str | None:
        word = word.strip("'\"`()[]{},;").removeprefix("./")
        if not word or word.startswith("-") or not ("." in word or "/" in word) or word in free:
            return None
        return next((g for g in among if g == word or g.endswith("/" + word) or word.endswith("/" + g)), None)

    def mentions(text: str) -> tuple[Counter[str], Counter[str]]:
        runs: Counter[str] = Counter()
        data: Counter[str] = Counter()
        # each command of a line on its own: `python train.py --lr 0.1 && python evaluate.py --split test` holds
        # the evaluation, not the training's flags beside it
        for line in (part for ln in text.splitlines() for part in _COMMAND_SEPARATOR.split(ln)):
            words = re.split(r"[\s=:]+", line.split("#", 1)[0] if not line.lstrip().startswith("#!") else "")
            script = next((g for w in words if (g := names(w, scripts))), None)
            if script is not None:
                runs[f"{script}\0{' '.join(line.split())}"] += 1
            else:
                data.update(g for w in words if (g := names(w, guarded)))
        return runs, data

    old_runs, old_data = mentions(before)
    new_runs, new_data = mentions(after)
    out = {f"how it runs {k.split(chr(0))[0]} (protected)" for k in (old_runs - new_runs) + (new_runs - old_runs)}
    out |= {f"the protected {k} it names" for k in (old_data - new_data) + (new_data - old_data)}
    return sorted(out)


_SCRIPT_EXT = (".py", ".sh", ".R", ".jl", ".ipynb")
_COMMAND_SEPARATOR = re.compile(r"\s*(?:&&|\|\||;|\|)\s*")


def command_protected_changes(before: str | None, after: str | None, tracked: Collection[str],
                              protected: Collection[str]) -> list[str]:
    """How a changed command runs the protected scripts it runs (`... && python evaluate.py --split test`: the
    evaluation's own arguments decide what it measures, so a `--limit 500` added there is refused) and which
    protected data files it names; see `_protected_mentions`."""
    guarded = [p for p in tracked if matches_any(p, protected)]
    if not guarded:
        return []
    return _protected_mentions(before or "", after or "", guarded, set(tracked) - set(guarded))


def _nothing_held(key: str) -> bool:
    """No key is held: nothing is protected, or no config changed."""
    return False


def protected_keys(read: Callable[[str], str | None], tracked: Collection[str],
                   protected: Collection[str]) -> Callable[[str], bool]:
    """Whether a config key (dotted, `prepare.seed`; a DVC `params.yaml:` prefix ignored) is read only by protected
    code: a protected Python file reads every part of it as a dict key (`yaml.safe_load(f)["prepare"]`, then
    `params["seed"]`) and no other tracked Python file names its section (`["prepare"]`, `cfg.prepare`), so the
    training code never sees it and changing it changes only what measures or splits the data. A top-level key
    needs no section: any other file that names it (or its own `seed`, as a key or an attribute) keeps it free."""
    if not protected:
        return _nothing_held
    sources = {p: t for p in tracked if p.endswith(".py") and (t := parse_python(read(p) or "")) is not None}
    guarded = [_keys_named(t, attributes=False) for p, t in sources.items() if matches_any(p, protected)]
    free = [_keys_named(t, attributes=True) for p, t in sources.items() if not matches_any(p, protected)]

    def held(key: str) -> bool:
        parts = [k for k in key.rsplit(":", 1)[-1].split(".") if k]
        section = parts[:-1] or parts
        return bool(parts) and any(set(parts) <= names for names in guarded) and \
            not any(set(section) <= names for names in free)
    return held


def command_held(read: Callable[[str], str | None], tracked: Collection[str], protected: Collection[str],
                 metric: str) -> Callable[[str], bool]:
    """Whether a setting given on the command line is held although its name does not say it measures: a config
    key only protected code reads (`protected_keys`), or an option only the measurement reads (`--threshold` of a
    typer command whose `threshold` nothing but the evaluation uses: `edit_guard.measurement_only_options`)."""
    keys = protected_keys(read, tracked, protected)
    sources = {p: text for p in tracked if p.endswith(".py") and (text := read(p)) is not None}
    options = measurement_only_options(sources, metric)
    return lambda key: keys(key) or key.lstrip("-").replace("-", "_") in options


def _keys_named(tree: ast.Module, attributes: bool) -> set[str]:
    """The strings a file reads a dict by (`d["seed"]`, `d.get("seed")`), and with `attributes` the attribute names
    it reads (`cfg.prepare.seed`)."""
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, str):
            out.add(n.slice.value)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get" and n.args and \
                isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str):
            out.add(n.args[0].value)
        elif attributes and isinstance(n, ast.Attribute):
            out.add(n.attr)
    return out


def command_measurement_changes(before: str | None, after: str | None,
                                held: Callable[[str], bool] = lambda key: False) -> list[str]:
    """The measurement settings a changed command line sets differently (`--val_fraction 0.01`,
    `trainer.limit_val_batches=0.1`, `--eval-iters=5`, yacs' `TEST.DETECTIONS_PER_IMAGE 300`): flags, Hydra overrides
    and yacs keys whose name says they decide the measurement, or that `held` (`protected_keys`) says only protected
    code reads (`dvc exp run -S prepare.seed=1`), added, changed or removed. A command that does not parse as words
    says nothing here."""
    old, new = _flags(before, held), _flags(after, held)
    if old is None or new is None:
        return []
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if not changed:  # a data part's path given as a word of its own (`spacy evaluate model corpus/test.spacy`)
        was, now = _part_words(before), _part_words(after)
        changed = sorted(f"the data part {w}" for w in (was - now) + (now - was))
    return changed


def _part_words(cmd: str | None) -> Counter[str]:
    """The words of a command that are a data part's path and no flag's `name=value` (`names_a_part`)."""
    try:
        words = shlex.split(cmd or "")
    except ValueError:
        return Counter()
    return Counter(w for w in words if not w.startswith("-") and "=" not in w and names_a_part(w))


def _flags(cmd: str | None, held: Callable[[str], bool]) -> dict[str, list[str]] | None:
    """The measurement settings a command line gives, {key: values}; None when it does not parse as words."""
    try:
        words = shlex.split(cmd or "")
    except ValueError:
        return None
    out: dict[str, list[str]] = {}
    for i, w in enumerate(words):
        if w.startswith("-") and not _NUMBER.fullmatch(w):
            name, eq, value = w.lstrip("-").partition("=")
            if not eq:
                nxt = words[i + 1] if i + 1 < len(words) else ""
                value = nxt if nxt and (not nxt.startswith("-") or _NUMBER.fullmatch(nxt)) else "<set>"
        elif "=" in w and not w.startswith("="):
            name, _, value = w.lstrip("+~").partition("=")
        elif _CFG_NODE_KEY.fullmatch(w) and i + 1 < len(words):
            name, value = w, words[i + 1]  # yacs' `DATASETS.TEST "('coco_train',)"` (`merge_from_list(opts)`)
        else:
            continue
        settings = [(name, value)]
        if _BINDING.fullmatch(value):  # gin's `--gin_bindings='train.val_fraction=0.02'`: a setting inside
            inner, _, inner_value = value.partition("=")
            settings.append((inner, inner_value))
        if name in _KEY_VALUE_FLAGS and i + 2 < len(words) and "=" not in value:
            settings.append((words[i + 1], words[i + 2]))  # papermill's `-p val_size 500`
        for key, val in settings:
            if names_the_measurement(key) or (names_the_data(key) and not _NUMBER.fullmatch(val)) or held(key) or \
                    names_a_part(val):
                out.setdefault(key.replace("-", "_"), []).append(val)
    return out


def script_measurement_changes(before: str, after: str, held: Callable[[str], bool] = lambda key: False) -> list[str]:
    """`command_measurement_changes` over the lines of a script or task file that runs the training (a Makefile
    recipe's `$(PY) -m src.train --lr $(LR) --val-frac 0.05`, a train.sh): the command's flags are written there."""
    def lines(text: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for line in text.replace("\\\n", " ").splitlines():
            for key, values in (_flags(line, held) or {}).items():
                out.setdefault(key, []).extend(values)
            for key, value in _part_lines(line):
                out.setdefault(key, []).append(value)
        return out

    old, new = lines(before), lines(after)
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _part_lines(line: str) -> list[tuple[str, str]]:
    """What a script line does with the parts of the data, as (key, what must stay): a text tool that writes a part
    (`head -n 12404 data/all.txt > data/cooking.train`, `tail -n 3000 ... > data/cooking.valid`: the split) is held
    letter for letter; one that reads a held-out part as a word of its own (`fasttext test model.bin
    data/cooking.valid`) is an evaluation, its words held in order (a `1 0.5` added after them scores only confident
    predictions; the part swapped for `cooking.train` scores the training data), its flags free."""
    out: list[tuple[str, str]] = []
    for part in _COMMAND_SEPARATOR.split(line.split(" #", 1)[0]):
        try:
            words = shlex.split(part)
        except ValueError:
            continue
        for i, w in enumerate(words[:-1]):
            if w in (">", ">>") and words[0] in _TEXT_TOOLS and names_a_part(words[i + 1]):
                out.append((f"the line that writes {words[i + 1]}", " ".join(words)))
        if any(w in (">", ">>") for w in words):
            continue
        plain = [w for i, w in enumerate(words) if not w.startswith("-") and "=" not in w and
                 not (i and words[i - 1].startswith("-") and "=" not in words[i - 1])]
        held_out = [w for w in plain if names_a_part(w) and not _training_part(w)]
        if held_out:
            out.append((f"the evaluation of {held_out[0]}", " ".join(plain)))
    return out


# the shell's text tools a split is cut with (`head -n 12404 all.txt > train.txt`); a program whose output is
# written to a part-named file (`python train.py --lr 0.1 > out/train.txt`) keeps its flags free
_TEXT_TOOLS = frozenset({"head", "tail", "sed", "awk", "gawk", "cut", "shuf", "sort", "grep", "cat", "tr", "paste",
                         "split", "uniq", "perl"})


def _training_part(word: str) -> bool:
    return "train" in posixpath.basename(word).lower().split(".")


_NUMBER = re.compile(r"-?\d+(\.\d*)?([eE]-?\d+)?")
_BINDING = re.compile(r"[A-Za-z_][\w.\-/]*=.+")  # `key=value` as a flag's value
_KEY_VALUE_FLAGS = frozenset({"p", "parameters"})  # papermill's `-p name value`
_CFG_NODE_KEY = re.compile(r"[A-Z][A-Z0-9_]*(?:\.[A-Z][A-Z0-9_]*)+")  # a yacs key as a bare word: `SOLVER.BASE_LR`


def protected_files(root: str, tracked: list[str], reached: code_reach.Reach, metric: str | None = None,
                    read: Callable[[str], str] | None = None,
                    size: Callable[[str], int] | None = None) -> dict[str, str]:
    """{path: why} for the files `init` protects (see the module docstring). `read` and `size` default to the
    files under `root`."""
    def _read(p: str) -> str:
        try:
            with open(posixpath.join(root, p), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _size(p: str) -> int:
        try:
            return os.path.getsize(posixpath.join(root, p))
        except OSError:
            return 0

    read = read or _read
    size = size or _size
    out: dict[str, str] = {}
    py = {p: read(p) for p in reached.files if p.endswith(".py")}
    traced = metric_functions(py, metric) if metric else set()
    trees = {p: t for p, text in py.items() if (t := parse_python(text)) is not None}
    for p, tree in trees.items():
        if p == reached.entry:
            continue
        why = _measuring_file(p, tree, traced, trees)
        if why:
            out[p] = why
    for p in tracked:
        if p.endswith(DATA_EXT) and p not in out and (not p.endswith((".txt", ".jsonl"))
                                                       or size(p) > _SMALL_TEXT_BYTES):
            out[p] = f"a data file ({posixpath.splitext(p)[1]})"
    return out


def _measuring_file(path: str, tree: ast.Module, traced: set[str], trees: Mapping[str, ast.Module]) -> str:
    """Why `path` only measures or provides data, or "" when it trains or defines anything else."""
    if trains(tree):
        return ""
    metric_names = _metrics_library_names(tree)
    roles: dict[str, str] = {}
    defs: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defs[node.name] = node
            roles[node.name] = _role(node, traced, metric_names)
    # a config module (`val_dataloader = dict(dataset=dict(split="test"))`) reads nothing: it is guarded key by key
    # (`policy.config_modules`), not frozen whole with the training pipeline beside its evaluation keys
    module_data = not declarative(tree) and any(
        _reads_or_splits(st) for st in tree.body
        if not isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))
    helpers = _absorb_helpers(path, roles, defs, trees)
    if any(r == OTHER for r in roles.values()):
        return ""
    measures = sorted(n for n, r in roles.items() if r == MEASURES and n not in helpers)
    data = sorted(n for n, r in roles.items() if r == DATA and n not in helpers)
    if measures:
        how = "computes the metric" if any(n in traced for n in measures) else "measures the model"
        return f"{how} ({', '.join(measures[:3])}) and trains nothing"
    if data or module_data:
        named = f" ({', '.join(data[:3])})" if data else ""
        return f"provides the data{named} and trains nothing"
    return ""


def _role(node: ast.AST, traced: set[str], metric_names: set[str]) -> str:
    name = getattr(node, "name", "")
    if isinstance(node, ast.ClassDef):
        methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        return DATA if {"__getitem__", "__len__"} <= methods and "forward" not in methods else OTHER
    if name in traced or _calls_any(node, metric_names) or _evaluates_without_gradients(node):
        return MEASURES
    if _augments(node):  # training augmentation is a lever (its strength, its kind): the file is not frozen whole
        return OTHER
    if _reads_or_splits(node):
        return DATA
    return OTHER


# torchvision / timm / albumentations augmentations (`Random*` classes that are no sampler or generator too)
_AUGMENT_CALLS = frozenset({"ColorJitter", "RandAugment", "TrivialAugmentWide", "AutoAugment", "AugMix", "GaussianBlur",
                            "Mixup", "CutMix", "MixUp", "ElasticTransform", "HueSaturationValue", "CoarseDropout",
                            "ShiftScaleRotate", "RandomBrightnessContrast"})
_NOT_AUGMENT = frozenset({"RandomSampler", "RandomState", "RandomSplit", "RandomGenerator"})


def _augments(node: ast.AST) -> bool:
    """Whether a definition builds data augmentation (`RandomCrop`, `ColorJitter`, `RandAugment`, ...)."""
    return any(name in _AUGMENT_CALLS or (name.startswith("Random") and name[6:7].isupper()
                                          and name not in _NOT_AUGMENT) for name, _ in _calls(node))


def _absorb_helpers(path: str, roles: dict[str, str], defs: Mapping[str, ast.AST],
                    trees: Mapping[str, ast.Module]) -> set[str]:
    """An "other" definition that only this file's measuring or data code uses (a normaliser, a batch collator)
    takes their role: it is part of them. Returns the names of those helpers."""
    absorbed: set[str] = set()
    elsewhere: set[str] = set()
    for p, tree in trees.items():
        if p != path:
            elsewhere |= _used_names(tree)
    changed = True
    while changed:
        changed = False
        for name, role in list(roles.items()):
            if role != OTHER or name in elsewhere or _augments(defs[name]):
                continue
            users = [n for n, d in defs.items() if n != name and name in _used_names(d)]
            if users and all(roles[u] != OTHER for u in users) and not _used_at_module_level(name, path, trees):
                roles[name] = roles[users[0]]
                absorbed.add(name)
                changed = True
    return absorbed


def _used_at_module_level(name: str, path: str, trees: Mapping[str, ast.Module]) -> bool:
    tree = trees[path]
    return any(name in _used_names(st) for st in tree.body
               if not isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Import
                                 | ast.ImportFrom))


def _used_names(node: ast.AST) -> set[str]:
    out: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Attribute):
            out.add(n.attr)
        elif isinstance(n, ast.alias):
            out.add((n.asname or n.name).split(".")[-1])
    return out


def _calls(node: ast.AST) -> Iterator[tuple[str, ast.Call]]:
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            if isinstance(f, ast.Name):
                yield f.id, n
            elif isinstance(f, ast.Attribute):
                yield f.attr, n


def _calls_any(node: ast.AST, names: set[str]) -> bool:
    return bool(names) and any(name in names for name, _ in _calls(node))


def _metrics_library_names(tree: ast.Module) -> set[str]:
    """Names a file imports from a metrics library (``from sklearn.metrics import f1_score``), plus the functions
    it calls on such a module (``metrics.accuracy_score``, ``torchmetrics.Accuracy``)."""
    out: set[str] = set()
    modules: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module and _is_metrics_module(n.module):
            out |= {a.asname or a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and any(a.name == "metrics" for a in n.names):
            modules |= {a.asname or a.name for a in n.names if a.name == "metrics"}
        elif isinstance(n, ast.Import):
            modules |= {a.asname or a.name for a in n.names if _is_metrics_module(a.name)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            base = n.func.value
            dotted = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
            if dotted in modules or (dotted and _is_metrics_module(dotted)):
                out.add(n.func.attr)
    return out


def _is_metrics_module(name: str) -> bool:
    parts = name.split(".")
    return parts[-1] == "metrics" or parts[0] == "torchmetrics"


def _evaluates_without_gradients(fn: ast.AST) -> bool:
    """Runs a model without gradients and returns what it computed."""
    no_grad = False
    for n in ast.walk(fn):
        if isinstance(n, ast.With | ast.AsyncWith):
            no_grad |= any(isinstance(i.context_expr, ast.Call) and _callee(i.context_expr) in _NO_GRAD
                           for i in n.items)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "eval" and not n.args:
            no_grad = True
    if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
        no_grad |= any(_callee(d) in _NO_GRAD for d in fn.decorator_list)
    returns = any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(fn))
    return no_grad and returns


def _callee(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


_CONFIG_PARSE = frozenset({"exec", "safe_load", "full_load", "loads", "read_string", "OmegaConf"})


def _reads_or_splits(node: ast.AST) -> bool:
    calls = list(_calls(node))
    # a file opened to be exec'd or parsed as a config (`exec(open(p).read())`, `yaml.safe_load(f)`) is no dataset
    configs = any(name in _CONFIG_PARSE or (name == "load" and _loads_a_config(call)) for name, call in calls)
    for name, call in calls:
        if name in SPLIT_CALLS:
            return True
        if name in _READ_CALLS and not (name == "load" and _loads_a_config(call)):
            return True
        if name == "open" and not configs and _open_for_reading(call):
            return True
        for kw in call.keywords:
            v = kw.value
            if kw.arg == "train" and isinstance(v, ast.Constant) and v.value is False:
                return True
            if kw.arg == "split" and isinstance(v, ast.Constant) and isinstance(v.value, str) \
                    and v.value.split("[")[0].lower() in _HELD_OUT:
                return True
    return False


def _loads_a_config(call: ast.Call) -> bool:
    """``json.load(f)``, ``yaml.load(f)``, ``tomllib.load(f)``: a config is read, not a dataset."""
    f = call.func
    base = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
    return base in ("json", "yaml", "toml", "tomllib", "tomli")


def _open_for_reading(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        return True
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and not set(mode.value) & set("wax+")
