"""Task runners a launch command goes through: `make train`, `just train`, `tox -e train`, `dvc repro`, `mlflow run`.

The command a person types is often not the Python command that trains. `make train` runs the recipe of the
Makefile's `train` target with `$(LR)` filled in from `LR ?= 3e-4` (or from `make train LR=1e-3`); `just train`
runs a justfile recipe with `{{lr}}` filled in; `tox -e train` runs the `commands` of `[testenv:train]`. nightlab
reads that recipe the way the runner would, so that entry detection (`code_reach`) and the effective-value analysis
(`policy.commandline`, `policy.effective`) see the python command inside it. A recipe keeps its file's text and the
character spans of its command lines, and a variable keeps the span of the literal that defines it, so a value can
be edited where it is written (at `LR ?= 3e-4`, not at the `$(LR)` that uses it).

`dvc repro [STAGE]` / `dvc exp run [STAGE] [-S key=value]` run the `cmd:` of the stages in dvc.yaml: the named
stage and the stages whose outputs it depends on (all stages when none is named), upstream ones first, each in its
`wdir`; that is one recipe whose lines are the stages' commands in the order DVC runs them (like `python prepare.py
&& python train.py && python evaluate.py`). `-S train.n_est=100` (`--set-param`) sets a key of params.yaml for the
run: a `Setting` of the recipe, which the command line holds. DVC's templating (`vars:`, `${…}`, `foreach:`,
`matrix:`) is not read: such a stage's command is left as written.

`mlflow run . [-e ENTRY] [-P alpha=0.3]` runs the `command:` of an entry point in the MLproject file, with its
`{alpha}` filled in from `-P` or from the parameter's `default:` — variables as make's are, edited where written.

`spacy project run NAME [DIR] [--vars.key value]` runs the `script:` lines of the command NAME in project.yml (of each
command of the workflow NAME, in order), with its `${vars.key}` filled in from `--vars.key` on the command line, else
from `vars:` (edited where it is written).

Only the simple variable forms are read (make's `VAR = v`, `?=`, `:=`, `$(VAR)`, `${VAR}`; just's `name := "v"`,
recipe parameters and `{{name}}`; tox's `{posargs}`); anything else (`$(shell …)`, just expressions) is left as
written. Nothing here runs anything.

The rooms: `recipe` (a recipe, its variables and settings, and the readers every runner shares), one module a
runner (`make`, `just`, `tox`, `dvc`, `mlflow`, `spacy`); this module says which runner a command's words start.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence

from nightlab.agent.task_runners.dvc import _dvc
from nightlab.agent.task_runners.just import _JUSTFILES, _just
from nightlab.agent.task_runners.make import _MAKEFILES, _make
from nightlab.agent.task_runners.mlflow import _mlflow
from nightlab.agent.task_runners.recipe import COMMAND_WORD, Recipe, Setting, Variable
from nightlab.agent.task_runners.spacy import _SPACY_PROJECT, _spacy, spacy_scripts
from nightlab.agent.task_runners.tox import _tox

__all__ = ["COMMAND_WORD", "MODULE_RUNNERS", "TASK_FILES", "Recipe", "Setting", "Variable", "recipes_for",
           "spacy_scripts"]

TASK_FILES = frozenset({*_MAKEFILES, *_JUSTFILES, "tox.ini", "MLproject", _SPACY_PROJECT})
# Python modules that are task runners with this subcommand (`python -m spacy project run train`): no program of
# their own to analyse, but a recipe to read
MODULE_RUNNERS: dict[str, str] = {"spacy": "project"}

_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def recipes_for(words: Sequence[str], read: Callable[[str], str], exists: Callable[[str], bool],
                cwd: str = "") -> list[Recipe]:
    """The recipes a command segment's words run, the named target's first and then the targets it depends on
    (a caller uses the first that runs Python: `train: data` whose own recipe is empty runs `data`'s); [] when the
    segment runs no task runner nightlab reads or its task file is missing. `cwd` is where the segment runs."""
    at = 0
    while at < len(words) and _ENV.match(words[at]):
        at += 1
    if at >= len(words):
        return []
    program = posixpath.basename(words[at])
    env = {w.split("=", 1)[0]: (w.split("=", 1)[1], i) for i, w in enumerate(words[:at])}
    if program in ("make", "gmake"):
        return _make(list(words), at + 1, env, read, exists, cwd)
    if program == "just":
        return _just(list(words), at + 1, env, read, exists, cwd)
    if program == "tox":
        return _tox(list(words), at + 1, read, exists, cwd)
    if program == "dvc":
        return _dvc(list(words), at + 1, read, exists, cwd)
    if program == "mlflow":
        return _mlflow(list(words), at + 1, read, exists, cwd)
    if program in ("python", "python3") and at + 3 < len(words) and words[at + 1] == "-m" and \
            MODULE_RUNNERS.get(words[at + 2]) == words[at + 3]:
        at, program = at + 2, words[at + 2]
    if program == "spacy":
        return _spacy(list(words), at + 1, read, exists, cwd)
    return []
