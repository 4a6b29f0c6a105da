"""spaCy projects: `spacy project run NAME` runs the `script:` lines of project.yml's command NAME (or of each command
of the workflow NAME), `${vars.key}` filled in from `--vars.key` or from `vars:`."""

from __future__ import annotations

from collections.abc import Callable

import yaml

from nightlab.agent.task_runners.recipe import Recipe, Variable, _join, _mapping_get, _scalar_span, _yaml_file

_SPACY_PROJECT = "project.yml"


def _spacy(words: list[str], i: int, read: Callable[[str], str], exists: Callable[[str], bool],
           cwd: str) -> list[Recipe]:
    """`spacy project run NAME [DIR] [--vars.key value | --vars.key=value]`: one recipe with the `script:` lines of
    the command NAME in DIR's project.yml, or of each command of the workflow NAME in the workflow's order."""
    if words[i:i + 2] != ["project", "run"]:
        return []
    i += 2
    positional: list[str] = []
    given: dict[str, tuple[str, int]] = {}
    while i < len(words):
        w = words[i]
        if w.startswith("--vars."):
            key, eq, value = w[len("--vars."):].partition("=")
            if not eq and i + 1 < len(words):
                i += 1
                value = words[i]
            given[key.replace("-", "_")] = (value, i)
        elif not w.startswith("-"):
            positional.append(w)
        i += 1
    if not positional:
        return []
    folder = _join(cwd, positional[1] if len(positional) > 1 else ".")
    path = _join(folder, _SPACY_PROJECT)
    got = _yaml_file(path, read, exists)
    if got is None:
        return []
    text, root = got
    scripts = _spacy_command_scripts(root)
    workflow = _mapping_get(_mapping_get(root, "workflows"), positional[0])
    names = [str(n.value) for n in workflow.value if isinstance(n, yaml.ScalarNode)] \
        if isinstance(workflow, yaml.SequenceNode) else [positional[0]]
    if not all(n in scripts for n in names):
        return []
    lines: list[tuple[int, int]] = []
    folded: set[tuple[int, int]] = set()
    for name in names:
        for node in scripts[name]:
            span, fold = _scalar_span(text, node)
            lines.append(span)
            if fold:
                folded.add(span)
    variables = _spacy_vars(text, _mapping_get(root, "vars"))
    for key, (value, at) in given.items():
        variables[key] = Variable(value, word=at)
    return [Recipe(path, text, "+".join(names), "spacy", lines, variables, folder, folded=frozenset(folded))]


def _spacy_command_scripts(root: yaml.Node | None) -> dict[str, list[yaml.ScalarNode]]:
    """{command name: its `script:` lines} of a project.yml."""
    commands = _mapping_get(root, "commands")
    out: dict[str, list[yaml.ScalarNode]] = {}
    for c in commands.value if isinstance(commands, yaml.SequenceNode) else []:
        name, script = _mapping_get(c, "name"), _mapping_get(c, "script")
        if isinstance(name, yaml.ScalarNode) and isinstance(script, yaml.SequenceNode):
            out[str(name.value)] = [n for n in script.value if isinstance(n, yaml.ScalarNode)]
    return out


def _spacy_vars(text: str, node: yaml.Node | None, prefix: str = "") -> dict[str, Variable]:
    """The `vars:` of a project.yml, nested ones dotted (`${vars.train.epochs}`), each with its literal's span."""
    out: dict[str, Variable] = {}
    for key, value in node.value if isinstance(node, yaml.MappingNode) else []:
        name = f"{prefix}{key.value}"
        if isinstance(value, yaml.MappingNode):
            out.update(_spacy_vars(text, value, name + "."))
        elif isinstance(value, yaml.ScalarNode):
            (start, end), _ = _scalar_span(text, value)
            out[name] = Variable(str(value.value), start, end)
    return out


def spacy_scripts(text: str) -> str:
    """The `script:` lines of every command of a project.yml, one a line ("" when it does not parse): the lines the
    edit guard reads as it reads a shell script's."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return ""
    return "\n".join(str(n.value) for nodes in _spacy_command_scripts(root).values() for n in nodes)
