"""Launch commands as repositories write them, and what nightlab reads from each: the entry `init` finds (and the
files it makes editable), where each setting's effective value lives, and the command it writes back.

The shapes come from a probe of real launch commands (redirections around the run, interpreter options before
`-m`, `PYTHONPATH`, `uv run` / `poetry run` and console scripts, `make` / `just` / `tox` recipes, `cd sub &&`);
each test writes a small repository of that shape itself, with git where `init`'s reading needs it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nightlab.agent import code_reach, project_init
from nightlab.agent.policy import effective as eff
from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.builtin import BuiltinPolicy
from nightlab.agent.policy.commandline import parse_command

from helpers import analysed as _program
from helpers import tracked_repo as _repo

TRAIN = '''\
import argparse

from model import Net

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--batch_size", type=int, default=32)
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--weight_decay", type=float, default=0.0)
p.add_argument("--hidden", type=int, default=128)
args = p.parse_args()
net = Net(args.hidden)
for epoch in range(args.epochs):
    loss = net.step(args.lr, args.batch_size, args.weight_decay)
    loss.backward()
print(f"val_loss {loss:.4f}")
'''

MODEL = '''\
class Net:
    def __init__(self, hidden, dropout=0.1):
        self.hidden = hidden
        self.dropout = dropout
'''

BASE = {"train.py": TRAIN, "model.py": MODEL}


def _cli(program: eff.Program) -> dict[str, knobmod.Knob]:
    return {k.name: k for k in eff.cli_knobs(program)}


def _parses(command: str) -> bool:
    """Whether bash reads `command` without a syntax error (nothing runs: `bash -n`)."""
    return subprocess.run(["bash", "-n", "-c", command], capture_output=True).returncode == 0


def _editable(root: Path, tracked: list[str], command: str) -> dict[str, str]:
    reached = code_reach.reach(root, tracked, command)
    return project_init.editable_files(root, tracked, reached, [])


# ------------------------------------------------------------------------------------------- W16: redirections


@pytest.mark.parametrize(("command", "expected"), [
    ("python train.py --lr 0.01 2>&1 | tee train.log",
     "python train.py --lr 0.01 --batch_size=64 2>&1 | tee train.log"),
    ("nohup python train.py --lr 0.01 > train.log 2>&1 &",
     "nohup python train.py --lr 0.01 --batch_size=64 > train.log 2>&1 &"),
    ("python train.py --lr 0.01 >log.txt", "python train.py --lr 0.01 --batch_size=64 >log.txt"),
    ("python train.py --lr 0.01 2>err.txt", "python train.py --lr 0.01 --batch_size=64 2>err.txt"),
    ("python train.py --lr 0.01 &> train.log", "python train.py --lr 0.01 --batch_size=64 &> train.log"),
    ("python train.py --lr 0.01 >> logs/out.txt", "python train.py --lr 0.01 --batch_size=64 >> logs/out.txt"),
    ("python train.py --lr 0.01 | tee train.log", "python train.py --lr 0.01 --batch_size=64 | tee train.log"),
    ("python train.py > train.log 2>&1", "python train.py --batch_size=64 > train.log 2>&1"),
])
def test_a_setting_moved_to_the_command_lands_in_python_s_arguments_before_any_redirection(
        command: str, expected: str) -> None:
    """A setting moved to the command line (its file not editable, or a run showed "no effect") is appended to the
    python command. `2>&1` had been split at its `&`, so `--batch_size=64` landed inside the redirection: stderr
    went to a file named `--batch_size=64`, the run went to the background and a command `1` ran."""
    program = _program(BASE, command)
    assert program.invocation is not None and program.invocation.entry == "train.py"
    default = {k.name: k for k in knobmod.discover_files(dict(BASE))}["--batch_size"]
    virtual = eff.virtual_cli_knob(program, default)
    assert virtual is not None
    new = eff.rewrite_cli(command, virtual, 64, program)
    assert new == expected
    assert _parses(new)
    again = _program(BASE, new)
    assert again.invocation is not None
    assert [(a.name, a.value) for a in again.invocation.args][-1] == ("--batch_size", 64)
    # an in-place rewrite still works, and the redirection's words are no arguments
    if "--lr" in command:
        assert _parses(eff.rewrite_cli(command, _cli(program)["command:--lr"], 0.02, program))
    assert not {"1", "train.log", "log.txt", "err.txt", "logs/out.txt"} & {str(a.value) for a in
                                                                         program.invocation.args}


def test_an_option_before_a_redirection_takes_no_redirection_as_its_value() -> None:
    """`--verbose > log`: the switch is a switch, `>` and `log` are the shell's."""
    inv = parse_command("python train.py --verbose > train.log 2>&1", lambda p: p in BASE)
    assert inv is not None
    assert [(a.name, a.style) for a in inv.args] == [("--verbose", "switch")]


def test_a_flag_appended_in_a_shell_script_goes_before_its_redirection() -> None:
    files = {**BASE, "run.sh": "#!/bin/bash\nset -e\npython train.py --epochs 2 > logs/train.log 2>&1\necho done\n"}
    program = _program(files, "bash run.sh")
    assert program.invocation is not None and program.invocation.source == "run.sh"
    default = {k.name: k for k in knobmod.discover_files(dict(BASE))}["--batch_size"]
    virtual = eff.virtual_cli_knob(program, default)
    assert virtual is not None and virtual.path == "run.sh"
    new = eff.rewrite_cli(files["run.sh"], virtual, 64, program)
    assert "python train.py --epochs 2 --batch_size=64 > logs/train.log 2>&1\n" in new
    assert _parses(new)


# ------------------------------------------------------------------------------------------- W14: -u before -m

PKG_MAIN = TRAIN.replace("from model import Net", "from trainer.model import Net")


@pytest.mark.parametrize("command", ["python3 -u -m trainer --epochs=3", "python -O -B -m trainer --epochs 3",
                                     "python -X dev -W ignore -u -m trainer --epochs 3",
                                     "python -W ignore::UserWarning -m trainer --epochs 3"])
def test_interpreter_options_before_dash_m_still_find_the_package(tmp_path: Path, command: str) -> None:
    """`python3 -u -m trainer`: init had found no entry (only the word right before `-m` was checked) and made
    every tracked .py file editable."""
    files = {"trainer/__init__.py": "", "trainer/__main__.py": PKG_MAIN, "trainer/model.py": MODEL,
             "tools/plot.py": "print('plot')\n"}
    tracked = _repo(tmp_path, files)
    reached = code_reach.reach(tmp_path, tracked, command)
    assert reached.entry == "trainer/__main__.py"
    assert set(_editable(tmp_path, tracked, command)) == {"trainer/__main__.py", "trainer/model.py"}
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert "overridden by --epochs" in knobs["--epochs"].why_not
    assert knobs["command:--epochs"].value == 3


# ------------------------------------------------------------------------------------------- W15: PYTHONPATH

LIB_TRAIN = TRAIN.replace("from model import Net", "from mypkg.model import Net")


@pytest.mark.parametrize("command", [
    "PYTHONPATH=lib python -m mypkg.train --lr 0.01",
    "PYTHONPATH=vendor:lib python -m mypkg.train --lr 0.01",
    "PYTHONPATH=.:lib:$PYTHONPATH python -m mypkg.train --lr 0.01",
    "env PYTHONPATH=$PWD/lib python -m mypkg.train --lr 0.01",
    "export PYTHONPATH=lib && python -m mypkg.train --lr 0.01",
])
def test_a_module_is_found_under_the_folders_pythonpath_names(tmp_path: Path, command: str) -> None:
    """`PYTHONPATH=lib python -m mypkg.train`: only `src` had been tried, so there was no entry, and `exp/train.py`
    (not run) had its defaults searched."""
    files = {"lib/mypkg/__init__.py": "", "lib/mypkg/train.py": LIB_TRAIN, "lib/mypkg/model.py": MODEL,
             "vendor/other.py": "", "exp/train.py": TRAIN, "exp/model.py": MODEL}
    tracked = _repo(tmp_path, files)
    assert code_reach.reach(tmp_path, tracked, command).entry == "lib/mypkg/train.py"
    assert set(_editable(tmp_path, tracked, command)) == {"lib/mypkg/train.py", "lib/mypkg/model.py"}
    program = _program(files, command)
    assert program.invocation is not None and program.invocation.entry == "lib/mypkg/train.py"
    assert program.run_files is not None and "lib/mypkg/model.py" in program.run_files
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert "overridden by --lr on the command line" in knobs["lib/mypkg/train.py:--lr"].why_not
    assert knobs["command:--lr"].searchable
    assert "not run" in knobs["exp/train.py:--lr"].why_not


# ------------------------------------------------------------------------------------------- W6/W7: runners

CLI = TRAIN.replace("from model import Net", "from proj.model import Net")
UV = {**BASE, "pyproject.toml": '[project]\nname = "proj"\nversion = "0.1"\n\n[project.scripts]\n'
                                'mytrain = "proj.cli:main"\n',
      "src/proj/__init__.py": "", "src/proj/cli.py": CLI, "src/proj/model.py": MODEL}
POETRY = {**BASE, "pyproject.toml": '[tool.poetry]\nname = "proj"\nversion = "0.1"\n\n[tool.poetry.scripts]\n'
                                    'mytrain = "proj.cli:main"\n',
          "proj/__init__.py": "", "proj/cli.py": CLI, "proj/model.py": MODEL}


@pytest.mark.parametrize(("files", "command", "entry"), [
    (UV, "uv run -m proj.cli --lr 3e-4", "src/proj/cli.py"),
    (UV, "uv run python -m proj.cli --lr 3e-4", "src/proj/cli.py"),
    (UV, "uv run --extra cpu -m proj.cli --lr 3e-4", "src/proj/cli.py"),
    (UV, "uv run mytrain --lr 3e-4", "src/proj/cli.py"),
    (UV, "uv run --with torch --frozen mytrain --lr 3e-4", "src/proj/cli.py"),
    (POETRY, "poetry run mytrain --lr 3e-4", "proj/cli.py"),
    (POETRY, "poetry run python -m proj.cli --lr 3e-4", "proj/cli.py"),
])
def test_uv_and_poetry_run_a_module_or_a_console_script(tmp_path: Path, files: dict[str, str], command: str,
                                                        entry: str) -> None:
    """`uv run -m pkg`, `uv run mytrain`, `poetry run mytrain` (a `[tool.poetry.scripts]` entry): no entry had
    been found, the module's defaults were searched though the command sets them, and `train.py` (not run) too."""
    tracked = _repo(tmp_path, files)
    assert code_reach.reach(tmp_path, tracked, command).entry == entry
    program = _program(files, command)
    assert program.invocation is not None and program.invocation.entry == entry
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert "overridden by --lr on the command line" in knobs[f"{entry}:--lr"].why_not
    assert knobs["command:--lr"].searchable and knobs["command:--lr"].value == 3e-4
    assert "not run" in knobs["train.py:--lr"].why_not


@pytest.mark.parametrize("command", ["uv run --directory exp python train.py --lr 3e-4",
                                     "uv --directory=exp run python train.py --lr 3e-4",
                                     "poetry -C exp run python train.py --lr 3e-4"])
def test_a_runner_s_directory_option_moves_where_the_script_is_found(tmp_path: Path, command: str) -> None:
    """`uv run --directory exp python train.py` runs exp/train.py: no entry had been found, so the command's
    `--lr` was not seen to override the script's default, and the files were not known to be the ones run."""
    files = {"exp/train.py": TRAIN, "exp/model.py": MODEL, "train.py": TRAIN}
    tracked = _repo(tmp_path, files)
    reached = code_reach.reach(tmp_path, tracked, command)
    assert reached.entry == "exp/train.py" and reached.cwd == "exp"
    program = _program(files, command)
    assert program.invocation is not None and program.invocation.entry == "exp/train.py"
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert "overridden by --lr on the command line" in knobs["exp/train.py:--lr"].why_not
    assert knobs["command:--lr"].searchable


def test_poetry_s_table_form_of_a_script_is_read() -> None:
    pyproject = '[tool.poetry.scripts]\nmytrain = { reference = "proj.cli:main", type = "console" }\n'
    assert code_reach.console_scripts(pyproject) == {"mytrain": "proj.cli"}


# ------------------------------------------------------------------------------------------- W1-W3: task runners

MAKEFILE = """\
PYTHON ?= python3
LR ?= 3e-4
EPOCHS := 5
BASE_WD = 0.01
WD = $(BASE_WD)

.PHONY: all train data clean
all: train

data:
\t$(PYTHON) prepare.py

train: data
\t@echo "training"
\t$(PYTHON) train.py --lr $(LR) --epochs ${EPOCHS} \\
\t    --weight_decay $(WD) --batch_size 64 2>&1 | tee train.log

clean:
\trm -rf runs
"""
MAKE_REPO = {**BASE, "Makefile": MAKEFILE, "prepare.py": "open('data.bin', 'wb').write(b'x')\n"}


@pytest.mark.parametrize("command", ["make train", "make", "make all", "make -j4 train", "make -s -f Makefile train",
                                     "make train 2>&1 | tee make.log"])
def test_make_runs_the_python_command_of_the_target_s_recipe(tmp_path: Path, command: str) -> None:
    """`make train`: the recipe had not been read, so init found no entry and every lr / epochs / batch-size move
    edited a default that the Makefile overrides. The target's own recipe trains (its prerequisite `data` only
    prepares); `make` and `make all` reach it through the default goal and its prerequisites."""
    tracked = _repo(tmp_path, MAKE_REPO)
    reached = code_reach.reach(tmp_path, tracked, command)
    assert reached.entry == "train.py"
    assert {"Makefile", "train.py", "model.py"} <= set(_editable(tmp_path, tracked, command))
    knobs = BuiltinPolicy().knobs_in(MAKE_REPO, command=command)
    for default in ("--lr", "--epochs", "--batch_size", "--weight_decay"):
        assert knobs[default].why_not == f"overridden by {default} on Makefile", default
    assert knobs["Makefile:--lr"].value == 3e-4 and knobs["Makefile:--batch_size"].value == 64
    assert knobs["Makefile:--weight_decay"].value == 0.01  # WD = $(BASE_WD): followed to the literal


def test_a_makefile_setting_is_edited_where_the_variable_is_defined() -> None:
    """`--lr $(LR)` with `LR ?= 3e-4`: the value is written at the variable's definition (so `make train LR=…`
    keeps working), a literal flag in the recipe in place, and a new flag after the python command's arguments."""
    program = _program(MAKE_REPO, "make train")
    inv = program.invocation
    assert inv is not None and inv.source == "Makefile" and inv.entry == "train.py"
    cli = _cli(program)
    text = MAKE_REPO["Makefile"]
    assert "LR ?= 1e-2\n" in eff.rewrite_cli(text, cli["Makefile:--lr"], 0.01, program)
    assert "EPOCHS := 2\n" in eff.rewrite_cli(text, cli["Makefile:--epochs"], 2, program)
    assert "BASE_WD = 0.1\n" in eff.rewrite_cli(text, cli["Makefile:--weight_decay"], 0.1, program)
    assert "--batch_size 128 2>&1" in eff.rewrite_cli(text, cli["Makefile:--batch_size"], 128, program)
    hidden = {k.name: k for k in knobmod.discover_files(dict(MAKE_REPO))}["--hidden"]
    virtual = eff.virtual_cli_knob(program, hidden)
    assert virtual is not None and virtual.path == "Makefile"
    appended = eff.rewrite_cli(text, virtual, 256, program)
    assert "--weight_decay $(WD) --batch_size 64 --hidden=256 2>&1 | tee train.log\n" in appended


@pytest.mark.parametrize(("command", "knob", "value", "expected"), [
    ("make train LR=1e-3", "command:--lr", 0.02, "make train LR=2e-2"),
    ("LR=1e-3 make train", "command:--lr", 0.02, "LR=2e-2 make train"),
    ("make train EPOCHS=2", "command:--epochs", 4, "make train EPOCHS=4"),
])
def test_a_variable_set_on_the_make_command_is_the_setting_on_the_command(command: str, knob: str, value: float,
                                                                         expected: str) -> None:
    """`make train LR=1e-3` beats `LR ?= 3e-4`, and so does `LR=1e-3 make train` (an environment variable beats
    `?=` only); `EPOCHS=2 make train` would not beat `EPOCHS := 5`, but `make train EPOCHS=2` does."""
    program = _program(MAKE_REPO, command)
    cli = _cli(program)
    assert knob in cli and cli[knob].path == eff.COMMAND_PATH
    new = eff.rewrite_cli(command, cli[knob], value, program)
    assert new == expected and _parses(new)
    knobs = BuiltinPolicy().knobs_in(MAKE_REPO, command=command)
    assert knobs[knob].searchable
    assert knobs[f"--{knob.split('--')[1]}"].why_not.endswith("on the command line")


TARGET_VARS = {**BASE, "Makefile": "LR ?= 3e-4\nEPOCHS = 5\n\nsmall: EPOCHS = 2\nsmall: train\n\n"
                                    "train:\n\tpython train.py --lr $(LR) --epochs $(EPOCHS)\n"}


@pytest.mark.parametrize(("command", "epochs", "edited"), [
    ("make train", 5, "EPOCHS = 7\n\nsmall: EPOCHS = 2\n"),
    ("make small", 2, "EPOCHS = 5\n\nsmall: EPOCHS = 7\n"),
])
def test_a_target_s_own_variable_is_the_setting_its_recipe_runs_with(command: str, epochs: int, edited: str) -> None:
    """`small: EPOCHS = 2` holds for `small` and the `train` recipe it makes, not for `make train`: the setting
    read, and the line a change is written on, follow the target the command makes."""
    program = _program(TARGET_VARS, command)
    cli = _cli(program)
    assert cli["Makefile:--epochs"].value == epochs
    assert edited in eff.rewrite_cli(TARGET_VARS["Makefile"], cli["Makefile:--epochs"], 7, program)
    over = _cli(_program(TARGET_VARS, "make small EPOCHS=9"))  # the command line beats a target's own value
    assert over["command:--epochs"].value == 9


def test_an_environment_variable_does_not_beat_a_plain_makefile_assignment() -> None:
    program = _program(MAKE_REPO, "EPOCHS=2 make train")
    cli = _cli(program)
    assert "command:--epochs" not in cli and cli["Makefile:--epochs"].value == 5


def test_make_dash_c_runs_the_recipe_in_that_folder(tmp_path: Path) -> None:
    files = {"exp/train.py": TRAIN, "exp/model.py": MODEL, "exp/Makefile": "train:\n\tpython train.py --epochs 3\n",
             "train.py": TRAIN, "model.py": MODEL}
    tracked = _repo(tmp_path, files)
    reached = code_reach.reach(tmp_path, tracked, "make -C exp train")
    assert (reached.entry, reached.cwd) == ("exp/train.py", "exp")
    knobs = BuiltinPolicy().knobs_in(files, command="make -C exp train")
    assert knobs["exp/train.py:--epochs"].why_not == "overridden by --epochs on exp/Makefile"
    assert "not run" in knobs["train.py:--epochs"].why_not


def test_a_recipe_running_a_module_through_a_make_variable() -> None:
    files = {"pkg/__init__.py": "", "pkg/train.py": TRAIN.replace("from model", "from pkg.model"),
             "pkg/model.py": MODEL,
             "Makefile": "PY = python -u\nARGS = --lr 0.1 --epochs 2\ntrain:\n\tcd . && $(PY) -m pkg.train $(ARGS)\n"}
    program = _program(files, "make train")
    inv = program.invocation
    assert inv is not None and inv.entry == "pkg/train.py"
    # a variable holding several words is no single setting's literal: it is shown, never edited
    assert {a.name: a.value for a in inv.args} == {"--lr": "$(ARGS)", "--epochs": "$(ARGS)"}
    knobs = BuiltinPolicy().knobs_in(files, command="make train")
    assert "overridden by --lr" in knobs["--lr"].why_not and not knobs["Makefile:--lr"].searchable


def test_a_makefile_that_exports_pythonpath_runs_the_module_under_it(tmp_path: Path) -> None:
    """`export PYTHONPATH := $(PWD)/lib` in the Makefile puts `lib` on the recipe's import path; a self-documenting
    `train: ## …` names no prerequisites."""
    files = {"lib/mypkg/__init__.py": "", "lib/mypkg/train.py": LIB_TRAIN, "lib/mypkg/model.py": MODEL,
             "Makefile": "export PYTHONPATH := $(PWD)/lib\n\ntrain: ## train the model\n"
                         "\tpython -m mypkg.train --epochs 3\n"}
    tracked = _repo(tmp_path, files)
    assert code_reach.reach(tmp_path, tracked, "make train").entry == "lib/mypkg/train.py"
    assert "lib/mypkg/model.py" in _editable(tmp_path, tracked, "make train")
    knobs = BuiltinPolicy().knobs_in(files, command="make train")
    assert knobs["--epochs"].why_not == "overridden by --epochs on Makefile"
    assert knobs["Makefile:--epochs"].value == 3


JUSTFILE = """\
lr := "3e-4"
alias t := train

# the training run
train epochs="5": prepare
    @echo training
    python train.py --lr {{lr}} --epochs {{ epochs }}

prepare:
    python prepare.py
"""
JUST_REPO = {**BASE, "justfile": JUSTFILE, "prepare.py": "print('ok')\n"}


@pytest.mark.parametrize("command", ["just train", "just", "just t"])
def test_just_runs_the_python_command_of_the_recipe(tmp_path: Path, command: str) -> None:
    tracked = _repo(tmp_path, JUST_REPO)
    assert code_reach.reach(tmp_path, tracked, command).entry == "train.py"
    assert "justfile" in _editable(tmp_path, tracked, command)
    program = _program(JUST_REPO, command)
    cli = _cli(program)
    assert cli["justfile:--lr"].value == 3e-4 and cli["justfile:--epochs"].value == 5
    text = JUST_REPO["justfile"]
    assert 'lr := "1e-2"' in eff.rewrite_cli(text, cli["justfile:--lr"], 0.01, program)
    assert 'train epochs="2": prepare' in eff.rewrite_cli(text, cli["justfile:--epochs"], 2, program)
    knobs = BuiltinPolicy().knobs_in(JUST_REPO, command=command)
    assert knobs["--lr"].why_not == "overridden by --lr on justfile"


@pytest.mark.parametrize(("command", "knob", "value", "expected"), [
    ("just lr=1e-3 train", "command:--lr", 0.02, "just lr=2e-2 train"),
    ("just --set lr 1e-3 train", "command:--lr", 0.02, "just --set lr 2e-2 train"),
    ("just train 7", "command:--epochs", 3, "just train 3"),
])
def test_a_just_variable_or_argument_on_the_command_is_the_setting(command: str, knob: str, value: float,
                                                                  expected: str) -> None:
    """Overrides come before the recipe (`just lr=1e-3 train`, `--set`); words after it are its parameters."""
    program = _program(JUST_REPO, command)
    cli = _cli(program)
    assert knob in cli
    assert eff.rewrite_cli(command, cli[knob], value, program) == expected


def test_tox_runs_the_commands_of_its_environment(tmp_path: Path) -> None:
    files = {**BASE, "tox.ini": "[tox]\nenvlist = py311\n\n[testenv:train]\ndeps = torch\n"
                                "commands =\n    python train.py --lr 3e-4 {posargs:--epochs 5}\n"}
    tracked = _repo(tmp_path, files)
    assert code_reach.reach(tmp_path, tracked, "tox -e train").entry == "train.py"
    knobs = BuiltinPolicy().knobs_in(files, command="tox -e train")
    assert knobs["--lr"].why_not == "overridden by --lr on tox.ini"
    assert knobs["tox.ini:--lr"].searchable
    program = _program(files, "tox -e train")
    assert "--lr 1e-2 {posargs" in eff.rewrite_cli(files["tox.ini"], _cli(program)["tox.ini:--lr"], 0.01, program)


# ------------------------------------------------------------------------------------------- W11: cd


@pytest.mark.parametrize("command", ["cd src && python train.py --lr 0.01", "(cd src && python train.py --lr 0.01)",
                                     "cd src; python train.py --lr 0.01", "cd ./src && python ./train.py --lr=0.01"])
def test_a_command_that_changes_folder_first_is_read_from_there(tmp_path: Path, command: str) -> None:
    """`cd src && python train.py --lr 0.01`: init followed the cd, the effective-value analysis did not, so the
    overridden default stayed searchable; in the subshell form `0.01)` had been read as the value."""
    files = {"src/train.py": TRAIN, "src/model.py": MODEL, "notes/plot.py": "print(1)\n"}
    tracked = _repo(tmp_path, files)
    reached = code_reach.reach(tmp_path, tracked, command)
    assert (reached.entry, reached.cwd) == ("src/train.py", "src")
    assert project_init._missing_program(command, tmp_path) is None
    program = _program(files, command)
    inv = program.invocation
    assert inv is not None and inv.entry == "src/train.py" and inv.cwd == "src"
    assert [(a.name, a.value) for a in inv.args] == [("--lr", 0.01)]
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert knobs["--lr"].why_not == "overridden by --lr on the command line"
    assert knobs["command:--lr"].searchable and knobs["command:--lr"].value == 0.01
    new = eff.rewrite_cli(command, _cli(program)["command:--lr"], 0.02, program)
    assert "0.02" in new and _parses(new)
    default = {k.name: k for k in knobmod.discover_files(dict(files))}["--batch_size"]
    virtual = eff.virtual_cli_knob(program, default)
    assert virtual is not None
    appended = eff.rewrite_cli(command, virtual, 64, program)
    assert _parses(appended) and appended.rstrip(")").endswith("--batch_size=64")


def test_a_config_named_after_cd_counts_from_that_folder() -> None:
    train = TRAIN.replace('args = p.parse_args()',
                          'p.add_argument("--config", default="configs/default.yaml")\n'
                          'p.set_defaults(**yaml.safe_load(open(p.parse_known_args()[0].config)))\n'
                          'args = p.parse_args()').replace("import argparse", "import argparse\nimport yaml")
    files = {"exp/train.py": train, "exp/model.py": MODEL, "exp/configs/a.yaml": "lr: 0.01\nepochs: 20\n",
             "exp/configs/default.yaml": "lr: 0.3\n"}
    command = "cd exp && python train.py --config configs/a.yaml --epochs 2"
    program = _program(files, command)
    assert program.invocation is not None and program.invocation.files == ["exp/configs/a.yaml"]
    knobs = BuiltinPolicy().knobs_in(files, command=command)
    assert knobs["exp/configs/a.yaml:lr"].searchable
    assert "not read" in knobs["exp/configs/default.yaml:lr"].why_not
    assert "overridden by exp/configs/a.yaml" in knobs["--lr"].why_not
    assert "overridden by --epochs" in knobs["epochs"].why_not


def test_a_script_that_moves_to_its_own_folder_runs_the_script_there(tmp_path: Path) -> None:
    files = {"exp/train.py": TRAIN, "exp/model.py": MODEL,
             "exp/run.sh": '#!/bin/bash\ncd "$(dirname "$0")"\npython train.py --epochs 2\n'}
    tracked = _repo(tmp_path, files)
    assert code_reach.reach(tmp_path, tracked, "bash exp/run.sh").entry == "exp/train.py"
    knobs = BuiltinPolicy().knobs_in(files, command="bash exp/run.sh")
    assert knobs["--epochs"].why_not == "overridden by --epochs on exp/run.sh"


def test_the_builtin_policy_tunes_a_makefile_variable_where_it_is_defined() -> None:
    """`make train` runs `python train.py --lr $(LR)`: the script's default is dead, the Makefile's `LR ?= 3e-4` is
    the setting, and the builtin policy's move rewrites that line (the Makefile is a file it edits)."""
    from nightlab.agent.policy.builtin import BuiltinPolicy, _checkout_context

    files = {"Makefile": "LR ?= 3e-4\nEPOCHS = 5\n\ntrain:\n\tpython train.py --lr $(LR) --epochs $(EPOCHS)\n",
             "train.py": "import argparse\nap = argparse.ArgumentParser()\n"
                         "ap.add_argument('--lr', type=float, default=0.1)\n"
                         "ap.add_argument('--epochs', type=int, default=20)\na = ap.parse_args()\n"
                         "print('val_loss', a.lr * a.epochs)\n"}
    policy = BuiltinPolicy()
    state = policy._state(_checkout_context(files, "make train", "val_loss"), None)
    assert state.knobs["Makefile:--lr"].searchable and not state.knobs["--lr"].searchable
    new = policy._rewrite_knobs(dict(files), state, {"Makefile:--lr": 0.0009})
    assert new is not None and new["Makefile"].startswith("LR ?= 9e-4\n") and new["train.py"] == files["train.py"]
