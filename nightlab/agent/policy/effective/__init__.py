"""Where a setting takes effect: the files a command runs, the config files they read, and what overrides what.

Real training code sets one hyperparameter in several places at once. nanoGPT's ``train.py`` holds defaults as
module globals, ``configurator.py`` (exec'd by train.py) executes the config file named on the command line over
them, and ``--key=value`` arguments override both. An argparse default is dead when the command passes the flag; a
dataclass default is dead when every place that builds the dataclass passes the field; a YAML file nobody loads,
or a script the command does not run, changes nothing at all. Editing such a location costs a training run and
teaches nothing, so the builtin policy must see, for every knob, whether it takes effect — and if not, where the
setting does.

`analyse` reads the program a command runs (entry point, imports at any depth, exec'd files, config files named on
the command line or loaded by the code, Hydra's config directory and defaults list, argparse options) from the
repository's files; `resolve` takes the knobs found in those files plus the settings on the command line and says,
for each knob, that it is effective, shadowed (by what), or unused (why). Precedence, lowest first:

1. defaults in code: module globals, argparse defaults, dataclass fields, config dicts, function defaults;
2. config files, in the order they are applied (Hydra's defaults list, then files named on the command line);
3. settings on the command line (``--k v``, ``--k=v``, ``k=v``).

Everything is decided from the code's structure (imports, calls, assignments, the command's words), never from
comments or file names. Where the analysis cannot see (a command that runs no Python file it can find), nothing is
declared unused or shadowed: knobs stay as discovered.

The rooms: `python_facts` (what one Python file says), `program` (`analyse`: the files and configs a command runs
and reads), `command_line` (the command's settings as knobs, and rewriting them), `lazy_configs` (Detectron2's
Python configs that import what they set), `resolution` (`resolve`).
"""

from __future__ import annotations

from nightlab.agent.policy.commandline import COMMAND_PATH
from nightlab.agent.policy.effective.command_line import cli_knobs, cli_route, rewrite_cli, virtual_cli_knob
from nightlab.agent.policy.effective.program import CLI_STYLE, ConfigFile, Program, Resolution, analyse
from nightlab.agent.policy.effective.python_facts import dotted, option_dest
from nightlab.agent.policy.effective.resolution import resolve

__all__ = [
    "CLI_STYLE",
    "COMMAND_PATH",
    "ConfigFile",
    "Program",
    "Resolution",
    "analyse",
    "cli_knobs",
    "cli_route",
    "dotted",
    "option_dest",
    "resolve",
    "rewrite_cli",
    "virtual_cli_knob",
]
