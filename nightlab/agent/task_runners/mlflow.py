"""MLflow Projects: `mlflow run . [-e ENTRY] [-P k=v]` runs an entry point's `command:` from the MLproject file, its
`{k}` filled in from `-P` or the parameter's `default:`."""

from __future__ import annotations

from collections.abc import Callable

import yaml

from nightlab.agent.task_runners.recipe import Recipe, Variable, _join, _mapping_get, _scalar_span, _yaml_file

# `mlflow run` options that take the next word as their value
_MLFLOW_VALUE_OPTS = frozenset({"-e", "--entry-point", "-v", "--version", "-P", "--param-list", "-A",
                                "--docker-args", "--experiment-name", "--experiment-id", "-b", "--backend",
                                "-c", "--backend-config", "--env-manager", "--storage-dir", "--run-id", "--run-name",
                                "--build-image"})


def _mlflow(words: list[str], i: int, read: Callable[[str], str], exists: Callable[[str], bool],
            cwd: str) -> list[Recipe]:
    """`mlflow run [URI] [-e ENTRY] [-P NAME=VALUE…]`: the `command:` of the entry point (`main` unless `-e` names
    another) in the project's MLproject file, with each `{name}` filled in from `-P name=value`, else from the
    parameter's `default:` (edited where it is written). A project at a git URL or an archive is not read."""
    if i >= len(words) or words[i] != "run":
        return []
    i += 1
    uri, entry = "", "main"
    params: dict[str, tuple[str, int]] = {}
    while i < len(words):
        w = words[i]
        name, eq, value = w.partition("=")
        if w.startswith("-"):
            opt, inline, at = (name, value, i) if eq and w.startswith("--") else (w, "", i)
            if opt in _MLFLOW_VALUE_OPTS and not inline and i + 1 < len(words):
                i += 1
                inline, at = words[i], i
            if opt in ("-e", "--entry-point"):
                entry = inline
            elif opt in ("-P", "--param-list"):
                key, has, val = inline.partition("=")
                if has:
                    params[key] = (val, at)
        elif not uri:
            uri = w
        i += 1
    if "://" in uri or uri.startswith("git@") or uri.endswith((".zip", ".tar.gz")):
        return []
    folder = _join(cwd, uri or ".")
    path = _join(folder, "MLproject")
    got = _yaml_file(path, read, exists)
    if got is None:
        return []
    text, root = got
    point = _mapping_get(_mapping_get(root, "entry_points"), entry)
    command = _mapping_get(point, "command")
    if not isinstance(command, yaml.ScalarNode):
        return []  # an entry point named by a script file (`-e train.py`) runs it with the parameters as flags
    span, fold = _scalar_span(text, command)
    variables: dict[str, Variable] = {}
    declared = _mapping_get(point, "parameters")
    for key, spec in declared.value if isinstance(declared, yaml.MappingNode) else []:
        default = _mapping_get(spec, "default")
        if isinstance(default, yaml.ScalarNode):
            (start, end), _ = _scalar_span(text, default)
            variables[str(key.value)] = Variable(str(default.value), start, end)
    for key, (val, at) in params.items():
        variables[key] = Variable(val, word=at)
    return [Recipe(path, text, entry, "mlflow", [span], variables, folder,
                   folded=frozenset({span}) if fold else frozenset())]
