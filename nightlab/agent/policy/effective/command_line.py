"""Settings on the command line as knobs: each `--k v`, `--k=v` or `k=v` word a knob of its own (`cli_knobs`), where a
change to a setting must be written (`cli_route`), and the command rewritten with one value changed (`rewrite_cli`)."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from nightlab.agent.policy import knobs as knobmod
from nightlab.agent.policy.commandline import COMMAND_PATH, Arg, Invocation, parse_command
from nightlab.agent.policy.effective.program import CLI_STYLE, Program, _norm
from nightlab.agent.policy.effective.resolution import _config_key, _fixed_argv, _local


def _cli_name(source: str, arg: Arg) -> str:
    return f"{'command' if source == COMMAND_PATH else source}:{arg.name}"


def cli_knobs(program: Program) -> list[knobmod.Knob]:
    """The settings on the command line as knobs (style ``cli``, path `COMMAND_PATH` or the shell script's path),
    typed as the program reads them (an argparse ``type=float`` option written ``1`` is the float 1.0)."""
    inv = program.invocation
    if inv is None:
        return []
    out: list[knobmod.Knob] = [k for a in inv.env if (k := _env_knob(program, inv, a)) is not None]
    seen: dict[str, int] = {}
    for a in inv.args:
        if a.style == "switch" or a.value is None or _names_file(inv, a):
            continue
        seen[a.name] = seen.get(a.name, 0) + 1
    counted: dict[str, int] = {}
    for a in inv.args:
        if a.style == "switch" or _names_file(inv, a):
            continue
        counted[a.name] = counted.get(a.name, 0) + 1
        if a.value is not None and counted[a.name] < seen.get(a.name, 0):
            continue  # an earlier occurrence that a later one overrides
        opt = program.option_for(a.name)
        leaf = opt.dest if opt is not None else a.key.split(".")[-1]
        value: Any = a.value
        if a.seed_placeholder:
            kind = "seed"
            value = "{seed}"
        elif isinstance(value, bool):
            kind = "flag"
        elif isinstance(value, int | float):
            kind = knobmod.classify(leaf)
            if kind == "split":
                continue
            if opt is not None and opt.type_name == "float" and isinstance(value, int):
                value = float(value)
        elif isinstance(value, str) and value.startswith(("$", "{{")):
            kind = "fixed"  # `--lr $LR` in a script (`$(LR)`, `{{lr}}` in a recipe): set there, from a variable
            # nightlab does not edit, yet it overrides the argparse default all the same (which would otherwise be
            # searched, and change nothing)
        else:
            group = knobmod.choice_group(a.key, str(value))
            if group is None:
                continue
            kind = "choice"
        text, where = inv.text_of(a), inv.where(a)
        line = text.count("\n", 0, a.start) + 1
        out.append(knobmod.Knob(_cli_name(where, a), where, value, kind, CLI_STYLE, line,
                                text.splitlines()[line - 1].strip() if text else "",
                                knobmod.choices_for(a.key, str(value), [program.command]) if kind == "choice"
                                else ()))
    return out


def _env_knob(program: Program, inv: Invocation, a: Arg) -> knobmod.Knob | None:
    """An environment word of the command (`LR=0.01 python train.py`) as a knob, where a file the command runs reads
    that variable (`os.environ.get("LR", ...)`, `os.getenv("LR")`) and its value is a number: `PYTHONPATH=…`,
    `CUDA_VISIBLE_DEVICES=0` and variables no code of the repository reads are no setting of the training."""
    if not isinstance(a.value, int | float) or isinstance(a.value, bool) or program.read is None:
        return None
    read = program.read
    reads = re.compile(rf"""(?:environ(?:\.get)?\s*[\[(]|getenv\s*\()\s*['"]{re.escape(a.name)}['"]""")
    if not any(reads.search(read(p)) for p in sorted(program.run_files or ()) if p.endswith(".py")):
        return None
    text, where = inv.text_of(a), inv.where(a)
    line = text.count("\n", 0, a.start) + 1
    kind = knobmod.classify(a.name.lower())
    return knobmod.Knob(_cli_name(where, a), where, a.value, kind if kind != "split" else "fixed", CLI_STYLE, line,
                        text.splitlines()[line - 1].strip() if text else "")


def _names_file(inv: Invocation, a: Arg) -> bool:
    """Whether an argument's value is a file the command names (`--config configs/a.yaml`, counted from its cwd)."""
    return str(a.value) in inv.files or _norm(posixpath.join(inv.cwd, str(a.value))) in inv.files


def cli_route(program: Program, knob: knobmod.Knob) -> str | None:
    """The command-line argument that sets `knob`'s setting, where the program reads one: the option of an argparse
    default, ``--name`` for the entry's globals (and an exec'd config's) under configurator-style ``--k=v`` parsing,
    the dotted key of a YAML config under Hydra / ``OmegaConf.from_cli``; None where the command line cannot."""
    inv = program.invocation
    if inv is None or program.run_files is None or knob.style == CLI_STYLE:
        return None
    local = _local(knob).split("#")[0]
    if knob.style == "argparse":
        if inv.entry and program.read is not None and _fixed_argv(program.read(inv.entry)) is not None:
            return None  # the entry parses a list of its own: a word added to the command is never read
        opt = program.option_for(local)
        return max(opt.strings, key=len) if opt is not None and opt.takes_value else None
    owner, _, param = local.rpartition(".")
    if knob.style == "signature" and owner.split(".")[-1] in program.cli_functions:
        opt = program.option_for(param)
        return opt.strings[0] if opt is not None and opt.takes_value else None
    cfg = program.config(knob.path)
    if program.argv_globals and knob.style == "constant" and "." not in local and (
            knob.path == inv.entry or (cfg is not None and knob.path.endswith(".py"))):
        return f"--{local}"
    if program.dotlist and cfg is not None and knob.style in ("yaml", "json"):
        return ".".join(x for x in (cfg.prefix, local) if x)
    if cfg is not None and cfg.scope_parts and knob.style == "constant" and len(local.split(".")) > cfg.scope_parts:
        return f"--{_config_key(cfg, knob)}"  # ml_collections' `--config.num_epochs=5`
    return None


def virtual_cli_knob(program: Program, knob: knobmod.Knob) -> knobmod.Knob | None:
    """`knob`'s setting as a command-line knob that is not on the command line yet (its value is `knob`'s); editing
    it appends ``route=value`` to the invocation. None where the command line cannot set it."""
    route = cli_route(program, knob)
    inv = program.invocation
    if route is None or inv is None:
        return None
    name = f"{'command' if inv.source == COMMAND_PATH else inv.source}:{route}"
    return knobmod.Knob(name, inv.source, knob.value, knob.kind, CLI_STYLE, 0, f"{route}=… (not on the command yet)",
                        knob.choices)


def rewrite_cli(text: str, knob: knobmod.Knob, new_value: Any, program: Program) -> str:
    """`text` (the command, or the shell script or task file holding the setting) with `knob`'s value replaced in
    the style of the old value, or ``name=value`` appended to the invocation when the setting is not there yet
    (after its last argument, before any redirection). KeyError when `text` runs no Python invocation."""
    inv = _invocation_in(text, knob.path, program)
    if inv is None:
        raise KeyError(knob.name)
    name = knob.name.split(":", 1)[1] if ":" in knob.name else knob.name
    hit = inv.arg(name, knob.path)
    if hit is None or hit.style == "switch":
        if hit is not None or inv.source != knob.path:
            raise KeyError(knob.name)
        if isinstance(new_value, str) and not re.fullmatch(r"[\w.+\-/]+", new_value):
            raise KeyError(knob.name)
        new = knobmod.format_value(new_value, repr(knob.value) if not isinstance(knob.value, str) else knob.value)
        return f"{text[:inv.end]} {name}={new}{text[inv.end:]}"
    new = knobmod.format_value(new_value, hit.text)
    return text[:hit.start] + new + text[hit.end:]


def _invocation_in(text: str, path: str, program: Program) -> Invocation | None:
    """The program's invocation as `text` (the current text of `path`) now writes it. The command is read as a
    command; a script or task file is read through the command that runs it (a Makefile's variables come from the
    command's `VAR=value` words), or, without the repository at hand, as a script of its own."""
    read = program.read
    if path == COMMAND_PATH:
        return parse_command(text, program.exists, read, program.takes_value, program.pairs)
    if read is not None:
        inv = parse_command(program.command, program.exists, lambda p: text if p == path else read(p),
                            program.takes_value, program.pairs)
        if inv is not None and (inv.source == path or any(inv.where(a) == path for a in inv.args)):
            return inv
    return parse_command(text, program.exists, takes_value=program.takes_value, pairs=program.pairs)
